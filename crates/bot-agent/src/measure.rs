//! The measuring loop. Idle (no timers at all) until the agent is selected;
//! then every interval: run the built-in collectors and the plugins, publish
//! one message per sample on `DATA/<name>`, then `core.processing_time`. A
//! round longer than the interval publishes `core.overrun` (its duration) and,
//! when `auto_raise_interval` is on, asks for a 1.5× longer interval.
//!
//! Changes of selection or interval take effect at once: the wait for the next
//! round is recomputed from the last round's start with the new interval, and
//! an `UNSEL` stops a round in progress.

use std::time::Duration;

use bot_bus::{Publisher, Qos};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collectors::{self, Collector, Number, Sample};
use crate::plugins::Plugins;
use crate::{MeasureState, TOPIC_DATA, ValidConfig};

pub(crate) struct Measurer {
    name: String,
    topic: String,
    collectors: Vec<Box<dyn Collector>>,
    plugins: Option<Plugins>,
    publisher: Publisher,
    raise: mpsc::Sender<f64>,
    auto_raise: bool,
    samples: Vec<Sample>,
    lines: Vec<String>,
}

impl Measurer {
    pub fn new(config: &ValidConfig, publisher: Publisher, raise: mpsc::Sender<f64>) -> Measurer {
        let c = &config.config;
        Measurer {
            name: config.name.clone(),
            topic: format!("{TOPIC_DATA}/{}", config.name),
            collectors: collectors::build(&c.collectors),
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
            lines: Vec::new(),
        }
    }

    /// One round: collect, publish. Returns how long collecting took.
    async fn round(&mut self) -> Duration {
        let start = Instant::now();
        self.samples.clear();
        self.lines.clear();
        for c in self.collectors.iter_mut() {
            if let Err(e) = c.collect(&mut self.samples) {
                tracing::warn!(collector = c.name(), error = %e, "collector failed");
                self.samples.push(Sample::gauge(
                    format!("core.collector_error.{}", c.name()),
                    Number::Int(1),
                ));
            }
        }
        self.lines
            .extend(self.samples.iter().map(|s| s.line(&self.name)));
        if let Some(p) = self.plugins.as_mut() {
            p.run_round(&self.name, &mut self.lines).await;
        }
        let took = start.elapsed();
        self.lines.push(
            Sample::gauge("core.processing_time", Number::Real(took.as_secs_f64()))
                .line(&self.name),
        );
        for line in self.lines.drain(..) {
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
        let current = *state.borrow_and_update();
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
            took = m.round() => took,
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
            let s = *state.borrow_and_update();
            if !s.selected {
                break;
            }
            let deadline = started + Duration::from_secs_f64(s.interval);
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                r = state.changed() => if r.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
    }
}
