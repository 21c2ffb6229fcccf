//! `bot-sim burst`: a burst of signed `exec` requests at one agent, each
//! carrying a large environment (issue 12, items 6 and 7: bounded queues,
//! and memory given back after a burst). Sends `--count` requests of
//! `--env-bytes` each on the agent's request topic as fast as the broker
//! takes them, then counts the replies (ok, busy, other) until every one
//! came or `--timeout` passed. The key is `BOT_KEY` (the agent must trust
//! it). The agent's memory is read from /proc by the script around it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bot_bus::{BrokerUrl, Event, Options, Qos, Session};
use bot_proto::action::ExecArgs;
use bot_proto::{Action, Draft, Reply, ReplyStatus};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Options of `bot-sim burst`.
#[derive(Debug, Clone, Args)]
pub struct BurstArgs {
    /// Broker URL (mqtt://HOST:PORT).
    #[arg(long, short = 'b')]
    broker: BrokerUrl,
    /// The agent's id (`bot agent --print-id`).
    #[arg(long)]
    agent: String,
    /// Requests to send.
    #[arg(long, default_value_t = 3_000)]
    count: usize,
    /// Bytes of environment each request carries.
    #[arg(long, default_value_t = 100_000)]
    env_bytes: usize,
    /// Seconds to wait for the replies.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

/// Runs `bot-sim burst`.
pub async fn run(args: BurstArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let key_path = std::env::var("BOT_KEY").context("BOT_KEY names the operator key")?;
    let key = bot_auth::SecretKey::load(std::path::Path::new(&key_path))?;
    let signer = bot_auth::Signer::new(key, "bot-sim burst");
    let reply_to = format!("bench/burst/{:x}", std::process::id());
    let mut options = Options::new(
        format!("bot-sim-burst-{:x}", std::process::id()),
        vec![args.broker.clone()],
    );
    options.subscriptions = vec![(reply_to.clone(), Qos::AtMostOnce)];
    options.queue = args.count.saturating_mul(2).max(1024);
    let mut session = Session::start(options, &shutdown);
    crate::ping_bench::wait_subscribed(&mut session, &args.broker).await?;
    let topic = bot_proto::topics::request_agent_topic(&args.agent);
    let env: BTreeMap<String, String> =
        BTreeMap::from([("BURST".to_owned(), "x".repeat(args.env_bytes))]);
    let started = Instant::now();
    for _ in 0..args.count {
        let mut exec = ExecArgs::command(vec!["true".to_owned()]);
        exec.env = Some(env.clone());
        let req = signer.request(Draft {
            action: Action::Exec(exec),
            filter: None,
            reply_to: reply_to.clone(),
            ttl_ms: (args.timeout * 1000.0) as u64,
        });
        session
            .publisher
            .publish(topic.clone(), req.encode(), Qos::AtLeastOnce, false)
            .await
            .context("cannot publish")?;
    }
    let sent = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let (mut ok, mut busy, mut other) = (0usize, 0usize, 0usize);
    while ok + busy + other < args.count {
        let ev = tokio::select! {
            ev = session.events.recv() => ev,
            () = tokio::time::sleep_until(deadline) => break,
            () = shutdown.cancelled() => break,
        };
        let Some(Event::Message(m)) = ev else {
            continue;
        };
        match Reply::decode(&m.payload) {
            Ok(r) if r.status == ReplyStatus::Ok => ok += 1,
            Ok(r)
                if r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("busy") || e.contains("free exec slot")) =>
            {
                busy += 1
            }
            Ok(_) => other += 1,
            Err(_) => {}
        }
    }
    println!(
        "sent {} requests of {} bytes of env in {:.1} s; replies: {ok} ok, {busy} busy, {other} other, {} none, after {:.1} s",
        args.count,
        args.env_bytes,
        sent.as_secs_f64(),
        args.count - ok - busy - other,
        started.elapsed().as_secs_f64()
    );
    session.close().await;
    Ok(ExitCode::SUCCESS)
}
