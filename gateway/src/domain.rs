//! Validated newtypes for values that cross the gateway's edges. A value of these
//! types has been checked once, at the edge, and can then be used in paths, SQL
//! parameters and log lines.

use std::fmt;

/// Row id of a facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FacilityId(pub i64);

impl fmt::Display for FacilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A facility name: 1 to 64 characters of `a-z A-Z 0-9 - _ .`, starting with a letter
/// or digit. Used as certificate common name and in log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FacilityName(String);

impl FacilityName {
    /// Validates a facility name.
    pub fn parse(name: &str) -> Result<FacilityName, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if name.len() > 64 || !first_ok || !name.chars().all(ok_char) {
            return Err(format!(
                "invalid facility name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ));
        }
        Ok(FacilityName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FacilityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A DICOM UID: 1 to 64 characters of digits and dots, no empty component, no
/// leading zero in a component (PS3.5 9.1). Safe in paths and SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(String);

impl Uid {
    /// Validates a UID.
    pub fn parse(uid: &str) -> Result<Uid, String> {
        let shown: String = uid
            .chars()
            .take(80)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        let bad = || format!("invalid UID {shown:?}: UIDs are 1 to 64 digits and dots");
        if uid.is_empty() || uid.len() > 64 {
            return Err(bad());
        }
        for component in uid.split('.') {
            let digits = !component.is_empty() && component.bytes().all(|b| b.is_ascii_digit());
            if !digits || (component.len() > 1 && component.starts_with('0')) {
                return Err(bad());
            }
        }
        Ok(Uid(uid.to_string()))
    }

    /// The UID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A DICOM AE title: 1 to 16 printable ASCII characters, no backslash (PS3.5 6.2).
/// Leading and trailing spaces are not significant and are removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AeTitle(String);

impl AeTitle {
    /// Validates an AE title (after trimming spaces).
    pub fn parse(ae: &str) -> Result<AeTitle, String> {
        let trimmed = ae.trim_matches(' ');
        let printable = |c: char| (' '..='~').contains(&c) && c != '\\';
        if trimmed.is_empty() || trimmed.len() > 16 || !trimmed.chars().all(printable) {
            let shown: String = ae.chars().take(40).collect();
            return Err(format!(
                "invalid AE title {shown:?}: use 1 to 16 printable ASCII characters, no backslash"
            ));
        }
        Ok(AeTitle(trimmed.to_string()))
    }

    /// The AE title, without padding.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AeTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_checked() {
        assert!(Uid::parse("1.2.840.10008.5.1.4.1.1.2").is_ok());
        assert!(Uid::parse("2.25.0").is_ok());
        for bad in [
            "",
            "1..2",
            "1.2.",
            ".1",
            "1.02",
            "../etc/passwd",
            "1.2.3/4",
            "1.2 ",
            &"1.".repeat(40),
        ] {
            assert!(Uid::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn facility_names_are_checked() {
        assert!(FacilityName::parse("st-mary.radiology_2").is_ok());
        for bad in ["", "-x", "a b", "a/b", "ü", &"a".repeat(65)] {
            assert!(FacilityName::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn ae_titles_are_checked() {
        assert_eq!(AeTitle::parse(" DEST ").unwrap().as_str(), "DEST");
        assert!(AeTitle::parse("WORK STATION_1").is_ok());
        assert!(AeTitle::parse(&"A".repeat(16)).is_ok());
        for bad in ["", "   ", "A\\B", "A\tB", "É", &"A".repeat(17)] {
            assert!(AeTitle::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
