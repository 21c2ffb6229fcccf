//! The HTTP API: JSON under `/api/`, bearer-token auth (all but
//! `/api/health` and `/api/openapi.json`), errors as `{"error": "…"}`
//! naming the bad field and value, bodies up to [`MAX_BODY_BYTES`], and the
//! OpenAPI document generated from the same handlers (utoipa).
//!
//! Routes: `GET /api/agents`, `GET /api/agents/{id}`, `POST /api/tasks`,
//! `GET /api/tasks`, `GET /api/tasks/{id}`, `POST /api/tasks/{id}/cancel`,
//! `POST /api/tasks/{id}/retry`, `POST /api/publish`, `POST /api/call`.

mod agents;
mod bus;
mod events;
mod metrics;
mod schedules;
pub mod session;
mod tasks;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bot_bus::Publisher;
use bot_proto::Reply;
use bot_proto::api::ApiError;
use bot_store::Store;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::OpenApi;

use crate::engine::EngineHandle;
use crate::registry::Registry;
use crate::{MAX_BODY_BYTES, Scope, Token};

pub use bus::{
    CallReply, CallRequest, CallResult, NoReply, OfflineAgent, PublishRequest, Published,
};

/// What the handlers share.
#[derive(Debug)]
pub struct Core {
    pub(crate) store: Store,
    pub(crate) registry: Registry,
    pub(crate) engine: EngineHandle,
    pub(crate) publisher: Publisher,
    pub(crate) calls: Calls,
    /// Signs every request the API sends (`/api/call`).
    pub(crate) signer: std::sync::Arc<bot_auth::Signer>,
    pub(crate) call_topic: String,
    pub(crate) tokens: Vec<Token>,
    /// Authentication failures per client address (429 beyond a limit).
    pub(crate) failures: FailureLimit,
    /// The audit trail.
    pub(crate) audit: crate::audit::Audit,
    /// Browsers logged in (the dashboard).
    pub(crate) sessions: session::Sessions,
    /// Session cookies are `Secure` (the API is served over HTTPS).
    pub(crate) secure_cookies: bool,
    /// Makes tasks (submit, retry).
    pub(crate) tasks: crate::tasks::TaskService,
    /// Schedules (make, list, pause, resume, delete).
    pub(crate) schedules: crate::schedules::Schedules,
    /// Check states.
    pub(crate) checks: crate::checks::Checks,
    /// Webhooks (make, list, delete, enable, deliveries).
    pub(crate) webhooks: crate::webhooks::Webhooks,
    /// Samples: latest values, counters, layouts.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The event hub (live views).
    pub(crate) events: crate::events::EventHub,
    /// Responses by HTTP status (for `/metrics`).
    pub(crate) statuses: StatusCounts,
    /// The server is stopping: endless responses (event streams) end.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
}

impl Core {
    /// The configured token whose secret is `presented` (compared by
    /// SHA-256, in constant time, against every token).
    pub(crate) fn token(&self, presented: &str) -> Option<Token> {
        let hash = bot_auth::digest_hex(presented.as_bytes());
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.sha256.as_bytes(), hash.as_bytes()) {
                found = Some(t.clone());
            }
        }
        found
    }
}

/// Responses counted by HTTP status code.
#[derive(Debug, Default)]
pub struct StatusCounts {
    counts: Mutex<std::collections::BTreeMap<u16, u64>>,
}

impl StatusCounts {
    fn count(&self, status: StatusCode) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status.as_u16())
            .or_insert(0) += 1;
    }

    /// Every status seen, with its count.
    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// `/api/call` requests waiting for replies, by request id.
#[derive(Debug, Default)]
pub struct Calls {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Reply>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, id: &str) -> mpsc::UnboundedReceiver<Reply> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id.to_owned(), tx);
        rx
    }

    pub(crate) fn unregister(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(crate) fn deliver(&self, reply: Reply) {
        if let Some(tx) = self.lock().get(&reply.request_id) {
            let _ = tx.send(reply);
        }
    }
}

type AppState = Arc<Core>;

/// Who made the request (the token's name), for `created_by`.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub String);

/// The session cookie a request was authenticated by (not by a token).
#[derive(Debug, Clone)]
pub(crate) struct SessionCookie(pub String);

/// An API error: an HTTP status and a message.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Error {
        Error::new(StatusCode::NOT_FOUND, message)
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Error {
        Error::new(StatusCode::CONFLICT, message)
    }
    pub(crate) fn unavailable(message: impl Into<String>) -> Error {
        Error::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<crate::tasks::TaskError> for Error {
    fn from(e: crate::tasks::TaskError) -> Error {
        use crate::tasks::TaskError;
        match e {
            TaskError::Invalid(m) => Error::bad(m),
            TaskError::Unusable(m) => Error::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            TaskError::NotFound(m) => Error::not_found(m),
            TaskError::Conflict(m) => Error::conflict(m),
            TaskError::Store(e) => e.into(),
        }
    }
}

impl From<bot_store::StoreError> for Error {
    /// The driver's text stays in the log (it may name tables, hosts or
    /// values); the client gets a correlation id to quote.
    fn from(e: bot_store::StoreError) -> Error {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        tracing::error!(%reference, error = %e, "store error in an API request");
        Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("database error (reference {reference}; the details are in the server log)"),
        )
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(ApiError {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Longest error message quoted back from a parser (a 1 MB unknown field
/// name used to come back as a 2 MB error body).
const MAX_ERROR_CHARS: usize = 300;

/// `text` cut to [`MAX_ERROR_CHARS`] characters, `…` marking the cut.
fn cut_message(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(MAX_ERROR_CHARS).collect();
    s.push('…');
    s
}

pub use crate::tasks::MIN_TIMEOUT_S;

/// A JSON body whose rejections are API errors (JSON, with serde's message
/// naming the field, line and column).
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // JSON is UTF-8 (RFC 8259); a body declared otherwise is refused, not
        // misread.
        if let Some(charset) = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .skip(1)
                    .find_map(|p| p.trim().strip_prefix("charset="))
            })
            .map(|c| c.trim_matches('"').to_ascii_lowercase())
            && charset != "utf-8"
            && charset != "utf8"
        {
            return Err(Error::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "charset {:?} is not supported: send JSON in UTF-8",
                    charset.chars().take(40).collect::<String>()
                ),
            ));
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                // axum answers 422 for a body that is valid JSON of the
                // wrong shape (wrong type, unknown field); to the API that
                // is a bad request like any other: 400. (422 means "well
                // formed but unusable": an unknown agent, an empty match.)
                let status = match &rejection {
                    JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
                    r => r.status(),
                };
                let message = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        format!("request body larger than {MAX_BODY_BYTES} bytes")
                    }
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        "send the body as JSON with Content-Type: application/json".to_owned()
                    }
                    _ => cut_message(&rejection.body_text()),
                };
                Err(Error::new(status, message))
            }
        }
    }
}

impl<S, T> axum::extract::OptionalFromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Error;

    /// No body (no Content-Type, or `Content-Length: 0`): `None`; otherwise
    /// the body must parse.
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let empty = axum::body::HttpBody::size_hint(req.body()).exact() == Some(0);
        if req.headers().get(header::CONTENT_TYPE).is_none() || empty {
            return Ok(None);
        }
        <Body<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// Parses a filter from a request, as a 400 naming the column on error.
pub(crate) fn parse_filter(text: &str) -> Result<bot_proto::Filter, Error> {
    bot_proto::filter::parse(text).map_err(|e| {
        Error::bad(format!(
            "filter: {text:?}: error at column {}: {}",
            e.position + 1,
            e.message
        ))
    })
}

/// A JSON response with a status.
pub(crate) fn json<T: Serialize>(status: StatusCode, v: T) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "bot server API",
        description = "Registry, tasks and the bus bridge of the bot fleet system. \
                       Every route but /api/health and /api/openapi.json needs \
                       `Authorization: Bearer <token>`."
    ),
    paths(
        health,
        agents::list,
        agents::show,
        agents::accept,
        agents::forget,
        agents::audit,
        metrics::get_config,
        metrics::put_config,
        metrics::series,
        metrics::prometheus,
        events::stream,
        session::login,
        session::session,
        session::logout,
        tasks::submit,
        tasks::list,
        tasks::show,
        tasks::cancel,
        tasks::retry,
        bus::publish,
        bus::call,
        schedules::create,
        schedules::list,
        schedules::show,
        schedules::pause,
        schedules::resume,
        schedules::delete,
        schedules::checks,
        schedules::changes,
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::delete,
        webhooks::enable,
        webhooks::deliveries,
    ),
    components(schemas(ApiError, Health)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API router over `core`.
pub fn router(core: Arc<Core>) -> Router {
    let protected = Router::new()
        .route("/api/agents", get(agents::list))
        .route("/api/agents/{id}", get(agents::show))
        .route("/api/agents/{id}/accept", post(agents::accept))
        .route("/api/agents/{id}", axum::routing::delete(agents::forget))
        .route("/api/audit", get(agents::audit))
        .route("/api/tasks", post(tasks::submit).get(tasks::list))
        .route("/api/tasks/{id}", get(tasks::show))
        .route("/api/tasks/{id}/cancel", post(tasks::cancel))
        .route("/api/tasks/{id}/retry", post(tasks::retry))
        .route("/api/publish", post(bus::publish))
        .route("/api/call", post(bus::call))
        .route(
            "/api/agents/{id}/config",
            get(metrics::get_config).put(metrics::put_config),
        )
        .route("/api/agents/{id}/metrics", get(metrics::series))
        .route("/api/events", get(events::stream))
        .route(
            "/api/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route(
            "/api/schedules/{id}",
            get(schedules::show).delete(schedules::delete),
        )
        .route("/api/schedules/{id}/pause", post(schedules::pause))
        .route("/api/schedules/{id}/resume", post(schedules::resume))
        .route("/api/checks", get(schedules::checks))
        .route("/api/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/api/webhooks/{id}",
            get(webhooks::show).delete(webhooks::delete),
        )
        .route("/api/webhooks/{id}/enable", post(webhooks::enable))
        .route("/api/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/api/agents/{id}/checks/changes", get(schedules::changes))
        .route("/metrics", get(metrics::prometheus))
        .route_layer(middleware::from_fn_with_state(core.clone(), auth));
    Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/login", post(session::login))
        .route("/api/session", get(session::session))
        .route("/api/logout", post(session::logout))
        .merge(protected)
        .merge(crate::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(announced_size))
        .layer(middleware::from_fn_with_state(core.clone(), count_status))
        .with_state(core)
}

/// Counts every response by status (`bot_http_responses_total`).
async fn count_status(State(core): State<AppState>, req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    core.statuses.count(r.status());
    r
}

/// Refuses at once (413, JSON) a request whose `Content-Length` announces
/// more than [`MAX_BODY_BYTES`], before any of the body is read: the body
/// limit alone would wait for bytes that a client announcing 100 GB and
/// sending one never sends.
async fn announced_size(req: Request, next: Next) -> Response {
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_URI_BYTES {
        return Error::new(
            StatusCode::URI_TOO_LONG,
            format!("the request URI is {uri_len} bytes; the limit is {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    match announced {
        Some(Ok(n)) if n > MAX_BODY_BYTES as u64 => Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body would be {n} bytes; the limit is {MAX_BODY_BYTES}"),
        )
        .into_response(),
        Some(Err(_)) => Error::bad("Content-Length is not a number").into_response(),
        _ => next.run(req).await,
    }
}

/// Longest request URI (path and query) answered; a longer one gets a JSON
/// 414. (A request head beyond `http::HEAD_BYTES` is refused by hyper.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// `GET /api/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: &'static str,
    /// Connected to a broker right now?
    pub bus_connected: bool,
    /// Agents in the registry.
    pub agents: usize,
}

/// Liveness and a little state; needs no token.
#[utoipa::path(get, path = "/api/health", security(()), responses((status = 200, description = "Success", body = Health)))]
async fn health(State(core): State<AppState>) -> Response {
    json(
        StatusCode::OK,
        Health {
            status: "ok",
            bus_connected: core.publisher.is_connected(),
            agents: core.registry.len(),
        },
    )
}

async fn openapi() -> Response {
    json(StatusCode::OK, ApiDoc::openapi())
}

async fn not_found(req: Request) -> Error {
    Error::not_found(format!(
        "no such endpoint: {} {} (see /api/openapi.json)",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method not allowed: {} {} (see /api/openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The scope a route needs: `GET` reads, but the audit trail and accepting
/// an agent's key are administration; every other `POST` operates. The OpenAPI document states
/// the same per route (a test checks that the two agree).
pub fn required_scope(method: &axum::http::Method, path: &str) -> Scope {
    if path == "/api/audit" {
        Scope::Admin
    } else if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        Scope::Read
    } else if path.starts_with("/api/agents/")
        && (path.ends_with("/accept") || method == axum::http::Method::DELETE)
    {
        Scope::Admin
    } else {
        Scope::Operate
    }
}

/// Authentication failures allowed per client address per window before
/// every request from it gets 429 until the window ends.
pub const AUTH_FAILURES_PER_WINDOW: u32 = 10;
/// The window of [`AUTH_FAILURES_PER_WINDOW`].
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (the oldest windows are dropped beyond it).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Counts authentication failures per client address (fixed windows).
#[derive(Debug, Default)]
pub(crate) struct FailureLimit {
    windows: std::sync::Mutex<HashMap<std::net::IpAddr, (tokio::time::Instant, u32)>>,
}

impl FailureLimit {
    /// Seconds until `ip` may try again, if it is over the limit.
    fn blocked(&self, ip: std::net::IpAddr) -> Option<u64> {
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (start, n) = w.get(&ip)?;
        let left = AUTH_FAILURE_WINDOW.checked_sub(start.elapsed())?;
        (*n >= AUTH_FAILURES_PER_WINDOW).then(|| left.as_secs().max(1))
    }

    fn fail(&self, ip: std::net::IpAddr) {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        if w.len() >= MAX_TRACKED_ADDRESSES {
            w.retain(|_, (start, _)| now.duration_since(*start) < AUTH_FAILURE_WINDOW);
        }
        let e = w.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= AUTH_FAILURE_WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
        if e.1 == AUTH_FAILURES_PER_WINDOW {
            tracing::warn!(%ip, "repeated API authentication failures: answering 429 for a while");
        }
    }
}

/// Checks `Authorization: Bearer <token>` against the configured tokens
/// (by SHA-256, in constant time) and the token's scope against the
/// route's; limits repeated failures per client address (429).
async fn auth(State(core): State<AppState>, mut req: Request, next: Next) -> Response {
    // Requests from the network carry the peer's address; in-process calls
    // (the router driven directly) have none and are not limited.
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(retry) = ip.and_then(|ip| core.failures.blocked(ip)) {
        let mut r = Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed authentications from this address; retry in {retry} s"),
        )
        .into_response();
        if let Ok(v) = header::HeaderValue::from_str(&retry.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    // A browser's session cookie stands for the token it logged in with;
    // a change must also carry the session's CSRF token.
    if presented.is_none()
        && let Some(s) = session::cookie_id(req.headers()).and_then(|id| core.sessions.get(id))
    {
        let method = req.method();
        if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
            let sent = req
                .headers()
                .get(session::CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !constant_time_eq(sent, s.csrf.as_bytes()) {
                return Error::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token for this session (GET /api/session gives it)",
                )
                .into_response();
            }
        }
        let needed = required_scope(req.method(), req.uri().path());
        if s.scope < needed {
            return Error::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {:?} has scope {}; {} {} needs {}",
                    s.name,
                    s.scope.as_str(),
                    req.method(),
                    req.uri().path(),
                    needed.as_str()
                ),
            )
            .into_response();
        }
        let cookie = session::cookie_id(req.headers())
            .unwrap_or_default()
            .to_owned();
        req.extensions_mut().insert(Caller(s.name));
        req.extensions_mut().insert(SessionCookie(cookie));
        return next.run(req).await;
    }
    let Some(presented) = presented else {
        if let Some(ip) = ip {
            core.failures.fail(ip);
        }
        return Error::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send Authorization: Bearer <token> (bot up prints one), or log in (POST /api/login)",
        )
        .into_response();
    };
    let Some(token) = core.token(presented) else {
        if let Some(ip) = ip {
            core.failures.fail(ip);
        }
        return Error::new(StatusCode::UNAUTHORIZED, "invalid token").into_response();
    };
    let needed = required_scope(req.method(), req.uri().path());
    if token.scope < needed {
        return Error::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} has scope {}; {} {} needs {}",
                token.name,
                token.scope.as_str(),
                req.method(),
                req.uri().path(),
                needed.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(Caller(token.name));
    next.run(req).await
}

/// Compares without an early exit on the first differing byte (`subtle`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}
