//! `cpu.load` (1-minute load average) from /proc/loadavg.

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The load-average collector.
#[derive(Debug)]
pub struct Load;

/// Parses /proc/loadavg (`0.52 0.58 0.59 1/389 12345`).
pub fn parse_loadavg(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let mut fields = text.split_ascii_whitespace();
    let load1: f64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| bad_data("/proc/loadavg: no 1-minute load"))?;
    out.push(Sample::gauge("cpu.load", Number::Real(load1)));
    if let Some(five) = fields.next().and_then(|f| f.parse::<f64>().ok()) {
        out.push(Sample::gauge("cpu.load5", Number::Real(five)));
    }
    if let Some(fifteen) = fields.next().and_then(|f| f.parse::<f64>().ok()) {
        out.push(Sample::gauge("cpu.load15", Number::Real(fifteen)));
    }
    Ok(())
}

impl Collector for Load {
    fn name(&self) -> &'static str {
        "load"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_loadavg(&read_proc("/proc/loadavg")?, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loadavg() {
        let mut out = Vec::new();
        parse_loadavg("1.39 0.58 0.59 1/389 12345\n", &mut out).expect("parse");
        assert_eq!(out[0].line("h"), "h:cpu.load:1.39:GAUGE");
        assert_eq!(out.len(), 3);
        assert!(parse_loadavg("", &mut out).is_err());
        assert!(parse_loadavg("NaN 1 1", &mut out).is_err());
    }
}
