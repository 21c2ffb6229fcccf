//! Bearer tokens: the public routes (`/api/health`, `/api/openapi.json`)
//! answer without one; every other route refuses a missing or wrong token
//! with 401 and `WWW-Authenticate: Bearer`. Unknown routes are JSON 404s.

use anyhow::{Result, ensure};
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::common::{Harness, OPERATE_SECRET, READ_SECRET, SECRET};

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
    ("POST", "/api/agents/x/accept"),
    ("GET", "/api/audit"),
    ("GET", "/api/agents/x/config"),
    ("PUT", "/api/agents/x/config"),
    ("GET", "/api/agents/x/metrics"),
    ("GET", "/metrics"),
];

/// Routes that need no token (the dashboard's login).
const PUBLIC: &[&str] = &["/api/health", "/api/login", "/api/session", "/api/logout"];

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
        (Method::GET, "/nope", None),
        (Method::GET, "/assets/nope.js", None),
    ] {
        if path.starts_with("/assets/") {
            let a = h.send(method.clone(), path, token, None, vec![]).await?;
            a.check_error(StatusCode::NOT_FOUND, &["no such file: /assets/nope.js"])?;
            continue;
        }
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

/// Attack row 23, scopes: a read token may read but not act; an operate
/// token may act but not accept agents' keys. 403 names the scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scopes_limit_what_a_token_may_do() -> Result<()> {
    let h = Harness::start().await?;
    for (method, path) in PROTECTED {
        let method: Method = method.parse()?;
        let needed = bot_server::api::required_scope(&method, path);
        for (secret, scope) in [
            (READ_SECRET, bot_server::Scope::Read),
            (OPERATE_SECRET, bot_server::Scope::Operate),
            (SECRET, bot_server::Scope::Admin),
        ] {
            let a = h
                .send(
                    method.clone(),
                    path,
                    Some(secret),
                    Some("application/json"),
                    b"{}".to_vec(),
                )
                .await?;
            if scope < needed {
                a.check_error(StatusCode::FORBIDDEN, &[needed.as_str(), scope.as_str()])
                    .map_err(|e| e.context(format!("{method} {path} with scope {scope:?}")))?;
            } else {
                ensure!(
                    a.status != StatusCode::FORBIDDEN && a.status != StatusCode::UNAUTHORIZED,
                    "{method} {path} with scope {scope:?}: {} {}",
                    a.status,
                    a.text
                );
            }
        }
    }
    // The OpenAPI document states the same scope for every route.
    let doc = h
        .send(Method::GET, "/api/openapi.json", None, None, vec![])
        .await?
        .expect(StatusCode::OK)?;
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if PUBLIC.contains(&path.as_str()) {
                ensure!(
                    op["security"] == json!([{}]),
                    "{method} {path}: public, but documented {}",
                    op["security"]
                );
                continue;
            }
            let m: Method = method.to_uppercase().parse()?;
            let needed = bot_server::api::required_scope(&m, &path.replace("{id}", "x"));
            ensure!(
                op["security"] == json!([{ "bearer": [needed.as_str()] }]),
                "{method} {path}: documented {} but needs {}",
                op["security"],
                needed.as_str()
            );
        }
    }
    h.stop().await
}

/// Attack row 24: a burst of bad tokens from one address gets 429 (with
/// Retry-After), even for a right token afterwards, until the window ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bad_tokens_gets_429() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await?;
    let addr = h.addr().ok_or_else(|| anyhow::anyhow!("no address"))?;
    async fn get(addr: std::net::SocketAddr, token: &str) -> Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "GET /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }
    let ok = get(addr, SECRET).await?;
    ensure!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let limit = bot_server::api::AUTH_FAILURES_PER_WINDOW;
    for i in 0..limit {
        let r = get(addr, "wrong-token-0123456789").await?;
        ensure!(r.starts_with("HTTP/1.1 401"), "attempt {i}: {r}");
    }
    let r = get(addr, "wrong-token-0123456789").await?;
    ensure!(r.starts_with("HTTP/1.1 429"), "after {limit} failures: {r}");
    ensure!(r.to_ascii_lowercase().contains("retry-after:"), "{r}");
    ensure!(r.contains("too many failed authentications"), "{r}");
    let r = get(addr, SECRET).await?;
    ensure!(
        r.starts_with("HTTP/1.1 429"),
        "the right token waits too: {r}"
    );
    h.stop().await
}

/// Issue 12: `Content-Length: 99999999999` with a one-byte body used to
/// hang until the client gave up; it gets a JSON 413 at once, before any
/// authentication or body reading (over a real socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_huge_body_gets_413_at_once() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await?;
    let addr = h.addr().ok_or_else(|| anyhow::anyhow!("no address"))?;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf)).await??;
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    ensure!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    ensure!(
        answer.contains("\"error\"") && answer.contains("99999999999"),
        "{answer}"
    );
    h.stop().await
}

/// Issue 12: a too-long URI gets a JSON 414 like every other error (it
/// had an empty body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_long_uri_gets_a_json_414() -> Result<()> {
    let h = Harness::start().await?;
    let long = format!("/api/agents?filter={}", "x".repeat(9_000));
    let answer = h
        .send(Method::GET, &long, Some(SECRET), None, vec![])
        .await?;
    ensure!(
        answer.status == StatusCode::URI_TOO_LONG,
        "{:?}",
        answer.status
    );
    ensure!(
        answer.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("8192")),
        "{}",
        answer.text
    );
    h.stop().await
}
