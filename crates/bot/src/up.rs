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
    /// Do not start the local agent.
    #[arg(long)]
    no_agent: bool,
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

    let broker = Broker::start(BrokerConfig {
        listen: args.listen,
        ws_listen: (!args.no_ws).then_some(args.ws_listen),
        ..BrokerConfig::default()
    })
    .await
    .context("cannot start the embedded broker")?;
    let mqtt = broker.mqtt_addr();
    println!("listening: mqtt://{mqtt}");
    if let Some(ws) = broker.ws_addr() {
        println!("listening: ws://{ws}/mqtt");
    }

    #[cfg(feature = "server")]
    let server = if args.no_server {
        None
    } else {
        let url: bot_bus::BrokerUrl = format!("mqtt://{mqtt}")
            .parse()
            .map_err(|e| anyhow::anyhow!("embedded broker address: {e}"))?;
        let file = args.server.file().map_err(crate::usage)?;
        let config = args.server.config(file, vec![url]).map_err(crate::usage)?;
        match bot_server::start(config, shutdown.clone()).await {
            Ok(s) => {
                crate::server::announce(&s);
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
        if args.agent.brokers.is_empty() {
            config.brokers = vec![format!("mqtt://{mqtt}")];
        }
        #[cfg(feature = "server")]
        let data_dir = args
            .server
            .data_dir(&args.server.file().map_err(crate::usage)?);
        #[cfg(not(feature = "server"))]
        let data_dir = bot_auth::paths::server_data_dir();
        #[cfg(feature = "server")]
        let server_key = server.as_ref().map(|s| s.public_key);
        #[cfg(not(feature = "server"))]
        let server_key = None;
        for entry in local_trust(&data_dir, server_key)? {
            if !config.trust.iter().any(|t| t.key == entry.key) {
                config.trust.push(entry);
            }
        }
        let valid = config.validate()?;
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
