//! The HTTP side of `bot task`: which server (`--server`, plain `http://`
//! only until TLS lands), which token (`--token`, `--token-file`), and a
//! small client for the server's JSON API on top of `ureq` (blocking, so each
//! call runs in `spawn_blocking`), with timeouts, a response size cap and
//! errors that say what to do.
//!
//! The token is never printed: not in `--help` (env values hidden), not in
//! `Debug`, not in errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bot_proto::api::{ApiError, NewTask, RetryTask, TaskDetail, TaskState, TaskSummary};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Seconds allowed to open a connection to the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds allowed for a whole call (connect, send, receive the body).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from the server.
pub const MAX_RESPONSE: u64 = 64 * 1024 * 1024;
/// How much of a non-JSON error body is shown.
const RAW_ERROR_CHARS: usize = 500;

/// Server selection and credentials shared by every `bot task` command.
#[derive(Clone, Args)]
pub struct ServerArgs {
    /// Server URL: http://HOST:PORT, or https://HOST:PORT (a server
    /// listening beyond loopback serves HTTPS).
    #[arg(
        long = "server",
        env = "BOT_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_parser = ServerUrl::parse,
    )]
    pub server: ServerUrl,
    /// API token, sent as `Authorization: Bearer TOKEN` (`bot up` prints one).
    #[arg(long, env = "BOT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token (used when --token is not given).
    #[arg(long, env = "BOT_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to trust for an https:// server. Default:
    /// the local `bot up`'s CA for a server on this machine (if it has one),
    /// else the system's roots.
    #[arg(long, env = "BOT_SERVER_CA", value_name = "PATH")]
    pub server_ca: Option<PathBuf>,
}

impl fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerArgs")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("token_file", &self.token_file)
            .field("server_ca", &self.server_ca)
            .finish()
    }
}

impl ServerArgs {
    /// The token to send: `--token`, else the contents of `--token-file`
    /// (trimmed), else none. An empty `--token` (`BOT_TOKEN=`) counts as
    /// not given.
    pub fn resolve_token(&self) -> Result<Option<String>, String> {
        let flag = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let (token, origin) = if let Some(t) = flag {
            (t.to_owned(), "--token".to_owned())
        } else if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
            let origin = format!("the token file {}", path.display());
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(format!("{origin} is empty"));
            }
            (token, origin)
        } else {
            return Ok(None);
        };
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{origin} holds characters not allowed in an HTTP header (spaces, control or non-ASCII characters)"
            ));
        }
        Ok(Some(token))
    }
}

/// The server's base URL: `http[s]://HOST[:PORT][/PREFIX]`, without a
/// trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Checks a `--server` value.
    pub fn parse(s: &str) -> Result<ServerUrl, String> {
        let lower = s.to_ascii_lowercase();
        let scheme = if lower.starts_with("https://") {
            "https"
        } else if lower.starts_with("http://") {
            "http"
        } else {
            return Err(format!(
                "{s:?} is not a server URL: expected http://HOST:PORT or https://HOST:PORT"
            ));
        };
        let rest = &s[scheme.len() + 3..];
        let rest = rest.trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("{s:?} has no host: expected http://HOST:PORT"));
        }
        if host.contains('@') {
            return Err(format!(
                "{s:?}: credentials in the URL are not supported (use --token)"
            ));
        }
        if let Some(c) = rest
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
        {
            return Err(format!("{s:?} is not a server URL: unexpected {c:?}"));
        }
        Ok(ServerUrl(format!("{scheme}://{rest}")))
    }

    /// Whether this is an `https://` URL.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// Whether the host is this machine (localhost or a loopback address).
    pub fn is_local(&self) -> bool {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        let hostport = rest.split('/').next().unwrap_or_default();
        let host = match hostport.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The base, e.g. `http://127.0.0.1:8080`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of an API path (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection: refused, unknown host, unreachable.
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// Why, in words.
        reason: String,
    },
    /// Connected, but no (complete) answer in time.
    #[error("the server at {url} did not answer {what} within {secs} s")]
    Timeout {
        /// The server's base URL.
        url: String,
        /// The call, e.g. `GET /api/tasks`.
        what: String,
        /// The time allowed.
        secs: u64,
    },
    /// 401 and no token was given.
    #[error("the server wants a token: set BOT_TOKEN or --token (bot up prints one)")]
    NeedsToken,
    /// A non-2xx answer.
    #[error("server said {status}: {message}")]
    Status {
        /// The HTTP status code.
        code: u16,
        /// Code and reason, e.g. `404 Not Found`.
        status: String,
        /// The server's `error`, or the (truncated) body.
        message: String,
    },
    /// A 2xx answer that is not what the API promises.
    #[error("cannot read the server's answer to {what}: {reason}")]
    BadAnswer {
        /// The call, e.g. `GET /api/tasks`.
        what: String,
        /// Why.
        reason: String,
    },
    /// Anything else on the way (protocol error, I/O).
    #[error("cannot talk to the server at {url}: {reason}")]
    Other {
        /// The server's base URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl CallError {
    /// The server refused what was asked as a usage error the operator must
    /// fix (an ambiguous task id prefix): the command exits 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, CallError::Status { code: 409, message, .. } if message.contains("is ambiguous"))
    }

    /// Worth trying again later: the server is down, restarting or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable { .. } | CallError::Timeout { .. } => true,
            CallError::Status { code, .. } => matches!(code, 502..=504),
            _ => false,
        }
    }
}

/// The certificates of the PEM file `ca`, for ureq.
fn ca_roots(ca: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let certs = bot_bus::tls::certs(ca).map_err(|e| format!("--server-ca: {e}"))?;
    Ok(certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect())
}

/// The roots for `base` when no CA is named: the local `bot up`'s CA for a
/// server on this machine, if it has one; else the system's.
fn default_roots(base: &ServerUrl) -> Vec<ureq::tls::Certificate<'static>> {
    if !base.is_https() {
        return Vec::new();
    }
    if base.is_local()
        && let Some(ca) = bot_auth::paths::default_local_ca()
    {
        match ca_roots(&ca) {
            Ok(roots) => return roots,
            Err(e) => tracing::warn!(error = %e, "the local CA is not usable"),
        }
    }
    bot_bus::tls::system_roots()
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect()
}

/// A client of the server's task API.
#[derive(Clone)]
pub struct ApiClient {
    agent: ureq::Agent,
    base: ServerUrl,
    token: Option<String>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A request method and its body, if any.
enum Method {
    Get,
    Post(Vec<u8>),
    Put(Vec<u8>),
    Delete,
}

impl ApiClient {
    /// A client of `base`, sending `token` when given. Proxies come from the
    /// usual environment variables (`HTTP_PROXY`, `NO_PROXY`, …). An
    /// https:// server is checked against the default roots (see
    /// [`ServerArgs::server_ca`]).
    pub fn new(base: ServerUrl, token: Option<String>) -> ApiClient {
        let roots = default_roots(&base);
        ApiClient::build(base, token, ureq::Proxy::try_from_env(), roots)
    }

    /// A client that connects directly, whatever the environment says.
    pub fn direct(base: ServerUrl, token: Option<String>) -> ApiClient {
        let roots = default_roots(&base);
        ApiClient::build(base, token, None, roots)
    }

    fn build(
        base: ServerUrl,
        token: Option<String>,
        proxy: Option<ureq::Proxy>,
        roots: Vec<ureq::tls::Certificate<'static>>,
    ) -> ApiClient {
        // rustls with ring, as everywhere in bot; roots given explicitly
        // (a CA file, or the system's), never a bundled list.
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                bot_bus::rustls::crypto::ring::default_provider(),
            ))
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(CALL_TIMEOUT))
            .proxy(proxy)
            .tls_config(tls)
            .user_agent(concat!("bot/", env!("CARGO_PKG_VERSION")))
            .build();
        ApiClient {
            agent: config.into(),
            base,
            token,
        }
    }

    /// From the command line: checks the token source and the CA file.
    pub fn from_args(args: &ServerArgs) -> Result<ApiClient, String> {
        let token = args.resolve_token()?;
        let roots = match &args.server_ca {
            Some(ca) => ca_roots(ca)?,
            None => default_roots(&args.server),
        };
        Ok(ApiClient::build(
            args.server.clone(),
            token,
            ureq::Proxy::try_from_env(),
            roots,
        ))
    }

    /// The server's base URL.
    pub fn base(&self) -> &ServerUrl {
        &self.base
    }

    /// `POST /api/tasks`: submits a task (201 + the task with its targets).
    pub async fn submit(&self, task: &NewTask) -> Result<TaskDetail, CallError> {
        self.post("/api/tasks".to_owned(), task).await
    }

    /// `GET /api/tasks?state=S&limit=N`: recent tasks, newest first.
    pub async fn list(
        &self,
        state: Option<TaskState>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, CallError> {
        let mut path = format!("/api/tasks?limit={limit}");
        if let Some(s) = state {
            path += &format!("&state={s}");
        }
        self.call(path, Method::Get).await
    }

    /// `GET /api/tasks/{id}`: one task with every target.
    pub async fn get(&self, id: &str) -> Result<TaskDetail, CallError> {
        self.call(format!("/api/tasks/{id}"), Method::Get).await
    }

    /// `POST /api/tasks/{id}/cancel`: starts nothing further.
    pub async fn cancel(&self, id: &str) -> Result<TaskDetail, CallError> {
        self.call(format!("/api/tasks/{id}/cancel"), Method::Post(Vec::new()))
            .await
    }

    /// `POST /api/agents/{id}/accept`: binds the agent's pending key.
    pub async fn accept_agent(&self, id: &str) -> Result<bot_proto::api::Agent, CallError> {
        self.call(format!("/api/agents/{id}/accept"), Method::Post(Vec::new()))
            .await
    }

    /// `DELETE /api/agents/{id}`: forgets a decommissioned (offline) agent:
    /// its registry row and its retained status. Returns it as it was.
    pub async fn forget_agent(&self, id: &str) -> Result<bot_proto::api::Agent, CallError> {
        self.call(format!("/api/agents/{id}"), Method::Delete).await
    }

    /// `GET /api/agents?filter=…`: the agents a filter selects.
    pub async fn agents(&self, filter: &str) -> Result<Vec<bot_proto::api::Agent>, CallError> {
        let url = format!("/api/agents?filter={}", query_escape(filter));
        self.call(url, Method::Get).await
    }

    /// `GET /api/agents/{id}/config`: the agent's measuring config.
    pub async fn agent_config(
        &self,
        id: &str,
    ) -> Result<bot_proto::api::AgentConfigView, CallError> {
        self.call(format!("/api/agents/{id}/config"), Method::Get)
            .await
    }

    /// `PUT /api/agents/{id}/config`: changes the agent's measuring settings.
    pub async fn put_agent_config(
        &self,
        id: &str,
        change: &bot_proto::api::AgentConfigChange,
    ) -> Result<bot_proto::api::AgentConfigView, CallError> {
        let bytes = serde_json::to_vec(change).map_err(|e| CallError::Other {
            url: self.base.to_string(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        self.call(format!("/api/agents/{id}/config"), Method::Put(bytes))
            .await
    }

    /// `POST /api/tasks/{id}/retry`: a new task of the failed (and, if asked,
    /// skipped) targets (201 + the new task).
    pub async fn retry(&self, id: &str, body: &RetryTask) -> Result<TaskDetail, CallError> {
        self.post(format!("/api/tasks/{id}/retry"), body).await
    }

    /// `POST /api/schedules`: makes a schedule (201 + the schedule).
    pub async fn create_schedule(
        &self,
        spec: &bot_proto::api::NewSchedule,
    ) -> Result<bot_proto::api::Schedule, CallError> {
        self.post("/api/schedules".to_owned(), spec).await
    }

    /// `GET /api/schedules`: every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<bot_proto::api::Schedule>, CallError> {
        self.call("/api/schedules".to_owned(), Method::Get).await
    }

    /// `GET /api/schedules/{id}`: one schedule, by id or name.
    pub async fn schedule(&self, id: &str) -> Result<bot_proto::api::Schedule, CallError> {
        self.call(format!("/api/schedules/{}", query_escape(id)), Method::Get)
            .await
    }

    /// `POST /api/schedules/{id}/pause` or `…/resume`.
    pub async fn pause_schedule(
        &self,
        id: &str,
        pause: bool,
    ) -> Result<bot_proto::api::Schedule, CallError> {
        let verb = if pause { "pause" } else { "resume" };
        self.call(
            format!("/api/schedules/{}/{verb}", query_escape(id)),
            Method::Post(Vec::new()),
        )
        .await
    }

    /// `DELETE /api/schedules/{id}`: deletes it; returns it as it was.
    pub async fn delete_schedule(&self, id: &str) -> Result<bot_proto::api::Schedule, CallError> {
        self.call(
            format!("/api/schedules/{}", query_escape(id)),
            Method::Delete,
        )
        .await
    }

    /// `GET /api/checks?filter=&state=&check=`: check states, worst first.
    pub async fn checks(
        &self,
        filter: Option<&str>,
        states: Option<&str>,
        check: Option<&str>,
    ) -> Result<Vec<bot_proto::api::CheckStatus>, CallError> {
        let mut query = Vec::new();
        for (k, v) in [("filter", filter), ("state", states), ("check", check)] {
            if let Some(v) = v {
                query.push(format!("{k}={}", query_escape(v)));
            }
        }
        let mut path = "/api/checks".to_owned();
        if !query.is_empty() {
            path += "?";
            path += &query.join("&");
        }
        self.call(path, Method::Get).await
    }

    async fn post<B: Serialize, T: DeserializeOwned + Send + 'static>(
        &self,
        path: String,
        body: &B,
    ) -> Result<T, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Other {
            url: self.base.to_string(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        self.call(path, Method::Post(bytes)).await
    }

    /// Runs one call on a blocking thread and decodes its JSON answer.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        path: String,
        method: Method,
    ) -> Result<T, CallError> {
        let this = self.clone();
        let what = match &method {
            Method::Get => format!("GET {path}"),
            Method::Post(_) => format!("POST {path}"),
            Method::Put(_) => format!("PUT {path}"),
            Method::Delete => format!("DELETE {path}"),
        };
        let w = what.clone();
        let joined = tokio::task::spawn_blocking(move || this.call_blocking(&path, method, &w))
            .await
            .map_err(|e| CallError::Other {
                url: self.base.to_string(),
                reason: format!("the request thread failed: {e}"),
            })?;
        let (code, body) = joined?;
        decode_answer(code, &body, &what, self.token.is_some())
    }

    fn call_blocking(
        &self,
        path: &str,
        method: Method,
        what: &str,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let url = self.base.join(path);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match method {
            Method::Get => {
                let mut req = self.agent.get(&url).header("Accept", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            Method::Post(body) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(&body[..])
            }
            Method::Put(body) => {
                let mut req = self
                    .agent
                    .put(&url)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(&body[..])
            }
            Method::Delete => {
                let mut req = self.agent.delete(&url).header("Accept", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
        };
        let mut response = result.map_err(|e| self.transport_error(e, what))?;
        let code = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => CallError::BadAnswer {
                    what: what.to_owned(),
                    reason: format!("it is larger than {} MiB", MAX_RESPONSE >> 20),
                },
                e => self.transport_error(e, what),
            })?;
        Ok((code, body))
    }

    fn transport_error(&self, e: ureq::Error, what: &str) -> CallError {
        let url = self.base.to_string();
        match e {
            ureq::Error::Timeout(t) => {
                if matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve) {
                    CallError::Unreachable {
                        url,
                        reason: format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                    }
                } else {
                    CallError::Timeout {
                        url,
                        what: what.to_owned(),
                        secs: CALL_TIMEOUT.as_secs(),
                    }
                }
            }
            ureq::Error::HostNotFound => CallError::Unreachable {
                url,
                reason: "host not found".to_owned(),
            },
            ureq::Error::ConnectionFailed => CallError::Unreachable {
                url,
                reason: "connection failed".to_owned(),
            },
            ureq::Error::Io(io) if is_connect_error(&io) => CallError::Unreachable {
                url,
                reason: io.to_string(),
            },
            e => CallError::Other {
                url,
                reason: e.to_string(),
            },
        }
    }
}

/// `s` percent-encoded for a query parameter (RFC 3986: unreserved
/// characters stay, every other byte is `%XX`).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_connect_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable
            | K::NetworkDown
    )
}

/// Turns a status and body into the API's value, or the error to report.
pub fn decode_answer<T: DeserializeOwned>(
    code: u16,
    body: &[u8],
    what: &str,
    had_token: bool,
) -> Result<T, CallError> {
    if (200..300).contains(&code) {
        return serde_json::from_slice(body).map_err(|e| CallError::BadAnswer {
            what: what.to_owned(),
            reason: e.to_string(),
        });
    }
    if code == 401 && !had_token {
        return Err(CallError::NeedsToken);
    }
    let status = match ureq::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    };
    let message = match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => e.error,
        Err(_) => raw_body(body),
    };
    Err(CallError::Status {
        code,
        status,
        message,
    })
}

/// A non-JSON error body as text, at most 500 characters.
fn raw_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_owned();
    }
    let mut out: String = text.chars().take(RAW_ERROR_CHARS).collect();
    if text.chars().nth(RAW_ERROR_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("http://127.0.0.1:8080/").expect("plain");
        assert_eq!(u.as_str(), "http://127.0.0.1:8080");
        assert_eq!(u.join("/api/tasks"), "http://127.0.0.1:8080/api/tasks");
        let u = ServerUrl::parse("HTTP://Example.org/bot//").expect("prefix");
        assert_eq!(u.join("/api/tasks"), "http://Example.org/bot/api/tasks");

        let u = ServerUrl::parse("https://a:1").expect("https");
        assert!(u.is_https() && !u.is_local());
        assert!(
            ServerUrl::parse("https://[::1]:8443")
                .expect("v6")
                .is_local()
        );
        assert!(
            ServerUrl::parse("http://localhost")
                .expect("name")
                .is_local()
        );
        for bad in ["ftp://a", "127.0.0.1:8080", "", "mqtt://h:1883"] {
            let e = ServerUrl::parse(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        for bad in [
            "http://",
            "http:///x",
            "http://u:p@h",
            "http://h/?x",
            "http://h /",
        ] {
            let e = ServerUrl::parse(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    fn args(token: Option<&str>, file: Option<PathBuf>) -> ServerArgs {
        ServerArgs {
            server: ServerUrl::parse("http://h:1").expect("url"),
            token: token.map(str::to_owned),
            token_file: file,
            server_ca: None,
        }
    }

    #[test]
    fn tokens_from_flag_or_file_never_shown() {
        let dir = std::env::temp_dir().join(format!("bot-cli-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "s3cret-from-file\n").expect("write");

        assert_eq!(args(None, None).resolve_token(), Ok(None));
        assert_eq!(
            args(Some("s3cret"), Some(file.clone())).resolve_token(),
            Ok(Some("s3cret".to_owned()))
        );
        assert_eq!(
            args(None, Some(file.clone())).resolve_token(),
            Ok(Some("s3cret-from-file".to_owned()))
        );
        let e = args(None, Some(dir.join("missing"))).resolve_token();
        assert!(e.is_err_and(|e| e.contains("missing")));
        assert_eq!(args(Some("  "), None).resolve_token(), Ok(None));
        assert_eq!(
            args(Some(""), Some(file.clone())).resolve_token(),
            Ok(Some("s3cret-from-file".to_owned()))
        );
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let e = args(None, Some(empty))
            .resolve_token()
            .expect_err("empty file");
        assert!(e.ends_with("empty is empty"), "{e}");
        let e = args(Some("s3cret with space"), None)
            .resolve_token()
            .expect_err("space");
        assert!(!e.contains("s3cret"), "{e}");

        let shown = format!("{:?}", args(Some("s3cret"), None));
        assert!(!shown.contains("s3cret"), "{shown}");
        let client = ApiClient::direct(
            ServerUrl::parse("http://h:1").expect("url"),
            Some("s3cret".into()),
        );
        assert!(!format!("{client:?}").contains("s3cret"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape("os=linux and tag:web"),
            "os%3Dlinux%20and%20tag%3Aweb"
        );
        assert_eq!(query_escape("é*"), "%C3%A9%2A");
    }

    #[test]
    fn answers_and_errors() {
        let ok: Result<Vec<TaskSummary>, _> = decode_answer(200, b"[]", "GET /api/tasks", false);
        assert!(ok.is_ok_and(|v| v.is_empty()));

        let e = decode_answer::<TaskDetail>(404, br#"{"error":"no task abc"}"#, "GET x", true)
            .expect_err("404");
        assert_eq!(e.to_string(), "server said 404 Not Found: no task abc");
        assert!(!e.is_transient());

        let e = decode_answer::<TaskDetail>(401, br#"{"error":"no token"}"#, "GET x", false)
            .expect_err("401");
        assert_eq!(
            e.to_string(),
            "the server wants a token: set BOT_TOKEN or --token (bot up prints one)"
        );
        // With a token, a 401 says what the server said (the token was refused).
        let e = decode_answer::<TaskDetail>(401, br#"{"error":"bad token"}"#, "GET x", true)
            .expect_err("401");
        assert_eq!(e.to_string(), "server said 401 Unauthorized: bad token");

        let long = "x".repeat(2000);
        let e = decode_answer::<TaskDetail>(502, long.as_bytes(), "GET x", true).expect_err("502");
        assert!(e.is_transient());
        let text = e.to_string();
        assert!(
            text.starts_with("server said 502 Bad Gateway: xxx"),
            "{text}"
        );
        assert_eq!(text.chars().filter(|c| *c == 'x').count(), 500, "{text}");

        let e = decode_answer::<TaskDetail>(200, b"{}", "GET /api/tasks/a", true).expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("cannot read the server's answer to GET /api/tasks/a: "),
            "{e}"
        );
        let e = decode_answer::<TaskDetail>(599, b"", "GET x", true).expect_err("599");
        assert_eq!(e.to_string(), "server said 599: (no message)");
    }

    /// A one-request-per-connection HTTP server on port 0 that answers
    /// `answers` in turn and hands back each request it read.
    pub(crate) fn fake_server(
        answers: Vec<(u16, String)>,
    ) -> (ServerUrl, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (code, body) in answers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    request.push_str(&line);
                }
                let mut payload = vec![0; length];
                let _ = reader.read_exact(&mut payload);
                request.push_str(&String::from_utf8_lossy(&payload));
                let _ = tx.send(request);
                let answer = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        let url = ServerUrl::parse(&format!("http://127.0.0.1:{port}")).expect("url");
        (url, rx)
    }

    const DETAIL: &str = r#"{"id":"t1","state":"WAITING","action":"exec","args":{"command":["true"]},
        "filter":"web*","pool":null,"timeout_ms":60000,"parallel":1,"fail_count":-1,"fail_rate":1.0,
        "retry_of":null,"created_by":"op","created_ms":1,"started_ms":null,"finished_ms":null,
        "reason":null,"counts":{"total":0,"waiting":0,"running":0,"succeeded":0,"failed":0,
        "timed_out":0,"skipped":0,"lost":0},"targets":[]}"#;

    #[tokio::test]
    async fn talks_to_the_api_over_http() {
        let (url, requests) = fake_server(vec![
            (201, DETAIL.to_owned()),
            (200, "[]".to_owned()),
            (404, r#"{"error":"no task nope"}"#.to_owned()),
            (201, DETAIL.to_owned()),
            (401, r#"{"error":"token required"}"#.to_owned()),
        ]);
        let client = ApiClient::direct(url.clone(), Some("s3cret".into()));
        let new = NewTask {
            action: "exec".into(),
            args: serde_json::json!({"command": ["true"]}),
            targets: vec![],
            filter: Some("web*".into()),
            pool: None,
            count: None,
            timeout_s: None,
            parallel: Some(1),
            fail_count: None,
            fail_rate: None,
            online_only: None,
        };
        let d = client.submit(&new).await.expect("submit");
        assert_eq!(d.task.id, "t1");
        let req = requests.recv().expect("request");
        assert!(req.starts_with("POST /api/tasks HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("authorization: Bearer s3cret\r\n")
                || req.contains("Authorization: Bearer s3cret\r\n"),
            "{req}"
        );
        assert!(req.ends_with(r#""filter":"web*","pool":null,"count":null,"timeout_s":null,"parallel":1,"fail_count":null,"fail_rate":null}"#), "{req}");

        let list = client.list(Some(TaskState::Failed), 7).await.expect("list");
        assert!(list.is_empty());
        let req = requests.recv().expect("request");
        assert!(
            req.starts_with("GET /api/tasks?limit=7&state=FAILED HTTP/1.1"),
            "{req}"
        );

        let e = client.get("nope").await.expect_err("404");
        assert_eq!(e.to_string(), "server said 404 Not Found: no task nope");

        client
            .retry(
                "t0",
                &RetryTask {
                    include_skipped: true,
                },
            )
            .await
            .expect("retry");
        let _ = requests.recv();
        let req = requests.recv().expect("request");
        assert!(
            req.starts_with("POST /api/tasks/t0/retry HTTP/1.1"),
            "{req}"
        );
        assert!(req.ends_with(r#"{"include_skipped":true}"#), "{req}");

        let anonymous = ApiClient::direct(url, None);
        let e = anonymous.cancel("t1").await.expect_err("401");
        assert!(matches!(e, CallError::NeedsToken), "{e}");
        let req = requests.recv().expect("request");
        assert!(
            req.starts_with("POST /api/tasks/t1/cancel HTTP/1.1"),
            "{req}"
        );
        assert!(!req.to_ascii_lowercase().contains("authorization"), "{req}");
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_unreachable() {
        // Bind then drop: nothing listens on that port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = ServerUrl::parse(&format!("http://127.0.0.1:{port}")).expect("url");
        let e = ApiClient::direct(url, None)
            .get("x")
            .await
            .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot reach the server at http://127.0.0.1:{port}: "
            )),
            "{text}"
        );
        assert!(e.is_transient());
    }
}
