//! Encoding text into a Specific Character Set: the inverse of
//! [`CharacterSet::decode`], byte for byte on the standard's examples (PS3.5 Annexes
//! H, I and J).
//!
//! With ISO 2022 code extensions each character goes into the set in use if it can,
//! else into the first set the defined terms allow that has it (designated with its
//! escape sequence). Before every delimiter that resets the state (PS3.5 6.1.2.5.3)
//! and at the end of the value, G0 goes back to its initial set (and G1 too, when
//! value 1 names one), as the standard's examples do.

use std::collections::HashMap;
use std::sync::LazyLock;

use encoding_rs::{EUC_JP, EUC_KR, Encoding, GBK};

use super::{CharacterSet, Delimiters, ESC, Kind, Set, Whole};

/// A character the character set cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{character:?} (U+{code:04X}) cannot be written in Specific Character Set {set}")]
pub struct Unencodable {
    /// The character.
    pub character: char,
    /// Its code point.
    pub code: u32,
    /// The character set, as named in (0008,0005).
    pub set: String,
}

impl CharacterSet {
    /// Encodes one text value (all its values, `\`-separated) so that
    /// [`decode`](CharacterSet::decode) gives it back.
    ///
    /// Errors: the first character no allowed set holds (nothing is replaced).
    pub fn encode(&self, text: &str, delimiters: Delimiters) -> Result<Vec<u8>, Unencodable> {
        let unencodable = |c: char| Unencodable {
            character: c,
            code: u32::from(c),
            set: self.name.clone(),
        };
        match &self.kind {
            Kind::Whole(Whole::Default) => ascii_only(text).map_err(unencodable),
            Kind::Whole(Whole::Latin1) => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| unencodable(c)))
                .collect(),
            Kind::Whole(Whole::Jis0201) => text
                .chars()
                .map(|c| {
                    single(Set::JisRoman, c)
                        .or_else(|| single(Set::JisKatakana, c))
                        .ok_or_else(|| unencodable(c))
                })
                .collect(),
            Kind::Whole(Whole::Encoding(encoding)) => whole(encoding, text).map_err(unencodable),
            Kind::Iso2022 { g0, g1, sets } => {
                let mut out = Vec::with_capacity(text.len() + 8);
                let (mut cur0, mut cur1) = (*g0, *g1);
                for c in text.chars() {
                    if is_delimiter(c, delimiters) {
                        reset(&mut out, (&mut cur0, &mut cur1), (*g0, *g1));
                        out.push(c as u8);
                        // Decoders reset both G0 and G1 here.
                        (cur0, cur1) = (*g0, *g1);
                        continue;
                    }
                    if put(&mut out, cur0, c) {
                        continue;
                    }
                    if let Some(set) = cur1
                        && put(&mut out, set, c)
                    {
                        continue;
                    }
                    let Some(&set) = sets.iter().find(|&&set| can_hold(set, c)) else {
                        return Err(unencodable(c));
                    };
                    designate(&mut out, set);
                    match is_g1(set) {
                        true => cur1 = Some(set),
                        false => cur0 = set,
                    }
                    put(&mut out, set, c);
                }
                reset(&mut out, (&mut cur0, &mut cur1), (*g0, *g1));
                Ok(out)
            }
        }
    }
}

fn ascii_only(text: &str) -> Result<Vec<u8>, char> {
    match text.chars().find(|c| !c.is_ascii()) {
        Some(c) => Err(c),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// The whole text through one `encoding_rs` encoding, or the first character it
/// cannot hold.
fn whole(encoding: &'static Encoding, text: &str) -> Result<Vec<u8>, char> {
    let (bytes, _, errors) = encoding.encode(text);
    if !errors {
        return Ok(bytes.into_owned());
    }
    let bad = text
        .chars()
        .find(|c| encoding.encode(c.encode_utf8(&mut [0; 4])).2)
        .unwrap_or('\u{FFFD}');
    Err(bad)
}

fn is_delimiter(c: char, delimiters: Delimiters) -> bool {
    matches!(c, '\\' | '\r' | '\n' | '\x0C' | '\t')
        || (delimiters == Delimiters::PersonName && matches!(c, '^' | '='))
}

fn is_g1(set: Set) -> bool {
    matches!(
        set,
        Set::JisKatakana | Set::Ksx1001 | Set::Gb2312 | Set::Latin1 | Set::Upper(_)
    )
}

/// Goes back to the initial sets where they changed.
fn reset(out: &mut Vec<u8>, current: (&mut Set, &mut Option<Set>), initial: (Set, Option<Set>)) {
    if *current.0 != initial.0 {
        designate(out, initial.0);
        *current.0 = initial.0;
    }
    if let Some(g1) = initial.1
        && *current.1 != initial.1
    {
        designate(out, g1);
        *current.1 = initial.1;
    }
}

/// The escape sequence designating `set` (the decoder's table, reversed).
fn designate(out: &mut Vec<u8>, set: Set) {
    out.push(ESC);
    let sequence: &[u8] = match set {
        Set::Ascii => b"(B",
        Set::JisRoman => b"(J",
        Set::JisKatakana => b")I",
        Set::Jis0208 => b"$B",
        Set::Jis0212 => b"$(D",
        Set::Ksx1001 => b"$)C",
        Set::Gb2312 => b"$)A",
        Set::Latin1 => b"-A",
        Set::Upper(encoding) => match encoding.name() {
            "ISO-8859-2" => b"-B",
            "ISO-8859-3" => b"-C",
            "ISO-8859-4" => b"-D",
            "ISO-8859-7" => b"-F",
            "ISO-8859-6" => b"-G",
            "ISO-8859-8" => b"-H",
            "ISO-8859-5" => b"-L",
            "windows-1254" => b"-M",
            "ISO-8859-15" => b"-b",
            _ => b"-T",
        },
    };
    out.extend_from_slice(sequence);
}

fn can_hold(set: Set, c: char) -> bool {
    put(&mut Vec::new(), set, c)
}

/// Writes `c` in `set` (designated already); `false` when the set lacks it.
fn put(out: &mut Vec<u8>, set: Set, c: char) -> bool {
    if let Some(b) = single(set, c) {
        out.push(b);
        return true;
    }
    let pair = match set {
        Set::Jis0208 => euc_pair(EUC_JP, c).map(|[a, b]| [a & 0x7F, b & 0x7F]),
        Set::Jis0212 => JIS_X_0212.get(&c).copied(),
        Set::Ksx1001 => euc_pair(EUC_KR, c),
        Set::Gb2312 => euc_pair(GBK, c),
        _ => None,
    };
    match pair {
        Some(pair) => {
            out.extend_from_slice(&pair);
            true
        }
        None => false,
    }
}

/// `c` as one byte of a single-byte set.
fn single(set: Set, c: char) -> Option<u8> {
    let code = u32::from(c);
    match set {
        Set::Ascii => c.is_ascii().then_some(code as u8),
        Set::JisRoman => match c {
            // 0x5C is the value delimiter (decoded as a backslash, not YEN SIGN).
            '\u{203E}' => Some(0x7E),
            '~' => None,
            _ => c.is_ascii().then_some(code as u8),
        },
        Set::JisKatakana => (0xFF61..=0xFF9F)
            .contains(&code)
            .then(|| (code - 0xFF61 + 0xA1) as u8),
        Set::Latin1 => (0xA0..=0xFF).contains(&code).then_some(code as u8),
        Set::Upper(encoding) => match whole(encoding, c.encode_utf8(&mut [0; 4])) {
            Ok(bytes) if bytes.len() == 1 && bytes[0] >= 0xA0 => Some(bytes[0]),
            _ => None,
        },
        _ => None,
    }
}

/// `c` as a two-byte EUC code with both bytes in 0xA1-0xFE (the 94x94 set in G1).
fn euc_pair(encoding: &'static Encoding, c: char) -> Option<[u8; 2]> {
    match whole(encoding, c.encode_utf8(&mut [0; 4])) {
        Ok(bytes) => match bytes[..] {
            [a, b] if (0xA1..=0xFE).contains(&a) && (0xA1..=0xFE).contains(&b) => Some([a, b]),
            _ => None,
        },
        Err(_) => None,
    }
}

/// JIS X 0212, which the WHATWG EUC-JP encoder does not write: the decoder's table
/// reversed (7-bit pairs, as in G0).
static JIS_X_0212: LazyLock<HashMap<char, [u8; 2]>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for a in 0x21..=0x7Eu8 {
        for b in 0x21..=0x7Eu8 {
            let bytes = [0x8F, a | 0x80, b | 0x80];
            let (text, _, errors) = EUC_JP.decode(&bytes);
            let mut chars = text.chars();
            if let (false, Some(c), None) = (errors, chars.next(), chars.next()) {
                map.entry(c).or_insert([a, b]);
            }
        }
    }
    map
});
