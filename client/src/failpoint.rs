//! Test hooks at the steps where a crash or a delay matters (exactly-once delivery).
//!
//! `PACS_CLIENT_FAILPOINTS="name=action;name=action"` where action is `abort` (end
//! the process at once, as kill -9 would: no cleanup, no outbox update),
//! `sleep-ms:N`, or `fail-once` / `fail:N` (the step's local write fails the first
//! time / the first N times it is reached, as on a full disk; see [`write_error`]).
//! Unset in production; reading it costs one environment lookup per process.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The environment variable naming the failpoints.
pub const ENV: &str = "PACS_CLIENT_FAILPOINTS";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Abort,
    Sleep(Duration),
    Fail(u32),
}

fn parse(spec: &str) -> Vec<(String, Action)> {
    spec.split(';')
        .filter_map(|entry| {
            let (name, action) = entry.trim().split_once('=')?;
            let action = match action.trim() {
                "abort" => Action::Abort,
                "fail-once" => Action::Fail(1),
                other if other.starts_with("fail:") => {
                    Action::Fail(other.strip_prefix("fail:")?.parse().ok()?)
                }
                other => Action::Sleep(Duration::from_millis(
                    other.strip_prefix("sleep-ms:")?.parse().ok()?,
                )),
            };
            Some((name.trim().to_string(), action))
        })
        .collect()
}

/// The configured points, each with how often it has made a write fail.
fn configured() -> &'static [(String, Action, AtomicU32)] {
    static POINTS: OnceLock<Vec<(String, Action, AtomicU32)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(ENV)
            .map(|s| parse(&s))
            .unwrap_or_default()
            .into_iter()
            .map(|(name, action)| (name, action, AtomicU32::new(0)))
            .collect()
    })
}

/// A simulated I/O error when `name` is configured to fail and has failed fewer
/// times than asked; `None` otherwise (always, in production).
pub fn write_error(name: &str) -> Option<std::io::Error> {
    for (point, action, fired) in configured() {
        if let (true, Action::Fail(times)) = (point == name, action) {
            let before = fired.fetch_add(1, Ordering::SeqCst);
            if before < *times {
                eprintln!("failpoint {name}: failing a local write");
                return Some(std::io::Error::other(format!(
                    "failpoint {name}: simulated write failure (as on a full disk)"
                )));
            }
        }
    }
    None
}

/// Runs the action configured for `name`, if any.
pub async fn hit(name: &str) {
    for (point, action, _) in configured() {
        if point == name {
            match action {
                Action::Abort => {
                    eprintln!("failpoint {name}: aborting");
                    std::process::abort();
                }
                Action::Sleep(pause) => {
                    // Said on stderr, so a test can act while it sleeps.
                    eprintln!("failpoint {name}: sleeping {} ms", pause.as_millis());
                    tokio::time::sleep(*pause).await;
                }
                Action::Fail(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_is_parsed_and_junk_ignored() {
        assert_eq!(
            parse("a=abort; b = sleep-ms:250;c=explode;d;e=fail-once;f=fail:3;g=fail:x"),
            vec![
                ("a".to_string(), Action::Abort),
                ("b".to_string(), Action::Sleep(Duration::from_millis(250))),
                ("e".to_string(), Action::Fail(1)),
                ("f".to_string(), Action::Fail(3)),
            ]
        );
        assert!(parse("").is_empty());
    }
}
