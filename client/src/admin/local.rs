//! Local administration of the client: `pacs-client modality add|remove|list` (the
//! AEs allowed to store here, `[[edge.modalities]]`) and `pacs-client rule
//! add|remove|list` (`[[sharing.rules]]`). Edits the config file in place with
//! `toml_edit`, so comments and layout survive; the edited text must load through
//! [`Config::parse`] (the loader `serve` uses) before it replaces the file, which
//! happens atomically (temp file in the same folder, fsync, rename) with the file's
//! mode kept. A running `serve` picks the change up at its next association (it
//! follows the config file: `intake::reload`).
//!
//! Does not touch any other key of the file.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::config::{Config, ConfigError, Destination, Modality, Rule, SharingConfig};

/// Why an edit was refused or failed; the file is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum LocalAdminError {
    /// No `--config`.
    #[error(
        "no config file: give it with --config FILE (or PACS_CLIENT_CONFIG); modality and rule commands edit that file"
    )]
    NoConfigFile,
    /// Cannot read or parse the file as TOML.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file's layout is not one we can edit (e.g. `edge` is not a table).
    #[error("cannot edit {path}: {what}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is in the way.
        what: String,
    },
    /// The modality is already there.
    #[error("modality {0} is already allowed to store here (`pacs-client modality list`)")]
    DuplicateAe(String),
    /// Would shadow a viewer.
    #[error(
        "{0} is configured as a viewer ([[edge.viewers]]); one AE title cannot be both a modality and a viewer"
    )]
    ViewerAe(String),
    /// No such modality.
    #[error("no modality {0} in the config (`pacs-client modality list` shows them)")]
    UnknownAe(String),
    /// A value that the edge or the rules could never match.
    #[error("{0}")]
    Invalid(String),
    /// Rule number not in the list.
    #[error("there is no rule {index}: the config has {count} rule(s) (`pacs-client rule list`)")]
    IndexOutOfRange {
        /// As given (1-based).
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// The edited file would not load.
    #[error("the edited config would not load, so the file was left unchanged: {0}")]
    Rejected(#[source] ConfigError),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Checks a DICOM AE title (VR AE: 1 to 16 characters of printable ASCII, no
/// backslash; leading and trailing spaces are not significant) and returns it trimmed.
pub fn parse_ae_title(value: &str) -> Result<String, LocalAdminError> {
    let ae = value.trim();
    if ae.is_empty() || ae.len() > 16 {
        return Err(LocalAdminError::Invalid(format!(
            "{value:?} is not an AE title: it must have 1 to 16 characters"
        )));
    }
    if !ae.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        return Err(LocalAdminError::Invalid(format!(
            "{value:?} is not an AE title: only printable ASCII without backslash is allowed"
        )));
    }
    Ok(ae.to_string())
}

/// Checks a modality's IP address; returns it as the edge compares it.
pub fn parse_host(value: &str) -> Result<String, LocalAdminError> {
    value
        .trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| {
            LocalAdminError::Invalid(format!(
                "{value:?} is not an IP address (the edge matches the modality's address, not a host name)"
            ))
        })
}

/// Checks a Modality value (VR CS: 1 to 16 of `A-Z 0-9 _`); returns it upper-cased.
pub fn parse_modality(value: &str) -> Result<String, LocalAdminError> {
    let m = value.trim().to_ascii_uppercase();
    if m.is_empty() || m.len() > 16 || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(LocalAdminError::Invalid(format!(
            "{value:?} is not a modality: use a DICOM code such as CT, MR, US, CR"
        )));
    }
    Ok(m)
}

/// Checks a Study Description pattern (`*` and `?` wildcards): 1 to 64 characters
/// (VR LO), no backslash or control characters.
pub fn parse_pattern(value: &str) -> Result<String, LocalAdminError> {
    let bad = |why: &str| {
        LocalAdminError::Invalid(format!("bad study description pattern {value:?}: {why}"))
    };
    if value.trim().is_empty() {
        return Err(bad(
            "it is empty (use `*` and `?` as wildcards, e.g. \"*research*\")",
        ));
    }
    if value.chars().count() > 64 {
        return Err(bad(
            "longer than 64 characters, so no Study Description can match it",
        ));
    }
    if value.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad(
            "control characters and backslashes cannot occur in a Study Description",
        ));
    }
    Ok(value.to_string())
}

/// The client's config file, parsed for editing.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    doc: DocumentMut,
    config: Config,
}

/// `[[x.y]]` or `x.y = [{..}]`: the two ways a list of entries can be written.
enum Entries<'a> {
    Tables(&'a mut ArrayOfTables),
    Inline(&'a mut Array),
}

impl Entries<'_> {
    fn remove(&mut self, index: usize) {
        match self {
            Entries::Tables(tables) => {
                // A comment above the first entry usually describes the whole list.
                let prefix = (index == 0)
                    .then(|| tables.get(0).and_then(|t| t.decor().prefix()?.as_str()))
                    .flatten()
                    .map(str::to_string);
                tables.remove(index);
                if let (Some(prefix), Some(next)) = (prefix, tables.get_mut(0)) {
                    let own = next
                        .decor()
                        .prefix()
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .to_string();
                    next.decor_mut()
                        .set_prefix(format!("{prefix}{}", own.trim_start()));
                }
            }
            Entries::Inline(array) => {
                array.remove(index);
            }
        }
    }

    fn insert(&mut self, index: usize, fields: &[(&str, String)]) {
        match self {
            Entries::Tables(tables) => {
                let mut table = Table::new();
                for (key, value) in fields {
                    table.insert(key, toml_edit::value(value.as_str()));
                }
                let mut all: Vec<Table> = tables.iter().cloned().collect();
                all.insert(index.min(all.len()), table);
                tables.clear();
                for table in all {
                    tables.push(table);
                }
            }
            Entries::Inline(array) => {
                let mut table = InlineTable::new();
                for (key, value) in fields {
                    table.insert(*key, Value::from(value.as_str()));
                }
                table.fmt();
                array.insert(index.min(array.len()), table);
            }
        }
    }
}

impl ConfigFile {
    /// Reads and parses the file (as TOML for editing, and through the loader).
    pub fn open(path: Option<&Path>) -> Result<ConfigFile, LocalAdminError> {
        let path = path.ok_or(LocalAdminError::NoConfigFile)?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let config = Config::parse(&text, path)?;
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| ConfigError::Parse {
                path: path.into(),
                message: e.to_string(),
            })?;
        Ok(ConfigFile {
            path: path.into(),
            doc,
            config,
        })
    }

    /// The configuration as the loader reads it.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The list `section.key`, created as `[[section.key]]` when absent.
    fn entries(&mut self, section: &str, key: &str) -> Result<Entries<'_>, LocalAdminError> {
        let path = self.path.clone();
        let layout = |what: String| LocalAdminError::Layout {
            path: path.clone(),
            what,
        };
        let root = self.doc.as_table_mut();
        if !root.contains_key(section) {
            let mut table = Table::new();
            table.set_implicit(true);
            root.insert(section, Item::Table(table));
        }
        let section_table: &mut dyn TableLike = root
            .get_mut(section)
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| layout(format!("`{section}` is not a table")))?;
        if !section_table.contains_key(key) {
            section_table.insert(key, Item::ArrayOfTables(ArrayOfTables::new()));
        }
        match section_table.get_mut(key) {
            Some(Item::ArrayOfTables(tables)) => Ok(Entries::Tables(tables)),
            Some(Item::Value(Value::Array(array))) => Ok(Entries::Inline(array)),
            _ => Err(layout(format!("`{section}.{key}` is not a list of tables"))),
        }
    }

    /// Checks the edited text with the loader, then replaces the file atomically.
    fn save(self) -> Result<Config, LocalAdminError> {
        let text = self.doc.to_string();
        let config = Config::parse(&text, &self.path).map_err(LocalAdminError::Rejected)?;
        write_atomically(&self.path, text.as_bytes()).map_err(|source| LocalAdminError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(config)
    }

    /// Allows a modality to store here; returns the modalities now configured.
    pub fn add_modality(
        mut self,
        ae_title: &str,
        host: Option<&str>,
    ) -> Result<Vec<Modality>, LocalAdminError> {
        let ae = parse_ae_title(ae_title)?;
        let host = host.map(parse_host).transpose()?;
        let edge = &self.config.edge;
        if edge.modalities.iter().any(|m| m.ae_title.trim() == ae) {
            return Err(LocalAdminError::DuplicateAe(ae));
        }
        if edge.viewers.iter().any(|v| v.ae_title.trim() == ae) {
            return Err(LocalAdminError::ViewerAe(ae));
        }
        let at = edge.modalities.len();
        let mut fields = vec![("ae_title", ae)];
        fields.extend(host.map(|h| ("host", h)));
        self.entries("edge", "modalities")?.insert(at, &fields);
        Ok(self.save()?.edge.modalities)
    }

    /// Removes a modality; returns the modalities now configured.
    pub fn remove_modality(mut self, ae_title: &str) -> Result<Vec<Modality>, LocalAdminError> {
        let ae = ae_title.trim();
        let index = self
            .config
            .edge
            .modalities
            .iter()
            .position(|m| m.ae_title.trim() == ae)
            .ok_or_else(|| LocalAdminError::UnknownAe(ae.to_string()))?;
        self.entries("edge", "modalities")?.remove(index);
        Ok(self.save()?.edge.modalities)
    }

    /// Adds a sharing rule before rule `position` (1-based; default: last);
    /// returns the rules now configured.
    pub fn add_rule(
        mut self,
        rule: &Rule,
        position: Option<usize>,
    ) -> Result<SharingConfig, LocalAdminError> {
        let count = self.config.sharing.rules.len();
        let at = match position {
            None => count,
            Some(n) if (1..=count + 1).contains(&n) => n - 1,
            Some(index) => return Err(LocalAdminError::IndexOutOfRange { index, count }),
        };
        let fields = rule_fields(rule)?;
        self.entries("sharing", "rules")?.insert(at, &fields);
        Ok(self.save()?.sharing)
    }

    /// Removes rule `index` (1-based, as `rule list` numbers them).
    pub fn remove_rule(mut self, index: usize) -> Result<SharingConfig, LocalAdminError> {
        let count = self.config.sharing.rules.len();
        if !(1..=count).contains(&index) {
            return Err(LocalAdminError::IndexOutOfRange { index, count });
        }
        self.entries("sharing", "rules")?.remove(index - 1);
        Ok(self.save()?.sharing)
    }
}

/// The validated keys of a new rule, in the order the file shows them.
fn rule_fields(rule: &Rule) -> Result<Vec<(&'static str, String)>, LocalAdminError> {
    let mut fields = Vec::new();
    if let Some(ae) = &rule.calling_ae {
        fields.push(("calling_ae", parse_ae_title(ae)?));
    }
    if let Some(m) = &rule.modality {
        fields.push(("modality", parse_modality(m)?));
    }
    if let Some(p) = &rule.study_description {
        fields.push(("study_description", parse_pattern(p)?));
    }
    if fields.is_empty() {
        return Err(LocalAdminError::Invalid(
            "a rule needs at least one of --calling-ae, --modality, --description; to change what happens when no rule matches, set `[sharing] default`".into(),
        ));
    }
    fields.push(("action", action_name(rule.action).to_string()));
    Ok(fields)
}

/// How an action is written in the config file.
pub fn action_name(action: Destination) -> &'static str {
    match action {
        Destination::Forward => "forward",
        Destination::Local => "local",
    }
}

/// Writes `bytes` over `path` atomically: a temp file next to it with the same
/// mode, fsynced, renamed over it, and the folder fsynced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// `modality list` as text.
pub fn format_modalities(modalities: &[Modality]) -> String {
    if modalities.is_empty() {
        return "no modalities are allowed to store here (`pacs-client modality add AE`)\n".into();
    }
    let mut out = format!("{:<16}  host\n", "AE title");
    for m in modalities {
        out.push_str(&format!(
            "{:<16}  {}\n",
            m.ae_title.trim(),
            m.host.as_deref().unwrap_or("any")
        ));
    }
    out
}

/// `rule list` as text: numbered in evaluation order, then the default.
pub fn format_rules(sharing: &SharingConfig) -> String {
    let any = |v: &Option<String>| v.as_deref().unwrap_or("*").to_string();
    let mut out = String::from(
        "first matching rule wins; a per-study flag (`pacs-client study share|unshare`) overrides them\n",
    );
    out.push_str(&format!(
        "{:>3}  {:<16}  {:<8}  {:<24}  action\n",
        "#", "calling AE", "modality", "study description"
    ));
    for (i, rule) in sharing.rules.iter().enumerate() {
        out.push_str(&format!(
            "{:>3}  {:<16}  {:<8}  {:<24}  {}\n",
            i + 1,
            any(&rule.calling_ae),
            any(&rule.modality),
            any(&rule.study_description),
            action_name(rule.action)
        ));
    }
    out.push_str(&format!(
        "default (no rule matches): {}\n",
        action_name(sharing.default)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# site config\nfacility = \"st-mary\"\n\n[edge]\n# our AE\nae_title = \"PACS_CLIENT\"\n\n\
        # Modalities allowed to store here.\n[[edge.modalities]]\nae_title = \"CT_1\" # the CT\n\n\
        [[edge.viewers]]\nae_title = \"VIEWER1\"\nuser = \"dr.house\"\n\n[sharing]\ndefault = \"forward\"\n";

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        (dir, path)
    }

    fn open(path: &Path) -> ConfigFile {
        ConfigFile::open(Some(path)).unwrap()
    }

    #[test]
    fn add_then_remove_gives_back_the_same_file() {
        let (_dir, path) = file(FILE);
        let now = open(&path)
            .add_modality(" MR_2 ", Some("10.0.0.7"))
            .unwrap();
        assert_eq!(now.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ae_title = \"CT_1\" # the CT"), "{text}");
        let mr = text.find("ae_title = \"MR_2\"").expect("appended");
        assert!(
            mr > text.find("CT_1").unwrap() && mr < text.find("VIEWER1").unwrap(),
            "{text}"
        );
        assert!(text.contains("host = \"10.0.0.7\""));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "mode kept");
        open(&path).remove_modality("MR_2").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    }

    #[test]
    fn refusals_leave_the_file_alone() {
        let (_dir, path) = file(FILE);
        let refused = [
            open(&path).add_modality("CT_1", None).unwrap_err(),
            open(&path).add_modality("VIEWER1", None).unwrap_err(),
            open(&path)
                .add_modality("A_VERY_LONG_AE_TITLE", None)
                .unwrap_err(),
            open(&path)
                .add_modality("MR_2", Some("ct.local"))
                .unwrap_err(),
            open(&path).remove_modality("NOPE").unwrap_err(),
            open(&path).remove_rule(1).unwrap_err(),
        ];
        assert!(matches!(refused[0], LocalAdminError::DuplicateAe(_)));
        assert!(matches!(refused[1], LocalAdminError::ViewerAe(_)));
        assert!(matches!(refused[2], LocalAdminError::Invalid(_)));
        assert!(matches!(refused[3], LocalAdminError::Invalid(_)));
        assert!(matches!(refused[4], LocalAdminError::UnknownAe(_)));
        assert!(matches!(
            refused[5],
            LocalAdminError::IndexOutOfRange { index: 1, count: 0 }
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    }

    #[test]
    fn rules_are_inserted_in_order_and_checked() {
        let (_dir, path) = file(FILE);
        let rule = |ae: Option<&str>, desc: Option<&str>, action| Rule {
            calling_ae: ae.map(Into::into),
            modality: None,
            study_description: desc.map(Into::into),
            action,
        };
        open(&path)
            .add_rule(&rule(None, Some("*research*"), Destination::Local), None)
            .unwrap();
        let sharing = open(&path)
            .add_rule(&rule(Some("US_2"), None, Destination::Forward), Some(1))
            .unwrap();
        assert_eq!(sharing.rules.len(), 2);
        assert_eq!(sharing.rules[0].calling_ae.as_deref(), Some("US_2"));
        assert_eq!(
            sharing.rules[1].study_description.as_deref(),
            Some("*research*")
        );
        let listed = format_rules(&sharing);
        assert!(listed.contains("  1  US_2"), "{listed}");
        assert!(
            listed.contains("default (no rule matches): forward"),
            "{listed}"
        );

        let before = std::fs::read_to_string(&path).unwrap();
        for bad in [
            rule(None, Some(""), Destination::Local),
            rule(None, Some("a\\b"), Destination::Local),
            rule(None, None, Destination::Local),
        ] {
            assert!(matches!(
                open(&path).add_rule(&bad, None),
                Err(LocalAdminError::Invalid(_))
            ));
        }
        assert!(matches!(
            open(&path).add_rule(&rule(Some("X"), None, Destination::Local), Some(4)),
            Err(LocalAdminError::IndexOutOfRange { index: 4, count: 2 })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        let sharing = open(&path).remove_rule(1).unwrap();
        assert_eq!(sharing.rules.len(), 1);
        assert_eq!(sharing.rules[0].action, Destination::Local);
    }

    #[test]
    fn inline_lists_and_missing_sections_are_edited_too() {
        let (_dir, path) =
            file("facility = \"x\"\n[edge]\nmodalities = [{ ae_title = \"CT_1\" }]\n");
        let now = open(&path).add_modality("MR_2", None).unwrap();
        assert_eq!(now.len(), 2);
        let (_dir, path) = file("facility = \"x\"\n");
        open(&path).add_modality("MR_2", None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[[edge.modalities]]"), "{text}");
        assert!(!text.contains("[edge]\n"), "{text}");
    }

    #[test]
    fn a_file_the_loader_refuses_is_not_edited() {
        let (_dir, path) = file("[edge]\nlisten_typo = 1\n");
        assert!(matches!(
            ConfigFile::open(Some(&path)),
            Err(LocalAdminError::Config(ConfigError::Parse { .. }))
        ));
        assert!(matches!(
            ConfigFile::open(None),
            Err(LocalAdminError::NoConfigFile)
        ));
    }
}
