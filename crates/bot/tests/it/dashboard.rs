//! The web dashboard in a real browser (issue 10): Debian's Chromium driven
//! by playwright-core (`tests/browser/dashboard.mjs`), against a real
//! `bot server`, a real agent and the embedded broker. Screenshots of each
//! page go to `target/dashboard-screenshots/` for review.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::Value;

use crate::{Agent, Broker, BrokerKind, bot};

/// The browser test's directory (its node_modules come from `npm ci`,
/// which scripts/test.sh runs).
fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs `dashboard.mjs` with `steps`; returns its JSON lines.
fn run_steps(env: &[(&str, String)], steps: &str) -> Result<Vec<Value>> {
    run_steps_with(env, steps, |_| Ok(()))
}

/// [`run_steps`], calling `during(child)` while the script runs.
fn run_steps_with(
    env: &[(&str, String)],
    steps: &str,
    during: impl FnOnce(&mut std::process::Child) -> Result<()>,
) -> Result<Vec<Value>> {
    let dir = browser_dir();
    ensure!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{}/node_modules is missing: run scripts/test.sh (it runs npm ci there)",
        dir.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg("dashboard.mjs")
        .current_dir(&dir)
        .env("BOT_STEPS", steps)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out_file = tempfile(&format!("dashboard-{}.out", std::process::id()));
    let err_file = tempfile(&format!("dashboard-{}.err", std::process::id()));
    let mut child = cmd
        .stdout(std::fs::File::create(&out_file)?)
        .stderr(std::fs::File::create(&err_file)?)
        .spawn()
        .context("cannot run node (apt-get install nodejs, or scripts/test.sh)")?;
    let during = during(&mut child);
    // The script's own waits are bounded; this bounds the whole.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_file(&err_file);
    during.map_err(|e| e.context(format!("while dashboard.mjs ran:\n{stdout}\n{stderr}")))?;
    ensure!(
        status.is_some_and(|s| s.success()),
        "dashboard.mjs {steps} failed ({status:?}):\n{stdout}\n{stderr}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for step in steps.split(',') {
        ensure!(
            lines.iter().any(|l| l["step"] == step && l["ok"] == true),
            "step {step} did not report ok:\n{stdout}\n{stderr}"
        );
    }
    // Shown with --nocapture: the figures of the run (latency, points, …).
    for l in &lines {
        eprintln!("dashboard: {l}");
    }
    Ok(lines)
}

fn tempfile(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

/// Log in, see the agent live, watch its CPU chart get live points, untick
/// CPU and see that chart stop (and its samples stop arriving on the bus),
/// run and cancel a task, read the events, see a scheduled check turn
/// CRITICAL live on the checks page; then stop the agent and see it go
/// offline on the fleet page.
#[test]
fn the_dashboard_works_in_a_real_browser() -> Result<()> {
    let broker = Broker::start(BrokerKind::Embedded, bot())?;
    let dir = bot_testkit::TempDir::new("dashboard");
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let server =
        crate::tasks::Server::start(&broker.server_url(), &db, &dir.path().join("server"))?;
    // A check the browser turns CRITICAL by making a file.
    let flag = dir.path().join("flag");
    let toml = format!(
        "[checks.flag]\ncommand = [\"/bin/sh\", \"-c\", \"if [ -e {} ]; then echo 'FLAG CRITICAL - down'; exit 2; fi; echo 'FLAG OK'\"]\n",
        flag.display()
    );
    let mut agent = Agent::start(bot(), "dash", &[broker.url()], &toml)?;
    server.wait_agents(1)?;
    let (status, v) = server.post(
        "/api/schedules",
        &serde_json::json!({"name": "flag", "every_s": 1, "check": "flag", "filter": "dash"}),
    )?;
    ensure!(status == 201, "{v}");
    let (_, a) = server.get("/api/agents/dash")?;
    let id = a["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id: {a}"))?
        .to_owned();
    // Measuring on, every second, every collector: through the API.
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = http
        .put(&format!("{}/api/agents/dash/config", server.base))
        .header("Authorization", &format!("Bearer {}", crate::tasks::TOKEN))
        .header("Content-Type", "application/json")
        .send(br#"{"enabled":true,"interval_ms":1000}"#.as_slice())?;
    ensure!(r.status() == 200, "{}", r.body_mut().read_to_string()?);

    let shots =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    let env = vec![
        ("BOT_URL", server.base.clone()),
        ("BOT_TOKEN", crate::tasks::TOKEN.to_owned()),
        ("BOT_AGENT_ID", id.clone()),
        ("BOT_AGENT_NAME", "dash".to_owned()),
        ("BOT_SCREENSHOTS", shots.display().to_string()),
        ("BOT_INTERVAL_MS", "1000".to_owned()),
        ("BOT_CHECK_FLAG", flag.display().to_string()),
    ];
    let first = run_steps(&env, "login,agent-chart")?;
    // Untick CPU in the browser; while it is off, a fresh subscriber sees
    // the agent's next batches without any cpu.* sample (and memory's).
    let hold = tempfile(&format!("dashboard-hold-{}", std::process::id()));
    let _ = std::fs::remove_file(&hold);
    let mut hold_env = env.clone();
    hold_env.push(("BOT_HOLD_FILE", hold.display().to_string()));
    let topic = bot_proto::topics::metrics_topic(&id);
    run_steps_with(&hold_env, "untick-cpu", |child| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !hold.exists() {
            ensure!(
                child.try_wait()?.is_none(),
                "the script ended before unticking"
            );
            ensure!(
                std::time::Instant::now() < deadline,
                "cpu was never unticked"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut sub = bot_testkit::Sub::start(broker.port, &[&topic])?;
        for _ in 0..3 {
            let (_, payload) = sub.wait_for("a batch", crate::WAIT, |t, _| t == topic)?;
            let d = bot_proto::Metrics::decode(payload.as_bytes()).map_err(|e| anyhow!("{e}"))?;
            let names: Vec<&str> = d
                .metrics
                .samples
                .iter()
                .map(|s| s.metric.as_str())
                .collect();
            // The cpu collector's metrics (cpu.load* is the load collector's).
            let cpu = [
                "cpu.usage",
                "cpu.user",
                "cpu.system",
                "cpu.iowait",
                "cpu.steal",
            ];
            ensure!(
                !names.iter().any(|m| cpu.contains(m)),
                "cpu samples on the bus after the untick: {names:?}"
            );
            ensure!(names.contains(&"memory.used"), "{names:?}");
        }
        std::fs::remove_file(&hold)?;
        Ok(())
    })?;
    run_steps(&env, "task,events,checks,mobile")?;
    let latency = first
        .iter()
        .find(|l| l["step"] == "agent-chart")
        .and_then(|l| l["latency_ms"].as_f64())
        .ok_or_else(|| anyhow!("no latency in {first:?}"))?;
    ensure!(latency >= 0.0, "latency {latency}");

    // The untick went to the agent: its batches now carry no cpu.* sample
    // (read by a fresh subscriber) — unless the test ticked it back, which
    // the untick-cpu step does at its end; so check the config history.
    let (_, cfg) = server.get("/api/agents/dash/config")?;
    ensure!(
        cfg["wanted"]["revision"].as_u64().is_some_and(|r| r >= 3),
        "the browser's untick and re-tick were not stored: {cfg}"
    );

    // Offline: stop the agent, the fleet page shows it within the step's wait.
    agent.terminate()?;
    run_steps(&env, "offline")?;
    for png in [
        "fleet.png",
        "agent.png",
        "agent-cpu-off.png",
        "task.png",
        "events.png",
        "fleet-offline.png",
    ] {
        ensure!(
            shots.join(png).is_file(),
            "no screenshot {png} in {}",
            shots.display()
        );
    }
    Ok(())
}
