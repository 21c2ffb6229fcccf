//! `memory.*` from /proc/meminfo (GAUGE, bytes): `memory.total`,
//! `memory.available`, `memory.free`, `memory.buffers`, `memory.cached`,
//! `memory.swap_total`, `memory.swap_free` as the file gives them, and
//! `memory.used` (MemTotal - MemAvailable), `memory.used_percent` (its share
//! of MemTotal, Real) and `memory.swap_used` (SwapTotal - SwapFree).

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The memory collector.
#[derive(Debug)]
pub struct Memory;

/// The `Key: N kB` lines of /proc/meminfo, as (key, bytes): the one parser
/// of the file (the collector and the `memory` fact both use it).
pub fn meminfo(text: &str) -> impl Iterator<Item = (&str, i64)> {
    text.lines().filter_map(|line| {
        let (key, rest) = line.split_once(':')?;
        let kb = rest.split_ascii_whitespace().next()?.parse::<i64>().ok()?;
        Some((key, kb.saturating_mul(1024)))
    })
}

/// Parses /proc/meminfo into samples.
pub fn parse_meminfo(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let before = out.len();
    let (mut total, mut available, mut swap_total, mut swap_free) = (None, None, None, None);
    for (key, bytes) in meminfo(text) {
        match key {
            "MemTotal" => total = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            "SwapTotal" => swap_total = Some(bytes),
            "SwapFree" => swap_free = Some(bytes),
            _ => {}
        }
        let metric = match key {
            "MemTotal" => "memory.total",
            "MemAvailable" => "memory.available",
            "MemFree" => "memory.free",
            "Buffers" => "memory.buffers",
            "Cached" => "memory.cached",
            "SwapTotal" => "memory.swap_total",
            "SwapFree" => "memory.swap_free",
            _ => continue,
        };
        out.push(Sample::gauge(metric, Number::Int(bytes)));
    }
    if let (Some(total), Some(available)) = (total, available) {
        let used = total.saturating_sub(available).max(0);
        out.push(Sample::gauge("memory.used", Number::Int(used)));
        if total > 0 {
            let pct = (used as f64 * 100.0 / total as f64).clamp(0.0, 100.0);
            out.push(Sample::gauge("memory.used_percent", Number::Real(pct)));
        }
    }
    if let (Some(swap_total), Some(swap_free)) = (swap_total, swap_free) {
        let used = swap_total.saturating_sub(swap_free).max(0);
        out.push(Sample::gauge("memory.swap_used", Number::Int(used)));
    }
    if out.len() == before {
        return Err(bad_data("/proc/meminfo: no MemTotal"));
    }
    Ok(())
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_meminfo(&read_proc("/proc/meminfo")?, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let mut out = Vec::new();
        parse_meminfo(
            "MemTotal:       2048 kB\nMemFree: 1 kB\nMemAvailable: 1024 kB\nFoo: 3 kB\n",
            &mut out,
        )
        .expect("parse");
        assert_eq!(out[0].line("h"), "h:memory.total:2097152:GAUGE");
        assert_eq!(
            out.iter().map(|s| s.line("h")).collect::<Vec<_>>()[3..],
            [
                "h:memory.used:1048576:GAUGE",
                "h:memory.used_percent:50:GAUGE"
            ]
        );
        assert_eq!(out.len(), 5);
        assert!(parse_meminfo("nothing", &mut out).is_err());

        out.clear();
        let real = "MemTotal:       16303440 kB\n\
                    MemFree:         1201232 kB\n\
                    MemAvailable:   12227340 kB\n\
                    Buffers:          811388 kB\n\
                    Cached:         10021868 kB\n\
                    SwapCached:        10436 kB\n\
                    SwapTotal:       2097148 kB\n\
                    SwapFree:        1996028 kB\n\
                    HugePages_Total:       0\n\
                    garbage line\n\
                    Dirty: x kB\n";
        parse_meminfo(real, &mut out).expect("real");
        let lines: Vec<String> = out.iter().map(|s| s.line("h")).collect();
        assert_eq!(
            lines,
            [
                "h:memory.total:16694722560:GAUGE",
                "h:memory.free:1230061568:GAUGE",
                "h:memory.available:12520796160:GAUGE",
                "h:memory.buffers:830861312:GAUGE",
                "h:memory.cached:10262392832:GAUGE",
                "h:memory.swap_total:2147479552:GAUGE",
                "h:memory.swap_free:2043932672:GAUGE",
                "h:memory.used:4173926400:GAUGE",
                "h:memory.used_percent:25.001472:GAUGE",
                "h:memory.swap_used:103546880:GAUGE",
            ]
        );

        // No MemAvailable (kernels before 3.14) nor swap: no derived samples.
        out.clear();
        parse_meminfo("MemTotal: 0 kB\nMemFree: 0 kB\n", &mut out).expect("old");
        assert_eq!(out.len(), 2);
    }
}
