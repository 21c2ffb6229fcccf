//! `bot ping`: ask every agent matching `-F FILTER` (default: all) to answer,
//! through the structured protocol, and list who answered with round-trip
//! times, then who did not (the expected set comes from the agents' retained
//! status). `--classic` speaks the ancestor's protocol instead: publish `PING`
//! on `BUS`, collect `'<name>':PONG` replies on `RES` for `--wait` seconds (or
//! until `--expect` agents have answered).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use bot_bus::{Event, Qos};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// Ping agents and list who answered and who did not.
#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Only agents matching this filter (e.g. 'os=linux and cpus>=4', 'web*', 'tag:db'); repeat to narrow (joined with `and`).
    #[arg(short = 'F', long, conflicts_with = "classic")]
    pub filter: Vec<String>,
    /// Use the classic protocol: PING on BUS (or -t), replies on RES.
    #[arg(long)]
    pub classic: bool,
    /// Only online agents: matching agents that are known but offline are
    /// not reported and do not make the exit code 1.
    #[arg(long, conflicts_with = "classic")]
    pub online: bool,
    /// Print the result as JSON (structured ping only).
    #[arg(long, conflicts_with = "classic")]
    pub json: bool,
    /// Seconds to collect replies.
    #[arg(short = 'w', long, default_value_t = 2.0, value_parser = crate::positive_secs)]
    pub wait: f64,
    /// Stop as soon as this many agents have answered.
    #[arg(short = 'n', long)]
    pub expect: Option<usize>,
    /// Topic to send the classic PING on.
    #[arg(short = 't', long, default_value = "BUS", value_parser = crate::publish::publish_topic, requires = "classic")]
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
    if args.classic {
        classic(args, shutdown).await
    } else {
        structured(args, shutdown).await
    }
}

async fn structured(args: PingArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    use crate::fleet::{self, Client};
    let filter = crate::fleet::join_filters(&args.filter)
        .as_deref()
        .map(fleet::parse_filter)
        .transpose()?;
    let signer = args.bus.signer()?;
    let mut client = Client::connect(&args.bus, "ping", &shutdown).await?;
    let wait = Duration::from_secs_f64(args.wait);
    // The request goes out first and discovery runs while agents answer
    // (the agents apply the filter themselves; replies that come during
    // discovery are kept for `collect`): the command takes the longer of
    // the two, not their sum.
    let req = fleet::request(
        &signer,
        bot_proto::Action::Ping(bot_proto::action::PingArgs {}),
        crate::fleet::join_filters(&args.filter),
        &client.reply_topic,
        wait.max(Duration::from_secs(10)),
    );
    let ids = std::collections::HashSet::from([req.id.clone()]);
    client.start_discovery().await?;
    let sent = Instant::now();
    client
        .send(bot_proto::topics::REQUEST_BROADCAST, &req)
        .await?;
    let agents = client.discover(Duration::from_secs(5)).await?;
    let expected = fleet::expected(&agents, filter.as_ref());
    let offline = if args.online {
        Vec::new()
    } else {
        fleet::offline(&agents, filter.as_ref())
    };
    let want = args.expect.map(|n| n.max(expected.len()));
    let replies = client
        .collect(
            &ids,
            Some(&expected),
            want,
            wait,
            args.quiet || args.json,
            &shutdown,
        )
        .await;
    // When everyone answered, collect returned at the last reply.
    let last = sent.elapsed();
    let rtt = |r: &bot_proto::envelope::Reply| r.received_ms.saturating_sub(req.created_ms);
    let missing = fleet::no_reply(&expected, &replies);
    client.session.close().await;
    if args.json {
        let v = serde_json::json!({
            "request_id": req.id,
            "replies": replies.iter().map(|r| serde_json::json!({"id": r.agent_id, "name": r.agent_name, "status": fleet::status_word(r.status), "rtt_ms": rtt(r)})).collect::<Vec<_>>(),
            "no_reply": missing.iter().map(|(id, name)| serde_json::json!({"id": id, "name": name})).collect::<Vec<_>>(),
            "offline": fleet::offline_json(&offline),
        });
        println!("{}", fleet::to_json(&v)?);
    } else {
        if !args.quiet {
            for r in &replies {
                println!(
                    "{:<32} {:>9} ms",
                    fleet::label(&r.agent_name, &r.agent_id),
                    rtt(r)
                );
            }
        }
        // Time to the last reply as seen by this client (not the agents' clocks).
        println!(
            "{} of {} expected agent{} answered; {} {:.2} ms{}",
            replies.len(),
            expected.len(),
            if expected.len() == 1 { "" } else { "s" },
            if replies.len() >= expected.len() {
                "last reply after"
            } else {
                "gave up after"
            },
            last.as_secs_f64() * 1000.0,
            if offline.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} offline (of {} matching)",
                    offline.len(),
                    expected.len() + offline.len()
                )
            }
        );
    }
    let all = fleet::report_missing(&missing);
    let none_offline = fleet::report_offline(&offline);
    if !none_offline {
        return Ok(ExitCode::from(1));
    }
    if replies.is_empty() && expected.is_empty() {
        eprintln!(
            "no known agent matches{}",
            crate::fleet::join_filters(&args.filter)
                .as_deref()
                .map(|f| format!(" filter {f:?}"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if all && !replies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn classic(args: PingArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
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
