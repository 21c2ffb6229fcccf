//! Operator commands of `bot`, one file per subcommand: `pub`, `listen`,
//! `ping`, `facts`, `inventory`, `run`, `results`; `fleet.rs` holds what the
//! structured commands share (discovery, fan-out, summaries). Each has a clap
//! `Args` struct (its `--help`) and an async `run` that returns what the
//! process should exit with. These commands talk to the bus through `bot-bus`
//! only; `task/` (`bot task …`) is instead a client of the server's HTTP API.
//!
//! Exit codes (documented in the README): 0 success, 1 the operation failed
//! (no broker reachable, nobody answered), 2 bad usage.

pub mod agents;
pub mod bridge;
pub mod check;
pub mod config;
pub mod facts;
pub mod fleet;
pub mod inventory;
pub mod keys;
pub mod listen;
pub mod ping;
pub mod publish;
pub mod results;
pub mod run;
pub mod schedule;
pub mod task;

use std::time::Duration;

use anyhow::{Context, bail};
use bot_bus::{BrokerUrl, Event, Options, Qos, Session};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Broker selection shared by every command.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// Broker URL (mqtt://HOST:PORT); repeat to give fallbacks, tried in order.
    #[arg(
        long = "broker",
        short = 'b',
        env = "BOT_BROKER",
        value_delimiter = ',',
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub brokers: Vec<BrokerUrl>,
    /// Seconds to wait for a connection before giving up.
    #[arg(long, default_value_t = 5.0, value_parser = positive_secs)]
    pub connect_timeout: f64,
    /// Operator key that signs requests: a name in ~/.config/bot/keys or a
    /// path (default: `default`, else the local `bot up`'s operator key).
    #[arg(long, env = "BOT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// MQTT user name for brokers whose URL names none (default with
    /// --password-file: operator).
    #[arg(long, env = "BOT_USERNAME")]
    pub username: Option<String>,
    /// File holding the MQTT password (mode 0600). Default: the local `bot
    /// up`'s operator password, when this user can read it.
    #[arg(long, env = "BOT_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<std::path::PathBuf>,
    /// CA certificate(s) (PEM) to trust for mqtts:// and wss:// brokers
    /// (default: the local `bot up`'s CA for brokers on this machine, if it
    /// has one, else the system's roots).
    #[arg(long, env = "BOT_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mqtts:// and wss:// brokers that require one.
    #[arg(long, env = "BOT_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "BOT_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl BusArgs {
    /// The broker URLs with the credentials to log in: `--password-file`
    /// (user `--username`, default operator) for every broker; else, for
    /// brokers on this machine (loopback) only, the local `bot up`'s
    /// operator password if readable, so it never goes to another host. A
    /// URL naming its own user keeps it.
    pub fn brokers_with_credentials(&self) -> anyhow::Result<Vec<BrokerUrl>> {
        let (file, only_local) = match &self.password_file {
            Some(p) => (Some(p.clone()), false),
            None => (bot_auth::paths::default_operator_password(), true),
        };
        let Some(file) = file else {
            return Ok(self.brokers.clone());
        };
        let password = bot_auth::paths::read_password(&file).map_err(anyhow::Error::msg)?;
        let user = self.username.as_deref().unwrap_or("operator");
        Ok(self
            .brokers
            .iter()
            .map(|b| {
                if only_local && !is_loopback(&b.host) {
                    b.clone()
                } else {
                    b.or_credentials(user, &password)
                }
            })
            .collect())
    }

    /// The TLS configuration from `--tls-*`, when any is given (else the
    /// system's roots are used for mqtts:// and wss:// brokers). With no
    /// `--tls-ca` and only brokers on this machine, the local `bot up`'s CA
    /// is trusted if it has one (`bot up --tls-listen` makes it).
    pub fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<bot_bus::rustls::ClientConfig>>> {
        let local_ca = (self.tls_ca.is_none()
            && self
                .brokers
                .iter()
                .all(|b| !b.scheme.is_tls() || is_loopback(&b.host)))
        .then(bot_auth::paths::default_local_ca)
        .flatten();
        if self.tls_ca.is_none() && self.tls_cert.is_none() && local_ca.is_none() {
            return Ok(None);
        }
        let files = bot_bus::tls::TlsFiles {
            ca_file: self.tls_ca.clone().or(local_ca),
            cert_file: self.tls_cert.clone(),
            key_file: self.tls_key.clone(),
        };
        Ok(Some(bot_bus::tls::client_config(&files)?))
    }

    /// The signer for this command's requests (loads the key).
    pub fn signer(&self) -> anyhow::Result<bot_auth::Signer> {
        keys::signer(self.key.as_deref())
    }
}

/// Is `host` this machine (a loopback address or `localhost`)?
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses a positive, finite number of seconds (≤ 1 day).
pub fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

/// Parses an MQTT QoS level for publishing: 0 or 1.
pub fn parse_qos(s: &str) -> Result<Qos, String> {
    match s {
        "0" => Ok(Qos::AtMostOnce),
        "1" => Ok(Qos::AtLeastOnce),
        _ => Err(format!("QoS {s:?} is not supported (use 0 or 1)")),
    }
}

/// Connects a short-lived CLI session and waits until it is subscribed to
/// `subscriptions`, or fails after `--connect-timeout` with the last reason.
pub async fn connect(
    bus: &BusArgs,
    role: &str,
    subscriptions: Vec<(String, Qos)>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Session> {
    let id = format!("bot-{role}-{:08x}", fastrand_id());
    let mut options = Options::new(id, bus.brokers_with_credentials()?);
    options.tls = bus.tls()?;
    options.subscriptions = subscriptions;
    options.backoff_max = Duration::from_secs(1);
    options.queue = 100_000;
    let mut session = Session::start(options, shutdown);
    wait_subscribed(&mut session, bus).await?;
    Ok(session)
}

/// Waits until `session` is subscribed, or fails after `--connect-timeout`.
pub async fn wait_subscribed(session: &mut Session, bus: &BusArgs) -> anyhow::Result<()> {
    let deadline = Duration::from_secs_f64(bus.connect_timeout);
    let mut last_error = String::from("no answer");
    let ready = tokio::time::timeout(deadline, async {
        while let Some(ev) = session.events.recv().await {
            match ev {
                Event::Subscribed => return true,
                Event::Disconnected { broker, reason } => {
                    last_error = format!("{broker}: {reason}")
                }
                _ => {}
            }
        }
        false
    })
    .await;
    match ready {
        Ok(true) => Ok(()),
        _ => {
            let brokers: Vec<String> = bus.brokers.iter().map(ToString::to_string).collect();
            bail!(
                "cannot connect to {} within {} s (last error: {last_error})",
                brokers.join(", "),
                bus.connect_timeout
            )
        }
    }
}

fn fastrand_id() -> u32 {
    // Unique enough for a client id: pid mixed with the clock.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// Publishes once on a connected session, mapping the error.
pub async fn publish_once(
    session: &Session,
    topic: &str,
    payload: Vec<u8>,
    qos: Qos,
) -> anyhow::Result<()> {
    session
        .publisher
        .publish(topic, payload, qos, false)
        .await
        .with_context(|| format!("cannot publish on {topic}"))
}
