use super::*;
use dicom_object::FileMetaTableBuilder;

/// A Part-10 file whose Specific Character Set and Patient Name are exactly these
/// bytes (written with same-length placeholders, then patched).
fn file_with(charset: &[u8], name: &[u8], ts: &str) -> Vec<u8> {
    let even = |b: &[u8]| {
        let mut v = b.to_vec();
        if v.len() % 2 == 1 {
            v.push(b' ');
        }
        v
    };
    let (charset, name) = (even(charset), even(name));
    let cs_placeholder = "C".repeat(charset.len());
    let pn_placeholder = "N".repeat(name.len());
    let obj = InMemDicomObject::from_element_iter([
        // As bytes: dicom-rs does not switch its text codec for these.
        DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::U8(cs_placeholder.as_bytes().to_vec().into()),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4"),
        ),
        DataElement::new(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            PrimitiveValue::from("Brain\\Head"),
        ),
        DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from(pn_placeholder.as_str()),
        ),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("1.2.3.4")
        .transfer_syntax(ts);
    let mut bytes = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut bytes).unwrap();
    let patch = |bytes: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        bytes[at..at + from.len()].copy_from_slice(to);
    };
    patch(&mut bytes, cs_placeholder.as_bytes(), &charset);
    patch(&mut bytes, pn_placeholder.as_bytes(), &name);
    bytes
}

fn name_of(file: &DefaultDicomObject) -> String {
    file.element(tags::PATIENT_NAME)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end()
        .to_owned()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn iso_2022_japanese_becomes_utf8() {
    let raw = hex(
        "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d\
         1b24422464245e24401b28425e1b2442243f246d24261b2842",
    );
    for ts in [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.2",
    ] {
        let file = from_bytes(&file_with(b"\\ISO 2022 IR 87", &raw, ts)).unwrap();
        assert_eq!(
            name_of(&file),
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "{ts}"
        );
        assert_eq!(
            file.element(tags::SPECIFIC_CHARACTER_SET)
                .unwrap()
                .to_str()
                .unwrap()
                .trim(),
            "ISO_IR 192"
        );
        let description: Vec<String> = file
            .element(tags::STUDY_DESCRIPTION)
            .unwrap()
            .to_multi_str()
            .unwrap()
            .to_vec();
        assert_eq!(description, ["Brain", "Head"], "{ts}");
    }
}

#[test]
fn korean_and_turkish() {
    let korean = hex(
        "486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e\
         1b242943b1e6b5bf",
    );
    let file = from_bytes(&file_with(
        b"\\ISO 2022 IR 149",
        &korean,
        "1.2.840.10008.1.2.1",
    ))
    .unwrap();
    assert_eq!(name_of(&file), "Hong^Gildong=洪^吉洞=홍^길동");
    let turkish = from_bytes(&file_with(
        b"ISO_IR 148",
        b"\xc7a\xf0r\xfd^\xdeeker",
        "1.2.840.10008.1.2.1",
    ))
    .unwrap();
    assert_eq!(name_of(&turkish), "Çağrı^Şeker");
}

#[test]
fn native_sets_are_read_as_they_are() {
    let file = from_bytes(&file_with(
        b"ISO_IR 100",
        b"M\xfcller^J\xfcrgen",
        "1.2.840.10008.1.2.1",
    ))
    .unwrap();
    assert_eq!(name_of(&file), "Müller^Jürgen");
    assert_eq!(
        file.element(tags::SPECIFIC_CHARACTER_SET)
            .unwrap()
            .to_str()
            .unwrap()
            .trim(),
        "ISO_IR 100",
        "a set dicom-rs reads keeps its label"
    );
}

#[test]
fn unknown_sets_are_read_as_they_are_and_garbage_is_an_error() {
    let unknown = file_with(b"ISO_IR 999", b"Doe^John", "1.2.840.10008.1.2.1");
    assert_eq!(name_of(&from_bytes(&unknown).unwrap()), "Doe^John");
    assert!(from_bytes(b"not dicom").is_err());
    assert!(from_bytes(&[0u8; 140]).is_err());
}

#[test]
fn a_viewer_query_in_iso_2022_is_read_as_utf8() {
    let korean = hex(
        "486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e\
         1b242943b1e6b5bf",
    );
    let file = file_with(b"\\ISO 2022 IR 149", &korean, "1.2.840.10008.1.2.1");
    // After the preamble, DICM and the meta group (its length at bytes 140..144).
    let meta_len = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let dataset = &file[144 + meta_len..];
    let object = read_dataset(dataset, "1.2.840.10008.1.2.1").unwrap();
    assert_eq!(
        object
            .element(tags::PATIENT_NAME)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end(),
        "Hong^Gildong=洪^吉洞=홍^길동"
    );
    assert!(read_dataset(&dataset[..10], "1.2.840.10008.1.2.1").is_err());
}

#[test]
fn utf8_is_written_back_in_a_viewer_set_byte_for_byte() {
    let raw = hex(
        "59616d6164615e5461726f753d1b24423b3345441b28425e1b244242404f3a1b28423d\
         1b24422464245e24401b28425e1b2442243f246d24261b2842",
    );
    let file = from_bytes(&file_with(b"\\ISO 2022 IR 87", &raw, "1.2.840.10008.1.2.1")).unwrap();
    let japanese = CharacterSet::from_specific_character_set("\\ISO 2022 IR 87").unwrap();
    let written = write_in(&file, &japanese).unwrap();
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut bytes = Vec::new();
    written.write_dataset_with_ts(&mut bytes, &ts).unwrap();
    // The standard's bytes (even length: no padding), labelled with the set...
    assert!(bytes.windows(raw.len()).any(|w| w == raw.as_slice()));
    assert!(bytes.windows(15).any(|w| w == b"\\ISO 2022 IR 87"));
    // ... and read back (as a viewer's query would be) to the same name.
    let back = read_dataset(&bytes, "1.2.840.10008.1.2.1").unwrap();
    assert_eq!(
        back.element(tags::PATIENT_NAME)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end(),
        "Yamada^Tarou=山田^太郎=やまだ^たろう"
    );
    // ASCII values stay as they are; a character the set lacks is an error.
    let description = written.element(tags::STUDY_DESCRIPTION).unwrap();
    assert_eq!(description.to_str().unwrap(), "Brain\\Head");
    let latin1 = CharacterSet::from_specific_character_set("ISO_IR 100").unwrap();
    let refused = write_in(&file, &latin1).unwrap_err();
    assert_eq!(refused.character, '山');
}

/// Every defined term of PS3.3 C.12.1.1.2 (and the multi-byte combinations the
/// standard's examples use): a file labelled with it is read to the same name and
/// written back in it, and dicom-rs never logs "Unsupported character set".
#[test]
fn no_defined_term_is_unsupported() {
    // (No value at all, the default repertoire, is read by dicom-rs itself.)
    let terms = [
        ("ISO_IR 100", "Müller^Jürgen"),
        ("ISO_IR 101", "Dvořák^Antonín"),
        ("ISO_IR 109", "Ħal^Għargħur"),
        ("ISO_IR 110", "Ķēniņš"),
        ("ISO_IR 144", "Люкceмия"),
        ("ISO_IR 127", "قباني^لنزار"),
        ("ISO_IR 126", "Διονυσιος"),
        ("ISO_IR 138", "שרון^דבורה"),
        ("ISO_IR 148", "Çağrı^Şeker"),
        ("ISO_IR 203", "Œuvre^Šárka"),
        ("ISO_IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ"),
        ("ISO_IR 166", "นามสกุล"),
        ("ISO_IR 192", "Wang^XiaoDong=王^小东"),
        ("GB18030", "Wang^XiaoDong=王^小東"),
        ("GBK", "Wang^XiaoDong=王^小东"),
        ("ISO 2022 IR 6", "DOE^JOHN"),
        ("ISO 2022 IR 100", "Müller^Jürgen"),
        ("ISO 2022 IR 101", "Dvořák^Antonín"),
        ("ISO 2022 IR 109", "Ħal^Għargħur"),
        ("ISO 2022 IR 110", "Ķēniņš"),
        ("ISO 2022 IR 144", "Люкceмия"),
        ("ISO 2022 IR 127", "قباني^لنزار"),
        ("ISO 2022 IR 126", "Διονυσιος"),
        ("ISO 2022 IR 138", "שרון^דבורה"),
        ("ISO 2022 IR 148", "Çağrı^Şeker"),
        ("ISO 2022 IR 203", "Œuvre^Šárka"),
        ("ISO 2022 IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ"),
        ("ISO 2022 IR 166", "นามสกุล"),
        ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎"),
        ("ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎"),
        ("\\ISO 2022 IR 87\\ISO 2022 IR 159", "Sato=佐藤^丂"),
        ("\\ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동"),
        ("\\ISO 2022 IR 58", "Zhang^XiaoDong=张^小东"),
        ("ISO 2022 IR 100\\ISO 2022 IR 126", "Buc^Jérôme=Διονυσιος"),
    ];
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let log = log.clone();
        move || Captured(log.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for (term, name) in terms {
            let set = CharacterSet::from_specific_character_set(term).unwrap();
            let bytes = set.encode(name, Delimiters::PersonName).unwrap();
            let file = from_bytes(&file_with(term.as_bytes(), &bytes, "1.2.840.10008.1.2.1"))
                .unwrap_or_else(|e| panic!("{term}: {e}"));
            assert_eq!(name_of(&file), name, "{term:?}");
            let written = write_in(&file, &set).unwrap();
            let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
            let mut out = Vec::new();
            written.write_dataset_with_ts(&mut out, &ts).unwrap();
            let back = read_dataset(&out, "1.2.840.10008.1.2.1").unwrap();
            let back_name = back.element(tags::PATIENT_NAME).unwrap().to_str().unwrap();
            assert_eq!(back_name.trim_end(), name, "{term:?} written back");
        }
    });
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!log.contains("Unsupported character set"), "{log}");
}

struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
