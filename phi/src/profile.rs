//! The PS3.15 Annex E Basic Application Level Confidentiality Profile as data: every row
//! of Table E.1-1 ([`PROFILE`]) with its Basic Profile action and the actions of the
//! options this product supports ([`Options`]), plus the CID 7050 codes that describe
//! what was applied ([`Options::method_codes`]).
//!
//! This module only answers "what does the profile say about this tag"; applying it to
//! a data set is [`deid`](crate::deid)'s job.
//!
//! # Resolving the table's actions
//!
//! The engine does not know which IOD an instance belongs to, hence not whether an
//! attribute is Type 1, 2 or 3 there. Composite actions are therefore resolved to the
//! most conservative action that still keeps the instance valid (PS3.15 E.3):
//!
//! | printed   | resolved       | why                                                  |
//! |-----------|----------------|------------------------------------------------------|
//! | `X/Z`     | [`Action::Zero`]  | an empty value is valid for Type 2 and 3         |
//! | `X/D`     | [`Action::Dummy`] | a dummy is valid for Type 1 and 3                |
//! | `X/Z/D`   | [`Action::Dummy`] | a dummy is valid for every type                  |
//! | `Z/D`     | [`Action::Dummy`] | a dummy is valid for Type 1 and 2                |
//! | `X/Z/U*`  | [`Action::Uid`]   | the sequence stays and the UIDs in it are remapped |
//!
//! An option column overrides the basic action when that option is on: `K` keeps the
//! value, `C` asks for it to be cleaned ([`Action::Clean`]). No row has one supported
//! option saying `K` and another saying `C`; if one ever did, keeping would win because
//! the option was switched on to retain that information.
//!
//! Cleaning free text so that it keeps its meaning but loses identifying content cannot
//! be done reliably by a machine, so the engine cleans conservatively: a value that is
//! not a sequence gets the row's resolved basic action ([`basic_action`]: removed,
//! emptied or replaced by a dummy, never kept), a sequence is treated like a `D`
//! sequence (items kept, the profile applied to them, unlisted free text and person
//! names inside replaced; see [`deid`](crate::deid)).
//!
//! Only the four option columns this product supports are transcribed; rows are all
//! there. Private attributes (odd groups) are a row of their own: remove.

mod table;

/// What to do with an attribute (PS3.15 Table E.1-1 action codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `D`: replace with a non-empty dummy value consistent with the VR.
    Dummy,
    /// `Z`: replace with an empty value of the same VR.
    Zero,
    /// `X`: remove.
    Remove,
    /// `K`: keep (sequences still have the profile applied to their items).
    Keep,
    /// `C`: clean; see the module doc for how the engine does it.
    Clean,
    /// `U`: replace UIDs with consistent pseudonymous UIDs.
    Uid,
}

/// One row of Table E.1-1.
///
/// A tag `(g, e)` matches when `g & group.1 == group.0` and `e & element.1 ==
/// element.0`: single tags have full masks, patterns like `(60xx,3000)` have the
/// wildcard digits masked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Group value and mask.
    pub group: (u16, u16),
    /// Element value and mask.
    pub element: (u16, u16),
    /// Attribute name as the standard prints it.
    pub name: &'static str,
    /// Basic Profile action as printed (`"X"`, `"X/Z/D"`, ...).
    pub basic_code: &'static str,
    /// The Basic Profile action resolved as described in the module doc.
    pub basic: Action,
    /// Retain Longitudinal Temporal Information with Full Dates Option column.
    pub retain_dates: Option<Action>,
    /// Retain Patient Characteristics Option column.
    pub retain_patient: Option<Action>,
    /// Retain Device Identity Option column.
    pub retain_device: Option<Action>,
    /// Clean Descriptors Option column.
    pub clean_descriptors: Option<Action>,
}

impl Row {
    /// Whether this row is a single tag rather than a pattern.
    pub fn is_exact(&self) -> bool {
        self.group.1 == 0xFFFF && self.element.1 == 0xFFFF
    }

    /// Whether `tag` is covered by this row.
    pub fn matches(&self, (group, element): (u16, u16)) -> bool {
        group & self.group.1 == self.group.0 && element & self.element.1 == self.element.0
    }

    /// The action for this row under `options`.
    pub fn action(&self, options: &Options) -> Action {
        let overrides = [
            (options.retain_longitudinal_full_dates, self.retain_dates),
            (options.retain_patient_characteristics, self.retain_patient),
            (options.retain_device_identity, self.retain_device),
            (options.clean_descriptors, self.clean_descriptors),
        ];
        let enabled = || {
            overrides
                .iter()
                .filter(|(on, _)| *on)
                .filter_map(|(_, a)| *a)
        };
        if enabled().any(|a| a == Action::Keep) {
            Action::Keep
        } else if enabled().any(|a| a == Action::Clean) {
            Action::Clean
        } else {
            self.basic
        }
    }
}

/// Every row of PS3.15 Table E.1-1 (2024b): single tags sorted by tag, then patterns.
pub const PROFILE: &[Row] = table::TABLE;

/// The row of [`PROFILE`] that covers `tag`, if any.
pub fn row(tag: (u16, u16)) -> Option<&'static Row> {
    let exact_len = PROFILE.partition_point(Row::is_exact);
    let (exact, patterns) = PROFILE.split_at(exact_len);
    match exact.binary_search_by_key(&tag, |r| (r.group.0, r.element.0)) {
        Ok(i) => Some(&exact[i]),
        Err(_) => patterns.iter().find(|r| r.matches(tag)),
    }
}

/// The action for `tag` under `options`; `None` when the table does not list the tag
/// (the attribute is kept).
pub fn action(tag: (u16, u16), options: &Options) -> Option<Action> {
    row(tag).map(|r| r.action(options))
}

/// The resolved Basic Profile action for `tag`, ignoring options: what the engine does
/// when asked to clean a value that is not a sequence.
pub fn basic_action(tag: (u16, u16)) -> Option<Action> {
    row(tag).map(|r| r.basic)
}

/// The profile options, each a configuration switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Retain Longitudinal Temporal Information with Full Dates (the gateway indexes by
    /// date).
    pub retain_longitudinal_full_dates: bool,
    /// Retain Patient Characteristics (sex, age, size, weight, ...).
    pub retain_patient_characteristics: bool,
    /// Retain Device Identity (serial numbers, station names, ...).
    pub retain_device_identity: bool,
    /// Clean Descriptors (descriptions and comments).
    pub clean_descriptors: bool,
    /// Clean Pixel Data: the caller removed burned-in text from the pixels before
    /// de-identification (this crate never touches pixel data); only adds the code.
    pub clean_pixel_data: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retain_longitudinal_full_dates: true,
            retain_patient_characteristics: false,
            retain_device_identity: false,
            clean_descriptors: false,
            clean_pixel_data: false,
        }
    }
}

/// Coding Scheme Designator of the CID 7050 codes.
pub const METHOD_CODING_SCHEME: &str = "DCM";

impl Options {
    /// The CID 7050 "De-identification Method" codes (code value, code meaning; scheme
    /// [`METHOD_CODING_SCHEME`]) for the profile with these options: the Basic Profile
    /// first, then one code per option in use.
    pub fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        let options = [
            (
                self.retain_longitudinal_full_dates,
                (
                    "113106",
                    "Retain Longitudinal Temporal Information Full Dates Option",
                ),
            ),
            (
                self.retain_patient_characteristics,
                ("113108", "Retain Patient Characteristics Option"),
            ),
            (
                self.retain_device_identity,
                ("113109", "Retain Device Identity Option"),
            ),
            (
                self.clean_descriptors,
                ("113105", "Clean Descriptors Option"),
            ),
            (self.clean_pixel_data, ("113101", "Clean Pixel Data Option")),
        ];
        std::iter::once(("113100", "Basic Application Confidentiality Profile"))
            .chain(
                options
                    .into_iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, code)| code),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests;
