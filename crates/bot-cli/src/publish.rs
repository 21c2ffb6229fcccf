//! `bot pub`: publish one program (or any payload) on the bus, like
//! `mosquitto_pub -t BUS -m PROGRAM`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bot_bus::Qos;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// Largest payload `bot pub` sends (the MQTT limit is 256 MiB; brokers are smaller).
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Publish a message (by default a classic program on BUS).
#[derive(Debug, Clone, Args)]
pub struct PubArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Topic to publish on (BUS reaches every agent, BUS/<name> one agent).
    #[arg(short = 't', long, default_value = "BUS", value_parser = publish_topic)]
    pub topic: String,
    /// Quality of service: 0 or 1.
    #[arg(short = 'q', long, default_value = "1", value_parser = crate::parse_qos)]
    pub qos: Qos,
    /// The payload, e.g. 'PING' or "2: 2: ADD"; `-` reads it from standard input.
    pub program: String,
}

/// Validates a topic to publish on: non-empty, no wildcards, ≤ 65535 bytes.
pub fn publish_topic(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("topic is empty".into());
    }
    if s.len() > 65_535 {
        return Err(format!("topic is {} bytes, limit 65535", s.len()));
    }
    if s.contains(['+', '#', '\0']) {
        return Err(format!(
            "topic {s:?} contains a wildcard or NUL; publish needs a plain topic"
        ));
    }
    Ok(s.to_owned())
}

/// Runs `bot pub`.
pub async fn run(args: PubArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let payload = if args.program == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_PAYLOAD as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read the payload from standard input")?;
        buf
    } else {
        args.program.into_bytes()
    };
    if payload.len() > MAX_PAYLOAD {
        bail!("payload is larger than {MAX_PAYLOAD} bytes");
    }
    let session = crate::connect(&args.bus, "pub", Vec::new(), &shutdown).await?;
    crate::publish_once(&session, &args.topic, payload, args.qos).await?;
    session.close().await;
    Ok(ExitCode::SUCCESS)
}
