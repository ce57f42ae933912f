//! The server process's CPU time and resident memory, read from `/proc` at
//! each scrape and exported under the conventional names
//! `process_cpu_seconds_total` and `process_resident_memory_bytes`.
//! (`prometheus-client` has no process collector of its own.)
//!
//! Parsing is pure ([`cpu_ticks`], [`rss_bytes`]); the collector only reads
//! the two files.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// User plus system CPU time, in clock ticks, from the text of
/// `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself, so fields are counted after the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14 and stime field 15.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size in bytes, from the `VmRSS:` line of `/proc/<pid>/status`.
pub fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// User plus system CPU seconds from the text of `/proc/<pid>/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    cpu_ticks(stat).map(|t| t as f64 / ticks_per_second())
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 on Linux if unknown.
fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// Reads `/proc/self` on every scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        if let Some(ticks) = stat.as_deref().and_then(cpu_ticks) {
            let cpu = ConstCounter::new(ticks as f64 / ticks_per_second());
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent by the server process, seconds",
                None,
                cpu.metric_type(),
            )?;
            cpu.encode(m)?;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok();
        if let Some(bytes) = status.as_deref().and_then(rss_bytes) {
            let rss = ConstGauge::new(bytes as i64);
            let m = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the server process, bytes",
                None,
                rss.metric_type(),
            )?;
            rss.encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_after_the_command_name() {
        let stat = "4242 (tessera (main) x) S 1 4242 4242 0 -1 4194560 5000 0 12 0 \
                    731 269 0 0 20 0 9 0 123456 987654321 20000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1000));
        assert_eq!(cpu_ticks("4242 (short) S 1"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn rss_comes_from_the_vmrss_line_in_kibibytes() {
        let status = "Name:\ttessera\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        assert_eq!(rss_bytes(status), Some(51200 * 1024));
        assert_eq!(rss_bytes("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(cpu_ticks(&stat).is_some(), "{stat}");
        assert!(rss_bytes(&status).unwrap() > 1024 * 1024);
    }
}
