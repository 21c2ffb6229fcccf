//! Monitoring through the API: signed metric batches from fake agents on a
//! real broker, stored and served as series, counted in `/metrics`, live on
//! `/api/events`; the wanted measuring config; browser sessions with CSRF.

use std::ops::ControlFlow;

use anyhow::{Result, anyhow, ensure};
use axum::http::{Method, StatusCode, header};
use bot_proto::metrics::{Number, Sample};
use bot_proto::{Metrics, topics};
use serde_json::{Value, json};

use crate::common::{FakeAgent, Harness, SECRET, now_ms, poll};

/// A batch from `agent` at `time_ms`, signed with `key`.
fn batch(
    agent: &FakeAgent,
    key: &bot_auth::SecretKey,
    time_ms: u64,
    samples: Vec<Sample>,
) -> Vec<u8> {
    let mut m = Metrics {
        id: agent.id.clone(),
        name: agent.name.clone(),
        time_ms,
        interval_ms: 10_000,
        samples,
        sig: None,
    };
    m.sig = Some(bot_auth::sign::detached(key, &m.signing_bytes()));
    m.encode()
}

fn agent() -> FakeAgent {
    FakeAgent::new("6f0c6b1e-3e55-4d33-9a43-2b8f4f1c0a01", "mon1", "linux")
}

/// Batches become series (counters as rates), a malformed sample is
/// counted and the rest kept, a forged batch is refused, and `/metrics`
/// shows the latest values, the fleet and the counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_stored_rated_served_and_counted() -> Result<()> {
    let h = Harness::start().await?;
    let a = agent();
    h.add_agents(std::slice::from_ref(&a)).await?;
    let topic = topics::metrics_topic(&a.id);
    let t0 = (now_ms() - 60_000) / 1000 * 1000;
    let round = |cpu: f64, rx: i64| {
        vec![
            Sample::gauge("cpu.usage", Number::Real(cpu)).label("cpu", "total"),
            Sample::derive("net.rx_bytes", rx).label("iface", "eth0"),
        ]
    };
    h.mosquitto_pub(&topic, &batch(&a, &a.key, t0, round(10.0, 1_000)), false)?;
    // The second round carries a malformed sample (the rest is kept).
    let mut bytes: Value =
        serde_json::from_slice(&batch(&a, &a.key, t0 + 10_000, round(42.0, 2_000)))?;
    bytes["samples"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("samples"))?
        .push(json!(["bad name!", {}, 1, "GAUGE"]));
    // Re-sign over what is sent (the signature covers every sample).
    let mut m = Metrics::decode(&serde_json::to_vec(&bytes)?).map_err(|e| anyhow!("{e}"))?;
    m.metrics.sig = Some(bot_auth::sign::detached(&a.key, &m.signing_bytes));
    bytes["sig"] = json!(m.metrics.sig);
    h.mosquitto_pub(&topic, &serde_json::to_vec(&bytes)?, false)?;
    // A batch signed by another key is refused whole.
    let stranger = bot_auth::SecretKey::generate().map_err(|e| anyhow!("{e}"))?;
    h.mosquitto_pub(
        &topic,
        &batch(&a, &stranger, t0 + 20_000, round(99.0, 9_000)),
        false,
    )?;
    // So is one on another agent's topic, and one dated 10 minutes ahead.
    h.mosquitto_pub(
        &topics::metrics_topic("0e7a2c9d-51b4-4b9f-8d7e-5c6a3b2d1fff"),
        &batch(&a, &a.key, t0 + 20_000, round(98.0, 9_000)),
        false,
    )?;
    h.mosquitto_pub(
        &topic,
        &batch(&a, &a.key, now_ms() + 600_000, round(97.0, 9_000)),
        false,
    )?;
    // Labels Prometheus reserves, or that we use, are renamed, never doubled.
    let odd = vec![
        Sample::gauge("lab.x", Number::Int(1))
            .label("__name__", "evil")
            .label("agent", "x"),
    ];
    h.mosquitto_pub(&topic, &batch(&a, &a.key, t0 + 10_000, odd), false)?;

    let path = format!(
        "/api/agents/{}/metrics?name=cpu.usage,net.*&since={}&until={}&step=10000",
        a.name,
        t0,
        t0 + 30_000
    );
    let answer = poll("both rounds as series", || {
        let path = path.clone();
        let h = &h;
        async move {
            let v = h.get(&path).await?.expect(StatusCode::OK)?;
            let cpu = v["series"]
                .as_array()
                .and_then(|s| s.iter().find(|x| x["metric"] == "cpu.usage"))
                .map(|x| x["values"].clone());
            Ok(if cpu == Some(json!([10.0, 42.0, null])) {
                ControlFlow::Break(v)
            } else {
                ControlFlow::Continue(v.to_string())
            })
        }
    })
    .await?;
    ensure!(answer["source"] == "raw", "{answer}");
    ensure!(
        answer["times"] == json!([t0, t0 + 10_000, t0 + 20_000]),
        "{answer}"
    );
    let rx = answer["series"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["metric"] == "net.rx_bytes"))
        .cloned()
        .ok_or_else(|| anyhow!("no net.rx_bytes in {answer}"))?;
    // 1,000 bytes more in 10 s: 100/s; the first reading has no rate.
    ensure!(rx["values"] == json!([null, 100.0, null]), "{rx}");
    ensure!(
        rx["rate"] == true && rx["labels"] == json!({"iface": "eth0"}),
        "{rx}"
    );

    let text = h.get("/metrics").await?;
    ensure!(text.status == StatusCode::OK, "{}", text.text);
    ensure!(
        text.headers[header::CONTENT_TYPE]
            .to_str()?
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        text.headers
    );
    for line in [
        format!(
            "bot_cpu_usage{{agent=\"mon1\",agent_id=\"{}\",cpu=\"total\"}} 42",
            a.id
        ),
        format!(
            "bot_net_rx_bytes_per_second{{agent=\"mon1\",agent_id=\"{}\",iface=\"eth0\"}} 100",
            a.id
        ),
        "bot_agents{state=\"online\"} 1".to_owned(),
        "bot_samples_rejected_total 1".to_owned(),
        "bot_samples_bad_batches_total 3".to_owned(),
        format!(
            "bot_lab_x{{agent=\"mon1\",agent_id=\"{}\",exported_name=\"evil\",exported_agent=\"x\"}} 1",
            a.id
        ),
        "bot_tasks{state=\"RUNNING\"} 0".to_owned(),
    ] {
        ensure!(
            text.text.lines().any(|l| l == line),
            "no {line:?} in\n{}",
            text.text
        );
    }
    ensure!(
        text.text.contains("bot_http_responses_total{code=\"200\"}"),
        "{}",
        text.text
    );
    // Bad queries are named.
    for (q, says) in [
        ("name=bad%20name", "name"),
        ("since=10&until=5", "since"),
        ("step=0", "step"),
    ] {
        h.get(&format!("/api/agents/{}/metrics?{q}", a.id))
            .await?
            .check_error(StatusCode::BAD_REQUEST, &[says])?;
    }
    h.stop().await
}

/// `PUT …/config` stores a revision and publishes a retained, signed
/// config that a fresh subscriber reads back; `GET` shows wanted vs in
/// force; bad values are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_stored_signed_and_retained() -> Result<()> {
    let h = Harness::start().await?;
    let a = agent();
    h.add_agents(std::slice::from_ref(&a)).await?;
    let path = format!("/api/agents/{}/config", a.name);
    let v = h.get(&path).await?.expect(StatusCode::OK)?;
    ensure!(v["wanted"].is_null() && v["in_sync"] == true, "{v}");
    ensure!(
        v["collectors_known"]
            .as_array()
            .is_some_and(|c| c.len() == 10),
        "{v}"
    );
    let put = |body: Value| {
        let h = &h;
        let path = path.clone();
        async move {
            h.send(
                Method::PUT,
                &path,
                Some(SECRET),
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    let v =
        put(json!({"enabled": true, "interval_ms": 5000, "collectors": ["memory", "cpu", "cpu"]}))
            .await?
            .expect(StatusCode::OK)?;
    ensure!(v["wanted"]["revision"] == 1, "{v}");
    // Known names, once, in the agent's order.
    ensure!(v["wanted"]["collectors"] == json!(["cpu", "memory"]), "{v}");
    ensure!(
        v["in_sync"] == false,
        "the fake agent never applies it: {v}"
    );
    let v = put(json!({"enabled": false}))
        .await?
        .expect(StatusCode::OK)?;
    ensure!(
        v["wanted"]["revision"] == 2 && v["wanted"]["interval_ms"] == 5000,
        "{v}"
    );
    for (body, says) in [
        (json!({"interval_ms": 50}), "interval_ms"),
        (json!({"collectors": ["gpu"]}), "gpu"),
        (json!({"colour": "red"}), "colour"),
    ] {
        put(body)
            .await?
            .check_error(StatusCode::BAD_REQUEST, &[says])?;
    }
    // Read back as a user would: a fresh subscriber gets the retained,
    // signed config of revision 2.
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &h.broker.port.to_string()])
            .args(["-t", &topics::config_topic(&a.id), "-C", "1", "-W", "10"])
            .output()
    })?;
    let config = bot_proto::MeasureConfig::decode(out.stdout.trim_ascii_end())
        .map_err(|e| anyhow!("{e}: {}", String::from_utf8_lossy(&out.stdout)))?;
    ensure!(config.revision == 2 && !config.enabled && config.collectors == ["cpu", "memory"]);
    ensure!(config.sig.is_some(), "unsigned config");
    h.stop().await
}

/// A browser logs in with a token: an HttpOnly, SameSite=Strict cookie;
/// with it, reads work, a change needs the CSRF token, and logging out
/// ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_need_the_csrf_token_for_changes() -> Result<()> {
    let h = Harness::start().await?;
    h.add_agents(&[agent()]).await?;
    let bad = h
        .send(
            Method::POST,
            "/api/login",
            None,
            Some("application/json"),
            br#"{"token":"nope"}"#.to_vec(),
        )
        .await?;
    bad.check_error(StatusCode::UNAUTHORIZED, &["invalid token"])?;
    let login = h
        .send(
            Method::POST,
            "/api/login",
            None,
            Some("application/json"),
            json!({ "token": SECRET }).to_string().into_bytes(),
        )
        .await?;
    ensure!(login.status == StatusCode::OK, "{}", login.text);
    let set = login.headers[header::SET_COOKIE].to_str()?.to_owned();
    ensure!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    ensure!(!set.contains("Secure"), "plain HTTP: no Secure flag: {set}");
    let cookie = set.split(';').next().unwrap_or_default().to_owned();
    let csrf = login.json["csrf"].as_str().unwrap_or_default().to_owned();
    ensure!(
        login.json["scope"] == "admin" && csrf.len() >= 32,
        "{}",
        login.text
    );
    let with = |extra: &[(&'static str, String)]| {
        let mut v = vec![("cookie", cookie.clone())];
        v.extend_from_slice(extra);
        v
    };
    let headers = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let h2 = &h;
    let send = |method: Method, path: &'static str, extra: Vec<(&'static str, String)>| async move {
        let hs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        h2.send_with(
            method,
            path,
            None,
            Some("application/json"),
            &hs,
            b"{}".to_vec(),
        )
        .await
    };
    let s = send(Method::GET, "/api/session", headers(&with(&[]))).await?;
    ensure!(
        s.status == StatusCode::OK && s.json["csrf"] == csrf.as_str(),
        "{}",
        s.text
    );
    let agents = send(Method::GET, "/api/agents", headers(&with(&[]))).await?;
    ensure!(agents.status == StatusCode::OK, "{}", agents.text);
    // A change without the CSRF token, or with a wrong one: 403.
    send(Method::PUT, "/api/agents/mon1/config", headers(&with(&[])))
        .await?
        .check_error(StatusCode::FORBIDDEN, &["X-CSRF-Token"])?;
    send(
        Method::PUT,
        "/api/agents/mon1/config",
        headers(&with(&[("x-csrf-token", "0".repeat(64))])),
    )
    .await?
    .check_error(StatusCode::FORBIDDEN, &["X-CSRF-Token"])?;
    let ok = send(
        Method::PUT,
        "/api/agents/mon1/config",
        headers(&with(&[("x-csrf-token", csrf.clone())])),
    )
    .await?;
    ensure!(ok.status == StatusCode::OK, "{}", ok.text);
    // Logged out: the cookie no longer works.
    let out = send(Method::POST, "/api/logout", headers(&with(&[]))).await?;
    ensure!(out.status == StatusCode::NO_CONTENT);
    ensure!(
        out.headers[header::SET_COOKIE]
            .to_str()?
            .contains("Max-Age=0"),
        "{:?}",
        out.headers
    );
    send(Method::GET, "/api/session", headers(&with(&[])))
        .await?
        .check_error(StatusCode::UNAUTHORIZED, &["not logged in"])?;
    send(Method::GET, "/api/agents", headers(&with(&[])))
        .await?
        .check_error(StatusCode::UNAUTHORIZED, &["missing token"])?;
    h.stop().await
}

/// `/api/events` over a real socket: an agent coming online and a round of
/// its samples arrive as Server-Sent Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_agents_and_samples() -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let h = Harness::start().await?;
    let a = agent();
    h.add_agents(std::slice::from_ref(&a)).await?;
    let addr = h.addr().ok_or_else(|| anyhow!("no address"))?;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "GET /api/events?samples={} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\r\n",
            a.id
        )
        .as_bytes(),
    )
    .await?;
    let mut lines = BufReader::new(s).lines();
    let head = lines.next_line().await?.unwrap_or_default();
    ensure!(head.contains("200"), "{head}");
    // Another agent comes online; then a round of the first one.
    let other = FakeAgent::new("0e7a2c9d-51b4-4b9f-8d7e-5c6a3b2d1f00", "mon2", "linux");
    h.mosquitto_pub(&topics::status_topic(&other.id), &other.status(), true)?;
    let samples = vec![Sample::gauge("cpu.usage", Number::Real(12.5)).label("cpu", "total")];
    let t = now_ms();
    let deadline = std::time::Instant::now() + crate::common::WAIT;
    let (mut saw_agent, mut saw_samples, mut saw_headline) = (false, false, false);
    let mut event = String::new();
    while !(saw_agent && saw_samples && saw_headline) {
        ensure!(
            std::time::Instant::now() < deadline,
            "agent {saw_agent}, samples {saw_samples}, headline {saw_headline}"
        );
        if saw_agent && !saw_samples {
            h.mosquitto_pub(
                &topics::metrics_topic(&a.id),
                &batch(&a, &a.key, t, samples.clone()),
                false,
            )?;
        }
        let line = match tokio::time::timeout(std::time::Duration::from_secs(2), lines.next_line())
            .await
        {
            Err(_) => continue,
            Ok(r) => r?.ok_or_else(|| anyhow!("the event stream ended"))?,
        };
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data)?;
            match event.as_str() {
                "agent" if v["id"] == other.id.as_str() && v["online"] == true => saw_agent = true,
                "samples" if v["agent_id"] == a.id.as_str() => {
                    ensure!(
                        v["samples"] == json!([["cpu.usage", {"cpu": "total"}, 12.5, "GAUGE"]]),
                        "{v}"
                    );
                    saw_samples = true;
                }
                "headline" if v["agent_id"] == a.id.as_str() => {
                    ensure!(v["cpu"] == 12.5, "{v}");
                    saw_headline = true;
                }
                _ => {}
            }
        }
    }
    h.stop().await
}
