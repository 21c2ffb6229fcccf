//! Monitoring on the bus (issue 10): a real agent's signed metric batches
//! next to its classic `DATA/<name>` lines, and its live measuring config
//! (the retained, signed `bot/v1/config/<id>`), read back by a fresh
//! subscriber on both brokers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bot_proto::metrics::Sample;
use bot_proto::{MeasureConfig, Metrics, Status};
use bot_testkit::{logins, publish, publish_with};

use crate::{Agent, Broker, BrokerKind, Sub, WAIT, bot, both_brokers};

both_brokers!(
    agents_publish_signed_batches_and_apply_live_config,
    the_fleet_is_monitored_end_to_end
);

/// `-u server -P …` with a server client id on the embedded broker (where
/// only the server may publish configs); nothing on the test mosquitto.
fn server_login(kind: BrokerKind) -> Vec<String> {
    match kind {
        BrokerKind::Embedded => vec![
            "-u".into(),
            "server".into(),
            "-P".into(),
            logins().server_password.clone(),
            "-i".into(),
            format!("bot-server-test-{}", std::process::id()),
        ],
        BrokerKind::Mosquitto => Vec::new(),
    }
}

/// A config for `id` signed by `key`.
fn config(
    id: &str,
    key: &bot_auth::SecretKey,
    revision: u64,
    enabled: bool,
    collectors: &[&str],
) -> Vec<u8> {
    let mut c = MeasureConfig {
        id: id.into(),
        revision,
        enabled,
        interval_ms: 500,
        collectors: collectors.iter().map(|s| (*s).to_owned()).collect(),
        created_ms: bot_proto::now_ms(),
        sig: None,
    };
    c.sig = Some(bot_auth::sign::detached(key, &c.signing_bytes()));
    c.encode()
}

/// The next batch on the subscription, checked against the agent's key.
fn next_batch(sub: &mut Sub, topic: &str, key: &bot_auth::PublicKey) -> Result<Metrics> {
    let (_, payload) = sub.wait_for("a metrics batch", WAIT, |t, _| t == topic)?;
    let d = Metrics::decode(payload.as_bytes()).context("the batch decodes")?;
    ensure!(
        d.rejected == 0,
        "{} samples rejected: {:?}",
        d.rejected,
        d.first_rejection
    );
    let sig = d
        .metrics
        .sig
        .as_deref()
        .ok_or_else(|| anyhow!("unsigned batch"))?;
    let (_, sig) = bot_auth::sign::split_sig(sig).map_err(|e| anyhow!(e))?;
    ensure!(
        key.verify(&d.signing_bytes, &sig),
        "the batch's signature does not verify"
    );
    Ok(d.metrics)
}

fn has(batch: &Metrics, metric: &str, label: Option<(&str, &str)>) -> bool {
    batch.samples.iter().any(|s: &Sample| {
        s.metric == metric && label.is_none_or(|(k, v)| s.label_value(k) == Some(v))
    })
}

/// Waits for a status of the agent satisfying `pred` on its status topic.
fn wait_status(
    sub: &mut Sub,
    topic: &str,
    what: &str,
    pred: impl Fn(&Status) -> bool,
) -> Result<Status> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, payload) = sub.wait_for(what, left, |t, _| t == topic)?;
        if let Ok(s) = Status::decode(payload.as_bytes())
            && pred(&s)
        {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
    }
}

fn agents_publish_signed_batches_and_apply_live_config(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    // Its own state directory, so that a restarted agent is the same one.
    let state = bot_testkit::TempDir::new("meter-state");
    let toml = format!(
        "interval = 0.5\nstate_dir = {:?}\n",
        state.path().display().to_string()
    );
    let mut agent = Agent::start(bot(), "meter", &[broker.url()], &toml)?;
    let id = std::fs::read_to_string(state.path().join("agent-id"))?
        .trim()
        .to_owned();
    let metrics_topic = bot_proto::topics::metrics_topic(&id);
    let status_topic = bot_proto::topics::status_topic(&id);
    let config_topic = bot_proto::topics::config_topic(&id);
    let mut sub = Sub::start(broker.port, &[&metrics_topic, "DATA/meter", &status_topic])?;
    // The retained status: the agent's key, and its settings (off).
    let status = wait_status(&mut sub, &status_topic, "the agent's status", |s| s.online)?;
    let key: bot_auth::PublicKey = status
        .key
        .as_deref()
        .ok_or_else(|| anyhow!("no key in the status"))?
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    let m = status
        .measure
        .clone()
        .ok_or_else(|| anyhow!("no measure in {status:?}"))?;
    ensure!(!m.enabled && m.revision == 0, "{m:?}");
    ensure!(m.collectors.iter().any(|c| c == "cpu"), "{m:?}");

    // 1. The classic SEL: batches with labelled samples, and the classic
    //    lines beside them, unchanged.
    publish(broker.port, "BUS", b"'meter': SEL")?;
    let batch = next_batch(&mut sub, &metrics_topic, &key)?;
    ensure!(
        batch.id == id && batch.name == "meter" && batch.interval_ms == 500,
        "{batch:?}"
    );
    for (metric, label) in [
        ("cpu.usage", Some(("cpu", "total"))),
        ("memory.used", None),
        ("disk.total", Some(("mount", "/"))),
        ("uptime", None),
        ("cpu.load", None),
        ("core.processing_time", None),
    ] {
        ensure!(
            has(&batch, metric, label),
            "{metric} {label:?} missing from {batch:?}"
        );
    }
    ensure!(
        batch
            .samples
            .iter()
            .any(|s| s.metric == "net.rx_bytes" && s.label_value("iface").is_some()),
        "no per-interface net.rx_bytes: {batch:?}"
    );
    sub.wait_for("a classic cpu.load line", WAIT, |t, p| {
        t == "DATA/meter" && p.starts_with("meter:cpu.load:") && p.ends_with(":GAUGE")
    })?;
    let s = wait_status(&mut sub, &status_topic, "the status after SEL", |s| {
        s.measure.as_ref().is_some_and(|m| m.enabled && m.local)
    })?;
    ensure!(s.online);

    // 2. A config signed by a key the agent does not trust is refused.
    let stranger = bot_auth::SecretKey::generate().map_err(|e| anyhow!("{e}"))?;
    let login = server_login(kind);
    let mut args: Vec<&str> = vec!["-r"];
    args.extend(login.iter().map(String::as_str));
    publish_with(
        broker.port,
        &config_topic,
        &config(&id, &stranger, 9, true, &["memory"]),
        &args,
    )?;
    agent.log.wait_for("the refusal", WAIT, |l| {
        l.contains("measuring config refused")
    })?;

    // 3. The server's config: only memory, at once; the status says so.
    let server =
        bot_auth::SecretKey::load(&bot_testkit::keys().server).map_err(|e| anyhow!("{e}"))?;
    publish_with(
        broker.port,
        &config_topic,
        &config(&id, &server, 1, true, &["memory"]),
        &args,
    )?;
    wait_status(
        &mut sub,
        &status_topic,
        "the status with config revision 1",
        |s| {
            s.measure.as_ref().is_some_and(|m| {
                m.revision == 1 && !m.local && m.collectors == ["memory"] && m.interval_ms == 500
            })
        },
    )?;
    // The batches that follow hold memory samples only (and the agent's own).
    let deadline = Instant::now() + WAIT;
    let memory_only = loop {
        let b = next_batch(&mut sub, &metrics_topic, &key)?;
        if b.samples
            .iter()
            .all(|s| s.metric.starts_with("memory.") || s.metric.starts_with("core."))
        {
            break b;
        }
        ensure!(Instant::now() < deadline, "still other collectors: {b:?}");
    };
    ensure!(has(&memory_only, "memory.used", None), "{memory_only:?}");

    // 4. Off: the batches stop (read back by a new subscriber).
    publish_with(
        broker.port,
        &config_topic,
        &config(&id, &server, 2, false, &["memory"]),
        &args,
    )?;
    wait_status(
        &mut sub,
        &status_topic,
        "the status with measuring off",
        |s| {
            s.measure
                .as_ref()
                .is_some_and(|m| m.revision == 2 && !m.enabled)
        },
    )?;
    let mut fresh = Sub::start(broker.port, &[&metrics_topic])?;
    ensure!(
        fresh.next(Duration::from_secs(2)).is_none(),
        "a batch arrived with measuring off"
    );

    // 5. A restarted agent applies the retained config at once: its
    //    status says revision 2, off, and no batch comes.
    agent.terminate()?;
    let _again = Agent::start(bot(), "meter", &[broker.url()], &toml)?;
    let mut after = Sub::start(broker.port, &[&status_topic, &metrics_topic])?;
    wait_status(
        &mut after,
        &status_topic,
        "the restarted agent's status",
        |s| {
            s.online
                && s.measure
                    .as_ref()
                    .is_some_and(|m| m.revision == 2 && !m.enabled)
        },
    )?;
    Ok(())
}

/// `bot config show` for `node` against `server`: (exit code, stdout, stderr).
fn config_cmd(base: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let out = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args(["config"])
            .args(args)
            .args(["--server", base])
            .env("BOT_TOKEN", crate::tasks::TOKEN),
    )?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Polls `bot config show NODE` until its output contains `want`.
fn wait_config(base: &str, node: &str, want: &str) -> Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, out, err) = config_cmd(base, &["show", node])?;
        if code == 0 && out.contains(want) {
            return Ok(out);
        }
        ensure!(Instant::now() < deadline, "no {want:?} in:\n{out}{err}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A real agent, `bot server` and Prometheus: `bot config set` turns
/// measuring on at once; the samples are stored and served as series,
/// scraped by Prometheus; a classic UNSEL shows as a local change.
fn the_fleet_is_monitored_end_to_end(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let dir = bot_testkit::TempDir::new("monitoring");
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let server =
        crate::tasks::Server::start(&broker.server_url(), &db, &dir.path().join("server"))?;
    let _agent = Agent::start(bot(), "mon", &[broker.url()], "")?;
    server.wait_agents(1)?;
    let base = server.base.clone();

    // Nothing wanted yet: the agent runs its own settings (off).
    let out = wait_config(&base, "mon", "none set on the server")?;
    ensure!(out.contains("measuring") && out.contains("off"), "{out}");
    let (code, out, err) = config_cmd(
        &base,
        &[
            "set",
            "mon",
            "enabled=true",
            "interval=500ms",
            "collectors=cpu,memory,net",
        ],
    )?;
    ensure!(code == 0, "{out}{err}");
    ensure!(out.contains("mon: revision 1 sent"), "{out}");
    let out = wait_config(&base, "mon", "state: in sync")?;
    ensure!(
        out.contains("500ms") && out.contains("cpu,memory,net"),
        "{out}"
    );
    // A bad setting is a usage error naming it.
    let (code, _, err) = config_cmd(&base, &["set", "mon", "collectors=gpu"])?;
    ensure!(code == 2 && err.contains("gpu"), "{code} {err}");

    // The samples, as series.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, v) =
            server.get("/api/agents/mon/metrics?name=cpu.usage,net.rx_bytes&step=500")?;
        ensure!(status == 200, "{v}");
        let known = |metric: &str| {
            v["series"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["metric"] == metric)
                .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
                .filter(|x| x.is_number())
                .count()
        };
        if known("cpu.usage") >= 2 && known("net.rx_bytes") >= 1 {
            break;
        }
        ensure!(Instant::now() < deadline, "series still too short: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A real Prometheus scrapes /metrics with a read token.
    let target = base.trim_start_matches("http://");
    let prom = bot_testkit::Prometheus::start(
        target,
        "/metrics",
        Some(crate::tasks::TOKEN),
        Duration::from_secs(1),
    )?;
    prom.wait_for(r#"bot_cpu_usage{agent="mon",cpu="total"}"#, WAIT, |r| {
        r.as_array().is_some_and(|a| !a.is_empty())
    })?;
    prom.wait_for(r#"bot_agents{state="online"}"#, WAIT, |r| {
        r[0]["value"][1] == "1"
    })?;
    prom.wait_for("bot_samples_ingested_total", WAIT, |r| {
        r[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
    })?;
    let targets = prom.targets()?;
    ensure!(targets[0]["health"] == "up", "{targets}");

    // The classic protocol still works, and shows as a local change.
    publish(broker.port, "BUS", b"'mon': UNSEL")?;
    let out = wait_config(&base, "mon", "changed on the agent")?;
    ensure!(out.contains("revision 1"), "{out}");
    // Setting it again brings it back in sync.
    let (code, out, err) = config_cmd(&base, &["set", "-F", "mon", "enabled=true"])?;
    ensure!(code == 0 && out.contains("revision 2"), "{out}{err}");
    wait_config(&base, "mon", "state: in sync")?;
    Ok(())
}
