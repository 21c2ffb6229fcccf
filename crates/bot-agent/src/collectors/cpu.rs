//! `cpu.usage`, `cpu.user`, `cpu.system`, `cpu.iowait` and `cpu.steal`
//! (percent of the time since the previous reading, GAUGE) from the `cpu`
//! and `cpuN` lines of /proc/stat; label `cpu` = `total` for the aggregate
//! line, `0`, `1`, … for each CPU. The first reading measures since boot.

use std::collections::HashMap;

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The CPU-utilisation collector: keeps the previous reading's counters.
#[derive(Debug, Default)]
pub struct Cpu {
    prev: Jiffies,
}

/// The counters of each CPU at one reading, by label (`total`, `0`, …).
pub type Jiffies = HashMap<String, Times>;

/// One CPU's counters (jiffies since boot). `guest` and `guest_nice` are
/// left out: the kernel already counts them in `user` and `nice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
}

impl Times {
    /// Parses the counters after the `cpuN` key (at least user, nice,
    /// system and idle; older kernels stop there or after iowait/irq…).
    fn parse<'a>(mut fields: impl Iterator<Item = &'a str>) -> Option<Times> {
        let mut next = |required: bool| match fields.next() {
            Some(f) => f.parse::<u64>().ok(),
            None if required => None,
            None => Some(0),
        };
        Some(Times {
            user: next(true)?,
            nice: next(true)?,
            system: next(true)?,
            idle: next(true)?,
            iowait: next(false)?,
            irq: next(false)?,
            softirq: next(false)?,
            steal: next(false)?,
        })
    }

    /// The counters since `prev`, or `None` if one went backwards.
    fn since(self, prev: Times) -> Option<Times> {
        Some(Times {
            user: self.user.checked_sub(prev.user)?,
            nice: self.nice.checked_sub(prev.nice)?,
            system: self.system.checked_sub(prev.system)?,
            idle: self.idle.checked_sub(prev.idle)?,
            iowait: self.iowait.checked_sub(prev.iowait)?,
            irq: self.irq.checked_sub(prev.irq)?,
            softirq: self.softirq.checked_sub(prev.softirq)?,
            steal: self.steal.checked_sub(prev.steal)?,
        })
    }

    /// All the time counted (`None` on overflow).
    fn total(self) -> Option<u64> {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .into_iter()
        .try_fold(0u64, u64::checked_add)
    }
}

/// The label of a /proc/stat key: `cpu` → `total`, `cpu3` → `3`; `None`
/// for any other key.
fn cpu_label(key: &str) -> Option<String> {
    let n = key.strip_prefix("cpu")?;
    if n.is_empty() {
        Some("total".to_owned())
    } else {
        n.parse::<u32>().ok().map(|n| n.to_string())
    }
}

/// Parses the `cpu` lines of /proc/stat and appends each CPU's utilisation
/// since `prev` (the previous reading; empty at first, which measures since
/// boot), then replaces `prev` with this reading. A CPU whose counters went
/// backwards or did not move is left out this round.
pub fn parse_cpu(text: &str, prev: &mut Jiffies, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let mut now = Jiffies::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(label) = f.next().and_then(cpu_label) else {
            continue;
        };
        let Some(times) = Times::parse(f) else {
            continue;
        };
        if now.contains_key(&label) {
            continue;
        }
        let delta = times.since(prev.get(&label).copied().unwrap_or_default());
        now.insert(label.clone(), times);
        let Some(d) = delta else {
            continue;
        };
        let Some(total) = d.total().filter(|t| *t > 0) else {
            continue;
        };
        // Each part is at most `total`: no overflow, shares within 0..=100.
        let pct = |part: u64| Number::Real((part as f64 * 100.0 / total as f64).clamp(0.0, 100.0));
        let busy = total - d.idle - d.iowait;
        for (metric, part) in [
            ("cpu.usage", busy),
            ("cpu.user", d.user + d.nice),
            ("cpu.system", d.system + d.irq + d.softirq),
            ("cpu.iowait", d.iowait),
            ("cpu.steal", d.steal),
        ] {
            out.push(Sample::gauge(metric, pct(part)).label("cpu", label.as_str()));
        }
    }
    if now.is_empty() {
        return Err(bad_data("/proc/stat: no cpu line"));
    }
    *prev = now;
    Ok(())
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_cpu(&read_proc("/proc/stat")?, &mut self.prev, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &[Sample]) -> Vec<String> {
        out.iter().map(|s| s.line("h")).collect()
    }

    #[test]
    fn parses_cpu_since_boot_then_since_the_previous_reading() {
        let mut prev = Jiffies::new();
        let mut out = Vec::new();
        // First reading: since boot (total 1000 jiffies for cpu0).
        let first = "cpu  200 0 100 1600 60 20 20 0 0 0\n\
                     cpu0 100 0 50 800 30 10 10 0 0 0\n\
                     cpu1 100 0 50 800 30 10 10 0 0 0\n\
                     intr 235643164 1 2 3\nctxt 474453646\n";
        parse_cpu(first, &mut prev, &mut out).expect("first");
        assert_eq!(out.len(), 15);
        assert_eq!(
            lines(&out[5..10]),
            [
                "h:cpu.usage.0:17:GAUGE",
                "h:cpu.user.0:10:GAUGE",
                "h:cpu.system.0:7:GAUGE",
                "h:cpu.iowait.0:3:GAUGE",
                "h:cpu.steal.0:0:GAUGE",
            ]
        );
        assert_eq!(out[0].label_value("cpu"), Some("total"));
        assert!(out.iter().all(|s| s.validate().is_ok()));

        // Second reading, 200 jiffies later on each CPU: cpu0 moved
        // user+30 nice+10 system+20 idle+100 iowait+10 irq+5 softirq+5
        // steal+20; cpu1's idle went backwards (skipped); cpu2 appeared
        // (since boot); the malformed lines are ignored.
        out.clear();
        let second = "cpu  330 10 170 1750 70 25 25 20 0 0\n\
                      cpu0 130 10 70 900 40 15 15 20 0 0\n\
                      cpu1 200 0 100 700 30 10 10 0 0 0\n\
                      cpu2 1 0 1 2 0 0 0 0 0 0\n\
                      cpu3 1 2\ncpux 1 2 3 4\ncpu4 a b c d\n\n";
        parse_cpu(second, &mut prev, &mut out).expect("second");
        let cpu0: Vec<String> = lines(&out)
            .into_iter()
            .filter(|l| l.contains(".0:"))
            .collect();
        assert_eq!(
            cpu0,
            [
                "h:cpu.usage.0:45:GAUGE",
                "h:cpu.user.0:20:GAUGE",
                "h:cpu.system.0:15:GAUGE",
                "h:cpu.iowait.0:5:GAUGE",
                "h:cpu.steal.0:10:GAUGE",
            ]
        );
        assert_eq!(
            out.iter()
                .filter(|s| s.label_value("cpu") == Some("1"))
                .count(),
            0
        );
        assert_eq!(
            out.iter()
                .find(|s| s.label_value("cpu") == Some("2"))
                .map(|s| s.line("h")),
            Some("h:cpu.usage.2:50:GAUGE".to_owned())
        );
        assert_eq!(out.len(), 15);
        assert!(out.iter().all(|s| s.validate().is_ok()));

        // Same counters again: zero delta, nothing (and no NaN); cpu1
        // and cpu2 gone (hotplug) is fine.
        out.clear();
        parse_cpu("cpu0 130 10 70 900 40 15 15 20 0 0\n", &mut prev, &mut out).expect("third");
        assert!(out.is_empty());
        assert_eq!(prev.len(), 1);

        // Old kernels: four counters.
        let mut fresh = Jiffies::new();
        parse_cpu("cpu 1 1 1 1\n", &mut fresh, &mut out).expect("short line");
        assert_eq!(out[0].line("h"), "h:cpu.usage.total:75:GAUGE");

        for bad in ["", "intr 1 2\n", "cpu 1 2 3\n", "cpu 1 -2 3 4\n", "cpu\n"] {
            assert!(
                parse_cpu(bad, &mut Jiffies::new(), &mut out).is_err(),
                "{bad:?}"
            );
        }
    }
}
