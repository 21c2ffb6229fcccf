//! `bot-sim checks`: simulated agents for the scheduled-checks benchmarks
//! (issue 11). They register like `bot-sim metrics` (a signed retained
//! status each, a key of its own), then either
//! - answer every `check` request on `bot/v1/req/all` whose filter selects
//!   them with a signed OK result (with performance data) to the request's
//!   `reply_to`, printing `fired <created_ms> <sender>` per request (the
//!   scheduler's firing time, for its jitter); or
//! - with `--blast N`, publish N signed results on the results topic as
//!   fast as the broker takes them (the Nagios bridge's throughput),
//!   printing `sent N results in X s`.
//!
//! `bot-sim sink`: an HTTP receiver for the webhook benchmark that answers
//! every request 204 (keep-alive) and prints `received N` every second.

use std::process::ExitCode;
use std::time::Duration;

use bot_bus::{BrokerUrl, Event, Options, Qos, Session};
use bot_proto::filter::Target;
use bot_proto::{Reply, ReplyStatus, Request, Status, topics};
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{SimAgent, register};

/// Options of `bot-sim checks`.
#[derive(Debug, Clone, Args)]
pub struct ChecksArgs {
    /// Broker URL (mqtt://HOST:PORT).
    #[arg(long, short = 'b')]
    broker: BrokerUrl,
    /// Simulated agents.
    #[arg(long, default_value_t = 1_000)]
    agents: usize,
    /// Name prefix of the agents.
    #[arg(long, default_value = "chk")]
    prefix: String,
    /// Publish this many results on the results topic and stop, instead of
    /// answering requests.
    #[arg(long, value_name = "N")]
    blast: Option<u64>,
}

/// A signed OK result of check `check` by `a` for `request_id`.
fn result(a: &SimAgent, request_id: &str, check: &str) -> Reply {
    let now = bot_proto::now_ms();
    let mut r = Reply {
        request_id: request_id.to_owned(),
        agent_id: a.id.clone(),
        agent_name: a.name.clone(),
        sender: a.id.clone(),
        created_ms: now,
        nonce: bot_auth::sign::nonce(),
        status: ReplyStatus::Ok,
        data: serde_json::json!({
            "check": check, "state": "OK", "code": 0,
            "output": "LOAD OK - load average: 0.12, 0.10, 0.05",
            "long_output": "",
            "perfdata": "load1=0.120;5.000;10.000;0; load5=0.100;4.000;8.000;0; load15=0.050;3.000;6.000;0;",
            "duration_ms": 3
        }),
        error: None,
        received_ms: now,
        duration_ms: 3,
        sig: None,
    };
    r.sig = Some(bot_auth::sign::detached(&a.key, &r.signing_bytes()));
    r
}

/// The status a simulated agent registered with (for filters).
fn status_of(a: &SimAgent) -> Status {
    Status {
        id: a.id.clone(),
        name: a.name.clone(),
        hostname: a.name.clone(),
        ips: vec![],
        version: "bench".into(),
        online: true,
        facts: Default::default(),
        tags: vec![],
        pools: vec![],
        started_ms: 0,
        heartbeat_s: 0,
        created_ms: 0,
        measure: None,
        key: None,
        sig: None,
    }
}

/// Runs `bot-sim checks`.
pub async fn run(args: ChecksArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let mut options = Options::new(
        format!("bot-sim-checks-{:x}", std::process::id()),
        vec![args.broker.clone()],
    );
    options.queue = 64 * 1024;
    options.subscriptions = vec![(topics::REQUEST_BROADCAST.to_owned(), Qos::AtMostOnce)];
    let mut session = Session::start(options, &shutdown);
    crate::ping_bench::wait_subscribed(&mut session, &args.broker).await?;
    let agents = register(&session, args.agents, &args.prefix).await?;
    println!("registered {}", agents.len());
    if let Some(n) = args.blast {
        let started = Instant::now();
        for i in 0..n {
            let a = &agents[(i as usize) % agents.len()];
            let r = result(a, &format!("blast{i:012}"), "load");
            session
                .publisher
                .publish(topics::CHECK_RESULTS, r.encode(), Qos::AtLeastOnce, false)
                .await?;
        }
        let _ = session.publisher.flush(Duration::from_secs(60)).await;
        println!(
            "sent {n} results in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        session.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let statuses: Vec<Status> = agents.iter().map(status_of).collect();
    let (mut requests, mut results) = (0u64, 0u64);
    while let Some(ev) = tokio::select! {
        e = session.events.recv() => e,
        () = shutdown.cancelled() => None,
    } {
        let Event::Message(m) = ev else {
            continue;
        };
        let Ok(req) = Request::decode(&m.payload) else {
            continue;
        };
        if req.action != "check" {
            continue;
        }
        requests += 1;
        println!("fired {} {}", req.created_ms, req.sender);
        let check = req.args["name"].as_str().unwrap_or("load").to_owned();
        let filter = req
            .filter
            .as_deref()
            .and_then(|f| bot_proto::filter::parse(f).ok());
        for (a, s) in agents.iter().zip(&statuses) {
            if filter
                .as_ref()
                .is_some_and(|f| !f.matches(s as &dyn Target))
            {
                continue;
            }
            let r = result(a, &req.id, &check);
            session
                .publisher
                .publish(req.reply_to.clone(), r.encode(), Qos::AtLeastOnce, false)
                .await?;
            results += 1;
        }
    }
    println!("answered {requests} requests with {results} results");
    session.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Options of `bot-sim sink`.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Address to listen on (127.0.0.1:0: a free port, printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

/// Runs `bot-sim sink`: answers every HTTP request 204, counts them.
pub async fn sink(args: SinkArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening {}", listener.local_addr()?);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                println!("received {}", count.load(std::sync::atomic::Ordering::Relaxed));
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let count = count.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    loop {
                        let mut len = 0usize;
                        let mut line = String::new();
                        // Request line and headers.
                        loop {
                            line.clear();
                            match reader.read_line(&mut line).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            if line.trim().is_empty() {
                                break;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if write
                            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        }
    }
    println!(
        "received {}",
        count.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}
