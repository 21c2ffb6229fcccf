//! The soak test (issue 12): `bot up` under a minute of mixed load, all at
//! once: a classic flood, structured requests from the CLI, task submits
//! through the API, and idle connections on the MQTT and HTTP ports. It
//! asserts that nothing was lost (every request was answered or refused,
//! and a refusal is said), and that memory came back afterwards.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bot_testkit::{Lines, Sub, TempDir};
use serde_json::{Value, json};

use crate::{WAIT, bot};

/// Rounds of the classic flood, and programs per round (half of them
/// 20 KB long).
const CLASSIC_ROUNDS: usize = 8;
const CLASSIC_PER_ROUND: usize = 400;
/// Tasks submitted through the API during the load.
const TASKS: usize = 12;
/// Idle sockets held on each of the MQTT and HTTP ports.
const IDLE: usize = 200;

/// `bot up` with its local agent `soak`, its own data directory and logins.
struct Up {
    child: Child,
    mqtt_port: u16,
    base: String,
    token: String,
    password_file: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl Up {
    fn start() -> Result<Up> {
        let dir = TempDir::new("soak");
        let mut child = bot_testkit::bot_command(bot())
            .env("BOT_STATE_DIR", dir.path())
            .env("BOT_DATA_DIR", dir.path().join("server"))
            .env("BOT_LOG", "info")
            .args(["up", "--listen", "127.0.0.1:0", "--no-ws"])
            .args(["--http", "127.0.0.1:0", "--name", "soak"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let no_pipe = || anyhow!("no pipe");
        let mut out = Lines::from_pipe(child.stdout.take().ok_or_else(no_pipe)?);
        let mut err = Lines::from_pipe(child.stderr.take().ok_or_else(no_pipe)?);
        let started = (|| -> Result<(u16, String, String)> {
            let mqtt = out.wait_for("the mqtt line", WAIT, |l| {
                l.starts_with("listening: mqtt://")
            })?;
            let port = mqtt.rsplit(':').next().unwrap_or_default().parse()?;
            let http = out.wait_for("the http line", WAIT, |l| {
                l.starts_with("listening: http://")
            })?;
            let base = http
                .trim_start_matches("listening: ")
                .trim_end_matches("/api")
                .to_owned();
            let token = out.wait_for("the token line", WAIT, |l| l.starts_with("api token: "))?;
            err.wait_for("the local agent's ready line", WAIT, |l| {
                l.contains("ready: listening on BUS")
            })?;
            Ok((
                port,
                base,
                token.trim_start_matches("api token: ").to_owned(),
            ))
        })();
        let (mqtt_port, base, token) = match started {
            Ok(x) => x,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        // The log, kept whole for the assertions on what the agent shed.
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            while let Some(l) = err.next(Duration::from_secs(3_600)) {
                if let Ok(mut v) = sink.lock() {
                    v.push(l);
                }
            }
        });
        let password_file = dir
            .path()
            .join("server/broker/operator.password")
            .display()
            .to_string();
        Ok(Up {
            child,
            mqtt_port,
            base,
            token,
            password_file,
            log,
            _dir: dir,
        })
    }

    fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.child.id())
    }

    fn http() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    fn get(&self, path: &str) -> Result<(u16, Value)> {
        let mut r = Self::http()
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&body).context(body)?))
    }

    fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let mut r = Self::http()
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&body).context(body)?))
    }

    /// A ping through the server's `/api/call`: whether `soak` answered.
    fn api_ping(&self) -> Result<bool> {
        let (status, body) = self.post(
            "/api/call",
            &json!({"action": "ping", "filter": "soak", "timeout_s": 5}),
        )?;
        Ok(status == 200 && body["replies"][0]["status"] == "ok")
    }

    fn login(&self) -> [String; 4] {
        [
            "-u".into(),
            "operator".into(),
            "-P".into(),
            std::fs::read_to_string(&self.password_file)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ]
    }

    /// The largest `shed_total` the agent logged for classic programs.
    fn classic_shed_logged(&self) -> u64 {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        log.iter()
            .filter_map(|l| {
                let (_, rest) = l.split_once("shed_total=")?;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

/// One `bot run` from the CLI: `Ok(true)` answered with its output,
/// `Ok(false)` refused busy (said so), an error for anything else.
fn structured_run(up: &Up, i: usize) -> Result<bool> {
    let url = format!("mqtt://127.0.0.1:{}", up.mqtt_port);
    let word = format!("s{i}");
    let out = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args(["run", "-b", &url, "--password-file", &up.password_file])
            .args(["-F", "soak", "--", "echo", &word]),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.contains(&word) {
        return Ok(true);
    }
    if format!("{stdout}{stderr}").contains("busy") {
        return Ok(false);
    }
    bail!("bot run {word} lost: {}\n{stdout}\n{stderr}", out.status)
}

#[test]
fn soak_mixed_load_loses_nothing_and_gives_memory_back() -> Result<()> {
    let up = Up::start()?;
    // The server learns of its agent from the agent's status.
    let deadline = Instant::now() + WAIT;
    while !up.api_ping()? {
        ensure!(Instant::now() < deadline, "the server never saw its agent");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = up.rss_kib()?;

    // RSS sampled all along.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(idle_rss));
    let sampler = {
        let (done, peak, pid) = (done.clone(), peak.clone(), up.child.id());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // Idle connections, held through the load.
    let mut idle = Vec::new();
    let http_addr = up.base.trim_start_matches("http://").to_owned();
    for addr in [format!("127.0.0.1:{}", up.mqtt_port), http_addr] {
        for _ in 0..IDLE {
            idle.push(std::net::TcpStream::connect(&addr)?);
        }
    }

    // Every reply on RES, counted by a subscriber of its own.
    let login = up.login();
    let login: Vec<&str> = login.iter().map(String::as_str).collect();
    let mut res = Sub::start_with(up.mqtt_port, &["RES"], &login)?;

    let load_over = AtomicBool::new(false);
    let (classic_sent, runs, tasks) = std::thread::scope(|s| -> Result<_> {
        // The classic flood: small and 20 KB programs on BUS/soak.
        let classic = s.spawn(|| -> Result<usize> {
            let big = format!("{}2: 2: ADD", "1: DROP ".repeat(2_500));
            let mut sent = 0;
            for _ in 0..CLASSIC_ROUNDS {
                let lines: Vec<String> = (0..CLASSIC_PER_ROUND)
                    .map(|i| {
                        if i % 2 == 0 {
                            "PING".to_owned()
                        } else {
                            big.clone()
                        }
                    })
                    .collect();
                bot_testkit::publish_lines_with(up.mqtt_port, "BUS/soak", &lines, &login)?;
                sent += lines.len();
                std::thread::sleep(Duration::from_secs(2));
            }
            load_over.store(true, Ordering::Relaxed);
            Ok(sent)
        });
        // Structured requests from the CLI, one after another, meanwhile.
        let structured = s.spawn(|| -> Result<(usize, usize)> {
            let (mut answered, mut refused) = (0, 0);
            let mut i = 0;
            while !load_over.load(Ordering::Relaxed) || i < 5 {
                if structured_run(&up, i)? {
                    answered += 1;
                } else {
                    refused += 1;
                }
                i += 1;
            }
            Ok((answered, refused))
        });
        // Tasks through the API, meanwhile.
        let submitted = s.spawn(|| -> Result<Vec<String>> {
            let mut ids = Vec::new();
            for i in 0..TASKS {
                let (status, body) = up.post(
                    "/api/tasks",
                    &json!({"args": {"command": ["echo", format!("t{i}")]},
                            "targets": ["soak"], "timeout_s": 60}),
                )?;
                ensure!(status == 201, "submit t{i}: {status} {body}");
                ids.push(body["id"].as_str().unwrap_or_default().to_owned());
                std::thread::sleep(Duration::from_millis(700));
            }
            Ok(ids)
        });
        let join = |e: Box<dyn std::any::Any + Send>| anyhow!("a load thread panicked: {e:?}");
        Ok((
            classic.join().map_err(join)??,
            structured.join().map_err(join)??,
            submitted.join().map_err(join)??,
        ))
    })?;

    // Every task ended, each target with its output (or refused busy).
    let mut states = BTreeMap::new();
    for (i, id) in tasks.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let task = loop {
            let (status, task) = up.get(&format!("/api/tasks/{id}"))?;
            ensure!(status == 200, "task {id}: {status} {task}");
            if matches!(
                task["state"].as_str(),
                Some("SUCCEEDED" | "FAILED" | "CANCELLED")
            ) {
                break task;
            }
            ensure!(Instant::now() < deadline, "task t{i} never ended: {task:#}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let target = &task["targets"][0];
        let state = target["state"].as_str().unwrap_or_default().to_owned();
        let ok = state == "SUCCEEDED" && target["stdout"] == format!("t{i}\n");
        let refused =
            state == "FAILED" && target["error"].as_str().is_some_and(|e| e.contains("busy"));
        ensure!(ok || refused, "task t{i} lost its result: {task:#}");
        *states.entry(state).or_insert(0) += 1;
    }

    // Every classic program was answered, or counted as shed in the log.
    let mut replies = 0usize;
    while let Some((topic, _)) = res.next(Duration::from_secs(3)) {
        if topic == "RES" {
            replies += 1;
        }
    }
    let missing = classic_sent.saturating_sub(replies) as u64;
    let shed_logged = up.classic_shed_logged();
    // The agent logs its shed count at each power of two: the true count
    // is at least the last one logged and below twice it.
    ensure!(
        (missing == 0 && shed_logged == 0) || (shed_logged <= missing && missing < 2 * shed_logged),
        "{classic_sent} classic programs, {replies} replies, shed logged {shed_logged}"
    );

    // Still answering, with the idle sockets closed by the server.
    let mut closed = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(10)))?;
        let mut byte = [0u8; 1];
        if matches!(s.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    drop(idle);
    ensure!(up.api_ping()?, "the agent no longer answers after the load");

    // Memory comes back: within 30 s, under twice the idle figure.
    let after_deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let rss = up.rss_kib()?;
        if rss <= 2 * idle_rss || Instant::now() > after_deadline {
            break rss;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    done.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| anyhow!("sampler panicked"))?;
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "soak: classic {classic_sent} sent, {replies} replies, shed logged {shed_logged}; \
         bot run {} answered, {} refused busy; tasks {states:?}; idle sockets closed by the \
         server {closed} of {}; bot up RSS idle {idle_rss} KiB, peak {peak} KiB, after {after} KiB",
        runs.0,
        runs.1,
        2 * IDLE
    );
    ensure!(runs.0 > 0, "no structured request was answered");
    ensure!(
        after <= 2 * idle_rss,
        "RSS {after} KiB 30 s after the load, idle {idle_rss} KiB (peak {peak} KiB)"
    );
    Ok(())
}
