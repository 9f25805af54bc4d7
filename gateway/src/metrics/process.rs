//! The standard process metrics of Prometheus client libraries (`process_*`), read
//! from `/proc/self` at every scrape (Linux; elsewhere they are simply absent). CPU
//! time and the start time are in clock ticks there, taken as 100 per second (the
//! value of USER_HZ on every Linux architecture this runs on).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

const TICKS_PER_SECOND: f64 = 100.0;

/// Samples `/proc/self` when `/metrics` is read.
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

/// One reading of the process's figures; `None` where `/proc` did not say.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Sample {
    pub(super) cpu_seconds: Option<f64>,
    pub(super) resident_bytes: Option<i64>,
    pub(super) virtual_bytes: Option<i64>,
    pub(super) open_fds: Option<i64>,
    pub(super) max_fds: Option<i64>,
    pub(super) start_time_seconds: Option<f64>,
}

impl Sample {
    pub(super) fn read() -> Sample {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let mut sample = Sample::default();
        if let Some(stat) = read("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
            if let (Some(user), Some(system)) = (field(14), field(15)) {
                sample.cpu_seconds = Some((user + system) / TICKS_PER_SECOND);
            }
            sample.virtual_bytes = field(23).map(|v| v as i64);
            let boot = read("/proc/stat").and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
            if let (Some(boot), Some(start)) = (boot, field(22)) {
                sample.start_time_seconds = Some(boot + start / TICKS_PER_SECOND);
            }
        }
        sample.resident_bytes = read("/proc/self/status").and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                .map(|kib| kib * 1024)
        });
        sample.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64);
        sample.max_fds = read("/proc/self/limits").and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<i64>().ok())
        });
        sample
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: Option<i64>) -> fmt::Result {
    let Some(v) = v else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn gauge_f(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: Option<f64>) -> fmt::Result {
    let Some(v) = v else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = Sample::read();
        if let Some(cpu) = s.cpu_seconds {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        let e = &mut encoder;
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            s.resident_bytes,
        )?;
        gauge(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            s.virtual_bytes,
        )?;
        gauge(
            e,
            "process_open_fds",
            "Number of open file descriptors",
            s.open_fds,
        )?;
        gauge(
            e,
            "process_max_fds",
            "Maximum number of open file descriptors",
            s.max_fds,
        )?;
        gauge_f(
            e,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            s.start_time_seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn proc_is_read() {
        let s = Sample::read();
        assert!(s.cpu_seconds.is_some_and(|c| c >= 0.0));
        assert!(s.resident_bytes.is_some_and(|r| r > 1024 * 1024), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        assert!(s.max_fds.is_some_and(|n| n >= 64), "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86400.0 * 30.0,
            "{start} vs {now}"
        );
    }
}
