//! The sample history: minute rollups, retention, and the series query.
//!
//! Rollups are made from the raw rows once a minute is over (with a
//! minute's slack for late rows): per agent, layout and minute, each
//! series's min, average and max over its known values. Which minutes are
//! done is kept in the settings (`metrics_rollup_done_ms`), so a restart
//! neither skips nor repeats one (a repeat would be harmless: rows are
//! inserted once). Retention deletes raw rows and rollups past their age.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bot_store::{SampleRow, SampleTable, Store, StoreError};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::codec::{self, SeriesKey};

const MINUTE_MS: u64 = 60_000;

/// A bucket's (min, sum, max, count) of known values.
type Slot = (f64, f64, f64, u32);

/// Minutes rolled up per run at most (catching up after a long stop goes
/// an hour per minute).
const MINUTES_PER_RUN: u64 = 60;

const DONE_SETTING: &str = "metrics_rollup_done_ms";

/// Runs rollups and retention every minute until `shutdown`.
pub(crate) async fn keep(store: Store, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    // A first run soon after start, then every `every` (a minute).
    let every = metrics.limits.every;
    let mut wait = every.min(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        wait = every;
        let now = bot_proto::now_ms();
        if let Err(e) = roll_up(&store, &metrics, now).await {
            tracing::error!(error = %e, "metric rollups failed; retrying in a minute");
        }
        if let Err(e) = prune(&store, &metrics, now).await {
            tracing::error!(error = %e, "metric retention failed; retrying in a minute");
        }
    }
}

/// Rolls up the complete minutes not yet done, at most [`MINUTES_PER_RUN`].
/// Returns how many minutes were done.
pub(crate) async fn roll_up(store: &Store, metrics: &Metrics, now: u64) -> Result<u64, StoreError> {
    // Minutes ending at least a minute ago are complete.
    let until = (now / MINUTE_MS).saturating_sub(1) * MINUTE_MS;
    let mut done = match store
        .setting(DONE_SETTING)
        .await?
        .and_then(|t| t.parse::<u64>().ok())
    {
        Some(t) => t,
        None => match store.oldest_sample_ms(SampleTable::Raw).await? {
            Some(t) => t / MINUTE_MS * MINUTE_MS,
            None => return Ok(0),
        },
    };
    // Nothing older than the raw retention is left to roll up.
    let floor = now.saturating_sub(millis(metrics.limits.raw_retention)) / MINUTE_MS * MINUTE_MS;
    done = done.max(floor);
    let mut n = 0;
    while done < until && n < MINUTES_PER_RUN {
        let rows = store
            .samples_between(SampleTable::Raw, done, done + MINUTE_MS)
            .await?;
        let rollups = minute(store, metrics, done, &rows).await?;
        store.insert_samples(SampleTable::Minute, &rollups).await?;
        done += MINUTE_MS;
        n += 1;
        store.set_setting(DONE_SETTING, &done.to_string()).await?;
    }
    Ok(n)
}

/// The rollup rows of one minute's raw rows.
async fn minute(
    store: &Store,
    metrics: &Metrics,
    minute_ms: u64,
    rows: &[SampleRow],
) -> Result<Vec<SampleRow>, StoreError> {
    // (agent, layout) → per series (min, sum, max, count).
    let mut acc: BTreeMap<(&str, i64), Vec<Slot>> = BTreeMap::new();
    for r in rows {
        let values = codec::decode(&r.data);
        let slot = acc
            .entry((r.agent_id.as_str(), r.layout))
            .or_insert_with(|| vec![(f64::INFINITY, 0.0, f64::NEG_INFINITY, 0); values.len()]);
        for (a, v) in slot.iter_mut().zip(values) {
            if v.is_finite() {
                a.0 = a.0.min(v);
                a.1 += v;
                a.2 = a.2.max(v);
                a.3 += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(acc.len());
    for ((agent, layout), series) in acc {
        // Skip a layout nobody can read (it would be unreadable later too).
        if metrics.layout(store, layout).await?.is_none() {
            continue;
        }
        let mut values = Vec::with_capacity(series.len() * 3);
        for (min, sum, max, count) in series {
            if count == 0 {
                values.extend([f64::NAN; 3]);
            } else {
                values.extend([min, sum / f64::from(count), max]);
            }
        }
        out.push(SampleRow {
            agent_id: agent.to_owned(),
            time_ms: minute_ms,
            layout,
            data: codec::encode(&values),
        });
    }
    Ok(out)
}

/// Deletes what is past its retention.
pub(crate) async fn prune(store: &Store, metrics: &Metrics, now: u64) -> Result<(), StoreError> {
    let raw = store
        .prune_samples(
            SampleTable::Raw,
            now.saturating_sub(millis(metrics.limits.raw_retention)),
        )
        .await?;
    let minutes = store
        .prune_samples(
            SampleTable::Minute,
            now.saturating_sub(millis(metrics.limits.rollup_retention)),
        )
        .await?;
    if raw + minutes > 0 {
        tracing::debug!(raw, minutes, "old samples deleted");
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a series query asks for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Metric names; a name ending in `*` is a prefix. Empty: every metric.
    pub names: Vec<String>,
    /// From (unix ms, included).
    pub since_ms: u64,
    /// To (unix ms, excluded).
    pub until_ms: u64,
    /// Bucket width, ms (`None`: chosen for about 300 points).
    pub step_ms: Option<u64>,
}

/// Most points per series in an answer.
pub const MAX_POINTS: u64 = 10_000;

/// Rows read per page (a long range is read a page at a time).
const PAGE_ROWS: u32 = 1_000;

/// Most rows read for one answer; beyond it the answer says `truncated`.
const MAX_ROWS: usize = 1_000_000;

/// Most series × buckets in one answer (about 64 MB while it is built);
/// series beyond it are left out and the answer says `truncated`.
pub const MAX_CELLS: u64 = 2_000_000;

/// Series ready to plot: one time axis, one array of values per series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SeriesAnswer {
    /// The agent.
    pub agent_id: String,
    /// `raw` (per round) or `1m` (minute rollups), chosen by the range.
    pub source: &'static str,
    /// The range.
    pub since_ms: u64,
    /// The range's end (excluded).
    pub until_ms: u64,
    /// The bucket width.
    pub step_ms: u64,
    /// Each bucket's start, unix ms.
    pub times: Vec<u64>,
    /// The series.
    pub series: Vec<SeriesValues>,
    /// True when the answer is incomplete: more series or rows than one
    /// answer holds (ask for fewer `name`s, a shorter range or a larger `step`).
    pub truncated: bool,
}

/// One series of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SeriesValues {
    /// The metric.
    pub metric: String,
    /// Its labels.
    #[schema(value_type = Object)]
    pub labels: BTreeMap<String, String>,
    /// Its type as sent.
    pub kind: &'static str,
    /// True when the values are per-second rates (DERIVE, COUNTER, ABSOLUTE).
    pub rate: bool,
    /// The average per bucket (`null`: no value).
    pub values: Vec<Option<f64>>,
    /// The minimum per bucket (rollups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Vec<Option<f64>>>,
    /// The maximum per bucket (rollups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Vec<Option<f64>>>,
}

fn wanted(names: &[String], metric: &str) -> bool {
    names.is_empty()
        || names.iter().any(|n| match n.strip_suffix('*') {
            Some(prefix) => metric.starts_with(prefix),
            None => n == metric,
        })
}

/// Answers a series query for `agent_id`.
pub(crate) async fn query(
    store: &Store,
    metrics: &Metrics,
    agent_id: &str,
    q: &Query,
    now: u64,
) -> Result<SeriesAnswer, StoreError> {
    let range = q.until_ms.saturating_sub(q.since_ms).max(1);
    // Raw while the range is within the raw retention, else rollups.
    let raw_from = now.saturating_sub(millis(metrics.limits.raw_retention));
    let table = if q.since_ms >= raw_from {
        SampleTable::Raw
    } else {
        SampleTable::Minute
    };
    let floor = if table == SampleTable::Minute {
        MINUTE_MS
    } else {
        1
    };
    let step = q
        .step_ms
        .unwrap_or(range / 300)
        .max(range.div_ceil(MAX_POINTS))
        .max(floor)
        .max(1);
    let buckets = range.div_ceil(step);
    // Per series: per bucket (min, sum, max, count).
    let mut acc: BTreeMap<SeriesKey, Vec<Slot>> = BTreeMap::new();
    let empty = (f64::INFINITY, 0.0, f64::NEG_INFINITY, 0u32);
    let max_series = usize::try_from(MAX_CELLS / buckets.max(1)).unwrap_or(usize::MAX);
    let mut truncated = false;
    let mut read = 0usize;
    let mut after = None;
    loop {
        let rows = store
            .samples_page(table, agent_id, q.since_ms, q.until_ms, after, PAGE_ROWS)
            .await?;
        let full = rows.len() == PAGE_ROWS as usize;
        after = rows.last().map(|r| (r.time_ms, r.layout));
        read += rows.len();
        for r in &rows {
            let Some(layout) = metrics.layout(store, r.layout).await? else {
                continue;
            };
            let values = codec::decode(&r.data);
            let per = if table == SampleTable::Minute { 3 } else { 1 };
            let b = usize::try_from((r.time_ms.saturating_sub(q.since_ms)) / step)
                .unwrap_or(usize::MAX);
            for (i, key) in layout.iter().enumerate() {
                if !wanted(&q.names, &key.metric) {
                    continue;
                }
                let Some(chunk) = values.get(i * per..(i + 1) * per) else {
                    continue;
                };
                let (lo, avg, hi) = match chunk {
                    [v] => (*v, *v, *v),
                    [lo, avg, hi] => (*lo, *avg, *hi),
                    _ => continue,
                };
                if !avg.is_finite() {
                    continue;
                }
                if !acc.contains_key(key) && acc.len() >= max_series {
                    truncated = true;
                    continue;
                }
                let slots = acc
                    .entry(key.clone())
                    .or_insert_with(|| vec![empty; usize::try_from(buckets).unwrap_or(0)]);
                if let Some(s) = slots.get_mut(b) {
                    s.0 = s.0.min(lo);
                    s.1 += avg;
                    s.2 = s.2.max(hi);
                    s.3 += 1;
                }
            }
        }
        if !full {
            break;
        }
        if read >= MAX_ROWS {
            truncated = true;
            break;
        }
    }
    let rollup = table == SampleTable::Minute;
    let series = acc
        .into_iter()
        .map(|(key, slots)| {
            let pick = |f: fn(&Slot) -> f64| -> Vec<Option<f64>> {
                slots.iter().map(|s| (s.3 > 0).then(|| f(s))).collect()
            };
            SeriesValues {
                rate: key.kind != bot_proto::metrics::Kind::Gauge,
                kind: key.kind.as_str(),
                labels: key.labels.iter().cloned().collect(),
                values: pick(|s| s.1 / f64::from(s.3)),
                min: rollup.then(|| pick(|s| s.0)),
                max: rollup.then(|| pick(|s| s.2)),
                metric: key.metric,
            }
        })
        .collect();
    Ok(SeriesAnswer {
        agent_id: agent_id.to_owned(),
        source: if rollup { "1m" } else { "raw" },
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        step_ms: step,
        times: (0..buckets).map(|i| q.since_ms + i * step).collect(),
        series,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_proto::metrics::Kind;

    /// Two rounds in one minute become one rollup row (min, avg, max of the
    /// known values); a range beyond the raw retention is answered from
    /// rollups; a second run redoes nothing; retention deletes both kinds.
    #[tokio::test]
    async fn minutes_roll_up_once_and_old_rows_go() -> anyhow::Result<()> {
        let dir = bot_testkit::TempDir::new("history");
        let store = Store::open(&format!("sqlite:{}/h.db", dir.path().display())).await?;
        let metrics = Metrics::new(super::super::HistoryLimits {
            raw_retention: Duration::from_secs(3600),
            rollup_retention: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(60),
        });
        let series = vec![
            SeriesKey {
                metric: "cpu.usage".into(),
                labels: vec![("cpu".into(), "total".into())],
                kind: Kind::Gauge,
            },
            SeriesKey {
                metric: "net.rx_bytes".into(),
                labels: vec![("iface".into(), "eth0".into())],
                kind: Kind::Derive,
            },
        ];
        let text = codec::layout_text(&series);
        let layout = codec::layout_id(&text);
        store.put_layouts(&[(layout, text)]).await?;
        let now = 1_800_000_000_000u64 / MINUTE_MS * MINUTE_MS;
        let m = now - 10 * MINUTE_MS;
        let row = |t: u64, v: [f64; 2]| SampleRow {
            agent_id: "a1".into(),
            time_ms: t,
            layout,
            data: codec::encode(&v),
        };
        store
            .insert_samples(
                SampleTable::Raw,
                &[
                    row(m, [10.0, f64::NAN]),
                    row(m + 20_000, [30.0, 5.0]),
                    row(m + 40_000, [20.0, 7.0]),
                ],
            )
            .await?;
        // The minute is done once, whatever the runs.
        let done = roll_up(&store, &metrics, now).await?;
        assert!(done >= 1, "{done}");
        assert_eq!(roll_up(&store, &metrics, now).await?, 0);
        let rolled = store
            .samples(SampleTable::Minute, "a1", m, m + MINUTE_MS, 10)
            .await?;
        assert_eq!(rolled.len(), 1, "{rolled:?}");
        assert_eq!(
            codec::decode(&rolled[0].data),
            [10.0, 20.0, 30.0, 5.0, 6.0, 7.0]
        );
        // A range from beyond the raw retention comes from the rollups.
        let q = Query {
            names: vec!["cpu.*".into()],
            since_ms: now - 2 * 3_600_000,
            until_ms: now,
            step_ms: Some(MINUTE_MS),
        };
        let a = query(&store, &metrics, "a1", &q, now).await?;
        assert_eq!(a.source, "1m");
        assert_eq!(a.series.len(), 1, "{:?}", a.series);
        let s = &a.series[0];
        assert_eq!(s.metric, "cpu.usage");
        let i = usize::try_from((m - q.since_ms) / MINUTE_MS)?;
        assert_eq!(s.values[i], Some(20.0));
        assert_eq!(s.min.as_ref().map(|v| v[i]), Some(Some(10.0)));
        assert_eq!(s.max.as_ref().map(|v| v[i]), Some(Some(30.0)));
        assert_eq!(a.times.len(), s.values.len());
        // Within the raw retention: raw rows, the counter as rates.
        let q = Query {
            names: vec!["net.rx_bytes".into()],
            since_ms: m,
            until_ms: m + MINUTE_MS,
            step_ms: Some(20_000),
        };
        let a = query(&store, &metrics, "a1", &q, m + 2 * MINUTE_MS).await?;
        assert_eq!(a.source, "raw");
        assert_eq!(a.series[0].values, [None, Some(5.0), Some(7.0)]);
        assert!(a.series[0].rate);
        // A long range is read a page at a time, every row counted.
        let base = now - 30 * MINUTE_MS;
        let many: Vec<SampleRow> = (0..2_500u64)
            .map(|i| row(base + i * 500, [i as f64, f64::NAN]))
            .collect();
        store.insert_samples(SampleTable::Raw, &many).await?;
        let q = Query {
            names: vec!["cpu.usage".into()],
            since_ms: base,
            until_ms: base + 2_500 * 500,
            step_ms: Some(500),
        };
        let a = query(&store, &metrics, "a1", &q, now).await?;
        let known = a.series[0].values.iter().filter(|v| v.is_some()).count();
        assert_eq!(known, 2_500);
        assert!(!a.truncated);
        // More series × buckets than one answer holds: the excess is left
        // out, and the answer says so.
        let wide: Vec<SeriesKey> = (0..250)
            .map(|i| SeriesKey {
                metric: format!("w.m{i}"),
                labels: vec![],
                kind: Kind::Gauge,
            })
            .collect();
        let text = codec::layout_text(&wide);
        let wide_id = codec::layout_id(&text);
        store.put_layouts(&[(wide_id, text)]).await?;
        store
            .insert_samples(
                SampleTable::Raw,
                &[SampleRow {
                    agent_id: "a2".into(),
                    time_ms: base,
                    layout: wide_id,
                    data: codec::encode(&[1.0; 250]),
                }],
            )
            .await?;
        let q = Query {
            names: vec![],
            since_ms: base,
            until_ms: base + 10_000,
            step_ms: Some(1),
        };
        let a = query(&store, &metrics, "a2", &q, now).await?;
        assert!(a.truncated);
        assert_eq!(a.series.len() as u64, MAX_CELLS / 10_000);
        // Retention.
        prune(&store, &metrics, now + 48 * 3_600_000).await?;
        assert!(
            store
                .samples(SampleTable::Raw, "a1", 0, u64::MAX, 10)
                .await?
                .is_empty()
        );
        assert!(
            store
                .samples(SampleTable::Minute, "a1", 0, u64::MAX, 10)
                .await?
                .is_empty()
        );
        Ok(())
    }
}
