//! The local store's retention: the client keeps its own copy of every instance;
//! copies of delivered instances older than `retention.local_days` are removed by a
//! periodic sweep (their outbox rows stay, marked purged). Local-only instances and
//! anything not yet delivered are never removed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::RetentionConfig;
use crate::outbox::{Outbox, now_millis};

/// Removes the expired local copies once; returns how many.
pub async fn sweep(outbox: &Outbox, settings: &RetentionConfig) -> Result<usize, sqlx::Error> {
    let before = now_millis() - i64::from(settings.local_days) * 86_400_000;
    let mut removed = 0;
    for (id, path) in outbox.purgeable(before).await? {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(id, error = %e, "cannot remove an expired local copy");
                continue;
            }
        }
        outbox.purged(id).await?;
    }
    Ok(removed)
}

/// Sweeps at start and then every `sweep_interval_secs` until `stop`.
pub async fn run(outbox: Outbox, settings: RetentionConfig, stop: CancellationToken) {
    let every = Duration::from_secs(settings.sweep_interval_secs.max(1));
    while !stop.is_cancelled() {
        match sweep(&outbox, &settings).await {
            Ok(0) => {}
            Ok(n) => info!(
                n,
                days = settings.local_days,
                "removed local copies past retention"
            ),
            Err(e) => warn!(error = %e, "retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => {}
        }
    }
}
