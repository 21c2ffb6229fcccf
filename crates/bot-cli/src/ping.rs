//! `bot ping` (classic): publish `PING` on `BUS`, collect the `'<name>':PONG`
//! replies on `RES` for `--wait` seconds (or until `--expect` agents have
//! answered), print each agent with its round-trip time, then a count.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use bot_bus::{Event, Qos};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// Ping every agent (or one with -t BUS/<name>) and list who answered.
#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Seconds to collect replies.
    #[arg(short = 'w', long, default_value_t = 2.0, value_parser = crate::positive_secs)]
    pub wait: f64,
    /// Stop as soon as this many agents have answered.
    #[arg(short = 'n', long)]
    pub expect: Option<usize>,
    /// Topic to send PING on.
    #[arg(short = 't', long, default_value = "BUS", value_parser = crate::publish::publish_topic)]
    pub topic: String,
    /// Print only the summary line.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Extracts the agent name from a classic PONG reply: `'<name>':PONG`.
pub fn pong_name(payload: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(payload).ok()?;
    let inner = text.strip_prefix('\'')?.strip_suffix("':PONG")?;
    (!inner.is_empty()).then_some(inner)
}

/// Runs `bot ping`.
pub async fn run(args: PingArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let mut session = crate::connect(
        &args.bus,
        "ping",
        vec![("RES".to_owned(), Qos::AtMostOnce)],
        &shutdown,
    )
    .await?;
    let sent = Instant::now();
    crate::publish_once(&session, &args.topic, b"PING".to_vec(), Qos::AtMostOnce).await?;
    let deadline = sent + Duration::from_secs_f64(args.wait);
    let mut seen: HashMap<String, Duration> = HashMap::new();
    let mut last = Duration::ZERO;
    loop {
        if args.expect.is_some_and(|n| seen.len() >= n) {
            break;
        }
        let ev = tokio::select! {
            ev = session.events.recv() => ev,
            () = tokio::time::sleep_until(deadline) => break,
            () = shutdown.cancelled() => break,
        };
        let Some(Event::Message(m)) = ev else {
            if ev.is_none() {
                break;
            }
            continue;
        };
        if let Some(name) = pong_name(&m.payload) {
            let rtt = sent.elapsed();
            if !seen.contains_key(name) {
                last = rtt;
                if !args.quiet {
                    println!("{name:<32} {:>9.2} ms", rtt.as_secs_f64() * 1000.0);
                }
                seen.insert(name.to_owned(), rtt);
            }
        }
    }
    session.close().await;
    let n = seen.len();
    println!(
        "{n} agent{} answered; last reply after {:.2} ms",
        if n == 1 { "" } else { "s" },
        last.as_secs_f64() * 1000.0
    );
    if n == 0 {
        eprintln!(
            "no agent answered PING on {} within {} s",
            args.topic, args.wait
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(want) = args.expect
        && n < want
    {
        eprintln!(
            "only {n} of {want} expected agents answered within {} s",
            args.wait
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_names() {
        assert_eq!(pong_name(b"'web1':PONG"), Some("web1"));
        assert_eq!(pong_name(b"'a b':PONG"), Some("a b"));
        assert_eq!(pong_name(b"'':PONG"), None);
        assert_eq!(pong_name(b"4:"), None);
        assert_eq!(pong_name(b"web1:PONG"), None);
        assert_eq!(pong_name(&[0xff, 0xfe]), None);
    }
}
