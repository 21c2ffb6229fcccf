//! Samples: what agents measure, and the classic line codec
//! `<name>:<metric>:<value>:<TYPE>` that the ancestor's `DATA/<name>` topics
//! and `*_enabled` plugins speak.
//!
//! The types live here, not in the agent, so that the server and the CLI
//! read samples without linking the agent.

use std::fmt;

/// How a value evolves (collectd's data source types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

impl Number {
    /// The value as a double (integers beyond 2^53 round).
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Real(r) => r,
        }
    }

    /// Parses a value as plugins print it: an integer stays exact; a real
    /// must be finite and written as a decimal number (`1.5`, `-2e3`; not
    /// `inf`, `NaN` or `1e999`).
    pub fn parse(s: &str) -> Option<Number> {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Number::Int(i));
        }
        match s.parse::<f64>() {
            Ok(f)
                if f.is_finite()
                    && !s
                        .chars()
                        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
            {
                Some(Number::Real(f))
            }
            _ => None,
        }
    }
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

    /// The classic line for agent `name`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name}:{}:{}:{}",
            self.metric,
            self.value,
            self.kind.as_str()
        )
    }
}

/// One parsed classic token: the sample, and the agent name it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSample {
    /// The name the token carried, if any.
    pub name: Option<String>,
    /// The sample.
    pub sample: Sample,
}

/// Longest classic token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 512;

/// Parses one classic token `[<name>:]<metric>:<value>:<TYPE>` (a plugin's
/// output, or a `DATA/<name>` line). The error says what is wrong.
pub fn parse_token(token: &str) -> Result<LineSample, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token longer than 512 bytes");
    }
    let parts: Vec<&str> = token.split(':').collect();
    let (name, metric, value, kind) = match parts.as_slice() {
        [m, v, k] => (None, *m, *v, *k),
        [n, m, v, k] => (Some(*n), *m, *v, *k),
        _ => return Err("expected [name:]metric:value:TYPE"),
    };
    if let Some(n) = name
        && crate::topics::valid_topic_level(n).is_err()
    {
        return Err("bad agent name");
    }
    if !valid_metric(metric) {
        return Err("metric must be non-empty [A-Za-z0-9._-]");
    }
    let kind = Kind::parse(kind).ok_or("TYPE must be GAUGE, DERIVE, COUNTER or ABSOLUTE")?;
    let value = Number::parse(value).ok_or("value is not a finite number")?;
    Ok(LineSample {
        name: name.map(str::to_owned),
        sample: Sample {
            metric: metric.to_owned(),
            value,
            kind,
        },
    })
}

/// Whether `metric` is a metric name: non-empty, `[A-Za-z0-9._-]` only.
pub fn valid_metric(metric: &str) -> bool {
    !metric.is_empty()
        && metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
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
    fn tokens() {
        let t = parse_token("badass:cpu.load:1.39:GAUGE").expect("full");
        assert_eq!(t.name.as_deref(), Some("badass"));
        assert_eq!(t.sample.line("x"), "x:cpu.load:1.39:GAUGE");
        let t = parse_token("temp.cpu:41:GAUGE").expect("short");
        assert_eq!(t.name, None);
        assert_eq!(t.sample.value, Number::Int(41));
        for bad in [
            "",
            "x",
            "a:b",
            "m:1:gauge",
            "m:NaN:GAUGE",
            "m:inf:GAUGE",
            "m:1e999:GAUGE",
            ":1:GAUGE",
            "a b:1:GAUGE",
            "n:m:1:GAUGE:extra",
            "na/me:m:1:GAUGE",
        ] {
            assert!(parse_token(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_token(&"m".repeat(600)).is_err());
    }
}
