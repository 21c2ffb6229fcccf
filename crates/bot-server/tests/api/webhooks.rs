//! Webhooks through the API, on the test's clock: a hook whose deliveries
//! keep failing is disabled after the last attempt, with its reason, and
//! enabled again; validation names the field.

use anyhow::{Context, Result, ensure};
use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_keeps_failing_is_disabled_and_reported() -> Result<()> {
    let clock = bot_server::clock::ManualClock::new(bot_proto::now_ms());
    let c = clock.clone();
    let h = Harness::start_with(move |config| config.clock = c).await?;
    // A port where nothing listens: every attempt is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let hook = h
        .post(
            "/api/webhooks",
            &json!({"name": "dead", "url": format!("http://127.0.0.1:{port}/hook"),
                    "events": ["agent.online"], "secret": "0123456789abcdef"}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    ensure!(
        hook["enabled"] == true && hook.get("secret").is_none(),
        "{hook}"
    );
    h.post(
        "/api/webhooks",
        &json!({"name": "x", "url": "http://h/", "events": ["task.started"], "secret": "0123456789abcdef"}),
    )
    .await?
    .check_error(StatusCode::BAD_REQUEST, &["events", "task.started"])?;
    h.post(
        "/api/webhooks",
        &json!({"name": "dead", "url": "http://h/", "events": ["agent.online"], "secret": "0123456789abcdef"}),
    )
    .await?
    .check_error(StatusCode::CONFLICT, &["dead"])?;

    h.add_fleet().await?;
    // Each attempt fails; the clock jumps past every backoff.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let disabled = loop {
        clock.advance(std::time::Duration::from_secs(600));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let w = h.get("/api/webhooks/dead").await?.expect(StatusCode::OK)?;
        if w["enabled"] == false {
            break w;
        }
        ensure!(std::time::Instant::now() < deadline, "never disabled: {w}");
    };
    let reason = disabled["disabled_reason"].as_str().context("a reason")?;
    ensure!(
        reason.contains("failed 12 times") && reason.contains("last:"),
        "{reason}"
    );
    let list = h
        .get("/api/webhooks/dead/deliveries")
        .await?
        .expect(StatusCode::OK)?;
    let list = list.as_array().context("a list")?;
    ensure!(!list.is_empty(), "no deliveries");
    ensure!(
        list.iter()
            .any(|d| d["state"] == "failed" && d["attempts"] == 12),
        "{list:#?}"
    );
    // The other deliveries wait (not attempted while disabled), none lost.
    ensure!(
        list.iter()
            .all(|d| d["state"] == "failed" || d["state"] == "pending"),
        "{list:#?}"
    );
    let w = h
        .post("/api/webhooks/dead/enable", &json!({}))
        .await?
        .expect(StatusCode::OK)?;
    ensure!(
        w["enabled"] == true && w.get("disabled_reason").is_none(),
        "{w}"
    );
    h.stop().await
}
