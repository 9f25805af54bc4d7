//! Translation between the clinician's original values and the gateway's
//! pseudonymous ones, shared by every clinician-facing flow (the `query` and
//! `retrieve` commands, the DIMSE viewer proxy): identifiers become pseudonyms,
//! name tokens and pseudonymous UIDs (`name_tokens_key`, [`candidates`],
//! `find::translate`); what comes back is unsealed and re-identified with the
//! facility key ([`unseal_item`], `find::reidentify_row`, [`reidentify_instance`]).
//! Data sets travel in Explicit VR Little Endian (`encode`, `decode`).
//!
//! Pure functions: no I/O, no key handling beyond the calls into `phi`.

pub(crate) mod find;
mod level;

use anyhow::Context;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::scu::ReceivedInstance;
use phi::keys::KeyRing;
use phi::seal::Purpose;

pub(crate) use level::Level;

/// The name search tokens a query for `name` sends to the gateway (any may match):
/// the token of what was typed, and for a plain name the full-name blind index of
/// patients indexed before tokens existed (`legacy:<index>`). `None` for wildcard
/// patterns without a token.
pub(crate) fn name_tokens_key(ring: &KeyRing, name: &str) -> Option<Vec<String>> {
    let query = phi::name_search::NameQuery::parse(name)?;
    let mut tokens = vec![query.token(ring)];
    if matches!(query, phi::name_search::NameQuery::Components(_)) {
        let legacy = phi::pseudonym::blind_index(ring, name);
        if !legacy.is_empty() {
            tokens.push(format!("legacy:{legacy}"));
        }
    }
    Some(tokens)
}

/// Encodes a data set in Explicit VR Little Endian.
pub(crate) fn encode(obj: &InMemDicomObject) -> anyhow::Result<Vec<u8>> {
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &ts)
        .context("cannot encode the query")?;
    Ok(out)
}

/// Decodes an Explicit VR Little Endian data set.
pub(crate) fn decode(bytes: &[u8]) -> anyhow::Result<InMemDicomObject> {
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    InMemDicomObject::read_dataset_with_ts(bytes, &ts).context("the gateway sent a bad response")
}

/// A trimmed text value, empty when absent.
pub(crate) fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.value().to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).trim_start().to_string())
        .unwrap_or_default()
}

/// The original values sealed in the (0400,0500) item of a C-FIND response at any
/// level: the identity summary (0013,1011) of the instance the item belongs to (for a
/// study, its matched patient's first stored instance; for a series, its first), or
/// for instances stored without a summary their full record (0400,0520). `None` when
/// the response has no item, or it does not open with this facility's key. The result
/// holds the bound (pseudonymous) SOP Instance UID overlaid with the originals.
pub fn unseal_item(
    response: &InMemDicomObject,
    ring: &KeyRing,
    facility: &str,
) -> Option<InMemDicomObject> {
    let sequence = response.get(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE)?;
    let item = sequence.items()?.first()?;
    let bound_to = text(item, tags::REFERENCED_SOP_INSTANCE_UID);
    if bound_to.is_empty() {
        return None;
    }
    let (envelope, purpose) = match phi::deid::identity_summary(item) {
        Some(summary) => (summary, Purpose::Summary),
        None => (
            item.get(tags::ENCRYPTED_CONTENT)?
                .value()
                .primitive()?
                .to_bytes()
                .into_owned(),
            Purpose::Instance,
        ),
    };
    let originals =
        phi::deid::unseal_originals(ring, facility, &bound_to, &envelope, purpose).ok()?;
    let mut out = InMemDicomObject::from_element_iter([DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(bound_to),
    )]);
    for element in originals {
        out.put(element);
    }
    Some(out)
}

/// The gateway (pseudonymous) UIDs to try for a UID given on the command line: the
/// forward mapping first, and the UID itself when it looks pseudonymous (`2.25.`;
/// an original may also use that root, hence both).
pub fn candidates(ring: &KeyRing, given: &str) -> Vec<String> {
    let mut out = vec![phi::pseudonym::uid(ring, given)];
    if given.starts_with(phi::pseudonym::UID_ROOT) {
        out.push(given.to_string());
    }
    out
}

/// Decodes one received instance and restores its original identifiers and UIDs.
pub fn reidentify_instance(
    instance: &ReceivedInstance,
    ring: &KeyRing,
    facility: &str,
) -> anyhow::Result<InMemDicomObject> {
    let ts = TransferSyntaxRegistry
        .get(&instance.transfer_syntax)
        .with_context(|| format!("unknown transfer syntax {}", instance.transfer_syntax))?;
    let object = InMemDicomObject::read_dataset_with_ts(instance.data.as_slice(), ts)
        .context("cannot decode the received data set")?;
    phi::deid::reidentify(&object, ring, facility)
        .context("cannot re-identify (sealed with another facility key?)")
}

/// DICOM wildcard matching (`*` any run, `?` one character), optionally
/// case-insensitive (person names).
pub fn wildcard_match(pattern: &str, value: &str, fold_case: bool) -> bool {
    let chars = |s: &str| -> Vec<char> {
        if fold_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, v) = (chars(pattern), chars(value));
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("müller*", "Müller1^Jürgen", true));
        assert!(wildcard_match("M?ller1*", "Müller1^Jürgen", true));
        assert!(!wildcard_match("müller*", "Müller1^Jürgen", false));
        assert!(!wildcard_match("Meier*", "Müller1^Jürgen", true));
        assert!(wildcard_match("*", "", false));
        assert!(!wildcard_match("a", "ab", false));
    }
}
