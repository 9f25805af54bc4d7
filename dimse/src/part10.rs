//! The DICOM Part-10 file meta header (PS3.10 7.1): reading the few fields a sender
//! needs (SOP class and instance, transfer syntax, where the data set starts) and
//! writing a minimal header in front of a received data set.

/// What a sender needs from a file's meta header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Media Storage SOP Class UID (0002,0002).
    pub sop_class_uid: String,
    /// Media Storage SOP Instance UID (0002,0003).
    pub sop_instance_uid: String,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax: String,
    /// Byte offset of the data set (just after the meta group).
    pub dataset_offset: usize,
}

/// Why a meta header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// No "DICM" magic after the 128-byte preamble.
    #[error("not a DICOM Part-10 file (no DICM marker at offset 128)")]
    NotPart10,
    /// The header ends before its declared end.
    #[error("the file meta header is truncated")]
    Truncated,
    /// A required element is missing.
    #[error("the file meta header lacks {0}")]
    Missing(&'static str),
    /// A length or VR that makes no sense.
    #[error("the file meta header is malformed: {0}")]
    Malformed(&'static str),
}

const PREAMBLE: usize = 128;

fn le16(b: &[u8], at: usize) -> Result<u16, MetaError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(MetaError::Truncated)
}

fn le32(b: &[u8], at: usize) -> Result<u32, MetaError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(MetaError::Truncated)
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .trim_start()
        .to_string()
}

/// Parses the meta header at the start of `bytes` (which must hold all of it).
pub fn parse_meta(bytes: &[u8]) -> Result<FileMeta, MetaError> {
    if bytes.get(PREAMBLE..PREAMBLE + 4) != Some(b"DICM".as_slice()) {
        return Err(if bytes.len() < PREAMBLE + 4 {
            MetaError::Truncated
        } else {
            MetaError::NotPart10
        });
    }
    let mut at = PREAMBLE + 4;
    let (mut class, mut instance, mut ts) = (None, None, None);
    let mut end: Option<usize> = None;
    loop {
        if end.is_some_and(|e| at >= e) {
            break;
        }
        let Ok(group) = le16(bytes, at) else {
            if end.is_none() && at == bytes.len() {
                break;
            }
            return Err(MetaError::Truncated);
        };
        if group != 0x0002 {
            break;
        }
        let element = le16(bytes, at + 2)?;
        let vr = bytes.get(at + 4..at + 6).ok_or(MetaError::Truncated)?;
        let (len, header) = if matches!(vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR") {
            (le32(bytes, at + 8)? as usize, 12)
        } else {
            (usize::from(le16(bytes, at + 6)?), 8)
        };
        if len == 0xFFFF_FFFF {
            return Err(MetaError::Malformed("undefined length in the meta group"));
        }
        let value = bytes
            .get(at + header..at + header + len)
            .ok_or(MetaError::Truncated)?;
        match element {
            0x0000 => end = Some(at + header + len + le32(value, 0)? as usize),
            0x0002 => class = Some(text(value)),
            0x0003 => instance = Some(text(value)),
            0x0010 => ts = Some(text(value)),
            _ => {}
        }
        at += header + len;
    }
    let dataset_offset = end.unwrap_or(at);
    if dataset_offset > bytes.len() {
        return Err(MetaError::Truncated);
    }
    Ok(FileMeta {
        sop_class_uid: class.ok_or(MetaError::Missing("Media Storage SOP Class UID"))?,
        sop_instance_uid: instance.ok_or(MetaError::Missing("Media Storage SOP Instance UID"))?,
        transfer_syntax: ts.ok_or(MetaError::Missing("Transfer Syntax UID"))?,
        dataset_offset,
    })
}

fn push_element(out: &mut Vec<u8>, element: u16, vr: &[u8; 2], value: &[u8], pad: u8) {
    let padded = value.len() + value.len() % 2;
    out.extend_from_slice(&0x0002u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if vr == b"OB" {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(padded as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(padded as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    if value.len() % 2 == 1 {
        out.push(pad);
    }
}

/// Encodes a preamble and meta header for a data set received over the network.
/// Values longer than their VR allows are the caller's responsibility (UIDs are
/// validated before this is called).
pub fn encode_meta(
    sop_class: &str,
    sop_instance: &str,
    transfer_syntax: &str,
    source_ae: &str,
) -> Vec<u8> {
    let mut group = Vec::with_capacity(256);
    push_element(&mut group, 0x0001, b"OB", &[0, 1], 0);
    push_element(&mut group, 0x0002, b"UI", sop_class.as_bytes(), 0);
    push_element(&mut group, 0x0003, b"UI", sop_instance.as_bytes(), 0);
    push_element(&mut group, 0x0010, b"UI", transfer_syntax.as_bytes(), 0);
    push_element(
        &mut group,
        0x0012,
        b"UI",
        crate::assoc::IMPLEMENTATION_CLASS_UID.as_bytes(),
        0,
    );
    push_element(
        &mut group,
        0x0013,
        b"SH",
        crate::assoc::IMPLEMENTATION_VERSION.as_bytes(),
        b' ',
    );
    if !source_ae.is_empty() {
        push_element(&mut group, 0x0016, b"AE", source_ae.as_bytes(), b' ');
    }
    let mut out = vec![0u8; PREAMBLE];
    out.extend_from_slice(b"DICM");
    push_element(
        &mut out,
        0x0000,
        b"UL",
        &(group.len() as u32).to_le_bytes(),
        0,
    );
    out.extend_from_slice(&group);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse() {
        let mut bytes = encode_meta(
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.3.45",
            "1.2.840.10008.1.2.1",
            "CT1",
        );
        let offset = bytes.len();
        bytes.extend_from_slice(&[0x08, 0x00, 0x16, 0x00]);
        let meta = parse_meta(&bytes).unwrap();
        assert_eq!(meta.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(meta.sop_instance_uid, "1.2.3.45");
        assert_eq!(meta.transfer_syntax, "1.2.840.10008.1.2.1");
        assert_eq!(meta.dataset_offset, offset);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let bytes = encode_meta("1.2", "1.2.3", "1.2.840.10008.1.2", "");
        for cut in 0..bytes.len() {
            assert!(parse_meta(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut foreign = bytes.clone();
        foreign[128] = b'X';
        assert_eq!(parse_meta(&foreign), Err(MetaError::NotPart10));
    }
}
