//! `bot-sim ping-bench`: times the classic fan-out, i.e. how long a `PING` on
//! `BUS` takes until N distinct `'<name>':PONG` replies arrived on `RES`,
//! several runs over one connection, with the median, minimum and maximum.
//! (`bot ping --expect N` reports the same figure for a single run, as users
//! see it, including its own connection set-up before the clock starts.)

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bot_bus::{BrokerUrl, Event, Options, Qos, Session};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Options of `bot-sim ping-bench`.
#[derive(Debug, Clone, Args)]
pub struct PingBenchArgs {
    /// Broker URL (mqtt://HOST:PORT).
    #[arg(long, short = 'b')]
    broker: BrokerUrl,
    /// Distinct PONG replies that end a run.
    #[arg(long, short = 'n')]
    count: usize,
    /// Number of runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds allowed per run.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Pause between runs, in milliseconds (lets stragglers drain).
    #[arg(long, default_value_t = 500)]
    pause_ms: u64,
}

/// Extracts the agent name from a classic PONG reply: `'<name>':PONG`.
fn pong_name(payload: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(payload).ok()?;
    let inner = text.strip_prefix('\'')?.strip_suffix("':PONG")?;
    (!inner.is_empty()).then_some(inner)
}

/// Runs `bot-sim ping-bench`.
pub async fn run(args: PingBenchArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.count > 0 && args.runs > 0,
        "--count and --runs must be at least 1"
    );
    let mut options = Options::new(
        format!("bot-sim-ping-{:x}", std::process::id()),
        vec![args.broker.clone()],
    );
    options.subscriptions = vec![("RES".to_owned(), Qos::AtMostOnce)];
    // Room for every reply of a run: a full queue drops replies.
    options.queue = args.count.saturating_mul(2).max(1024);
    let mut session = Session::start(options, &shutdown);
    wait_subscribed(&mut session, &args.broker).await?;

    let timeout = Duration::from_secs_f64(args.timeout);
    let mut times = Vec::with_capacity(args.runs);
    let mut incomplete = 0usize;
    for run in 1..=args.runs {
        if shutdown.is_cancelled() {
            break;
        }
        // Forget replies left over from the previous run.
        while session.events.try_recv().is_ok() {}
        let sent = Instant::now();
        session
            .publisher
            .publish("BUS", b"PING".to_vec(), Qos::AtMostOnce, false)
            .await
            .context("cannot publish PING on BUS")?;
        let deadline = sent + timeout;
        let mut seen: HashSet<String> = HashSet::with_capacity(args.count);
        let mut last = Duration::ZERO;
        while seen.len() < args.count {
            let ev = tokio::select! {
                ev = session.events.recv() => ev,
                () = tokio::time::sleep_until(deadline) => break,
                () = shutdown.cancelled() => break,
            };
            match ev {
                Some(Event::Message(m)) => {
                    if let Some(name) = pong_name(&m.payload)
                        && seen.insert(name.to_owned())
                    {
                        last = sent.elapsed();
                    }
                }
                Some(_) => {}
                None => bail!("the bus session stopped"),
            }
        }
        let ms = last.as_secs_f64() * 1000.0;
        if seen.len() < args.count {
            incomplete += 1;
            println!(
                "run {run}: only {} of {} PONGs within {} s (last after {ms:.2} ms)",
                seen.len(),
                args.count,
                args.timeout
            );
        } else {
            println!("run {run}: {} PONGs, last after {ms:.2} ms", seen.len());
            times.push(ms);
        }
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let dropped = session.dropped();
    session.close().await;
    if dropped > 0 {
        eprintln!("bot-sim: {dropped} incoming messages dropped by the session queue");
    }
    if let Some((median, min, max)) = summary(&mut times) {
        println!(
            "complete runs: {} of {}; median {median:.2} ms, min {min:.2} ms, max {max:.2} ms",
            times.len(),
            times.len() + incomplete
        );
    } else {
        println!("complete runs: 0 of {incomplete}");
    }
    Ok(if incomplete == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) async fn wait_subscribed(
    session: &mut Session,
    broker: &BrokerUrl,
) -> anyhow::Result<()> {
    let mut last_error = String::from("no answer");
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = session.events.recv().await {
            match ev {
                Event::Subscribed => return true,
                Event::Disconnected { reason, .. } => last_error = reason,
                _ => {}
            }
        }
        false
    })
    .await;
    match ok {
        Ok(true) => Ok(()),
        _ => bail!("cannot subscribe on {broker} within 10 s (last error: {last_error})"),
    }
}

/// Median (mean of the two middle values for an even count), min, max.
fn summary(times: &mut [f64]) -> Option<(f64, f64, f64)> {
    if times.is_empty() {
        return None;
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        f64::midpoint(times[n / 2 - 1], times[n / 2])
    };
    Some((median, times[0], times[n - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_names() {
        assert_eq!(pong_name(b"'sim-3':PONG"), Some("sim-3"));
        assert_eq!(pong_name(b"'':PONG"), None);
        assert_eq!(pong_name(b"4:"), None);
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(&mut []), None);
        assert_eq!(summary(&mut [3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(summary(&mut [4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
    }
}
