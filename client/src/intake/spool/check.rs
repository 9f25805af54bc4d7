//! What the edge requires of a received data set before it answers success: exactly
//! what the gateway would refuse whatever the client does, and nothing the client
//! replaces anyway. The SOP Class UID is forwarded as it is, so it must be present,
//! valid and the one of the C-STORE request; the SOP Instance UID must be the
//! request's; the Study and Series Instance UIDs must be present (the gateway indexes
//! them) and usable in a file name, while their form (a leading zero, an empty
//! component) does not matter, as the client replaces them.
//!
//! Each refusal's comment names the attribute and the reason within the 64
//! characters of an Error Comment, so that the modality's log says what to fix.

use dimse::Status;
use dimse::scan::Header;
use dimse::scp::StoreOutcome;

use crate::uid::{usable_uid, valid_uid};

/// Checks `header` against the C-STORE request (`sop_class`, `sop_instance`);
/// returns the Study Instance UID (trimmed) to spool under.
pub(super) fn check(
    header: &Header,
    sop_class: &str,
    sop_instance: &str,
) -> Result<String, StoreOutcome> {
    let refuse = |status: Status, comment: &str| Err(StoreOutcome::with(status, comment));
    match value(&header.sop_class_uid) {
        None => {
            return refuse(
                Status::CannotUnderstand,
                "SOP Class UID (0008,0016) missing",
            );
        }
        Some(class) if !valid_uid(class) => {
            return refuse(
                Status::CannotUnderstand,
                "SOP Class UID (0008,0016) is not a valid UID",
            );
        }
        Some(class) if class != sop_class => {
            return refuse(
                Status::DataSetDoesNotMatchSopClass,
                "SOP Class UID (0008,0016) differs from the C-STORE's",
            );
        }
        Some(_) => {}
    }
    match value(&header.sop_instance_uid) {
        None => {
            return refuse(
                Status::CannotUnderstand,
                "SOP Instance UID (0008,0018) missing",
            );
        }
        Some(instance) if instance != sop_instance => {
            return refuse(
                Status::CannotUnderstand,
                "SOP Instance UID (0008,0018) differs from the C-STORE's",
            );
        }
        Some(_) => {}
    }
    let study = match value(&header.study_instance_uid) {
        None => {
            return refuse(
                Status::CannotUnderstand,
                "Study Instance UID (0020,000D) missing",
            );
        }
        Some(study) if !usable_uid(study) => {
            return refuse(
                Status::CannotUnderstand,
                "Study Instance UID (0020,000D): not 1-64 digits and dots",
            );
        }
        Some(study) => study.to_string(),
    };
    if value(&header.series_instance_uid).is_none() {
        return refuse(
            Status::CannotUnderstand,
            "Series Instance UID (0020,000E) missing",
        );
    }
    Ok(study)
}

/// A UID value without its padding (NUL or space, whichever the sender used);
/// `None` when absent or empty.
fn value(v: &Option<String>) -> Option<&str> {
    v.as_deref()
        .map(|s| s.trim_matches(['\0', ' ']))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    fn header(class: Option<&str>, instance: Option<&str>, study: Option<&str>) -> Header {
        let mut h = Header::default();
        h.sop_class_uid = class.map(String::from);
        h.sop_instance_uid = instance.map(String::from);
        h.study_instance_uid = study.map(String::from);
        h.series_instance_uid = Some("1.2.3.4".into());
        h
    }

    fn comment(r: Result<String, StoreOutcome>) -> (Status, String) {
        let o = r.unwrap_err();
        (o.status, o.comment.unwrap_or_default())
    }

    #[test]
    fn what_the_client_replaces_is_tolerated() {
        let h = header(Some(CT), Some("1.2.05.7"), Some("1.2.040.9 "));
        assert_eq!(check(&h, CT, "1.2.05.7").unwrap(), "1.2.040.9");
    }

    #[test]
    fn what_the_gateway_would_refuse_is_refused_with_a_short_reason() {
        let cases = [
            (
                header(None, Some("1.2"), Some("1.3")),
                "SOP Class UID (0008,0016) missing",
            ),
            (
                header(Some("1.2.840.10008.5.1.4.1.1.02"), Some("1.2"), Some("1.3")),
                "SOP Class UID (0008,0016) is not a valid UID",
            ),
            (
                header(Some("1.2.840.10008.5.1.4.1.1.4"), Some("1.2"), Some("1.3")),
                "SOP Class UID (0008,0016) differs from the C-STORE's",
            ),
            (
                header(Some(CT), Some("1.9"), Some("1.3")),
                "SOP Instance UID (0008,0018) differs from the C-STORE's",
            ),
            (
                header(Some(CT), Some("1.2"), None),
                "Study Instance UID (0020,000D) missing",
            ),
            (
                header(Some(CT), Some("1.2"), Some("../x")),
                "Study Instance UID (0020,000D): not 1-64 digits and dots",
            ),
        ];
        for (h, said) in cases {
            let (status, got) = comment(check(&h, CT, "1.2"));
            assert_eq!(got, said);
            assert!(got.len() <= 64, "{got}");
            assert!(!status.is_success());
        }
        let mut h = header(Some(CT), Some("1.2"), Some("1.3"));
        h.series_instance_uid = None;
        assert_eq!(
            comment(check(&h, CT, "1.2")).1,
            "Series Instance UID (0020,000E) missing"
        );
    }
}
