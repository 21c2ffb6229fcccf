//! `bot up`: everything on one machine. Starts the embedded broker, prints
//! what it bound (one `listening:` line per listener, on stdout, so scripts
//! and tests can read the ports chosen with port 0), then the server
//! (registry, task engine, HTTP API on SQLite; prints its address and API
//! token) and a local agent connected to it; stops all cleanly on Ctrl-C /
//! SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use bot_broker::{Broker, BrokerConfig};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::{AgentArgs, SHUTDOWN_GRACE};

/// Options of `bot up`.
#[derive(Debug, Clone, Args)]
pub(crate) struct UpArgs {
    /// Address of the embedded MQTT broker (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:1883")]
    listen: SocketAddr,
    /// Address of the broker's MQTT-over-WebSocket listener (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8083")]
    ws_listen: SocketAddr,
    /// Do not open the WebSocket listener.
    #[arg(long)]
    no_ws: bool,
    /// Also serve MQTT over TLS (`mqtts://`) on this address, e.g.
    /// 0.0.0.0:8883: the way to let agents of other machines in. Without
    /// --broker-cert, `bot up` makes a CA and a broker certificate in
    /// DATA_DIR/broker/tls on first use (give agents its ca.crt as `tls_ca`).
    #[arg(long, value_name = "ADDR")]
    tls_listen: Option<SocketAddr>,
    /// Also serve MQTT over WebSocket over TLS (`wss://HOST:PORT/mqtt`) on
    /// this address, with the same certificate as --tls-listen.
    #[arg(long, value_name = "ADDR")]
    wss_listen: Option<SocketAddr>,
    /// The broker's TLS certificate (PEM chain), instead of the generated one.
    #[arg(long, value_name = "PATH", requires = "broker_key")]
    broker_cert: Option<std::path::PathBuf>,
    /// The private key of --broker-cert (PEM).
    #[arg(long, value_name = "PATH", requires = "broker_cert")]
    broker_key: Option<std::path::PathBuf>,
    /// Require a client certificate signed by this CA (PEM) on the TLS
    /// listeners (mutual TLS), in addition to the user name and password.
    #[arg(long, value_name = "PATH")]
    broker_client_ca: Option<std::path::PathBuf>,
    /// Do not start the local agent.
    #[arg(long)]
    no_agent: bool,
    /// Let anyone connect to the embedded broker without a user name and
    /// password, and allow plain (non-TLS) listeners beyond loopback. For
    /// tests and trusted networks only: requests stay signed, but anyone who
    /// reaches the port can read the bus and publish statuses. Default: every
    /// client logs in with credentials that `bot up` generates into
    /// DATA_DIR/broker, and only the TLS listeners may face the network.
    #[arg(long)]
    insecure: bool,
    /// Do not start the server (registry, tasks, HTTP API).
    #[cfg(feature = "server")]
    #[arg(long)]
    no_server: bool,
    /// Server options.
    #[cfg(feature = "server")]
    #[command(flatten)]
    server: crate::server::ServerOpts,
    /// Local agent options (its --broker defaults to the embedded broker).
    #[command(flatten)]
    agent: AgentArgs,
}

/// The embedded broker's logins that `bot up` makes on its first start and
/// keeps (files mode 0600 in DATA_DIR/broker; delete one for a new
/// password at the next start): `operator`
/// (what the CLI of this user finds), `server`, and the local agent (user
/// name = its id). Agents added with `bot broker add-agent` are kept.
struct LocalCredentials {
    users: std::path::PathBuf,
    operator_password_file: std::path::PathBuf,
    server_password: String,
    agent_password: Option<String>,
}

/// Descriptors `bot up` keeps out of every listener's reach: the local
/// agent's and server's own connections, the database, key and log files,
/// and the commands the agent runs with their pipes. (Issue 12: a flood of
/// idle sockets took all 20,000 descriptors, and the health route and the
/// local agent stopped answering.)
const RESERVED_DESCRIPTORS: usize = 512;

/// How `bot up` shares its descriptor limit (`RLIMIT_NOFILE`, raised to the
/// hard limit at start): [`RESERVED_DESCRIPTORS`] kept back; the HTTP
/// listener's cap, at most a quarter of the rest; of what is left, half
/// for the broker's connections that have not logged in (pending CONNECTs,
/// handshakes, TLS relays) and half for clients that have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    limit: usize,
    http: usize,
    broker: usize,
}

impl Budget {
    fn of_this_process(http_cap: usize) -> Budget {
        use nix::sys::resource::{Resource, getrlimit};
        let limit = getrlimit(Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
            .unwrap_or(1_024);
        Budget::split(limit, http_cap)
    }

    fn split(limit: usize, http_cap: usize) -> Budget {
        let available = limit.saturating_sub(RESERVED_DESCRIPTORS);
        let http = http_cap.min(available / 4).max(16);
        let broker = available.saturating_sub(http) / 2;
        Budget {
            limit,
            http,
            broker,
        }
    }
}

fn local_credentials(
    data_dir: &std::path::Path,
    agent: Option<(String, String)>,
) -> anyhow::Result<LocalCredentials> {
    use bot_broker::auth::{Role, User, add_user};
    let dir = bot_auth::paths::broker_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let users = dir.join("users.toml");
    let make = |name: &str, role: Role, agent_name: Option<String>, file: &str| {
        let path = dir.join(file);
        // A password made at an earlier start is kept (scripts and agents
        // that read it keep working across restarts); else a new one.
        let password = match bot_auth::paths::read_password(&path) {
            Ok(p) => p,
            Err(_) => {
                let password = bot_auth::sign::nonce();
                bot_auth::paths::write_private(&path, format!("{password}\n").as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                password
            }
        };
        add_user(
            &users,
            User {
                name: name.to_owned(),
                role,
                password_sha256: bot_auth::digest_hex(password.as_bytes()),
                agent_name,
            },
        )?;
        Ok::<_, anyhow::Error>((password, path))
    };
    let (_, operator_password_file) = make("operator", Role::Operator, None, "operator.password")?;
    let (server_password, _) = make("server", Role::Server, None, "server.password")?;
    let agent_password = match agent {
        Some((id, name)) => Some(make(&id, Role::Agent, Some(name), "agent.password")?.0),
        None => None,
    };
    Ok(LocalCredentials {
        users,
        operator_password_file,
        server_password,
        agent_password,
    })
}

/// The TLS files of the broker's TLS listeners: --broker-cert/--broker-key,
/// else those made in DATA_DIR/broker/tls on first use (valid for
/// localhost, this host's name and the addresses of the TLS listeners).
fn broker_tls(args: &UpArgs, data_dir: &std::path::Path) -> anyhow::Result<bot_broker::TlsFiles> {
    let mut files = match (&args.broker_cert, &args.broker_key) {
        (Some(cert), Some(key)) => bot_broker::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        },
        _ => {
            let dir = bot_auth::paths::broker_dir(data_dir).join("tls");
            let names: Vec<String> = [args.tls_listen, args.wss_listen]
                .into_iter()
                .flatten()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
                .map(|ip| ip.to_string())
                .collect();
            let files = bot_broker::certs::local(&dir, &names)
                .context("cannot make the broker's TLS certificate")?;
            println!("tls: CA for clients: {}", dir.join("ca.crt").display());
            files
        }
    };
    files.client_ca = args.broker_client_ca.clone();
    Ok(files)
}

/// The keys the local agent of `bot up` trusts with every action: the
/// server's, the local operator's (`DATA_DIR/operator.key`, made on first
/// start, mode 0600: only this user can sign with it), and the key the CLI
/// would use here (`BOT_KEY`, else `~/.config/bot/keys/default.key`), so
/// `bot ping` and `bot run` work with no flags.
fn local_trust(
    data_dir: &std::path::Path,
    server_key: Option<bot_auth::PublicKey>,
) -> anyhow::Result<Vec<bot_auth::TrustEntry>> {
    use bot_auth::{SecretKey, TrustEntry};
    let mut out = Vec::new();
    if let Some(k) = server_key {
        out.push(TrustEntry::full("server", &k));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let op_path = data_dir.join("operator.key");
    let (op, made) =
        SecretKey::load_or_create(&op_path).context("cannot load the local operator key")?;
    println!(
        "operator key: {}{}",
        op_path.display(),
        if made { " (new)" } else { "" }
    );
    out.push(TrustEntry::full("local-operator", &op.public()));
    let cli_key = std::env::var("BOT_KEY").ok().filter(|k| !k.is_empty());
    if let Ok(path) = bot_cli::keys::resolve(cli_key.as_deref())
        && path != op_path
    {
        match SecretKey::load(&path) {
            Ok(k) => out.push(TrustEntry::full("operator", &k.public())),
            Err(e) => {
                tracing::warn!(error = %e, "the CLI's operator key is not usable; not trusted")
            }
        }
    }
    Ok(out)
}

pub(crate) async fn run(
    args: UpArgs,
    signals: impl FnOnce() -> CancellationToken,
) -> anyhow::Result<ExitCode> {
    let shutdown = signals();
    // Check the agent's configuration before binding anything.
    let agent = if args.no_agent {
        None
    } else {
        Some(args.agent.load()?)
    };

    #[cfg(feature = "server")]
    let data_dir = args
        .server
        .data_dir(&args.server.file().map_err(crate::usage)?);
    #[cfg(not(feature = "server"))]
    let data_dir = bot_auth::paths::server_data_dir();
    let ws_listen = (!args.no_ws).then_some(args.ws_listen);
    if !args.insecure {
        for addr in std::iter::once(args.listen).chain(ws_listen) {
            if !addr.ip().is_loopback() {
                return Err(crate::usage(anyhow::anyhow!(
                    "refusing to listen on {addr} without TLS: passwords, commands and their \
                     output would cross the network in clear. Keep --listen on 127.0.0.1 (the \
                     default) and serve other machines with --tls-listen {ip}:8883 (and \
                     --wss-listen), or pass --insecure on a network you trust",
                    ip = addr.ip()
                )));
            }
        }
    }
    // Secure by default: users and passwords for the server, the local
    // operator and the local agent, made now (see `local_credentials`).
    let creds = if args.insecure {
        tracing::warn!("--insecure: the embedded broker takes anonymous clients");
        None
    } else {
        let agent_id = match &agent {
            Some(config) => Some((
                bot_agent::identity::load_or_create(
                    &config
                        .state_dir
                        .clone()
                        .unwrap_or_else(bot_agent::config::default_state_dir),
                )
                .map_err(|e| anyhow::anyhow!("local agent failed: {e}"))?,
                config
                    .name
                    .clone()
                    .unwrap_or_else(bot_agent::config::default_name),
            )),
            None => None,
        };
        Some(local_credentials(&data_dir, agent_id)?)
    };
    let tls = if args.tls_listen.is_some() || args.wss_listen.is_some() {
        Some(broker_tls(&args, &data_dir)?)
    } else {
        None
    };
    let mut broker_config = BrokerConfig {
        listen: args.listen,
        ws_listen,
        tls_listen: args.tls_listen,
        wss_listen: args.wss_listen,
        tls: tls.clone(),
        users: creds.as_ref().map(|c| c.users.clone()),
        ..BrokerConfig::default()
    };
    let budget = Budget::of_this_process(bot_server::HttpLimits::default().max_connections);
    if let Some(lowered) = broker_config.fit_descriptors(budget.broker) {
        tracing::warn!(
            limit = budget.limit,
            "descriptor limit: {lowered}; raise LimitNOFILE (ulimit -n) for more"
        );
    }
    let broker = Broker::start(broker_config)
        .await
        .context("cannot start the embedded broker")?;
    let mqtt = broker.mqtt_addr();
    println!("listening: mqtt://{mqtt}");
    if let Some(ws) = broker.ws_addr() {
        println!("listening: ws://{ws}/mqtt");
    }
    if let Some(a) = broker.tls_addr() {
        println!("listening: mqtts://{a}");
    }
    if let Some(a) = broker.wss_addr() {
        println!("listening: wss://{a}/mqtt");
    }
    if let Some(t) = &tls {
        println!(
            "tls: certificate {}{}",
            t.cert.display(),
            match &t.client_ca {
                Some(ca) => format!(", client certificates from {}", ca.display()),
                None => String::new(),
            }
        );
    }
    if let Some(c) = &creds {
        println!(
            "mqtt login: user operator, password in {} (the CLI finds it)",
            c.operator_password_file.display()
        );
    }

    #[cfg(feature = "server")]
    let server = if args.no_server {
        None
    } else {
        let mut url: bot_bus::BrokerUrl = format!("mqtt://{mqtt}")
            .parse()
            .map_err(|e| anyhow::anyhow!("embedded broker address: {e}"))?;
        if let Some(c) = &creds {
            url = url.or_credentials("server", &c.server_password);
        }
        let file = args.server.file().map_err(crate::usage)?;
        let nagios = args.server.nagios(&file);
        let mut config = args.server.config(file, vec![url]).map_err(crate::usage)?;
        let bus = (config.brokers.clone(), config.tls.clone());
        if config.http_limits.max_connections > budget.http {
            tracing::warn!(
                limit = budget.limit,
                "descriptor limit: HTTP connections {} -> {}; raise LimitNOFILE (ulimit -n) for more",
                config.http_limits.max_connections,
                budget.http
            );
            config.http_limits.max_connections = budget.http;
        }
        match bot_server::start(config, shutdown.clone()).await {
            Ok(s) => {
                crate::server::announce(&s);
                // Runs until the shutdown token fires.
                drop(crate::server::spawn_nagios(nagios, &s, bus, &shutdown));
                Some(s)
            }
            Err(e) => {
                shutdown.cancel();
                broker.shutdown().await;
                return Err(e.context("cannot start the server"));
            }
        }
    };

    let mut agent_task = None;
    if let Some(mut config) = agent {
        let local = args.agent.brokers.is_empty();
        if local {
            config.brokers = vec![format!("mqtt://{mqtt}")];
        }
        #[cfg(feature = "server")]
        let server_key = server.as_ref().map(|s| s.public_key);
        #[cfg(not(feature = "server"))]
        let server_key = None;
        for entry in local_trust(&data_dir, server_key)? {
            if !config.trust.iter().any(|t| t.key == entry.key) {
                config.trust.push(entry);
            }
        }
        let mut valid = config.validate()?;
        if let (true, Some(c)) = (local, &creds) {
            valid.password = c.agent_password.clone();
        }
        println!(
            "agent: {} (try: bot ping --broker mqtt://{mqtt})",
            valid.name
        );
        agent_task = Some(tokio::spawn(bot_agent::run(valid, shutdown.clone())));
    }
    // Run until a signal, or until the local agent fails (e.g. its state
    // directory is not writable): then stop everything and say why.
    let failed = match agent_task.as_mut() {
        Some(task) => tokio::select! {
            () = shutdown.cancelled() => None,
            ended = task => Some(match ended {
                Ok(Err(e)) => anyhow::anyhow!("local agent failed: {e}"),
                Ok(Ok(())) => anyhow::anyhow!("local agent stopped unexpectedly"),
                Err(e) => anyhow::anyhow!("local agent crashed: {e}"),
            }),
        },
        None => {
            shutdown.cancelled().await;
            None
        }
    };
    if let Some(e) = failed {
        shutdown.cancel();
        #[cfg(feature = "server")]
        if let Some(s) = server {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, s.wait()).await;
        }
        broker.shutdown().await;
        return Err(e);
    }
    if let Some(task) = agent_task
        && tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err()
    {
        tracing::warn!("local agent did not stop within the grace period");
    }
    #[cfg(feature = "server")]
    if let Some(s) = server {
        match tokio::time::timeout(SHUTDOWN_GRACE, s.wait()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "server stopped with an error"),
            Err(_) => tracing::warn!("server did not stop within the grace period"),
            Ok(Ok(())) => {}
        }
    }
    broker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `bot broker`: the embedded broker's logins.
#[derive(Debug, Clone, Args)]
pub(crate) struct BrokerArgs {
    #[command(subcommand)]
    command: BrokerCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum BrokerCommand {
    /// Let an agent log in to a secure `bot up`: registers its id and name
    /// in DATA_DIR/broker/users.toml (a running `bot up` sees it at once)
    /// and prints a new password for it, once. Get the id on the agent's
    /// machine with `bot agent --print-id`.
    AddAgent {
        /// The agent's id (`bot agent --print-id`).
        #[arg(long)]
        id: String,
        /// The agent's name (its BUS/<name> and DATA/<name> topics).
        #[arg(long)]
        name: String,
        /// `bot up`'s data directory. Default: the agent's state directory + `/server`.
        #[arg(long, env = "BOT_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
}

pub(crate) fn broker_command(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BrokerCommand::AddAgent { id, name, data_dir } => {
            for (what, v) in [("--id", &id), ("--name", &name)] {
                bot_agent::config::check_name(v)
                    .map_err(|why| crate::usage(anyhow::anyhow!("{what} {v:?}: {why}")))?;
            }
            let data_dir = data_dir.unwrap_or_else(bot_auth::paths::server_data_dir);
            let users = bot_auth::paths::broker_dir(&data_dir).join("users.toml");
            let password = bot_auth::sign::nonce();
            bot_broker::auth::add_user(
                &users,
                bot_broker::auth::User {
                    name: id.clone(),
                    role: bot_broker::auth::Role::Agent,
                    password_sha256: bot_auth::digest_hex(password.as_bytes()),
                    agent_name: Some(name.clone()),
                },
            )?;
            println!(
                "agent {name} ({id}) may log in to the broker of {}",
                data_dir.display()
            );
            println!("password: {password}");
            println!();
            println!(
                "# on the agent's machine: the password in a file (chmod 600), and in its config:"
            );
            println!("# password_file = \"/etc/bot/mqtt.password\"   # user name: the agent's id");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_budget_keeps_a_reserve_and_fits_the_caps() {
        // A large limit leaves the default caps alone.
        let big = Budget::split(1_048_576, 1_024);
        assert_eq!(big.http, 1_024);
        let mut config = BrokerConfig::default();
        assert_eq!(config.fit_descriptors(big.broker), None);
        // The hostile test's 20,000: the caps shrink so that the HTTP cap,
        // the broker's pre-login slots and the reserve fit under the limit.
        for limit in [1_024, 20_000] {
            let b = Budget::split(limit, 1_024);
            let mut config = BrokerConfig {
                ws_listen: Some("127.0.0.1:0".parse().expect("addr")),
                tls_listen: Some("127.0.0.1:0".parse().expect("addr")),
                ..BrokerConfig::default()
            };
            assert!(config.fit_descriptors(b.broker).is_some(), "{limit}");
            // plain + ws: 1 descriptor a slot; TLS: 3.
            let slots =
                config.max_pending_connects + config.max_handshaking + config.max_connections;
            let broker = slots * 5;
            assert!(
                RESERVED_DESCRIPTORS + b.http + broker <= limit,
                "{limit}: {b:?} {broker}"
            );
            assert!(config.max_pending_connects >= 16, "{config:?}");
        }
    }
}
