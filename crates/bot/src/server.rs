//! `bot server`: the registry, task engine and HTTP API against any broker
//! and database; and the server options `bot up` shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bot_bus::BrokerUrl;
use bot_server::{ServerConfig, Token};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Server options (for `bot server` and `bot up`).
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerOpts {
    /// HTTP API address (port 0 picks a free port).
    #[arg(long, env = "BOT_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Database: `sqlite:PATH` or `postgres://USER:PASS@HOST/DB`.
    /// Default: `sqlite:DATA_DIR/bot.db`.
    #[arg(long, env = "BOT_DB")]
    pub db: Option<String>,
    /// Server data directory (SQLite database, generated API token).
    /// Default: the agent's state directory + `/server`.
    #[arg(long, env = "BOT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// API tokens as NAME=SECRET (repeat, or comma-separated). Without any,
    /// one is generated into DATA_DIR/api-token and printed.
    #[arg(
        long = "api-token",
        env = "BOT_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
}

impl ServerOpts {
    /// The server configuration for `brokers`.
    pub(crate) fn config(&self, brokers: Vec<BrokerUrl>) -> anyhow::Result<ServerConfig> {
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| bot_agent::config::default_state_dir().join("server"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let db = match &self.db {
            Some(db) => db.clone(),
            None => format!("sqlite:{}", data_dir.join("bot.db").display()),
        };
        let mut tokens = Vec::new();
        for t in &self.api_tokens {
            let Some((name, secret)) = t.split_once('=') else {
                anyhow::bail!("--api-token: expected NAME=SECRET, got a value without '='");
            };
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 64,
                "--api-token: the name {name:?} must be 1..=64 characters"
            );
            anyhow::ensure!(
                secret.len() >= 16,
                "--api-token {name}=…: the secret must be at least 16 characters"
            );
            tokens.push(Token {
                name: name.to_owned(),
                secret: secret.to_owned(),
            });
        }
        Ok(ServerConfig {
            brokers,
            db,
            listen: self.http,
            tokens,
            token_file: data_dir.join("api-token"),
            client_id: None,
        })
    }
}

/// Options of `bot server`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Broker URL (mqtt://HOST:PORT); repeat for fallbacks, tried in order.
    #[arg(
        long = "broker",
        short = 'b',
        env = "BOT_BROKER",
        value_delimiter = ',',
        required = true
    )]
    brokers: Vec<String>,
    #[command(flatten)]
    opts: ServerOpts,
}

/// Parses broker URLs, naming the bad one.
pub(crate) fn broker_urls(urls: &[String]) -> anyhow::Result<Vec<BrokerUrl>> {
    urls.iter()
        .map(|u| {
            u.parse::<BrokerUrl>()
                .map_err(|e| anyhow::anyhow!("--broker {u:?}: {e}"))
        })
        .collect()
}

/// Prints how to reach a started server.
pub(crate) fn announce(server: &bot_server::Server) {
    println!("listening: http://{}/api", server.addr);
    if let Some(token) = &server.generated_token {
        println!("api token: {token}");
        println!(
            "try: BOT_TOKEN={token} bot task list --server http://{}",
            server.addr
        );
    }
}

pub(crate) async fn run(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let brokers = broker_urls(&args.brokers)?;
    let config = args.opts.config(brokers)?;
    let server = bot_server::start(config, shutdown.clone()).await?;
    announce(&server);
    server.wait().await?;
    Ok(ExitCode::SUCCESS)
}
