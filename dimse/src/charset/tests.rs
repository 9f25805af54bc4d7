//! The examples of PS3.5 Annexes H (Japanese), I (Korean) and J (Chinese), byte for
//! byte (as Python's iso2022_jp / euc_kr / gb2312 / gb18030 codecs encode them), and
//! the single-byte sets.

use super::*;
use proptest::prelude::*;

fn cs(value: &str) -> CharacterSet {
    CharacterSet::from_specific_character_set(value).unwrap()
}

fn pn(value: &str, hex: &str) -> String {
    cs(value).decode(&hex_bytes(hex), Delimiters::PersonName)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn annex_h_japanese_jis_x_0208() {
    assert_eq!(
        pn(
            "\\ISO 2022 IR 87",
            "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d\
             1b24422464245e24401b28425e1b2442243f246d24261b2842"
        ),
        "Yamada^Tarou=山田^太郎=やまだ^たろう"
    );
}

#[test]
fn annex_h_japanese_katakana_and_kanji() {
    assert_eq!(
        pn(
            "ISO 2022 IR 13\\ISO 2022 IR 87",
            "d4cfc0de5ec0dbb33d1b24423b3345441b284a5e1b244242404f3a1b284a3d1b2442\
             2464245e24401b284a5e1b2442243f246d24261b284a"
        ),
        "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    );
}

#[test]
fn annex_i_korean() {
    assert_eq!(
        pn(
            "\\ISO 2022 IR 149",
            "486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e\
             1b242943b1e6b5bf"
        ),
        "Hong^Gildong=洪^吉洞=홍^길동"
    );
}

#[test]
fn annex_j_chinese() {
    assert_eq!(
        pn("GB18030", "57616e675e5869616f446f6e673dcdf55ed0a1967c3d"),
        "Wang^XiaoDong=王^小東="
    );
    assert_eq!(
        pn(
            "\\ISO 2022 IR 58",
            "5a68616e675e5869616f446f6e673d1b242941d5c55e1b242941d0a1b6ab3d"
        ),
        "Zhang^XiaoDong=张^小东="
    );
}

#[test]
fn single_byte_sets() {
    let latin1 = cs("ISO_IR 100").decode(b"M\xfcller^J\xfcrgen", Delimiters::PersonName);
    assert_eq!(latin1, "Müller^Jürgen");
    let turkish = cs("ISO_IR 148").decode(&hex_bytes("c761f072fddefcf0"), Delimiters::Text);
    assert_eq!(turkish, "ÇağrıŞüğ");
    let greek = cs("ISO_IR 126").decode(b"\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2", Delimiters::Text);
    assert_eq!(greek, "Διονυσιος");
    let cyrillic = cs("ISO_IR 144").decode(b"\xbb\xee\xdace\xdc\xd8\xef", Delimiters::Text);
    assert_eq!(cyrillic, "Люкceмия");
    let utf8 = cs("ISO_IR 192").decode("Wang^XiaoDong=王^小东=".as_bytes(), Delimiters::Text);
    assert_eq!(utf8, "Wang^XiaoDong=王^小东=");
    // ISO 2022 with a Latin-1 G1 (PS3.5 H: code extensions with single-byte sets).
    let extended = cs("ISO 2022 IR 100\\ISO 2022 IR 126").decode(
        b"Buc^J\xe9r\xf4me=\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2\x1b-A",
        Delimiters::PersonName,
    );
    assert_eq!(extended, "Buc^Jérôme=Διονυσιος");
}

#[test]
fn unknown_terms_are_refused_and_absent_means_default() {
    assert!(CharacterSet::from_specific_character_set("ISO_IR 999").is_err());
    assert!(CharacterSet::from_specific_character_set("\\ISO 2022 IR 999").is_err());
    assert_eq!(
        cs("").decode(b"DOE^JOHN", Delimiters::PersonName),
        "DOE^JOHN"
    );
    assert!(cs("ISO_IR 192").is_utf8());
}

#[test]
fn bad_escapes_and_truncated_pairs_do_not_panic() {
    let set = cs("\\ISO 2022 IR 87");
    assert_eq!(set.decode(b"\x1b$B;", Delimiters::Text), "\u{FFFD}");
    assert_eq!(set.decode(b"\x1bZ", Delimiters::Text), "\u{FFFD}Z");
    assert_eq!(set.decode(b"\x1b", Delimiters::Text), "\u{FFFD}");
}

proptest! {
    #[test]
    fn any_bytes_decode_under_any_set(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        set in prop::sample::select(vec![
            "\\ISO 2022 IR 87", "ISO 2022 IR 13\\ISO 2022 IR 87", "\\ISO 2022 IR 149",
            "\\ISO 2022 IR 58", "\\ISO 2022 IR 159", "GB18030", "GBK", "ISO_IR 192",
            "ISO_IR 13", "ISO_IR 166", "ISO 2022 IR 100\\ISO 2022 IR 144",
        ]),
    ) {
        let _ = cs(set).decode(&bytes, Delimiters::PersonName);
    }
}

/// Encodes `text` under `set` as a person name and checks the bytes (the standard's
/// own) and the round trip.
fn encodes_to(set: &str, text: &str, hex: &str) {
    let bytes = cs(set).encode(text, Delimiters::PersonName).unwrap();
    assert_eq!(
        hex_of(&bytes),
        hex.replace(char::is_whitespace, ""),
        "{text} in {set}"
    );
    assert_eq!(pn(set, hex), text);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_annex_examples_encode_byte_for_byte() {
    encodes_to(
        "\\ISO 2022 IR 87",
        "Yamada^Tarou=山田^太郎=やまだ^たろう",
        "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d\
         1b24422464245e24401b28425e1b2442243f246d24261b2842",
    );
    encodes_to(
        "ISO 2022 IR 13\\ISO 2022 IR 87",
        "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
        "d4cfc0de5ec0dbb33d1b24423b3345441b284a5e1b244242404f3a1b284a3d1b2442\
         2464245e24401b284a5e1b2442243f246d24261b284a",
    );
    encodes_to(
        "\\ISO 2022 IR 149",
        "Hong^Gildong=洪^吉洞=홍^길동",
        "486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e\
         1b242943b1e6b5bf",
    );
    encodes_to(
        "\\ISO 2022 IR 58",
        "Zhang^XiaoDong=张^小东=",
        "5a68616e675e5869616f446f6e673d1b242941d5c55e1b242941d0a1b6ab3d",
    );
    encodes_to(
        "GB18030",
        "Wang^XiaoDong=王^小東=",
        "57616e675e5869616f446f6e673dcdf55ed0a1967c3d",
    );
    let extended = cs("ISO 2022 IR 100\\ISO 2022 IR 126")
        .encode("Buc^Jérôme=Διονυσιος", Delimiters::PersonName)
        .unwrap();
    assert_eq!(
        extended,
        b"Buc^J\xe9r\xf4me=\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2\x1b-A"
    );
}

#[test]
fn every_set_round_trips_what_it_can_hold_and_names_what_it_cannot() {
    let cases = [
        ("", "DOE^JOHN"),
        ("ISO_IR 100", "Müller^Jürgen"),
        ("ISO_IR 101", "Dvořák^Antonín"),
        ("ISO_IR 109", "Ħal Għargħur"),
        ("ISO_IR 110", "Ķēniņš"),
        ("ISO_IR 144", "Люкceмия"),
        ("ISO_IR 127", "قباني^لنزار"),
        ("ISO_IR 126", "Διονυσιος"),
        ("ISO_IR 138", "שרון^דבורה"),
        ("ISO_IR 148", "ÇağrıŞüğ"),
        ("ISO_IR 166", "นามสกุล"),
        ("ISO_IR 203", "Œuvre^Šárka€"),
        ("ISO 2022 IR 6\\ISO 2022 IR 203", "Dupont=Œuvre€^Ž"),
        ("ISO_IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ"),
        ("ISO_IR 192", "Wang^XiaoDong=王^小东=왕^샤오둥"),
        ("GBK", "Wang^XiaoDong=王^小东="),
        ("\\ISO 2022 IR 159", "Dummy=丂^丄"),
        (
            "\\ISO 2022 IR 87\\ISO 2022 IR 159",
            "Sato^Ichiro=佐藤^一郎=丂",
        ),
        ("ISO 2022 IR 100\\ISO 2022 IR 144", "Müller=Люкceмия^Jürgen"),
        ("ISO 2022 IR 166", "Somchai^นามสกุล"),
    ];
    for (set, text) in cases {
        let character_set = cs(set);
        let encoded = match character_set.encode(text, Delimiters::PersonName) {
            Ok(encoded) => encoded,
            Err(e) => panic!("{text} in {set:?}: {e}"),
        };
        assert_eq!(
            character_set.decode(&encoded, Delimiters::PersonName),
            text,
            "{set:?}"
        );
    }
    let refused = cs("ISO_IR 100").encode("王", Delimiters::Text).unwrap_err();
    assert_eq!(refused.character, '王');
    assert_eq!(
        refused.to_string(),
        "'王' (U+738B) cannot be written in Specific Character Set ISO_IR 100"
    );
    assert!(cs("").encode("é", Delimiters::Text).is_err());
    assert!(
        cs("\\ISO 2022 IR 87")
            .encode("한", Delimiters::Text)
            .is_err()
    );
}

proptest! {
    #[test]
    fn what_encodes_decodes_back(
        text in "[a-zA-Z ^=\\\\山田太郎やまだ홍길동张小东ÄéΣЖ丂]{0,24}",
        set in prop::sample::select(vec![
            "\\ISO 2022 IR 87", "ISO 2022 IR 13\\ISO 2022 IR 87", "\\ISO 2022 IR 149",
            "\\ISO 2022 IR 58", "\\ISO 2022 IR 87\\ISO 2022 IR 159\\ISO 2022 IR 149",
            "ISO 2022 IR 100\\ISO 2022 IR 126\\ISO 2022 IR 144\\ISO 2022 IR 87",
            "GB18030", "ISO_IR 192", "ISO_IR 100",
        ]),
    ) {
        if let Ok(bytes) = cs(set).encode(&text, Delimiters::PersonName) {
            prop_assert_eq!(cs(set).decode(&bytes, Delimiters::PersonName), text);
        }
    }
}
