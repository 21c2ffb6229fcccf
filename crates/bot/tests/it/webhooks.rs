//! Webhooks end to end: a real `bot server`, a real agent, and a receiver
//! that is a real HTTP server in this test: it checks every request's
//! HMAC, goes down for 10 s and comes back, and the server is SIGKILLed
//! with deliveries pending. Every event arrives, once per idempotency key.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bot_testkit::TempDir;
use serde_json::{Value, json};

use crate::tasks::Server;
use crate::{Agent, Broker, BrokerKind, bot};

const SECRET: &str = "webhook-secret-0123456789";

/// What the receiver got: (idempotency key, event, body), and how many
/// requests had a bad signature.
#[derive(Default)]
struct Got {
    requests: Mutex<Vec<(String, String, Value)>>,
    bad: AtomicUsize,
}

/// An HTTP receiver on a fixed loopback port that can go down and up.
struct Receiver {
    port: u16,
    got: Arc<Got>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Checks `X-Bot-Signature: t=…,sha256=…` against the body.
fn signed(header: &str, body: &[u8]) -> bool {
    let Some((t, hex)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",sha256="))
    else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    ring::hmac::verify(&key, &msg, &tag).is_ok()
}

impl Receiver {
    fn start(port: u16, got: Arc<Got>) -> Result<Receiver> {
        let listener = TcpListener::bind(("127.0.0.1", port)).context("bind the receiver")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, got2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&stream);
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let sig = headers.get("x-bot-signature").cloned().unwrap_or_default();
                let status = if signed(&sig, &body) {
                    let key = headers.get("idempotency-key").cloned().unwrap_or_default();
                    let event = headers.get("x-bot-event").cloned().unwrap_or_default();
                    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Ok(mut r) = got2.requests.lock() {
                        r.push((key, event, value));
                    }
                    "204 No Content"
                } else {
                    got2.bad.fetch_add(1, Ordering::SeqCst);
                    "401 Unauthorized"
                };
                let _ = (&stream).write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Ok(Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        })
    }

    /// Closes the listening socket: connections are refused.
    fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// (key, event, body) of every request with a good signature.
    fn requests(&self) -> Vec<(String, String, Value)> {
        self.got
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Distinct deliveries: key → (event, body).
    fn distinct(&self) -> BTreeMap<String, (String, Value)> {
        self.requests()
            .into_iter()
            .map(|(k, e, b)| (k, (e, b)))
            .collect()
    }

    fn wait_distinct(&self, n: usize, what: &str) -> Result<BTreeMap<String, (String, Value)>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = self.distinct();
            if d.len() >= n {
                return Ok(d);
            }
            ensure!(
                Instant::now() < deadline,
                "{what}: {} of {n} deliveries: {d:#?}",
                d.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// Submits a task that fails on `agent`; returns its id.
fn failing_task(server: &Server, agent: &str) -> Result<String> {
    let (status, v) = server.post(
        "/api/tasks",
        &json!({"args": {"shell": "exit 3"}, "targets": [agent]}),
    )?;
    ensure!(status == 201, "{v}");
    Ok(v["id"].as_str().context("task id")?.to_owned())
}

/// The (task id, event) pairs delivered.
fn task_events(d: &BTreeMap<String, (String, Value)>) -> BTreeSet<(String, String)> {
    d.values()
        .filter_map(|(e, b)| Some((b["data"]["task_id"].as_str()?.to_owned(), e.clone())))
        .collect()
}

fn expected(tasks: &[String]) -> BTreeSet<(String, String)> {
    tasks
        .iter()
        .flat_map(|t| {
            [
                (t.clone(), "target.failed".to_owned()),
                (t.clone(), "task.finished".to_owned()),
            ]
        })
        .collect()
}

#[test]
fn webhooks_deliver_every_event_once_through_outages_and_restarts() {
    if let Err(e) = webhooks_deliver() {
        panic!("{e:?}");
    }
}

fn webhooks_deliver() -> Result<()> {
    let broker = Broker::start(BrokerKind::Mosquitto, bot())?;
    let dir = TempDir::new("webhooks");
    let mut agent = Agent::start(bot(), "hooked", &[broker.url()], "keep_alive = 2\n")?;
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let data = dir.path().join("server");
    let mut server = Server::start(&broker.server_url(), &db, &data)?;
    server.wait_agents(1)?;
    let got = Arc::new(Got::default());
    let mut receiver = Receiver::start(0, got.clone())?;
    let port = receiver.port;
    let url = format!("http://127.0.0.1:{port}/hook");
    let (status, hook) = server.post(
        "/api/webhooks",
        &json!({"name": "ops", "url": url, "secret": SECRET,
                "events": ["task.finished", "target.failed", "agent.online", "agent.offline", "check.changed"]}),
    )?;
    ensure!(
        status == 201 && hook.get("secret").is_none(),
        "{status} {hook}"
    );
    // A hook whose filter selects nobody gets nothing.
    let (status, v) = server.post(
        "/api/webhooks",
        &json!({"name": "nobody", "url": url, "secret": SECRET, "filter": "no-such-agent*",
                "events": ["target.failed", "agent.offline"]}),
    )?;
    ensure!(status == 201, "{v}");
    // Bad input names the field.
    let (status, v) = server.post(
        "/api/webhooks",
        &json!({"name": "x", "url": "ftp://x", "secret": SECRET, "events": ["agent.offline"]}),
    )?;
    ensure!(
        status == 400 && v["error"].as_str().is_some_and(|e| e.starts_with("url:")),
        "{v}"
    );

    // Up: a failing task's two events, signed.
    let mut tasks = vec![failing_task(&server, "hooked")?];
    let d = receiver.wait_distinct(2, "receiver up")?;
    ensure!(task_events(&d) == expected(&tasks), "{d:#?}");

    // Down for 10 s while three more tasks fail; back: all arrive.
    receiver.down();
    for _ in 0..3 {
        tasks.push(failing_task(&server, "hooked")?);
    }
    std::thread::sleep(Duration::from_secs(10));
    let receiver2 = Receiver::start(port, got.clone())?;
    let d = receiver2.wait_distinct(8, "receiver back")?;
    ensure!(task_events(&d) == expected(&tasks), "{d:#?}");
    let (_, list) = server.get("/api/webhooks/ops/deliveries")?;
    ensure!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|d| d["attempts"].as_u64() > Some(1))),
        "no retried delivery: {list:#}"
    );
    drop(receiver2);
    drop(receiver);

    // Down again; a task fails; its deliveries are stored and attempted;
    // the server is SIGKILLed; the receiver and the server come back.
    tasks.push(failing_task(&server, "hooked")?);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = server.get("/api/webhooks/ops/deliveries?limit=2")?;
        let tried = list.as_array().is_some_and(|l| {
            l.len() == 2
                && l.iter()
                    .all(|d| d["state"] == "pending" && d["attempts"].as_u64() >= Some(1))
        });
        if tried {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "deliveries not pending: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    let receiver3 = Receiver::start(port, got.clone())?;
    let server = Server::start(&broker.server_url(), &db, &data)?;
    let d = receiver3.wait_distinct(10, "after the restart")?;
    ensure!(task_events(&d) == expected(&tasks), "{d:#?}");

    // The agent goes: agent.offline, for the unfiltered hook only.
    agent.terminate()?;
    let d = receiver3.wait_distinct(11, "agent.offline")?;
    ensure!(
        d.values()
            .any(|(e, b)| e == "agent.offline" && b["data"]["agent_name"] == "hooked"),
        "{d:#?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, none) = server.get("/api/webhooks/nobody/deliveries")?;
    ensure!(none.as_array().is_some_and(Vec::is_empty), "{none:#}");
    // Every request was signed right; every key means one event.
    ensure!(got.bad.load(Ordering::SeqCst) == 0, "bad signatures");
    let events: BTreeSet<(String, String)> = receiver3
        .requests()
        .into_iter()
        .map(|(k, e, b)| (k, format!("{e}:{}", b["data"]["task_id"])))
        .collect();
    let keys: BTreeSet<&String> = events.iter().map(|(k, _)| k).collect();
    ensure!(
        keys.len() == events.len(),
        "one key carried two events: {events:#?}"
    );
    Ok(())
}
