//! Samples from the bus to the database, and back as series.
//!
//! - **Ingest** ([`run_ingest`]): the bus ingest hands each
//!   `bot/v1/metrics/<id>` payload over a bounded queue (full: the batch is
//!   dropped and counted, the bus never waits). Each batch is decoded
//!   (malformed samples counted, the rest kept), its signature checked
//!   against the agent's bound key, counters turned into rates
//!   ([`rates`]), kept as the agent's latest values (for `/metrics` and the
//!   dashboard), announced on the event hub, and written in batches: one
//!   row per agent per round ([`codec`]), every second or 2,000 rows.
//! - **History** ([`history`]): minute rollups (min, average, max) made
//!   from the raw rows once each minute is complete, retention of both,
//!   and the series query behind `GET /api/agents/{id}/metrics`.

pub mod codec;
pub mod history;
pub mod rates;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bot_store::{SampleRow, SampleTable, Store};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventHub};
use crate::registry::Registry;
use codec::SeriesKey;

/// Retention and limits of the sample history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// How long raw rows (one per agent per round) are kept.
    pub raw_retention: Duration,
    /// How long minute rollups are kept.
    pub rollup_retention: Duration,
    /// How often rollups and retention run.
    pub every: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            // The defaults: raw for a day, minutes for a month.
            raw_retention: Duration::from_secs(24 * 3600),
            rollup_retention: Duration::from_secs(30 * 24 * 3600),
            every: Duration::from_secs(60),
        }
    }
}

/// Batches waiting between the bus and the ingest task; beyond it a batch
/// is dropped and counted (`bot_samples_dropped_total`).
pub const INGEST_QUEUE: usize = 4_096;

/// Bytes of rows kept for the database while it does not answer; beyond
/// it the oldest rows are dropped and counted.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// How far in the future a batch may be dated (agents' clocks drift a
/// little; a batch from far ahead would never be pruned).
const MAX_FUTURE_MS: u64 = bot_proto::envelope::MAX_CLOCK_SKEW_MS;

/// Counter readings not refreshed for this long are forgotten (a series
/// that went away: an interface, a mount, an agent).
const RATES_TTL_MS: u64 = 3_600_000;

/// Layouts remembered in memory at most (a cache: the store has them all).
const MAX_CACHED_LAYOUTS: usize = 10_000;

/// Rows written per transaction at most, and how often a partial batch is
/// written.
const FLUSH_ROWS: usize = 2_000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One value of the latest round: a series and its value (`NaN`: unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The series.
    pub key: SeriesKey,
    /// Its value (a rate for counters).
    pub value: f64,
}

impl Serialize for Point {
    /// `[metric, {labels}, value or null, "TYPE"]`, as in a metrics batch.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&self.key.metric)?;
        t.serialize_element(&bot_proto::metrics::LabelsObject(&self.key.labels))?;
        t.serialize_element(&self.value.is_finite().then_some(self.value))?;
        t.serialize_element(self.key.kind.as_str())?;
        t.end()
    }
}

/// An agent's latest round.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// Its name.
    pub name: String,
    /// The round's time.
    pub time_ms: u64,
    /// Its values.
    pub points: Vec<Point>,
}

impl Latest {
    /// The value of `metric` with label `label` (if given), if known.
    pub fn value(&self, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
        self.points
            .iter()
            .find(|p| {
                p.key.metric == metric
                    && label
                        .is_none_or(|(k, v)| p.key.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|p| p.value)
            .filter(|v| v.is_finite())
    }
}

/// What the server has counted about samples (for `/metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Samples stored.
    pub ingested: AtomicU64,
    /// Samples left out of a batch as malformed.
    pub rejected: AtomicU64,
    /// Batches refused whole (malformed envelope, bad signature, unknown agent).
    pub bad_batches: AtomicU64,
    /// Batches dropped because the ingest queue was full, or rows dropped
    /// while the database did not answer.
    pub dropped: AtomicU64,
}

/// The shared state of the metrics side: latest values, counters, layouts.
#[derive(Debug, Default)]
pub struct Metrics {
    latest: RwLock<HashMap<String, Arc<Latest>>>,
    /// Counters.
    pub counters: Counters,
    layouts: RwLock<HashMap<i64, Arc<Vec<SeriesKey>>>>,
    /// Retention.
    pub limits: HistoryLimits,
    /// Agents whose every round someone follows (`/api/events?samples=`),
    /// with how many followers: only their rounds go on the event hub.
    watched: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

/// Follows one agent's rounds while it lives (see [`Metrics::watch`]).
#[derive(Debug)]
pub struct WatchGuard {
    agent: String,
    watched: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut w = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = w.get_mut(&self.agent) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.agent);
            }
        }
    }
}

impl Metrics {
    /// Metrics with these retention limits.
    pub fn new(limits: HistoryLimits) -> Metrics {
        Metrics {
            limits,
            ..Metrics::default()
        }
    }

    /// Every agent's latest round, by agent id.
    pub fn latest(&self) -> Vec<(String, Arc<Latest>)> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One agent's latest round.
    pub fn latest_of(&self, agent: &str) -> Option<Arc<Latest>> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(agent)
            .cloned()
    }

    /// Puts `agent`'s every round on the event hub while the guard lives.
    pub fn watch(&self, agent: &str) -> WatchGuard {
        *self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(agent.to_owned())
            .or_insert(0) += 1;
        WatchGuard {
            agent: agent.to_owned(),
            watched: self.watched.clone(),
        }
    }

    fn is_watched(&self, agent: &str) -> bool {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(agent)
    }

    /// Forgets an agent's latest values.
    pub fn forget(&self, agent: &str) {
        self.latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(agent);
    }

    /// The series of layout `id`, from the cache or the store.
    pub(crate) async fn layout(
        &self,
        store: &Store,
        id: i64,
    ) -> Result<Option<Arc<Vec<SeriesKey>>>, bot_store::StoreError> {
        if let Some(l) = self
            .layouts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Some(l.clone()));
        }
        let Some((_, text)) = store.layouts(&[id]).await?.into_iter().next() else {
            return Ok(None);
        };
        match codec::parse_layout(&text) {
            Ok(series) => {
                let series = Arc::new(series);
                self.remember_layout(id, series.clone());
                Ok(Some(series))
            }
            Err(why) => {
                tracing::error!(layout = id, %why, "unreadable stored layout");
                Ok(None)
            }
        }
    }

    fn remember_layout(&self, id: i64, series: Arc<Vec<SeriesKey>>) {
        let mut cache = self.layouts.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_LAYOUTS {
            cache.clear();
        }
        cache.insert(id, series);
    }

    /// Records `latest` as the agent's latest round; `None` if a newer
    /// round is already recorded (a late or replayed batch changes
    /// nothing). A round sent as several batches becomes one latest, each
    /// series once.
    fn set_latest(&self, agent: &str, latest: Latest) -> Option<Arc<Latest>> {
        let mut map = self.latest.write().unwrap_or_else(|e| e.into_inner());
        let merged = match map.get(agent) {
            Some(prev) if prev.time_ms > latest.time_ms => return None,
            Some(prev) if prev.time_ms == latest.time_ms => {
                let mut points = prev.points.clone();
                for p in latest.points {
                    match points.iter_mut().find(|q| q.key == p.key) {
                        Some(q) => *q = p,
                        None => points.push(p),
                    }
                }
                Latest { points, ..latest }
            }
            _ => latest,
        };
        let merged = Arc::new(merged);
        map.insert(agent.to_owned(), merged.clone());
        Some(merged)
    }
}

/// What the ingest takes.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A `bot/v1/metrics/<id>` payload, straight off the bus (`id` from the
    /// topic): decoded and its signature checked here.
    Batch(String, Vec<u8>),
    /// Samples the server already verified: a check result's performance
    /// data (`check.<name>` metrics).
    Checked {
        /// The agent.
        agent_id: String,
        /// Its name.
        name: String,
        /// When the check ran.
        time_ms: u64,
        /// The samples.
        samples: Vec<bot_proto::metrics::Sample>,
    },
}

/// One round to convert and store, whichever way it came.
struct Round {
    agent_id: String,
    name: String,
    time_ms: u64,
    interval_ms: u64,
    samples: Vec<bot_proto::metrics::Sample>,
    /// An agent's measuring round (its headline numbers are announced),
    /// not a check's performance data.
    measured: bool,
}

/// The ingest: decodes, checks, converts, remembers, announces and stores
/// the batches from `rx` until it closes or `shutdown`.
pub(crate) async fn run_ingest(
    mut rx: mpsc::Receiver<Incoming>,
    registry: Registry,
    store: Store,
    hub: EventHub,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut rates = rates::Rates::default();
    let mut pending = Pending::default();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned_bad = false;
    let mut last_sweep = bot_proto::now_ms();
    let mut rejected_warned: Option<std::time::Instant> = None;
    loop {
        let incoming = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = tick.tick() => {
                pending.flush(&store, &metrics).await;
                let now = bot_proto::now_ms();
                if now.saturating_sub(last_sweep) >= 600_000 {
                    last_sweep = now;
                    rates.sweep(now.saturating_sub(RATES_TTL_MS));
                    if pending.stored.len() > MAX_CACHED_LAYOUTS {
                        pending.stored.clear();
                    }
                }
                continue;
            }
            () = shutdown.cancelled() => break,
        };
        let (topic_id, payload) = match incoming {
            Incoming::Batch(topic_id, payload) => (topic_id, payload),
            Incoming::Checked {
                agent_id,
                name,
                time_ms,
                samples,
            } => {
                let round = Round {
                    agent_id,
                    name,
                    time_ms,
                    interval_ms: 0,
                    samples,
                    measured: false,
                };
                ingest_round(round, &mut rates, &mut pending, &store, &hub, &metrics).await;
                continue;
            }
        };
        let decoded = match bot_proto::Metrics::decode(&payload) {
            Ok(d) => d,
            Err(e) => {
                metrics.counters.bad_batches.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut warned_bad, true) {
                    tracing::warn!(error = %e, "malformed metrics batch dropped (warning once; see bot_samples_bad_batches_total)");
                }
                continue;
            }
        };
        let batch = decoded.metrics;
        // On its own topic only, and not dated beyond the clock skew.
        let ahead = batch.time_ms.saturating_sub(bot_proto::now_ms());
        if batch.id != topic_id || ahead > MAX_FUTURE_MS {
            metrics.counters.bad_batches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(agent = %batch.id, topic = %topic_id, ahead_ms = ahead,
                "metrics batch on another agent's topic, or dated in the future: refused");
            continue;
        }
        if let Err(why) =
            registry.verify_signed(&batch.id, batch.sig.as_deref(), &decoded.signing_bytes)
        {
            metrics.counters.bad_batches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(agent = %batch.id, %why, "metrics batch refused");
            continue;
        }
        if decoded.rejected > 0 {
            metrics
                .counters
                .rejected
                .fetch_add(decoded.rejected as u64, Ordering::Relaxed);
            // Logged at most once a minute (a broken plugin sends them every round).
            if rejected_warned
                .is_none_or(|t: std::time::Instant| t.elapsed() >= Duration::from_secs(60))
            {
                rejected_warned = Some(std::time::Instant::now());
                tracing::warn!(agent = %batch.id, name = %batch.name, rejected = decoded.rejected,
                    first = ?decoded.first_rejection,
                    "malformed samples left out of a batch (the rest kept; bot_samples_rejected_total)");
            }
        }
        let round = Round {
            agent_id: batch.id,
            name: batch.name,
            time_ms: batch.time_ms,
            interval_ms: batch.interval_ms,
            samples: batch.samples,
            measured: true,
        };
        ingest_round(round, &mut rates, &mut pending, &store, &hub, &metrics).await;
    }
    pending.flush(&store, &metrics).await;
}

/// Converts (rates), remembers, announces and queues one round for writing.
async fn ingest_round(
    round: Round,
    rates: &mut rates::Rates,
    pending: &mut Pending,
    store: &Store,
    hub: &EventHub,
    metrics: &Metrics,
) {
    let mut keys = Vec::with_capacity(round.samples.len());
    let mut values = Vec::with_capacity(round.samples.len());
    let mut points = Vec::with_capacity(round.samples.len());
    let mut seen = HashSet::with_capacity(round.samples.len());
    for s in round.samples {
        let key = SeriesKey {
            metric: s.metric,
            labels: s.labels,
            kind: s.kind,
        };
        // A series twice in one round: the first counts.
        if !seen.insert(key.clone()) {
            continue;
        }
        let v = rates.value(&round.agent_id, &key, s.value, round.time_ms);
        values.push(v);
        points.push(Point {
            key: key.clone(),
            value: v,
        });
        keys.push(key);
    }
    if keys.is_empty() {
        return;
    }
    let text = codec::layout_text(&keys);
    let layout = codec::layout_id(&text);
    if !pending.stored.contains(&layout) && !pending.new_layouts.iter().any(|(id, _)| *id == layout)
    {
        metrics.remember_layout(layout, Arc::new(keys));
        pending.new_layouts.push((layout, text));
    }
    pending.rows.push(SampleRow {
        agent_id: round.agent_id.clone(),
        time_ms: round.time_ms,
        layout,
        data: codec::encode(&values),
    });
    // A check's performance data is history only: the agent's latest
    // round (its headline, `/metrics`) stays its measuring round.
    if !round.measured {
        if pending.rows.len() >= FLUSH_ROWS {
            pending.flush(store, metrics).await;
        }
        return;
    }
    let Some(latest) = metrics.set_latest(
        &round.agent_id,
        Latest {
            name: round.name.clone(),
            time_ms: round.time_ms,
            points,
        },
    ) else {
        // An older round than the latest: stored (history), not announced.
        if pending.rows.len() >= FLUSH_ROWS {
            pending.flush(store, metrics).await;
        }
        return;
    };
    hub.publish(Event::Headline {
        agent_id: round.agent_id.clone(),
        time_ms: round.time_ms,
        cpu: latest.value("cpu.usage", Some(("cpu", "total"))),
        memory: latest.value("memory.used_percent", None),
        load: latest.value("cpu.load", None),
    });
    // A round is big: on the hub only for agents someone follows.
    if metrics.is_watched(&round.agent_id) {
        hub.publish(Event::Samples {
            agent_id: round.agent_id,
            time_ms: round.time_ms,
            interval_ms: round.interval_ms,
            samples: latest,
        });
    }
    if pending.rows.len() >= FLUSH_ROWS {
        pending.flush(store, metrics).await;
    }
}

/// What waits to be written: layouts not yet stored and rows (a row holds
/// one value, 8 bytes, per sample); and the layouts known to be stored.
#[derive(Debug, Default)]
struct Pending {
    new_layouts: Vec<(i64, String)>,
    stored: HashSet<i64>,
    rows: Vec<SampleRow>,
}

impl Pending {
    /// Writes the new layouts, then the rows. On a database error they stay
    /// for the next flush (bounded: the oldest rows beyond the bound go).
    async fn flush(&mut self, store: &Store, metrics: &Metrics) {
        if self.rows.is_empty() && self.new_layouts.is_empty() {
            return;
        }
        if let Err(e) = store.put_layouts(&self.new_layouts).await {
            tracing::error!(error = %e, "cannot store metric layouts; retrying");
        } else {
            self.stored
                .extend(self.new_layouts.drain(..).map(|(id, _)| id));
            match store.insert_samples(SampleTable::Raw, &self.rows).await {
                Ok(()) => {
                    let samples: usize = self.rows.iter().map(|r| r.data.len() / 8).sum();
                    metrics
                        .counters
                        .ingested
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    self.rows.clear();
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = self.rows.len(), "cannot store samples; retrying")
                }
            }
        }
        let mut bytes: usize = self.rows.iter().map(|r| r.data.len() + 64).sum();
        let mut excess = 0;
        while bytes > MAX_PENDING_BYTES && excess < self.rows.len() {
            bytes -= self.rows[excess].data.len() + 64;
            excess += 1;
        }
        if excess > 0 {
            self.rows.drain(..excess);
            metrics
                .counters
                .dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
    }
}
