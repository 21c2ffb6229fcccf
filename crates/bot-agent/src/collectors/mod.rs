//! Built-in metric collectors. Each one has the same shape: a `parse_*`
//! function from the text of a /proc file to samples (pure, unit-tested with
//! fixtures) and a [`Collector`] that reads the file. They read /proc
//! directly: no shelling out, no extra crates.

mod files;
mod load;
pub(crate) mod memory;
mod ps;
mod stat;

use std::fmt;

/// How a value evolves (collectd's data source types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A counter whose rate is what matters; may be reset.
    Derive,
    /// A counter that only grows (wraps).
    Counter,
    /// A count since the last reading.
    Absolute,
}

impl Kind {
    /// The wire spelling: GAUGE, DERIVE, COUNTER, ABSOLUTE.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "GAUGE",
            Kind::Derive => "DERIVE",
            Kind::Counter => "COUNTER",
            Kind::Absolute => "ABSOLUTE",
        }
    }

    /// Parses the wire spelling (upper case only, as the ancestor's plugins print it).
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "GAUGE" => Some(Kind::Gauge),
            "DERIVE" => Some(Kind::Derive),
            "COUNTER" => Some(Kind::Counter),
            "ABSOLUTE" => Some(Kind::Absolute),
            _ => None,
        }
    }
}

/// A numeric value as printed: integers stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An exact integer.
    Int(i64),
    /// A real number (finite).
    Real(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Real(r) => {
                // At most 6 decimals, trailing zeros trimmed: 0.0399, 1.39, 2.
                let s = format!("{r:.6}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                f.write_str(if s == "-0" { "0" } else { s })
            }
        }
    }
}

/// One measurement, printed on the wire as `<name>:<metric>:<value>:<TYPE>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Dotted metric name, e.g. `cpu.load`.
    pub metric: String,
    /// The value.
    pub value: Number,
    /// Its type.
    pub kind: Kind,
}

impl Sample {
    /// A gauge.
    pub fn gauge(metric: impl Into<String>, value: Number) -> Sample {
        Sample {
            metric: metric.into(),
            value,
            kind: Kind::Gauge,
        }
    }

    /// A derive (rate-of-counter) sample.
    pub fn derive(metric: impl Into<String>, value: i64) -> Sample {
        Sample {
            metric: metric.into(),
            value: Number::Int(value),
            kind: Kind::Derive,
        }
    }

    /// The wire form for agent `name`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name}:{}:{}:{}",
            self.metric,
            self.value,
            self.kind.as_str()
        )
    }
}

/// A built-in collector.
pub trait Collector: Send {
    /// Its configuration name (`load`, `stat`, …).
    fn name(&self) -> &'static str;
    /// Appends this round's samples. An error is reported as a `core.collector_error` sample.
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()>;
}

/// Builds the named collectors (names were validated with the config).
pub fn build(names: &[String]) -> Vec<Box<dyn Collector>> {
    names
        .iter()
        .filter_map(|n| -> Option<Box<dyn Collector>> {
            match n.as_str() {
                "load" => Some(Box::new(load::Load)),
                "stat" => Some(Box::new(stat::Stat)),
                "ps" => Some(Box::new(ps::Ps::default())),
                "files" => Some(Box::new(files::Files)),
                "memory" => Some(Box::new(memory::Memory)),
                _ => None,
            }
        })
        .collect()
}

/// Reads a small /proc file into a string.
fn read_proc(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

fn bad_data(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_the_ancestor() {
        assert_eq!(Number::Int(235643164).to_string(), "235643164");
        assert_eq!(Number::Real(1.39).to_string(), "1.39");
        assert_eq!(Number::Real(0.0399).to_string(), "0.0399");
        assert_eq!(Number::Real(2.0).to_string(), "2");
        assert_eq!(Number::Real(-0.0000001).to_string(), "0");
    }

    #[test]
    fn sample_line() {
        let s = Sample::gauge("cpu.load", Number::Real(1.39));
        assert_eq!(s.line("badass"), "badass:cpu.load:1.39:GAUGE");
        assert_eq!(
            Sample::derive("stat.intr", 5).line("h"),
            "h:stat.intr:5:DERIVE"
        );
    }

    #[test]
    fn every_builtin_collects_on_this_machine() {
        let names: Vec<String> = crate::config::COLLECTORS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut collectors = build(&names);
        assert_eq!(collectors.len(), names.len());
        let mut out = Vec::new();
        for c in collectors.iter_mut() {
            let before = out.len();
            c.collect(&mut out)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            assert!(out.len() > before, "{} produced nothing", c.name());
        }
        let metrics: Vec<&str> = out.iter().map(|s| s.metric.as_str()).collect();
        for want in [
            "cpu.load",
            "stat.procs_running",
            "stat.procs_blocked",
            "stat.intr",
            "stat.ctxt",
            "stat.processes",
            "ps.processes",
            "ps.uninterruptible",
            "ps.runnable",
            "ps.sleeping",
            "ps.idle",
            "ps.stopped",
            "ps.paging",
            "ps.dead",
            "ps.zombie",
            "files.opened",
            "memory.total",
            "memory.available",
        ] {
            assert!(metrics.contains(&want), "missing {want} in {metrics:?}");
        }
    }
}
