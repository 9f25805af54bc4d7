//! What the ingest benchmark measures besides wall time: CPU time and peak resident
//! memory of a process (from `/proc`), and one durable-write round on the filesystem
//! that holds the data dirs.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`).
pub fn clock_ticks() -> Result<f64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ticks: f64 = text.trim().parse().context("getconf CLK_TCK output")?;
    if ticks <= 0.0 {
        bail!("getconf CLK_TCK says {ticks}");
    }
    Ok(ticks)
}

/// The fields of `/proc/<pid>/stat` the benchmark reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Parent pid.
    pub ppid: u32,
    /// User + system ticks of the process itself (all its threads).
    pub own: u64,
    /// User + system ticks of its children that it has waited for.
    pub reaped_children: u64,
}

/// Reads `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Result<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: fields start after
    // the last ')'. Field n (1-based) is rest[n - 3].
    let (_, rest) = text
        .rsplit_once(')')
        .with_context(|| format!("/proc/{pid}/stat has no ')'"))?;
    let rest: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        rest.get(n - 3)
            .with_context(|| format!("/proc/{pid}/stat: no field {n}"))?
            .parse()
            .with_context(|| format!("/proc/{pid}/stat: field {n}"))
    };
    Ok(ProcStat {
        state: rest.first().and_then(|s| s.chars().next()).unwrap_or('?'),
        ppid: u32::try_from(field(4)?)?,
        own: field(14)? + field(15)?,
        reaped_children: field(16)? + field(17)?,
    })
}

/// The children of `pid` (running or not yet waited for) with their stat.
fn children(pid: u32) -> Vec<(u32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| Some((child, proc_stat(child).ok()?)))
        .filter(|(_, s)| s.ppid == pid)
        .collect()
}

/// CPU ticks used so far by `pid`, its reaped children (`cutime + cstime`) and its
/// children not yet waited for (DCMTK `storescp --fork` reaps a finished association's
/// process only when the next association arrives; a zombie's `/proc` stat still
/// holds its times). First waits (up to 3 s) until no child is still running, so the
/// times of a send that just ended are complete.
pub fn cpu_ticks_tree(pid: u32) -> Result<CpuTicks> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && children(pid).iter().any(|(_, s)| s.state != 'Z') {
        std::thread::sleep(Duration::from_millis(10));
    }
    // A child reaped between the reads would be counted twice or not at all: read
    // until the parent's reaped total did not move across the children's reads.
    for _ in 0..100 {
        let before = proc_stat(pid)?;
        let unreaped: u64 = children(pid).iter().map(|(_, s)| s.own).sum();
        let after = proc_stat(pid)?;
        if before.reaped_children == after.reaped_children {
            return Ok(CpuTicks {
                own: after.own,
                reaped_children: after.reaped_children,
                unreaped_children: unreaped,
            });
        }
    }
    bail!("the children of {pid} keep changing; cannot read their CPU time")
}

/// CPU ticks of a process tree, by where they were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// The process itself.
    pub own: u64,
    /// Children it has waited for.
    pub reaped_children: u64,
    /// Children still running or not yet waited for.
    pub unreaped_children: u64,
}

impl CpuTicks {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.own + self.reaped_children + self.unreaped_children
    }
}

/// Peak resident set size (`VmHWM`) of `pid`, bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .with_context(|| format!("/proc/{pid}/status has no VmHWM"))?;
    let kib: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmHWM value")?;
    Ok(kib * 1024)
}

/// How [`fsync_round`] makes the write durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// fsync the file, rename it, fsync the directory: two journal commits on ext4.
    Serial,
    /// Rename first, then fsync file and directory at once (as the gateway's blob
    /// store does): on ext4 they can share one journal commit.
    Parallel,
}

/// One durable write of `data` in `dir`: create a file, write it, then make it and its
/// rename into a sub-directory durable as `flush` says. Returns the time of the whole
/// round.
pub fn fsync_round(dir: &Path, n: usize, data: &[u8], flush: Flush) -> Result<Duration> {
    let tmp = dir.join(format!("tmp-{n}"));
    let target_dir = dir.join("objects");
    let target = target_dir.join(format!("obj-{n}"));
    std::fs::create_dir_all(&target_dir)?;
    let start = Instant::now();
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(data)?;
    match flush {
        Flush::Serial => {
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(&target_dir)?.sync_all()?;
        }
        Flush::Parallel => {
            std::fs::rename(&tmp, &target)?;
            std::thread::scope(|s| {
                let file = s.spawn(|| file.sync_all());
                let dir = std::fs::File::open(&target_dir).and_then(|d| d.sync_all());
                file.join()
                    .map_err(|_| std::io::Error::other("fsync thread panicked"))??;
                dir
            })?;
        }
    }
    Ok(start.elapsed())
}

/// The median of `values` (mean of the middle two for an even count); `None` when
/// empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn own_process_has_stat_and_peak_rss() {
        let me = std::process::id();
        let stat = proc_stat(me).unwrap();
        assert_eq!(stat.ppid, std::os::unix::process::parent_id());
        assert!(peak_rss(me).unwrap() > 1024 * 1024);
        assert!(clock_ticks().unwrap() >= 1.0);
    }

    #[test]
    fn a_waited_for_child_lands_in_reaped_children() {
        let me = std::process::id();
        let before = cpu_ticks_tree(me).unwrap();
        // A child that burns ~0.3 s of CPU, then is waited for.
        let status = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let after = cpu_ticks_tree(me).unwrap();
        assert!(after.reaped_children > before.reaped_children);
    }

    #[test]
    fn both_fsync_rounds_leave_the_file_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![1u8; 4096];
        fsync_round(dir.path(), 1, &data, Flush::Serial).unwrap();
        fsync_round(dir.path(), 2, &data, Flush::Parallel).unwrap();
        for n in [1, 2] {
            let path = dir.path().join(format!("objects/obj-{n}"));
            assert_eq!(std::fs::read(path).unwrap(), data);
            assert!(!dir.path().join(format!("tmp-{n}")).exists());
        }
    }
}
