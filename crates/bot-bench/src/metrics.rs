//! `bot-sim metrics`: simulated agents that register (a signed retained
//! status each, with a key of its own) and then publish signed metric
//! batches as fast as the broker takes them, for the server's ingest
//! benchmark (issue 10: samples per second stored and queryable). Prints
//! `registered N` once the statuses are out and `sent B batches, S samples
//! in X s` at the end; the script around it reads the server's
//! `bot_samples_ingested_total`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bot_bus::{BrokerUrl, Options, Qos, Session};
use bot_proto::metrics::{Number, Sample};
use bot_proto::{Metrics, Status, topics};
use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Options of `bot-sim metrics`.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Broker URL (mqtt://HOST:PORT).
    #[arg(long, short = 'b')]
    broker: BrokerUrl,
    /// Simulated agents.
    #[arg(long, default_value_t = 1_000)]
    agents: usize,
    /// Samples per batch (one batch per agent per round).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Rounds (each agent sends one batch per round).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Seconds to wait after registering, before the batches.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Seconds per round, the batches of a round spread evenly over it
    /// (like agents measuring every interval); 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    interval: f64,
    /// Name prefix of the agents.
    #[arg(long, default_value = "ingest")]
    prefix: String,
}

/// A simulated agent: its id, name and signing key.
pub(crate) struct SimAgent {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) key: bot_auth::SecretKey,
}

/// Makes `n` agents named `<prefix>-<i>` and publishes a signed retained
/// status for each (the server registers and binds their keys).
pub(crate) async fn register(
    session: &Session,
    n: usize,
    prefix: &str,
) -> anyhow::Result<Vec<SimAgent>> {
    let now = bot_proto::now_ms();
    let agents: Vec<SimAgent> = (0..n)
        .map(|i| {
            Ok(SimAgent {
                id: uuid_like(i),
                name: format!("{prefix}-{i}"),
                key: bot_auth::SecretKey::generate()?,
            })
        })
        .collect::<Result<_, bot_auth::KeyError>>()?;
    for a in &agents {
        let mut status = Status {
            id: a.id.clone(),
            name: a.name.clone(),
            hostname: a.name.clone(),
            ips: vec![],
            version: "bench".into(),
            online: true,
            facts: [
                ("name".to_owned(), serde_json::json!(a.name)),
                ("id".to_owned(), serde_json::json!(a.id)),
            ]
            .into_iter()
            .collect(),
            tags: vec![],
            pools: vec![],
            started_ms: now,
            heartbeat_s: 0,
            created_ms: now,
            measure: None,
            key: Some(a.key.public().to_string()),
            sig: None,
        };
        status.sig = Some(bot_auth::sign::detached(&a.key, &status.signing_bytes()));
        session
            .publisher
            .publish(
                topics::status_topic(&a.id),
                status.encode(),
                Qos::AtLeastOnce,
                true,
            )
            .await
            .context("cannot publish a status")?;
    }
    Ok(agents)
}

/// Runs `bot-sim metrics`.
pub async fn run(args: MetricsArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let mut options = Options::new(
        format!("bot-sim-metrics-{:x}", std::process::id()),
        vec![args.broker.clone()],
    );
    options.queue = 64 * 1024;
    let mut session = Session::start(options, &shutdown);
    crate::ping_bench::wait_subscribed(&mut session, &args.broker).await?;
    let agents = register(&session, args.agents, &args.prefix).await?;
    println!("registered {}", agents.len());
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    // Rounds a second apart in the past (distinct times, no future dates).
    let t0 = bot_proto::now_ms() / 1000 * 1000 - (args.rounds as u64 + 1) * 1000;
    // Paced: each batch at its slot of the round.
    let slot = Duration::from_secs_f64(args.interval / agents.len().max(1) as f64);
    let started = Instant::now();
    let mut batches = 0u64;
    for r in 0..args.rounds {
        for (i, a) in agents.iter().enumerate() {
            if args.interval > 0.0 {
                let at =
                    started + Duration::from_secs_f64(args.interval) * r as u32 + slot * i as u32;
                tokio::time::sleep_until(at).await;
            }
            let samples = (0..args.samples)
                .map(|j| {
                    Sample::gauge(
                        format!("bench.m{}", j % 10),
                        Number::Real((r * j) as f64 * 0.5),
                    )
                    .label("n", (j / 10).to_string())
                })
                .collect();
            let mut m = Metrics {
                id: a.id.clone(),
                name: a.name.clone(),
                time_ms: t0 + r as u64 * 1000,
                interval_ms: 1000,
                samples,
                sig: None,
            };
            m.sig = Some(bot_auth::sign::detached(&a.key, &m.signing_bytes()));
            session
                .publisher
                .publish(
                    topics::metrics_topic(&a.id),
                    m.encode(),
                    Qos::AtLeastOnce,
                    false,
                )
                .await
                .context("cannot publish a batch")?;
            batches += 1;
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    let _ = session.publisher.flush(Duration::from_secs(30)).await;
    println!(
        "sent {batches} batches, {} samples in {:.2} s",
        batches * args.samples as u64,
        started.elapsed().as_secs_f64()
    );
    session.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A stable UUID-shaped id for agent `i` (what agents make: 8-4-4-4-12 hex).
fn uuid_like(i: usize) -> String {
    format!("00000000-0000-4000-8000-{:012x}", i)
}
