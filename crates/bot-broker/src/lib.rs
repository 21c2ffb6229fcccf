//! The embedded MQTT broker that `bot up` runs in-process.
//!
//! This is the only crate that names the broker implementation (rmqtt, pinned
//! exactly in the workspace manifest). Everything else sees [`BrokerConfig`],
//! [`Broker`] and [`BrokerError`], so the implementation can be swapped
//! without touching the agent, the CLI or the server.
//!
//! What the embedded broker provides: MQTT 3.1.1 and 5 over TCP, MQTT over
//! WebSocket (optional second listener), retained messages (the rmqtt
//! retainer plugin, in memory), last will, shared subscriptions
//! (`$share/<group>/<topic>`, the rmqtt shared-subscription plugin).
//!
//! Settings chosen here on purpose (see `shared/research/broker.md`):
//! - rmqtt's "busy check" is off: it refuses CONNECTs when the host is loaded,
//!   which is exactly when an agent fleet reconnects after a restart;
//! - the per-session queue is raised well above rmqtt's default of 1,000,
//!   beyond which QoS 1 messages are dropped after PUBACK;
//! - `SO_REUSEADDR` is set so a restarted `bot up` can rebind its port at once;
//! - every expiry is explicit (rmqtt's own defaults expire any message that
//!   carries no MQTT 5 expiry after 5 minutes, and the retainer falls back to
//!   that, so `bot up` lost every agent's retained status after 5 minutes):
//!   a retained message lives until it is replaced or cleared, a message with
//!   no expiry of its own never expires (MQTT 5 §3.3.2.3.3, as mosquitto
//!   does), and a persistent session outlives a week-long outage of its client.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use tokio::task::JoinHandle;

/// Settings of the embedded broker. `Default` is what `bot up` uses.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address of the MQTT (TCP) listener. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Address of the MQTT-over-WebSocket listener, if any. Port 0 picks a free port.
    pub ws_listen: Option<SocketAddr>,
    /// Largest MQTT packet accepted, in bytes.
    pub max_packet_size: u32,
    /// Messages queued per session before the broker drops them.
    pub max_queued_messages: usize,
    /// QoS 1/2 messages in flight per session.
    pub max_inflight: u16,
    /// Maximum simultaneous client connections.
    pub max_connections: usize,
    /// How long a retained message is kept. `None`: until it is replaced or
    /// cleared (an empty retained message), whatever expiry it carries.
    pub retained_expiry: Option<Duration>,
    /// Expiry of a message that carries none of its own (queued for an offline
    /// persistent session, or in flight). `None`: it never expires. A message
    /// published with an MQTT 5 expiry interval keeps that interval.
    pub message_expiry: Option<Duration>,
    /// How long the broker keeps a disconnected persistent session (MQTT 3.1.1
    /// `clean_session = false`, e.g. the server's) and the messages queued for
    /// it. An MQTT 5 client's own session expiry interval takes precedence.
    pub session_expiry: Duration,
    /// Most retained topics kept; a retained message on a new topic beyond it
    /// is delivered but not retained (replacing an existing one still works).
    pub max_retained_messages: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            ws_listen: None,
            // Large enough that agents can answer "TooLarge" to oversized classic
            // programs instead of never seeing them.
            max_packet_size: 4 * 1024 * 1024,
            max_queued_messages: 100_000,
            max_inflight: 128,
            max_connections: 100_000,
            // Agent statuses and `--reply-to` results are retained and must
            // stay until replaced: the broker never expires them by itself.
            retained_expiry: None,
            // MQTT 5 semantics (and mosquitto's): no expiry unless the
            // publisher asks for one. Requests carry their own TTL.
            message_expiry: None,
            // rmqtt's default is 2 hours: a server down for a long weekend
            // would lose its queued replies. A week, bounded by the queue
            // length above.
            session_expiry: Duration::from_secs(7 * 24 * 3600),
            // Room for three retained topics (status, heartbeat, config) per
            // agent of a 300,000-agent fleet; bounds what a client that
            // retains on ever-new topics can make the broker hold.
            max_retained_messages: 1_000_000,
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener could not bind its address.
    #[error("cannot listen on {addr} ({kind}): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// "mqtt" or "websocket".
        kind: &'static str,
        /// The underlying error, as text (the broker crate's error type is not exposed).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A broker plugin (retained messages, shared subscriptions) failed to start.
    #[error("cannot start broker plugin {name}: {message}")]
    Plugin {
        /// Plugin name.
        name: &'static str,
        /// What it said.
        message: String,
    },
}

/// A running embedded broker. Dropping it does not stop it; call [`Broker::shutdown`].
#[derive(Debug)]
pub struct Broker {
    mqtt_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    task: JoinHandle<()>,
}

impl Broker {
    /// Binds the listeners and starts serving on the current Tokio runtime.
    ///
    /// Returns once the listeners are bound, so clients may connect as soon as
    /// this returns. The bound addresses (useful with port 0) are in
    /// [`Broker::mqtt_addr`] and [`Broker::ws_addr`].
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let scx = ServerContext::new()
            .busy_check_enable(false)
            .plugins_config_map_add("rmqtt-retainer", retainer_config(&config))
            .plugins_config_map_add("rmqtt-shared-subscription", "strategy = \"round_robin\"\n")
            .build()
            .await;
        rmqtt_retainer::register(&scx, true, false)
            .await
            .map_err(|e| BrokerError::Plugin {
                name: "retainer",
                message: format!("{e:#}"),
            })?;
        rmqtt_shared_subscription::register(&scx, true, false)
            .await
            .map_err(|e| BrokerError::Plugin {
                name: "shared-subscription",
                message: format!("{e:#}"),
            })?;

        let tcp = listener(&config, "mqtt", config.listen)?;
        let mqtt_addr = tcp.local_addr().map_err(|e| BrokerError::Bind {
            addr: config.listen,
            kind: "mqtt",
            source: e.into(),
        })?;
        let tcp = tcp.tcp().map_err(|e| BrokerError::Bind {
            addr: config.listen,
            kind: "mqtt",
            source: e.into(),
        })?;
        let mut server = MqttServer::new(scx).listener_by_id(tcp, 1);
        let mut ws_addr = None;
        if let Some(addr) = config.ws_listen {
            let ws = listener(&config, "websocket", addr)?;
            ws_addr = Some(ws.local_addr().map_err(|e| BrokerError::Bind {
                addr,
                kind: "websocket",
                source: e.into(),
            })?);
            let ws = ws.ws().map_err(|e| BrokerError::Bind {
                addr,
                kind: "websocket",
                source: e.into(),
            })?;
            server = server.listener_by_id(ws, 2);
        }
        let server = server.build();
        // `MqttServer::start` would call `process::exit` on error: run it ourselves.
        let task = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %format!("{e:#}"), "embedded broker stopped");
            }
        });
        tracing::info!(%mqtt_addr, ws_addr = ?ws_addr, "embedded broker listening");
        Ok(Broker {
            mqtt_addr,
            ws_addr,
            task,
        })
    }

    /// The bound MQTT (TCP) address.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    /// The bound MQTT-over-WebSocket address, if that listener is on.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Stops accepting connections. Sessions already open are closed when the
    /// runtime they run on shuts down (i.e. when `bot up` exits).
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The retainer plugin's settings, every one explicit.
fn retainer_config(config: &BrokerConfig) -> String {
    // "0ms" means "never expires" to the retainer; unset would fall back to
    // the listener's message expiry (the 5-minute defect).
    let ttl_ms = config.retained_expiry.map_or(0, |d| d.as_millis().max(1));
    format!(
        "storage.type = \"ram\"\n\
         retained_message_ttl = \"{ttl_ms}ms\"\n\
         max_retained_messages = {max}\n\
         # The retainer's default (1 MB) silently stops retaining larger\n\
         # messages; anything the broker accepts may be retained.\n\
         max_payload_size = \"{payload}B\"\n",
        max = config.max_retained_messages,
        payload = config.max_packet_size,
    )
}

fn listener(
    config: &BrokerConfig,
    kind: &'static str,
    addr: SocketAddr,
) -> Result<rmqtt::net::Listener, BrokerError> {
    Builder::new()
        .name(kind)
        .laddr(addr)
        .reuseaddr(Some(true))
        .nodelay(true)
        .max_packet_size(config.max_packet_size)
        .max_mqueue_len(config.max_queued_messages)
        .max_inflight(NonZeroU16::new(config.max_inflight.max(1)).unwrap_or(NonZeroU16::MIN))
        .max_connections(config.max_connections)
        // Zero is MQTT 5's "no expiry" to the listener (see `message_expiry`).
        .message_expiry_interval(config.message_expiry.unwrap_or(Duration::ZERO))
        .session_expiry_interval(config.session_expiry)
        // No cap on what an MQTT 5 client asks for beyond our own default.
        .max_session_expiry_interval(config.session_expiry)
        .bind()
        .map_err(|e| BrokerError::Bind {
            addr,
            kind,
            source: e.into(),
        })
}

#[cfg(test)]
mod tests {
    //! Broker features the rest of `bot` relies on, checked with a real client.
    use super::*;
    use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
    use std::time::Duration;

    fn client(addr: SocketAddr, id: &str) -> (AsyncClient, EventLoop) {
        let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(8 * 1024 * 1024, 8 * 1024 * 1024);
        AsyncClient::new(o, 64)
    }

    async fn next_publish(el: &mut EventLoop) -> rumqttc::Publish {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), el.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return p,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("connection error: {e}"),
                Err(_) => panic!("no publish within 10 s"),
            }
        }
    }

    async fn until_suback(el: &mut EventLoop) {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.expect("poll") {
                return;
            }
        }
    }

    fn ephemeral() -> BrokerConfig {
        BrokerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retained_message_reaches_a_late_subscriber() {
        let broker = Broker::start(ephemeral()).await.expect("start");
        let (p, mut pel) = client(broker.mqtt_addr(), "pub");
        p.publish("t/retained", QoS::AtLeastOnce, true, "kept")
            .await
            .expect("publish");
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = pel.poll().await.expect("poll") {
                break;
            }
        }
        let (s, mut sel) = client(broker.mqtt_addr(), "sub");
        s.subscribe("t/#", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let msg = next_publish(&mut sel).await;
        assert_eq!(msg.topic, "t/retained");
        assert!(msg.retain);
        assert_eq!(&msg.payload[..], b"kept");
        broker.shutdown().await;
    }

    /// Publishes `payload` retained on `topic` at QoS 1 and waits for PUBACK.
    async fn retain(addr: SocketAddr, topic: &str, payload: &str) {
        let (p, mut pel) = client(addr, "retainer-pub");
        p.publish(topic, QoS::AtLeastOnce, true, payload.to_owned())
            .await
            .expect("publish");
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = pel.poll().await.expect("poll") {
                break;
            }
        }
    }

    /// What a fresh subscriber to `topic` is given as retained within `wait`.
    async fn retained_seen(addr: SocketAddr, topic: &str, wait: Duration) -> Option<String> {
        let (s, mut sel) = client(addr, "late-sub");
        s.subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, sel.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.retain => {
                    return Some(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("connection error: {e}"),
                Err(_) => return None,
            }
        }
    }

    /// The 5-minute defect: rmqtt's default message expiry (5 minutes) also
    /// expired retained messages, so `bot up` lost every agent's status. Here
    /// the message expiry is set to 1 s: a retained message that carries no
    /// expiry must survive well past it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retained_message_outlives_the_message_expiry() {
        let config = BrokerConfig {
            message_expiry: Some(Duration::from_secs(1)),
            ..ephemeral()
        };
        let broker = Broker::start(config).await.expect("start");
        retain(broker.mqtt_addr(), "t/status", "online").await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let seen = retained_seen(broker.mqtt_addr(), "t/#", Duration::from_secs(5)).await;
        assert_eq!(seen.as_deref(), Some("online"), "retained status expired");
        broker.shutdown().await;
    }

    /// The counterpart: the retained expiry is a real setting, so the test
    /// above would see an expiry if there were one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_configured_retained_expiry_removes_the_message() {
        let config = BrokerConfig {
            retained_expiry: Some(Duration::from_secs(1)),
            ..ephemeral()
        };
        let broker = Broker::start(config).await.expect("start");
        retain(broker.mqtt_addr(), "t/status", "online").await;
        let fresh = retained_seen(broker.mqtt_addr(), "t/#", Duration::from_secs(5)).await;
        assert_eq!(fresh.as_deref(), Some("online"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let late = retained_seen(broker.mqtt_addr(), "t/#", Duration::from_millis(1500)).await;
        assert_eq!(late, None, "a 1 s retained expiry was not applied");
        broker.shutdown().await;
    }

    /// The defaults `bot up` runs with: nothing the broker holds expires by
    /// itself, and retained messages as large as a packet stay retained.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn default_keeps_retained_messages_up_to_the_packet_size() {
        let d = BrokerConfig::default();
        assert_eq!(d.retained_expiry, None);
        assert_eq!(d.message_expiry, None);
        let broker = Broker::start(ephemeral()).await.expect("start");
        // Above the retainer's own 1 MB default, below our packet limit.
        let big = "x".repeat(2 * 1024 * 1024);
        retain(broker.mqtt_addr(), "t/big", &big).await;
        let seen = retained_seen(broker.mqtt_addr(), "t/#", Duration::from_secs(5)).await;
        assert_eq!(seen.map(|s| s.len()), Some(big.len()));
        broker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn last_will_is_published_when_a_client_vanishes() {
        let broker = Broker::start(ephemeral()).await.expect("start");
        let (s, mut sel) = client(broker.mqtt_addr(), "watcher");
        s.subscribe("will/#", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        until_suback(&mut sel).await;

        let mut o = MqttOptions::new("doomed", "127.0.0.1", broker.mqtt_addr().port());
        o.set_last_will(LastWill::new(
            "will/doomed",
            "gone",
            QoS::AtLeastOnce,
            false,
        ));
        let (_c, mut el) = AsyncClient::new(o, 8);
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = el.poll().await.expect("poll") {
                break;
            }
        }
        drop(el); // the socket closes without DISCONNECT: an unclean loss.
        let msg = next_publish(&mut sel).await;
        assert_eq!(msg.topic, "will/doomed");
        assert_eq!(&msg.payload[..], b"gone");
        broker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_subscription_gives_each_message_to_one_member() {
        let broker = Broker::start(ephemeral()).await.expect("start");
        let mut members = Vec::new();
        for i in 0..2 {
            let (c, mut el) = client(broker.mqtt_addr(), &format!("worker{i}"));
            c.subscribe("$share/pool/jobs", QoS::AtLeastOnce)
                .await
                .expect("subscribe");
            until_suback(&mut el).await;
            members.push((c, el));
        }
        let (p, mut pel) = client(broker.mqtt_addr(), "producer");
        for n in 0..10 {
            p.publish("jobs", QoS::AtLeastOnce, false, format!("job{n}"))
                .await
                .expect("publish");
        }
        tokio::spawn(async move { while pel.poll().await.is_ok() {} });
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 10 && tokio::time::Instant::now() < deadline {
            for (_, el) in members.iter_mut() {
                if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
                    tokio::time::timeout(Duration::from_millis(50), el.poll()).await
                {
                    got.push(String::from_utf8_lossy(&p.payload).into_owned());
                }
            }
        }
        got.sort();
        let mut want: Vec<String> = (0..10).map(|n| format!("job{n}")).collect();
        want.sort();
        assert_eq!(got, want, "each job delivered exactly once across the pool");
        broker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn websocket_listener_binds_when_asked() {
        let config = BrokerConfig {
            ws_listen: Some("127.0.0.1:0".parse().expect("addr")),
            ..ephemeral()
        };
        let broker = Broker::start(config).await.expect("start");
        let ws = broker.ws_addr().expect("ws address");
        assert_ne!(ws.port(), 0);
        assert_ne!(ws.port(), broker.mqtt_addr().port());
        broker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_taken_port_is_a_clear_error() {
        let first = Broker::start(ephemeral()).await.expect("start");
        let taken = BrokerConfig {
            listen: first.mqtt_addr(),
            ..Default::default()
        };
        let err = Broker::start(taken)
            .await
            .expect_err("second bind must fail");
        let text = err.to_string();
        assert!(text.contains(&first.mqtt_addr().to_string()), "{text}");
        first.shutdown().await;
    }
}
