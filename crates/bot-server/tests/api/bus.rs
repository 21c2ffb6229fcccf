//! The HTTP → bus bridge: `POST /api/publish` (checked, then seen by a real
//! `mosquitto_sub`) and `POST /api/call` (checked; agents that never answer
//! are listed in `no_reply`).

use anyhow::{Context, Result, ensure};
use axum::http::StatusCode;
use bot_testkit::Sub;
use serde_json::json;

use crate::common::{Harness, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_checks_then_publishes() -> Result<()> {
    let h = Harness::start().await?;
    for (what, body, words) in [
        (
            "wildcard #",
            json!({"topic": "test/#", "payload": "x"}),
            &["topic", "\"test/#\""][..],
        ),
        (
            "wildcard +",
            json!({"topic": "test/+/x", "payload": "x"}),
            &["topic", "\"test/+/x\""][..],
        ),
        (
            "empty topic",
            json!({"topic": "", "payload": "x"}),
            &["topic"][..],
        ),
        (
            "qos 2",
            json!({"topic": "test/a", "payload": "x", "qos": 2}),
            &["qos: 2"][..],
        ),
        (
            "payload too big",
            json!({"topic": "test/a", "payload": "x".repeat(256 * 1024 + 1)}),
            &["payload", "262145 bytes"][..],
        ),
    ] {
        h.post("/api/publish", &body)
            .await?
            .check_error(StatusCode::BAD_REQUEST, words)
            .map_err(|e| e.context(what))?;
    }

    let port = h.broker.port;
    let mut sub = tokio::task::block_in_place(|| Sub::start(port, &["test/#"]))?;
    for qos in [0, 1] {
        let payload = format!("hello at qos {qos}");
        let ok = h
            .post(
                "/api/publish",
                &json!({"topic": "test/hello", "payload": payload, "qos": qos}),
            )
            .await?
            .expect(StatusCode::OK)?;
        ensure!(
            ok == json!({"topic": "test/hello", "bytes": payload.len()}),
            "{ok}"
        );
        let (topic, got) = tokio::task::block_in_place(|| {
            sub.wait_for("the published message", WAIT, |_, p| p == payload)
        })?;
        ensure!(topic == "test/hello", "topic {topic}");
        ensure!(got == payload, "payload {got}");
    }
    drop(sub);

    // Retained: a subscriber that comes later still gets it.
    h.post(
        "/api/publish",
        &json!({"topic": "test/kept", "payload": "kept", "qos": 1, "retain": true}),
    )
    .await?
    .expect(StatusCode::OK)?;
    let mut late = tokio::task::block_in_place(|| Sub::start(port, &["test/kept"]))?;
    let (topic, got) = tokio::task::block_in_place(|| {
        late.wait_for("the retained message", WAIT, |t, _| t == "test/kept")
    })?;
    ensure!(topic == "test/kept" && got == "kept", "{topic} {got}");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_checks_and_lists_silent_agents() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    for (what, body, words) in [
        (
            "timeout_s 0",
            json!({"action": "ping", "timeout_s": 0}),
            &["timeout_s: 0"][..],
        ),
        (
            "timeout_s 301",
            json!({"action": "ping", "timeout_s": 301}),
            &["timeout_s: 301"][..],
        ),
        (
            "filter syntax",
            json!({"action": "ping", "filter": "os==linux"}),
            &["filter", "os==linux", "column 3"][..],
        ),
    ] {
        h.post("/api/call", &body)
            .await?
            .check_error(StatusCode::BAD_REQUEST, words)
            .map_err(|e| e.context(what))?;
    }

    let answer = h
        .post(
            "/api/call",
            &json!({"action": "ping", "filter": "os=linux", "timeout_s": 0.3}),
        )
        .await?
        .expect(StatusCode::OK)?;
    ensure!(answer["replies"] == json!([]), "{answer}");
    ensure!(
        answer["no_reply"]
            == json!([{"agent_id": "0e0b0001-0000-4000-8000-000000000001", "agent_name": "web1"},
                      {"agent_id": "0e0b0002-0000-4000-8000-000000000002", "agent_name": "web2"}]),
        "{answer}"
    );
    let elapsed = answer["elapsed_ms"].as_u64().context("elapsed_ms")?;
    ensure!((300..5_000).contains(&elapsed), "elapsed {elapsed} ms");
    // A filter matching nobody is answered at once, as for tasks.
    h.post(
        "/api/call",
        &json!({"action": "ping", "filter": "nobody*", "timeout_s": 60}),
    )
    .await?
    .check_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &["nobody*", "no online agent"],
    )?;
    // Known but offline matches: in their own list, and named when no
    // online agent matches.
    let mut gone =
        crate::common::FakeAgent::new("0e0b0003-0000-4000-8000-000000000003", "web3", "linux");
    gone.online = false;
    let mut db2 =
        crate::common::FakeAgent::new("0d0b0002-0000-4000-8000-000000000002", "db2", "solaris");
    db2.online = false;
    h.add_agents(&[gone, db2]).await?;
    let answer = h
        .post(
            "/api/call",
            &json!({"action": "ping", "filter": "os=linux", "timeout_s": 0.3}),
        )
        .await?
        .expect(StatusCode::OK)?;
    let offline: Vec<&str> = answer["offline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["agent_name"].as_str())
        .collect();
    ensure!(offline == ["web3"], "{answer}");
    ensure!(
        answer["no_reply"].as_array().map(Vec::len) == Some(2),
        "{answer}"
    );
    h.post(
        "/api/call",
        &json!({"action": "ping", "filter": "os=solaris", "timeout_s": 60}),
    )
    .await?
    .check_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &["no online agent", "db2"],
    )?;
    // A misspelt field is a bad request naming it.
    h.post("/api/call", &json!({"action": "ping", "argz": {}}))
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["argz"])?;
    h.stop().await
}
