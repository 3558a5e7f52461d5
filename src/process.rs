//! Figures about the Vigil process itself for `/metrics` (Linux `/proc`; absent elsewhere), read
//! at each scrape.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::DescriptorEncoder,
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};
use vigil_collector::telemetry::encode_const;

/// `process_resident_memory_bytes` and `process_cpu_seconds_total`.
#[derive(Debug)]
pub struct ProcessFigures;

impl Collector for ProcessFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        if let Some(rss) = read_status_kb("VmRSS:") {
            let bytes = ConstGauge::new(i64::try_from(rss * 1024).unwrap_or(i64::MAX));
            encode_const(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size.",
                bytes,
            )?;
        }
        if let Some(cpu) = cpu_seconds("self") {
            let seconds = ConstCounter::new(cpu);
            encode_const(
                &mut encoder,
                "process_cpu_seconds",
                "User and system CPU time.",
                seconds,
            )?;
        }
        Ok(())
    }
}

fn read_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process (`self` or a pid), in seconds (USER_HZ = 100 on Linux).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is parenthesised and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
