//! `stat.*` from /proc/stat: interrupts, context switches and forks since
//! boot (DERIVE), running and blocked processes (GAUGE).

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The /proc/stat collector.
#[derive(Debug)]
pub struct Stat;

/// Parses /proc/stat.
pub fn parse_stat(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let before = out.len();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(key), Some(first)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(v) = first.parse::<i64>() else {
            continue;
        };
        match key {
            "intr" => out.push(Sample::derive("stat.intr", v)),
            "ctxt" => out.push(Sample::derive("stat.ctxt", v)),
            "processes" => out.push(Sample::derive("stat.processes", v)),
            "procs_running" => out.push(Sample::gauge("stat.procs_running", Number::Int(v))),
            "procs_blocked" => out.push(Sample::gauge("stat.procs_blocked", Number::Int(v))),
            _ => {}
        }
    }
    if out.len() == before {
        return Err(bad_data(
            "/proc/stat: none of intr, ctxt, processes, procs_*",
        ));
    }
    Ok(())
}

impl Collector for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_stat(&read_proc("/proc/stat")?, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat() {
        let text = "cpu  1 2 3 4\nintr 235643164 1 2 3\nctxt 474453646\nbtime 1\nprocesses 9000\nprocs_running 1\nprocs_blocked 0\n";
        let mut out = Vec::new();
        parse_stat(text, &mut out).expect("parse");
        let lines: Vec<String> = out.iter().map(|s| s.line("badass")).collect();
        assert_eq!(
            lines,
            [
                "badass:stat.intr:235643164:DERIVE",
                "badass:stat.ctxt:474453646:DERIVE",
                "badass:stat.processes:9000:DERIVE",
                "badass:stat.procs_running:1:GAUGE",
                "badass:stat.procs_blocked:0:GAUGE",
            ]
        );
        assert!(parse_stat("cpu 1 2\n", &mut out).is_err());
    }
}
