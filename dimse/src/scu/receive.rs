//! Reading what the acceptor sends: command sets and the data sets that follow them,
//! PDV by PDV (a P-DATA-TF PDU may carry several PDVs, kept until consumed).

use dicom_ul::Pdu;
use dicom_ul::pdu::{PDataValue, PDataValueType};

use super::ScuAssociation;
use crate::command::{MAX_COMMAND_SET_LEN, Message};
use crate::error::DimseError;

impl ScuAssociation {
    async fn next_pdv(&mut self) -> Result<PDataValue, DimseError> {
        loop {
            if let Some(pdv) = self.pending.pop_front() {
                return Ok(pdv);
            }
            match self.conn.read_pdu().await? {
                Pdu::PData { data } => self.pending.extend(data),
                Pdu::AbortRQ { .. } => return Err(DimseError::Aborted),
                other => {
                    return Err(DimseError::Unexpected(
                        other.short_description().to_string(),
                    ));
                }
            }
        }
    }

    /// Reads the next command set, which must come on `context` (for responses
    /// without a data set).
    pub async fn read_command(&mut self, context: u8) -> Result<Message, DimseError> {
        let (id, message) = self.read_message().await?;
        if id != context {
            return Err(DimseError::Unexpected("PDV on another context".into()));
        }
        Ok(message)
    }

    /// Reads the next command set on any context: the context id and the message.
    /// A data set that follows it (see [`Message::has_data_set`]) must be read next.
    pub async fn read_message(&mut self) -> Result<(u8, Message), DimseError> {
        let mut buf = Vec::new();
        let mut context = None;
        loop {
            let pdv = self.next_pdv().await?;
            let id = pdv.presentation_context_id;
            if pdv.value_type != PDataValueType::Command {
                return Err(DimseError::Unexpected(
                    "a data set fragment where a command set was expected".into(),
                ));
            }
            if context.is_some_and(|c| c != id) {
                return Err(DimseError::Unexpected(
                    "command fragments on two contexts".into(),
                ));
            }
            context = Some(id);
            if buf.len() + pdv.data.len() > MAX_COMMAND_SET_LEN {
                return Err(DimseError::Unexpected("command set too large".into()));
            }
            buf.extend_from_slice(&pdv.data);
            if pdv.is_last {
                return Ok((id, Message::decode(&buf)?));
            }
        }
    }

    /// The next fragment of the data set on `context`, and whether it is the last.
    pub(crate) async fn next_data_fragment(
        &mut self,
        context: u8,
    ) -> Result<(Vec<u8>, bool), DimseError> {
        let pdv = self.next_pdv().await?;
        if pdv.value_type != PDataValueType::Data || pdv.presentation_context_id != context {
            return Err(DimseError::Unexpected(
                "expected a data set fragment on the context of its command".into(),
            ));
        }
        Ok((pdv.data, pdv.is_last))
    }

    /// Reads a whole data set on `context`; more than `limit` bytes is an error.
    pub(crate) async fn read_data_set(
        &mut self,
        context: u8,
        limit: usize,
    ) -> Result<Vec<u8>, DimseError> {
        let mut out = Vec::new();
        loop {
            let (chunk, last) = self.next_data_fragment(context).await?;
            if out.len() + chunk.len() > limit {
                return Err(DimseError::Unexpected(format!(
                    "a data set over {limit} bytes in a response"
                )));
            }
            out.extend_from_slice(&chunk);
            if last {
                return Ok(out);
            }
        }
    }
}
