//! `bot server`: the registry, task engine and HTTP API against any broker
//! and database; and the server options `bot up` shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bot_bus::BrokerUrl;
use bot_server::{Scope, ServerConfig, Token};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Server options (for `bot server` and `bot up`); each overrides the same
/// key of the server configuration file.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerOpts {
    /// Server configuration file (TOML; see docs/server.example.toml).
    #[arg(long = "server-config", env = "BOT_SERVER_CONFIG")]
    pub server_config: Option<PathBuf>,
    /// HTTP API address (port 0 picks a free port). Default: 127.0.0.1:8080.
    #[arg(long, env = "BOT_HTTP")]
    pub http: Option<SocketAddr>,
    /// Database: `sqlite:PATH` or `postgres://USER:PASS@HOST/DB`.
    /// Default: `sqlite:DATA_DIR/bot.db`.
    #[arg(long, env = "BOT_DB")]
    pub db: Option<String>,
    /// Server data directory (SQLite database, generated API token).
    /// Default: the agent's state directory + `/server`.
    #[arg(long, env = "BOT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// API tokens as NAME=SECRET or NAME:SCOPE=SECRET, SCOPE one of read,
    /// operate, admin (the default): repeat, or comma-separated; replace the
    /// file's `[[tokens]]`. Without any, one (admin) is generated into
    /// DATA_DIR/api-token and printed.
    #[arg(
        long = "api-token",
        env = "BOT_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// The server's signing key (PKCS#8 PEM, mode 0600; made on first start
    /// if missing). Agents obey the server only when they trust its public
    /// key, which the server prints at start. Default: DATA_DIR/server.key.
    #[arg(long, env = "BOT_SERVER_KEY", hide_env_values = true)]
    pub server_key: Option<PathBuf>,
    /// Also write scheduled check results into this Nagios command file, as
    /// `bot bridge nagios` does, from this process (its own persistent
    /// session, client id SERVER-ID-nagios).
    #[arg(long, env = "BOT_NAGIOS_COMMAND_FILE", value_name = "PATH")]
    pub nagios_command_file: Option<PathBuf>,
    /// With --nagios-command-file: the agents' fact that is their Nagios
    /// host name (`name`: the agent's name). Default: hostname.
    #[arg(long, env = "BOT_NAGIOS_HOST_FACT", value_name = "FACT")]
    pub nagios_host_fact: Option<String>,
    /// Bind a new agent's signing key on first sight (true, the default), or
    /// keep new agents pending until `bot agents accept ID` (false, as
    /// `salt-key -a`). A changed key always waits for an operator.
    #[arg(long, env = "BOT_AUTO_ACCEPT", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub auto_accept: Option<bool>,
    /// CA certificate(s) (PEM) to trust for mqtts:// brokers (default: the
    /// system's roots).
    #[arg(long, env = "BOT_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mqtts:// brokers that require one.
    #[arg(long, env = "BOT_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "BOT_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the API over HTTPS, on any address. Beyond loopback it is the
    /// default. Without --https-cert, a CA and a certificate are made in
    /// DATA_DIR/broker/tls on first use (clients trust its ca.crt:
    /// `bot task --server-ca`, or by itself on the same machine).
    #[arg(long)]
    pub https: bool,
    /// The API's TLS certificate (PEM chain), instead of the generated one.
    #[arg(
        long,
        env = "BOT_HTTPS_CERT",
        value_name = "PATH",
        requires = "https_key"
    )]
    pub https_cert: Option<PathBuf>,
    /// The private key of --https-cert (PEM).
    #[arg(
        long,
        env = "BOT_HTTPS_KEY",
        value_name = "PATH",
        requires = "https_cert"
    )]
    pub https_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback (behind a TLS-terminating proxy on
    /// the same host or a trusted network): tokens would otherwise cross
    /// the network in clear.
    #[arg(long, conflicts_with_all = ["https", "https_cert"])]
    pub plain_http: bool,
    /// How long raw samples (one row per agent per round) are kept, e.g.
    /// 24h (the default), 2d. At least 10m.
    #[arg(long, env = "BOT_RAW_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub raw_retention: Option<std::time::Duration>,
    /// How long the 1-minute rollups (min, average, max) are kept, e.g. 30d
    /// (the default). At least the raw retention.
    #[arg(long, env = "BOT_ROLLUP_RETENTION", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub rollup_retention: Option<std::time::Duration>,
}

/// How the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpMode {
    /// Plain HTTP.
    Plain,
    /// HTTPS with these files.
    Https {
        /// PEM certificate chain.
        cert: PathBuf,
        /// Its key.
        key: PathBuf,
    },
    /// HTTPS with the certificate made in the data directory.
    HttpsGenerated,
}

/// The rule: HTTPS when asked (`--https`, a certificate given), and beyond
/// loopback unless `--plain-http`.
pub(crate) fn http_mode(
    addr: SocketAddr,
    https: bool,
    cert: Option<(PathBuf, PathBuf)>,
    plain_http: bool,
) -> HttpMode {
    match cert {
        Some((cert, key)) => HttpMode::Https { cert, key },
        None if https || !(addr.ip().is_loopback() || plain_http) => HttpMode::HttpsGenerated,
        None => HttpMode::Plain,
    }
}

/// Default HTTP API address.
const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// Largest server configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The server configuration file: every key optional.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    /// HTTP API address.
    pub http: Option<SocketAddr>,
    /// Database URL.
    pub db: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Bind new agents' keys on first sight (default true).
    pub auto_accept: Option<bool>,
    /// Brokers (`bot server` only; `bot up` uses its embedded broker).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Serve the API over HTTPS (default: beyond loopback).
    pub https: Option<bool>,
    /// The API's TLS certificate and key (PEM).
    pub https_cert: Option<PathBuf>,
    /// The key of `https_cert`.
    pub https_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback.
    pub plain_http: Option<bool>,
    /// How long raw samples are kept ("24h").
    pub raw_retention: Option<String>,
    /// How long minute rollups are kept ("30d").
    pub rollup_retention: Option<String>,
    /// API tokens.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Nagios's command file for the in-process bridge.
    pub nagios_command_file: Option<PathBuf>,
    /// The agents' fact that is their Nagios host name.
    pub nagios_host_fact: Option<String>,
    /// Webhooks.
    #[serde(default)]
    pub webhooks: Vec<WebhookEntry>,
}

/// One `[[webhooks]]` entry.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookEntry {
    /// Its name.
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// Which events.
    pub events: Vec<String>,
    /// Only events about agents this filter selects.
    pub filter: Option<String>,
    /// The HMAC key (or give `secret_file`).
    pub secret: Option<String>,
    /// A file holding the HMAC key (its first line).
    pub secret_file: Option<PathBuf>,
}

impl WebhookEntry {
    /// The webhook, its secret read from `secret_file` if given.
    fn to_new(&self) -> anyhow::Result<bot_server::webhooks::NewWebhook> {
        let secret = match (&self.secret, &self.secret_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "webhook {:?}: cannot read secret_file {}: {e}",
                        self.name,
                        path.display()
                    )
                })?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned(),
            _ => anyhow::bail!(
                "webhook {:?}: give exactly one of secret and secret_file",
                self.name
            ),
        };
        Ok(bot_server::webhooks::NewWebhook {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            filter: self.filter.clone(),
            secret,
        })
    }
}

/// One `[[tokens]]` entry.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenEntry {
    /// Who holds it (recorded as `created_by`).
    pub name: String,
    /// The bearer secret, 16+ characters (or give `secret_sha256`).
    pub secret: Option<String>,
    /// The SHA-256 of the secret, 64 hex digits: the file then holds no
    /// secret (`printf %s SECRET | sha256sum`).
    pub secret_sha256: Option<String>,
    /// read, operate or admin. Default: admin.
    pub scope: Option<String>,
}

impl ServerFile {
    /// Reads and parses `path`; errors name the file.
    pub(crate) fn load(path: &std::path::Path) -> anyhow::Result<ServerFile> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read the server config {}", path.display()))?;
        anyhow::ensure!(
            meta.len() <= MAX_CONFIG_BYTES,
            "the server config {} is {} bytes, more than {MAX_CONFIG_BYTES}",
            path.display(),
            meta.len()
        );
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the server config is world-readable and may hold API secrets: chmod o-r"
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the server config {}", path.display()))?;
        ServerFile::parse(&text).with_context(|| format!("in the server config {}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<ServerFile> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }
}

/// The scope of a token when none is given: admin (a token could do
/// everything before scopes existed; give `scope` to narrow it).
const DEFAULT_SCOPE: Scope = Scope::Admin;

/// Checks one token; `what` names where it came from.
fn token(name: &str, secret: &str, scope: Scope, what: &str) -> anyhow::Result<Token> {
    check_token_name(name, what)?;
    anyhow::ensure!(
        secret.len() >= 16 && !secret.chars().any(char::is_whitespace),
        "{what}: the secret of token {name:?} must be at least 16 characters, without spaces"
    );
    Ok(Token::from_secret(name, secret, scope))
}

fn check_token_name(name: &str, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control),
        "{what}: the token name {name:?} must be 1..=64 characters without control characters"
    );
    Ok(())
}

/// One `[[tokens]]` entry of the file, checked.
fn file_token(t: &TokenEntry) -> anyhow::Result<Token> {
    let what = "[[tokens]]";
    let scope = match &t.scope {
        Some(s) => s
            .parse::<Scope>()
            .map_err(|e| anyhow::anyhow!("{what}: token {:?}: scope: {e}", t.name))?,
        None => DEFAULT_SCOPE,
    };
    match (&t.secret, &t.secret_sha256) {
        (Some(secret), None) => token(&t.name, secret, scope, what),
        (None, Some(hash)) => {
            check_token_name(&t.name, what)?;
            let hash = hash.trim().to_ascii_lowercase();
            anyhow::ensure!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "{what}: token {:?}: secret_sha256 must be 64 hex digits",
                t.name
            );
            Ok(Token {
                name: t.name.clone(),
                scope,
                sha256: hash,
            })
        }
        _ => anyhow::bail!(
            "{what}: token {:?}: give exactly one of secret and secret_sha256",
            t.name
        ),
    }
}

impl ServerOpts {
    /// The configuration file, if one was given.
    pub(crate) fn file(&self) -> anyhow::Result<ServerFile> {
        match &self.server_config {
            Some(path) => ServerFile::load(path),
            None => Ok(ServerFile::default()),
        }
    }

    /// The data directory: the flag, the file's, else the default.
    pub(crate) fn data_dir(&self, file: &ServerFile) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(bot_auth::paths::server_data_dir)
    }

    /// The server configuration for `brokers`: the file, then flags and
    /// environment.
    pub(crate) fn config(
        &self,
        file: ServerFile,
        brokers: Vec<BrokerUrl>,
    ) -> anyhow::Result<ServerConfig> {
        let data_dir = self.data_dir(&file);
        let history = self.history(&file)?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let db = match self.db.clone().or(file.db) {
            Some(db) => db,
            None => format!("sqlite:{}", data_dir.join("bot.db").display()),
        };
        let mut tokens = Vec::new();
        if self.api_tokens.is_empty() {
            for t in &file.tokens {
                tokens.push(file_token(t)?);
            }
        } else {
            for t in &self.api_tokens {
                let Some((name, secret)) = t.split_once('=') else {
                    anyhow::bail!(
                        "--api-token: expected NAME[:SCOPE]=SECRET, got a value without '='"
                    );
                };
                let (name, scope) = match name.split_once(':') {
                    Some((n, s)) => (
                        n,
                        s.parse::<Scope>()
                            .map_err(|e| anyhow::anyhow!("--api-token {n:?}: {e}"))?,
                    ),
                    None => (name, DEFAULT_SCOPE),
                };
                tokens.push(token(name, secret, scope, "--api-token")?);
            }
        }
        let mut names = std::collections::HashSet::new();
        for t in &tokens {
            anyhow::ensure!(
                names.insert(&t.name),
                "token name {:?} is given twice",
                t.name
            );
        }
        let http = match self.http.or(file.http) {
            Some(a) => a,
            None => DEFAULT_HTTP.parse().context("default HTTP address")?,
        };
        let cert = match (
            self.https_cert.clone().or(file.https_cert),
            self.https_key.clone().or(file.https_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("https_cert and https_key go together"),
        };
        let mode = http_mode(
            http,
            self.https || file.https.unwrap_or(false),
            cert,
            self.plain_http || file.plain_http.unwrap_or(false),
        );
        let https = match mode {
            HttpMode::Plain => None,
            HttpMode::Https { cert, key } => Some(bot_bus::tls::server_config(&cert, &key, None)?),
            HttpMode::HttpsGenerated => Some(generated_https(&data_dir, http)?),
        };
        Ok(ServerConfig {
            brokers,
            db,
            listen: http,
            tokens,
            token_file: data_dir.join("api-token"),
            client_id: None,
            key_file: self
                .server_key
                .clone()
                .unwrap_or_else(|| data_dir.join("server.key")),
            auto_accept: self.auto_accept.or(file.auto_accept).unwrap_or(true),
            tls: match (&self.tls_ca, &self.tls_cert) {
                (None, None) => None,
                _ => Some(bot_bus::tls::client_config(&bot_bus::tls::TlsFiles {
                    ca_file: self.tls_ca.clone(),
                    cert_file: self.tls_cert.clone(),
                    key_file: self.tls_key.clone(),
                })?),
            },
            https,
            http_limits: bot_server::HttpLimits::default(),
            history,
            clock: bot_server::clock::system(),
            webhooks: file
                .webhooks
                .iter()
                .map(WebhookEntry::to_new)
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// The in-process Nagios bridge's settings, if one is asked for.
    pub(crate) fn nagios(&self, file: &ServerFile) -> Option<bot_cli::bridge::NagiosSettings> {
        let path = self
            .nagios_command_file
            .clone()
            .or_else(|| file.nagios_command_file.clone())?;
        let fact = self
            .nagios_host_fact
            .clone()
            .or_else(|| file.nagios_host_fact.clone())
            .unwrap_or_else(|| "hostname".into());
        Some(bot_cli::bridge::NagiosSettings::in_server(path, fact))
    }

    /// The sample retention: flags, else the file, else 24 h and 30 days.
    fn history(&self, file: &ServerFile) -> anyhow::Result<bot_server::metrics::HistoryLimits> {
        let defaults = bot_server::metrics::HistoryLimits::default();
        let pick = |flag: Option<std::time::Duration>,
                    text: &Option<String>,
                    key: &str,
                    default: std::time::Duration|
         -> anyhow::Result<std::time::Duration> {
            match (flag, text) {
                (Some(d), _) => Ok(d),
                (None, Some(t)) => humantime::parse_duration(t.trim())
                    .map_err(|e| anyhow::anyhow!("{key} = {t:?}: {e} (e.g. \"24h\", \"30d\")")),
                (None, None) => Ok(default),
            }
        };
        let raw = pick(
            self.raw_retention,
            &file.raw_retention,
            "raw_retention",
            defaults.raw_retention,
        )?;
        let rollup = pick(
            self.rollup_retention,
            &file.rollup_retention,
            "rollup_retention",
            defaults.rollup_retention,
        )?;
        anyhow::ensure!(
            raw >= std::time::Duration::from_secs(600),
            "raw_retention: {} is shorter than 10m",
            humantime::format_duration(raw)
        );
        anyhow::ensure!(
            rollup >= raw,
            "rollup_retention: {} is shorter than raw_retention ({})",
            humantime::format_duration(rollup),
            humantime::format_duration(raw)
        );
        Ok(bot_server::metrics::HistoryLimits {
            raw_retention: raw,
            rollup_retention: rollup,
            ..defaults
        })
    }
}

/// The API's TLS configuration with the certificate made in
/// DATA_DIR/broker/tls (shared with `bot up`'s broker: one CA for clients).
#[cfg(feature = "broker")]
fn generated_https(
    data_dir: &std::path::Path,
    http: SocketAddr,
) -> anyhow::Result<std::sync::Arc<bot_bus::rustls::ServerConfig>> {
    let dir = bot_auth::paths::broker_dir(data_dir).join("tls");
    let names: Vec<String> = (!http.ip().is_unspecified())
        .then(|| http.ip().to_string())
        .into_iter()
        .collect();
    let files =
        bot_broker::certs::local(&dir, &names).context("cannot make the API's TLS certificate")?;
    Ok(bot_bus::tls::server_config(&files.cert, &files.key, None)?)
}

#[cfg(not(feature = "broker"))]
fn generated_https(
    _: &std::path::Path,
    http: SocketAddr,
) -> anyhow::Result<std::sync::Arc<bot_bus::rustls::ServerConfig>> {
    anyhow::bail!(
        "the API on {http} needs HTTPS: give --https-cert and --https-key (this build cannot make \
         certificates), or --plain-http behind a TLS proxy"
    )
}

/// Options of `bot server`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Broker URL (mqtt://HOST:PORT); repeat for fallbacks, tried in order.
    /// Replaces the file's `brokers`; one of them is needed.
    #[arg(
        long = "broker",
        short = 'b',
        env = "BOT_BROKER",
        value_delimiter = ','
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
    use std::fmt::Write as _;
    use std::io::Write as _;
    let scheme = if server.https { "https" } else { "http" };
    let mut text = String::new();
    let _ = writeln!(text, "listening: {scheme}://{}/api", server.addr);
    let _ = writeln!(
        text,
        "dashboard: {scheme}://{}/ (log in with an API token)",
        server.addr
    );
    let _ = writeln!(
        text,
        "server key: {} (agents run tasks only if they trust it)",
        server.public_key
    );
    if let Some(token) = &server.generated_token {
        let _ = writeln!(text, "api token: {token}");
        let _ = writeln!(
            text,
            "try: BOT_TOKEN={token} bot task list --server {scheme}://{}",
            server.addr
        );
    }
    // One write, and a closed standard output (a supervisor that closed
    // it, `bot server | head -1`) must not stop a running server: the
    // error is ignored here, where println! would panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

pub(crate) async fn run(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let file = args.opts.file().map_err(crate::usage)?;
    let urls = if args.brokers.is_empty() {
        file.brokers.clone()
    } else {
        args.brokers.clone()
    };
    if urls.is_empty() {
        return Err(crate::usage(anyhow::anyhow!(
            "bot server needs a broker: --broker mqtt://HOST:PORT (or `brokers` in --server-config)"
        )));
    }
    let brokers = broker_urls(&urls).map_err(crate::usage)?;
    let nagios = args.opts.nagios(&file);
    let config = args.opts.config(file, brokers).map_err(crate::usage)?;
    let bus = (config.brokers.clone(), config.tls.clone());
    let server = bot_server::start(config, shutdown.clone()).await?;
    announce(&server);
    let bridge = spawn_nagios(nagios, &server, bus, &shutdown);
    server.wait().await?;
    if let Some(b) = bridge {
        let _ = b.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the in-process Nagios bridge, if asked for, on the server's
/// brokers with a client id of its own (`<server client id>-nagios`).
pub(crate) fn spawn_nagios(
    settings: Option<bot_cli::bridge::NagiosSettings>,
    server: &bot_server::Server,
    (brokers, tls): (
        Vec<BrokerUrl>,
        Option<std::sync::Arc<bot_bus::rustls::ClientConfig>>,
    ),
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let settings = settings?;
    let mut options = bot_bus::Options::new(format!("{}-nagios", server.client_id), brokers);
    options.tls = tls;
    let shutdown = shutdown.clone();
    Some(tokio::spawn(async move {
        let file = settings.command_file.display().to_string();
        // Not within a minute: the broker is not there yet; the session
        // keeps trying, so this is only logged.
        if let Err(e) = bot_cli::bridge::run_nagios(
            options,
            settings,
            std::time::Duration::from_secs(60),
            shutdown,
        )
        .await
        {
            tracing::error!(error = %e, %file, "the Nagios bridge stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_comes_from_flags_then_the_file_and_is_checked() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            server: ServerOpts,
        }
        let args = |v: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(v.iter().copied())).map(|c| c.server)
        };
        let file = |raw: Option<&str>, rollup: Option<&str>| ServerFile {
            raw_retention: raw.map(str::to_owned),
            rollup_retention: rollup.map(str::to_owned),
            ..ServerFile::default()
        };
        let none = args(&[]).expect("parse");
        let d = none.history(&file(None, None)).expect("defaults");
        assert_eq!(d.raw_retention, std::time::Duration::from_secs(24 * 3600));
        assert_eq!(
            d.rollup_retention,
            std::time::Duration::from_secs(30 * 24 * 3600)
        );
        let f = none.history(&file(Some("2d"), Some("60d"))).expect("file");
        assert_eq!(
            f.raw_retention,
            std::time::Duration::from_secs(2 * 24 * 3600)
        );
        let flag = args(&["--raw-retention", "1h"]).expect("parse");
        let h = flag.history(&file(Some("2d"), None)).expect("flag wins");
        assert_eq!(h.raw_retention, std::time::Duration::from_secs(3600));
        for (raw, rollup, says) in [
            (Some("soon"), None, "raw_retention = \"soon\""),
            (Some("1m"), None, "shorter than 10m"),
            (Some("2d"), Some("1d"), "shorter than raw_retention"),
        ] {
            let e = none
                .history(&file(raw, rollup))
                .expect_err("refused")
                .to_string();
            assert!(e.contains(says), "{e}");
        }
        assert!(args(&["--raw-retention", "forever"]).is_err());
    }

    #[test]
    fn the_example_config_parses_and_is_complete() {
        let text = include_str!("../../../docs/server.example.toml");
        let f = ServerFile::parse(text).expect("docs/server.example.toml parses");
        assert!(f.http.is_some() && f.db.is_some() && f.data_dir.is_some());
        assert!(!f.brokers.is_empty() && !f.tokens.is_empty());
        for t in &f.tokens {
            file_token(t).expect("example tokens are valid");
        }
        assert!(f.auto_accept.is_some(), "the example shows auto_accept");
        // Every key of the type is in the example (a sample with every
        // field set, built without `..Default`: a new key fails here).
        let p = || Some(PathBuf::from("/x"));
        let sample = ServerFile {
            http: Some("127.0.0.1:1".parse().expect("addr")),
            db: Some("sqlite:x".into()),
            data_dir: p(),
            auto_accept: Some(true),
            brokers: vec![],
            https: Some(true),
            https_cert: p(),
            https_key: p(),
            plain_http: Some(false),
            raw_retention: Some("24h".into()),
            rollup_retention: Some("30d".into()),
            tokens: vec![],
            nagios_command_file: p(),
            nagios_host_fact: Some("hostname".into()),
            webhooks: vec![WebhookEntry {
                name: "ops".into(),
                url: "https://x".into(),
                events: vec![],
                filter: None,
                secret: None,
                secret_file: None,
            }],
        };
        let keys = toml::Table::try_from(&sample).expect("serialises");
        assert_eq!(keys.len(), 15, "{keys:?}");
        for key in keys.keys() {
            assert!(
                text.contains(&format!("{key} =")) || text.contains(&format!("[[{key}]]")),
                "docs/server.example.toml lacks {key}"
            );
        }
    }

    #[test]
    fn tokens_carry_scopes_and_only_hashes() {
        let f = ServerFile::parse(
            "[[tokens]]\nname = \"ro\"\nsecret = \"0123456789abcdef\"\nscope = \"read\"\n\
             [[tokens]]\nname = \"h\"\nsecret_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n",
        )
        .expect("parses");
        let ro = file_token(&f.tokens[0]).expect("valid");
        assert_eq!(ro.scope, Scope::Read);
        assert_eq!(ro.sha256, bot_auth::digest_hex(b"0123456789abcdef"));
        assert!(!format!("{ro:?}").contains("0123456789abcdef"));
        let h = file_token(&f.tokens[1]).expect("valid");
        assert_eq!(h.scope, Scope::Admin, "the default scope");
        let bad = ServerFile::parse(
            "[[tokens]]\nname = \"x\"\nsecret = \"0123456789abcdef\"\nscope = \"root\"\n",
        )
        .expect("parses");
        let e = file_token(&bad.tokens[0]).expect_err("unknown scope");
        assert!(e.to_string().contains("root"), "{e}");
        let both = ServerFile::parse("[[tokens]]\nname = \"x\"\n").expect("parses");
        assert!(
            file_token(&both.tokens[0]).is_err(),
            "a token needs a secret"
        );
    }

    #[test]
    fn config_errors_name_the_bad_key() {
        let e = ServerFile::parse("htp = \"x\"").expect_err("unknown key");
        assert!(e.to_string().contains("htp"), "{e}");
        let e = ServerFile::parse("http = \"not an address\"").expect_err("bad address");
        assert!(e.to_string().contains("http"), "{e}");
        let e = token("ops", "short", Scope::Read, "[[tokens]]").expect_err("short secret");
        assert!(
            e.to_string().contains("ops") && e.to_string().contains("16"),
            "{e}"
        );
    }

    #[test]
    fn https_beyond_loopback_unless_plain_http() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let files = Some((PathBuf::from("c.pem"), PathBuf::from("k.pem")));
        assert_eq!(http_mode(lo, false, None, false), HttpMode::Plain);
        assert_eq!(http_mode(lo, true, None, false), HttpMode::HttpsGenerated);
        assert_eq!(http_mode(any, false, None, false), HttpMode::HttpsGenerated);
        assert_eq!(http_mode(any, false, None, true), HttpMode::Plain);
        assert!(matches!(
            http_mode(lo, false, files, false),
            HttpMode::Https { .. }
        ));
    }
}
