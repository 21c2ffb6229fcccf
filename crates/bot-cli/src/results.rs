//! `bot results --topic TOPIC`: consume replies sent to a `--reply-to`
//! destination (asynchronous result handling). With `--session NAME` the
//! broker keeps a persistent session for this consumer, so replies published
//! while it is not running (QoS 1) are delivered when it comes back.

use std::process::ExitCode;

use bot_bus::{Event, Options, Qos, Session};
use bot_proto::envelope::Reply;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;
use crate::fleet;

/// Print replies that arrive on a reply-to topic.
#[derive(Debug, Clone, Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// The topic given to `bot run --reply-to`.
    #[arg(long, value_parser = crate::listen::filter)]
    pub topic: String,
    /// Keep a persistent broker session under this name (replies queue while away).
    #[arg(long, value_parser = session_name)]
    pub session: Option<String>,
    /// Exit after this many replies.
    #[arg(short = 'C', long)]
    pub count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(short = 'W', long, value_parser = crate::positive_secs)]
    pub wait: Option<f64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

fn session_name(s: &str) -> Result<String, String> {
    bot_proto::topics::valid_topic_level(s)
        .map(|()| s.to_owned())
        .map_err(|e| format!("session {s:?}: {e}"))
}

/// Runs `bot results`.
pub async fn run(args: ResultsArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    // The --wait clock starts once subscribed (a resumed session may deliver
    // before that; those replies are printed too).
    let mut subscribed = args.session.is_none();
    let mut session = match &args.session {
        None => {
            crate::connect(
                &args.bus,
                "results",
                vec![(args.topic.clone(), Qos::AtLeastOnce)],
                &shutdown,
            )
            .await?
        }
        Some(name) => {
            let mut o = Options::new(
                format!("bot-results-{name}"),
                args.bus.brokers_with_credentials()?,
            );
            o.clean_session = false;
            o.tls = args.bus.tls()?;
            o.subscriptions = vec![(args.topic.clone(), Qos::AtLeastOnce)];
            o.queue = 100_000;
            // Not `wait_subscribed`: a resumed session may deliver queued
            // replies before the SUBACK, and they must not be skipped.
            let mut s = Session::start(o, &shutdown);
            let connected = tokio::time::timeout(
                std::time::Duration::from_secs_f64(args.bus.connect_timeout),
                async {
                    loop {
                        match s.events.recv().await {
                            Some(Event::Connected(_)) | None => return,
                            Some(_) => {}
                        }
                    }
                },
            )
            .await;
            if connected.is_err() || !s.publisher.is_connected() {
                anyhow::bail!(
                    "cannot connect to {:?} within {} s",
                    args.bus.brokers,
                    args.bus.connect_timeout
                );
            }
            s
        }
    };
    eprintln!("waiting for replies on {}", args.topic);
    let wait = args.wait.map(std::time::Duration::from_secs_f64);
    let mut deadline = wait
        .filter(|_| subscribed)
        .map(|w| tokio::time::Instant::now() + w);
    let mut seen = 0u64;
    while args.count.is_none_or(|c| seen < c) {
        let ev = tokio::select! {
            ev = session.events.recv() => ev,
            () = shutdown.cancelled() => break,
            () = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
        };
        let m = match ev {
            Some(Event::Message(m)) => m,
            Some(Event::Subscribed) if !subscribed => {
                subscribed = true;
                deadline = wait.map(|w| tokio::time::Instant::now() + w);
                continue;
            }
            Some(_) => continue,
            None => break,
        };
        match Reply::decode(&m.payload) {
            Ok(r) => {
                seen += 1;
                if args.json {
                    let v = json!({"request_id": r.request_id, "id": r.agent_id, "name": r.agent_name, "status": fleet::status_word(r.status), "data": r.data, "error": r.error, "duration_ms": r.duration_ms});
                    println!("{v}");
                } else {
                    fleet::print_reply(&r, true);
                }
            }
            Err(e) => eprintln!("ignoring a message that is not a reply on {}: {e}", m.topic),
        }
    }
    session.close().await;
    Ok(ExitCode::SUCCESS)
}
