//! DIMSE command sets: typed C-service messages and their wire encoding.
//!
//! Owns the conversion between a command set's bytes (group 0000, implicit VR little
//! endian, PS3.7 §6.3 and §9.3) and a typed [`Message`]. It parses bytes only: no I/O,
//! no PDU framing (that is `dicom-ul`'s), no data sets, and no decisions about what a
//! message means for the gateway. The decoder treats its input as hostile network
//! data: it never panics and rejects command sets over [`MAX_COMMAND_SET_LEN`].

use crate::status::Status;

mod wire;

use wire::*;

/// The largest command set [`Message::decode`] accepts. Real C-service command sets
/// are a few hundred bytes; anything this large is not a DIMSE command.
pub const MAX_COMMAND_SET_LEN: usize = 64 * 1024;

/// Why a command set could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command set is {len} bytes, over the {limit}-byte limit; this is not a DIMSE command")]
    TooLarge { len: usize, limit: usize },
    #[error(
        "command set truncated: the element header at byte {offset} needs 8 bytes, {available} remain"
    )]
    Truncated { offset: usize, available: usize },
    #[error(
        "command element (0000,{element:04X}) at byte {offset} declares {length} value bytes, \
         but only {available} remain in the command set"
    )]
    ElementOverrun {
        element: u16,
        offset: usize,
        length: u32,
        available: usize,
    },
    #[error(
        "command set contains element ({group:04X},{element:04X}); a DIMSE command set holds group 0000 only"
    )]
    UnexpectedGroup { group: u16, element: u16 },
    #[error("command set contains element (0000,{element:04X}) more than once")]
    DuplicateElement { element: u16 },
    #[error("{command} command set lacks the required {name} (0000,{element:04X})")]
    MissingElement {
        command: &'static str,
        name: &'static str,
        element: u16,
    },
    #[error(
        "unknown DIMSE command field 0x{0:04X}; supported are C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE and C-CANCEL"
    )]
    UnknownCommandField(u16),
    #[error(
        "{name} (0000,{element:04X}) has a {actual}-byte value; it must be exactly {expected} bytes"
    )]
    WrongValueLength {
        name: &'static str,
        element: u16,
        expected: usize,
        actual: usize,
    },
    #[error("{name} (0000,{element:04X}) is not an ASCII UID")]
    NonAsciiUid { name: &'static str, element: u16 },
    #[error("{command} command set declares {}", mismatch_text(.data_set_present))]
    DataSetTypeMismatch {
        command: &'static str,
        data_set_present: bool,
    },
}

fn mismatch_text(data_set_present: &bool) -> &'static str {
    if *data_set_present {
        "that a data set follows, but this command never carries one"
    } else {
        "that no data set follows, but this command always carries one"
    }
}

/// Request priority (`Priority (0000,0700)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Wire value `0x0002`.
    Low,
    /// Wire value `0x0000`; also what any unknown value decodes to.
    #[default]
    Medium,
    /// Wire value `0x0001`.
    High,
}

impl Priority {
    /// The wire value.
    pub const fn code(self) -> u16 {
        match self {
            Priority::Low => 0x0002,
            Priority::Medium => 0x0000,
            Priority::High => 0x0001,
        }
    }

    /// The priority for a wire value; unknown values are [`Priority::Medium`].
    pub const fn from_code(code: u16) -> Priority {
        match code {
            0x0002 => Priority::Low,
            0x0001 => Priority::High,
            _ => Priority::Medium,
        }
    }
}

/// Sub-operation counters of C-GET / C-MOVE responses; absent ones are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubOperations {
    pub remaining: Option<u16>,
    pub completed: Option<u16>,
    pub failed: Option<u16>,
    pub warning: Option<u16>,
}

/// C-ECHO-RQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CEchoRq {
    pub message_id: u16,
    pub affected_sop_class_uid: String,
}

/// C-ECHO-RSP. An empty `affected_sop_class_uid` is not encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CEchoRsp {
    pub message_id_being_responded_to: u16,
    pub affected_sop_class_uid: String,
    pub status: Status,
}

/// C-STORE-RQ; a data set always follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CStoreRq {
    pub message_id: u16,
    pub affected_sop_class_uid: String,
    pub affected_sop_instance_uid: String,
    pub priority: Priority,
    /// Set when this store is a sub-operation of a C-MOVE.
    pub move_originator_ae_title: Option<String>,
    pub move_originator_message_id: Option<u16>,
}

/// C-STORE-RSP. Empty UIDs are not encoded, and absent ones decode as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CStoreRsp {
    pub message_id_being_responded_to: u16,
    pub affected_sop_class_uid: String,
    pub affected_sop_instance_uid: String,
    pub status: Status,
    pub error_comment: Option<String>,
}

/// C-FIND-RQ; an identifier data set always follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CFindRq {
    pub message_id: u16,
    pub affected_sop_class_uid: String,
    pub priority: Priority,
}

/// C-FIND-RSP; pending responses carry an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CFindRsp {
    pub message_id_being_responded_to: u16,
    pub affected_sop_class_uid: String,
    pub status: Status,
    pub has_identifier: bool,
    pub error_comment: Option<String>,
}

/// C-GET-RQ; an identifier data set always follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CGetRq {
    pub message_id: u16,
    pub affected_sop_class_uid: String,
    pub priority: Priority,
}

/// C-GET-RSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CGetRsp {
    pub message_id_being_responded_to: u16,
    pub affected_sop_class_uid: String,
    pub status: Status,
    pub sub_operations: SubOperations,
    pub has_identifier: bool,
    pub error_comment: Option<String>,
}

/// C-MOVE-RQ; an identifier data set always follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CMoveRq {
    pub message_id: u16,
    pub affected_sop_class_uid: String,
    pub priority: Priority,
    pub move_destination: String,
}

/// C-MOVE-RSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CMoveRsp {
    pub message_id_being_responded_to: u16,
    pub affected_sop_class_uid: String,
    pub status: Status,
    pub sub_operations: SubOperations,
    pub has_identifier: bool,
    pub error_comment: Option<String>,
}

/// C-CANCEL-RQ (for C-FIND, C-GET and C-MOVE alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CCancelRq {
    pub message_id_being_responded_to: u16,
}

/// One command's wire layout. Private: callers go through [`Message`].
trait Command: Sized {
    const FIELD: u16;
    const NAME: &'static str;
    /// `Some(x)` when the command always (`true`) or never (`false`) carries a data set.
    const FIXED_DATA_SET: Option<bool>;
    fn has_data_set(&self) -> bool {
        Self::FIXED_DATA_SET.unwrap_or(false)
    }
    fn message_id(&self) -> Option<u16> {
        None
    }
    fn responded_to(&self) -> Option<u16> {
        None
    }
    fn status(&self) -> Option<Status> {
        None
    }
    fn write(&self, w: &mut Writer);
    fn read(r: &Reader<'_>, data_set_present: bool) -> Result<Self, CommandError>;
}

/// Declares [`Message`] and its dispatch to each [`Command`] from one list.
macro_rules! messages {
    ($( $(#[$doc:meta])* $ty:ident, )*) => {
        /// Any supported DIMSE-C command.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $( $(#[$doc])* $ty($ty), )*
        }

        $( impl From<$ty> for Message {
            fn from(message: $ty) -> Message {
                Message::$ty(message)
            }
        } )*

        impl Message {
            /// Encodes the command set, group length first, elements in ascending order.
            pub fn encode(&self) -> Vec<u8> {
                match self { $( Message::$ty(m) => encode_command(m), )* }
            }

            /// Decodes a complete command set (all command PDV fragments joined).
            pub fn decode(bytes: &[u8]) -> Result<Message, CommandError> {
                let reader = Reader::parse(bytes)?;
                let field = reader.required_us(COMMAND_FIELD)?;
                $( if field == <$ty as Command>::FIELD {
                    return decode_command::<$ty>(reader).map(Message::$ty);
                } )*
                Err(CommandError::UnknownCommandField(field))
            }

            /// Whether a data set (or identifier) follows this command.
            pub fn has_data_set(&self) -> bool {
                match self { $( Message::$ty(m) => m.has_data_set(), )* }
            }

            /// The request's own `MessageID`; `None` for responses and C-CANCEL-RQ.
            pub fn message_id(&self) -> Option<u16> {
                match self { $( Message::$ty(m) => m.message_id(), )* }
            }

            /// `MessageIDBeingRespondedTo` of responses and C-CANCEL-RQ.
            pub fn message_id_being_responded_to(&self) -> Option<u16> {
                match self { $( Message::$ty(m) => m.responded_to(), )* }
            }

            /// The status of a response; `None` for requests.
            pub fn status(&self) -> Option<Status> {
                match self { $( Message::$ty(m) => m.status(), )* }
            }

            /// The command's standard name, e.g. `"C-STORE-RQ"`, for logs.
            pub fn name(&self) -> &'static str {
                match self { $( Message::$ty(_) => <$ty as Command>::NAME, )* }
            }
        }
    };
}

messages! {
    /// C-ECHO-RQ.
    CEchoRq,
    /// C-ECHO-RSP.
    CEchoRsp,
    /// C-STORE-RQ.
    CStoreRq,
    /// C-STORE-RSP.
    CStoreRsp,
    /// C-FIND-RQ.
    CFindRq,
    /// C-FIND-RSP.
    CFindRsp,
    /// C-GET-RQ.
    CGetRq,
    /// C-GET-RSP.
    CGetRsp,
    /// C-MOVE-RQ.
    CMoveRq,
    /// C-MOVE-RSP.
    CMoveRsp,
    /// C-CANCEL-RQ.
    CCancelRq,
}

fn encode_command<C: Command>(command: &C) -> Vec<u8> {
    let mut w = Writer::default();
    w.us(COMMAND_FIELD, C::FIELD);
    let data_set_type = if command.has_data_set() {
        DATA_SET_PRESENT
    } else {
        NO_DATA_SET
    };
    w.us(COMMAND_DATA_SET_TYPE, data_set_type);
    command.write(&mut w);
    w.finish()
}

fn decode_command<C: Command>(mut reader: Reader<'_>) -> Result<C, CommandError> {
    reader.command = C::NAME;
    let data_set_present = reader.required_us(COMMAND_DATA_SET_TYPE)? != NO_DATA_SET;
    match C::FIXED_DATA_SET {
        Some(fixed) if fixed != data_set_present => Err(CommandError::DataSetTypeMismatch {
            command: C::NAME,
            data_set_present,
        }),
        _ => C::read(&reader, data_set_present),
    }
}

impl Command for CEchoRq {
    const FIELD: u16 = 0x0030;
    const NAME: &'static str = "C-ECHO-RQ";
    const FIXED_DATA_SET: Option<bool> = Some(false);
    fn message_id(&self) -> Option<u16> {
        Some(self.message_id)
    }
    fn write(&self, w: &mut Writer) {
        w.us(MESSAGE_ID, self.message_id);
        w.uid(AFFECTED_SOP_CLASS_UID, &self.affected_sop_class_uid);
    }
    fn read(r: &Reader<'_>, _: bool) -> Result<Self, CommandError> {
        Ok(CEchoRq {
            message_id: r.required_us(MESSAGE_ID)?,
            affected_sop_class_uid: r.required_uid(AFFECTED_SOP_CLASS_UID)?,
        })
    }
}

impl Command for CEchoRsp {
    const FIELD: u16 = 0x8030;
    const NAME: &'static str = "C-ECHO-RSP";
    const FIXED_DATA_SET: Option<bool> = Some(false);
    fn responded_to(&self) -> Option<u16> {
        Some(self.message_id_being_responded_to)
    }
    fn status(&self) -> Option<Status> {
        Some(self.status)
    }
    fn write(&self, w: &mut Writer) {
        w.us(
            MESSAGE_ID_BEING_RESPONDED_TO,
            self.message_id_being_responded_to,
        );
        w.optional_uid(AFFECTED_SOP_CLASS_UID, &self.affected_sop_class_uid);
        w.us(STATUS, self.status.code());
    }
    fn read(r: &Reader<'_>, _: bool) -> Result<Self, CommandError> {
        Ok(CEchoRsp {
            message_id_being_responded_to: r.required_us(MESSAGE_ID_BEING_RESPONDED_TO)?,
            affected_sop_class_uid: r.optional_uid(AFFECTED_SOP_CLASS_UID)?,
            status: r.status()?,
        })
    }
}

impl Command for CStoreRq {
    const FIELD: u16 = 0x0001;
    const NAME: &'static str = "C-STORE-RQ";
    const FIXED_DATA_SET: Option<bool> = Some(true);
    fn message_id(&self) -> Option<u16> {
        Some(self.message_id)
    }
    fn write(&self, w: &mut Writer) {
        w.us(MESSAGE_ID, self.message_id);
        w.uid(AFFECTED_SOP_CLASS_UID, &self.affected_sop_class_uid);
        w.uid(AFFECTED_SOP_INSTANCE_UID, &self.affected_sop_instance_uid);
        w.us(PRIORITY, self.priority.code());
        if let Some(ae) = &self.move_originator_ae_title {
            w.text(MOVE_ORIGINATOR_AE_TITLE, ae);
        }
        if let Some(id) = self.move_originator_message_id {
            w.us(MOVE_ORIGINATOR_MESSAGE_ID, id);
        }
    }
    fn read(r: &Reader<'_>, _: bool) -> Result<Self, CommandError> {
        Ok(CStoreRq {
            message_id: r.required_us(MESSAGE_ID)?,
            affected_sop_class_uid: r.required_uid(AFFECTED_SOP_CLASS_UID)?,
            affected_sop_instance_uid: r.required_uid(AFFECTED_SOP_INSTANCE_UID)?,
            priority: r.priority()?,
            move_originator_ae_title: r.ae(MOVE_ORIGINATOR_AE_TITLE),
            move_originator_message_id: r.us(MOVE_ORIGINATOR_MESSAGE_ID)?,
        })
    }
}

impl Command for CStoreRsp {
    const FIELD: u16 = 0x8001;
    const NAME: &'static str = "C-STORE-RSP";
    const FIXED_DATA_SET: Option<bool> = Some(false);
    fn responded_to(&self) -> Option<u16> {
        Some(self.message_id_being_responded_to)
    }
    fn status(&self) -> Option<Status> {
        Some(self.status)
    }
    fn write(&self, w: &mut Writer) {
        w.us(
            MESSAGE_ID_BEING_RESPONDED_TO,
            self.message_id_being_responded_to,
        );
        w.optional_uid(AFFECTED_SOP_CLASS_UID, &self.affected_sop_class_uid);
        w.optional_uid(AFFECTED_SOP_INSTANCE_UID, &self.affected_sop_instance_uid);
        w.us(STATUS, self.status.code());
        w.error_comment(self.error_comment.as_deref());
    }
    fn read(r: &Reader<'_>, _: bool) -> Result<Self, CommandError> {
        Ok(CStoreRsp {
            message_id_being_responded_to: r.required_us(MESSAGE_ID_BEING_RESPONDED_TO)?,
            affected_sop_class_uid: r.optional_uid(AFFECTED_SOP_CLASS_UID)?,
            affected_sop_instance_uid: r.optional_uid(AFFECTED_SOP_INSTANCE_UID)?,
            status: r.status()?,
            error_comment: r.text(ERROR_COMMENT),
        })
    }
}

/// C-FIND-RQ, C-GET-RQ and C-MOVE-RQ share everything but the field and, for C-MOVE,
/// the destination.
macro_rules! query_request {
    ($ty:ident, $field:literal, $name:literal $(, $destination:ident)?) => {
        impl Command for $ty {
            const FIELD: u16 = $field;
            const NAME: &'static str = $name;
            const FIXED_DATA_SET: Option<bool> = Some(true);
            fn message_id(&self) -> Option<u16> {
                Some(self.message_id)
            }
            fn write(&self, w: &mut Writer) {
                w.us(MESSAGE_ID, self.message_id);
                w.uid(AFFECTED_SOP_CLASS_UID, &self.affected_sop_class_uid);
                w.us(PRIORITY, self.priority.code());
                $( w.text(MOVE_DESTINATION, &self.$destination); )?
            }
            fn read(r: &Reader<'_>, _: bool) -> Result<Self, CommandError> {
                Ok($ty {
                    message_id: r.required_us(MESSAGE_ID)?,
                    affected_sop_class_uid: r.required_uid(AFFECTED_SOP_CLASS_UID)?,
                    priority: r.priority()?,
                    $( $destination: r
                        .ae(MOVE_DESTINATION)
                        .ok_or_else(|| r.missing(MOVE_DESTINATION))?, )?
                })
            }
        }
    };
}

query_request!(CFindRq, 0x0020, "C-FIND-RQ");
query_request!(CGetRq, 0x0010, "C-GET-RQ");
query_request!(CMoveRq, 0x0021, "C-MOVE-RQ", move_destination);

/// C-FIND-RSP, C-GET-RSP and C-MOVE-RSP share everything but the field and, for C-GET
/// and C-MOVE, the sub-operation counters.
macro_rules! query_response {
    ($ty:ident, $field:literal, $name:literal $(, $sub:ident)?) => {
        impl Command for $ty {
            const FIELD: u16 = $field;
            const NAME: &'static str = $name;
            const FIXED_DATA_SET: Option<bool> = None;
            fn has_data_set(&self) -> bool {
                self.has_identifier
            }
            fn responded_to(&self) -> Option<u16> {
                Some(self.message_id_being_responded_to)
            }
            fn status(&self) -> Option<Status> {
                Some(self.status)
            }
            fn write(&self, w: &mut Writer) {
                w.us(MESSAGE_ID_BEING_RESPONDED_TO, self.message_id_being_responded_to);
                w.optional_uid(AFFECTED_SOP_CLASS_UID, &self.affected_sop_class_uid);
                w.us(STATUS, self.status.code());
                w.error_comment(self.error_comment.as_deref());
                $( w.$sub(&self.sub_operations); )?
            }
            fn read(r: &Reader<'_>, data_set_present: bool) -> Result<Self, CommandError> {
                Ok($ty {
                    message_id_being_responded_to: r.required_us(MESSAGE_ID_BEING_RESPONDED_TO)?,
                    affected_sop_class_uid: r.optional_uid(AFFECTED_SOP_CLASS_UID)?,
                    status: r.status()?,
                    $( $sub: r.sub_operations()?, )?
                    has_identifier: data_set_present,
                    error_comment: r.text(ERROR_COMMENT),
                })
            }
        }
    };
}

query_response!(CFindRsp, 0x8020, "C-FIND-RSP");
query_response!(CGetRsp, 0x8010, "C-GET-RSP", sub_operations);
query_response!(CMoveRsp, 0x8021, "C-MOVE-RSP", sub_operations);

impl Command for CCancelRq {
    const FIELD: u16 = 0x0FFF;
    const NAME: &'static str = "C-CANCEL-RQ";
    const FIXED_DATA_SET: Option<bool> = Some(false);
    fn responded_to(&self) -> Option<u16> {
        Some(self.message_id_being_responded_to)
    }
    fn write(&self, w: &mut Writer) {
        w.us(
            MESSAGE_ID_BEING_RESPONDED_TO,
            self.message_id_being_responded_to,
        );
    }
    fn read(r: &Reader<'_>, _: bool) -> Result<Self, CommandError> {
        Ok(CCancelRq {
            message_id_being_responded_to: r.required_us(MESSAGE_ID_BEING_RESPONDED_TO)?,
        })
    }
}

#[cfg(test)]
mod tests;
