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
