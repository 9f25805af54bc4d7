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
