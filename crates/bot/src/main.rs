//! `bot`, the one binary: parses argv and env, layers configuration, sets up
//! logging, owns the signals and the exit code, and hands each subcommand what
//! it needs. The work itself lives in the library crates:
//! `bot-agent` (agent), `bot-broker` (embedded broker), `bot-cli` (operator
//! commands).
//!
//! Features: `broker` (default) links the embedded broker for `bot up`;
//! `server` (default) links the server (registry, task engine, HTTP API,
//! database) for `bot server` and `bot up`.
//! `cargo build --profile fleet -p bot --no-default-features` builds a small
//! `bot` for fleet nodes (agent and CLI): its agent needs about half the
//! resident memory (docs/benchmarks.md).
//!
//! Exit codes: 0 success; 1 the operation failed (nobody answered, cannot
//! connect, runtime error); 2 bad usage or configuration.

/// jemalloc, with background threads that give freed memory back after
/// a burst; glibc's malloc kept it (docs/benchmarks.md, section 7).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "broker")]
mod certs;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "broker")]
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bot_agent::AgentConfig;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Bus of Things: fleet command-and-control and monitoring over MQTT.
#[derive(Debug, Parser)]
#[command(name = "bot", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing filter such as
    /// `bot_agent=debug`). Logs go to standard error.
    /// Default: info for `up`, `server` and `agent`, warn for the other commands.
    #[arg(long, global = true, env = "BOT_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine: an embedded MQTT broker, the server and a local agent.
    #[cfg(feature = "broker")]
    Up(Box<up::UpArgs>),
    /// Run the server alone against a broker: registry, task engine, HTTP API.
    #[cfg(feature = "server")]
    Server(server::ServerArgs),
    /// Run the agent: answer the bus, measure while selected.
    Agent(AgentArgs),
    /// Publish a message (by default a classic program on BUS).
    Pub(bot_cli::publish::PubArgs),
    /// Print messages from the bus as `topic payload` lines (default RES/# and DATA/#).
    Listen(bot_cli::listen::ListenArgs),
    /// Ping agents (-F FILTER) and list who answered and who did not.
    Ping(bot_cli::ping::PingArgs),
    /// Show fact values across the fleet with counts.
    Facts(bot_cli::facts::FactsArgs),
    /// Show one agent in full.
    Inventory(bot_cli::inventory::InventoryArgs),
    /// Run a command on many agents: exit codes, output, summary (Ctrl-C cancels what still runs, Ctrl-C twice quits).
    Run(bot_cli::run::RunArgs),
    /// Run a named check on agents (Nagios plugin semantics) and list their states.
    Check(bot_cli::check::CheckCmdArgs),
    /// Print replies sent to a --reply-to topic (asynchronous results).
    Results(bot_cli::results::ResultsArgs),
    /// Tasks on the server: submit, list, show, watch, cancel, retry.
    Task(bot_cli::task::TaskArgs),
    /// Operator keys that sign requests: new, list, show.
    Keys(bot_cli::keys::KeysArgs),
    /// Agents in the server's registry: accept a pending or changed key.
    Agents(bot_cli::agents::AgentsArgs),
    /// Agents' live measuring settings on the server: show, set.
    Config(bot_cli::config::ConfigArgs),
    /// Schedules on the server: checks or commands every interval or on a crontab line.
    Schedule(bot_cli::schedule::ScheduleArgs),
    /// What is wrong now: the state of every scheduled check, worst first (exit 1 if any is not OK).
    Checks(bot_cli::schedule::ChecksArgs),
    /// Bridges from the bus to other systems: nagios (passive check results).
    Bridge(bot_cli::bridge::BridgeArgs),
    /// The embedded broker's logins (secure `bot up`): add an agent.
    #[cfg(feature = "broker")]
    Broker(up::BrokerArgs),
    /// TLS certificates for a fleet: a CA, then broker and client certificates.
    #[cfg(feature = "broker")]
    Certs(certs::CertsArgs),
}

/// Agent options; each overrides the same key of the config file.
#[derive(Debug, Clone, Args)]
pub(crate) struct AgentArgs {
    /// Configuration file (TOML; see docs/agent.example.toml).
    #[arg(short = 'c', long, env = "BOT_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Broker URL (mqtt://HOST:PORT); repeat for fallbacks, tried in order.
    #[arg(
        long = "broker",
        short = 'b',
        env = "BOT_BROKER",
        value_delimiter = ','
    )]
    brokers: Vec<String>,
    /// Agent name (default: the host name).
    #[arg(long, env = "BOT_NAME")]
    name: Option<String>,
    /// Directory of plugin executables (`*_enabled` run while measuring).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Measuring interval in seconds (0.1..86400).
    #[arg(long)]
    interval: Option<f64>,
    /// State directory (the agent's persistent id and the ids of the requests it ran).
    #[arg(long, env = "BOT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Print this agent's id (made now if it has none yet) and exit: what
    /// `bot broker add-agent --id ID` registers on a secure broker.
    #[arg(long, conflicts_with = "print_config")]
    print_id: bool,
}

impl AgentArgs {
    /// File, then flags.
    pub(crate) fn load(&self) -> Result<AgentConfig, bot_agent::ConfigError> {
        let mut c = match &self.config {
            Some(path) => AgentConfig::from_file(path)?,
            None => AgentConfig::default(),
        };
        if !self.brokers.is_empty() {
            c.brokers = self.brokers.clone();
        }
        if let Some(n) = &self.name {
            c.name = Some(n.clone());
        }
        if let Some(p) = &self.plugins {
            c.plugins = Some(p.clone());
        }
        if let Some(i) = self.interval {
            c.interval = i;
        }
        if let Some(d) = &self.state_dir {
            c.state_dir = Some(d.clone());
        }
        Ok(c)
    }
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let default_log = match cli.command {
        #[cfg(feature = "broker")]
        Command::Up(_) => "info",
        Command::Agent(_) => "info",
        #[cfg(feature = "server")]
        Command::Server(_) => "info",
        _ => "warn",
    };
    if let Err(e) = init_logging(cli.log.as_deref().unwrap_or(default_log)) {
        eprintln!("bot: {e:#}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bot: {e:#}");
            if e.downcast_ref::<bot_agent::ConfigError>().is_some()
                || e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<bot_cli::task::client::CallError>()
                    .is_some_and(bot_cli::task::client::CallError::is_usage)
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `bot ping | head -1`: once the reader has gone, printing fails with a
/// broken pipe, and Rust's `print!` panics on that. Exit quietly instead,
/// with 141 (128 + SIGPIPE), as a Unix tool killed by SIGPIPE does. Any
/// other panic is reported as usual.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// A configuration or usage problem found after argument parsing (exit 2).
#[derive(Debug)]
pub(crate) struct UsageError(pub anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// Marks `e` as a usage or configuration error (exit code 2).
#[cfg_attr(not(any(feature = "broker", feature = "server")), expect(dead_code))]
pub(crate) fn usage(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(UsageError(e))
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    // The embedded broker logs a lot at info; keep it at warn unless asked.
    let spec = if filter.contains("rmqtt") {
        filter.to_owned()
    } else {
        format!("{filter},rmqtt=warn,rmqtt_net=warn")
    };
    let filter =
        EnvFilter::try_new(&spec).with_context(|| format!("invalid log filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    raise_fd_limit();
    match cli.command {
        Command::Agent(args) => {
            let config = args.load()?;
            if args.print_config {
                print!("{}", config.to_toml());
                return Ok(ExitCode::SUCCESS);
            }
            if args.print_id {
                let dir = config
                    .state_dir
                    .clone()
                    .unwrap_or_else(bot_agent::config::default_state_dir);
                println!("{}", bot_agent::identity::load_or_create(&dir)?);
                return Ok(ExitCode::SUCCESS);
            }
            let valid = config.validate()?;
            // The agent stays small: one thread.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let shutdown = signals();
                bot_agent::run(valid, shutdown).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "broker")]
        Command::Up(args) => multi_thread()?.block_on(up::run(*args, signals_lazy())),
        #[cfg(feature = "server")]
        Command::Server(args) => {
            multi_thread()?.block_on(async { server::run(args, signals()).await })
        }
        Command::Pub(args) => run_cli(async { bot_cli::publish::run(args, signals()).await })?,
        Command::Listen(args) => run_cli(async { bot_cli::listen::run(args, signals()).await })?,
        Command::Ping(args) => run_cli(async { bot_cli::ping::run(args, signals()).await })?,
        Command::Facts(args) => run_cli(async { bot_cli::facts::run(args, signals()).await })?,
        Command::Inventory(args) => {
            run_cli(async { bot_cli::inventory::run(args, signals()).await })?
        }
        Command::Run(args) => run_cli(async { bot_cli::run::run(args, signals()).await })?,
        Command::Check(args) => run_cli(async { bot_cli::check::run(args, signals()).await })?,
        Command::Results(args) => run_cli(async { bot_cli::results::run(args, signals()).await })?,
        Command::Task(args) => run_cli(async { bot_cli::task::run(args, signals()).await })?,
        Command::Keys(args) => bot_cli::keys::run(args),
        #[cfg(feature = "broker")]
        Command::Broker(args) => up::broker_command(args),
        #[cfg(feature = "broker")]
        Command::Certs(args) => certs::run(args),
        Command::Agents(args) => run_cli(async { bot_cli::agents::run(args, signals()).await })?,
        Command::Config(args) => run_cli(async { bot_cli::config::run(args, signals()).await })?,
        Command::Schedule(args) => {
            run_cli(async { bot_cli::schedule::run(args, signals()).await })?
        }
        Command::Bridge(args) => run_cli(async { bot_cli::bridge::run(args, signals()).await })?,
        Command::Checks(args) => {
            run_cli(async { bot_cli::schedule::run_checks(args, signals()).await })?
        }
    }
}

/// Runs an operator command on a one-thread runtime, then drops the
/// runtime without waiting for blocking tasks: an HTTP call still hanging on
/// an unresponsive server (ureq runs on a blocking thread) must not hold
/// the process after Ctrl-C until its own timeout.
fn run_cli<F: std::future::Future>(f: F) -> std::io::Result<F::Output> {
    let rt = current_thread()?;
    let out = rt.block_on(f);
    rt.shutdown_background();
    Ok(out)
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(any(feature = "broker", feature = "server"))]
fn multi_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// A token cancelled on the first SIGINT or SIGTERM; a second signal exits at
/// once (code 130). Must be called inside a runtime.
fn signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        tracing::info!("stopping (signal again to force)");
        t.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        std::process::exit(130);
    });
    token
}

/// `signals()` for callers that start outside the runtime.
#[cfg(feature = "broker")]
fn signals_lazy() -> impl FnOnce() -> CancellationToken {
    signals
}

/// Many agents or connections need many descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Grace period for a clean shutdown before giving up on stragglers.
#[cfg(feature = "broker")]
pub(crate) const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
