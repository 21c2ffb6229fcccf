//! Per-second rates of counters: DERIVE, COUNTER and ABSOLUTE samples
//! become rates at ingest, from the previous reading of the same series.
//!
//! - DERIVE (a counter that may be reset): (v − prev) / Δt; a value below
//!   the previous one is a reset: unknown (`NaN`) this round.
//! - COUNTER (only grows, wraps): as DERIVE, but a value below the previous
//!   one is a wrap at 2³² (if the previous value fitted 32 bits) or 2⁶⁴;
//!   a wrap that would mean more than half the counter's range in one
//!   round is taken for a reset (unknown).
//! - ABSOLUTE (a count since the last reading): v / Δt.
//! - GAUGE: the value.
//!
//! The first reading of a series, and a reading not newer than the
//! previous one, give `NaN`.

use std::collections::HashMap;

use bot_proto::metrics::{Kind, Number};

use super::codec::SeriesKey;

/// The previous reading of each series of each agent.
#[derive(Debug, Default)]
pub struct Rates {
    prev: HashMap<String, HashMap<SeriesKey, (u64, Number)>>,
}

impl Rates {
    /// The value to store for `key`'s reading `value` at `time_ms`.
    pub fn value(&mut self, agent: &str, key: &SeriesKey, value: Number, time_ms: u64) -> f64 {
        if key.kind == Kind::Gauge {
            return value.as_f64();
        }
        let series = self.prev.entry(agent.to_owned()).or_default();
        let before = series.get(key).copied();
        match before {
            Some((t, _)) if t >= time_ms => return f64::NAN,
            _ => {}
        }
        series.insert(key.clone(), (time_ms, value));
        let Some((t0, v0)) = before else {
            return f64::NAN;
        };
        #[allow(clippy::cast_precision_loss)]
        let dt = (time_ms - t0) as f64 / 1000.0;
        match key.kind {
            Kind::Gauge => value.as_f64(),
            Kind::Absolute => value.as_f64() / dt,
            Kind::Derive => match delta(v0, value) {
                Some(d) if d >= 0.0 => d / dt,
                _ => f64::NAN,
            },
            Kind::Counter => counter_delta(v0, value).map_or(f64::NAN, |d| d / dt),
        }
    }

    /// Forgets an agent's readings (it was forgotten).
    pub fn forget(&mut self, agent: &str) {
        self.prev.remove(agent);
    }

    /// Forgets readings older than `before_ms` (series that went away), and
    /// agents left with none.
    pub fn sweep(&mut self, before_ms: u64) {
        self.prev.retain(|_, series| {
            series.retain(|_, (t, _)| *t >= before_ms);
            !series.is_empty()
        });
    }
}

fn delta(a: Number, b: Number) -> Option<f64> {
    match (a, b) {
        #[allow(clippy::cast_precision_loss)]
        (Number::Int(x), Number::Int(y)) => Some(y.checked_sub(x)? as f64),
        _ => {
            let d = b.as_f64() - a.as_f64();
            d.is_finite().then_some(d)
        }
    }
}

/// A counter's increase from `a` to `b`, across one wrap; `None` if it
/// looks like a reset (or the values are not counters).
fn counter_delta(a: Number, b: Number) -> Option<f64> {
    let (Number::Int(x), Number::Int(y)) = (a, b) else {
        return delta(a, b).filter(|d| *d >= 0.0);
    };
    let (x, y) = (u64::try_from(x).ok()?, u64::try_from(y).ok()?);
    if y >= x {
        #[allow(clippy::cast_precision_loss)]
        return Some((y - x) as f64);
    }
    let (range, wrapped) = if x <= u64::from(u32::MAX) {
        (1u128 << 32, (1u128 << 32) - u128::from(x) + u128::from(y))
    } else {
        (1u128 << 64, (1u128 << 64) - u128::from(x) + u128::from(y))
    };
    #[allow(clippy::cast_precision_loss)]
    (wrapped <= range / 2).then_some(wrapped as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: Kind) -> SeriesKey {
        SeriesKey {
            metric: "m".into(),
            labels: vec![],
            kind,
        }
    }

    #[test]
    fn rates_resets_and_wraps() {
        let mut r = Rates::default();
        let d = key(Kind::Derive);
        assert!(
            r.value("a", &d, Number::Int(100), 0).is_nan(),
            "first reading"
        );
        assert_eq!(r.value("a", &d, Number::Int(300), 10_000), 20.0);
        assert!(
            r.value("a", &d, Number::Int(50), 20_000).is_nan(),
            "a reset"
        );
        assert_eq!(r.value("a", &d, Number::Int(150), 30_000), 10.0);
        assert!(
            r.value("a", &d, Number::Int(200), 30_000).is_nan(),
            "not newer"
        );
        // Another agent's series is its own.
        assert!(r.value("b", &d, Number::Int(1), 30_000).is_nan());

        let c = key(Kind::Counter);
        let max32 = i64::from(u32::MAX);
        r.value("a", &c, Number::Int(max32 - 99), 0);
        // Wrapped at 2^32: 100 more, in 10 s.
        assert_eq!(r.value("a", &c, Number::Int(0), 10_000), 10.0);
        // Far below a 64-bit value: a reset, not a wrap.
        r.value("a", &c, Number::Int(1 << 40), 20_000);
        assert!(r.value("a", &c, Number::Int(5), 30_000).is_nan());

        let abs = key(Kind::Absolute);
        r.value("a", &abs, Number::Int(7), 0);
        assert_eq!(r.value("a", &abs, Number::Int(50), 5_000), 10.0);

        let g = key(Kind::Gauge);
        assert_eq!(r.value("a", &g, Number::Real(1.5), 0), 1.5);
        r.forget("a");
        assert!(r.value("a", &d, Number::Int(999), 40_000).is_nan());
        // Stale readings go; fresh ones stay.
        r.sweep(35_000);
        assert_eq!(r.value("a", &d, Number::Int(1_099), 50_000), 10.0);
        r.sweep(60_000);
        assert!(r.value("a", &d, Number::Int(1_199), 70_000).is_nan());
    }
}
