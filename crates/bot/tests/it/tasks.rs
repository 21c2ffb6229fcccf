//! The task engine end to end: a real `bot server` process (SQLite file or a
//! private PostgreSQL cluster), real `bot agent` processes on a real
//! mosquitto, the HTTP API over loopback. Each scenario runs on both
//! databases (`both_dbs!`).
//!
//! Commands record which agent ran them by appending the agent's pid (`$PPID`
//! of the shell) to a file: that is how "no further target started" and "no
//! target ran twice" are checked on the agents' side, not only in the
//! server's records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bot_testkit::{Lines, Postgres, TempDir};
use serde_json::{Value, json};

use crate::{Agent, Broker, BrokerKind, bot};

pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";

/// Which database the server uses.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database for one scenario (the PostgreSQL cluster lives as long as it).
struct Database {
    url: String,
    _pg: Option<Postgres>,
}

impl Database {
    fn new(kind: Db, dir: &Path) -> Result<Database> {
        Ok(match kind {
            Db::Sqlite => Database {
                url: format!("sqlite:{}", dir.join("bot.db").display()),
                _pg: None,
            },
            Db::Postgres => {
                let pg = Postgres::start()?;
                let url = pg.create_database("bot")?;
                Database { url, _pg: Some(pg) }
            }
        })
    }
}

/// A running `bot server`.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    http: ureq::Agent,
    _log: Lines,
    /// Its standard output, kept open (and read) while it runs.
    _out: Lines,
}

impl Server {
    pub(crate) fn start(broker: &str, db: &str, data_dir: &Path) -> Result<Server> {
        Server::start_with(broker, db, data_dir, &[])
    }

    /// [`Server::start`] with more environment variables (options).
    pub(crate) fn start_with(
        broker: &str,
        db: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let mut child = bot_testkit::bot_command(bot())
            .args([
                "server",
                "--broker",
                broker,
                "--db",
                db,
                "--http",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("BOT_API_TOKENS", format!("test={TOKEN}"))
            .env("BOT_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run bot server")?;
        let mut out = Lines::from_pipe(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let log = Lines::from_pipe(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?);
        let line = out.wait_for("the server's listening line", crate::WAIT, |l| {
            l.starts_with("listening: http://")
        });
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                return Err(e);
            }
        };
        let base = line
            .trim_start_matches("listening: ")
            .trim_end_matches("/api")
            .to_owned();
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Server {
            child,
            base,
            http,
            _log: log,
            _out: out,
        })
    }

    pub(crate) fn get(&self, path: &str) -> Result<(u16, Value)> {
        let mut r = self
            .http
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&body).context(body)?))
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let mut r = self
            .http
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&body).context(body)?))
    }

    /// Submits a task; returns its id.
    fn submit(&self, task: Value) -> Result<String> {
        let (status, body) = self.post("/api/tasks", &task)?;
        ensure!(status == 201, "submit: {status} {body}");
        Ok(body["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id"))?
            .to_owned())
    }

    /// Polls the task until `done(task)` holds.
    fn wait_task(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, task) = self.get(&format!("/api/tasks/{id}"))?;
            ensure!(status == 200, "get task: {status} {task}");
            if done(&task) {
                return Ok(task);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}: {task:#}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_final(&self, id: &str) -> Result<Value> {
        self.wait_task(id, "a final state", |t| {
            matches!(
                t["state"].as_str(),
                Some("SUCCEEDED" | "FAILED" | "CANCELLED")
            )
        })
    }

    /// Waits until `n` agents are online in the registry.
    pub(crate) fn wait_agents(&self, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, agents) = self.get("/api/agents?online=true")?;
            let have = agents.as_array().map_or(0, Vec::len);
            if have >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {have} of {n} agents online: {agents:#}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and waits for a clean exit.
    fn stop(&mut self) -> Result<()> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?
            .success();
        ensure!(ok, "kill -TERM failed");
        let status = self.child.wait()?;
        ensure!(status.success(), "bot server exited with {status}");
        Ok(())
    }

    /// SIGKILL: no clean shutdown, like a crash.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A broker, `n` agents named a0…, and a server on `db`.
struct Fleet {
    broker: Broker,
    agents: Vec<Agent>,
    server: Server,
    db: Database,
    dir: TempDir,
}

impl Fleet {
    fn start(db: Db, n: usize) -> Result<Fleet> {
        Fleet::start_on(BrokerKind::Mosquitto, db, n)
    }

    fn start_on(kind: BrokerKind, db: Db, n: usize) -> Result<Fleet> {
        let dir = TempDir::new("tasks");
        let broker = Broker::start(kind, bot())?;
        let url = broker.url();
        // A short keep-alive: a killed agent's last will comes within ~3 s.
        let agents = (0..n)
            .map(|i| {
                Agent::start(
                    bot(),
                    &format!("a{i}"),
                    std::slice::from_ref(&url),
                    "keep_alive = 2\n",
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let db = Database::new(db, dir.path())?;
        let server = Server::start(&broker.server_url(), &db.url, &dir.path().join("server"))?;
        server.wait_agents(n)?;
        Ok(Fleet {
            broker,
            agents,
            server,
            db,
            dir,
        })
    }

    fn restart_server(&mut self) -> Result<()> {
        self.server.kill();
        self.server = Server::start(
            &self.broker.server_url(),
            &self.db.url,
            &self.dir.path().join("server"),
        )?;
        Ok(())
    }

    fn ids(&self) -> Result<Vec<String>> {
        self.agents.iter().map(Agent::id).collect()
    }

    /// A file commands append the running agent's pid to.
    fn runs_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Lines of the runs file (one per command run), empty if absent.
fn runs(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn targets(task: &Value) -> Vec<Value> {
    task["targets"].as_array().cloned().unwrap_or_default()
}

fn states(task: &Value) -> Vec<String> {
    targets(task)
        .iter()
        .map(|t| t["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn count(task: &Value, state: &str) -> usize {
    states(task).iter().filter(|s| *s == state).count()
}

/// The most targets running at once, from the recorded start/end times
/// (half-open intervals: an end at t frees the slot for a start at t).
fn max_overlap(task: &Value) -> usize {
    let mut edges = Vec::new();
    for t in targets(task) {
        if let (Some(s), Some(e)) = (t["started_ms"].as_u64(), t["finished_ms"].as_u64()) {
            edges.push((s, 1i32));
            edges.push((e, -1i32));
        }
    }
    edges.sort_by_key(|&(t, d)| (t, d)); // ends (-1) before starts at the same ms
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// `sh -c SCRIPT` as a task body.
fn shell(script: &str) -> Value {
    json!({ "shell": script })
}

pub fn parallel_window_is_never_exceeded(db: Db) -> Result<()> {
    let f = Fleet::start(db, 5)?;
    let mut events = crate::Sub::start(f.broker.port, &["bot/v1/event/task/+"])?;
    let log = f.runs_file("runs");
    let id = f.server.submit(json!({
        "args": shell(&format!("echo ran-$PPID; echo $PPID >> {}; sleep 0.4", log.display())),
        "targets": f.ids()?,
        "parallel": 2,
        "timeout_s": 20,
    }))?;
    let task = f.server.wait_final(&id)?;
    ensure!(task["state"] == "SUCCEEDED", "{task:#}");
    ensure!(count(&task, "SUCCEEDED") == 5, "{task:#}");
    ensure!(
        max_overlap(&task) == 2,
        "window 2, overlap {}: {task:#}",
        max_overlap(&task)
    );
    for t in targets(&task) {
        ensure!(t["exit_code"] == 0, "{t:#}");
        ensure!(
            t["stdout"].as_str().is_some_and(|s| s.starts_with("ran-")),
            "stdout not captured: {t:#}"
        );
    }
    // Rollout order = the order given.
    let order: Vec<String> = targets(&task)
        .iter()
        .filter_map(|t| t["agent_name"].as_str().map(str::to_owned))
        .collect();
    ensure!(order == ["a0", "a1", "a2", "a3", "a4"], "{order:?}");
    ensure!(runs(&log).len() == 5);
    // Request/reply over HTTP: every agent answers, nobody is missing.
    let (status, call) = f.server.post(
        "/api/call",
        &json!({ "action": "ping", "filter": "a*", "timeout_s": 10 }),
    )?;
    ensure!(status == 200, "{status} {call}");
    let mut names: Vec<&str> = call["replies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["agent_name"].as_str())
        .collect();
    names.sort_unstable();
    ensure!(names == ["a0", "a1", "a2", "a3", "a4"], "{call:#}");
    ensure!(call["no_reply"] == json!([]), "{call:#}");
    // Every transition was published: 5 × RUNNING, 5 × SUCCEEDED, and the
    // task's own end.
    let got = events.collect(11, crate::WAIT, |t, _| t.ends_with(&id))?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, payload) in &got {
        let e: Value = serde_json::from_str(payload)?;
        let key = match e["target"]["state"].as_str() {
            Some(s) => format!("target {s}"),
            None => format!("task {}", e["state"].as_str().unwrap_or("?")),
        };
        *seen.entry(key).or_default() += 1;
    }
    ensure!(
        seen.get("target RUNNING") == Some(&5)
            && seen.get("target SUCCEEDED") == Some(&5)
            && seen.get("task SUCCEEDED") == Some(&1),
        "events: {seen:?}"
    );
    Ok(())
}

pub fn fail_count_and_fail_rate_stop_the_rollout(db: Db) -> Result<()> {
    let f = Fleet::start(db, 5)?;
    for (name, thresholds, expect_started) in [
        // fail_count N: exactly N targets fail, the rest are skipped.
        ("fail_count", json!({ "fail_count": 2 }), 2usize),
        ("fail_count1", json!({ "fail_count": 1 }), 1),
        // 5 targets, rate 0.3: the second failure (0.4) stops it.
        ("fail_rate", json!({ "fail_rate": 0.3 }), 2),
    ] {
        let log = f.runs_file(name);
        let mut task = json!({
            "args": shell(&format!("echo $PPID >> {}; echo boom >&2; exit 3", log.display())),
            "targets": f.ids()?,
            "parallel": 1,
            "timeout_s": 20,
        });
        if let (Some(t), Some(extra)) = (task.as_object_mut(), thresholds.as_object()) {
            t.extend(extra.clone());
        }
        let id = f.server.submit(task)?;
        let task = f.server.wait_final(&id)?;
        ensure!(task["state"] == "FAILED", "{name}: {task:#}");
        ensure!(
            task["reason"]
                .as_str()
                .is_some_and(|r| r.contains("exceeded") || r.contains("reached")),
            "{name}: {task:#}"
        );
        ensure!(count(&task, "FAILED") == expect_started, "{name}: {task:#}");
        ensure!(
            count(&task, "SKIPPED") == 5 - expect_started,
            "{name}: {task:#}"
        );
        // The agents' side agrees: exactly that many commands ran.
        ensure!(
            runs(&log).len() == expect_started,
            "{name}: ran {:?}",
            runs(&log)
        );
        for t in targets(&task) {
            if t["state"] == "FAILED" {
                ensure!(t["exit_code"] == 3 && t["stderr"] == "boom\n", "{t:#}");
            } else {
                ensure!(t["started_ms"].is_null(), "a skipped target started: {t:#}");
            }
        }
    }
    // A wide window: the threshold still stops further starts.
    let log = f.runs_file("wide");
    let id = f.server.submit(json!({
        "args": shell(&format!("echo $PPID >> {}; sleep 0.5; exit 1", log.display())),
        "targets": f.ids()?,
        "parallel": 2,
        "fail_count": 1,
    }))?;
    let task = f.server.wait_final(&id)?;
    let first_end = targets(&task)
        .iter()
        .filter_map(|t| t["finished_ms"].as_u64())
        .min()
        .ok_or_else(|| anyhow!("nothing finished: {task:#}"))?;
    for t in targets(&task) {
        if let Some(s) = t["started_ms"].as_u64() {
            ensure!(
                s <= first_end,
                "a target started after the threshold: {task:#}"
            );
        }
    }
    ensure!(count(&task, "SKIPPED") == 3, "{task:#}");
    ensure!(runs(&log).len() == 2);

    // Retry the failed ones as a new task.
    let (status, retry) = f
        .server
        .post(&format!("/api/tasks/{id}/retry"), &json!({}))?;
    ensure!(status == 201, "{status} {retry}");
    ensure!(retry["retry_of"] == id.as_str());
    ensure!(targets(&retry).len() == 2, "{retry:#}");
    let (status, retry2) = f.server.post(
        &format!("/api/tasks/{id}/retry"),
        &json!({ "include_skipped": true }),
    )?;
    ensure!(
        status == 201 && targets(&retry2).len() == 5,
        "{status} {retry2:#}"
    );
    Ok(())
}

pub fn timeouts_lost_agents_and_cancel(db: Db) -> Result<()> {
    let mut f = Fleet::start(db, 3)?;
    // The agent kills the command at the timeout and says so.
    let id = f.server.submit(json!({
        "args": shell("sleep 30"),
        "targets": [f.agents[0].id()?],
        "timeout_s": 1,
    }))?;
    let task = f.server.wait_final(&id)?;
    ensure!(count(&task, "TIMED_OUT") == 1, "{task:#}");
    ensure!(task["state"] == "FAILED");

    // An agent killed mid-run: its target becomes LOST (last will).
    let id = f.server.submit(json!({
        "args": shell("sleep 30"),
        "targets": [f.agents[1].id()?, f.agents[2].id()?],
        "timeout_s": 120,
    }))?;
    f.server
        .wait_task(&id, "two running", |t| count(t, "RUNNING") == 2)?;
    f.agents[1].signal("KILL")?;
    let task = f
        .server
        .wait_task(&id, "a LOST target", |t| count(t, "LOST") == 1)?;
    let lost = targets(&task)
        .into_iter()
        .find(|t| t["state"] == "LOST")
        .ok_or_else(|| anyhow!("no lost target"))?;
    ensure!(lost["agent_name"] == "a1", "{lost:#}");

    // Cancel: the running command (sleep 30) is killed on its agent, and
    // the task ends CANCELLED at once, not in 30 s.
    let (status, cancelled) = f
        .server
        .post(&format!("/api/tasks/{id}/cancel"), &json!({}))?;
    ensure!(status == 200, "{status} {cancelled}");
    let t0 = Instant::now();
    let task = f.server.wait_final(&id)?;
    ensure!(
        t0.elapsed() < Duration::from_secs(20),
        "the command was not killed"
    );
    ensure!(task["state"] == "CANCELLED", "{task:#}");
    let killed = targets(&task)
        .into_iter()
        .find(|t| t["agent_name"] == "a2")
        .ok_or_else(|| anyhow!("no a2 target"))?;
    ensure!(
        killed["state"] == "FAILED"
            && killed["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("cancelled")),
        "{killed:#}"
    );
    let (status, again) = f
        .server
        .post(&format!("/api/tasks/{id}/cancel"), &json!({}))?;
    ensure!(status == 409, "second cancel: {status} {again}");

    // Cancel while the first of two runs: it is killed, the second never starts.
    let log = f.runs_file("cancel");
    let id2 = f.server.submit(json!({
        "args": shell(&format!("echo $PPID >> {}; sleep 30", log.display())),
        "targets": [f.agents[0].id()?, f.agents[2].id()?],
        "parallel": 1,
    }))?;
    f.server
        .wait_task(&id2, "first running", |t| count(t, "RUNNING") == 1)?;
    // RUNNING is recorded when the request is sent: wait until the command
    // has really started on its agent before cancelling it.
    let started = Instant::now();
    while runs(&log).is_empty() {
        ensure!(
            started.elapsed() < crate::WAIT,
            "the first command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = f
        .server
        .post(&format!("/api/tasks/{id2}/cancel"), &json!({}))?;
    ensure!(status == 200, "{status} {body}");
    let task = f.server.wait_final(&id2)?;
    ensure!(task["state"] == "CANCELLED", "{task:#}");
    ensure!(
        count(&task, "FAILED") == 1 && count(&task, "SKIPPED") == 1,
        "{task:#}"
    );
    ensure!(runs(&log).len() == 1);
    f.agents.remove(1);
    Ok(())
}

pub fn server_killed_mid_task_resumes_without_running_twice(db: Db) -> Result<()> {
    killed_server_resumes(BrokerKind::Mosquitto, db)
}

/// The same through the embedded broker (`bot up --no-agent --no-server`
/// as the bus, so it outlives the killed server).
pub fn server_killed_on_the_embedded_broker_resumes(db: Db) -> Result<()> {
    killed_server_resumes(BrokerKind::Embedded, db)
}

fn killed_server_resumes(kind: BrokerKind, db: Db) -> Result<()> {
    let mut f = Fleet::start_on(kind, db, 4)?;
    // A clean restart first: the registry is stored (written in batches,
    // and once more on the way out) and reloaded.
    let (_, before) = f.server.get("/api/agents")?;
    f.server.stop()?;
    f.server = Server::start(
        &f.broker.server_url(),
        &f.db.url,
        &f.dir.path().join("server"),
    )?;
    let (_, after) = f.server.get("/api/agents")?;
    ensure!(
        first_seen(&before) == first_seen(&after),
        "registry lost across the restart:\n{before:#}\n{after:#}"
    );
    let log = f.runs_file("runs");
    let started = f.runs_file("started");
    let id = f.server.submit(json!({
        "args": shell(&format!(
            "echo $PPID >> {}; sleep 1.5; echo $PPID >> {}",
            started.display(),
            log.display()
        )),
        "targets": f.ids()?,
        "parallel": 2,
        "timeout_s": 30,
    }))?;
    f.server
        .wait_task(&id, "two running", |t| count(t, "RUNNING") == 2)?;
    // RUNNING is stored before the request is sent: kill the server only
    // once both commands really started on their agents.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(&started).len() < 2 {
        ensure!(
            Instant::now() < deadline,
            "the first two commands never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    f.server.kill();
    // The two running commands finish and reply while the server is down.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(&log).len() < 2 {
        ensure!(Instant::now() < deadline, "commands did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    f.restart_server()?;
    let task = f.server.wait_final(&id)?;
    ensure!(task["state"] == "SUCCEEDED", "{task:#}");
    ensure!(count(&task, "SUCCEEDED") == 4, "{task:#}");
    // No target ran twice, none was lost: one line per agent.
    let lines = runs(&log);
    let mut per_agent: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &lines {
        *per_agent.entry(l).or_default() += 1;
    }
    ensure!(lines.len() == 4 && per_agent.len() == 4, "runs: {lines:?}");
    ensure!(max_overlap(&task) <= 2, "{task:#}");
    Ok(())
}

/// (agent id, first seen) of an agent list, sorted: equal across a restart
/// only if the registry was stored and reloaded (a fresh registry would see
/// them first at the new process's start).
fn first_seen(v: &Value) -> Vec<(String, u64)> {
    let mut x: Vec<(String, u64)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or("").to_owned(),
                a["first_seen_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    x.sort();
    x
}

/// Pull mode: the targets are slots of a pool; idle agents of the pool take
/// them (MQTT shared subscription) and each slot records who ran it.
pub fn pull_mode_pool_task(db: Db) -> Result<()> {
    let dir = TempDir::new("pool");
    let broker = Broker::start(BrokerKind::Mosquitto, bot())?;
    let url = broker.url();
    let _agents = (0..3)
        .map(|i| {
            Agent::start(
                bot(),
                &format!("p{i}"),
                std::slice::from_ref(&url),
                "pools = [\"build\"]\n",
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let db = Database::new(db, dir.path())?;
    let server = Server::start(&broker.server_url(), &db.url, &dir.path().join("server"))?;
    server.wait_agents(3)?;
    let log = dir.path().join("runs");
    let id = server.submit(json!({
        "args": shell(&format!("echo $PPID >> {}; sleep 0.2", log.display())),
        "pool": "build",
        "count": 6,
        "parallel": 2,
        "timeout_s": 20,
    }))?;
    let task = server.wait_final(&id)?;
    ensure!(task["state"] == "SUCCEEDED", "{task:#}");
    ensure!(count(&task, "SUCCEEDED") == 6, "{task:#}");
    ensure!(max_overlap(&task) <= 2, "{task:#}");
    for t in targets(&task) {
        let name = t["agent_name"].as_str().unwrap_or("");
        ensure!(name.starts_with('p'), "slot without its agent: {t:#}");
    }
    ensure!(runs(&log).len() == 6, "{:?}", runs(&log));
    Ok(())
}

/// Names of the agents that answered a `ping` through `/api/call`.
fn pong_names(server: &Server, filter: &str) -> Result<Vec<String>> {
    let (status, call) = server.post(
        "/api/call",
        &json!({ "action": "ping", "filter": filter, "timeout_s": 3 }),
    )?;
    // No trusted agent online matches: refused at once, nobody answered.
    if status == 422
        && call["error"]
            .as_str()
            .is_some_and(|e| e.contains("no online agent"))
    {
        return Ok(Vec::new());
    }
    ensure!(status == 200, "{status} {call}");
    Ok(call["replies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["agent_name"].as_str().map(str::to_owned))
        .collect())
}

/// Waits until the server says `agent`'s key is in `state`.
fn wait_key_state(server: &Server, agent: &str, state: &str) -> Result<Value> {
    let deadline = Instant::now() + crate::WAIT;
    loop {
        let (code, a) = server.get(&format!("/api/agents/{agent}"))?;
        if code == 200 && a["key"]["state"] == state {
            return Ok(a);
        }
        ensure!(
            Instant::now() < deadline,
            "{agent}'s key never became {state}: {code} {a}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Attack row 22: an agent id that comes back with another key (its state
/// dir copied to an impostor, or the machine reinstalled) raises the alarm;
/// its replies are refused until an operator accepts the new key with
/// `bot agents accept`.
pub fn a_changed_agent_key_is_refused_until_accepted(db: Db) -> Result<()> {
    let broker = Broker::start(BrokerKind::Mosquitto, bot())?;
    let dir = TempDir::new("rekey");
    let database = Database::new(db, dir.path())?;
    let server = Server::start(
        &broker.server_url(),
        &database.url,
        &dir.path().join("server"),
    )?;
    let state = dir.path().join("k1-state");
    let config = format!("state_dir = {:?}\n", state.display().to_string());
    let mut agent = Agent::start(bot(), "k1", &[broker.url()], &config)?;
    let first = wait_key_state(&server, "k1", "trusted")?;
    ensure!(
        pong_names(&server, "k1")? == ["k1"],
        "the trusted agent answers"
    );

    // Same id, new key.
    agent.terminate()?;
    std::fs::remove_file(state.join("agent.key"))?;
    let _agent = Agent::start(bot(), "k1", &[broker.url()], &config)?;
    let changed = wait_key_state(&server, "k1", "changed")?;
    ensure!(
        changed["key"]["key"] == first["key"]["key"],
        "the bound key stays: {changed}"
    );
    ensure!(
        changed["key"]["pending"] != first["key"]["key"],
        "{changed}"
    );
    ensure!(
        pong_names(&server, "k1")?.is_empty(),
        "a changed key's replies are refused"
    );

    let (code, out, err) = bot_testkit::run_bot(
        bot(),
        &[
            "agents",
            "accept",
            "k1",
            "--server",
            &server.base,
            "--token",
            TOKEN,
        ],
    )?;
    ensure!(
        code == 0 && out.contains("accepted: k1"),
        "{code}\n{out}\n{err}"
    );
    wait_key_state(&server, "k1", "trusted")?;
    ensure!(
        pong_names(&server, "k1")? == ["k1"],
        "accepted: answers again"
    );
    Ok(())
}

macro_rules! both_dbs {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $scenario() { super::$scenario(super::Db::Sqlite).unwrap() } )*
        }
        mod postgres {
            $( #[test] fn $scenario() { super::$scenario(super::Db::Postgres).unwrap() } )*
        }
    };
}

both_dbs!(
    parallel_window_is_never_exceeded,
    fail_count_and_fail_rate_stop_the_rollout,
    timeouts_lost_agents_and_cancel,
    server_killed_mid_task_resumes_without_running_twice,
    server_killed_on_the_embedded_broker_resumes,
    pull_mode_pool_task,
    a_changed_agent_key_is_refused_until_accepted,
);

/// Issue 9 item 2: a task by filter makes matching agents that are known but
/// offline LOST targets at once (the task shows they did not run), unless
/// online_only; a task they alone would fail is refused.
#[test]
fn offline_matches_become_lost_targets_unless_online_only() -> Result<()> {
    // The embedded broker, secure: the server may clear a status (forget).
    let mut f = Fleet::start_on(BrokerKind::Embedded, Db::Sqlite, 3)?;
    f.agents[2].terminate()?;
    let deadline = Instant::now() + crate::WAIT;
    while f
        .server
        .get("/api/agents?online=true")?
        .1
        .as_array()
        .map_or(0, Vec::len)
        != 2
    {
        ensure!(Instant::now() < deadline, "a2 never went offline");
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = f
        .server
        .submit(json!({"args": {"command": ["true"]}, "filter": "a*"}))?;
    let task = f.server.wait_final(&id)?;
    ensure!(task["state"] == "FAILED", "{task:#}");
    ensure!(
        count(&task, "SUCCEEDED") == 2 && count(&task, "LOST") == 1,
        "{task:#}"
    );
    let lost = targets(&task)
        .into_iter()
        .find(|t| t["state"] == "LOST")
        .ok_or_else(|| anyhow!("no LOST target"))?;
    ensure!(
        lost["agent_name"] == "a2"
            && lost["started_ms"].is_null()
            && lost["error"]
                .as_str()
                .is_some_and(|e| e.contains("offline")),
        "{lost:#}"
    );
    let first = id;
    let id = f
        .server
        .submit(json!({"args": {"command": ["true"]}, "filter": "a*", "online_only": true}))?;
    let task = f.server.wait_final(&id)?;
    ensure!(
        task["state"] == "SUCCEEDED" && targets(&task).len() == 2,
        "{task:#}"
    );
    // Task ids by prefix (issue 9 item 8): unique works, ambiguous exits 2
    // listing both.
    let common = first
        .chars()
        .zip(id.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let show = |prefix: &str| {
        bot_testkit::run_bot(
            bot(),
            &[
                "task",
                "show",
                prefix,
                "--server",
                &f.server.base,
                "--token",
                TOKEN,
            ],
        )
    };
    let (code, out, err) = show(&id[..common + 1])?;
    ensure!(code == 0 && out.contains(&id), "{code} {out} {err}");
    let (code, _, err) = show(&id[..common])?;
    ensure!(
        code == 2 && err.contains("ambiguous") && err.contains(&first) && err.contains(&id),
        "{code} {err}"
    );
    // fail_count 1 with an offline match: refused, naming it.
    let (status, body) = f.server.post(
        "/api/tasks",
        &json!({"args": {"command": ["true"]}, "filter": "a*", "fail_count": 1}),
    )?;
    ensure!(
        status == 422
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("a2") && e.contains("online_only")),
        "{status} {body}"
    );
    Ok(())
}
