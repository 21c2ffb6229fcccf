//! The event hub: one in-process broadcast stream of what happens in the
//! server — task and target transitions, agents coming online and going
//! offline — that feeds the MQTT task events (`bot/v1/event/task/<id>`),
//! and the browser's live views.
//!
//! Publishing never waits: the hub is a bounded ring ([`CAPACITY`]). A
//! consumer that falls behind by more than the ring loses the oldest events
//! and is told how many ([`Received::Dropped`]); it never holds up the
//! engine or the ingest.

use std::sync::Arc;

use bot_proto::api::TaskEvent;
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for the slowest consumer before it loses the oldest.
pub const CAPACITY: usize = 16_384;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task or one of its targets changed state (stored before this).
    Task(Box<TaskEvent>),
    /// An agent came online or went offline (status, last will, clean
    /// stop, or silence past its heartbeats).
    Agent {
        /// Its id.
        id: String,
        /// Its name.
        name: String,
        /// Online after the change.
        online: bool,
        /// When the server saw it, unix ms.
        at_ms: u64,
    },
    /// The wanted measuring settings of an agent changed (the server's
    /// config; the agent reports what it applied in its status).
    Config {
        /// The agent.
        agent_id: String,
        /// The new revision.
        revision: u64,
        /// Measuring on.
        enabled: bool,
        /// The interval, ms.
        interval_ms: u64,
        /// The collectors.
        collectors: Vec<String>,
    },
    /// An agent's headline numbers from its latest round (for the fleet
    /// view): CPU use %, memory used %, 1-minute load, when known.
    Headline {
        /// The agent.
        agent_id: String,
        /// The round's time.
        time_ms: u64,
        /// `cpu.usage{cpu=total}`.
        cpu: Option<f64>,
        /// `memory.used_percent`.
        memory: Option<f64>,
        /// `cpu.load`.
        load: Option<f64>,
    },
    /// A check changed state on an agent (a result, or no result for two
    /// intervals: UNKNOWN "stale").
    Check(Box<bot_proto::api::CheckChange>),
    /// An agent's latest round, every value (rates for counters).
    Samples {
        /// The agent.
        agent_id: String,
        /// The round's time.
        time_ms: u64,
        /// The agent's interval, ms.
        interval_ms: u64,
        /// The values.
        #[serde(serialize_with = "points")]
        samples: Arc<crate::metrics::Latest>,
    },
}

fn points<S: serde::Serializer>(
    latest: &Arc<crate::metrics::Latest>,
    s: S,
) -> Result<S::Ok, S::Error> {
    latest.points.serialize(s)
}

/// What a subscriber gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// The next event.
    Event(Arc<Event>),
    /// This many events were lost because this subscriber fell behind.
    Dropped(u64),
}

/// The hub. Cloning is cheap: every clone publishes into the same stream.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(CAPACITY)
    }
}

impl EventHub {
    /// A hub keeping `capacity` events for slow consumers.
    pub fn new(capacity: usize) -> EventHub {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventHub { tx }
    }

    /// Publishes `event` to every subscriber; never waits.
    pub fn publish(&self, event: Event) {
        // No subscriber is not an error: nothing is listening yet.
        let _ = self.tx.send(Arc::new(event));
    }

    /// A new subscriber: it gets every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }
}

/// One consumer's place in the stream.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
}

impl Subscription {
    /// The next event, or how many were lost; `None` once the hub is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        match self.rx.recv().await {
            Ok(e) => Some(Received::Event(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Received::Dropped(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Publishes the hub's task events on `bot/v1/event/task/<id>` (QoS 0, as
/// before the hub). Ends when the hub closes or at `shutdown`.
pub(crate) async fn forward_to_mqtt(
    mut events: Subscription,
    publisher: bot_bus::Publisher,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut stopping = false;
    loop {
        let received = if stopping {
            // Stopping: publish what is still queued, then end.
            match tokio::time::timeout(std::time::Duration::from_millis(200), events.recv()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                r = events.recv() => r,
                () = shutdown.cancelled() => {
                    stopping = true;
                    continue;
                }
            }
        };
        match received {
            None => return,
            Some(Received::Dropped(n)) => {
                tracing::warn!(
                    lost = n,
                    "task events fell behind on MQTT; {n} not published"
                );
            }
            Some(Received::Event(e)) => {
                if let Event::Task(t) = &*e {
                    let topic = bot_proto::topics::task_event_topic(&t.task_id);
                    if let Ok(json) = serde_json::to_vec(t) {
                        let _ = publisher
                            .publish(topic, json, bot_bus::Qos::AtMostOnce, false)
                            .await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(i: u64) -> Event {
        Event::Agent {
            id: format!("a{i}"),
            name: "n".into(),
            online: true,
            at_ms: i,
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let hub = EventHub::new(8);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        for i in 0..3 {
            hub.publish(agent(i));
        }
        for sub in [&mut a, &mut b] {
            for i in 0..3 {
                assert_eq!(sub.recv().await, Some(Received::Event(Arc::new(agent(i)))));
            }
        }
    }

    /// A slow consumer loses the oldest events and is told how many; the
    /// publisher never waited, and a fast consumer lost nothing.
    #[tokio::test]
    async fn a_slow_consumer_is_told_what_it_lost() {
        let hub = EventHub::new(4);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..10 {
            hub.publish(agent(i));
            assert_eq!(fast.recv().await, Some(Received::Event(Arc::new(agent(i)))));
        }
        assert_eq!(slow.recv().await, Some(Received::Dropped(6)));
        for i in 6..10 {
            assert_eq!(slow.recv().await, Some(Received::Event(Arc::new(agent(i)))));
        }
    }

    #[test]
    fn events_serialise_with_their_type() {
        let json = serde_json::to_value(agent(7)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type": "agent", "id": "a7", "name": "n", "online": true, "at_ms": 7})
        );
    }
}
