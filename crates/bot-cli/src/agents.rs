//! `bot agents accept ID`: bind an agent's pending signing key on the
//! server (a new agent when the server does not accept new agents by itself,
//! or an agent whose key changed — an alarm until accepted). `bot agents
//! forget ID`: clear a decommissioned agent. A client of the server's HTTP
//! API, like `bot task`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::task::client::{ApiClient, ServerArgs};

/// Agents in the server's registry.
#[derive(Debug, Clone, Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub command: AgentsCommand,
}

/// `bot agents` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentsCommand {
    /// Accept an agent's pending signing key (check it out of band first,
    /// as with ssh's known_hosts): a new agent waiting to be admitted, or an
    /// agent whose key changed, whose results are refused until then.
    Accept {
        #[command(flatten)]
        server: ServerArgs,
        /// The agent's id or name.
        id: String,
    },
    /// Forget a decommissioned agent: its registry row and its retained
    /// status on the bus (its tasks' history stays). An online agent is
    /// refused: stop it first.
    Forget {
        #[command(flatten)]
        server: ServerArgs,
        /// The agent's id or name.
        id: String,
    },
}

/// The API client for `server`, or `None` after saying why not (exit 2).
fn client(server: &ServerArgs) -> Option<ApiClient> {
    ApiClient::from_args(server)
        .map_err(|e| eprintln!("bot: {e}"))
        .ok()
}

/// Runs `bot agents`.
pub async fn run(args: AgentsArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match args.command {
        AgentsCommand::Accept { server, id } => {
            let Some(client) = client(&server) else {
                return Ok(ExitCode::from(2));
            };
            let agent = tokio::select! {
                () = shutdown.cancelled() => return Ok(ExitCode::from(130)),
                r = client.accept_agent(&id) => r?,
            };
            println!(
                "accepted: {} ({}) now signs with {}",
                agent.name,
                agent.id,
                agent.key.key.as_deref().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentsCommand::Forget { server, id } => {
            let Some(client) = client(&server) else {
                return Ok(ExitCode::from(2));
            };
            let agent = tokio::select! {
                () = shutdown.cancelled() => return Ok(ExitCode::from(130)),
                r = client.forget_agent(&id) => r?,
            };
            println!("forgotten: {} ({})", agent.name, agent.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}
