//! `bot listen`: print what flows on the bus, one `topic payload` line per
//! message, like `mosquitto_sub -v`.

use std::io::Write;
use std::process::ExitCode;

use bot_bus::{Event, Qos};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// Print messages from the bus as `topic payload` lines.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Exit after this many messages.
    #[arg(short = 'C', long)]
    pub count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(short = 'W', long, value_parser = crate::positive_secs)]
    pub timeout: Option<f64>,
    /// Topic filters (MQTT wildcards allowed).
    #[arg(default_values_t = ["RES/#".to_string(), "DATA/#".to_string()], value_parser = filter)]
    pub topics: Vec<String>,
}

/// Validates a subscription filter: `#` only last and alone in its level, `+` alone in its level.
pub fn filter(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 65_535 {
        return Err(format!("topic filter {s:?} must be 1..65535 bytes"));
    }
    let levels: Vec<&str> = s.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(format!(
                "topic filter {s:?}: '#' must be a whole last level"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("topic filter {s:?}: '+' must be a whole level"));
        }
    }
    Ok(s.to_owned())
}

/// Runs `bot listen`.
pub async fn run(args: ListenArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let subs = args
        .topics
        .iter()
        .map(|t| (t.clone(), Qos::AtMostOnce))
        .collect();
    let mut session = crate::connect(&args.bus, "listen", subs, &shutdown).await?;
    eprintln!("listening on {}", args.topics.join(" "));
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + std::time::Duration::from_secs_f64(s));
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|c| seen >= c) {
            break;
        }
        let ev = tokio::select! {
            ev = session.events.recv() => ev,
            () = shutdown.cancelled() => break,
            () = sleep_until(deadline) => break,
        };
        match ev {
            Some(Event::Message(m)) => {
                seen += 1;
                let mut out = stdout.lock();
                // Raw bytes, like mosquitto_sub; a failed write (closed pipe) ends the command.
                let ok = out.write_all(m.topic.as_bytes()).is_ok()
                    && out.write_all(b" ").is_ok()
                    && out.write_all(&m.payload).is_ok()
                    && out.write_all(b"\n").is_ok()
                    && out.flush().is_ok();
                if !ok {
                    break;
                }
            }
            Some(Event::Disconnected { broker, reason }) => {
                eprintln!("disconnected from {broker}: {reason}; reconnecting")
            }
            Some(_) => {}
            None => break,
        }
    }
    session.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
