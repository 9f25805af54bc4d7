//! QIDO-RS study searches: the C-FIND benchmark's picks ([`crate::findbench::queries`])
//! as `/studies` query strings, timed one after another on a kept-alive connection
//! from the request until the last byte of the answer, matches counted afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::http::WebPeer;
use crate::findbench::peer::Stats;
use crate::findbench::queries::{Find, Kind};

/// The kinds of study search the issue sets goals for.
pub const KINDS: [Kind; 2] = [Kind::Patient, Kind::ModalityDates];

/// What QIDO-RS asks for.
pub const ACCEPT: &str = "application/dicom+json";

/// The QIDO-RS path and query of `find` (study-level kinds only; default return
/// attributes, no `includefield`, so both peers answer their own default set).
pub fn path(find: &Find) -> Result<String> {
    match find {
        Find::Patient(id) => Ok(format!("/studies?PatientID={id}")),
        Find::ModalityDates { modality, from, to } => Ok(format!(
            "/studies?ModalitiesInStudy={modality}&StudyDate={from}-{to}"
        )),
        Find::StudyUid(uid) => Ok(format!("/studies?StudyInstanceUID={uid}")),
        Find::Universal | Find::Images { .. } => {
            bail!("{:?} is not measured over QIDO-RS", find.kind())
        }
    }
}

/// The Study Instance UIDs in a QIDO-RS answer, sorted.
pub fn study_uids(body: &[u8]) -> Result<Vec<String>> {
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(body).context("QIDO-RS answer is not a JSON array")?;
    let mut out = items
        .iter()
        .map(|item| {
            item.pointer("/0020000D/Value/0")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .context("a QIDO-RS match without Study Instance UID")
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    Ok(out)
}

/// Runs the first `warmup` of `finds` untimed, then times each of `finds` against
/// `peer`. Matches per query are counted from the JSON after the clock stops.
pub async fn measure(peer: &WebPeer, finds: &[Find], warmup: usize) -> Result<Stats> {
    let paths = finds.iter().map(path).collect::<Result<Vec<_>>>()?;
    for p in paths.iter().take(warmup) {
        peer.get(p, ACCEPT).await?;
    }
    let (mut times, mut matches) = (Vec::new(), Vec::new());
    for p in &paths {
        let start = Instant::now();
        let body = peer.get(p, ACCEPT).await?;
        times.push(start.elapsed());
        matches.push(study_uids(body.as_ref())?.len());
    }
    Ok(Stats::from_samples(times, matches))
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_searches_become_qido_query_strings() {
        let patient = Find::Patient("PABC".into());
        assert_eq!(path(&patient).unwrap(), "/studies?PatientID=PABC");
        let range = Find::ModalityDates {
            modality: "CT",
            from: "20150101".into(),
            to: "20150130".into(),
        };
        assert_eq!(
            path(&range).unwrap(),
            "/studies?ModalitiesInStudy=CT&StudyDate=20150101-20150130"
        );
        assert!(path(&Find::Universal).is_err());
    }

    #[test]
    fn study_uids_are_read_sorted_and_a_bad_answer_is_an_error() {
        let body = br#"[{"0020000D":{"vr":"UI","Value":["2.25.9"]}},
                        {"0020000D":{"vr":"UI","Value":["2.25.1"]}}]"#;
        assert_eq!(study_uids(body).unwrap(), ["2.25.1", "2.25.9"]);
        assert!(study_uids(b"[]").unwrap().is_empty());
        assert!(study_uids(br#"[{"00100020":{"vr":"LO"}}]"#).is_err());
        assert!(study_uids(b"<html>").is_err());
    }
}
