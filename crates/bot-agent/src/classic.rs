//! The classic protocol on the agent: each message on `BUS` or `BUS/<name>`
//! runs on a fresh stack (`bot-lang` guarantees bounded time and memory), its
//! replies go to `RES`, and its effects (selection, interval, reset, `_TEST`)
//! are applied here and forwarded to the measuring loop at once.
//!
//! This task is the one owner of the measuring settings in force: the
//! server's config (`bot/v1/config/<id>`, checked by the caller) is applied
//! here too, so a classic `UNSEL` and a config never race.

use bot_bus::{Publisher, Qos};
use bot_lang::{Effect, Machine};
use tokio::sync::watch;

use crate::{MeasureState, TOPIC_BUS, TOPIC_RES};

pub(crate) struct Classic {
    machine: Machine,
    publisher: Publisher,
    state: watch::Sender<MeasureState>,
    own_topic: String,
    /// The collectors that run (the config file's, then the server's).
    collectors: std::sync::Arc<[String]>,
    /// The server config last applied: its revision and time.
    revision: u64,
    applied_ms: u64,
    /// Changed on the agent since that config.
    local: bool,
}

impl Classic {
    pub fn new(
        machine: Machine,
        publisher: Publisher,
        state: watch::Sender<MeasureState>,
    ) -> Classic {
        let own_topic = format!("{TOPIC_BUS}/{}", machine.info().name);
        let collectors = state.borrow().collectors.clone();
        Classic {
            machine,
            publisher,
            state,
            own_topic,
            collectors,
            revision: 0,
            applied_ms: 0,
            local: false,
        }
    }

    /// Handles one incoming message (ignores topics that are not ours).
    pub async fn handle(&mut self, topic: &str, payload: &[u8]) {
        if topic != TOPIC_BUS && topic != self.own_topic {
            return;
        }
        let outcome = self.machine.run(payload);
        for effect in &outcome.effects {
            match effect {
                Effect::Print(text) => {
                    // `_TEST`: the ancestor printed on the agent's stdout.
                    println!("{text}");
                }
                Effect::Selected(on) => tracing::info!(selected = on, "selection changed"),
                Effect::Interval(secs) => tracing::info!(interval = secs, "interval changed"),
                Effect::Reset => tracing::info!("reset (LUN)"),
            }
        }
        if !outcome.effects.is_empty() {
            self.local = true;
            self.sync_state();
        }
        for reply in outcome.replies {
            tracing::debug!(%topic, %reply, "reply");
            if let Err(e) = self
                .publisher
                .publish(TOPIC_RES, reply, Qos::AtMostOnce, false)
                .await
            {
                tracing::debug!(error = %e, "reply not sent");
            }
        }
    }

    /// Runs classic programs from `inbox`, one at a time and in order, on
    /// their own task: a flood of them then never holds up the agent's
    /// main loop, which answers structured requests (issue 12, item 5).
    /// Also takes the measuring loop's interval raises. Ends when `inbox`
    /// closes.
    pub async fn run(
        mut self,
        mut inbox: tokio::sync::mpsc::Receiver<bot_bus::Message>,
        mut raise: tokio::sync::mpsc::Receiver<f64>,
        mut configs: tokio::sync::watch::Receiver<Option<bot_proto::MeasureConfig>>,
    ) {
        loop {
            tokio::select! {
                m = inbox.recv() => match m {
                    Some(m) => self.handle(&m.topic, &m.payload).await,
                    None => return,
                },
                Some(secs) = raise.recv() => self.raise_interval(secs),
                Ok(()) = configs.changed() => {
                    let config = configs.borrow_and_update().clone();
                    if let Some(config) = config {
                        self.apply_config(&config);
                    }
                }
            }
        }
    }

    /// Applies the server's measuring config (already checked): on or
    /// off, interval, collectors, at once. An older config than the one
    /// applied (a retained message replayed) is ignored.
    pub fn apply_config(&mut self, config: &bot_proto::MeasureConfig) {
        if config.created_ms < self.applied_ms
            || (config.created_ms == self.applied_ms && config.revision <= self.revision)
        {
            tracing::debug!(revision = config.revision, "older measuring config ignored");
            return;
        }
        self.machine.set_selected(config.enabled);
        #[allow(clippy::cast_precision_loss)]
        self.machine
            .set_interval(config.interval_ms as f64 / 1000.0);
        self.collectors = config.collectors.iter().cloned().collect();
        self.revision = config.revision;
        self.applied_ms = config.created_ms;
        self.local = false;
        self.sync_state();
    }

    /// The measuring loop asks for a longer interval after an overrun.
    pub fn raise_interval(&mut self, secs: f64) {
        if secs > self.machine.state().interval {
            self.machine.set_interval(secs);
            tracing::warn!(
                interval = self.machine.state().interval,
                "interval raised after overrun"
            );
            self.local = true;
            self.sync_state();
        }
    }

    fn sync_state(&self) {
        let s = self.machine.state();
        let next = MeasureState {
            selected: s.selected,
            interval: s.interval,
            collectors: self.collectors.clone(),
            revision: self.revision,
            local: self.local,
        };
        self.state.send_if_modified(|cur| {
            let changed = *cur != next;
            *cur = next;
            changed
        });
    }
}
