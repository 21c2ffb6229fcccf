//! Bearer tokens: the public routes (`/api/health`, `/api/openapi.json`)
//! answer without one; every other route refuses a missing or wrong token
//! with 401 and `WWW-Authenticate: Bearer`. Unknown routes are JSON 404s.

use anyhow::{Result, ensure};
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::common::{Harness, SECRET};

/// Every protected route with a method it serves.
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/api/agents"),
    ("GET", "/api/agents/x"),
    ("POST", "/api/tasks"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/x"),
    ("POST", "/api/tasks/x/cancel"),
    ("POST", "/api/tasks/x/retry"),
    ("POST", "/api/publish"),
    ("POST", "/api/call"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_openapi_need_no_token() -> Result<()> {
    let h = Harness::start().await?;
    let health = h
        .send(Method::GET, "/api/health", None, None, vec![])
        .await?
        .expect(StatusCode::OK)?;
    ensure!(health["status"] == json!("ok"), "health: {health}");
    ensure!(health["bus_connected"].is_boolean(), "health: {health}");
    ensure!(health["agents"] == json!(0), "health: {health}");
    let doc = h
        .send(Method::GET, "/api/openapi.json", None, None, vec![])
        .await?
        .expect(StatusCode::OK)?;
    ensure!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi: {}",
        doc["openapi"]
    );
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_routes_need_the_right_token() -> Result<()> {
    let h = Harness::start().await?;
    for (method, path) in PROTECTED {
        let method: Method = method.parse()?;
        for (token, says) in [
            (None, &["missing token", "Authorization: Bearer"][..]),
            (Some("not-the-token"), &["invalid token"][..]),
            (Some(&SECRET[..31]), &["invalid token"][..]),
        ] {
            let a = h
                .send(
                    method.clone(),
                    path,
                    token,
                    Some("application/json"),
                    b"{}".to_vec(),
                )
                .await?;
            a.check_error(StatusCode::UNAUTHORIZED, says)
                .map_err(|e| e.context(format!("{method} {path} with token {token:?}")))?;
            ensure!(
                a.headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.as_bytes())
                    == Some(b"Bearer"),
                "{method} {path}: WWW-Authenticate is {:?}",
                a.headers.get(header::WWW_AUTHENTICATE)
            );
        }
    }
    // The right token.
    let tasks = h.get("/api/tasks").await?.expect(StatusCode::OK)?;
    ensure!(tasks == json!([]), "tasks: {tasks}");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_json_404s() -> Result<()> {
    let h = Harness::start().await?;
    for (method, path, token) in [
        (Method::GET, "/api/nope", None),
        (Method::GET, "/api/nope", Some(SECRET)),
        (Method::POST, "/api/tasks/x/y/z", Some(SECRET)),
        (Method::GET, "/", None),
    ] {
        let a = h.send(method.clone(), path, token, None, vec![]).await?;
        let expected = format!("no such endpoint: {method} {path}");
        a.check_error(StatusCode::NOT_FOUND, &[&expected])?;
        ensure!(
            a.error().starts_with(&expected),
            "{method} {path}: {:?}",
            a.error()
        );
    }
    h.stop().await
}

/// A known route with a method it does not serve: 405, and like every
/// other error a JSON body naming the method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_a_json_405() -> Result<()> {
    let h = Harness::start().await?;
    for (method, path) in [
        (Method::DELETE, "/api/tasks"),
        (Method::GET, "/api/publish"),
        (Method::POST, "/api/health"),
    ] {
        let a = h
            .send(method.clone(), path, Some(SECRET), None, vec![])
            .await?;
        a.check_error(StatusCode::METHOD_NOT_ALLOWED, &[method.as_str()])
            .map_err(|e| e.context(format!("{method} {path}")))?;
    }
    h.stop().await
}
