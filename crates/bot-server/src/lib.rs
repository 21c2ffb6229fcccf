//! `bot-server`: the master side of `bot`. It keeps the registry of agents,
//! runs tasks (parallel windows, failure thresholds, timeouts, restart-safe),
//! persists to SQLite or PostgreSQL through `bot-store`, and serves the HTTP
//! API. `bot up` runs it next to the embedded broker; `bot server` runs it
//! alone against any broker.
//!
//! # Layout
//! - [`registry`]: agents from retained statuses, last wills, heartbeats;
//! - [`engine`]: the task engine (one actor; `engine::rollout` is its pure
//!   state machine);
//! - [`api`]: the axum router, bearer-token auth, OpenAPI document;
//! - this file: configuration, start-up order, the bus ingest.
//!
//! # Bus
//! One persistent MQTT session (`clean_session = false`, a client id kept in
//! the store) with manual acknowledgements: task results arrive at QoS 1 on
//! `bot/v1/reply/<client id>/durable` and are acknowledged only after the
//! engine has stored them, so results sent while the server is down or
//! crashing are delivered again, not lost.

pub mod api;
pub mod audit;
pub mod checks;
pub mod clock;
pub mod engine;
pub mod events;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod schedules;
pub mod tasks;
pub mod web;
pub mod webhooks;

pub use http::HttpLimits;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bot_bus::{BrokerUrl, Event, Options, Qos, Session};
use bot_proto::{Reply, topics};
use bot_store::{Store, StoreError, redact};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{Calls, Core};
use crate::engine::{Engine, EngineHandle, Input};
use crate::registry::Registry;

/// Unix time in milliseconds.
pub use bot_proto::now_ms;

/// What an API token may do; each route needs one (the OpenAPI document
/// lists it as the bearer requirement's role). Ordered: a higher scope
/// includes the lower ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read the registry, tasks and results (`GET` routes).
    Read,
    /// Also act: submit, cancel and retry tasks, `/api/call`, `/api/publish`.
    Operate,
    /// Also administer: accept agents' keys.
    Admin,
}

impl Scope {
    /// The name used in configuration and in the OpenAPI document.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        match s {
            "read" => Ok(Scope::Read),
            "operate" => Ok(Scope::Operate),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {:?} (known: read, operate, admin)",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// An API token: who (shown in audit fields such as `created_by`), what it
/// may do, and the SHA-256 of the secret sent as `Authorization: Bearer
/// <secret>`. The secret itself is never kept: a token is checked by
/// hashing what is presented (secrets are 16+ random characters, so a fast
/// hash is enough, as for GitHub's tokens).
#[derive(Clone)]
pub struct Token {
    /// Who holds it.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the secret, 64 lowercase hex digits.
    pub sha256: String,
}

impl Token {
    /// A token from its secret (hashed here; the secret is not kept).
    pub fn from_secret(name: impl Into<String>, secret: &str, scope: Scope) -> Token {
        Token {
            name: name.into(),
            scope,
            sha256: bot_auth::digest_hex(secret.as_bytes()),
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("sha256", &"<hidden>")
            .finish()
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Brokers, in order of preference.
    pub brokers: Vec<BrokerUrl>,
    /// Database URL: `sqlite:PATH` or `postgres://…`.
    pub db: String,
    /// HTTP listen address (port 0: any free port).
    pub listen: SocketAddr,
    /// API tokens. Empty: one is generated into `token_file` (or read from it).
    pub tokens: Vec<Token>,
    /// Where a generated token is kept (mode 0600).
    pub token_file: PathBuf,
    /// MQTT client id; default: one generated once and kept in the database.
    pub client_id: Option<String>,
    /// The server's signing key (PKCS#8 PEM, mode 0600), made on first start
    /// if missing. Agents obey the server only if they trust its public key.
    pub key_file: PathBuf,
    /// Bind a new agent's key on first sight (true), or keep the agent
    /// pending until an operator accepts it (`bot agents accept ID`).
    pub auto_accept: bool,
    /// TLS for `mqtts://` brokers; `None`: the system's roots.
    pub tls: Option<Arc<bot_bus::rustls::ClientConfig>>,
    /// Serve the API over HTTPS with this configuration; `None`: plain HTTP.
    pub https: Option<Arc<bot_bus::rustls::ServerConfig>>,
    /// Timeouts and the connection cap of the HTTP listener.
    pub http_limits: HttpLimits,
    /// How long samples are kept (raw rows, minute rollups).
    pub history: metrics::HistoryLimits,
    /// The task engine's time ([`clock::system`]; tests move a
    /// [`clock::ManualClock`] themselves).
    pub clock: std::sync::Arc<dyn clock::Clock>,
    /// Webhooks from the configuration file (made or updated at start).
    pub webhooks: Vec<bot_proto::api::NewWebhook>,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The HTTP address bound.
    pub addr: SocketAddr,
    /// Whether the API is served over HTTPS.
    pub https: bool,
    /// The generated token, if the server made or read one from `token_file`.
    pub generated_token: Option<String>,
    /// The MQTT client id used.
    pub client_id: String,
    /// The public key the server signs requests with.
    pub public_key: bot_auth::PublicKey,
    router: axum::Router,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// The API router (the same one served on [`Server::addr`]), for
    /// driving requests without a socket (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Waits until the server has stopped (after the shutdown token fired).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// Longest HTTP request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Starts the server: opens the store (migrations), loads the registry,
/// connects to the bus, resumes unfinished tasks, binds the HTTP listener.
/// Returns once it listens; it stops when `shutdown` fires.
pub async fn start(config: ServerConfig, shutdown: CancellationToken) -> anyhow::Result<Server> {
    anyhow::ensure!(!config.brokers.is_empty(), "the server needs a broker URL");
    let store = Store::open(&config.db).await.map_err(|e| match e {
        // These name the (redacted) URL themselves.
        StoreError::BadUrl { .. } | StoreError::Connect { .. } => anyhow::Error::new(e),
        other => anyhow::Error::new(other)
            .context(format!("cannot open the database {}", redact(&config.db))),
    })?;
    let (tokens, generated_token) = if config.tokens.is_empty() {
        let secret = load_or_make_token(&config.token_file)?;
        (
            vec![Token::from_secret("admin", &secret, Scope::Admin)],
            Some(secret),
        )
    } else {
        (config.tokens.clone(), None)
    };
    let client_id = match &config.client_id {
        Some(c) => c.clone(),
        None => match store.setting("mqtt_client_id").await? {
            Some(c) => c,
            None => {
                let c = format!(
                    "bot-server-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                store.set_setting("mqtt_client_id", &c).await?;
                c
            }
        },
    };
    topics::valid_topic_level(&client_id)
        .map_err(|e| anyhow::anyhow!("bad MQTT client id: {e}"))?;

    let (audit, audit_rx) = audit::Audit::new();
    let events = events::EventHub::default();
    let (registry, offline_rx) = Registry::new(store.agents().await?, config.auto_accept);
    let registry = registry
        .with_audit(audit.clone())
        .with_events(events.clone());
    let results_topic = topics::durable_reply_topic(&client_id);
    let call_topic = topics::reply_topic(&client_id);
    let mut options = Options::new(client_id.clone(), config.brokers.clone());
    options.clean_session = false;
    options.manual_acks = true;
    options.tls = config.tls.clone();
    options.queue = 16 * 1024;
    options.subscriptions = vec![
        (topics::STATUS_WILDCARD.to_owned(), Qos::AtLeastOnce),
        (topics::HEARTBEAT_WILDCARD.to_owned(), Qos::AtMostOnce),
        (results_topic.clone(), Qos::AtLeastOnce),
        (call_topic.clone(), Qos::AtMostOnce),
        // Samples: QoS 0 like the agents send them (a lost round is a gap,
        // not an error); the ingest queue sheds load, never the bus.
        (topics::METRICS_WILDCARD.to_owned(), Qos::AtMostOnce),
        // Scheduled checks' results: QoS 1 into the persistent session, so
        // results sent while the server is down are not lost.
        (topics::CHECK_RESULTS.to_owned(), Qos::AtLeastOnce),
    ];
    let session = Session::start(options, &shutdown);
    let (key, made) = bot_auth::SecretKey::load_or_create(&config.key_file)
        .context("cannot load the server's signing key")?;
    if made {
        tracing::info!(path = %config.key_file.display(), public = %key.public(), "made the server's signing key");
    }
    let sender = format!("server:{client_id}");
    let signer = Arc::new(bot_auth::Signer::new(key, sender.clone()));
    let public_key = signer.public();
    let (engine, engine_handle) = Engine::new(
        store.clone(),
        session.publisher.clone(),
        registry.clone(),
        results_topic.clone(),
        signer.clone(),
        offline_rx,
        audit.clone(),
    );
    let engine = engine
        .with_events(events.clone())
        .with_clock(config.clock.clone());
    let metrics = Arc::new(metrics::Metrics::new(config.history));
    let (metrics_tx, metrics_rx) = tokio::sync::mpsc::channel(metrics::INGEST_QUEUE);
    let metrics_task = tokio::spawn(metrics::run_ingest(
        metrics_rx,
        registry.clone(),
        store.clone(),
        events.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let history_task = tokio::spawn(metrics::history::keep(
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let events_task = tokio::spawn(events::forward_to_mqtt(
        events.subscribe(),
        session.publisher.clone(),
        shutdown.clone(),
    ));
    let checks = checks::Checks::load(&store, events.clone(), metrics_tx.clone()).await?;
    let tasks = tasks::TaskService::new(
        store.clone(),
        registry.clone(),
        engine_handle.clone(),
        signer.clone(),
        call_topic.clone(),
    );
    let schedules = schedules::Schedules::new(
        store.clone(),
        config.clock.clone(),
        schedules::Runner {
            tasks: tasks.clone(),
            registry: registry.clone(),
            publisher: session.publisher.clone(),
            signer: signer.clone(),
            audit: audit.clone(),
            checks: checks.clone(),
        },
    );
    let webhooks = webhooks::Webhooks::start(
        store.clone(),
        config.clock.clone(),
        registry.clone(),
        &config.webhooks,
    )
    .await?;
    let dispatch_task = tokio::spawn(
        webhooks
            .clone()
            .dispatch(events.subscribe(), shutdown.clone()),
    );
    let deliver_task = tokio::spawn(webhooks.clone().deliver(shutdown.clone()));
    let checks_task = tokio::spawn(checks::keep(
        checks.clone(),
        store.clone(),
        config.clock.clone(),
        shutdown.clone(),
    ));
    let core = Arc::new(Core {
        store: store.clone(),
        registry: registry.clone(),
        engine: engine_handle.clone(),
        publisher: session.publisher.clone(),
        calls: Calls::default(),
        failures: Default::default(),
        audit: audit.clone(),
        signer: signer.clone(),
        call_topic: call_topic.clone(),
        tokens,
        tasks,
        schedules: schedules.clone(),
        checks: checks.clone(),
        webhooks,
        sessions: Default::default(),
        secure_cookies: config.https.is_some(),
        metrics: metrics.clone(),
        events: events.clone(),
        statuses: Default::default(),
        shutdown: shutdown.clone(),
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let router = api::router(core.clone());

    let engine_task = tokio::spawn(engine.run(shutdown.clone()));
    let schedules_task = tokio::spawn(schedules.run(shutdown.clone()));
    let keep_task = tokio::spawn(registry.clone().keep(store.clone(), shutdown.clone()));
    let audit_task = tokio::spawn(audit::keep(store.clone(), audit_rx, shutdown.clone()));
    let ingest_task = tokio::spawn(ingest(
        session,
        registry,
        engine_handle,
        core.clone(),
        results_topic,
        call_topic,
        metrics_tx,
    ));
    let http_shutdown = shutdown.clone();
    let served_router = router.clone();
    let https = config.https.is_some();
    let http_tls = config.https.clone();
    let http_limits = config.http_limits;
    let task = tokio::spawn(async move {
        http::serve(
            listener,
            served_router,
            http_tls,
            http_limits,
            http_shutdown,
        )
        .await;
        let engine_result = engine_task.await;
        let _ = keep_task.await;
        let _ = audit_task.await;
        let _ = events_task.await;
        let _ = metrics_task.await;
        let _ = history_task.await;
        let _ = schedules_task.await;
        let _ = checks_task.await;
        let _ = dispatch_task.await;
        let _ = deliver_task.await;
        let _ = tokio::time::timeout(Duration::from_secs(3), ingest_task).await;
        store.close().await;
        engine_result.context("task engine panicked")??;
        Ok(())
    });
    tracing::info!(%addr, %client_id, db = %redact(&config.db), "server ready");
    Ok(Server {
        addr,
        https,
        generated_token,
        client_id,
        public_key,
        router,
        task,
    })
}

/// Routes bus messages: statuses and heartbeats to the registry, task
/// results to the engine, call replies to their waiting API requests.
async fn ingest(
    mut session: Session,
    registry: Registry,
    engine: EngineHandle,
    core: Arc<Core>,
    results_topic: String,
    call_topic: String,
    metrics_tx: tokio::sync::mpsc::Sender<metrics::Incoming>,
) {
    let status_prefix = topics::status_topic("");
    let heartbeat_prefix = topics::heartbeat_topic("");
    let metrics_prefix = topics::metrics_topic("");
    let mut dropped_warned = std::time::Instant::now() - Duration::from_secs(60);
    while let Some(event) = session.events.recv().await {
        let message = match event {
            Event::Message(m) => m,
            Event::Connected(b) => {
                tracing::info!(broker = %b, "server connected to the bus");
                continue;
            }
            Event::Disconnected { broker, reason } => {
                tracing::warn!(%broker, %reason, "server lost the bus");
                continue;
            }
            Event::Subscribed => continue,
        };
        if message.topic == results_topic {
            match Reply::decode(&message.payload) {
                Ok(reply) => match registry.verify_reply(&reply) {
                    Ok(()) => {
                        if reply.status == bot_proto::ReplyStatus::Rejected {
                            core.audit.rejected(&reply);
                        }
                        engine.send(Input::Reply(Box::new(reply), message.ack))
                    }
                    Err(why) => {
                        core.audit.refused_reply(&reply, &why);
                        tracing::warn!(agent = %reply.agent_id, request = %reply.request_id, %why,
                            "task result refused: not signed by the agent's bound key");
                        if let Some(ack) = message.ack {
                            let _ = ack.ack().await;
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "bad task result ignored");
                    if let Some(ack) = message.ack {
                        let _ = ack.ack().await;
                    }
                }
            }
            continue;
        }
        if message.topic == topics::CHECK_RESULTS {
            match Reply::decode(&message.payload) {
                Ok(reply) => match registry.verify_reply(&reply) {
                    Ok(()) => core.checks.on_result(&reply, now_ms()),
                    Err(why) => {
                        core.audit.refused_reply(&reply, &why);
                        tracing::warn!(agent = %reply.agent_id, request = %reply.request_id, %why,
                            "check result refused: not signed by the agent's bound key");
                    }
                },
                Err(e) => tracing::debug!(error = %e, "bad check result ignored"),
            }
            if let Some(ack) = message.ack {
                let _ = ack.ack().await;
            }
            continue;
        }
        if message.topic == call_topic {
            if let Ok(reply) = Reply::decode(&message.payload) {
                match registry.verify_reply(&reply) {
                    Ok(()) => {
                        if reply.status == bot_proto::ReplyStatus::Rejected {
                            core.audit.rejected(&reply);
                        }
                        core.calls.deliver(reply)
                    }
                    Err(why) => {
                        core.audit.refused_reply(&reply, &why);
                        tracing::warn!(agent = %reply.agent_id, %why,
                            "call reply refused: not signed by the agent's bound key")
                    }
                }
            }
        } else if let Some(id) = message.topic.strip_prefix(&status_prefix) {
            registry.on_status(id, &message.payload);
        } else if message.topic.starts_with(&heartbeat_prefix) {
            registry.on_heartbeat(&message.payload);
        } else if let Some(id) = message.topic.strip_prefix(&metrics_prefix) {
            // Never wait for the ingest: a full queue drops the batch.
            if metrics_tx
                .try_send(metrics::Incoming::Batch(
                    id.to_owned(),
                    message.payload.to_vec(),
                ))
                .is_err()
            {
                core.metrics
                    .counters
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if dropped_warned.elapsed() >= Duration::from_secs(10) {
                    dropped_warned = std::time::Instant::now();
                    tracing::warn!(
                        "metrics arrive faster than they are stored; dropping batches (bot_samples_dropped_total)"
                    );
                }
            }
        }
        if let Some(ack) = message.ack {
            let _ = ack.ack().await;
        }
    }
    session.close().await;
}

/// Reads the token from `path`, or makes one and writes it there (0600).
fn load_or_make_token(path: &std::path::Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim().to_owned();
            anyhow::ensure!(
                t.len() >= 16,
                "the token in {} is shorter than 16 characters",
                path.display()
            );
            return Ok(t);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read the API token from {}", path.display())));
        }
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write the API token to {}", path.display()))?;
    writeln!(f, "{token}")?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://bot:secret@db:5432/bot"),
            "postgres://bot:***@db:5432/bot"
        );
        assert_eq!(redact("postgres://bot@db/bot"), "postgres://bot@db/bot");
        assert_eq!(
            redact("sqlite:/var/lib/bot/bot.db"),
            "sqlite:/var/lib/bot/bot.db"
        );
    }
}
