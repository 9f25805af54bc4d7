//! Structural check of a received DICOM data set, and extraction of the few
//! top-level attributes the index needs.
//!
//! Owns: walking every element header of a data set (the bytes after the Part-10
//! meta header, in the negotiated transfer syntax) from the first byte to the last,
//! in one streaming pass. A data set passes only if it ends exactly after a whole
//! element, every defined length fits inside its parent, every sequence and item is
//! closed, tags ascend at each level and sequences nest at most [`MAX_DEPTH`] deep.
//! It also reports where the top-level Pixel Data element lies ([`PixelDataSpan`]),
//! so that the facility client can stream it from its spool file.
//!
//! Must not: read a value into memory unless it is one of the indexed top-level
//! attributes (and then at most [`VALUE_CAP`] bytes, on the stack), allocate from a
//! length read off the wire, panic on any input, validate UIDs, or decide policy
//! (whether de-identified or encrypted instances are accepted is the caller's call).
//!
//! Decisions where the standard leaves room:
//! - Odd value lengths are accepted (PS3.5 7.1.1 wants even ones): the length is
//!   still unambiguous, so the check stays exact, and some modalities get it wrong.
//! - An unknown explicit VR is rejected: its header layout cannot be known.
//! - Pixel Data (7FE0,0010) with undefined length is read as encapsulated fragments
//!   whatever its VR and transfer syntax; UN with undefined length holds Implicit VR
//!   Little Endian items (PS3.5 6.2.2); in Implicit VR, an element of defined length
//!   is a sequence when the standard dictionary says SQ, otherwise opaque bytes.
//! - Deflated data sets must end with the deflate stream's final block; one zero
//!   pad byte after it is tolerated (writers pad the stream to an even length).
//! - Text: (0008,0005) may be multi-valued; values dicom-encoding does not know make
//!   the text fall back to lossy UTF-8, otherwise the first value that is not the
//!   default repertoire decodes it (ISO 2022 escapes are not interpreted). A
//!   value that is empty after trimming is `None`.

use std::io::{self, BufRead, BufReader, Read};

use inflate::Inflate;

use dicom_encoding::Decode;

use crate::charset::{CharacterSet, Delimiters};
use dicom_encoding::decode::implicit_le::ImplicitVRLittleEndianDecoder;

/// Largest value read into memory: only indexed top-level attributes are read.
pub const VALUE_CAP: u32 = 4096;
/// Deepest sequence nesting accepted.
pub const MAX_DEPTH: u32 = 64;

type Tag = (u16, u16);

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
const ITEM: Tag = (0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = (0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = (0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = (0x7FE0, 0x0010);
/// Float Pixel Data, Double Float Pixel Data and Pixel Data all set `has_pixel_data`.
const PIXEL_TAGS: [Tag; 3] = [(0x7FE0, 0x0008), (0x7FE0, 0x0009), PIXEL_DATA];
const ENCRYPTED_ATTRIBUTES: Tag = (0x0400, 0x0500);
const ENCRYPTED_CONTENT: Tag = (0x0400, 0x0520);
/// Largest Encrypted Content kept (a sealed identity is a few KiB).
pub const ENCRYPTED_CONTENT_CAP: u32 = 256 * 1024;

const SPECIFIC_CHARACTER_SET: Tag = (0x0008, 0x0005);
const SOP_CLASS_UID: Tag = (0x0008, 0x0016);
const SOP_INSTANCE_UID: Tag = (0x0008, 0x0018);
const STUDY_DATE: Tag = (0x0008, 0x0020);
const STUDY_TIME: Tag = (0x0008, 0x0030);
const ACCESSION_NUMBER: Tag = (0x0008, 0x0050);
const MODALITY: Tag = (0x0008, 0x0060);
const STUDY_DESCRIPTION: Tag = (0x0008, 0x1030);
const SERIES_DESCRIPTION: Tag = (0x0008, 0x103E);
const PATIENT_NAME: Tag = (0x0010, 0x0010);
const PATIENT_ID: Tag = (0x0010, 0x0020);
const PATIENT_IDENTITY_REMOVED: Tag = (0x0012, 0x0062);
const STUDY_INSTANCE_UID: Tag = (0x0020, 0x000D);
const SERIES_INSTANCE_UID: Tag = (0x0020, 0x000E);
const SERIES_NUMBER: Tag = (0x0020, 0x0011);
const INSTANCE_NUMBER: Tag = (0x0020, 0x0013);
const NUMBER_OF_FRAMES: Tag = (0x0028, 0x0008);
/// Private creator of the block the facility client adds after de-identification.
const PRODUCT_CREATOR: Tag = (0x0013, 0x0010);
/// The name blind index in that block.
const NAME_BLIND_INDEX: Tag = (0x0013, 0x1010);
/// The name search tokens in that block (LO, multi-valued).
const NAME_TOKENS: Tag = (0x0013, 0x1012);
/// The identity summary envelope in that block.
const IDENTITY_SUMMARY: Tag = (0x0013, 0x1011);
/// Largest identity summary kept (the facility client makes them at most 16 KiB).
pub const IDENTITY_SUMMARY_CAP: u32 = 16 * 1024;
/// The private creator value that owns (0013,10xx).
pub const PRODUCT_PRIVATE_CREATOR: &str = "PACS GATEWAY 1";
#[rustfmt::skip]
const WANTED: [Tag; 20] = [
    SPECIFIC_CHARACTER_SET, SOP_CLASS_UID, SOP_INSTANCE_UID, STUDY_DATE, STUDY_TIME,
    ACCESSION_NUMBER, MODALITY, STUDY_DESCRIPTION, SERIES_DESCRIPTION, PATIENT_NAME,
    PATIENT_ID, PATIENT_IDENTITY_REMOVED, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID,
    SERIES_NUMBER, INSTANCE_NUMBER, NUMBER_OF_FRAMES, PRODUCT_CREATOR, NAME_BLIND_INDEX,
    NAME_TOKENS,
];

const KNOWN_VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];
/// VRs with two reserved bytes and a 4-byte length in explicit VR.
const LONG_VRS: [&[u8; 2]; 13] = [
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
];

/// Explicit VR Little Endian syntaxes besides 1.2.840.10008.1.2.1 itself: Encapsulated
/// Uncompressed, RLE, Deflated Image Frame, SMPTE ST 2110.
#[rustfmt::skip]
const EXPLICIT_LITTLE_UIDS: [&str; 7] = [
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.98", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.8.1", "1.2.840.10008.1.2.7.1", "1.2.840.10008.1.2.7.2",
    "1.2.840.10008.1.2.7.3",
];
/// Suffixes after `1.2.840.10008.1.2.4.`: JPEG, JPEG-LS, JPEG 2000, JPIP, MPEG/HEVC,
/// JPEG XL and HTJ2K, all Explicit VR Little Endian.
const JPEG_FAMILY_SUFFIXES: [&str; 48] = [
    "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64", "65",
    "66", "70", "80", "81", "90", "91", "92", "93", "94", "100", "100.1", "101", "101.1", "102",
    "102.1", "103", "103.1", "104", "104.1", "105", "105.1", "106", "106.1", "107", "108", "110",
    "111", "112", "201", "202", "203", "204",
];
/// Deflated Explicit VR Little Endian, JPIP Referenced Deflate, JPIP HTJ2K Referenced Deflate.
#[rustfmt::skip]
const DEFLATED_UIDS: [&str; 3] =
    ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"];

/// How the data set bytes are laid out, derived from the transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
    DeflatedExplicitLittle,
}

impl Encoding {
    /// The layout of a transfer syntax; `None` for one this gateway does not know,
    /// so that the caller refuses it. Trailing NUL and space padding is ignored.
    pub fn from_transfer_syntax(uid: &str) -> Option<Encoding> {
        let uid = uid.trim_end_matches(['\0', ' ']);
        let jpeg_family = uid
            .strip_prefix("1.2.840.10008.1.2.4.")
            .is_some_and(|suffix| JPEG_FAMILY_SUFFIXES.contains(&suffix));
        match uid {
            "1.2.840.10008.1.2" => Some(Encoding::ImplicitLittle),
            "1.2.840.10008.1.2.2" => Some(Encoding::ExplicitBig),
            _ if DEFLATED_UIDS.contains(&uid) => Some(Encoding::DeflatedExplicitLittle),
            _ if jpeg_family || EXPLICIT_LITTLE_UIDS.contains(&uid) => {
                Some(Encoding::ExplicitLittle)
            }
            _ => None,
        }
    }

    fn syntax(self) -> Syntax {
        match self {
            Encoding::ImplicitLittle => Syntax::IMPLICIT_LE,
            Encoding::ExplicitBig => Syntax::EXPLICIT_BE,
            _ => Syntax::EXPLICIT_LE,
        }
    }
}

/// The indexed top-level attributes of a data set. Text is trimmed; absent or
/// empty attributes are `None`. `Debug` leaves out the patient's name and ID.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Header {
    pub specific_character_set: Option<String>,
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub modality: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    pub number_of_frames: Option<i64>,
    /// (0012,0062) Patient Identity Removed is "YES".
    pub patient_identity_removed: bool,
    /// (0400,0500) Encrypted Attributes Sequence is present with at least one item.
    pub has_encrypted_attributes: bool,
    /// Pixel Data, Float Pixel Data or Double Float Pixel Data is present at top level.
    pub has_pixel_data: bool,
    /// Where the top-level Pixel Data (7FE0,0010) element lies in the data set, so
    /// that a sender can copy it from the file without reading it into memory.
    pub pixel_data: Option<PixelDataSpan>,
    /// Name blind index from the product's private block (0013,1010), only when the
    /// block's creator (0013,0010) is [`PRODUCT_PRIVATE_CREATOR`].
    pub name_blind_index: Option<String>,
    /// Name search tokens from the product's private block (0013,1012), same
    /// condition; empty when absent.
    pub name_tokens: Vec<String>,
    /// Private creator found at (0013,0010), to check the above.
    product_block: bool,
    /// Encrypted Content (0400,0520) of the first item of the top-level Encrypted
    /// Attributes Sequence (the sealed identity), if at most
    /// [`ENCRYPTED_CONTENT_CAP`] bytes.
    pub encrypted_content: Option<Vec<u8>>,
    /// The identity summary envelope (0013,1011) of the product's private block, if
    /// at most [`IDENTITY_SUMMARY_CAP`] bytes: what the gateway indexes and returns in
    /// C-FIND instead of the full record, however large that is.
    pub identity_summary: Option<Vec<u8>>,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("sop_class_uid", &self.sop_class_uid)
            .field("sop_instance_uid", &self.sop_instance_uid)
            .field("study_instance_uid", &self.study_instance_uid)
            .field("series_instance_uid", &self.series_instance_uid)
            .field("modality", &self.modality)
            .field("patient_identity_removed", &self.patient_identity_removed)
            .field("has_encrypted_attributes", &self.has_encrypted_attributes)
            .finish_non_exhaustive()
    }
}

/// The bytes of the top-level Pixel Data (7FE0,0010) element, header included: a
/// defined-length value, or encapsulated fragments up to and including the sequence
/// delimiter. Offsets count bytes of the (inflated) data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelDataSpan {
    /// Offset of the element's tag.
    pub start: u64,
    /// Offset just after its value (or its sequence delimiter).
    pub end: u64,
    /// Encapsulated (undefined length, fragments).
    pub encapsulated: bool,
    /// Every length in it (the value's, or each fragment's) is even, as PS3.5 7.1.1
    /// wants; an encoder would pad an odd one, so a copy would differ from a re-encoding.
    pub even: bool,
}

/// Why a data set was refused. Offsets count bytes of the (inflated) data set.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the data set is empty: no bytes were received")]
    Empty,
    #[error(
        "the data set is truncated: it ends at byte {offset} inside an element, \
         item or sequence; the sender must send the complete data set"
    )]
    Truncated { offset: u64 },
    #[error("the data set is malformed at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    #[error(
        "top-level attribute {} has a {len}-byte value, more than the \
         {VALUE_CAP} bytes the index accepts",
        tag_text(*.tag)
    )]
    ValueTooLong { tag: (u16, u16), len: u32 },
    #[error("cannot read the received data set")]
    Io(#[source] io::Error),
}

/// Check that `reader` holds one complete, well-formed data set in `encoding`, and
/// return its indexed top-level attributes. Reads the reader to its end.
#[tracing::instrument(level = "debug", skip_all, fields(?encoding), err(Display, level = "debug"))]
pub fn scan<R: Read>(reader: R, encoding: Encoding) -> Result<Header, ScanError> {
    if encoding != Encoding::DeflatedExplicitLittle {
        let mut scanner = Scanner::new(reader, false);
        scanner.walk(encoding.syntax())?;
        return Ok(scanner.found.header);
    }
    let mut input = BufReader::new(reader);
    if input.fill_buf().map_err(ScanError::Io)?.is_empty() {
        return Err(ScanError::Empty);
    }
    let mut scanner = Scanner::new(Inflate::new(input), true);
    scanner.walk(encoding.syntax())?;
    match scanner.reader.trailing().map_err(ScanError::Io)?.as_slice() {
        [] | [0] => Ok(scanner.found.header),
        _ => Err(malformed(
            scanner.offset,
            "bytes follow the end of the deflate stream",
        )),
    }
}

#[derive(Clone, Copy)]
struct Syntax {
    explicit: bool,
    big_endian: bool,
}

impl Syntax {
    const IMPLICIT_LE: Syntax = Syntax {
        explicit: false,
        big_endian: false,
    };
    const EXPLICIT_LE: Syntax = Syntax {
        explicit: true,
        big_endian: false,
    };
    const EXPLICIT_BE: Syntax = Syntax {
        explicit: true,
        big_endian: true,
    };

    fn u16(self, bytes: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        }
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }
}

/// One element, item or delimiter header; `start` is the offset of its tag.
struct Element {
    tag: Tag,
    vr: Option<[u8; 2]>,
    len: u32,
    start: u64,
}

#[derive(Default)]
struct Found {
    header: Header,
    charset: Option<CharacterSet>,
}

struct Scanner<R> {
    reader: R,
    offset: u64,
    deflated: bool,
    found: Found,
    /// Inside the top-level Encrypted Attributes Sequence.
    in_encrypted_attributes: bool,
    /// An odd fragment length was seen in the encapsulated pixel data being walked.
    odd_fragment: bool,
}

impl<R: Read> Scanner<R> {
    fn new(reader: R, deflated: bool) -> Self {
        Scanner {
            reader,
            offset: 0,
            deflated,
            found: Found::default(),
            in_encrypted_attributes: false,
            odd_fragment: false,
        }
    }

    /// Items of a sequence, noting whether it is the top-level Encrypted Attributes.
    fn sequence_of(
        &mut self,
        element: &Element,
        syntax: Syntax,
        end: Option<u64>,
        depth: u32,
    ) -> Result<usize, ScanError> {
        let encrypted = depth == 0 && element.tag == ENCRYPTED_ATTRIBUTES;
        self.in_encrypted_attributes |= encrypted;
        let items = self.sequence(syntax, end, depth + 1);
        if encrypted {
            self.in_encrypted_attributes = false;
        }
        items
    }

    /// Keeps the first Encrypted Content (0400,0520) of the sealed identity.
    fn read_encrypted_content(&mut self, element: &Element) -> Result<(), ScanError> {
        let mut value = vec![0u8; element.len as usize];
        self.read_exact(&mut value)?;
        self.found.header.encrypted_content = Some(value);
        Ok(())
    }

    fn walk(&mut self, syntax: Syntax) -> Result<(), ScanError> {
        self.top_level(syntax)?;
        if self.offset == 0 {
            return Err(ScanError::Empty);
        }
        tracing::debug!(bytes = self.offset, "data set is well-formed");
        Ok(())
    }

    fn top_level(&mut self, syntax: Syntax) -> Result<(), ScanError> {
        let mut previous = None;
        loop {
            let start = self.offset;
            let element = match self.read_header(syntax) {
                Ok(Some(element)) => element,
                Ok(None) => return Ok(()),
                // A reader reporting UnexpectedEof at a boundary is a truncation.
                Err(ScanError::Truncated { offset }) if offset > start => {
                    let reason = format!(
                        "the last {} bytes do not form a whole element header",
                        offset - start
                    );
                    return Err(malformed(start, reason));
                }
                Err(other) => return Err(other),
            };
            if element.tag.0 == 0x0002 {
                let reason = "file meta information (group 0002) inside the data set";
                return Err(malformed(start, reason));
            }
            check_order(&mut previous, &element)?;
            if PIXEL_TAGS.contains(&element.tag) {
                self.found.header.has_pixel_data = true;
            }
            self.odd_fragment = false;
            self.element(&element, syntax, 0)?;
            if element.tag == PIXEL_DATA {
                let encapsulated = element.len == UNDEFINED_LENGTH;
                self.found.header.pixel_data = Some(PixelDataSpan {
                    start: element.start,
                    end: self.offset,
                    encapsulated,
                    even: !self.odd_fragment && (encapsulated || element.len % 2 == 0),
                });
            }
        }
    }

    /// The elements of an item, up to `end` or, if undefined, its item delimiter.
    fn item(&mut self, syntax: Syntax, end: Option<u64>, depth: u32) -> Result<(), ScanError> {
        let mut previous = None;
        while !self.at_end(end)? {
            let element = self.nested_header(syntax)?;
            if element.tag == ITEM_DELIMITER && end.is_none() {
                if element.len != 0 {
                    return Err(malformed(
                        element.start,
                        "item delimiter with a non-zero length",
                    ));
                }
                return Ok(());
            }
            check_order(&mut previous, &element)?;
            if element.len != UNDEFINED_LENGTH {
                self.bounded_end(&element, end)?;
            }
            self.element(&element, syntax, depth)?;
        }
        Ok(())
    }

    /// The value of one element whose header was just read; `depth` is its level.
    fn element(&mut self, element: &Element, syntax: Syntax, depth: u32) -> Result<(), ScanError> {
        if element.len == UNDEFINED_LENGTH {
            return self.undefined_length(element, syntax, depth);
        }
        let vr = match element.vr {
            Some(vr) => Some(vr),
            None => dictionary_vr(element.tag),
        };
        let is_sequence = vr.is_some_and(|vr| &vr == b"SQ");
        if let Some(vr) = vr
            && let Some(unit) = unit_size(vr)
            && !element.len.is_multiple_of(unit)
        {
            // A parser reads whole numbers and would lose its place after this one.
            let reason = format!(
                "element {} ({}) has length {}, not a multiple of {unit}",
                tag_text(element.tag),
                String::from_utf8_lossy(&vr),
                element.len
            );
            return Err(malformed(element.start, reason));
        }
        if is_sequence {
            let end = self.offset + u64::from(element.len);
            let items = self.sequence_of(element, syntax, Some(end), depth)?;
            self.note_sequence(element.tag, depth, items);
            return Ok(());
        }
        if depth == 0 && WANTED.contains(&element.tag) {
            return self.read_wanted(element);
        }
        if depth == 0
            && element.tag == IDENTITY_SUMMARY
            && self.found.header.product_block
            && element.len <= IDENTITY_SUMMARY_CAP
        {
            let mut value = vec![0; element.len as usize];
            self.read_exact(&mut value)?;
            self.found.header.identity_summary = Some(value);
            return Ok(());
        }
        if depth == 1
            && self.in_encrypted_attributes
            && element.tag == ENCRYPTED_CONTENT
            && element.len <= ENCRYPTED_CONTENT_CAP
            && self.found.header.encrypted_content.is_none()
        {
            return self.read_encrypted_content(element);
        }
        if depth == 0 && element.tag == ENCRYPTED_ATTRIBUTES {
            // Opaque (explicit UN of defined length): any content is at least one item.
            self.found.header.has_encrypted_attributes = element.len > 0;
        }
        self.skip(u64::from(element.len))
    }

    fn undefined_length(
        &mut self,
        element: &Element,
        syntax: Syntax,
        depth: u32,
    ) -> Result<(), ScanError> {
        if element.tag == PIXEL_DATA {
            return self.fragments(syntax);
        }
        let contents = match element.vr.as_ref() {
            None | Some(b"SQ") => syntax,
            Some(b"UN") => Syntax::IMPLICIT_LE,
            Some(vr) => {
                let reason = format!(
                    "{} has VR {} with undefined length; only SQ, UN and Pixel Data may",
                    tag_text(element.tag),
                    vr.escape_ascii()
                );
                return Err(malformed(element.start, reason));
            }
        };
        let items = self.sequence_of(element, contents, None, depth)?;
        self.note_sequence(element.tag, depth, items);
        Ok(())
    }

    /// Items up to `end` or, if undefined, the sequence delimiter; returns their count.
    fn sequence(
        &mut self,
        syntax: Syntax,
        end: Option<u64>,
        depth: u32,
    ) -> Result<usize, ScanError> {
        if depth > MAX_DEPTH {
            let reason = format!("sequences are nested more than {MAX_DEPTH} deep");
            return Err(malformed(self.offset, reason));
        }
        let mut items = 0;
        while !self.at_end(end)? {
            let item = self.nested_header(syntax)?;
            match (item.tag, item.len) {
                (ITEM, UNDEFINED_LENGTH) => self.item(syntax, None, depth)?,
                (ITEM, _) => {
                    let item_end = self.bounded_end(&item, end)?;
                    self.item(syntax, Some(item_end), depth)?;
                }
                (SEQUENCE_DELIMITER, 0) if end.is_none() => return Ok(items),
                (tag, _) => {
                    let reason = format!("expected an item in a sequence, found {}", describe(tag));
                    return Err(malformed(item.start, reason));
                }
            }
            items += 1;
        }
        Ok(items)
    }

    /// Encapsulated pixel data: defined-length fragments up to a sequence delimiter.
    fn fragments(&mut self, syntax: Syntax) -> Result<(), ScanError> {
        loop {
            let fragment = self.nested_header(syntax)?;
            match (fragment.tag, fragment.len) {
                (SEQUENCE_DELIMITER, 0) => return Ok(()),
                (ITEM, UNDEFINED_LENGTH) => {
                    let reason = "pixel data fragment with undefined length";
                    return Err(malformed(fragment.start, reason));
                }
                (ITEM, len) => {
                    self.odd_fragment |= len % 2 == 1;
                    self.skip(u64::from(len))?
                }
                (tag, _) => {
                    let reason = format!("expected a pixel data fragment, found {}", describe(tag));
                    return Err(malformed(fragment.start, reason));
                }
            }
        }
    }

    fn note_sequence(&mut self, tag: Tag, depth: u32, items: usize) {
        if depth == 0 && tag == ENCRYPTED_ATTRIBUTES {
            self.found.header.has_encrypted_attributes = items > 0;
        }
    }

    fn read_wanted(&mut self, element: &Element) -> Result<(), ScanError> {
        if element.len > VALUE_CAP {
            return Err(ScanError::ValueTooLong {
                tag: element.tag,
                len: element.len,
            });
        }
        let mut buffer = [0u8; VALUE_CAP as usize];
        let value = &mut buffer[..element.len as usize];
        self.read_exact(value)?;
        self.found.store(element.tag, value);
        Ok(())
    }

    /// Whether a level with this `end` is complete; an overrun is malformed.
    fn at_end(&self, end: Option<u64>) -> Result<bool, ScanError> {
        match end {
            Some(end) if self.offset > end => Err(malformed(
                end,
                "an element runs past the end of its item or sequence",
            )),
            Some(end) => Ok(self.offset == end),
            None => Ok(false),
        }
    }

    /// End of a defined-length value, which must fit in the enclosing `end`.
    fn bounded_end(&self, element: &Element, end: Option<u64>) -> Result<u64, ScanError> {
        let value_end = self.offset + u64::from(element.len);
        if end.is_some_and(|end| value_end > end) {
            let reason = format!(
                "{} has length {} which runs past the end of its item or sequence",
                describe(element.tag),
                element.len
            );
            return Err(malformed(element.start, reason));
        }
        Ok(value_end)
    }

    /// A header inside a sequence or item, where the data must not end.
    fn nested_header(&mut self, syntax: Syntax) -> Result<Element, ScanError> {
        self.read_header(syntax)?.ok_or_else(|| self.truncated())
    }

    /// The next header, or `None` if the data ends cleanly before it.
    fn read_header(&mut self, syntax: Syntax) -> Result<Option<Element>, ScanError> {
        let start = self.offset;
        let mut tag = [0u8; 4];
        match self.read_full(&mut tag)? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(self.truncated()),
        }
        let tag = (syntax.u16([tag[0], tag[1]]), syntax.u16([tag[2], tag[3]]));
        let (vr, len) = if syntax.explicit && tag.0 != 0xFFFE {
            self.read_vr_and_length(syntax)?
        } else {
            (None, self.read_u32(syntax)?)
        };
        Ok(Some(Element {
            tag,
            vr,
            len,
            start,
        }))
    }

    fn read_vr_and_length(&mut self, syntax: Syntax) -> Result<(Option<[u8; 2]>, u32), ScanError> {
        let mut vr = [0u8; 2];
        self.read_exact(&mut vr)?;
        if !KNOWN_VRS.contains(&&vr) {
            let reason = format!("unknown value representation \"{}\"", vr.escape_ascii());
            return Err(malformed(self.offset - 2, reason));
        }
        if LONG_VRS.contains(&&vr) {
            self.skip(2)?;
            return Ok((Some(vr), self.read_u32(syntax)?));
        }
        let mut len = [0u8; 2];
        self.read_exact(&mut len)?;
        Ok((Some(vr), u32::from(syntax.u16(len))))
    }

    fn read_u32(&mut self, syntax: Syntax) -> Result<u32, ScanError> {
        let mut bytes = [0u8; 4];
        self.read_exact(&mut bytes)?;
        Ok(syntax.u32(bytes))
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<(), ScanError> {
        if self.read_full(buffer)? < buffer.len() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Discard `len` bytes through a fixed scratch buffer.
    fn skip(&mut self, mut len: u64) -> Result<(), ScanError> {
        let mut scratch = [0u8; 16 * 1024];
        while len > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(len).unwrap_or(usize::MAX));
            self.read_exact(&mut scratch[..want])?;
            len -= want as u64;
        }
        Ok(())
    }

    /// Fill `buffer` unless the data ends first; returns the bytes read.
    fn read_full(&mut self, buffer: &mut [u8]) -> Result<usize, ScanError> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    let n = n.min(buffer.len() - filled);
                    filled += n;
                    self.offset += n as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.read_error(error)),
            }
        }
        Ok(filled)
    }

    fn truncated(&self) -> ScanError {
        ScanError::Truncated {
            offset: self.offset,
        }
    }

    fn read_error(&self, error: io::Error) -> ScanError {
        match error.kind() {
            io::ErrorKind::UnexpectedEof => self.truncated(),
            io::ErrorKind::InvalidData if self.deflated => malformed(
                self.offset,
                format!("the deflate stream is corrupt: {error}"),
            ),
            _ => ScanError::Io(error),
        }
    }
}

impl Found {
    fn store(&mut self, tag: Tag, raw: &[u8]) {
        if tag == SPECIFIC_CHARACTER_SET {
            self.header.specific_character_set = trim_text(&String::from_utf8_lossy(raw));
            self.charset = self
                .header
                .specific_character_set
                .as_deref()
                .and_then(charset_for);
            return;
        }
        let header = &mut self.header;
        let ascii = || trim_text(&String::from_utf8_lossy(raw));
        let uid = || non_empty(String::from_utf8_lossy(raw).trim_end_matches([' ', '\0']));
        let text = || decode_text(self.charset.as_ref(), raw, Delimiters::Text);
        match tag {
            SOP_CLASS_UID => header.sop_class_uid = uid(),
            SOP_INSTANCE_UID => header.sop_instance_uid = uid(),
            STUDY_INSTANCE_UID => header.study_instance_uid = uid(),
            SERIES_INSTANCE_UID => header.series_instance_uid = uid(),
            STUDY_DATE => header.study_date = ascii(),
            STUDY_TIME => header.study_time = ascii(),
            MODALITY => header.modality = ascii(),
            PATIENT_IDENTITY_REMOVED => {
                header.patient_identity_removed = ascii().as_deref() == Some("YES");
            }
            PATIENT_ID => header.patient_id = text(),
            PATIENT_NAME => {
                header.patient_name =
                    decode_text(self.charset.as_ref(), raw, Delimiters::PersonName);
            }
            ACCESSION_NUMBER => header.accession_number = text(),
            STUDY_DESCRIPTION => header.study_description = text(),
            SERIES_DESCRIPTION => header.series_description = text(),
            SERIES_NUMBER => header.series_number = ascii().and_then(|v| v.parse().ok()),
            INSTANCE_NUMBER => header.instance_number = ascii().and_then(|v| v.parse().ok()),
            NUMBER_OF_FRAMES => header.number_of_frames = ascii().and_then(|v| v.parse().ok()),
            PRODUCT_CREATOR => {
                header.product_block = ascii().as_deref() == Some(PRODUCT_PRIVATE_CREATOR)
            }
            NAME_BLIND_INDEX if header.product_block => header.name_blind_index = ascii(),
            NAME_TOKENS if header.product_block => {
                header.name_tokens = String::from_utf8_lossy(raw)
                    .split('\\')
                    .map(|t| t.trim_matches([' ', '\0']))
                    .filter(|t| !t.is_empty() && t.len() <= 64)
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
}

/// The character set decoding text under this (0008,0005) value; see the module doc.
fn charset_for(value: &str) -> Option<CharacterSet> {
    CharacterSet::from_specific_character_set(value).ok()
}

fn decode_text(
    charset: Option<&CharacterSet>,
    raw: &[u8],
    delimiters: Delimiters,
) -> Option<String> {
    let decoded = match charset {
        Some(charset) => charset.decode(raw, delimiters),
        None => String::from_utf8_lossy(raw).into_owned(),
    };
    trim_text(&decoded)
}

fn trim_text(text: &str) -> Option<String> {
    non_empty(text.trim_end_matches([' ', '\0']).trim_start_matches(' '))
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The VR the standard dictionary gives `tag` (its first, when it gives several).
/// `dicom-core` (which names the `DataDictionary` trait) is not a dependency, so ask
/// the implicit VR decoder, which resolves VRs through the standard dictionary.
fn dictionary_vr(tag: Tag) -> Option<[u8; 2]> {
    let mut bytes = [0u8; 8];
    bytes[..2].copy_from_slice(&tag.0.to_le_bytes());
    bytes[2..4].copy_from_slice(&tag.1.to_le_bytes());
    let (header, _) = ImplicitVRLittleEndianDecoder::with_std_dict()
        .decode_header(&mut &bytes[..])
        .ok()?;
    header.vr.to_string().as_bytes().try_into().ok()
}

/// The size of one value of a binary VR whose values have a fixed size: a length
/// that is not a multiple of it cannot be read value by value (PS3.5 6.2).
fn unit_size(vr: [u8; 2]) -> Option<u32> {
    match &vr {
        b"SS" | b"US" | b"OW" => Some(2),
        b"SL" | b"UL" | b"FL" | b"AT" | b"OF" | b"OL" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        _ => None,
    }
}

/// Tags ascend within a level; items and delimiters are handled by the caller.
fn check_order(previous: &mut Option<Tag>, element: &Element) -> Result<(), ScanError> {
    if element.tag.0 == 0xFFFE {
        let reason = format!("{} is not allowed here", describe(element.tag));
        return Err(malformed(element.start, reason));
    }
    if let Some(before) = *previous
        && element.tag <= before
    {
        let reason = format!(
            "element {} follows {}: tags must ascend without repeats",
            tag_text(element.tag),
            tag_text(before)
        );
        return Err(malformed(element.start, reason));
    }
    *previous = Some(element.tag);
    Ok(())
}

fn describe(tag: Tag) -> String {
    match tag {
        ITEM => "an item (FFFE,E000)".to_owned(),
        ITEM_DELIMITER => "an item delimiter (FFFE,E00D)".to_owned(),
        SEQUENCE_DELIMITER => "a sequence delimiter (FFFE,E0DD)".to_owned(),
        _ => format!("element {}", tag_text(tag)),
    }
}

fn tag_text(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}

fn malformed(offset: u64, reason: impl Into<String>) -> ScanError {
    ScanError::Malformed {
        offset,
        reason: reason.into(),
    }
}

mod inflate;
#[cfg(test)]
mod tests;
