//! DIMSE status codes (the `Status (0000,0900)` command element).
//!
//! Owns the mapping between the 16-bit wire code and a typed [`Status`], and the
//! classification of any code into a [`StatusClass`] by the rules of DICOM PS3.7
//! Annex C. Every `u16` maps to exactly one `Status` and back, so a status read from a
//! peer can always be forwarded unchanged. It decides nothing: which status to answer
//! with is the service's choice.

use std::fmt;

/// The broad meaning of a status code (PS3.7 C.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// `0x0000`.
    Success,
    /// `0x0001`, `0x0107`, `0x0116` and `0xB000..=0xBFFF`.
    Warning,
    /// Every code that is not in one of the other classes.
    Failure,
    /// `0xFE00`.
    Cancel,
    /// `0xFF00` and `0xFF01`.
    Pending,
}

impl StatusClass {
    /// The class of a raw status code.
    pub const fn of(code: u16) -> StatusClass {
        match code {
            0x0000 => StatusClass::Success,
            0xFF00 | 0xFF01 => StatusClass::Pending,
            0xFE00 => StatusClass::Cancel,
            0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusClass::Warning,
            _ => StatusClass::Failure,
        }
    }
}

impl fmt::Display for StatusClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatusClass::Success => "success",
            StatusClass::Warning => "warning",
            StatusClass::Failure => "failure",
            StatusClass::Cancel => "cancel",
            StatusClass::Pending => "pending",
        })
    }
}

/// Declares [`Status`] from one table so that the enum, both directions of the code
/// mapping and the texts cannot drift apart. A code listed twice fails to compile
/// (unreachable pattern under `-D warnings`).
macro_rules! statuses {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $text:literal; )*) => {
        /// A DIMSE status, named where PS3.4 / PS3.7 give the code one meaning.
        ///
        /// Build one from the wire with [`Status::from_code`]; it never yields
        /// [`Status::Other`] for a code that has a named variant. Constructing
        /// `Status::Other(code)` by hand with a named code gives a value that encodes
        /// correctly but compares unequal to the named variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Status {
            $( $(#[$doc])* $name, )*
            /// Any code without a named variant (including the ranges `0xA7xx`,
            /// `0xA9xx`, `0xBxxx` and `0xCxxx`, whose exact value is
            /// implementation-specific).
            Other(u16),
        }

        impl Status {
            /// The status for a wire code.
            pub const fn from_code(code: u16) -> Status {
                match code {
                    $( $code => Status::$name, )*
                    other => Status::Other(other),
                }
            }

            /// The wire code of this status.
            pub const fn code(self) -> u16 {
                match self {
                    $( Status::$name => $code, )*
                    Status::Other(code) => code,
                }
            }

            /// Every named variant, for tests.
            #[cfg(test)]
            const NAMED: &'static [Status] = &[$( Status::$name, )*];

            fn named_text(self) -> Option<&'static str> {
                match self {
                    $( Status::$name => Some($text), )*
                    Status::Other(_) => None,
                }
            }
        }
    };
}

statuses! {
    /// `0x0000`.
    Success = 0x0000, "Success";
    /// `0xFF00`: matches / sub-operations are continuing.
    Pending = 0xFF00, "Pending";
    /// `0xFF01`: C-FIND pending, but one or more optional keys were not supported.
    PendingWarning = 0xFF01, "Pending: optional keys not supported";
    /// `0xFE00`: terminated by a C-CANCEL.
    Cancel = 0xFE00, "Cancel: terminated due to cancel request";

    /// `0x0001`: requested optional attributes are not supported.
    OptionalAttributesNotSupported = 0x0001, "Warning: requested optional attributes are not supported";
    /// `0x0107`.
    AttributeListError = 0x0107, "Warning: attribute list error";
    /// `0x0116`.
    AttributeValueOutOfRange = 0x0116, "Warning: attribute value out of range";
    /// `0xB000`. Two meanings with one code: for C-STORE, "coercion of data
    /// elements"; for C-GET / C-MOVE, "sub-operations complete, one or more failures"
    /// (also reachable as [`Status::SUB_OPERATIONS_COMPLETE_WITH_FAILURES`]).
    CoercionOfDataElements = 0xB000, "Warning: coercion of data elements / sub-operations complete with one or more failures or warnings";
    /// `0xB006`: C-STORE, elements discarded.
    ElementsDiscarded = 0xB006, "Warning: elements discarded";
    /// `0xB007`: C-STORE, data set does not match SOP class.
    DataSetDoesNotMatchSopClassWarning = 0xB007, "Warning: data set does not match SOP class";

    /// `0x0105`.
    NoSuchAttribute = 0x0105, "Failure: no such attribute";
    /// `0x0106`.
    InvalidAttributeValue = 0x0106, "Failure: invalid attribute value";
    /// `0x0110`.
    ProcessingFailure = 0x0110, "Failure: processing failure";
    /// `0x0111`.
    DuplicateSopInstance = 0x0111, "Failure: duplicate SOP instance";
    /// `0x0112`.
    NoSuchSopInstance = 0x0112, "Failure: no such SOP instance";
    /// `0x0113`.
    NoSuchEventType = 0x0113, "Failure: no such event type";
    /// `0x0114`.
    NoSuchArgument = 0x0114, "Failure: no such argument";
    /// `0x0115`.
    InvalidArgumentValue = 0x0115, "Failure: invalid argument value";
    /// `0x0117`.
    InvalidObjectInstance = 0x0117, "Failure: invalid object instance";
    /// `0x0118`.
    NoSuchSopClass = 0x0118, "Failure: no such SOP class";
    /// `0x0119`.
    ClassInstanceConflict = 0x0119, "Failure: class-instance conflict";
    /// `0x0120`.
    MissingAttribute = 0x0120, "Failure: missing attribute";
    /// `0x0121`.
    MissingAttributeValue = 0x0121, "Failure: missing attribute value";
    /// `0x0122`.
    SopClassNotSupported = 0x0122, "Refused: SOP class not supported";
    /// `0x0123`.
    NoSuchAction = 0x0123, "Failure: no such action";
    /// `0x0124`.
    NotAuthorized = 0x0124, "Refused: not authorized";
    /// `0x0210`.
    DuplicateInvocation = 0x0210, "Failure: duplicate invocation";
    /// `0x0211`.
    UnrecognizedOperation = 0x0211, "Failure: unrecognized operation";
    /// `0x0212`.
    MistypedArgument = 0x0212, "Failure: mistyped argument";
    /// `0x0213`.
    ResourceLimitation = 0x0213, "Failure: resource limitation";
    /// `0xA700`: out of resources.
    OutOfResources = 0xA700, "Refused: out of resources";
    /// `0xA701`: C-GET / C-MOVE, out of resources, unable to calculate number of matches.
    OutOfResourcesMatches = 0xA701, "Refused: out of resources, unable to calculate number of matches";
    /// `0xA702`: C-GET / C-MOVE, out of resources, unable to perform sub-operations.
    OutOfResourcesSubOperations = 0xA702, "Refused: out of resources, unable to perform sub-operations";
    /// `0xA801`: C-MOVE, move destination unknown.
    MoveDestinationUnknown = 0xA801, "Refused: move destination unknown";
    /// `0xA900`. Two names for one code: for C-STORE, "data set does not match SOP
    /// class"; for C-FIND / C-GET / C-MOVE, "identifier does not match SOP class"
    /// (also reachable as [`Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS`]).
    DataSetDoesNotMatchSopClass = 0xA900, "Error: data set / identifier does not match SOP class";
    /// `0xC000`: C-STORE "cannot understand"; C-FIND / C-GET / C-MOVE "unable to
    /// process" (also [`Status::UNABLE_TO_PROCESS`]).
    CannotUnderstand = 0xC000, "Error: cannot understand / unable to process";
}

impl Status {
    /// C-GET / C-MOVE name for `0xB000`.
    pub const SUB_OPERATIONS_COMPLETE_WITH_FAILURES: Status = Status::CoercionOfDataElements;
    /// C-FIND / C-GET / C-MOVE name for `0xA900`.
    pub const IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS: Status = Status::DataSetDoesNotMatchSopClass;
    /// C-FIND / C-GET / C-MOVE name for `0xC000`.
    pub const UNABLE_TO_PROCESS: Status = Status::CannotUnderstand;

    /// The class of this status (PS3.7 Annex C).
    pub const fn class(&self) -> StatusClass {
        StatusClass::of(self.code())
    }

    /// `0x0000`.
    pub const fn is_success(&self) -> bool {
        matches!(self.class(), StatusClass::Success)
    }

    /// `0xFF00` or `0xFF01`: more responses follow.
    pub const fn is_pending(&self) -> bool {
        matches!(self.class(), StatusClass::Pending)
    }

    /// A warning: the operation completed, with a caveat.
    pub const fn is_warning(&self) -> bool {
        matches!(self.class(), StatusClass::Warning)
    }

    /// A failure (PS3.7 "Failure", "Refused" or "Error").
    pub const fn is_failure(&self) -> bool {
        matches!(self.class(), StatusClass::Failure)
    }

    /// Human text for this status, falling back to the meaning of its code range.
    pub fn description(&self) -> &'static str {
        if let Some(text) = self.named_text() {
            return text;
        }
        match (self.code(), self.class()) {
            (0xA700..=0xA7FF, _) => "Refused: out of resources",
            (0xA900..=0xA9FF, _) => "Error: data set / identifier does not match SOP class",
            (0xC000..=0xCFFF, _) => "Error: cannot understand / unable to process",
            (_, StatusClass::Warning) => "Warning: unrecognized status code",
            _ => "Failure: unrecognized status code",
        }
    }
}

impl From<u16> for Status {
    fn from(code: u16) -> Status {
        Status::from_code(code)
    }
}

impl From<Status> for u16 {
    fn from(status: Status) -> u16 {
        status.code()
    }
}

impl fmt::Display for Status {
    /// `0xA700 (Refused: out of resources)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X} ({})", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// PS3.7 C rules, written independently of `StatusClass::of`.
    fn expected_class(code: u16) -> StatusClass {
        if code == 0 {
            StatusClass::Success
        } else if code == 0xFF00 || code == 0xFF01 {
            StatusClass::Pending
        } else if code == 0xFE00 {
            StatusClass::Cancel
        } else if [0x0001, 0x0107, 0x0116].contains(&code) || code >> 12 == 0xB {
            StatusClass::Warning
        } else {
            StatusClass::Failure
        }
    }

    #[test]
    fn every_code_round_trips_and_named_codes_never_become_other() {
        let mut named = 0;
        for code in 0..=u16::MAX {
            let status = Status::from_code(code);
            assert_eq!(status.code(), code);
            if !matches!(status, Status::Other(_)) {
                named += 1;
            }
        }
        assert_eq!(named, Status::NAMED.len());
        for &status in Status::NAMED {
            assert_eq!(Status::from_code(status.code()), status);
            assert!(!matches!(status, Status::Other(_)));
            assert!(status.named_text().is_some());
        }
    }

    #[test]
    fn well_known_codes() {
        assert_eq!(Status::from_code(0x0000), Status::Success);
        assert_eq!(Status::from_code(0xFF00), Status::Pending);
        assert_eq!(Status::from_code(0xFF01), Status::PendingWarning);
        assert_eq!(Status::from_code(0xFE00), Status::Cancel);
        assert_eq!(
            Status::from_code(0xB000),
            Status::SUB_OPERATIONS_COMPLETE_WITH_FAILURES
        );
        assert_eq!(Status::from_code(0xA700), Status::OutOfResources);
        assert_eq!(Status::from_code(0xA801), Status::MoveDestinationUnknown);
        assert_eq!(
            Status::from_code(0xA900),
            Status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
        );
        assert_eq!(Status::from_code(0xC000), Status::UNABLE_TO_PROCESS);
        assert_eq!(Status::from_code(0x0122), Status::SopClassNotSupported);
        assert_eq!(Status::from_code(0xC123), Status::Other(0xC123));
        assert_eq!(Status::NotAuthorized.code(), 0x0124);
        assert_eq!(u16::from(Status::DuplicateSopInstance), 0x0111);
        assert_eq!(Status::from(0x0213), Status::ResourceLimitation);
    }

    #[test]
    fn classes_follow_ps3_7() {
        assert_eq!(Status::Success.class(), StatusClass::Success);
        assert!(Status::Pending.is_pending() && Status::PendingWarning.is_pending());
        assert_eq!(Status::Cancel.class(), StatusClass::Cancel);
        for warning in [0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007, 0xBFFF] {
            assert!(Status::from_code(warning).is_warning(), "{warning:#06X}");
        }
        for failure in [
            0x0110, 0x0122, 0x0211, 0xA700, 0xA7FF, 0xA900, 0xC000, 0xCFFF, 0x0002,
        ] {
            assert!(Status::from_code(failure).is_failure(), "{failure:#06X}");
        }
        assert!(!Status::Cancel.is_failure() && !Status::Cancel.is_success());
    }

    #[test]
    fn display_is_code_and_meaning() {
        assert_eq!(
            Status::OutOfResources.to_string(),
            "0xA700 (Refused: out of resources)"
        );
        assert_eq!(Status::Success.to_string(), "0x0000 (Success)");
        assert_eq!(
            Status::Other(0xA7FE).to_string(),
            "0xA7FE (Refused: out of resources)"
        );
        assert_eq!(
            Status::Other(0xC211).to_string(),
            "0xC211 (Error: cannot understand / unable to process)"
        );
        assert_eq!(
            Status::Other(0xB123).to_string(),
            "0xB123 (Warning: unrecognized status code)"
        );
        assert_eq!(
            Status::Other(0x0300).to_string(),
            "0x0300 (Failure: unrecognized status code)"
        );
    }

    proptest! {
        #[test]
        fn from_code_round_trips(code in any::<u16>()) {
            let status = Status::from_code(code);
            prop_assert_eq!(status.code(), code);
            prop_assert_eq!(Status::from_code(status.code()), status);
        }

        #[test]
        fn class_is_consistent(code in any::<u16>()) {
            let status = Status::from_code(code);
            let class = status.class();
            prop_assert_eq!(class, expected_class(code));
            prop_assert_eq!(status.is_success(), class == StatusClass::Success);
            prop_assert_eq!(status.is_pending(), class == StatusClass::Pending);
            prop_assert_eq!(status.is_warning(), class == StatusClass::Warning);
            prop_assert_eq!(status.is_failure(), class == StatusClass::Failure);
            let text = status.to_string();
            let prefix = format!("0x{code:04X} (");
            prop_assert!(text.starts_with(&prefix));
        }
    }
}
