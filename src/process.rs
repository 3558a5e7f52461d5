//! Figures about the Vigil process itself for `/metrics` (Linux `/proc`; absent elsewhere).

use std::fmt::Write;

/// Appends `process_resident_memory_bytes` and `process_cpu_seconds_total`.
pub fn process_metrics(out: &mut String) {
    if let Some(rss) = read_status_kb("VmRSS:") {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * 1024);
    }
    if let Some(cpu) = cpu_seconds("self") {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {cpu:.2}");
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
