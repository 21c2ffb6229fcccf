//! `/api/agents`: the registry built from retained statuses, listed by name,
//! narrowed by a filter or by `online`, and one agent by id or name.

use anyhow::{Result, ensure};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{FakeAgent, Harness};

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|a| a["name"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filter_and_show() -> Result<()> {
    let h = Harness::start().await?;
    h.add_fleet().await?;
    let mut gone = FakeAgent::new("001d0001-0000-4000-8000-000000000001", "old1", "linux");
    gone.online = false;
    h.add_agents(&[gone]).await?;

    let all = h.get("/api/agents").await?.expect(StatusCode::OK)?;
    ensure!(names(&all) == ["db1", "old1", "web1", "web2"], "all: {all}");
    let web1 = all
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|a| a["id"] == json!("0e0b0001-0000-4000-8000-000000000001"))
        })
        .cloned()
        .unwrap_or_default();
    ensure!(web1["facts"]["os"] == json!("linux"), "{web1}");
    ensure!(web1["hostname"] == json!("web1"), "{web1}");
    ensure!(web1["online"] == json!(true), "{web1}");

    // `=` in the query value, encoded or not.
    for q in ["os%3Dlinux", "os=linux"] {
        let linux = h
            .get(&format!("/api/agents?filter={q}"))
            .await?
            .expect(StatusCode::OK)?;
        ensure!(names(&linux) == ["old1", "web1", "web2"], "{q}: {linux}");
    }
    let online = h
        .get("/api/agents?filter=os%3Dlinux&online=true")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(names(&online) == ["web1", "web2"], "online: {online}");
    let offline = h
        .get("/api/agents?online=false")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(names(&offline) == ["old1"], "offline: {offline}");
    // Pages, in name order, with the total in X-Total-Count.
    let page = h.get("/api/agents?limit=2&offset=1").await?;
    let total = page
        .headers
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let page = page.expect(StatusCode::OK)?;
    ensure!(names(&page) == ["old1", "web1"], "page: {page}");
    ensure!(total.as_deref() == Some("4"), "total: {total:?}");
    let past = h
        .get("/api/agents?offset=10")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(past == json!([]), "past the end: {past}");
    h.get("/api/agents?limit=0")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["limit", "0"])?;
    let globbed = h
        .get("/api/agents?filter=web*%20and%20not%20web2")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(names(&globbed) == ["web1"], "glob: {globbed}");

    let column = bot_proto::filter::parse("os==linux")
        .err()
        .map(|e| e.position + 1)
        .unwrap_or_default();
    h.get("/api/agents?filter=os%3D%3Dlinux")
        .await?
        .check_error(
            StatusCode::BAD_REQUEST,
            &["filter", "os==linux", &format!("column {column}")],
        )?;
    h.get("/api/agents?online=maybe")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["online"])?;
    h.get("/api/agents?filtre=os%3Dlinux")
        .await?
        .check_error(StatusCode::BAD_REQUEST, &["filtre"])?;

    for key in ["0d0b0001-0000-4000-8000-000000000001", "db1"] {
        let one = h
            .get(&format!("/api/agents/{key}"))
            .await?
            .expect(StatusCode::OK)?;
        ensure!(
            one["id"] == json!("0d0b0001-0000-4000-8000-000000000001"),
            "{key}: {one}"
        );
        ensure!(one["facts"]["os"] == json!("freebsd"), "{key}: {one}");
    }
    h.get("/api/agents/nosuch-agent")
        .await?
        .check_error(StatusCode::NOT_FOUND, &["\"nosuch-agent\""])?;
    h.stop().await
}

/// Two agents with one name: the name is ambiguous (409 listing both ids),
/// each id still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_names() -> Result<()> {
    let h = Harness::start().await?;
    h.add_agents(&[
        FakeAgent::new("0000000a-0000-4000-8000-00000000000a", "twin", "linux"),
        FakeAgent::new("0000000b-0000-4000-8000-00000000000b", "twin", "linux"),
    ])
    .await?;
    h.get("/api/agents/twin").await?.check_error(
        StatusCode::CONFLICT,
        &[
            "\"twin\"",
            "0000000a-0000-4000-8000-00000000000a",
            "0000000b-0000-4000-8000-00000000000b",
        ],
    )?;
    let b = h
        .get("/api/agents/0000000b-0000-4000-8000-00000000000b")
        .await?
        .expect(StatusCode::OK)?;
    ensure!(b["name"] == json!("twin"), "{b}");
    h.post(
        "/api/tasks",
        &json!({"targets": ["twin"], "args": {"shell": "true"}}),
    )
    .await?
    .check_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &["targets", "\"twin\"", "ambiguous"],
    )?;
    h.stop().await
}
