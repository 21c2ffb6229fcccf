//! The classic protocol on the agent: each message on `BUS` or `BUS/<name>`
//! runs on a fresh stack (`bot-lang` guarantees bounded time and memory), its
//! replies go to `RES`, and its effects (selection, interval, reset, `_TEST`)
//! are applied here and forwarded to the measuring loop at once.

use bot_bus::{Publisher, Qos};
use bot_lang::{Effect, Machine};
use tokio::sync::watch;

use crate::{MeasureState, TOPIC_BUS, TOPIC_RES};

pub(crate) struct Classic {
    machine: Machine,
    publisher: Publisher,
    state: watch::Sender<MeasureState>,
    own_topic: String,
}

impl Classic {
    pub fn new(
        machine: Machine,
        publisher: Publisher,
        state: watch::Sender<MeasureState>,
    ) -> Classic {
        let own_topic = format!("{TOPIC_BUS}/{}", machine.info().name);
        Classic {
            machine,
            publisher,
            state,
            own_topic,
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
    ) {
        loop {
            tokio::select! {
                m = inbox.recv() => match m {
                    Some(m) => self.handle(&m.topic, &m.payload).await,
                    None => return,
                },
                Some(secs) = raise.recv() => self.raise_interval(secs),
            }
        }
    }

    /// The measuring loop asks for a longer interval after an overrun.
    pub fn raise_interval(&mut self, secs: f64) {
        if secs > self.machine.state().interval {
            self.machine.set_interval(secs);
            tracing::warn!(
                interval = self.machine.state().interval,
                "interval raised after overrun"
            );
            self.sync_state();
        }
    }

    fn sync_state(&self) {
        let s = self.machine.state();
        let next = MeasureState {
            selected: s.selected,
            interval: s.interval,
        };
        self.state.send_if_modified(|cur| {
            let changed = *cur != next;
            *cur = next;
            changed
        });
    }
}
