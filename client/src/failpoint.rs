//! Test hooks at the steps where a crash or a delay matters (exactly-once delivery).
//!
//! `PACS_CLIENT_FAILPOINTS="name=action;name=action"` where action is `abort` (end
//! the process at once, as kill -9 would: no cleanup, no outbox update) or
//! `sleep-ms:N`. Unset in production; reading it costs one environment lookup per
//! process.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable naming the failpoints.
pub const ENV: &str = "PACS_CLIENT_FAILPOINTS";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Abort,
    Sleep(Duration),
}

fn parse(spec: &str) -> Vec<(String, Action)> {
    spec.split(';')
        .filter_map(|entry| {
            let (name, action) = entry.trim().split_once('=')?;
            let action = match action.trim() {
                "abort" => Action::Abort,
                other => Action::Sleep(Duration::from_millis(
                    other.strip_prefix("sleep-ms:")?.parse().ok()?,
                )),
            };
            Some((name.trim().to_string(), action))
        })
        .collect()
}

fn configured() -> &'static [(String, Action)] {
    static POINTS: OnceLock<Vec<(String, Action)>> = OnceLock::new();
    POINTS.get_or_init(|| std::env::var(ENV).map(|s| parse(&s)).unwrap_or_default())
}

/// Runs the action configured for `name`, if any.
pub async fn hit(name: &str) {
    for (point, action) in configured() {
        if point == name {
            match action {
                Action::Abort => {
                    eprintln!("failpoint {name}: aborting");
                    std::process::abort();
                }
                Action::Sleep(pause) => tokio::time::sleep(*pause).await,
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
            parse("a=abort; b = sleep-ms:250;c=explode;d"),
            vec![
                ("a".to_string(), Action::Abort),
                ("b".to_string(), Action::Sleep(Duration::from_millis(250))),
            ]
        );
        assert!(parse("").is_empty());
    }
}
