//! The `bot` agent: one small process per machine.
//!
//! It keeps a bus session (see `bot-bus`: failover between brokers, backoff
//! with jitter, resubscription), answers the classic text protocol on `BUS`
//! and `BUS/<name>` with replies on `RES`, and while selected measures every
//! interval and publishes samples on `DATA/<name>`.
//!
//! Layout:
//! - `config.rs` — the TOML configuration, defaults, validation;
//! - `classic.rs` — runs each `BUS` message through `bot-lang` and applies its effects;
//! - `measure.rs` — the measuring loop (interval, overrun, auto-raise);
//! - `collectors/` — built-in /proc collectors, one file each;
//! - `plugins.rs` — `*_enabled` plugin executables.
//!
//! Architecture invariant: this crate never depends on the server, the
//! database or the web stack; its only network dependency is `bot-bus`.

pub mod collectors;
pub mod config;
pub mod plugins;

mod classic;
mod measure;

use std::time::Duration;

use bot_bus::{Event, Options, Qos, Session};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use crate::config::{AgentConfig, ConfigError, ValidConfig};

/// Topic every agent listens on.
pub const TOPIC_BUS: &str = "BUS";
/// Topic replies are published on.
pub const TOPIC_RES: &str = "RES";
/// Prefix of the per-agent sample topic (`DATA/<name>`).
pub const TOPIC_DATA: &str = "DATA";

/// What the measuring loop needs to know, changed live by the classic protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MeasureState {
    pub selected: bool,
    pub interval: f64,
}

/// Runs the agent until `shutdown` is cancelled. Never returns early because a
/// broker is unreachable: it keeps retrying.
pub async fn run(config: ValidConfig, shutdown: CancellationToken) {
    let name = config.name.clone();
    let c = &config.config;
    let mut options = Options::new(client_id(&name), config.brokers.clone());
    options.keep_alive = Duration::from_secs(c.keep_alive);
    options.backoff_max = Duration::from_secs_f64(c.backoff_max);
    options.max_packet_size = c.max_packet_size;
    options.subscriptions = vec![
        (TOPIC_BUS.to_owned(), Qos::AtMostOnce),
        (format!("{TOPIC_BUS}/{name}"), Qos::AtMostOnce),
    ];
    let mut session = Session::start(options, &shutdown);
    tracing::info!(%name, brokers = ?config.brokers, "agent starting");

    let machine = bot_lang::Machine::new(
        bot_lang::AgentInfo {
            name: name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: capabilities(c),
        },
        (&c.limits).into(),
        c.interval,
    );
    let (state_tx, state_rx) = watch::channel(MeasureState {
        selected: false,
        interval: machine.state().interval,
    });
    let (raise_tx, mut raise_rx) = mpsc::channel::<f64>(4);
    let mut classic = classic::Classic::new(machine, session.publisher.clone(), state_tx);

    let measurer = tokio::spawn(measure::run(
        measure::Measurer::new(&config, session.publisher.clone(), raise_tx),
        state_rx,
        shutdown.clone(),
    ));

    loop {
        tokio::select! {
            event = session.events.recv() => match event {
                Some(Event::Message(m)) => classic.handle(&m.topic, &m.payload).await,
                Some(Event::Subscribed) => tracing::info!(%name, "ready: listening on BUS and BUS/{name}"),
                Some(Event::Connected(_) | Event::Disconnected { .. }) => {}
                None => break,
            },
            Some(secs) = raise_rx.recv() => classic.raise_interval(secs),
            () = shutdown.cancelled() => break,
        }
    }
    let _ = measurer.await;
    session.close().await;
    tracing::info!(%name, "agent stopped");
}

/// MQTT client ids must be unique on a broker; two agents given the same name
/// by mistake must not kick each other off in a loop.
fn client_id(name: &str) -> String {
    let short: String = name.chars().take(40).collect();
    format!("bot-agent-{short}-{:08x}", fastrand::u32(..))
}

fn capabilities(c: &AgentConfig) -> Vec<String> {
    let mut caps = vec!["classic".to_owned(), "measure".to_owned()];
    if c.plugins.is_some() {
        caps.push("plugins".to_owned());
    }
    caps
}
