//! A simulated fleet for benchmarks: N real agents (`bot_agent::run`, the
//! same code as `bot agent`) in one process, each with its own MQTT
//! connection, state directory and identity, sharing nothing but the process.
//!
//! ```sh
//! cargo run --release -p bot-agent --example fleet -- mqtt://127.0.0.1:1883 1000 [prefix] [connects/s]
//! ```
//!
//! It prints `started N agents` once all are launched (each then connects,
//! publishes its retained status and answers requests), and runs until
//! Ctrl-C. Used by `scripts/bench/structured.sh`. Every agent trusts the
//! operator key named by `BOT_KEY` and the server key named by
//! `BOT_SERVER_KEY` (key files), when set: without a trusted key the agents
//! refuse every structured request.

use std::time::Duration;

use bot_agent::AgentConfig;
use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(broker), Some(count)) = (args.first(), args.get(1)) else {
        return Err("usage: fleet BROKER_URL COUNT [PREFIX] [CONNECTS_PER_SECOND]".into());
    };
    let count: usize = count
        .parse()
        .map_err(|_| format!("COUNT {count:?} is not a number"))?;
    let prefix = args.get(2).cloned().unwrap_or_else(|| "sim".to_owned());
    let rate: f64 = args
        .get(3)
        .map_or(Ok(500.0), |r| r.parse())
        .map_err(|_| "bad rate")?;
    let state = std::env::temp_dir().join(format!("bot-fleet-{prefix}"));

    // Many connections need many descriptors.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut trust = Vec::new();
    for (var, name) in [("BOT_KEY", "operator"), ("BOT_SERVER_KEY", "server")] {
        if let Some(path) = std::env::var_os(var) {
            let key = bot_auth::SecretKey::load(std::path::Path::new(&path))?;
            trust.push(bot_auth::TrustEntry::full(name, &key.public()));
        }
    }
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::with_capacity(count);
        let pause = Duration::from_secs_f64(1.0 / rate.max(1.0));
        for i in 0..count {
            let config = AgentConfig {
                name: Some(format!("{prefix}-{i}")),
                brokers: vec![broker.clone()],
                state_dir: Some(state.join(i.to_string())),
                keep_alive: 120,
                heartbeat: 3600,
                facts_refresh: 86_400,
                trust: trust.clone(),
                ..AgentConfig::default()
            };
            let valid = config.validate()?;
            tasks.push(tokio::spawn(bot_agent::run(valid, shutdown.clone())));
            tokio::time::sleep(pause).await;
        }
        println!("started {count} agents");
        tokio::signal::ctrl_c().await?;
        shutdown.cancel();
        for t in tasks {
            let _ = t.await;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
