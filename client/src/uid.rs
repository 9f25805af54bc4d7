//! UID checks shared by every side: what an original UID must look like to be taken
//! in or named on the command line ([`usable_uid`]), and a valid DICOM UID
//! ([`valid_uid`]).

/// Whether an original UID can be taken in: the client replaces every UID before
/// forwarding, so only what the spool's file names need is checked: 1 to 64 digits
/// and dots, starting with a digit. The rules of PS3.5 9.1 that the pseudonymous UIDs
/// follow (no leading zero, no empty component) are not required of originals, as
/// storescp and Orthanc do not require them.
pub fn usable_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.starts_with(|c: char| c.is_ascii_digit())
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Whether `uid` is a valid DICOM UID (digits and dots, no empty component, no
/// leading zero, at most 64 characters).
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c.len() == 1 || !c.starts_with('0'))
        })
}
