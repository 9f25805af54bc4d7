//! Decoding text under every Specific Character Set (0008,0005) of PS3.3 C.12.1.1.2:
//! the single-byte sets, the multi-byte sets without code extensions (ISO_IR 192,
//! GB18030, GBK) and the ISO 2022 code extension technique of PS3.5 6.1.2.5 (escape
//! sequences switching G0 and G1 between ASCII, JIS X 0201, JIS X 0208, JIS X 0212,
//! KS X 1001, GB 2312 and the ISO 8859 upper halves).
//!
//! The byte-level tables come from `encoding_rs` (the WHATWG encodings: EUC-JP for
//! JIS X 0208/0212, EUC-KR for KS X 1001, GBK for GB 2312, GB18030, the ISO 8859
//! parts, windows-874 for TIS 620); this module does the switching: which set is
//! designated where, and when a delimiter resets to the initial state (PS3.5
//! 6.1.2.5.3: before `\`, CR, LF, FF, TAB and, in person names, `^` and `=`).
//! Undecodable bytes become U+FFFD; decoding never fails and never panics.

use encoding_rs::{
    EUC_JP, EUC_KR, Encoding, GB18030, GBK, ISO_8859_2, ISO_8859_3, ISO_8859_4, ISO_8859_5,
    ISO_8859_6, ISO_8859_7, ISO_8859_8, ISO_8859_15, UTF_8, WINDOWS_874, WINDOWS_1254,
};

const ESC: u8 = 0x1B;

/// A set that can be designated to G0 or G1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    /// ISO 646 / ASCII (ISO-IR 6).
    Ascii,
    /// JIS X 0201 Romaji (ISO-IR 14): ASCII with YEN SIGN at 0x5C and OVERLINE at 0x7E.
    JisRoman,
    /// JIS X 0201 Katakana (ISO-IR 13), single byte in G1.
    JisKatakana,
    /// JIS X 0208 (ISO-IR 87), two bytes in G0.
    Jis0208,
    /// JIS X 0212 (ISO-IR 159), two bytes in G0.
    Jis0212,
    /// KS X 1001 (ISO-IR 149), two bytes in G1.
    Ksx1001,
    /// GB 2312 (ISO-IR 58), two bytes in G1.
    Gb2312,
    /// ISO 8859-1 upper half (ISO-IR 100).
    Latin1,
    /// Another upper half through an `encoding_rs` single-byte table.
    Upper(&'static Encoding),
}

/// How a value of one Specific Character Set is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharacterSet {
    kind: Kind,
    /// The (0008,0005) value it was made from, trimmed.
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// One encoding for the whole value (no code extensions).
    Whole(Whole),
    /// ISO 2022 code extensions, starting from these G0 and G1 sets; `sets` are the
    /// ones the defined terms allow, in their order (for encoding).
    Iso2022 {
        g0: Set,
        g1: Option<Set>,
        sets: Vec<Set>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whole {
    /// The default repertoire (no value): decoded as Latin-1, encoded as ASCII.
    Default,
    Latin1,
    Encoding(&'static Encoding),
    /// JIS X 0201: Romaji in 0x00-0x7F, half-width katakana in 0xA1-0xDF.
    Jis0201,
}

/// Which delimiters reset the ISO 2022 state (PS3.5 6.1.2.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiters {
    /// Any text VR: `\`, CR, LF, FF, TAB.
    Text,
    /// Person Name: those and the component / group delimiters `^`, `=`.
    PersonName,
}

/// Why a Specific Character Set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Specific Character Set defined term {0:?}")]
pub struct UnknownCharacterSet(pub String);

impl Default for CharacterSet {
    fn default() -> Self {
        CharacterSet {
            kind: Kind::Whole(Whole::Default),
            name: String::new(),
        }
    }
}

impl CharacterSet {
    /// The character set of a (0008,0005) value (backslash-separated defined terms,
    /// padding ignored). Empty: the default repertoire.
    pub fn from_specific_character_set(value: &str) -> Result<CharacterSet, UnknownCharacterSet> {
        let terms: Vec<&str> = value
            .trim_matches([' ', '\0'])
            .split('\\')
            .map(|t| t.trim_matches([' ', '\0']))
            .collect();
        let extensions = terms.len() > 1 || terms[0].starts_with("ISO 2022");
        if !extensions {
            let whole = match terms[0] {
                "" | "ISO_IR 6" => Whole::Default,
                "ISO_IR 100" => Whole::Latin1,
                "ISO_IR 101" => Whole::Encoding(ISO_8859_2),
                "ISO_IR 109" => Whole::Encoding(ISO_8859_3),
                "ISO_IR 110" => Whole::Encoding(ISO_8859_4),
                "ISO_IR 144" => Whole::Encoding(ISO_8859_5),
                "ISO_IR 127" => Whole::Encoding(ISO_8859_6),
                "ISO_IR 126" => Whole::Encoding(ISO_8859_7),
                "ISO_IR 138" => Whole::Encoding(ISO_8859_8),
                "ISO_IR 148" => Whole::Encoding(WINDOWS_1254),
                "ISO_IR 203" => Whole::Encoding(ISO_8859_15),
                "ISO_IR 166" => Whole::Encoding(WINDOWS_874),
                "ISO_IR 13" => Whole::Jis0201,
                "ISO_IR 192" => Whole::Encoding(UTF_8),
                "GB18030" => Whole::Encoding(GB18030),
                "GBK" => Whole::Encoding(GBK),
                other => return Err(UnknownCharacterSet(other.to_owned())),
            };
            return Ok(CharacterSet {
                kind: Kind::Whole(whole),
                name: terms.join("\\"),
            });
        }
        // Value 1 names the initial sets; the others only what escapes may designate.
        let (g0, g1) = match terms[0] {
            "" | "ISO 2022 IR 6" => (Set::Ascii, None),
            "ISO 2022 IR 13" => (Set::JisRoman, Some(Set::JisKatakana)),
            term => match upper_half(term) {
                Some(set) => (Set::Ascii, Some(set)),
                None if is_known_extension(term) => (Set::Ascii, None),
                None => return Err(UnknownCharacterSet(term.to_owned())),
            },
        };
        if let Some(unknown) = terms[1..]
            .iter()
            .find(|t| !t.is_empty() && !is_known_extension(t))
        {
            return Err(UnknownCharacterSet((*unknown).to_owned()));
        }
        let mut sets = Vec::new();
        for term in &terms {
            let designated = match *term {
                "" | "ISO 2022 IR 6" => vec![Set::Ascii],
                "ISO 2022 IR 13" => vec![Set::JisRoman, Set::JisKatakana],
                "ISO 2022 IR 87" => vec![Set::Jis0208],
                "ISO 2022 IR 159" => vec![Set::Jis0212],
                "ISO 2022 IR 149" => vec![Set::Ksx1001],
                "ISO 2022 IR 58" => vec![Set::Gb2312],
                other => upper_half(other).into_iter().collect(),
            };
            for set in designated {
                if !sets.contains(&set) {
                    sets.push(set);
                }
            }
        }
        if !sets.contains(&Set::Ascii) && g0 == Set::Ascii {
            sets.insert(0, Set::Ascii);
        }
        Ok(CharacterSet {
            kind: Kind::Iso2022 { g0, g1, sets },
            name: terms.join("\\"),
        })
    }

    /// The (0008,0005) value naming this set (empty for the default repertoire).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is UTF-8 (ISO_IR 192).
    pub fn is_utf8(&self) -> bool {
        self.kind == Kind::Whole(Whole::Encoding(UTF_8))
    }

    /// Decodes the bytes of one text value (all its values, `\`-separated).
    pub fn decode(&self, bytes: &[u8], delimiters: Delimiters) -> String {
        match &self.kind {
            Kind::Whole(Whole::Default | Whole::Latin1) => {
                bytes.iter().map(|&b| char::from(b)).collect()
            }
            Kind::Whole(Whole::Jis0201) => bytes.iter().map(|&b| jis0201(b)).collect(),
            Kind::Whole(Whole::Encoding(encoding)) => {
                encoding.decode_without_bom_handling(bytes).0.into_owned()
            }
            Kind::Iso2022 { g0, g1, .. } => Iso2022 {
                initial: (*g0, *g1),
                g0: *g0,
                g1: *g1,
                delimiters,
            }
            .decode(bytes),
        }
    }
}

/// The single-byte upper half an `ISO 2022 IR n` term designates to G1.
fn upper_half(term: &str) -> Option<Set> {
    Some(match term {
        "ISO 2022 IR 100" => Set::Latin1,
        "ISO 2022 IR 101" => Set::Upper(ISO_8859_2),
        "ISO 2022 IR 109" => Set::Upper(ISO_8859_3),
        "ISO 2022 IR 110" => Set::Upper(ISO_8859_4),
        "ISO 2022 IR 144" => Set::Upper(ISO_8859_5),
        "ISO 2022 IR 127" => Set::Upper(ISO_8859_6),
        "ISO 2022 IR 126" => Set::Upper(ISO_8859_7),
        "ISO 2022 IR 138" => Set::Upper(ISO_8859_8),
        "ISO 2022 IR 148" => Set::Upper(WINDOWS_1254),
        "ISO 2022 IR 203" => Set::Upper(ISO_8859_15),
        "ISO 2022 IR 166" => Set::Upper(WINDOWS_874),
        _ => return None,
    })
}

fn is_known_extension(term: &str) -> bool {
    upper_half(term).is_some()
        || matches!(
            term,
            "ISO 2022 IR 6"
                | "ISO 2022 IR 13"
                | "ISO 2022 IR 87"
                | "ISO 2022 IR 159"
                | "ISO 2022 IR 149"
                | "ISO 2022 IR 58"
        )
}

/// JIS X 0201: Romaji below 0x80, half-width katakana at 0xA1-0xDF. 0x5C stays the
/// backslash: in DICOM it is the value delimiter whatever the character set.
fn jis0201(b: u8) -> char {
    match b {
        0x7E => '\u{203E}',
        0x00..=0x7F => char::from(b),
        0xA1..=0xDF => char::from_u32(0xFF61 + u32::from(b - 0xA1)).unwrap_or('\u{FFFD}'),
        _ => '\u{FFFD}',
    }
}

/// The ISO 2022 state machine over one value.
struct Iso2022 {
    initial: (Set, Option<Set>),
    g0: Set,
    g1: Option<Set>,
    delimiters: Delimiters,
}

impl Iso2022 {
    fn decode(mut self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == ESC {
                match self.escape(&bytes[i + 1..]) {
                    Some(len) => {
                        i += 1 + len;
                        continue;
                    }
                    None => {
                        out.push('\u{FFFD}');
                        i += 1;
                        continue;
                    }
                }
            }
            if b < 0x80 {
                let double = matches!(self.g0, Set::Jis0208 | Set::Jis0212);
                if double && b > 0x20 && b < 0x7F {
                    match bytes.get(i + 1) {
                        Some(&second) if second > 0x20 && second < 0x7F => {
                            out.push_str(&self.double_g0(b, second));
                            i += 2;
                        }
                        _ => {
                            out.push('\u{FFFD}');
                            i += 1;
                        }
                    }
                    continue;
                }
                if self.resets_at(b) {
                    (self.g0, self.g1) = self.initial;
                }
                out.push(if self.g0 == Set::JisRoman {
                    jis0201(b)
                } else {
                    char::from(b)
                });
                i += 1;
                continue;
            }
            // G1 (high bit set).
            match self.g1 {
                Some(Set::Ksx1001 | Set::Gb2312) => {
                    let encoding = if self.g1 == Some(Set::Ksx1001) {
                        EUC_KR
                    } else {
                        GBK
                    };
                    match bytes.get(i + 1) {
                        Some(&second) if (0xA1..0xFF).contains(&second) && b >= 0xA1 => {
                            let pair = [b, second];
                            out.push_str(&encoding.decode_without_bom_handling(&pair).0);
                            i += 2;
                        }
                        _ => {
                            out.push('\u{FFFD}');
                            i += 1;
                        }
                    }
                }
                Some(Set::JisKatakana) => {
                    out.push(jis0201(b));
                    i += 1;
                }
                Some(Set::Latin1) => {
                    out.push(char::from(b));
                    i += 1;
                }
                Some(Set::Upper(encoding)) => {
                    out.push_str(&encoding.decode_without_bom_handling(&[b]).0);
                    i += 1;
                }
                _ => {
                    out.push('\u{FFFD}');
                    i += 1;
                }
            }
        }
        out
    }

    fn resets_at(&self, b: u8) -> bool {
        matches!(b, b'\\' | b'\r' | b'\n' | 0x0C | b'\t')
            || (self.delimiters == Delimiters::PersonName && matches!(b, b'^' | b'='))
    }

    /// JIS X 0208 / 0212 pair in G0, through EUC-JP.
    fn double_g0(&self, first: u8, second: u8) -> String {
        if self.g0 == Set::Jis0212 {
            let bytes = [0x8F, first | 0x80, second | 0x80];
            EUC_JP.decode_without_bom_handling(&bytes).0.into_owned()
        } else {
            let bytes = [first | 0x80, second | 0x80];
            EUC_JP.decode_without_bom_handling(&bytes).0.into_owned()
        }
    }

    /// Applies the escape sequence after ESC; its length without ESC, or `None` for an
    /// unknown one.
    fn escape(&mut self, rest: &[u8]) -> Option<usize> {
        let (len, g0, g1) = match rest {
            [b'(', b'B', ..] => (2, Some(Set::Ascii), None),
            [b'(', b'J', ..] => (2, Some(Set::JisRoman), None),
            [b')', b'I', ..] => (2, None, Some(Set::JisKatakana)),
            [b'$', b'B', ..] => (2, Some(Set::Jis0208), None),
            [b'$', b'(', b'D', ..] => (3, Some(Set::Jis0212), None),
            [b'$', b')', b'C', ..] => (3, None, Some(Set::Ksx1001)),
            [b'$', b')', b'A', ..] => (3, None, Some(Set::Gb2312)),
            [b'-', f, ..] => {
                let set = match f {
                    b'A' => Set::Latin1,
                    b'B' => Set::Upper(ISO_8859_2),
                    b'C' => Set::Upper(ISO_8859_3),
                    b'D' => Set::Upper(ISO_8859_4),
                    b'F' => Set::Upper(ISO_8859_7),
                    b'G' => Set::Upper(ISO_8859_6),
                    b'H' => Set::Upper(ISO_8859_8),
                    b'L' => Set::Upper(ISO_8859_5),
                    b'M' => Set::Upper(WINDOWS_1254),
                    b'T' => Set::Upper(WINDOWS_874),
                    b'b' => Set::Upper(ISO_8859_15),
                    _ => return None,
                };
                (2, None, Some(set))
            }
            _ => return None,
        };
        if let Some(g0) = g0 {
            self.g0 = g0;
        }
        if g1.is_some() {
            self.g1 = g1;
        }
        Some(len)
    }
}

mod encode;
mod locate;
pub use encode::Unencodable;
pub use locate::{dicom_rs_reads, explicit_len, locate, relabel_latin1};

#[cfg(test)]
mod tests;
