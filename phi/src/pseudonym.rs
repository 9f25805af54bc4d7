//! Keyed pseudonyms for Patient ID and Patient Name, deterministic UID remapping, and
//! the truncated blind index of a normalized Patient Name.
//!
//! Every value here is an HMAC-SHA256 under one of the facility's subkeys, so the
//! same input always gives the same output under the same key, and nobody without
//! the key can compute or invert it. Inputs are canonicalized for DICOM padding
//! first (values that DICOM treats as equal map to the same pseudonym). Pure
//! functions: no I/O, nothing logged.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::keys::{KEY_LEN, KeyRing};

/// First character of every patient id pseudonym.
pub const PATIENT_ID_PREFIX: &str = "P";
/// Length of a patient id pseudonym: the prefix and 16 base-32 digits (80 bits).
pub const PATIENT_ID_LEN: usize = PATIENT_ID_PREFIX.len() + 16;
/// Family name component of every patient name pseudonym.
pub const PATIENT_NAME_FAMILY: &str = "ANON";
/// Base-32 digits in the given name component of a patient name pseudonym (50 bits).
pub const PATIENT_NAME_CODE_LEN: usize = 10;
/// Root of every remapped UID: `2.25.` followed by a UUID as a decimal integer.
pub const UID_ROOT: &str = "2.25.";
/// Hex digits of a blind index (16 bits: deliberately collides sometimes, so the
/// index alone does not identify a name; the client filters after unsealing).
pub const BLIND_INDEX_HEX_LEN: usize = 4;
const _: () = assert!(BLIND_INDEX_HEX_LEN.is_multiple_of(2) && BLIND_INDEX_HEX_LEN <= 64);

/// Crockford's base 32: digits and capitals without I, L, O, U.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The pseudonym for a Patient ID: `P` and 16 characters of `[0-9A-Z]`.
/// Leading and trailing spaces and NULs (DICOM padding) are ignored; case matters.
pub fn patient_id(ring: &KeyRing, original: &str) -> String {
    let mac = hmac(ring.pseudonym_key(), b"patient id", trim_padding(original));
    format!("{PATIENT_ID_PREFIX}{}", base32(&mac, PATIENT_ID_LEN - 1))
}

/// The pseudonym for a Patient Name: a valid PN `ANON^` + 10 characters of
/// `[0-9A-Z]`. Padding and trailing empty components (`^`, `=`) are ignored, so
/// `DOE^JOHN^^` and `DOE^JOHN` get the same pseudonym; case and accents matter.
pub fn patient_name(ring: &KeyRing, original: &str) -> String {
    let canonical = trim_padding(trim_padding(original).trim_end_matches(['^', '=']));
    let mac = hmac(ring.pseudonym_key(), b"patient name", canonical);
    format!(
        "{PATIENT_NAME_FAMILY}^{}",
        base32(&mac, PATIENT_NAME_CODE_LEN)
    )
}

/// The remapped UID: `2.25.` and the decimal value of an RFC 9562 version 8 UUID
/// made of the HMAC of the original. At most 44 characters; always a valid UID.
/// Leading and trailing spaces and NULs (padding) of the original are ignored.
pub fn uid(ring: &KeyRing, original: &str) -> String {
    let mac = hmac(ring.uid_key(), b"uid", trim_padding(original));
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&mac[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80; // version 8 (custom)
    uuid[8] = (uuid[8] & 0x3f) | 0x80; // variant 10
    format!("{UID_ROOT}{}", u128::from_be_bytes(uuid))
}

/// The search form of a Person Name: NFKD; only the first (alphabetic) component
/// group; per component case-folded, combining marks dropped, whitespace collapsed
/// and trimmed; trailing empty components dropped; joined with `^`.
/// `Müller^Jürgen` and `MULLER^jurgen ` both give `muller^jurgen`.
pub fn normalize_name(name: &str) -> String {
    normalized_groups(name)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Every component group of a Person Name (alphabetic, ideographic, phonetic; at most
/// three), each in the [`normalize_name`] form; empty groups are kept as empty
/// strings in their place.
pub fn normalized_groups(name: &str) -> Vec<String> {
    // NFKD before splitting: compatibility forms of the delimiters (`＾`, `﹦`)
    // become `^` and `=` and act as delimiters, never as text inside a component.
    let decomposed: String = name.nfkd().collect();
    decomposed
        .split('=')
        .take(3)
        .map(|group| {
            let mut components: Vec<String> = group.split('^').map(normalize_component).collect();
            while components.last().is_some_and(String::is_empty) {
                components.pop();
            }
            components.join("^")
        })
        .collect()
}

fn normalize_component(component: &str) -> String {
    // Upper then lower case approximates full case folding (ß -> SS -> ss). It comes
    // before the marks are dropped: U+0345 (iota subscript) is a mark that
    // upper-cases to a letter, so `ῇ` and its upper case `Η͂Ι` must both give `ηι`.
    let folded = component.to_uppercase().to_lowercase();
    let stripped: String = folded
        .nfkd()
        // Kana voiced sound marks are letters' identity, not accents: `ダ` stays `ダ`.
        .filter(|c| !is_combining_mark(*c) || matches!(c, '\u{3099}' | '\u{309A}'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = stripped.split_whitespace().collect();
    words.join(" ")
}

/// The blind index of a name: [`BLIND_INDEX_HEX_LEN`] lowercase hex digits of an
/// HMAC of [`normalize_name`]; empty for a name that normalizes to nothing.
pub fn blind_index(ring: &KeyRing, name: &str) -> String {
    let normalized = normalize_name(name);
    if normalized.is_empty() {
        return String::new();
    }
    let mac = hmac(ring.blind_index_key(), b"blind index", &normalized);
    hex::encode(&mac[..BLIND_INDEX_HEX_LEN / 2])
}

/// HMAC-SHA256 of `label || 0x00 || value`.
fn hmac(key: &[u8; KEY_LEN], label: &[u8], value: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.update(&[0]);
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The first `len` (at most 25) base-32 digits of `bytes`, most significant bit first.
fn base32(bytes: &[u8; 32], len: usize) -> String {
    let mut first = [0u8; 16];
    first.copy_from_slice(&bytes[..16]);
    let value = u128::from_be_bytes(first);
    (1..=len.min(25))
        .map(|i| char::from(BASE32[((value >> (128 - 5 * i)) & 31) as usize]))
        .collect()
}

fn trim_padding(value: &str) -> &str {
    value.trim_matches(['\0', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::FacilityKey;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn ring() -> KeyRing {
        FacilityKey::from_bytes([1; KEY_LEN]).ring()
    }

    fn other_ring() -> KeyRing {
        FacilityKey::from_bytes([2; KEY_LEN]).ring()
    }

    fn is_valid_uid(uid: &str) -> bool {
        uid.len() <= 64
            && uid.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_digit())
                    && (c == "0" || !c.starts_with('0'))
            })
    }

    #[test]
    fn known_answers() {
        // Computed independently from schemas/sealed-identity.md.
        let ring = FacilityKey::from_bytes(core::array::from_fn(|i| i as u8)).ring();
        assert_eq!(patient_id(&ring, "12345"), "PKRYQRAGVXB5THTW7");
        assert_eq!(patient_name(&ring, "DOE^JOHN"), "ANON^RR0B9RG8JH");
        assert_eq!(
            uid(&ring, "1.2.840.10008.1"),
            "2.25.237452232954345223696211077161204517037"
        );
        assert_eq!(blind_index(&ring, "Doe^John"), "601c");
        assert_eq!(blind_index(&ring, "Müller^Jürgen"), "e5ce");
        assert_eq!(blind_index(&ring, "ῇ"), "aa39");
    }

    #[test]
    fn pseudonyms_have_the_documented_shape() {
        let ring = ring();
        let id = patient_id(&ring, "12345");
        assert_eq!(id.len(), PATIENT_ID_LEN);
        assert!(id.len() <= 24 && id.starts_with('P'));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        let name = patient_name(&ring, "DOE^JOHN");
        let code = name.strip_prefix("ANON^").unwrap();
        assert_eq!(code.len(), PATIENT_NAME_CODE_LEN);
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
    }

    #[test]
    fn padding_is_ignored() {
        let ring = ring();
        assert_eq!(patient_id(&ring, "12345 "), patient_id(&ring, "12345"));
        assert_eq!(patient_id(&ring, " 12345\0"), patient_id(&ring, "12345"));
        assert_ne!(patient_id(&ring, "abc"), patient_id(&ring, "ABC"));
        assert_eq!(
            patient_name(&ring, "DOE^JOHN^^ "),
            patient_name(&ring, "DOE^JOHN")
        );
        assert_eq!(
            patient_name(&ring, "DOE^JOHN="),
            patient_name(&ring, "DOE^JOHN")
        );
        assert_eq!(uid(&ring, "1.2.3\0"), uid(&ring, "1.2.3"));
    }

    #[test]
    fn patient_id_and_name_are_domain_separated() {
        let ring = ring();
        let id = patient_id(&ring, "SAME");
        let name = patient_name(&ring, "SAME");
        assert_ne!(&id[1..11], name.strip_prefix("ANON^").unwrap());
    }

    #[test]
    fn normalize_names() {
        let same = [
            ("Müller^Jürgen", "MULLER^jurgen "),
            ("Mu\u{308}ller^Ju\u{308}rgen", "muller^jurgen^^"),
            ("  van   der  Berg ^ Anna ", "VAN DER BERG^ANNA"),
            ("Strauß^Johann", "STRAUSS^JOHANN"),
            ("Yamada^Tarou=山田^太郎=やまだ^たろう", "YAMADA^TAROU"),
            ("ＤＯＥ^ＪＯＨＮ", "doe^john"),
            ("Ørsted^Hans", "ØRSTED^HANS"),
            ("ῇ", "Η͂Ι"),
            ("㎓", "ghz"),
            ("ＤＯＥ＾ＪＯＨＮ﹦ドウ", "doe^john"),
        ];
        for (a, b) in same {
            assert_eq!(normalize_name(a), normalize_name(b), "{a} vs {b}");
        }
        assert_eq!(normalize_name("Müller^Jürgen"), "muller^jurgen");
        assert_eq!(normalize_name("Doe^^^Dr"), "doe^^^dr");
        assert_eq!(normalize_name("^^ ^"), "");
        assert_eq!(normalize_name("=山田^太郎"), "");
        assert_ne!(normalize_name("Doe^John"), normalize_name("John^Doe"));
    }

    #[test]
    fn blind_index_matches_equivalent_names() {
        let ring = ring();
        let index = blind_index(&ring, "Müller^Jürgen");
        assert_eq!(index.len(), BLIND_INDEX_HEX_LEN);
        assert!(
            index
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(blind_index(&ring, "MULLER^JURGEN"), index);
        assert_eq!(blind_index(&ring, "muller^jurgen^^=ミュラー"), index);
        assert_ne!(blind_index(&other_ring(), "Müller^Jürgen"), index);
        assert_eq!(blind_index(&ring, ""), "");
        assert_eq!(blind_index(&ring, " ^ ^"), "");
    }

    #[test]
    fn blind_index_collides_sometimes() {
        // 16 bits: among 2,000 names a collision is all but certain (birthday bound).
        let ring = ring();
        let indexes: HashSet<String> = (0..2000)
            .map(|i| blind_index(&ring, &format!("Name{i}^Given")))
            .collect();
        assert!(indexes.len() < 2000);
        assert!(indexes.len() > 1900);
    }

    #[test]
    fn pseudonyms_are_distinct() {
        let ring = ring();
        let ids: HashSet<String> = (0..1000)
            .map(|i| patient_id(&ring, &i.to_string()))
            .collect();
        assert_eq!(ids.len(), 1000);
        let uids: HashSet<String> = (0..1000).map(|i| uid(&ring, &format!("1.2.{i}"))).collect();
        assert_eq!(uids.len(), 1000);
    }

    proptest! {
        #[test]
        fn stable_and_key_dependent(original in "\\PC{1,64}") {
            let (a, b) = (ring(), other_ring());
            prop_assert_eq!(patient_id(&a, &original), patient_id(&a, &original));
            prop_assert_eq!(patient_name(&a, &original), patient_name(&a, &original));
            prop_assert_eq!(uid(&a, &original), uid(&a, &original));
            prop_assert_ne!(patient_id(&a, &original), patient_id(&b, &original));
            prop_assert_ne!(patient_name(&a, &original), patient_name(&b, &original));
            prop_assert_ne!(uid(&a, &original), uid(&b, &original));
        }

        #[test]
        fn distinct_inputs_give_distinct_pseudonyms(x in "[0-9A-Z^]{1,20}", y in "[0-9A-Z^]{1,20}") {
            prop_assume!(x.trim_end_matches('^') != y.trim_end_matches('^'));
            let ring = ring();
            prop_assert_ne!(patient_id(&ring, &x), patient_id(&ring, &y));
            prop_assert_ne!(patient_name(&ring, &x), patient_name(&ring, &y));
            prop_assert_ne!(uid(&ring, &x), uid(&ring, &y));
        }

        #[test]
        fn uid_is_always_valid(original in any::<String>()) {
            let uid = uid(&ring(), &original);
            prop_assert!(uid.starts_with(UID_ROOT));
            prop_assert!(is_valid_uid(&uid), "{}", uid);
        }

        #[test]
        fn patient_pseudonyms_have_valid_charsets(original in any::<String>()) {
            let ring = ring();
            let id = patient_id(&ring, &original);
            prop_assert_eq!(id.len(), PATIENT_ID_LEN);
            prop_assert!(id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
            let name = patient_name(&ring, &original);
            prop_assert_eq!(name.len(), PATIENT_NAME_FAMILY.len() + 1 + PATIENT_NAME_CODE_LEN);
            prop_assert!(name.bytes().all(|b| b == b'^' || b.is_ascii_digit() || b.is_ascii_uppercase()));
        }

        #[test]
        fn normalization_is_idempotent_and_case_blind(name in "\\PC{0,40}") {
            let once = normalize_name(&name);
            prop_assert_eq!(normalize_name(&once), once.clone());
            prop_assert_eq!(normalize_name(&name.to_uppercase()), once.clone());
            let index = blind_index(&ring(), &name);
            prop_assert_eq!(index.len(), if once.is_empty() { 0 } else { BLIND_INDEX_HEX_LEN });
        }
    }
}
