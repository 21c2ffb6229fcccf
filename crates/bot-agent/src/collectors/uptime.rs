//! `uptime` (seconds since boot, GAUGE Real) from /proc/uptime.

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The uptime collector.
#[derive(Debug)]
pub struct Uptime;

/// Parses /proc/uptime (`25564.07 30202.85`: up, idle).
pub fn parse_uptime(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let up = text
        .split_ascii_whitespace()
        .next()
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| bad_data("/proc/uptime: no uptime"))?;
    out.push(Sample::gauge("uptime", Number::Real(up)));
    Ok(())
}

impl Collector for Uptime {
    fn name(&self) -> &'static str {
        "uptime"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_uptime(&read_proc("/proc/uptime")?, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uptime() {
        let mut out = Vec::new();
        parse_uptime("25564.07 30202.85\n", &mut out).expect("parse");
        assert_eq!(out[0].line("h"), "h:uptime:25564.07:GAUGE");
        assert_eq!(out.len(), 1);
        for bad in ["", "\n", "x 1", "NaN 1", "inf 1", "-1 2"] {
            assert!(parse_uptime(bad, &mut out).is_err(), "{bad:?}");
        }
    }
}
