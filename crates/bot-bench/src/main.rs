//! `bot-sim`, a development tool to benchmark the bus without a fleet: it
//! simulates many classic agents in one process (`agents`), and times how long
//! a `PING` on `BUS` takes to collect every `PONG` on `RES` (`ping-bench`).
//! See docs/benchmarks.md and scripts/bench/ for how the figures are taken.
//!
//! Layout: `agents.rs` — the simulated agents; `ping_bench.rs` — the timing
//! client; `crypto.rs` — the cost of signing and verifying (`crypto`). Both talk to the broker through `bot-bus` only, like the real
//! agent and CLI.

mod agents;
mod burst;
mod checks;
mod crypto;
mod metrics;
mod ping_bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Simulate classic agents in one process and time PING fan-out.
#[derive(Debug, Parser)]
#[command(name = "bot-sim", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run N simulated agents (one MQTT connection each) until Ctrl-C / SIGTERM.
    Agents(agents::AgentsArgs),
    /// Publish PING on BUS several times; time until N distinct PONGs arrived.
    PingBench(ping_bench::PingBenchArgs),
    /// Time signing and verifying requests and replies (µs per operation).
    Crypto(crypto::CryptoArgs),
    /// A burst of signed exec requests with a large environment at one agent.
    Burst(burst::BurstArgs),
    /// Simulated agents publishing signed metric batches (the ingest benchmark).
    Metrics(metrics::MetricsArgs),
    /// Simulated agents answering scheduled checks, or a blast of results (the checks benchmarks).
    Checks(checks::ChecksArgs),
    /// An HTTP receiver answering 204 and counting (the webhook benchmark).
    Sink(checks::SinkArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Crypto(args) = cli.command {
        return match crypto::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("bot-sim: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bot-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let shutdown = signals()?;
        match cli.command {
            Command::Agents(args) => agents::run(args, shutdown).await,
            Command::PingBench(args) => ping_bench::run(args, shutdown).await,
            Command::Crypto(_) => Ok(ExitCode::SUCCESS),
            Command::Burst(args) => burst::run(args, shutdown).await,
            Command::Metrics(args) => metrics::run(args, shutdown).await,
            Command::Checks(args) => checks::run(args, shutdown).await,
            Command::Sink(args) => checks::sink(args, shutdown).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bot-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A token cancelled on the first SIGINT or SIGTERM; a second one exits at once.
fn signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        t.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        std::process::exit(130);
    });
    Ok(token)
}

/// A thousand connections need a thousand descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
