//! Whose temp file is it: every temp file of the blob store is named
//! `<node>.<pid>.<random>.part`, where `<node>` is this machine's host name (letters,
//! digits and `-` only) and `<pid>` the process that writes it. Several gateway nodes
//! may share one blob store; at start a node removes only the temp files that are
//! provably its own and abandoned: same node name, and a process id that is no longer
//! running (or is this very process). Files of other nodes, and of other processes of
//! this node that are still running, are left alone. Temp files named before node
//! names existed (`<random>.part`) are treated as this node's.

use std::path::Path;

/// This node's name as it appears in temp file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName(String);

impl NodeName {
    /// The host name, reduced to letters, digits and `-` (`localhost` if empty).
    pub fn of_this_host() -> NodeName {
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        NodeName::from_host(&host)
    }

    /// A node name from a host name (for tests and the temp-file parser).
    pub fn from_host(host: &str) -> NodeName {
        let name: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(64)
            .collect();
        match name.trim_matches('-') {
            "" => NodeName("localhost".into()),
            trimmed => NodeName(trimmed.to_string()),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh temp file name for process `pid` of this node.
    pub(super) fn temp_name(&self, pid: u32) -> String {
        format!("{}.{pid}.{}.part", self.0, uuid::Uuid::new_v4().simple())
    }
}

/// Who wrote a temp file, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Owner {
    /// `<node>.<pid>.<random>.part`.
    Node {
        /// Node name.
        node: String,
        /// Process id.
        pid: u32,
    },
    /// `<random>.part`: written before temp files carried their node.
    Legacy,
    /// Anything else: not ours to judge.
    Unknown,
}

/// Reads the owner from a temp file's name.
pub(super) fn owner(file_name: &str) -> Owner {
    let Some(stem) = file_name.strip_suffix(".part") else {
        return Owner::Unknown;
    };
    let parts: Vec<&str> = stem.split('.').collect();
    match parts.as_slice() {
        [random] if is_random(random) => Owner::Legacy,
        [node, pid, random] if is_random(random) => match pid.parse() {
            Ok(pid) => Owner::Node {
                node: (*node).to_string(),
                pid,
            },
            Err(_) => Owner::Unknown,
        },
        _ => Owner::Unknown,
    }
}

fn is_random(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether this node may remove the temp file `file_name`: its own, and its writer
/// is no longer running. A file of this very process counts as abandoned only
/// `at_start` (its pid was then reused from a process that died); later it is a
/// transfer in progress.
pub(super) fn abandoned_by_us(file_name: &str, us: &NodeName, at_start: bool) -> bool {
    match owner(file_name) {
        Owner::Legacy => at_start,
        Owner::Node { node, pid } if node == us.as_str() => {
            if pid == std::process::id() {
                at_start
            } else {
                !process_running(pid)
            }
        }
        Owner::Node { .. } | Owner::Unknown => false,
    }
}

/// Whether process `pid` exists on this machine.
fn process_running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_our_dead_processes_are_abandoned() {
        let us = NodeName::from_host("gw-1.example.org");
        assert_eq!(us.as_str(), "gw-1-example-org");
        assert_eq!(NodeName::from_host("..").as_str(), "localhost");
        let mine = us.temp_name(std::process::id());
        assert_eq!(
            owner(&mine),
            Owner::Node {
                node: us.as_str().into(),
                pid: std::process::id()
            }
        );
        assert!(
            abandoned_by_us(&mine, &us, true),
            "this pid at start: a dead one's"
        );
        assert!(!abandoned_by_us(&mine, &us, false), "later: in progress");
        // pid 1 always runs: another process of this node still writing.
        assert!(!abandoned_by_us(&us.temp_name(1), &us, true));
        // A pid above the kernel's maximum never runs.
        assert!(abandoned_by_us(&us.temp_name(99_999_999), &us, false));
        let other = NodeName::from_host("gw-2").temp_name(99_999_999);
        assert!(!abandoned_by_us(&other, &us, true), "another node's file");
        let legacy = format!("{}.part", uuid::Uuid::new_v4().simple());
        assert!(abandoned_by_us(&legacy, &us, true));
        assert!(!abandoned_by_us(&legacy, &us, false));
        assert!(!abandoned_by_us("notes.txt", &us, true));
        assert!(!abandoned_by_us("a.b.c.d.part", &us, true));
    }
}
