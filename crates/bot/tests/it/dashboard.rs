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
    let done = bot_testkit::output_within(&mut cmd, b"", Duration::from_secs(240))
        .context("cannot run node (apt-get install nodejs, or scripts/test.sh)")?;
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    ensure!(
        !done.timed_out && done.status.is_some_and(|s| s.success()),
        "dashboard.mjs {steps} failed ({:?}):\n{stdout}\n{stderr}",
        done.status
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

/// Log in, see the agent live, watch its CPU chart get live points, untick
/// CPU and see that chart stop (and its samples stop arriving on the bus),
/// run and cancel a task, read the events; then stop the agent and see it
/// go offline on the fleet page.
#[test]
fn the_dashboard_works_in_a_real_browser() -> Result<()> {
    let broker = Broker::start(BrokerKind::Embedded, bot())?;
    let dir = bot_testkit::TempDir::new("dashboard");
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let server =
        crate::tasks::Server::start(&broker.server_url(), &db, &dir.path().join("server"))?;
    let mut agent = Agent::start(bot(), "dash", &[broker.url()], "")?;
    server.wait_agents(1)?;
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
    ];
    let lines = run_steps(&env, "login,agent-chart,untick-cpu,task,events,mobile")?;
    let latency = lines
        .iter()
        .find(|l| l["step"] == "agent-chart")
        .and_then(|l| l["latency_ms"].as_f64())
        .ok_or_else(|| anyhow!("no latency in {lines:?}"))?;
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
