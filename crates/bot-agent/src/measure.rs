//! The measuring loop. Idle (no timers at all) until the agent is selected;
//! then every interval: run the collectors in force and the plugins, and
//! publish the round twice: one signed batch of every sample on
//! `bot/v1/metrics/<id>` (structured, with labels), and one message per
//! sample on `DATA/<name>` (the classic lines, byte-compatible), then
//! `core.processing_time`. A round longer than the interval publishes
//! `core.overrun` (its duration) and, when `auto_raise_interval` is on, asks
//! for a 1.5× longer interval.
//!
//! Changes of selection, interval or collectors take effect at once: the
//! wait for the next round is recomputed from the last round's start with
//! the new interval, an `UNSEL` stops a round in progress, and the next
//! round runs the new collectors (a collector kept keeps its state).

use std::time::Duration;

use bot_bus::{Publisher, Qos};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use bot_proto::Metrics;

use crate::collectors::{self, Collector, Number, Sample};
use crate::plugins::{PluginSample, Plugins};
use crate::{MeasureState, TOPIC_DATA, ValidConfig};

/// Most samples per batch message: a round with more (many CPUs, mounts
/// or plugin samples) goes as several batches, each well under the
/// envelope limit.
const BATCH_SAMPLES: usize = 1_000;

/// Who signs the batches.
pub(crate) struct Signing {
    pub id: String,
    pub key: Arc<bot_auth::SecretKey>,
}

pub(crate) struct Measurer {
    name: String,
    topic: String,
    metrics_topic: String,
    signing: Signing,
    /// The collectors built, by name, and the names they were built for.
    collectors: Vec<Box<dyn Collector>>,
    built_for: Arc<[String]>,
    plugins: Option<Plugins>,
    publisher: Publisher,
    raise: mpsc::Sender<f64>,
    auto_raise: bool,
    samples: Vec<Sample>,
    plugin_samples: Vec<PluginSample>,
}

impl Measurer {
    pub fn new(
        config: &ValidConfig,
        signing: Signing,
        publisher: Publisher,
        raise: mpsc::Sender<f64>,
    ) -> Measurer {
        let c = &config.config;
        Measurer {
            name: config.name.clone(),
            topic: format!("{TOPIC_DATA}/{}", config.name),
            metrics_topic: bot_proto::topics::metrics_topic(&signing.id),
            signing,
            collectors: collectors::build(&c.collectors),
            built_for: c.collectors.iter().cloned().collect(),
            plugins: c.plugins.as_ref().map(|dir| {
                Plugins::new(
                    dir.clone(),
                    Duration::from_secs_f64(c.plugin_timeout),
                    c.plugin_output_limit,
                )
            }),
            publisher,
            raise,
            auto_raise: c.auto_raise_interval,
            samples: Vec::new(),
            plugin_samples: Vec::new(),
        }
    }

    /// Runs the collectors `names` from now on: those already built keep
    /// their state (the CPU collector's previous reading), new ones are
    /// built, dropped ones go.
    fn use_collectors(&mut self, names: &Arc<[String]>) {
        if Arc::ptr_eq(names, &self.built_for) || *names == self.built_for {
            return;
        }
        let mut old: Vec<Box<dyn Collector>> = std::mem::take(&mut self.collectors);
        for name in names.iter() {
            match old.iter().position(|c| c.name() == name) {
                Some(i) => self.collectors.push(old.swap_remove(i)),
                None => self
                    .collectors
                    .extend(collectors::build(std::slice::from_ref(name))),
            }
        }
        tracing::info!(collectors = ?names, "collectors changed");
        self.built_for = names.clone();
    }

    /// One round: collect, publish. Returns how long collecting took.
    async fn round(&mut self, state: &MeasureState) -> Duration {
        self.use_collectors(&state.collectors);
        let start = Instant::now();
        let time_ms = bot_proto::now_ms();
        self.samples.clear();
        self.plugin_samples.clear();
        for c in self.collectors.iter_mut() {
            if let Err(e) = c.collect(&mut self.samples) {
                tracing::warn!(collector = c.name(), error = %e, "collector failed");
                self.samples.push(Sample::gauge(
                    format!("core.collector_error.{}", c.name()),
                    Number::Int(1),
                ));
            }
        }
        if let Some(p) = self.plugins.as_mut() {
            p.run_round(&mut self.plugin_samples).await;
        }
        let took = start.elapsed();
        // The classic lines: a plugin's sample keeps the name it gave.
        let mut lines: Vec<String> = self
            .samples
            .iter()
            .map(|s| s.line(&self.name))
            .chain(
                self.plugin_samples
                    .iter()
                    .map(|ps| ps.sample.line(ps.name.as_deref().unwrap_or(&self.name))),
            )
            .collect();
        let processing = Sample::gauge("core.processing_time", Number::Real(took.as_secs_f64()));
        lines.push(processing.line(&self.name));
        // The batch: a plugin's sample for another host carries `host`.
        let mut batch: Vec<Sample> = std::mem::take(&mut self.samples);
        batch.extend(self.plugin_samples.drain(..).map(|ps| match ps.name {
            Some(host) if host != self.name => ps.sample.label("host", host),
            _ => ps.sample,
        }));
        batch.push(processing);
        self.publish_batches(batch, time_ms, state.interval).await;
        for line in lines {
            if let Err(e) = self
                .publisher
                .publish(self.topic.as_str(), line, Qos::AtMostOnce, false)
                .await
            {
                tracing::debug!(error = %e, "sample not sent");
            }
        }
        took
    }

    /// Publishes `samples` as signed batches of at most [`BATCH_SAMPLES`].
    /// A sample that breaks the protocol's limits (a plugin's label, say)
    /// is left out here rather than cost the receiver the whole batch.
    async fn publish_batches(&mut self, mut samples: Vec<Sample>, time_ms: u64, interval: f64) {
        let before = samples.len();
        samples.retain(|s| s.validate().is_ok());
        if samples.len() < before {
            tracing::debug!(
                dropped = before - samples.len(),
                "invalid samples left out of the batch"
            );
        }
        let interval_ms = (interval * 1000.0).round() as u64;
        let mut rest = samples;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(BATCH_SAMPLES));
            let mut m = Metrics {
                id: self.signing.id.clone(),
                name: self.name.clone(),
                time_ms,
                interval_ms,
                samples: std::mem::replace(&mut rest, tail),
                sig: None,
            };
            m.sig = Some(bot_auth::sign::detached(
                &self.signing.key,
                &m.signing_bytes(),
            ));
            if let Err(e) = self
                .publisher
                .publish(
                    self.metrics_topic.as_str(),
                    m.encode(),
                    Qos::AtMostOnce,
                    false,
                )
                .await
            {
                tracing::debug!(error = %e, "metrics batch not sent");
            }
        }
    }

    async fn overrun(&mut self, took: Duration, interval: f64) {
        let line = Sample::gauge("core.overrun", Number::Real(took.as_secs_f64())).line(&self.name);
        tracing::warn!(
            took = took.as_secs_f64(),
            interval,
            "measuring round overran its interval"
        );
        let _ = self
            .publisher
            .publish(self.topic.as_str(), line, Qos::AtMostOnce, false)
            .await;
        if self.auto_raise {
            let wanted = (took.as_secs_f64() * 1.5).min(bot_lang::MAX_INTERVAL);
            let _ = self.raise.try_send(wanted);
        }
    }
}

pub(crate) async fn run(
    mut m: Measurer,
    mut state: watch::Receiver<MeasureState>,
    shutdown: CancellationToken,
) {
    loop {
        let current = state.borrow_and_update().clone();
        if !current.selected {
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            continue;
        }
        let started = Instant::now();
        // A round in progress stops at once on UNSEL/LUN or shutdown.
        let took = tokio::select! {
            took = m.round(&current) => took,
            () = shutdown.cancelled() => return,
            r = state.wait_for(|s| !s.selected) => {
                if r.is_err() { return }
                continue;
            }
        };
        if took.as_secs_f64() > current.interval {
            m.overrun(took, current.interval).await;
        }
        // Wait for the next round; any change recomputes the deadline at once.
        loop {
            let (selected, interval) = {
                let s = state.borrow_and_update();
                (s.selected, s.interval)
            };
            if !selected {
                break;
            }
            let deadline = started + Duration::from_secs_f64(interval);
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                r = state.changed() => if r.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
    }
}
