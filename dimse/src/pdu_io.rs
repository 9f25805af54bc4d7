//! PDU framing over any async byte stream (TCP or TLS).
//!
//! Reads whole PDUs with `dicom_ul::read_pdu` from a bounded buffer (never larger than
//! the negotiated maximum PDU plus its header), and writes P-DATA-TF PDUs from
//! borrowed slices through a small write buffer: small PDVs (PDU headers, command
//! sets, C-FIND identifiers) are gathered into one write per message, large ones go
//! to the stream directly, so sending a data set copies nothing into an intermediate
//! PDU. Every read, every PDV write and every flush has a timeout (except [`PduConn::read_pdu_untimed`],
//! for a peer that is legitimately waiting on us). No DIMSE semantics here beyond
//! splitting a data set into PDVs ([`PduConn::send_data_set`]).

use std::io::Cursor;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource, PDU_HEADER_SIZE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

use crate::error::DimseError;

/// A bidirectional byte stream an association runs over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Size of a PDV item header: item length (4), presentation context id (1), control (1).
pub const PDV_HEADER_LEN: usize = 6;

/// Capacity of the write buffer: writes at least this large bypass it.
const WRITE_BUFFER: usize = 16 * 1024;

/// A PDU-level connection.
pub struct PduConn {
    stream: BufWriter<Box<dyn Io>>,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    /// Largest PDU (variable part) we accept from the peer.
    max_receive: u32,
    read_timeout: Duration,
}

impl std::fmt::Debug for PduConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PduConn")
            .field("max_receive", &self.max_receive)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl PduConn {
    /// Wraps `stream`; PDUs longer than `max_receive` are refused.
    pub fn new(stream: Box<dyn Io>, max_receive: u32, read_timeout: Duration) -> Self {
        let max_receive = max_receive.clamp(dicom_ul::pdu::MINIMUM_PDU_SIZE, 64 * 1024 * 1024);
        PduConn {
            stream: BufWriter::with_capacity(WRITE_BUFFER, stream),
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: Vec::with_capacity(1024),
            max_receive,
            read_timeout,
        }
    }

    /// Changes the largest PDU accepted from now on (after negotiation).
    pub fn set_max_receive(&mut self, max: u32) {
        self.max_receive = max.clamp(dicom_ul::pdu::MINIMUM_PDU_SIZE, 64 * 1024 * 1024);
    }

    /// Changes the time allowed for each read.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.read_timeout = timeout;
    }

    /// The largest PDU accepted from the peer.
    pub fn max_receive(&self) -> u32 {
        self.max_receive
    }

    /// The underlying stream (to inspect TLS state, for instance).
    pub fn stream_mut(&mut self) -> &mut dyn Io {
        &mut **self.stream.get_mut()
    }

    /// Reads the next PDU, waiting at most the read timeout for it to start and finish.
    pub async fn read_pdu(&mut self) -> Result<Pdu, DimseError> {
        let timeout = self.read_timeout;
        match tokio::time::timeout(timeout, self.read_pdu_inner()).await {
            Ok(result) => result,
            Err(_) => Err(DimseError::Timeout(timeout)),
        }
    }

    /// Reads the next PDU without a time limit: for a peer that is waiting for our
    /// responses (a long C-FIND, say) and may rightly send nothing for a while.
    /// Cancel-safe: dropping the future loses no bytes.
    pub async fn read_pdu_untimed(&mut self) -> Result<Pdu, DimseError> {
        self.read_pdu_inner().await
    }

    async fn read_pdu_inner(&mut self) -> Result<Pdu, DimseError> {
        loop {
            if self.read_buf.len() >= PDU_HEADER_SIZE as usize {
                let declared = u32::from_be_bytes([
                    self.read_buf[2],
                    self.read_buf[3],
                    self.read_buf[4],
                    self.read_buf[5],
                ]);
                if declared > self.max_receive {
                    return Err(DimseError::PduTooLarge {
                        length: declared,
                        max: self.max_receive,
                    });
                }
                let total = declared as usize + PDU_HEADER_SIZE as usize;
                if self.read_buf.len() >= total {
                    let mut cursor = Cursor::new(&self.read_buf[..total]);
                    let parsed = dicom_ul::read_pdu(&mut cursor, self.max_receive, true);
                    self.read_buf.advance(total);
                    return match parsed {
                        Ok(Some(pdu)) => Ok(pdu),
                        Ok(None) => Err(DimseError::Malformed("incomplete PDU".into())),
                        Err(e) => Err(DimseError::Malformed(e.to_string())),
                    };
                }
                self.read_buf.reserve(total - self.read_buf.len());
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(if self.read_buf.is_empty() {
                    DimseError::Closed
                } else {
                    DimseError::Malformed("connection closed in the middle of a PDU".into())
                });
            }
        }
    }

    /// Encodes and sends a whole PDU.
    pub async fn write_pdu(&mut self, pdu: &Pdu) -> Result<(), DimseError> {
        self.write_buf.clear();
        dicom_ul::write_pdu(&mut self.write_buf, pdu)
            .map_err(|e| DimseError::Encode(e.to_string()))?;
        self.stream.write_all(&self.write_buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends one P-DATA-TF PDU carrying one PDV with `data`; a peer that does not take
    /// it within the read timeout is treated as gone.
    pub async fn write_pdv(
        &mut self,
        context_id: u8,
        command: bool,
        last: bool,
        data: &[u8],
    ) -> Result<(), DimseError> {
        let item_len = data.len() + 2;
        let pdu_len = item_len + 4;
        let (Ok(item_len), Ok(pdu_len)) = (u32::try_from(item_len), u32::try_from(pdu_len)) else {
            return Err(DimseError::Encode("PDV larger than 4 GiB".into()));
        };
        let control = u8::from(command) | (u8::from(last) << 1);
        let mut header = [0u8; 12];
        header[0] = 0x04;
        header[2..6].copy_from_slice(&pdu_len.to_be_bytes());
        header[6..10].copy_from_slice(&item_len.to_be_bytes());
        header[10] = context_id;
        header[11] = control;
        let timeout = self.read_timeout;
        let write = async {
            self.stream.write_all(&header).await?;
            self.stream.write_all(data).await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DimseError::Timeout(timeout)),
        }
    }

    /// Sends a command set in one PDV and flushes.
    pub async fn send_command(&mut self, context_id: u8, command: &[u8]) -> Result<(), DimseError> {
        self.write_pdv(context_id, true, true, command).await?;
        self.flush().await
    }

    /// Sends a command set in one PDV and then its data set from `data`
    /// ([`PduConn::send_data_set`]): one flush for both.
    pub async fn send_command_and_data_set(
        &mut self,
        context_id: u8,
        command: &[u8],
        peer_max_pdu: u32,
        data: &mut (impl AsyncRead + Unpin + ?Sized),
    ) -> Result<(), DimseError> {
        self.write_pdv(context_id, true, true, command).await?;
        self.send_data_set(context_id, peer_max_pdu, data).await
    }

    /// Streams a data set from `data` in PDVs that fit `peer_max_pdu`, then flushes.
    /// The last PDV is known only when the reader reports end of data, so one chunk is
    /// held back; an empty reader gives one empty last PDV.
    pub async fn send_data_set(
        &mut self,
        context_id: u8,
        peer_max_pdu: u32,
        data: &mut (impl AsyncRead + Unpin + ?Sized),
    ) -> Result<(), DimseError> {
        let chunk = (peer_max_pdu as usize)
            .saturating_sub(PDV_HEADER_LEN)
            .clamp(1024, 1024 * 1024);
        // Buffers grow to what the data set needs (a C-FIND identifier is a few
        // hundred bytes), at most one chunk each.
        let mut current = Vec::new();
        let mut filled = fill(data, &mut current, chunk).await?;
        let mut next = Vec::new();
        loop {
            let next_filled = if filled == chunk {
                fill(data, &mut next, chunk).await?
            } else {
                0
            };
            let last = next_filled == 0;
            self.write_pdv(context_id, false, last, &current[..filled])
                .await?;
            if last {
                break;
            }
            std::mem::swap(&mut current, &mut next);
            filled = next_filled;
        }
        self.flush().await
    }

    /// Flushes buffered writes (the write buffer, TLS records), within the read
    /// timeout.
    pub async fn flush(&mut self) -> Result<(), DimseError> {
        let timeout = self.read_timeout;
        match tokio::time::timeout(timeout, self.stream.flush()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DimseError::Timeout(timeout)),
        }
    }

    /// Sends an A-ABORT from the service provider and closes the stream.
    pub async fn abort(&mut self, reason: AbortRQServiceProviderReason) {
        let pdu = Pdu::AbortRQ {
            source: AbortRQSource::ServiceProvider(reason),
        };
        let _ = self.write_pdu(&pdu).await;
        let _ = self.stream.shutdown().await;
    }

    /// Sends an A-ABORT from the service user and closes the stream.
    pub async fn abort_as_user(&mut self) {
        let pdu = Pdu::AbortRQ {
            source: AbortRQSource::ServiceUser,
        };
        let _ = self.write_pdu(&pdu).await;
        let _ = self.stream.shutdown().await;
    }

    /// After a refusal (A-ASSOCIATE-RJ): closes our side, then waits at most `wait`
    /// (PS3.8's ARTIM timer) for the peer to close its own, discarding what it sends.
    /// Dropping the connection at once could reset it while the refusal is still
    /// unread on the peer's side, which then sees an abort instead of the rejection.
    pub async fn linger(&mut self, wait: Duration) {
        let _ = self.stream.shutdown().await;
        let mut discard = [0u8; 4096];
        let _ = tokio::time::timeout(wait, async {
            while let Ok(n) = self.stream.read(&mut discard).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Closes the write side of the stream.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Reads into `buf` (cleared first) until it holds `limit` bytes or the reader ends;
/// returns the bytes read.
async fn fill(
    reader: &mut (impl AsyncRead + Unpin + ?Sized),
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, DimseError> {
    buf.clear();
    let n = reader.take(limit as u64).read_to_end(buf).await?;
    Ok(n)
}
