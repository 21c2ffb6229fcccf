//! The `bot` agent: one small process per machine.
//!
//! It keeps a bus session (see `bot-bus`: failover between brokers, backoff
//! with jitter, resubscription), answers the classic text protocol on `BUS`
//! and `BUS/<name>` with replies on `RES`, and while selected measures every
//! interval and publishes samples on `DATA/<name>`. It also speaks the
//! structured protocol (`bot/v1/…`): a retained status with its facts and a
//! retained last will, heartbeats, and requests (ping, facts, status, exec).
//!
//! Layout:
//! - `config.rs` — the TOML configuration, defaults, validation;
//! - `classic.rs` — runs each `BUS` message through `bot-lang` and applies its effects;
//! - `measure.rs` — the measuring loop (interval, overrun, auto-raise);
//! - `collectors/` — built-in /proc collectors, one file each;
//! - `plugins.rs` — `*_enabled` plugin executables;
//! - `identity.rs` — the persistent agent UUID;
//! - `facts.rs` — built-in, configured and scripted facts;
//! - `structured.rs` — status, heartbeats, requests (validation, TTL, duplicates, filter);
//! - `actions/` — one file per request action.
//!
//! Architecture invariant: this crate never depends on the server, the
//! database or the web stack; its only network dependency is `bot-bus`.

pub mod actions;
pub mod collectors;
pub mod config;
pub mod facts;
pub mod identity;
pub mod plugins;

mod audit;
mod classic;
mod measure;
mod structured;

use std::sync::Arc;
use std::time::Duration;

use bot_bus::{Event, Options, Qos, Session, Will};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use crate::config::{AgentConfig, ConfigError, ValidConfig};

/// Topic every agent listens on.
pub const TOPIC_BUS: &str = "BUS";
/// Topic replies are published on.
pub const TOPIC_RES: &str = "RES";
/// Prefix of the per-agent sample topic (`DATA/<name>`).
pub const TOPIC_DATA: &str = "DATA";

/// The measuring settings in force, changed live by the server's config
/// (`bot/v1/config/<id>`) and by the classic protocol (`SEL`, `UNSEL`,
/// `TSSET`, `LUN`). One owner changes them (the classic task); the
/// measuring loop and the status read them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeasureState {
    pub selected: bool,
    pub interval: f64,
    /// The collectors that run, by name.
    pub collectors: Arc<[String]>,
    /// The revision of the server's config last applied (0: none).
    pub revision: u64,
    /// Changed on the agent since that revision.
    pub local: bool,
}

impl MeasureState {
    /// As the status reports it.
    pub fn measure(&self) -> bot_proto::metrics::Measure {
        bot_proto::metrics::Measure {
            enabled: self.selected,
            // The interval is clamped to 0.1..=86,400 s: this fits.
            interval_ms: (self.interval * 1000.0).round() as u64,
            collectors: self.collectors.to_vec(),
            revision: self.revision,
            local: self.local,
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The persistent identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

/// Runs the agent until `shutdown` is cancelled. Never returns early because a
/// broker is unreachable: it keeps retrying.
pub async fn run(config: ValidConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let name = config.name.clone();
    let c = &config.config;
    let id = identity::load_or_create(&config.state_dir)?;
    let key = Arc::new(identity::load_or_create_key(&config.state_dir)?);
    let started_ms = actions::now_ms();
    let me = structured::Identity {
        key: key.clone(),
        id: id.clone(),
        name: name.clone(),
        tags: c.tags.clone(),
        pools: c.pools.clone(),
        started_ms,
        heartbeat_s: c.heartbeat,
    };
    let fact_sources = facts::FactSources {
        id: id.clone(),
        name: name.clone(),
        configured: config.facts.clone(),
        dir: c.facts_dir.clone(),
        timeout: Duration::from_secs(10),
    };
    let initial_facts = facts::gather(&fact_sources).await;

    let brokers = match &config.password {
        Some(pw) => {
            let user = c.username.clone().unwrap_or_else(|| id.clone());
            config
                .brokers
                .iter()
                .map(|b| b.or_credentials(&user, pw))
                .collect()
        }
        None => config.brokers.clone(),
    };
    let mut options = Options::new(client_id(&name), brokers);
    options.tls = config.tls.clone();
    options.keep_alive = Duration::from_secs(c.keep_alive);
    options.backoff_max = Duration::from_secs_f64(c.backoff_max);
    options.max_packet_size = c.max_packet_size;
    options.subscriptions = vec![
        (
            bot_proto::topics::REQUEST_BROADCAST.to_owned(),
            Qos::AtLeastOnce,
        ),
        (
            bot_proto::topics::request_agent_topic(&id),
            Qos::AtLeastOnce,
        ),
        // The retained measuring settings the server wants (if any).
        (bot_proto::topics::config_topic(&id), Qos::AtLeastOnce),
    ];
    if c.classic {
        options
            .subscriptions
            .push((TOPIC_BUS.to_owned(), Qos::AtMostOnce));
        options
            .subscriptions
            .push((format!("{TOPIC_BUS}/{name}"), Qos::AtMostOnce));
    }
    for pool in &c.pools {
        options
            .subscriptions
            .push((bot_proto::topics::pool_share_filter(pool), Qos::AtLeastOnce));
    }
    // Going away uncleanly is visible at once: the broker publishes this
    // retained offline status when the keep-alive expires or the socket dies.
    let initial_measure = MeasureState {
        selected: false,
        interval: c.interval,
        collectors: c.collectors.iter().cloned().collect(),
        revision: 0,
        local: false,
    };
    options.will = Some(Will {
        topic: bot_proto::topics::status_topic(&id),
        payload: me.status(&initial_facts, false, &initial_measure).encode(),
        qos: Qos::AtLeastOnce,
        retain: true,
    });
    // The session has its own stop token, not a child of `shutdown`: on a
    // signal it must stay connected until the offline status below is
    // acknowledged, then disconnect (`session.close`).
    let mut session = Session::start(options, &CancellationToken::new());
    tracing::info!(%name, %id, brokers = ?config.brokers, "agent starting");

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
        interval: machine.state().interval,
        ..initial_measure
    });
    let (raise_tx, raise_rx) = mpsc::channel::<f64>(4);
    // Latest wins: a config that arrives while another is being applied
    // replaces it (never the newest dropped).
    let (config_tx, config_rx) = watch::channel::<Option<bot_proto::MeasureConfig>>(None);
    let classic = classic::Classic::new(machine, session.publisher.clone(), state_tx);
    // Classic programs have their own bounded queue and task: a flood of
    // them is shed here (QoS 0, counted and logged), never the structured
    // requests behind them in the bus session's queue.
    let (classic_tx, classic_rx) = mpsc::channel::<bot_bus::Message>(CLASSIC_QUEUE);
    let classic_task = tokio::spawn(classic.run(classic_rx, raise_rx, config_rx));
    let config_topic = bot_proto::topics::config_topic(&id);
    let mut classic_shed = 0u64;
    let (facts_tx, facts_rx) = watch::channel(Arc::new(initial_facts));
    let exec_limits = actions::exec::Limits {
        max_timeout: Duration::from_secs_f64(c.exec_max_timeout),
        kill_descendants: c.exec_kill_descendants,
        ..actions::exec::Limits::default()
    };
    let mut requests = structured::Structured::new(
        me,
        session.publisher.clone(),
        facts_rx,
        state_rx.clone(),
        structured::ExecBounds {
            limits: exec_limits,
            max_concurrent: c.max_concurrent_requests,
            max_waiting: c.max_queued_requests,
            checks: Arc::new(c.checks.clone()),
        },
        structured::Guard {
            seen: structured::Seen::with_journal(
                config.state_dir.join("seen-requests"),
                actions::now_ms(),
            ),
            trust: config.trust.clone(),
            audit: audit::Audit::new(config.state_dir.join("audit.log")),
        },
    );
    if config.trust.is_empty() {
        tracing::warn!("no [[trust]] key configured: every structured request will be refused");
    }

    let mut measure_changed = state_rx.clone();
    let measurer = tokio::spawn(measure::run(
        measure::Measurer::new(
            &config,
            measure::Signing {
                id: id.clone(),
                key: key.clone(),
            },
            session.publisher.clone(),
            raise_tx,
        ),
        state_rx,
        shutdown.clone(),
    ));
    let refresher = tokio::spawn(refresh_facts(
        fact_sources,
        facts_tx,
        Duration::from_secs(c.facts_refresh),
        shutdown.clone(),
    ));
    let mut heartbeat = tokio::time::interval(Duration::from_secs(c.heartbeat));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut facts_changed = requests.facts_watch();
    // A change of the settings in force republishes the status, at most
    // every STATUS_COALESCE (a flood of classic SELs is one status).
    let mut status_due: Option<tokio::time::Instant> = None;

    loop {
        tokio::select! {
            event = session.events.recv() => match event {
                Some(Event::Message(m)) if m.topic == config_topic => {
                    if let Some(cfg) = requests.admit_config(&m.payload) {
                        config_tx.send_replace(Some(cfg));
                    }
                }
                Some(Event::Message(m)) if requests.wants(&m.topic) => requests.handle(&m.topic, &m.payload),
                Some(Event::Message(m)) if c.classic => {
                    if classic_tx.try_send(m).is_err() {
                        classic_shed += 1;
                        if classic_shed.is_power_of_two() {
                            tracing::warn!(shed_total = classic_shed, queue = CLASSIC_QUEUE,
                                "classic programs arrive faster than they run; dropping the excess");
                        }
                    }
                }
                Some(Event::Message(_)) => {}
                Some(Event::Connected(_)) => requests.publish_status(true).await,
                Some(Event::Subscribed) => tracing::info!(%name, %id, "ready: listening on BUS and BUS/{name}"),
                Some(Event::Disconnected { .. }) => {}
                None => break,
            },
            _ = heartbeat.tick() => {
                if session.publisher.is_connected() {
                    seq += 1;
                    requests.heartbeat(seq).await;
                }
            }
            Ok(()) = facts_changed.changed() => {
                tracing::info!("facts changed; republishing status");
                requests.publish_status(true).await;
            }
            Ok(()) = measure_changed.changed() => {
                status_due.get_or_insert_with(|| tokio::time::Instant::now() + STATUS_COALESCE);
            }
            () = async {
                match status_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                status_due = None;
                if session.publisher.is_connected() {
                    requests.publish_status(true).await;
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    // A clean DISCONNECT suppresses the last will: say goodbye ourselves,
    // and wait for the broker's PUBACK before disconnecting (else the
    // retained status could stay "online" for good).
    if session.publisher.is_connected() {
        requests.publish_status(false).await;
        if !session.publisher.flush(OFFLINE_ACK_WAIT).await {
            tracing::warn!("the broker did not acknowledge the offline status in time");
        }
    }
    drop(classic_tx);
    let _ = classic_task.await;
    let _ = measurer.await;
    let _ = refresher.await;
    session.close().await;
    tracing::info!(%name, "agent stopped");
    Ok(())
}

/// Classic programs waiting to run, at most (each up to `limits.max_payload`,
/// 64 KiB by default: 16 MiB at worst). A burst of 200 in order still fits.
const CLASSIC_QUEUE: usize = 256;

/// How long changes of the measuring settings are gathered into one status.
const STATUS_COALESCE: Duration = Duration::from_millis(200);

/// How long a stopping agent waits for its offline status to be
/// acknowledged (well within `bot`'s stop grace period).
const OFFLINE_ACK_WAIT: Duration = Duration::from_secs(3);

/// Re-gathers facts every `every`; publishes them when they changed.
async fn refresh_facts(
    sources: facts::FactSources,
    tx: watch::Sender<Arc<facts::Facts>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let new = facts::gather(&sources).await;
        tx.send_if_modified(|cur| {
            if facts::changed(cur, &new) {
                *cur = Arc::new(new);
                true
            } else {
                false
            }
        });
    }
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
