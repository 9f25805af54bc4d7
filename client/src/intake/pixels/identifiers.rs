//! The identifying values of one instance, in the forms they take when printed into
//! pixels, and the search for them in text read by OCR (case- and accent-insensitive).
//!
//! - Name: the family, given and middle name components (prefix and suffix are left
//!   out: `Dr`, `Jr` are everywhere), each word of at least 2 letters; a word must
//!   appear as a whole word, or, from 5 letters on, anywhere in the text with spaces
//!   and punctuation removed (OCR splits and merges words).
//! - Patient ID and Other Patient IDs: letters and digits only, anywhere in the text
//!   likewise (from 4 characters on; shorter ones as a whole word). In words with a
//!   digit, OCR's usual confusions `O`/`0` and `I`/`l`/`1` are undone first.
//! - Birth date: YYYYMMDD, YYYY-MM-DD, DD.MM.YYYY, DD/MM/YYYY, MM/DD/YYYY (any
//!   separator, leading zeros optional), DD-Mon-YYYY, Mon DD YYYY and the full month
//!   name (English). Two-digit years are not looked for.
//!
//! `Debug` never shows a value.

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// Which kind of identifier OCR found (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A name component.
    Name,
    /// The patient ID or another patient ID.
    PatientId,
    /// The birth date.
    BirthDate,
}

impl Found {
    /// For hold reasons and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Found::Name => "the patient's name",
            Found::PatientId => "the patient ID",
            Found::BirthDate => "the patient's birth date",
        }
    }
}

/// What is searched for.
#[derive(Clone, Default)]
pub struct Identifiers {
    /// Normalized name words.
    names: Vec<String>,
    /// Compact IDs (lowercase letters and digits).
    ids: Vec<String>,
    /// Compact date forms.
    dates: Vec<String>,
}

impl std::fmt::Debug for Identifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identifiers")
            .field("names", &self.names.len())
            .field("ids", &self.ids.len())
            .field("dates", &self.dates.len())
            .finish()
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl Identifiers {
    /// The identifiers of `object` (top level).
    pub fn of(object: &InMemDicomObject) -> Identifiers {
        let mut found = Identifiers::default();
        if let Some(name) = super::text(object, tags::PATIENT_NAME) {
            found.add_name(&name);
        }
        // Other Patient IDs (0010,1000): retired, still written by some systems.
        for tag in [tags::PATIENT_ID, dicom_core::Tag(0x0010, 0x1000)] {
            for value in strings(object, tag) {
                found.add_id(&value);
            }
        }
        if let Some(Value::Sequence(items)) = object
            .get(tags::OTHER_PATIENT_I_DS_SEQUENCE)
            .map(|e| e.value())
        {
            for item in items.items() {
                for value in strings(item, tags::PATIENT_ID) {
                    found.add_id(&value);
                }
            }
        }
        if let Some(date) = super::text(object, tags::PATIENT_BIRTH_DATE) {
            found.add_date(&date);
        }
        found
    }

    /// Nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.ids.is_empty() && self.dates.is_empty()
    }

    fn add_name(&mut self, name: &str) {
        let normalized = phi::pseudonym::normalize_name(name);
        for component in normalized.split('^').take(3) {
            let words = words(component);
            for word in &words {
                if word.chars().count() >= 2 && !self.names.contains(word) {
                    self.names.push(word.clone());
                }
            }
            let joined = words.concat();
            if words.len() > 1 && joined.chars().count() >= 5 && !self.names.contains(&joined) {
                self.names.push(joined);
            }
        }
    }

    fn add_id(&mut self, id: &str) {
        let compact = compact(&id.to_lowercase());
        if compact.chars().count() >= 2 && !self.ids.contains(&compact) {
            self.ids.push(compact);
        }
    }

    fn add_date(&mut self, date: &str) {
        let digits: String = date.chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 8 {
            return;
        }
        let (y, m, d) = (&digits[..4], &digits[4..6], &digits[6..]);
        let (Ok(month), Ok(day)) = (m.parse::<usize>(), d.parse::<u32>()) else {
            return;
        };
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return;
        }
        let (mu, du) = (month.to_string(), day.to_string());
        let full = MONTHS[month - 1];
        let short = &full[..3];
        let mut forms = vec![
            format!("{y}{m}{d}"),
            format!("{d}{m}{y}"),
            format!("{m}{d}{y}"),
            format!("{du}{mu}{y}"),
            format!("{mu}{du}{y}"),
            format!("{y}{mu}{du}"),
        ];
        for name in [short, full] {
            for day in [d, du.as_str()] {
                forms.push(format!("{day}{name}{y}"));
                forms.push(format!("{name}{day}{y}"));
            }
        }
        for form in forms {
            if !self.dates.contains(&form) {
                self.dates.push(form);
            }
        }
    }

    /// The first kind of identifier found in `text`, if any.
    pub fn find_in(&self, text: &str) -> Option<Found> {
        let text = Text::new(text);
        if self.names.iter().any(|w| {
            text.words.contains(w) || (w.chars().count() >= 5 && text.compact.contains(w.as_str()))
        }) {
            return Some(Found::Name);
        }
        if self.ids.iter().any(|id| {
            if id.chars().count() >= 4 {
                text.compact.contains(id.as_str()) || text.digits.contains(id.as_str())
            } else {
                text.words.contains(id) || text.digit_words.contains(id)
            }
        }) {
            return Some(Found::PatientId);
        }
        if self
            .dates
            .iter()
            .any(|d| text.compact.contains(d.as_str()) || text.digits.contains(d.as_str()))
        {
            return Some(Found::BirthDate);
        }
        None
    }
}

/// OCR text in the forms searched.
struct Text {
    words: Vec<String>,
    digit_words: Vec<String>,
    compact: String,
    digits: String,
}

impl Text {
    fn new(raw: &str) -> Text {
        let cleaned: String = raw
            .chars()
            .map(|c| if c == '^' || c == '=' { ' ' } else { c })
            .collect();
        let normalized = phi::pseudonym::normalize_name(&cleaned);
        let words = words(&normalized);
        let digit_words: Vec<String> = words.iter().map(|w| undo_confusions(w)).collect();
        Text {
            compact: words.concat(),
            digits: digit_words.concat(),
            words,
            digit_words,
        }
    }
}

/// Letters-and-digits runs of already normalized text.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn compact(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// In a word that has a digit: `o` -> `0`, `i`/`l` -> `1`.
fn undo_confusions(word: &str) -> String {
    if !word.chars().any(|c| c.is_ascii_digit()) {
        return word.to_string();
    }
    word.chars()
        .map(|c| match c {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect()
}

/// The values of a top-level string attribute.
fn strings(object: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<String> {
    object
        .get(tag)
        .and_then(|e| e.value().to_multi_str().ok())
        .map(|values| values.iter().map(|v| v.trim().to_string()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR};

    use super::*;

    fn ids(name: &str, id: &str, birth: &str) -> Identifiers {
        let object = InMemDicomObject::from_element_iter([
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from(name)),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from(id)),
            DataElement::new(
                tags::PATIENT_BIRTH_DATE,
                VR::DA,
                PrimitiveValue::from(birth),
            ),
        ]);
        Identifiers::of(&object)
    }

    #[test]
    fn birth_dates_are_found_in_common_formats() {
        let who = ids("", "", "19650311");
        for text in [
            "DOB 19650311",
            "DOB: 1965-03-11",
            "born 11.03.1965",
            "11/03/1965",
            "03/11/1965",
            "3/11/1965",
            "11.3.1965",
            "11-MAR-1965",
            "11 Mar 1965",
            "Mar 11, 1965",
            "March 11 1965",
            "1965/3/11",
            "DOB 11.O3.l965", // OCR confusions
        ] {
            assert_eq!(who.find_in(text), Some(Found::BirthDate), "{text}");
        }
        for text in [
            "1965",
            "11.04.1965",
            "12.03.1965",
            "Mar 1965",
            "Study 2024-03-11",
        ] {
            assert_eq!(who.find_in(text), None, "{text}");
        }
        let first = ids("", "", "20010102");
        assert_eq!(first.find_in("2 Jan 2001"), Some(Found::BirthDate));
        assert_eq!(first.find_in("1/2/2001"), Some(Found::BirthDate));
        assert!(ids("", "", "garbage").is_empty());
    }

    #[test]
    fn names_are_found_case_and_accent_insensitive() {
        let who = ids("Müller-Lüdenscheidt^Jürgen^K^Dr", "", "");
        assert_eq!(who.find_in("MULLER, JURGEN"), Some(Found::Name));
        assert_eq!(who.find_in("pat: jürgen"), Some(Found::Name));
        assert_eq!(
            who.find_in("LUDENSCHEIDTJ"),
            Some(Found::Name),
            "merged by OCR"
        );
        assert_eq!(who.find_in("Dr. House"), None, "prefixes are not searched");
        assert_eq!(
            who.find_in("K 12"),
            None,
            "one-letter components are not searched"
        );
        let short = ids("Li^Wu", "", "");
        assert_eq!(short.find_in("LI"), Some(Found::Name));
        assert_eq!(
            short.find_in("LIVER"),
            None,
            "short names only as whole words"
        );
    }

    #[test]
    fn patient_ids_are_found_without_punctuation() {
        let who = ids("", "MRN-0471122", "");
        assert_eq!(who.find_in("ID: MRN 0471122"), Some(Found::PatientId));
        assert_eq!(who.find_in("mrn0471122"), Some(Found::PatientId));
        assert_eq!(
            who.find_in("ID MRN-O47ll22"),
            Some(Found::PatientId),
            "OCR confusions"
        );
        assert_eq!(who.find_in("MRN 0471123"), None);
        let short = ids("", "42", "");
        assert_eq!(short.find_in("ID 42"), Some(Found::PatientId));
        assert_eq!(short.find_in("Depth 142 mm"), None);
    }

    #[test]
    fn debug_shows_no_value() {
        let who = ids("Doe^Jane", "SECRET-ID", "19650311");
        let shown = format!("{who:?}");
        assert!(!shown.contains("doe") && !shown.contains("secret") && !shown.contains("1965"));
    }
}
