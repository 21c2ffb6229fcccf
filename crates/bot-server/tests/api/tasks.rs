//! `/api/tasks`: every submit rejection (status and a message naming the
//! field and value), a valid submit against fake agents, show and list,
//! cancel (waiting targets skipped, the running one kept until its
//! timeout), and retry (409 without failures, 201 after a timeout).
//!
//! The fake agents never answer unless the test sends a reply for them, so
//! a RUNNING target ends by its timeout plus the engine's reply grace
//! (`REPLY_GRACE_MS`, 5 s). The tests that need that move the engine's
//! clock themselves (`bot_server::clock::ManualClock`): none waits it out.

use std::fmt::Write as _;

use anyhow::{Context, Result, ensure};
use std::ops::ControlFlow;

use axum::http::{Method, StatusCode};
use bot_server::MAX_BODY_BYTES;
use serde_json::{Value, json};

use crate::common::{Harness, READ_SECRET, TOKEN_NAME, poll, target_field, target_states};

/// One submission that must be refused.
struct Bad {
    what: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: StatusCode,
    words: Vec<String>,
}

fn bad(what: &'static str, body: Value, status: StatusCode, words: &[&str]) -> Bad {
    Bad {
        what,
        content_type: Some("application/json"),
        body: body.to_string(),
        status,
        words: words.iter().map(|w| (*w).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_rejects_bad_tasks_naming_the_field() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    let exec = json!({"command": ["true"]});
    let syntax = "os==linux";
    let column = bot_proto::filter::parse(syntax)
        .err()
        .context("the filter must be a syntax error")?
        .position
        + 1;
    let column = format!("column {column}");
    let big = format!(
        r#"{{"targets":["web1"],"args":{{"shell":"{}"}}}}"#,
        "x".repeat(MAX_BODY_BYTES + 1)
    );
    let cases = vec![
        Bad {
            what: "malformed JSON",
            content_type: Some("application/json"),
            body: r#"{"targets": ["web1"]"#.into(),
            status: StatusCode::BAD_REQUEST,
            words: vec!["JSON".into(), "line 1 column 20".into()],
        },
        bad(
            "wrong type",
            json!({"targets": "x"}),
            StatusCode::BAD_REQUEST,
            &["targets", "invalid type"],
        ),
        bad(
            "unknown field",
            json!({"targets": ["web1"], "paralel": 2}),
            StatusCode::BAD_REQUEST,
            &["paralel"],
        ),
        Bad {
            what: "no Content-Type",
            content_type: None,
            body: json!({"targets": ["web1"], "args": exec}).to_string(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            words: vec!["Content-Type: application/json".into()],
        },
        Bad {
            what: "Content-Type text/plain",
            content_type: Some("text/plain"),
            body: json!({"targets": ["web1"], "args": exec}).to_string(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            words: vec!["Content-Type: application/json".into()],
        },
        Bad {
            what: "body over 1 MiB",
            content_type: Some("application/json"),
            body: big,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            words: vec![MAX_BODY_BYTES.to_string()],
        },
        bad(
            "no targets, filter or pool",
            json!({"args": exec}),
            StatusCode::BAD_REQUEST,
            &["exactly one of targets", "filter", "pool"],
        ),
        bad(
            "targets and filter",
            json!({"targets": ["web1"], "filter": "os=linux", "args": exec}),
            StatusCode::BAD_REQUEST,
            &["exactly one of targets", "filter", "pool"],
        ),
        bad(
            "filter and pool",
            json!({"filter": "os=linux", "pool": "build", "count": 1, "args": exec}),
            StatusCode::BAD_REQUEST,
            &["exactly one of targets", "filter", "pool"],
        ),
        bad(
            "fail_rate 2",
            json!({"targets": ["web1"], "args": exec, "fail_rate": 2}),
            StatusCode::BAD_REQUEST,
            &["fail_rate: 2"],
        ),
        bad(
            "fail_count 0",
            json!({"targets": ["web1"], "args": exec, "fail_count": 0}),
            StatusCode::BAD_REQUEST,
            &["fail_count: 0"],
        ),
        bad(
            "fail_count -2",
            json!({"targets": ["web1"], "args": exec, "fail_count": -2}),
            StatusCode::BAD_REQUEST,
            &["fail_count: -2"],
        ),
        bad(
            "timeout_s 0",
            json!({"targets": ["web1"], "args": exec, "timeout_s": 0}),
            StatusCode::BAD_REQUEST,
            &["timeout_s: 0"],
        ),
        bad(
            "parallel 0",
            json!({"targets": ["web1"], "args": exec, "parallel": 0}),
            StatusCode::BAD_REQUEST,
            &["parallel: 0"],
        ),
        bad(
            "exec without command, shell or script",
            json!({"targets": ["web1"], "args": {"cwd": "/"}}),
            StatusCode::BAD_REQUEST,
            &["args", "command", "shell", "script"],
        ),
        bad(
            "exec with its own timeout_s",
            json!({"targets": ["web1"], "args": {"shell": "true", "timeout_s": 3}}),
            StatusCode::BAD_REQUEST,
            &["args.timeout_s"],
        ),
        bad(
            "args not an object",
            json!({"targets": ["web1"], "args": [1]}),
            StatusCode::BAD_REQUEST,
            &["args", "[1]"],
        ),
        bad(
            "unknown agent",
            json!({"targets": ["web1", "nosuch-agent"], "args": exec}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["targets", "\"nosuch-agent\""],
        ),
        bad(
            "agent listed twice",
            json!({"targets": ["web1", "0e0b0001-0000-4000-8000-000000000001"], "args": exec}),
            StatusCode::BAD_REQUEST,
            &[
                "targets",
                "listed twice",
                "0e0b0001-0000-4000-8000-000000000001",
            ],
        ),
        bad(
            "filter syntax error",
            json!({"filter": syntax, "args": exec}),
            StatusCode::BAD_REQUEST,
            &["filter", syntax, &column],
        ),
        bad(
            "filter matching no online agent",
            json!({"filter": "os=windows", "args": exec}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["\"os=windows\"", "no online agent"],
        ),
        bad(
            "count without pool",
            json!({"targets": ["web1"], "args": exec, "count": 2}),
            StatusCode::BAD_REQUEST,
            &["count"],
        ),
        bad(
            "pool without count",
            json!({"pool": "build", "args": exec}),
            StatusCode::BAD_REQUEST,
            &["count"],
        ),
    ];
    // Every case is tried; the failures are reported together.
    let mut failures = String::new();
    for case in &cases {
        let a = h
            .post_raw("/api/tasks", case.content_type, case.body.clone())
            .await?;
        let words: Vec<&str> = case.words.iter().map(String::as_str).collect();
        if let Err(e) = a.check_error(case.status, &words) {
            writeln!(failures, "- {}: {e:#}", case.what)?;
        }
    }
    // Nothing was stored.
    let tasks = h.get("/api/tasks").await?.expect(StatusCode::OK)?;
    if tasks != json!([]) {
        writeln!(failures, "- refused tasks were stored: {tasks}")?;
    }
    ensure!(failures.is_empty(), "wrong answers:\n{failures}");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_show_and_list() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    // Names and ids mixed, not in name order: the order given is kept.
    let detail = h
        .post(
            "/api/tasks",
            &json!({"targets": ["web2", "0d0b0001-0000-4000-8000-000000000001", "web1"], "args": {"shell": "uptime"},
                    "timeout_s": 30, "parallel": 2}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let id = detail["id"].as_str().context("task id")?.to_owned();
    ensure!(
        target_field(&detail, "agent_id")
            == [
                json!("0e0b0002-0000-4000-8000-000000000002"),
                json!("0d0b0001-0000-4000-8000-000000000001"),
                json!("0e0b0001-0000-4000-8000-000000000001")
            ],
        "targets: {detail}"
    );
    ensure!(
        target_field(&detail, "agent_name") == [json!("web2"), json!("db1"), json!("web1")],
        "targets: {detail}"
    );
    ensure!(
        target_field(&detail, "seq") == [json!(0), json!(1), json!(2)],
        "targets: {detail}"
    );
    ensure!(
        target_states(&detail)
            .iter()
            .all(|s| s == "WAITING" || s == "RUNNING"),
        "targets: {detail}"
    );
    ensure!(detail["created_by"] == json!(TOKEN_NAME), "{detail}");
    ensure!(detail["action"] == json!("exec"), "{detail}");
    ensure!(detail["timeout_ms"] == json!(30_000), "{detail}");
    ensure!(detail["parallel"] == json!(2), "{detail}");
    ensure!(detail["counts"]["total"] == json!(3), "{detail}");
    ensure!(
        detail["args"] == json!({"shell": "uptime", "timeout_s": 30.0}),
        "the task's timeout_s is passed to exec: {}",
        detail["args"]
    );

    // Show: the same task; the engine starts the first two (parallel 2).
    let shown = h
        .wait_task(&id, "two targets RUNNING", |t| {
            // The task state too: a read may see it lag (see
            // `task_detail_is_one_snapshot`).
            t["state"] == json!("RUNNING") && target_states(t) == ["RUNNING", "RUNNING", "WAITING"]
        })
        .await?;
    ensure!(shown["id"] == json!(id), "{shown}");
    ensure!(
        target_field(&shown, "request_id")[..2]
            .iter()
            .all(Value::is_string),
        "running targets have request ids: {shown}"
    );
    h.get("/api/tasks/nosuch-task")
        .await?
        .check_error(StatusCode::NOT_FOUND, &["\"nosuch-task\""])?;

    // List.
    let listed = h.get("/api/tasks").await?.expect(StatusCode::OK)?;
    ensure!(
        listed
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["id"] == json!(id)),
        "list: {listed}"
    );
    let running = h
        .get("/api/tasks?state=running&limit=1")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(
        running.as_array().map(Vec::len) == Some(1),
        "running: {running}"
    );
    let done = h
        .get("/api/tasks?state=SUCCEEDED")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(done == json!([]), "succeeded: {done}");
    h.get("/api/tasks?state=BOGUS").await?.check_error(
        StatusCode::BAD_REQUEST,
        &[
            "state",
            "\"BOGUS\"",
            "WAITING, RUNNING, SUCCEEDED, FAILED, CANCELLED",
        ],
    )?;
    h.get("/api/tasks?limit=0")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["limit: 0"])?;
    h.get("/api/tasks?limit=1001")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["limit: 1001"])?;
    h.get("/api/tasks?limit=many")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["limit"])?;
    h.get("/api/tasks?sate=RUNNING")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["sate"])?;
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_skips_waiting_targets_and_ends_cancelled() -> Result<()> {
    let clock = bot_server::clock::ManualClock::new(bot_proto::now_ms());
    let c = clock.clone();
    let h = Harness::start_with(move |config| config.clock = c).await?;
    h.add_fleet().await?;
    let detail = h
        .post(
            "/api/tasks",
            &json!({"targets": ["web1", "web2"], "args": {"shell": "sleep 100"},
                    "timeout_s": 1, "parallel": 1}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let id = detail["id"].as_str().context("task id")?.to_owned();
    h.wait_task(&id, "the first target RUNNING", |t| {
        target_states(t) == ["RUNNING", "WAITING"]
    })
    .await?;

    let cancelled = h
        .post(&format!("/api/tasks/{id}/cancel"), &json!({}))
        .await?
        .expect(StatusCode::OK)?;
    ensure!(cancelled["id"] == json!(id), "{cancelled}");
    ensure!(
        target_states(&cancelled) == ["RUNNING", "SKIPPED"],
        "cancel skips the waiting target, the running one runs on: {cancelled}"
    );
    ensure!(
        cancelled["state"] == json!("RUNNING") || cancelled["state"] == json!("CANCELLED"),
        "{cancelled}"
    );
    ensure!(
        cancelled["reason"]
            .as_str()
            .is_some_and(|r| r.contains(TOKEN_NAME)),
        "the reason names who cancelled: {cancelled}"
    );

    // The fake agent never answers: the running target times out (1 s + the
    // reply grace, on the test's clock) and the task ends CANCELLED.
    clock.advance(std::time::Duration::from_secs(60));
    let done = h
        .wait_task(&id, "the task to end", |t| t["state"] != json!("RUNNING"))
        .await?;
    ensure!(done["state"] == json!("CANCELLED"), "{done}");
    ensure!(target_states(&done) == ["TIMED_OUT", "SKIPPED"], "{done}");
    ensure!(done["finished_ms"].is_u64(), "{done}");

    h.post(&format!("/api/tasks/{id}/cancel"), &json!({}))
        .await?
        .check_error(StatusCode::CONFLICT, &[&id, "already CANCELLED"])?;
    // Retry: the timed-out target, and with include_skipped the skipped one
    // too, in the original order.
    for (body, agents) in [
        (
            json!({}),
            vec![json!("0e0b0001-0000-4000-8000-000000000001")],
        ),
        (
            json!({"include_skipped": true}),
            vec![
                json!("0e0b0001-0000-4000-8000-000000000001"),
                json!("0e0b0002-0000-4000-8000-000000000002"),
            ],
        ),
    ] {
        let again = h
            .post(&format!("/api/tasks/{id}/retry"), &body)
            .await?
            .expect(StatusCode::CREATED)?;
        ensure!(again["retry_of"] == json!(id), "{body}: {again}");
        ensure!(
            target_field(&again, "agent_id") == agents,
            "{body}: {again}"
        );
    }
    h.post("/api/tasks/nosuch-task/cancel", &json!({}))
        .await?
        .check_error(StatusCode::NOT_FOUND, &["\"nosuch-task\""])?;
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_needs_a_finished_task_with_failures() -> Result<()> {
    let h = Harness::start().await?;
    let fleet = h.add_fleet().await?;
    let detail = h
        .post(
            "/api/tasks",
            &json!({"targets": ["web1"], "args": {"shell": "true"}, "timeout_s": 30}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let id = detail["id"].as_str().context("task id")?.to_owned();
    let running = h
        .wait_task(&id, "the target RUNNING", |t| {
            target_states(t) == ["RUNNING"]
        })
        .await?;

    h.post_raw(&format!("/api/tasks/{id}/retry"), None, "")
        .await?
        .check_error(StatusCode::CONFLICT, &[&id, "still RUNNING"])?;
    h.post_raw("/api/tasks/nosuch-task/retry", None, "")
        .await?
        .check_error(StatusCode::NOT_FOUND, &["\"nosuch-task\""])?;

    // The fake agent answers: the task succeeds.
    let request_id = running["targets"][0]["request_id"]
        .as_str()
        .context("request id")?
        .to_owned();
    h.fake_reply(&fleet[0], &request_id)?;
    let done = h
        .wait_task(&id, "the task to succeed", |t| {
            t["state"] != json!("RUNNING")
        })
        .await?;
    ensure!(done["state"] == json!("SUCCEEDED"), "{done}");
    ensure!(done["targets"][0]["stdout"] == json!("done\n"), "{done}");
    ensure!(done["targets"][0]["exit_code"] == json!(0), "{done}");

    for body in [None, Some(json!({"include_skipped": true}))] {
        let a = match &body {
            None => {
                h.post_raw(&format!("/api/tasks/{id}/retry"), None, "")
                    .await?
            }
            Some(b) => h.post(&format!("/api/tasks/{id}/retry"), b).await?,
        };
        a.check_error(StatusCode::CONFLICT, &[&id, "no failed"])
            .map_err(|e| e.context(format!("retry with body {body:?}")))?;
    }
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_runs_timed_out_targets_again() -> Result<()> {
    // The engine's time is the test's: no waiting out the 5 s reply grace.
    let clock = bot_server::clock::ManualClock::new(bot_proto::now_ms());
    let c = clock.clone();
    let h = Harness::start_with(move |config| config.clock = c).await?;
    h.add_fleet().await?;
    let detail = h
        .post(
            "/api/tasks",
            &json!({"targets": ["web1"], "args": {"command": ["true"]}, "timeout_s": 0.5,
                    "fail_count": 3}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let id = detail["id"].as_str().context("task id")?.to_owned();
    // Once the request is out, 0.5 s plus the engine's 5 s reply grace
    // pass at once.
    h.wait_task(&id, "the target to run", |t| {
        t["targets"][0]["state"] == json!("RUNNING")
    })
    .await?;
    clock.advance(std::time::Duration::from_secs(60));
    let done = h
        .wait_task(&id, "the task to fail", |t| {
            t["state"] != json!("WAITING") && t["state"] != json!("RUNNING")
        })
        .await?;
    ensure!(done["state"] == json!("FAILED"), "{done}");
    ensure!(target_states(&done) == ["TIMED_OUT"], "{done}");
    // Ended on the engine's clock, a minute ahead of the real one (the
    // grace was not waited out in real time).
    let finished = done["targets"][0]["finished_ms"]
        .as_u64()
        .context("finished_ms")?;
    ensure!(
        finished > bot_proto::now_ms() + 30_000,
        "finished at {finished}, not on the test's clock"
    );

    let again = h
        .post_raw(&format!("/api/tasks/{id}/retry"), None, "")
        .await?
        .expect(StatusCode::CREATED)?;
    let new_id = again["id"].as_str().context("new task id")?;
    ensure!(new_id != id, "a retry is a new task: {again}");
    ensure!(again["retry_of"] == json!(id), "{again}");
    ensure!(again["created_by"] == json!(TOKEN_NAME), "{again}");
    ensure!(
        target_field(&again, "agent_id") == [json!("0e0b0001-0000-4000-8000-000000000001")],
        "{again}"
    );
    ensure!(
        target_states(&again)
            .iter()
            .all(|s| s == "WAITING" || s == "RUNNING"),
        "{again}"
    );
    // Same settings; exec's timeout_s set again from the task's.
    ensure!(again["timeout_ms"] == json!(500), "{again}");
    ensure!(again["fail_count"] == json!(3), "{again}");
    ensure!(
        again["args"] == json!({"command": ["true"], "timeout_s": 0.5}),
        "{again}"
    );
    // Both are listed, newest first.
    let listed = h.get("/api/tasks").await?.expect(StatusCode::OK)?;
    let ids: Vec<&Value> = listed
        .as_array()
        .map(|l| l.iter().map(|t| &t["id"]).collect())
        .unwrap_or_default();
    ensure!(ids == [&json!(new_id), &json!(id)], "list: {listed}");
    h.stop().await
}

/// `GET /api/tasks/{id}` shows one moment: a task is never WAITING while
/// some of its targets have started (the engine writes the task and its
/// targets in one transaction, so only a torn read could show that).
/// Probes the moment the engine starts freshly submitted tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_detail_is_one_snapshot() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    let mut reads = 0;
    for _ in 0..100 {
        let detail = h
            .post(
                "/api/tasks",
                &json!({"targets": ["web1", "web2", "db1"], "args": {"shell": "true"}}),
            )
            .await?
            .expect(StatusCode::CREATED)?;
        let id = detail["id"].as_str().context("task id")?.to_owned();
        for _ in 0..5 {
            let t = h
                .get(&format!("/api/tasks/{id}"))
                .await?
                .expect(StatusCode::OK)?;
            reads += 1;
            let states = target_states(&t);
            ensure!(
                t["state"] != json!("WAITING") || states.iter().all(|s| s == "WAITING"),
                "torn read after {reads} reads: task state {} but targets {states:?} \
                 (started_ms {}, counts {})",
                t["state"],
                t["started_ms"],
                t["counts"]
            );
        }
    }
    h.stop().await
}

/// The audit trail: every request the server signs and sends is recorded
/// with the API token behind it, the agent and a digest of the arguments
/// (never the arguments); only an admin token may read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_are_in_the_audit_trail() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    let detail = h
        .post(
            "/api/tasks",
            &json!({"targets": ["web1"], "args": {"shell": "echo s3cret-arg"}, "timeout_s": 30}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let task_id = detail["id"].as_str().context("task id")?.to_owned();
    let hr = &h;
    let records = poll("the request's audit line", || async move {
        let a = hr
            .get("/api/audit?agent=0e0b0001-0000-4000-8000-000000000001")
            .await?
            .expect(StatusCode::OK)?;
        Ok(if a.as_array().is_some_and(|v| !v.is_empty()) {
            ControlFlow::Break(a)
        } else {
            ControlFlow::Continue(a.to_string())
        })
    })
    .await?;
    let r = &records[0];
    ensure!(r["event"] == json!("request"), "{r}");
    ensure!(r["token"] == json!(TOKEN_NAME), "{r}");
    ensure!(
        r["agent"] == json!("0e0b0001-0000-4000-8000-000000000001"),
        "{r}"
    );
    ensure!(r["action"] == json!("exec"), "{r}");
    ensure!(r["args_sha256"].as_str().map(str::len) == Some(64), "{r}");
    ensure!(
        !records.to_string().contains("s3cret-arg"),
        "arguments leaked: {records}"
    );
    let detail = h
        .get(&format!("/api/tasks/{task_id}"))
        .await?
        .expect(StatusCode::OK)?;
    let request_id = detail["targets"][0]["request_id"].clone();
    ensure!(r["request_id"] == request_id, "{r} vs {request_id}");
    // Filters: another token's records, another agent's: none.
    let none = h
        .get("/api/audit?key=nobody")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(none == json!([]), "{none}");
    let bad = h.get("/api/audit?limit=0").await?;
    bad.check_error(StatusCode::BAD_REQUEST, &["limit"])?;
    // A read token may not read the audit trail.
    let denied = h
        .send(Method::GET, "/api/audit", Some(READ_SECRET), None, vec![])
        .await?;
    denied.check_error(StatusCode::FORBIDDEN, &["admin"])?;
    h.stop().await
}

/// Issue 12's small error-status defects: an optional body may be empty, a
/// body that is not UTF-8 JSON is refused by its charset, and a timeout
/// too small to store is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_optional_bodies_charsets_and_tiny_timeouts() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    // Retry's body is optional: empty with a JSON content type is no body.
    let a = h
        .post_raw(
            "/api/tasks/no-such-task/retry",
            Some("application/json"),
            Vec::new(),
        )
        .await?;
    a.check_error(StatusCode::NOT_FOUND, &["no-such-task"])?;
    // JSON must be UTF-8.
    let a = h
        .post_raw(
            "/api/tasks",
            Some("application/json; charset=utf-16"),
            br#"{"targets":["web1"],"args":{"shell":"true"}}"#.to_vec(),
        )
        .await?;
    a.check_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &["utf-16"])?;
    let ok = h
        .post_raw(
            "/api/tasks",
            Some("application/json; charset=UTF-8"),
            br#"{"targets":["web1"],"args":{"shell":"true"}}"#.to_vec(),
        )
        .await?;
    ensure!(
        ok.status == StatusCode::CREATED,
        "{} {}",
        ok.status,
        ok.text
    );
    // A 1 MB unknown field name is not echoed back in full.
    let long = format!("{{\"{}\": 1}}", "k".repeat(1_000_000));
    let a = h
        .post_raw("/api/tasks", Some("application/json"), long)
        .await?;
    ensure!(a.status == StatusCode::BAD_REQUEST, "{}", a.status);
    ensure!(a.text.len() < 2_000, "a {}-byte error body", a.text.len());
    // 1e-300 s would be stored as 0 ms.
    for path in ["/api/tasks", "/api/call"] {
        let body = if path == "/api/tasks" {
            json!({"targets": ["web1"], "args": {"shell": "true"}, "timeout_s": 1e-300})
        } else {
            json!({"action": "ping", "timeout_s": 1e-300})
        };
        h.post(path, &body)
            .await?
            .check_error(StatusCode::BAD_REQUEST, &["timeout_s", "0.001"])?;
    }
    h.stop().await
}

/// Issue 9 item 8: a unique prefix of a task id names it (as git and docker
/// take); an ambiguous one is a 409 listing the candidates; no match, 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_task_id_prefix_names_the_task() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let d = h
            .post(
                "/api/tasks",
                &json!({"targets": ["web1"], "args": {"shell": "true"}}),
            )
            .await?
            .expect(StatusCode::CREATED)?;
        ids.push(d["id"].as_str().context("id")?.to_owned());
    }
    // Time-ordered ids: the two share their first characters.
    let common = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(a, b)| a == b)
        .count();
    ensure!(common >= 4, "{ids:?}");
    let unique = &ids[1][..common + 1];
    let shown = h
        .get(&format!("/api/tasks/{unique}"))
        .await?
        .expect(StatusCode::OK)?;
    ensure!(shown["id"] == json!(ids[1]), "{shown}");
    let ambiguous = &ids[0][..common];
    h.get(&format!("/api/tasks/{ambiguous}"))
        .await?
        .check_error(StatusCode::CONFLICT, &["ambiguous", &ids[0], &ids[1]])?;
    h.get("/api/tasks/ffffffffff")
        .await?
        .check_error(StatusCode::NOT_FOUND, &["no task"])?;
    h.stop().await
}
