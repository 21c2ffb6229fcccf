//! Nagios plugin semantics, for checks (the NRPE equivalent): what an exit
//! code means, how a plugin's output splits into the first line, the long
//! output and performance data, and the performance data itself
//! (`'label'=value[UOM];[warn];[crit];[min];[max]`), turned into samples.
//!
//! Pure and total: any bytes in, no panic; malformed performance data is
//! skipped and counted, never fatal (the Nagios plugin guidelines'
//! format, as `monitoring-plugins` print it).

use crate::metrics::{Number, Sample};

/// A check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckState {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
    /// Exit 3, any other exit, a signal, or a timeout.
    Unknown,
}

impl CheckState {
    /// The Nagios name: OK, WARNING, CRITICAL, UNKNOWN.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Ok => "OK",
            CheckState::Warning => "WARNING",
            CheckState::Critical => "CRITICAL",
            CheckState::Unknown => "UNKNOWN",
        }
    }

    /// The Nagios return code (0..=3).
    pub fn code(self) -> u8 {
        match self {
            CheckState::Ok => 0,
            CheckState::Warning => 1,
            CheckState::Critical => 2,
            CheckState::Unknown => 3,
        }
    }

    /// Parses a name (case-insensitive).
    pub fn parse(s: &str) -> Option<CheckState> {
        match s.to_ascii_uppercase().as_str() {
            "OK" => Some(CheckState::Ok),
            "WARNING" => Some(CheckState::Warning),
            "CRITICAL" => Some(CheckState::Critical),
            "UNKNOWN" => Some(CheckState::Unknown),
            _ => None,
        }
    }
}

/// The state of a plugin run, and why when it is not the exit code's own:
/// exit 0/1/2/3 are OK/WARNING/CRITICAL/UNKNOWN; any other code, a signal,
/// no exit status at all, or a timeout is UNKNOWN with the reason.
pub fn state_of(
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
) -> (CheckState, Option<String>) {
    if timed_out {
        return (CheckState::Unknown, Some("timed out".to_owned()));
    }
    match (exit_code, signal) {
        (Some(0), _) => (CheckState::Ok, None),
        (Some(1), _) => (CheckState::Warning, None),
        (Some(2), _) => (CheckState::Critical, None),
        (Some(3), _) => (CheckState::Unknown, None),
        (Some(c), _) => (
            CheckState::Unknown,
            Some(format!("exit code {c} is not a Nagios state (0..=3)")),
        ),
        (None, Some(s)) => (CheckState::Unknown, Some(format!("killed by signal {s}"))),
        (None, None) => (CheckState::Unknown, Some("no exit status".to_owned())),
    }
}

/// A plugin's output, split: the first line's text, the long output (the
/// following lines' text), and the performance data (after `|` on the first
/// line, and after `|` anywhere in the long output, joined by spaces).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginOutput {
    /// The first line, without its performance data, trimmed.
    pub text: String,
    /// The other lines, without performance data (may be empty).
    pub long_text: String,
    /// The performance data, as printed.
    pub perfdata: String,
}

/// Splits a plugin's standard output (see [`PluginOutput`]).
pub fn split_output(stdout: &str) -> PluginOutput {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    let (text, mut perf) = match first.split_once('|') {
        Some((t, p)) => (t.trim().to_owned(), p.trim().to_owned()),
        None => (first.trim().to_owned(), String::new()),
    };
    let mut long = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            push_perf(&mut perf, line);
            continue;
        }
        match line.split_once('|') {
            Some((t, p)) => {
                long.push(t);
                push_perf(&mut perf, p);
                in_perf = true;
            }
            None => long.push(line),
        }
    }
    while long.last().is_some_and(|l| l.trim().is_empty()) {
        long.pop();
    }
    PluginOutput {
        text,
        long_text: long.join("\n"),
        perfdata: perf,
    }
}

fn push_perf(perf: &mut String, more: &str) {
    let more = more.trim();
    if more.is_empty() {
        return;
    }
    if !perf.is_empty() {
        perf.push(' ');
    }
    perf.push_str(more);
}

/// One performance datum.
#[derive(Debug, Clone, PartialEq)]
pub struct Perf {
    /// The label (quotes removed).
    pub label: String,
    /// The value.
    pub value: f64,
    /// Its unit of measure: "", s, ms, us, %, B, KB, MB, GB, TB, c.
    pub uom: String,
    /// The warning range, as printed (may be empty).
    pub warn: String,
    /// The critical range, as printed.
    pub crit: String,
    /// The minimum, if given.
    pub min: Option<f64>,
    /// The maximum, if given.
    pub max: Option<f64>,
}

/// Most performance data items read from one output.
pub const MAX_PERF: usize = 256;

/// Parses performance data; returns the items and how many were malformed.
pub fn parse_perfdata(text: &str) -> (Vec<Perf>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for item in perf_items(text) {
        if out.len() >= MAX_PERF {
            bad += 1;
            continue;
        }
        match parse_item(&item) {
            Some(p) => out.push(p),
            None => bad += 1,
        }
    }
    (out, bad)
}

/// Splits on spaces, keeping quoted labels (`'disk /'=5%`) whole.
fn perf_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                // '' inside quotes is one quote.
                cur.push('\'');
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    items.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

fn parse_item(item: &str) -> Option<Perf> {
    let (label, rest) = item.rsplit_once('=')?;
    let label = label
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or(label);
    if label.is_empty() || label.chars().any(char::is_control) {
        return None;
    }
    let mut fields = rest.split(';');
    let value_uom = fields.next()?;
    let split = value_uom
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(value_uom.len());
    let (value, uom) = value_uom.split_at(split);
    let value: f64 = value.parse().ok().filter(|v: &f64| v.is_finite())?;
    if !matches!(
        uom,
        "" | "s" | "ms" | "us" | "%" | "B" | "KB" | "MB" | "GB" | "TB" | "c"
    ) {
        return None;
    }
    let num = |s: Option<&str>| -> Option<f64> {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok())
            .filter(|v: &f64| v.is_finite())
    };
    let warn = fields.next().unwrap_or("").trim().to_owned();
    let crit = fields.next().unwrap_or("").trim().to_owned();
    let min = num(fields.next());
    let max = num(fields.next());
    Some(Perf {
        label: label.to_owned(),
        value,
        uom: uom.to_owned(),
        warn,
        crit,
        min,
        max,
    })
}

/// Performance data as samples of check `check`: metric `check.<check>`
/// (the check name, `.` kept), labels `perf` (the label) and `uom` when
/// there is a unit. A counter (`c`) is a COUNTER, the rest GAUGE.
pub fn perf_samples(check: &str, perf: &[Perf]) -> Vec<Sample> {
    let metric: String = format!("check.{check}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(crate::metrics::MAX_METRIC_BYTES)
        .collect();
    perf.iter()
        .map(|p| {
            let label: String = p
                .label
                .chars()
                .take(crate::metrics::MAX_LABEL_VALUE_BYTES / 4)
                .collect();
            let value =
                if p.uom == "c" && p.value.fract() == 0.0 && p.value >= 0.0 && p.value < 9.2e18 {
                    #[allow(clippy::cast_possible_truncation)]
                    Number::Int(p.value as i64)
                } else {
                    Number::Real(p.value)
                };
            let mut s = if p.uom == "c" {
                Sample {
                    metric: metric.clone(),
                    labels: Vec::new(),
                    value,
                    kind: crate::metrics::Kind::Counter,
                }
            } else {
                Sample::gauge(metric.clone(), value)
            };
            s = s.label("perf", label);
            if !p.uom.is_empty() {
                s = s.label("uom", p.uom.clone());
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_states_and_the_rest_is_unknown_with_a_reason() {
        assert_eq!(state_of(Some(0), None, false), (CheckState::Ok, None));
        assert_eq!(state_of(Some(1), None, false).0, CheckState::Warning);
        assert_eq!(state_of(Some(2), None, false).0, CheckState::Critical);
        assert_eq!(state_of(Some(3), None, false), (CheckState::Unknown, None));
        let (s, why) = state_of(Some(127), None, false);
        assert_eq!(s, CheckState::Unknown);
        assert!(why.is_some_and(|w| w.contains("127")));
        assert_eq!(
            state_of(None, Some(9), false).1.as_deref(),
            Some("killed by signal 9")
        );
        assert_eq!(
            state_of(Some(0), None, true).1.as_deref(),
            Some("timed out")
        );
        for s in [
            CheckState::Ok,
            CheckState::Warning,
            CheckState::Critical,
            CheckState::Unknown,
        ] {
            assert_eq!(CheckState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn output_splits_like_nagios() {
        let out = split_output(
            "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
             / 15272 MB (77%);\n/boot 68 MB (69%);\n| /boot=68MB;88;93;0;98\n/home=69357MB;253404;253409;0;253414\n",
        );
        assert_eq!(out.text, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(out.long_text, "/ 15272 MB (77%);\n/boot 68 MB (69%);");
        assert_eq!(
            out.perfdata,
            "/=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98 /home=69357MB;253404;253409;0;253414"
        );
        let plain = split_output("OK - load average: 0.1, 0.2, 0.3");
        assert_eq!(plain.text, "OK - load average: 0.1, 0.2, 0.3");
        assert!(plain.long_text.is_empty() && plain.perfdata.is_empty());
        assert_eq!(split_output(""), PluginOutput::default());
    }

    #[test]
    fn perfdata_parses_the_guidelines_format_and_counts_the_rest() {
        let (p, bad) = parse_perfdata(
            "load1=0.520;5.000;10.000;0; 'disk /'=56%;80;90 time=0.01s rx=12345c bogus =1 x=1zz y=nan",
        );
        assert_eq!(bad, 4, "{p:?}");
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].label, "load1");
        assert_eq!(p[0].value, 0.52);
        assert_eq!(
            (p[0].warn.as_str(), p[0].crit.as_str()),
            ("5.000", "10.000")
        );
        assert_eq!((p[0].min, p[0].max), (Some(0.0), None));
        assert_eq!(
            (p[1].label.as_str(), p[1].uom.as_str(), p[1].value),
            ("disk /", "%", 56.0)
        );
        assert_eq!(p[2].uom, "s");
        let samples = perf_samples("disk", &p);
        assert_eq!(samples[1].metric, "check.disk");
        assert_eq!(samples[1].label_value("perf"), Some("disk /"));
        assert_eq!(samples[1].label_value("uom"), Some("%"));
        assert_eq!(samples[3].kind, crate::metrics::Kind::Counter);
        assert!(samples.iter().all(|s| s.validate().is_ok()), "{samples:?}");
    }

    #[test]
    fn any_input_is_taken_without_panic() {
        for text in [
            "'",
            "''=",
            "=;;;;;;",
            "a=-",
            "'a''b'=1",
            "=",
            "a=1e999",
            "é=1;é;é",
            "\u{0}=1",
        ] {
            let _ = parse_perfdata(text);
            let _ = split_output(text);
        }
        let many = "a=1 ".repeat(1_000);
        let (p, bad) = parse_perfdata(&many);
        assert_eq!((p.len(), bad), (MAX_PERF, 1_000 - MAX_PERF));
    }
}
