//! Schedules and check states end to end: a real `bot server`, real agents
//! running Debian's monitoring plugins, both brokers; read back the way an
//! operator would (`bot checks`, `bot schedule list`, `/metrics`, the
//! series API), and the server SIGKILLed between runs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bot_testkit::TempDir;
use serde_json::{Value, json};

use crate::tasks::{Server, TOKEN};
use crate::{Agent, Broker, BrokerKind, WAIT, bot};

const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// `bot ARGS… --server BASE` with the test token: (code, stdout, stderr).
fn cli(base: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let out = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args(args)
            .args(["--server", base])
            .env("BOT_TOKEN", TOKEN),
    )?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Polls `GET path` until `done(body)`.
fn wait_for(
    server: &Server,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, v) = server.get(path)?;
        ensure!(status == 200, "GET {path}: {status} {v}");
        if done(&v) {
            return Ok(v);
        }
        ensure!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state_of<'a>(checks: &'a Value, check: &str) -> Option<&'a Value> {
    checks.as_array()?.iter().find(|c| c["check"] == check)
}

/// Four check schedules every 2 s on a real agent with Debian's plugins:
/// each first run within the first interval, then on the period's grid;
/// OK, WARNING and CRITICAL by thresholds and UNKNOWN on a timeout, stored
/// and listed worst first by `bot checks`; performance data stored as
/// samples; states in `/metrics`; and, with the agent gone, UNKNOWN
/// "stale" after two intervals.
fn scheduled_checks_keep_states(kind: BrokerKind) -> Result<()> {
    ensure!(
        Path::new(&format!("{PLUGINS}/check_load")).exists(),
        "{PLUGINS}/check_load is missing: run scripts/test.sh (apt-get install monitoring-plugins-basic)"
    );
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("schedules");
    let toml = format!(
        "[checks.load]\ncommand = [\"{PLUGINS}/check_load\", \"-w\", \"1000,1000,1000\", \"-c\", \"2000,2000,2000\"]\n\
         [checks.users]\ncommand = [\"{PLUGINS}/check_dummy\", \"1\", \"something odd\"]\n\
         [checks.root]\ncommand = [\"{PLUGINS}/check_disk\", \"-w\", \"100%\", \"-c\", \"100%\", \"-p\", \"/\"]\n\
         [checks.slow]\ncommand = [\"/bin/sleep\", \"10\"]\ntimeout = 0.5\n"
    );
    let mut agent = Agent::start(bot(), "watched", &[broker.url()], &toml)?;
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let server = Server::start(&broker.server_url(), &db, &dir.path().join("server"))?;
    server.wait_agents(1)?;
    let base = server.base.clone();
    for check in ["load", "users", "root", "slow"] {
        let mut args = vec![
            "schedule",
            "add",
            check,
            "--every",
            "2s",
            "-F",
            "watched",
            "--check",
            check,
            "--timeout",
            "1.5s",
        ];
        if check != "load" {
            args.push("--json");
        }
        let (code, out, err) = cli(&base, &args)?;
        ensure!(code == 0, "{out}{err}");
        if check == "load" {
            ensure!(
                out.contains("schedule load (") && out.contains("first run at"),
                "{out}"
            );
            continue;
        }
        // The first run is splayed within the first interval.
        let s: Value = serde_json::from_str(&out).context(out)?;
        let (made, next) = (s["created_ms"].as_u64(), s["next_run_ms"].as_u64());
        ensure!(
            matches!((made, next), (Some(m), Some(n)) if n >= m && n < m + 2_000),
            "first run not within the interval: {s:#}"
        );
    }
    // States by thresholds, and UNKNOWN on a timeout.
    let checks = wait_for(&server, "/api/checks", "four check states", |v| {
        v.as_array().is_some_and(|a| a.len() == 4)
    })?;
    let want = [
        ("load", "OK", "load average"),
        ("users", "WARNING", "something odd"),
        ("root", "CRITICAL", "DISK CRITICAL"),
        ("slow", "UNKNOWN", "timed out"),
    ];
    for (check, state, text) in want {
        let c = state_of(&checks, check).context(check)?;
        ensure!(c["state"] == state, "{check}: {c:#}");
        ensure!(
            c["output"].as_str().is_some_and(|o| o.contains(text)),
            "{check}: {c:#}"
        );
        ensure!(c["agent_name"] == "watched" && c["stale"] == false, "{c:#}");
    }
    // Worst first.
    let order: Vec<&str> = checks
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["state"].as_str())
        .collect();
    ensure!(
        order == ["CRITICAL", "UNKNOWN", "WARNING", "OK"],
        "{order:?}"
    );
    // The operator's table: only what is wrong, exit 1.
    let (code, out, err) = cli(&base, &["checks", "--state", "warning,critical"])?;
    ensure!(code == 1, "{code} {out}{err}");
    ensure!(
        out.contains("CRITICAL") && out.contains("WARNING") && !out.contains("load average"),
        "{out}"
    );
    ensure!(
        out.contains("2 checks: 1 CRITICAL, 0 UNKNOWN, 1 WARNING, 0 OK"),
        "{out}"
    );
    let (code, _, err) = cli(&base, &["checks", "--state", "bad"])?;
    ensure!(code == 2 && err.contains("\"bad\""), "{code} {err}");
    let (code, out, _) = cli(&base, &["checks", "--check", "load"])?;
    ensure!(
        code == 0 && out.contains("1 checks: 0 CRITICAL, 0 UNKNOWN, 0 WARNING, 1 OK"),
        "{out}"
    );

    // Runs follow the period: successive due times 2 s apart exactly.
    let mut dues = Vec::new();
    let deadline = Instant::now() + WAIT;
    while dues.len() < 3 {
        let (_, s) = server.get("/api/schedules/load")?;
        if let Some(n) = s["next_run_ms"].as_u64()
            && dues.last() != Some(&n)
        {
            dues.push(n);
        }
        ensure!(
            Instant::now() < deadline,
            "the schedule did not run on: {dues:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        dues.windows(2).all(|w| w[1] - w[0] == 2_000),
        "due times off the period: {dues:?}"
    );
    let (_, s) = server.get("/api/schedules/load")?;
    ensure!(s["runs"].as_u64() >= Some(2) && s["missed"] == 0, "{s:#}");

    // Performance data became samples.
    wait_for(
        &server,
        "/api/agents/watched/metrics?name=check.load&step=500",
        "check.load samples",
        |v| {
            v["series"].as_array().is_some_and(|a| {
                a.iter().any(|s| {
                    s["labels"]["perf"] == "load1"
                        && s["values"]
                            .as_array()
                            .is_some_and(|x| x.iter().any(Value::is_number))
                })
            })
        },
    )?;
    // States in /metrics.
    let (status, text) = {
        let mut r = ureq::get(&format!("{base}/metrics"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()?;
        (r.status().as_u16(), r.body_mut().read_to_string()?)
    };
    ensure!(status == 200, "{text}");
    ensure!(
        text.lines()
            .any(|l| l.starts_with("bot_check_state{agent=\"watched\"")
                && l.contains("check=\"root\"")
                && l.ends_with(" 2")),
        "{text}"
    );
    ensure!(text.contains("bot_checks{state=\"CRITICAL\"} 1"), "{text}");

    // The list, for the operator.
    let (code, out, err) = cli(&base, &["schedule", "list"])?;
    ensure!(
        code == 0 && out.contains("every 2s") && out.contains("check load"),
        "{out}{err}"
    );
    // Paused: runs stop; the agent gone: stale after two intervals.
    let (code, out, err) = cli(&base, &["schedule", "pause", "slow"])?;
    ensure!(
        code == 0 && out.contains("schedule slow paused"),
        "{out}{err}"
    );
    let (_, s) = server.get("/api/schedules/slow")?;
    ensure!(s["paused"] == true && s["next_run_ms"].is_null(), "{s:#}");
    agent.terminate()?;
    let checks = wait_for(
        &server,
        "/api/checks?check=load",
        "a stale load check",
        |v| state_of(v, "load").is_some_and(|c| c["stale"] == true),
    )?;
    let c = state_of(&checks, "load").context("load")?;
    ensure!(
        c["state"] == "UNKNOWN"
            && c["output"]
                .as_str()
                .is_some_and(|o| o.starts_with("stale:")),
        "{c:#}"
    );
    let (_, changes) = server.get("/api/agents/watched/checks/changes?check=load")?;
    let tos: Vec<&str> = changes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["to"].as_str())
        .collect();
    ensure!(tos == ["UNKNOWN", "OK"], "{changes:#}");
    // Bad input is refused naming the field.
    let (status, v) = server.post(
        "/api/schedules",
        &json!({"name": "x", "every_s": 0.1, "check": "load"}),
    )?;
    ensure!(
        status == 400
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("every_s: 0.1")),
        "{v}"
    );
    let (status, v) = server.post(
        "/api/schedules",
        &json!({"name": "load", "every_s": 5, "check": "load"}),
    )?;
    ensure!(status == 409, "{status} {v}");
    let (code, _, err) = cli(
        &base,
        &[
            "schedule",
            "add",
            "x",
            "--every",
            "1s",
            "--cron",
            "* * * * *",
            "--check",
            "load",
        ],
    )?;
    ensure!(code == 2, "{err}");
    let (code, out, err) = cli(&base, &["schedule", "rm", "slow"])?;
    ensure!(
        code == 0 && out.contains("schedule slow deleted"),
        "{out}{err}"
    );
    let (status, _) = server.get("/api/schedules/slow")?;
    ensure!(status == 404);
    // Its check state went with it (no stale row left in "what is wrong now").
    let (_, checks) = server.get("/api/checks")?;
    ensure!(state_of(&checks, "slow").is_none(), "{checks:#}");
    ensure!(state_of(&checks, "load").is_some(), "{checks:#}");
    Ok(())
}

/// A command schedule every second whose command takes 2.5 s: runs never
/// overlap (skipped ones counted); the server SIGKILLed between runs and
/// restarted 5 s later: the runs that fell due are reported missed, none
/// is fired twice or replayed in a burst.
fn command_schedules_skip_overlaps_and_report_missed_runs() -> Result<()> {
    let broker = Broker::start(BrokerKind::Mosquitto, bot())?;
    let dir = TempDir::new("schedules");
    let _agent = Agent::start(bot(), "worker", &[broker.url()], "")?;
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let data = dir.path().join("server");
    let mut server = Server::start(&broker.server_url(), &db, &data)?;
    server.wait_agents(1)?;
    let slow = dir.path().join("slow");
    let (status, v) = server.post(
        "/api/schedules",
        &json!({
            "name": "slow",
            "every_s": 1,
            "filter": "worker",
            "command": {"shell": format!("date +%s%N >> {}; sleep 2.5; date +%s%N >> {}", slow.display(), slow.display())},
        }),
    )?;
    ensure!(status == 201, "{v}");
    let s = wait_for(&server, "/api/schedules/slow", "skipped runs", |s| {
        s["skipped"].as_u64() >= Some(3) && s["runs"].as_u64() >= Some(2)
    })?;
    ensure!(s["last_task_id"].is_string(), "{s:#}");
    server.post("/api/schedules/slow/pause", &json!({}))?;
    // Each run's start and end: no start before the previous end.
    std::thread::sleep(Duration::from_secs(3));
    let times: Vec<u128> = std::fs::read_to_string(&slow)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    ensure!(
        times.len() >= 4 && times.len().is_multiple_of(2),
        "{times:?}"
    );
    ensure!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "runs overlapped: {times:?}"
    );

    // Ticks every 2 s; SIGKILL the server just after a run.
    let ticks = dir.path().join("ticks");
    let (status, v) = server.post(
        "/api/schedules",
        &json!({
            "name": "tick",
            "every_s": 2,
            "filter": "worker",
            "command": {"shell": format!("date +%s%N >> {}", ticks.display())},
        }),
    )?;
    ensure!(status == 201, "{v}");
    let before = wait_for(&server, "/api/schedules/tick", "two runs", |s| {
        s["runs"].as_u64() >= Some(2)
    })?;
    let runs_before = before["runs"].as_u64().unwrap_or(0);
    server.kill();
    std::thread::sleep(Duration::from_secs(5));
    let server = Server::start(&broker.server_url(), &db, &data)?;
    let after = wait_for(
        &server,
        "/api/schedules/tick",
        "runs after the restart",
        |s| s["runs"].as_u64() >= Some(runs_before + 2),
    )?;
    ensure!(
        after["missed"].as_u64() >= Some(1),
        "missed runs not reported: {after:#}"
    );
    // Let the last task finish, then compare what ran with what was counted.
    std::thread::sleep(Duration::from_millis(1_500));
    let (_, after) = server.get("/api/schedules/tick")?;
    let runs = after["runs"].as_u64().unwrap_or(0);
    let lines: Vec<u128> = std::fs::read_to_string(&ticks)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    ensure!(
        lines.len() as u64 == runs,
        "{} runs on the agent, {runs} counted: {after:#}",
        lines.len()
    );
    // No double fire, no burst: runs at least a second apart.
    ensure!(
        lines.windows(2).all(|w| w[1] - w[0] >= 1_000_000_000),
        "runs too close together: {lines:?}"
    );
    let (_, tasks) = server.get("/api/tasks?limit=1000")?;
    let made = tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["created_by"] == "schedule:tick")
        .count() as u64;
    ensure!(made == runs, "{made} tasks for {runs} runs");
    Ok(())
}

#[test]
fn command_schedules_skip_overlaps_and_report_missed_runs_on_mosquitto() {
    if let Err(e) = command_schedules_skip_overlaps_and_report_missed_runs() {
        panic!("{e:?}");
    }
}

/// A check schedule on an agent does not get in the way of cancelling a
/// task running there (found by the dashboard test).
#[test]
fn cancel_works_while_checks_are_scheduled() {
    if let Err(e) = cancel_with_checks() {
        panic!("{e:?}");
    }
}

fn cancel_with_checks() -> Result<()> {
    let broker = Broker::start(BrokerKind::Embedded, bot())?;
    let dir = TempDir::new("cancel-checks");
    let toml = "[checks.ok]\ncommand = [\"/bin/true\"]\n";
    let _agent = Agent::start(bot(), "busy", &[broker.url()], toml)?;
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let server = Server::start(&broker.server_url(), &db, &dir.path().join("server"))?;
    server.wait_agents(1)?;
    let (status, v) = server.post(
        "/api/schedules",
        &json!({"name": "ok", "every_s": 1, "check": "ok", "filter": "busy"}),
    )?;
    ensure!(status == 201, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    let (status, t) = server.post(
        "/api/tasks",
        &json!({"args": {"command": ["sleep", "30"]}, "targets": ["busy"]}),
    )?;
    ensure!(status == 201, "{t}");
    let id = t["id"].as_str().context("id")?.to_owned();
    wait_for(&server, &format!("/api/tasks/{id}"), "running", |t| {
        t["targets"][0]["state"] == "RUNNING"
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let (status, v) = server.post(&format!("/api/tasks/{id}/cancel"), &json!({}))?;
    ensure!(status == 200, "{v}");
    let t = wait_for(
        &server,
        &format!("/api/tasks/{id}"),
        "the task to end",
        |t| t["state"] == "CANCELLED",
    )?;
    ensure!(t["targets"][0]["state"] == "FAILED", "{t:#}");
    Ok(())
}

/// A key trusted for `check` only (a monitoring scheduler's): its checks
/// run, its `exec` is refused and runs nothing.
fn a_key_granted_only_check_cannot_exec(kind: BrokerKind) -> Result<()> {
    use bot_auth::{SecretKey, Signer};
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("check-only");
    let monitor = Signer::new(SecretKey::generate()?, "monitor");
    let trust = format!(
        "[[trust]]\nname = \"monitor\"\nkey = \"{}\"\nactions = [\"check\"]\n",
        monitor.public()
    );
    let toml = format!("[checks.ok]\ncommand = [\"/bin/true\"]\n{trust}");
    let agent = Agent::start(bot(), "guarded", &[broker.url()], &toml)?;
    let topic = bot_proto::topics::request_agent_topic(&agent.id()?);
    let mut sub = bot_testkit::Sub::start(broker.port, &["test/check-only"])?;
    let marker = dir.path().join("ran");
    let mut send = |action: bot_proto::Action| -> Result<bot_proto::Reply> {
        let r = monitor.request(bot_proto::Draft {
            action,
            filter: None,
            reply_to: "test/check-only".into(),
            ttl_ms: 60_000,
        });
        bot_testkit::publish(broker.port, &topic, &r.encode())?;
        let deadline = Instant::now() + WAIT;
        loop {
            ensure!(Instant::now() < deadline, "no reply to {}", r.id);
            let (_, payload) = sub.wait_for("a reply", WAIT, |t, _| t == "test/check-only")?;
            let reply =
                bot_proto::Reply::decode(payload.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
            if reply.request_id == r.id {
                return Ok(reply);
            }
        }
    };
    let ok = send(bot_proto::Action::Check(bot_proto::action::CheckArgs {
        name: "ok".into(),
    }))?;
    ensure!(
        ok.status == bot_proto::ReplyStatus::Ok && ok.data["state"] == "OK",
        "{ok:?}"
    );
    let exec = send(bot_proto::Action::Exec(bot_proto::action::ExecArgs::shell(
        format!("touch {}", marker.display()),
    )))?;
    ensure!(exec.status == bot_proto::ReplyStatus::Rejected, "{exec:?}");
    ensure!(
        exec.error
            .as_deref()
            .is_some_and(|e| e.contains("not allowed")),
        "{exec:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    ensure!(!marker.exists(), "the refused exec ran");
    Ok(())
}

/// A check schedule with a per-agent splay sends one request per agent,
/// on each agent's own topic, and records every agent's state.
fn per_agent_splay_sends_each_agent_its_request(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("splay");
    let toml = "[checks.ok]\ncommand = [\"/bin/true\"]\n";
    let agents = (0..3)
        .map(|i| Agent::start(bot(), &format!("s{i}"), &[broker.url()], toml))
        .collect::<Result<Vec<_>>>()?;
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let server = Server::start(&broker.server_url(), &db, &dir.path().join("server"))?;
    server.wait_agents(3)?;
    let mut sub = bot_testkit::Sub::start(broker.port, &["bot/v1/req/agent/+"])?;
    let (status, v) = server.post(
        "/api/schedules",
        &json!({"name": "spread", "every_s": 2, "splay_s": 1.5, "check": "ok", "filter": "s*"}),
    )?;
    ensure!(status == 201 && v["splay_s"] == 1.5, "{v}");
    let mut topics = std::collections::BTreeSet::new();
    while topics.len() < 3 {
        let (t, _) = sub.wait_for("per-agent requests", WAIT, |t, _| {
            t.starts_with("bot/v1/req/agent/")
        })?;
        topics.insert(t);
    }
    let ids: std::collections::BTreeSet<String> = agents
        .iter()
        .map(|a| a.id().map(|id| format!("bot/v1/req/agent/{id}")))
        .collect::<Result<_>>()?;
    ensure!(topics == ids, "{topics:?} vs {ids:?}");
    wait_for(&server, "/api/checks?check=ok", "three states", |v| {
        v.as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|c| c["state"] == "OK"))
    })?;
    Ok(())
}

crate::both_brokers!(
    scheduled_checks_keep_states,
    a_key_granted_only_check_cannot_exec,
    per_agent_splay_sends_each_agent_its_request
);
