//! `bot-sim agents`: N simulated classic agents in one process, so that the
//! bus can be benchmarked with a fleet of a thousand on one machine.
//!
//! Each simulated agent is what the real agent is minus measuring: its own
//! `bot_bus::Session` (its own MQTT connection, subscribed to `BUS` and
//! `BUS/<name>` at QoS 0), its own `bot_lang::Machine`, and the same reply
//! path as `bot-agent`'s `classic.rs` (every reply published on `RES` at
//! QoS 0, not retained). Nothing is shared between them but the code.
//! Connections are opened at a bounded rate so the broker is not stormed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bot_bus::{BrokerUrl, Event, Options, Qos, Session};
use bot_lang::{AgentInfo, Limits, Machine};
use clap::Args;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

const TOPIC_BUS: &str = "BUS";
const TOPIC_RES: &str = "RES";

/// Options of `bot-sim agents`.
#[derive(Debug, Clone, Args)]
pub struct AgentsArgs {
    /// Broker URL (mqtt://HOST:PORT).
    #[arg(long, short = 'b')]
    broker: BrokerUrl,
    /// Number of simulated agents.
    #[arg(long, short = 'n')]
    count: usize,
    /// Agents are named `<prefix>-<i>`, i = 0..count.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// New connections started per second.
    #[arg(long, default_value_t = 500.0, value_parser = positive_rate)]
    connect_rate: f64,
    /// Incoming messages each agent buffers before dropping (see bot-bus).
    #[arg(long, default_value_t = 64)]
    queue: usize,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 => Ok(v),
        _ => Err(format!("{s:?} is not a rate of at least 1 per second")),
    }
}

/// Counters shared by every simulated agent (statistics only).
#[derive(Debug, Default)]
struct Stats {
    disconnects: AtomicU64,
    messages: AtomicU64,
    replies: AtomicU64,
    unsent: AtomicU64,
    dropped: AtomicU64,
}

/// Runs `bot-sim agents` until `shutdown`.
pub async fn run(args: AgentsArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    let stats = Arc::new(Stats::default());
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let started = Instant::now();

    // Start the agents at the bounded rate, in a task of its own so that the
    // readiness count below runs meanwhile.
    let starter = {
        let args = args.clone();
        let stats = stats.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut agents = JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.connect_rate));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            for i in 0..args.count {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                let name = format!("{}-{i}", args.prefix);
                agents.spawn(agent(
                    name,
                    args.broker.clone(),
                    args.queue,
                    shutdown.clone(),
                    ready_tx.clone(),
                    stats.clone(),
                ));
            }
            agents
        })
    };

    let mut ready = 0usize;
    let mut progress = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(2),
        Duration::from_secs(2),
    );
    while ready < args.count {
        tokio::select! {
            r = ready_rx.recv() => match r {
                Some(()) => ready += 1,
                None => break,
            },
            _ = progress.tick() => eprintln!(
                "bot-sim: {ready}/{} agents subscribed after {:.1} s ({} disconnects)",
                args.count,
                started.elapsed().as_secs_f64(),
                stats.disconnects.load(Ordering::Relaxed),
            ),
            () = shutdown.cancelled() => break,
        }
    }
    if ready == args.count {
        println!("ready: {ready} agents subscribed");
        eprintln!(
            "bot-sim: all subscribed after {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }

    shutdown.cancelled().await;
    let mut agents = starter.await?;
    // Every session disconnects cleanly; do not wait forever on a dead broker.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while agents.join_next().await.is_some() {}
    })
    .await;
    eprintln!(
        "bot-sim: stopped; {} messages handled, {} replies published, {} replies not sent, \
         {} incoming dropped (slow consumer), {} disconnects",
        stats.messages.load(Ordering::Relaxed),
        stats.replies.load(Ordering::Relaxed),
        stats.unsent.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        stats.disconnects.load(Ordering::Relaxed),
    );
    Ok(if ready == args.count {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One simulated agent: a session, a machine, and the classic reply path.
async fn agent(
    name: String,
    broker: BrokerUrl,
    queue: usize,
    shutdown: CancellationToken,
    ready: mpsc::UnboundedSender<()>,
    stats: Arc<Stats>,
) {
    let own_topic = format!("{TOPIC_BUS}/{name}");
    // Unique per process and name, so that two simulators can share a broker.
    let client_id = format!("bot-sim-{name}-{:x}", std::process::id());
    let mut options = Options::new(client_id, vec![broker]);
    options.subscriptions = vec![
        (TOPIC_BUS.to_owned(), Qos::AtMostOnce),
        (own_topic.clone(), Qos::AtMostOnce),
    ];
    options.queue = queue;
    let mut session = Session::start(options, &shutdown);
    let mut machine = Machine::new(
        AgentInfo {
            name,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: vec!["classic".to_owned()],
        },
        Limits::default(),
        bot_lang::DEFAULT_INTERVAL,
    );
    let mut announced = false;
    loop {
        let event = tokio::select! {
            event = session.events.recv() => event,
            () = shutdown.cancelled() => break,
        };
        match event {
            Some(Event::Message(m)) => {
                if m.topic != TOPIC_BUS && m.topic != own_topic {
                    continue;
                }
                stats.messages.fetch_add(1, Ordering::Relaxed);
                // Effects (selection, interval, `_TEST`) are applied to the
                // machine's state; a simulated agent does not measure.
                let outcome = machine.run(&m.payload);
                for reply in outcome.replies {
                    match session
                        .publisher
                        .publish(TOPIC_RES, reply, Qos::AtMostOnce, false)
                        .await
                    {
                        Ok(()) => stats.replies.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.unsent.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            Some(Event::Subscribed) => {
                if !announced {
                    announced = true;
                    let _ = ready.send(());
                }
            }
            Some(Event::Disconnected { .. }) => {
                stats.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            Some(Event::Connected(_)) => {}
            None => break,
        }
    }
    stats
        .dropped
        .fetch_add(session.dropped(), Ordering::Relaxed);
    session.close().await;
}
