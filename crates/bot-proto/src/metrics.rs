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

/// One measurement: a metric, its labels, a value and its type. Its time
/// is the time of the batch it travels in (one collecting round).
///
/// As a classic line: `<name>:<metric>[.<label value>…]:<value>:<TYPE>`
/// (label values in key order, characters outside `[A-Za-z0-9_-]` as `_`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Dotted metric name, e.g. `cpu.load`.
    pub metric: String,
    /// Labels, sorted by key, keys unique: `cpu`, `mount`, `iface`, `device`.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: Number,
    /// Its type.
    pub kind: Kind,
}

/// Most labels on one sample.
pub const MAX_LABELS: usize = 8;
/// Longest label key, in bytes (`[a-z_][a-z0-9_]*`).
pub const MAX_LABEL_KEY_BYTES: usize = 64;
/// Longest label value, in bytes (no control characters).
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// Longest metric name, in bytes.
pub const MAX_METRIC_BYTES: usize = 128;

impl Sample {
    /// A gauge.
    pub fn gauge(metric: impl Into<String>, value: Number) -> Sample {
        Sample {
            metric: metric.into(),
            labels: Vec::new(),
            value,
            kind: Kind::Gauge,
        }
    }

    /// A derive (rate-of-counter) sample.
    pub fn derive(metric: impl Into<String>, value: i64) -> Sample {
        Sample {
            metric: metric.into(),
            labels: Vec::new(),
            value: Number::Int(value),
            kind: Kind::Derive,
        }
    }

    /// The same sample with label `key` = `value` (replacing any value
    /// of that key; labels stay sorted by key).
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Sample {
        let key = key.into();
        let value = value.into();
        match self.labels.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => self.labels[i].1 = value,
            Err(i) => self.labels.insert(i, (key, value)),
        }
        self
    }

    /// The label `key`'s value, if any.
    pub fn label_value(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The metric as a classic line names it: labels' values appended in
    /// key order, each character outside `[A-Za-z0-9_-]` as `_`
    /// (`disk.used` with `mount=/var` → `disk.used._var`).
    pub fn classic_metric(&self) -> String {
        let mut m = self.metric.clone();
        for (_, v) in &self.labels {
            m.push('.');
            m.extend(v.chars().map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                    c
                } else {
                    '_'
                }
            }));
        }
        m
    }

    /// The classic line for agent `name`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name}:{}:{}:{}",
            self.classic_metric(),
            self.value,
            self.kind.as_str()
        )
    }

    /// Checks the limits of a sample (metric name, labels); the error names
    /// what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.metric.len() > MAX_METRIC_BYTES || !valid_metric(&self.metric) {
            return Err(format!(
                "metric {:?} must be 1..={MAX_METRIC_BYTES} bytes of [A-Za-z0-9._-]",
                cut(&self.metric)
            ));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(format!(
                "{}: {} labels, more than {MAX_LABELS}",
                self.metric,
                self.labels.len()
            ));
        }
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if !valid_label_key(k) {
                return Err(format!(
                    "{}: label key {:?} must be 1..={MAX_LABEL_KEY_BYTES} bytes of [a-z0-9_], not starting with a digit",
                    self.metric,
                    cut(k)
                ));
            }
            if i > 0 && self.labels[i - 1].0 >= *k {
                return Err(format!(
                    "{}: label keys must be sorted and unique ({:?})",
                    self.metric,
                    cut(k)
                ));
            }
            if v.len() > MAX_LABEL_VALUE_BYTES || v.chars().any(char::is_control) {
                return Err(format!(
                    "{}: label {k}'s value {:?} must be at most {MAX_LABEL_VALUE_BYTES} bytes without control characters",
                    self.metric,
                    cut(v)
                ));
            }
        }
        if let Number::Real(r) = self.value
            && !r.is_finite()
        {
            return Err(format!("{}: value is not finite", self.metric));
        }
        Ok(())
    }
}

/// Whether `key` is a label key: 1..=64 bytes of `[a-z0-9_]`, not starting
/// with a digit (what Prometheus accepts, lower case).
pub fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_LABEL_KEY_BYTES
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// At most 60 characters of `s`, for error messages.
fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The measuring settings of an agent, live: whether it measures, how
/// often, and which collectors. The server sends the wanted settings in a
/// [`MeasureConfig`](crate::MeasureConfig); the agent reports the settings
/// in force in its status (classic `SEL`, `UNSEL`, `TSSET` and `LUN`
/// change them too).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Measuring on (the classic "selected").
    pub enabled: bool,
    /// The interval, ms: 100..=86,400,000.
    pub interval_ms: u64,
    /// The collectors that run, by name (each 1..=32 bytes of `[a-z0-9_]`,
    /// at most 32, no duplicates).
    pub collectors: Vec<String>,
    /// The revision of the last config from the server applied (0: none).
    #[serde(default)]
    pub revision: u64,
    /// True when the settings were changed on the agent (classic protocol,
    /// or an interval raised after an overrun) since that revision.
    #[serde(default)]
    pub local: bool,
}

/// The agent's built-in collectors, in the order they run. The agent
/// builds these; the server refuses a config naming any other.
pub const COLLECTORS: [&str; 10] = [
    "load", "cpu", "memory", "disk", "diskio", "net", "uptime", "stat", "ps", "files",
];

/// Shortest measuring interval, ms (bot-lang's `MIN_INTERVAL`).
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest measuring interval, ms (bot-lang's `MAX_INTERVAL`).
pub const MAX_INTERVAL_MS: u64 = 86_400_000;
/// Most collectors named in [`Measure::collectors`].
pub const MAX_COLLECTORS: usize = 32;

impl Measure {
    /// Checks every limit; the error names the field and the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(format!(
                "interval_ms: {} is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}",
                self.interval_ms
            ));
        }
        if self.collectors.len() > MAX_COLLECTORS {
            return Err(format!(
                "collectors: {} names, more than {MAX_COLLECTORS}",
                self.collectors.len()
            ));
        }
        for (i, c) in self.collectors.iter().enumerate() {
            let ok = !c.is_empty()
                && c.len() <= 32
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !ok {
                return Err(format!(
                    "collectors: {:?} must be 1..=32 bytes of [a-z0-9_]",
                    cut(c)
                ));
            }
            if self.collectors[..i].contains(c) {
                return Err(format!("collectors: {c:?} listed twice"));
            }
        }
        Ok(())
    }
}

/// Labels as a JSON object (`{"cpu": "total"}`), in their order (sorted by
/// key in a valid sample): how batches and the server's events write them.
#[derive(Debug, Clone, Copy)]
pub struct LabelsObject<'a>(pub &'a [(String, String)]);

impl serde::Serialize for LabelsObject<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
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
            labels: Vec::new(),
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
    fn labels_are_sorted_flattened_in_lines_and_checked() {
        let s = Sample::gauge("disk.used", Number::Int(5))
            .label("mount", "/var/log")
            .label("device", "sda1");
        assert_eq!(
            s.labels,
            [
                ("device".to_owned(), "sda1".to_owned()),
                ("mount".to_owned(), "/var/log".to_owned())
            ]
        );
        assert_eq!(s.label_value("mount"), Some("/var/log"));
        assert_eq!(s.line("h"), "h:disk.used.sda1._var_log:5:GAUGE");
        assert_eq!(s.validate(), Ok(()));
        let bad = Sample::gauge("m", Number::Int(1)).label("Bad", "x");
        assert!(bad.validate().is_err());
        let mut unsorted = Sample::gauge("m", Number::Int(1));
        unsorted.labels = vec![("b".into(), "1".into()), ("a".into(), "2".into())];
        assert!(unsorted.validate().is_err());
        assert!(
            Sample::gauge("m", Number::Real(f64::NAN))
                .validate()
                .is_err()
        );
        assert!(Sample::gauge("", Number::Int(1)).validate().is_err());
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
