//! The MQTT session shared by the agent and the CLI.
//!
//! One task owns the connection. It tries the configured brokers in order,
//! backs off with full jitter after a whole round failed, resubscribes after
//! every (re)connection, and never gives up until it is told to stop. Users
//! get a [`Publisher`] (cheap to clone, usable from any task) and a stream of
//! [`Event`]s. Nothing here blocks on a slow consumer: incoming messages go
//! into a bounded queue and are dropped (and counted) when it is full, so the
//! connection keeps its keep-alive whatever the consumer does.
//!
//! Layout: `url.rs` parses broker URLs; this file is the session. This is the
//! only crate that names the MQTT client library (rumqttc).

pub mod tls;
mod url;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use bytes::Bytes;
use rumqttc::{AsyncClient, ConnectReturnCode, EventLoop, MqttOptions, Packet};
pub use rustls;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::url::{BrokerUrl, Scheme, UrlError};

/// MQTT quality of service used for a publish or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Fire and forget.
    AtMostOnce,
    /// Acknowledged; may be delivered twice.
    AtLeastOnce,
}

impl From<Qos> for rumqttc::QoS {
    fn from(q: Qos) -> Self {
        match q {
            Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }
}

/// A message to publish when the connection is lost uncleanly.
#[derive(Debug, Clone)]
pub struct Will {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Quality of service.
    pub qos: Qos,
    /// Retained?
    pub retain: bool,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// Brokers in order of preference; at least one.
    pub brokers: Vec<BrokerUrl>,
    /// MQTT client id; must be unique on the broker.
    pub client_id: String,
    /// Keep-alive interval (the broker declares us gone after 1.5 × this).
    pub keep_alive: Duration,
    /// Topic filters to (re)subscribe after every connection.
    pub subscriptions: Vec<(String, Qos)>,
    /// Last will.
    pub will: Option<Will>,
    /// Largest packet accepted from or sent to the broker, in bytes. A bigger
    /// incoming packet closes the connection (MQTT 3.1.1 cannot refuse it
    /// politely), so keep this at or above the broker's own limit.
    pub max_packet_size: usize,
    /// First retry delay after a full round of failed connection attempts.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Time allowed for TCP connect plus CONNACK.
    pub connect_timeout: Duration,
    /// Incoming messages buffered for the consumer before new ones are dropped.
    pub queue: usize,
    /// Start a clean session (true), or resume the broker-side session of this
    /// client id (false): subscriptions and QoS 1 messages queued while away
    /// survive. A persistent session needs a stable `client_id`.
    pub clean_session: bool,
    /// TLS for `mqtts://` brokers (built with [`tls::client_config`]);
    /// `None`: the system's root certificates, no client certificate.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Acknowledge QoS 1 messages only when the consumer calls
    /// [`Ack::ack`] (after it has stored what it received), not on receipt.
    /// A message not acknowledged before a crash is delivered again on the
    /// next connection of a persistent session. Implies that no incoming
    /// message is dropped for a slow consumer: the session waits instead
    /// (the broker then holds back further messages, up to its in-flight
    /// window).
    pub manual_acks: bool,
}

impl Options {
    /// Options with the defaults for `client_id` connecting to `brokers`.
    pub fn new(client_id: impl Into<String>, brokers: Vec<BrokerUrl>) -> Options {
        Options {
            brokers,
            client_id: client_id.into(),
            keep_alive: Duration::from_secs(30),
            subscriptions: Vec::new(),
            will: None,
            max_packet_size: 4 * 1024 * 1024,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            queue: 1024,
            clean_session: true,
            tls: None,
            manual_acks: false,
        }
    }
}

/// A message received from the broker.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic it was published on.
    pub topic: String,
    /// Raw payload (not necessarily UTF-8).
    pub payload: Bytes,
    /// Delivered from the broker's retained store?
    pub retain: bool,
    /// With [`Options::manual_acks`], the acknowledgement still owed for a
    /// QoS 1 message; `None` otherwise.
    pub ack: Option<Ack>,
}

/// The acknowledgement of one QoS 1 message received with
/// [`Options::manual_acks`]. Dropping it without [`Ack::ack`] leaves the
/// message unacknowledged: the broker delivers it again after a reconnect.
#[derive(Debug, Clone)]
pub struct Ack {
    client: AsyncClient,
    publish: rumqttc::Publish,
}

impl Ack {
    /// Acknowledges the message (PUBACK). Fails only if the connection it
    /// came on is gone (the broker will deliver it again).
    pub async fn ack(self) -> Result<(), PublishError> {
        self.client
            .ack(&self.publish)
            .await
            .map_err(|_| PublishError::Closed)
    }
}

/// What happened on the session.
#[derive(Debug, Clone)]
pub enum Event {
    /// Connected (CONNACK accepted) to this broker.
    Connected(BrokerUrl),
    /// Every subscription of [`Options::subscriptions`] was acknowledged.
    Subscribed,
    /// The connection to this broker was lost or refused.
    Disconnected {
        /// The broker.
        broker: BrokerUrl,
        /// Why, in words.
        reason: String,
    },
    /// A message arrived.
    Message(Message),
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// There is no connection right now; the message was not sent.
    #[error("not connected to any broker")]
    NotConnected,
    /// The session task has stopped.
    #[error("the bus session has stopped")]
    Closed,
}

/// Publishes on whatever connection is current. Clone freely.
#[derive(Debug, Clone)]
pub struct Publisher {
    current: watch::Receiver<Option<AsyncClient>>,
    /// QoS 1 and 2 publishes handed to the client so far.
    sent: Arc<AtomicU64>,
    /// Acknowledgements (PUBACK, PUBCOMP) received so far, counted from
    /// the number sent when the current connection was made.
    acked: watch::Receiver<u64>,
}

impl Publisher {
    /// Publishes a message. Waits only while the client's outgoing queue is full.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        qos: Qos,
        retain: bool,
    ) -> Result<(), PublishError> {
        let client = self.current.borrow().clone();
        let Some(client) = client else {
            return Err(PublishError::NotConnected);
        };
        client
            .publish(topic.into(), qos.into(), retain, payload.into())
            .await
            .map_err(|_| PublishError::Closed)?;
        if qos != Qos::AtMostOnce {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Waits until every QoS 1 or 2 message published so far has been
    /// acknowledged by the broker, at most `within`; whether it was. A
    /// message lost with its connection is never acknowledged (the wait
    /// then ends at `within`).
    pub async fn flush(&self, within: Duration) -> bool {
        let target = self.sent.load(Ordering::SeqCst);
        let mut acked = self.acked.clone();
        tokio::time::timeout(within, acked.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Is there a live connection?
    pub fn is_connected(&self) -> bool {
        self.current.borrow().is_some()
    }
}

/// A running session. Stop it with [`Session::close`] (clean DISCONNECT, so no
/// last will) or by cancelling the token it was started with.
#[derive(Debug)]
pub struct Session {
    /// Publishes on the current connection.
    pub publisher: Publisher,
    /// Lifecycle events and incoming messages.
    pub events: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Session {
    /// Starts the session task on the current runtime. It stops when `shutdown`
    /// is cancelled or [`Session::close`] is called.
    ///
    /// # Panics
    /// If `options.brokers` is empty (a caller bug: validate configuration first).
    pub fn start(options: Options, shutdown: &CancellationToken) -> Session {
        assert!(
            !options.brokers.is_empty(),
            "bus session needs at least one broker"
        );
        let (events_tx, events) = mpsc::channel(options.queue.max(1));
        let (current_tx, current) = watch::channel(None);
        let stop = shutdown.child_token();
        let dropped = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (acked_tx, acked) = watch::channel(0);
        let driver = Driver {
            options,
            events: events_tx,
            current: current_tx,
            dropped: dropped.clone(),
            sent: sent.clone(),
            acked: acked_tx,
        };
        let task = tokio::spawn(driver.run(stop.clone()));
        Session {
            publisher: Publisher {
                current,
                sent,
                acked,
            },
            events,
            dropped,
            stop,
            task,
        }
    }

    /// Incoming messages dropped so far because the consumer was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Disconnects cleanly (the broker does not publish the last will) and
    /// waits for the session task to end.
    pub async fn close(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Longest wait for a clean DISCONNECT (and what was queued before it) when stopping.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// After DISCONNECT, how long the line must be quiet before the socket is
/// closed: what the broker had already sent arrives within this on any
/// working link, and reading it keeps the close from being a reset (which
/// can make the broker drop what we sent just before). Brokers that close
/// the connection after DISCONNECT (mosquitto) end the wait at once; rmqtt
/// does not, so every command pays this at exit.
const DRAIN_QUIET: Duration = Duration::from_millis(10);

/// Aborts a helper task when the connection it belongs to ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How one connection ended.
enum Ended {
    /// Could not connect (refused, timeout, network error).
    Failed(String),
    /// Was connected, then lost.
    Lost(String),
    /// Told to stop.
    Stopped,
}

struct Driver {
    options: Options,
    events: mpsc::Sender<Event>,
    current: watch::Sender<Option<AsyncClient>>,
    dropped: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    acked: watch::Sender<u64>,
}

impl Driver {
    async fn run(self, stop: CancellationToken) {
        let n = self.options.brokers.len();
        let mut index = 0usize;
        let mut failed_rounds = 0u32;
        loop {
            let broker = self.options.brokers[index].clone();
            // `connection` says goodbye itself when `stop` fires (see there);
            // this only bounds how long that may take.
            let ended = tokio::select! {
                ended = self.connection(&broker, &stop) => ended,
                () = async {
                    stop.cancelled().await;
                    tokio::time::sleep(STOP_GRACE).await;
                } => Ended::Stopped,
            };
            self.current.send_replace(None);
            let delay = match ended {
                Ended::Stopped => return,
                Ended::Lost(reason) => {
                    tracing::warn!(%broker, %reason, "connection lost; reconnecting");
                    self.emit(Event::Disconnected { broker, reason });
                    // Start again from the preferred broker, after a short random
                    // pause so that a fleet does not reconnect in lockstep.
                    index = 0;
                    failed_rounds = 0;
                    jitter(self.options.backoff_initial)
                }
                Ended::Failed(reason) => {
                    tracing::warn!(%broker, %reason, "cannot connect");
                    self.emit(Event::Disconnected { broker, reason });
                    index += 1;
                    if index < n {
                        Duration::ZERO // fail over to the next broker at once
                    } else {
                        index = 0;
                        let d = backoff(
                            self.options.backoff_initial,
                            self.options.backoff_max,
                            failed_rounds,
                        );
                        failed_rounds = failed_rounds.saturating_add(1);
                        d
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    fn emit(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if total.is_power_of_two() {
                tracing::warn!(
                    dropped_total = total,
                    "consumer too slow; dropping incoming messages"
                );
            }
        }
    }

    /// The TLS configuration for `broker` (`None` for plain `mqtt://`).
    fn tls_config(
        &self,
        broker: &BrokerUrl,
    ) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        if !broker.scheme.is_tls() {
            return Ok(None);
        }
        match &self.options.tls {
            Some(c) => Ok(Some(c.clone())),
            None => tls::client_config(&tls::TlsFiles::default())
                .map(Some)
                .map_err(|e| format!("TLS: {e}")),
        }
    }

    fn mqtt_options(
        &self,
        broker: &BrokerUrl,
        tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> MqttOptions {
        let o = &self.options;
        let mut m = MqttOptions::new(o.client_id.clone(), broker.client_address(), broker.port);
        // rumqttc's v4 client rejects a keep-alive under 1 s.
        m.set_keep_alive(o.keep_alive.max(Duration::from_secs(1)));
        m.set_clean_session(o.clean_session);
        m.set_max_packet_size(o.max_packet_size, o.max_packet_size);
        m.set_inflight(100);
        m.set_manual_acks(o.manual_acks);
        if let Some(user) = &broker.username {
            m.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
        }
        let tls = tls_config.map(rumqttc::TlsConfiguration::Rustls);
        match (broker.scheme, tls) {
            // Parsing refuses ws:// and wss:// URLs without the feature.
            #[cfg(feature = "websocket")]
            (url::Scheme::Ws, _) => {
                m.set_transport(rumqttc::Transport::Ws);
            }
            #[cfg(feature = "websocket")]
            (url::Scheme::Wss, Some(tls)) => {
                m.set_transport(rumqttc::Transport::Wss(tls));
            }
            (_, Some(tls)) => {
                m.set_transport(rumqttc::Transport::tls_with_config(tls));
            }
            (_, None) => {}
        }
        if let Some(w) = &o.will {
            m.set_last_will(rumqttc::LastWill::new(
                w.topic.clone(),
                w.payload.clone(),
                w.qos.into(),
                w.retain,
            ));
        }
        m
    }

    async fn connection(&self, broker: &BrokerUrl, stop: &CancellationToken) -> Ended {
        let tls_config = match self.tls_config(broker) {
            Ok(c) => c,
            Err(reason) => return Ended::Failed(reason),
        };
        let (client, mut eventloop) = AsyncClient::new(self.mqtt_options(broker, tls_config), 1024);
        let mut net = eventloop.network_options();
        net.set_connection_timeout(self.options.connect_timeout.as_secs().max(1));
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);

        let connecting =
            tokio::time::timeout(self.options.connect_timeout, until_connack(&mut eventloop));
        let connected = tokio::select! {
            r = connecting => r,
            () = stop.cancelled() => return Ended::Stopped,
        };
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Ended::Failed(reason),
            Err(_) => {
                return Ended::Failed(format!(
                    "no CONNACK within {}",
                    humanize(self.options.connect_timeout)
                ));
            }
        }
        tracing::info!(%broker, client_id = %self.options.client_id, "connected");
        // What was in flight on an earlier connection is gone (clean
        // session): count acknowledgements from here.
        self.acked.send_replace(self.sent.load(Ordering::SeqCst));
        self.current.send_replace(Some(client.clone()));
        self.emit(Event::Connected(broker.clone()));

        let mut pending_subacks = 0usize;
        if !self.options.subscriptions.is_empty() {
            let filters = self
                .options
                .subscriptions
                .iter()
                .map(|(t, q)| rumqttc::SubscribeFilter::new(t.clone(), (*q).into()));
            if let Err(e) = client.try_subscribe_many(filters) {
                return Ended::Lost(format!("cannot subscribe: {e}"));
            }
            pending_subacks = 1;
        } else {
            self.emit(Event::Subscribed);
        }

        // Stopping goes through the request channel, behind anything already
        // queued: rumqttc's `poll` is not cancel-safe (a request taken from
        // the channel but not yet written would be lost if the future were
        // dropped), so it is never raced against `stop` here.
        let goodbye = {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                let _ = client.disconnect().await;
            })
        };
        let _abort_goodbye = AbortOnDrop(goodbye);

        loop {
            let event = eventloop.poll().await;
            if stop.is_cancelled()
                && matches!(
                    event,
                    Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                )
            {
                // Read what is still arriving before closing: closing a socket
                // with unread incoming data sends a TCP reset, which can make
                // the broker drop what we sent just before (seen with
                // mosquitto: the last PUBLISH lost). Some brokers close the
                // connection after DISCONNECT (poll fails), others do not:
                // stop once the line has been quiet for a moment.
                let drain = async {
                    while let Ok(Ok(_)) = tokio::time::timeout(DRAIN_QUIET, eventloop.poll()).await
                    {
                    }
                };
                let _ = tokio::time::timeout(STOP_GRACE / 2, drain).await;
                return Ended::Stopped;
            }
            if stop.is_cancelled() && event.is_err() {
                return Ended::Stopped;
            }
            match event {
                Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                    let ack = (self.options.manual_acks && p.qos != rumqttc::QoS::AtMostOnce).then(
                        || Ack {
                            client: client.clone(),
                            publish: rumqttc::Publish {
                                dup: p.dup,
                                qos: p.qos,
                                retain: p.retain,
                                topic: String::new(),
                                pkid: p.pkid,
                                payload: Bytes::new(),
                            },
                        },
                    );
                    let message = Event::Message(Message {
                        topic: p.topic,
                        payload: p.payload,
                        retain: p.retain,
                        ack,
                    });
                    if self.options.manual_acks {
                        // Never drop: an unacknowledged message would stall
                        // the broker's in-flight window until a reconnect.
                        if self.events.send(message).await.is_err() {
                            return Ended::Stopped;
                        }
                    } else {
                        self.emit(message);
                    }
                }
                Ok(rumqttc::Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                    self.acked.send_modify(|n| *n += 1);
                }
                Ok(rumqttc::Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        .count();
                    if refused > 0 {
                        tracing::error!(%broker, refused, "broker refused subscriptions (check its ACL)");
                    }
                    if pending_subacks > 0 {
                        pending_subacks -= 1;
                        if pending_subacks == 0 {
                            tracing::info!(%broker, "subscribed");
                            self.emit(Event::Subscribed);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => return Ended::Lost(e.to_string()),
            }
        }
    }
}

async fn until_connack(eventloop: &mut EventLoop) -> Result<(), String> {
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(ack))) => {
                return if ack.code == ConnectReturnCode::Success {
                    Ok(())
                } else {
                    Err(format!("broker refused the connection: {:?}", ack.code))
                };
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Exponential backoff with full jitter: a random delay in
/// `[d/2, d]` where `d = min(max, initial × 2^round)`.
pub fn backoff(initial: Duration, max: Duration, round: u32) -> Duration {
    let factor = 2u32.saturating_pow(round.min(20));
    let d = initial.saturating_mul(factor).min(max);
    d / 2 + jitter(d / 2)
}

/// A uniformly random duration in `[0, d]`.
fn jitter(d: Duration) -> Duration {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

fn humanize(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_and_stays_in_its_window() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for round in 0..40 {
            let d = backoff(initial, max, round);
            let cap = initial
                .saturating_mul(2u32.saturating_pow(round.min(20)))
                .min(max);
            assert!(
                d >= cap / 2 && d <= cap,
                "round {round}: {d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
        }
        assert!(backoff(initial, max, 39) >= Duration::from_millis(2500));
    }
}
