//! The group 0000 element layer under [`super`]: element numbers, and the writer and
//! reader that turn element values into implicit VR little endian bytes and back.
//! Knows nothing of which command needs which element.

use std::collections::BTreeMap;

use super::{CommandError, MAX_COMMAND_SET_LEN, Priority, SubOperations};
use crate::status::Status;

/// `CommandDataSetType` value meaning "no data set follows".
pub(super) const NO_DATA_SET: u16 = 0x0101;
/// `CommandDataSetType` value written when a data set follows (any value but 0x0101
/// means present).
pub(super) const DATA_SET_PRESENT: u16 = 0x0000;

/// A group 0000 element: its element number and its keyword for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct El {
    pub(super) element: u16,
    pub(super) name: &'static str,
}

const fn el(element: u16, name: &'static str) -> El {
    El { element, name }
}

pub(super) const COMMAND_GROUP_LENGTH: El = el(0x0000, "CommandGroupLength");
pub(super) const AFFECTED_SOP_CLASS_UID: El = el(0x0002, "AffectedSOPClassUID");
pub(super) const COMMAND_FIELD: El = el(0x0100, "CommandField");
pub(super) const MESSAGE_ID: El = el(0x0110, "MessageID");
pub(super) const MESSAGE_ID_BEING_RESPONDED_TO: El = el(0x0120, "MessageIDBeingRespondedTo");
pub(super) const MOVE_DESTINATION: El = el(0x0600, "MoveDestination");
pub(super) const PRIORITY: El = el(0x0700, "Priority");
pub(super) const COMMAND_DATA_SET_TYPE: El = el(0x0800, "CommandDataSetType");
pub(super) const STATUS: El = el(0x0900, "Status");
pub(super) const ERROR_COMMENT: El = el(0x0902, "ErrorComment");
pub(super) const AFFECTED_SOP_INSTANCE_UID: El = el(0x1000, "AffectedSOPInstanceUID");
pub(super) const REMAINING_SUB_OPERATIONS: El = el(0x1020, "NumberOfRemainingSuboperations");
pub(super) const COMPLETED_SUB_OPERATIONS: El = el(0x1021, "NumberOfCompletedSuboperations");
pub(super) const FAILED_SUB_OPERATIONS: El = el(0x1022, "NumberOfFailedSuboperations");
pub(super) const WARNING_SUB_OPERATIONS: El = el(0x1023, "NumberOfWarningSuboperations");
pub(super) const MOVE_ORIGINATOR_AE_TITLE: El = el(0x1030, "MoveOriginatorApplicationEntityTitle");
pub(super) const MOVE_ORIGINATOR_MESSAGE_ID: El = el(0x1031, "MoveOriginatorMessageID");

/// Collects element values; [`Writer::finish`] lays them out in ascending tag order.
#[derive(Default)]
pub(super) struct Writer {
    elements: BTreeMap<u16, Vec<u8>>,
}

impl Writer {
    pub(super) fn us(&mut self, el: El, value: u16) {
        self.elements
            .insert(el.element, value.to_le_bytes().to_vec());
    }

    /// UI: padded to even length with a trailing NUL.
    pub(super) fn uid(&mut self, el: El, value: &str) {
        self.padded(el, value, 0);
    }

    /// UI of a response, where an empty UID means "absent".
    pub(super) fn optional_uid(&mut self, el: El, value: &str) {
        if !value.is_empty() {
            self.uid(el, value);
        }
    }

    /// AE / LO: padded to even length with a trailing space.
    pub(super) fn text(&mut self, el: El, value: &str) {
        self.padded(el, value, b' ');
    }

    pub(super) fn error_comment(&mut self, comment: Option<&str>) {
        if let Some(comment) = comment {
            self.text(ERROR_COMMENT, comment);
        }
    }

    pub(super) fn sub_operations(&mut self, counts: &SubOperations) {
        for (el, count) in [
            (REMAINING_SUB_OPERATIONS, counts.remaining),
            (COMPLETED_SUB_OPERATIONS, counts.completed),
            (FAILED_SUB_OPERATIONS, counts.failed),
            (WARNING_SUB_OPERATIONS, counts.warning),
        ] {
            if let Some(count) = count {
                self.us(el, count);
            }
        }
    }

    fn padded(&mut self, el: El, value: &str, pad: u8) {
        let mut bytes = value.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        self.elements.insert(el.element, bytes);
    }

    /// # Panics
    /// If a value exceeds 4 GiB, which no command element can.
    pub(super) fn finish(self) -> Vec<u8> {
        let body: usize = self.elements.values().map(|value| 8 + value.len()).sum();
        let mut out = Vec::with_capacity(12 + body);
        put_element(
            &mut out,
            COMMAND_GROUP_LENGTH.element,
            &wire_len(body).to_le_bytes(),
        );
        for (element, value) in &self.elements {
            put_element(&mut out, *element, value);
        }
        out
    }
}

fn wire_len(len: usize) -> u32 {
    u32::try_from(len).expect("a command set element is smaller than 4 GiB")
}

fn put_element(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&wire_len(value.len()).to_le_bytes());
    out.extend_from_slice(value);
}

/// The elements of one command set, by element number, borrowed from the input.
pub(super) struct Reader<'a> {
    /// Command name for error messages, once the command field is known.
    pub(super) command: &'static str,
    elements: BTreeMap<u16, &'a [u8]>,
}

impl<'a> Reader<'a> {
    /// Splits the input into elements. Unknown group 0000 elements are kept (and then
    /// ignored); the group length, when present, is checked for size but not trusted.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Reader<'a>, CommandError> {
        if bytes.len() > MAX_COMMAND_SET_LEN {
            return Err(CommandError::TooLarge {
                len: bytes.len(),
                limit: MAX_COMMAND_SET_LEN,
            });
        }
        let mut elements = BTreeMap::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let offset = bytes.len() - rest.len();
            let Some((header, tail)) = rest.split_first_chunk::<8>() else {
                return Err(CommandError::Truncated {
                    offset,
                    available: rest.len(),
                });
            };
            let [g0, g1, e0, e1, l0, l1, l2, l3] = *header;
            let (group, element) = (u16::from_le_bytes([g0, g1]), u16::from_le_bytes([e0, e1]));
            let length = u32::from_le_bytes([l0, l1, l2, l3]);
            if group != 0 {
                return Err(CommandError::UnexpectedGroup { group, element });
            }
            let split = usize::try_from(length)
                .ok()
                .and_then(|len| tail.split_at_checked(len));
            let Some((value, tail)) = split else {
                let available = tail.len();
                return Err(CommandError::ElementOverrun {
                    element,
                    offset,
                    length,
                    available,
                });
            };
            if elements.insert(element, value).is_some() {
                return Err(CommandError::DuplicateElement { element });
            }
            rest = tail;
        }
        let reader = Reader {
            command: "DIMSE",
            elements,
        };
        if let Some(value) = reader.get(COMMAND_GROUP_LENGTH) {
            reader.exact::<4>(COMMAND_GROUP_LENGTH, value)?;
        }
        Ok(reader)
    }

    fn get(&self, el: El) -> Option<&'a [u8]> {
        self.elements.get(&el.element).copied()
    }

    pub(super) fn missing(&self, el: El) -> CommandError {
        CommandError::MissingElement {
            command: self.command,
            name: el.name,
            element: el.element,
        }
    }

    fn exact<const N: usize>(&self, el: El, value: &[u8]) -> Result<[u8; N], CommandError> {
        <[u8; N]>::try_from(value).map_err(|_| CommandError::WrongValueLength {
            name: el.name,
            element: el.element,
            expected: N,
            actual: value.len(),
        })
    }

    pub(super) fn us(&self, el: El) -> Result<Option<u16>, CommandError> {
        self.get(el)
            .map(|value| self.exact::<2>(el, value).map(u16::from_le_bytes))
            .transpose()
    }

    pub(super) fn required_us(&self, el: El) -> Result<u16, CommandError> {
        self.us(el)?.ok_or_else(|| self.missing(el))
    }

    pub(super) fn status(&self) -> Result<Status, CommandError> {
        self.required_us(STATUS).map(Status::from_code)
    }

    /// Priority is mandatory in requests, but its absence changes nothing we do, so a
    /// missing one reads as [`Priority::Medium`], like an unknown one.
    pub(super) fn priority(&self) -> Result<Priority, CommandError> {
        Ok(self
            .us(PRIORITY)?
            .map_or(Priority::Medium, Priority::from_code))
    }

    pub(super) fn uid(&self, el: El) -> Result<Option<String>, CommandError> {
        let Some(value) = self.get(el) else {
            return Ok(None);
        };
        if !value.is_ascii() {
            return Err(CommandError::NonAsciiUid {
                name: el.name,
                element: el.element,
            });
        }
        let text = String::from_utf8_lossy(value);
        Ok(Some(text.trim_end_matches(['\0', ' ']).to_owned()))
    }

    pub(super) fn required_uid(&self, el: El) -> Result<String, CommandError> {
        self.uid(el)?.ok_or_else(|| self.missing(el))
    }

    pub(super) fn optional_uid(&self, el: El) -> Result<String, CommandError> {
        Ok(self.uid(el)?.unwrap_or_default())
    }

    /// LO and other text: trailing padding removed.
    pub(super) fn text(&self, el: El) -> Option<String> {
        let value = self.get(el)?;
        Some(
            String::from_utf8_lossy(value)
                .trim_end_matches(['\0', ' '])
                .to_owned(),
        )
    }

    /// AE: leading spaces are insignificant too.
    pub(super) fn ae(&self, el: El) -> Option<String> {
        self.text(el)
            .map(|text| text.trim_start_matches(' ').to_owned())
    }

    pub(super) fn sub_operations(&self) -> Result<SubOperations, CommandError> {
        Ok(SubOperations {
            remaining: self.us(REMAINING_SUB_OPERATIONS)?,
            completed: self.us(COMPLETED_SUB_OPERATIONS)?,
            failed: self.us(FAILED_SUB_OPERATIONS)?,
            warning: self.us(WARNING_SUB_OPERATIONS)?,
        })
    }
}
