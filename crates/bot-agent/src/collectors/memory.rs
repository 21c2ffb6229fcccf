//! `memory.*` (bytes) from /proc/meminfo.

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The memory collector.
#[derive(Debug)]
pub struct Memory;

/// Parses /proc/meminfo; values there are in kB.
pub fn parse_meminfo(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let before = out.len();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
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
        if let Some(Ok(kb)) = rest.split_ascii_whitespace().next().map(str::parse::<i64>) {
            out.push(Sample::gauge(metric, Number::Int(kb.saturating_mul(1024))));
        }
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
