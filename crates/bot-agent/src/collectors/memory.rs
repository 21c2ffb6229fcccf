//! `memory.*` (bytes) from /proc/meminfo.

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
    for (key, bytes) in meminfo(text) {
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
        assert_eq!(out.len(), 3);
        assert!(parse_meminfo("nothing", &mut out).is_err());
    }
}
