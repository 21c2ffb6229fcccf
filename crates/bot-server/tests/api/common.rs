//! The per-test set-up ([`Harness`]: broker, database, server), requests
//! through the router ([`Answer`]), fake agents (retained statuses and
//! hand-made replies published with `mosquitto_pub`), and bounded polling.

use std::future::Future;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bot_proto::{Facts, Reply, ReplyStatus, Status, topics};
use bot_server::{Scope, Server, ServerConfig, Token};
use bot_testkit::{Broker, BrokerKind, TempDir};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The API token's secret (32 characters).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The API token's name (what `created_by` shows); its scope is admin.
pub const TOKEN_NAME: &str = "test";
/// A read-only token's secret.
pub const READ_SECRET: &str = "read-only-0123456789abcdef012345";
/// An operate-scoped token's secret.
pub const OPERATE_SECRET: &str = "operate-0123456789abcdef01234567";
/// The longest any single wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// An HTTP answer: status, headers and the body (as JSON when it is JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The `error` of an error body (empty if there is none).
    pub fn error(&self) -> &str {
        self.json.get("error").and_then(Value::as_str).unwrap_or("")
    }

    /// Checks the status and that the body is `{"error": …}` mentioning
    /// every one of `words`.
    pub fn check_error(&self, status: StatusCode, words: &[&str]) -> Result<()> {
        ensure!(
            self.status == status,
            "expected {status}, got {} with body {}",
            self.status,
            self.text
        );
        ensure!(
            self.json
                .as_object()
                .is_some_and(|o| o.len() == 1 && o.contains_key("error")),
            "expected a JSON body {{\"error\": …}}, got {:?}",
            self.text
        );
        for w in words {
            ensure!(
                self.error().contains(w),
                "the error {:?} does not mention {w:?}",
                self.error()
            );
        }
        Ok(())
    }

    /// Checks the status is `status` and returns the JSON body.
    pub fn expect(self, status: StatusCode) -> Result<Value> {
        ensure!(
            self.status == status,
            "expected {status}, got {} with body {}",
            self.status,
            self.text
        );
        Ok(self.json)
    }
}

/// A fake agent: what its status says.
#[derive(Debug, Clone)]
pub struct FakeAgent {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its `os` fact.
    pub os: String,
    /// Online?
    pub online: bool,
    /// Its signing key (its statuses are signed, as a real agent's are).
    pub key: std::sync::Arc<bot_auth::SecretKey>,
}

impl FakeAgent {
    /// An online agent.
    pub fn new(id: &str, name: &str, os: &str) -> FakeAgent {
        FakeAgent {
            id: id.to_owned(),
            name: name.to_owned(),
            os: os.to_owned(),
            online: true,
            key: std::sync::Arc::new(bot_auth::SecretKey::generate().expect("random key")),
        }
    }

    /// Its status envelope, as an agent would publish it (no heartbeats, so
    /// the registry never marks it offline for silence).
    pub fn status(&self) -> Vec<u8> {
        let mut facts = Facts::new();
        facts.insert("os".into(), json!(self.os));
        facts.insert("name".into(), json!(self.name));
        facts.insert("id".into(), json!(self.id));
        facts.insert("hostname".into(), json!(self.name));
        let now = now_ms();
        let mut status = Status {
            id: self.id.clone(),
            name: self.name.clone(),
            hostname: self.name.clone(),
            ips: vec!["10.0.0.1".into()],
            version: "0.1.0".into(),
            online: self.online,
            facts,
            tags: vec![],
            pools: vec![],
            started_ms: now,
            heartbeat_s: 0,
            created_ms: now,
            measure: None,
            key: Some(self.key.public().to_string()),
            sig: None,
        };
        status.sig = Some(bot_auth::sign::detached(&self.key, &status.signing_bytes()));
        status.encode()
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Polls `check` every 50 ms until it breaks with a value, for at most
/// [`WAIT`]; `Continue(why)` says what is still missing (shown on timeout).
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ControlFlow<T, String>>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let why = match check().await? {
            ControlFlow::Break(v) => return Ok(v),
            ControlFlow::Continue(why) => why,
        };
        if Instant::now() > deadline {
            bail!("timed out after {WAIT:?} waiting for {what}; last seen: {why}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One test's world: a mosquitto broker, a SQLite database, a server.
#[derive(Debug)]
pub struct Harness {
    /// The broker.
    pub broker: Broker,
    /// The server's MQTT client id.
    pub client_id: String,
    server: Option<Server>,
    router: axum::Router,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Harness {
    /// Starts a broker and a server, and waits until the server is on the bus.
    pub async fn start() -> Result<Harness> {
        Self::start_with(|_| {}).await
    }

    /// [`Harness::start`] with `change` applied to the server's configuration.
    pub async fn start_with(change: impl FnOnce(&mut ServerConfig)) -> Result<Harness> {
        // The `bot` path is only used by the embedded broker kind.
        let broker = tokio::task::block_in_place(|| {
            Broker::start(BrokerKind::Mosquitto, Path::new("unused-for-mosquitto"))
        })?;
        let dir = TempDir::new("server-api");
        let mut config = ServerConfig {
            brokers: vec![
                broker
                    .url()
                    .parse()
                    .map_err(|e| anyhow!("broker URL {}: {e}", broker.url()))?,
            ],
            db: format!("sqlite:{}/bot.db", dir.path().display()),
            listen: "127.0.0.1:0".parse()?,
            tokens: vec![
                Token::from_secret(TOKEN_NAME, SECRET, Scope::Admin),
                Token::from_secret("reader", READ_SECRET, Scope::Read),
                Token::from_secret("operator", OPERATE_SECRET, Scope::Operate),
            ],
            token_file: dir.path().join("api-token"),
            client_id: None,
            key_file: bot_testkit::keys().server.clone(),
            auto_accept: true,
            tls: None,
            https: None,
            http_limits: bot_server::HttpLimits::default(),
            history: bot_server::metrics::HistoryLimits::default(),
            clock: bot_server::clock::system(),
            webhooks: Vec::new(),
        };
        change(&mut config);
        let shutdown = CancellationToken::new();
        let server = bot_server::start(config, shutdown.clone())
            .await
            .context("starting the server")?;
        let h = Harness {
            broker,
            client_id: server.client_id.clone(),
            router: server.router(),
            server: Some(server),
            shutdown,
            _dir: dir,
        };
        let hr = &h;
        poll("the server to connect to the broker", || async move {
            let health = hr
                .send(Method::GET, "/api/health", None, None, vec![])
                .await?;
            let health = health.expect(StatusCode::OK)?;
            Ok(if health["bus_connected"] == json!(true) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(health.to_string())
            })
        })
        .await?;
        Ok(h)
    }

    /// The server's HTTP address (for requests over a real socket).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(|s| s.addr)
    }

    /// Stops the server (cancels its token) and waits for it to end.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        let server = self.server.take().context("server already stopped")?;
        tokio::time::timeout(WAIT, server.wait())
            .await
            .context("the server did not stop in time")?
            .context("the server stopped with an error")
    }

    /// Sends one request through the router.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer> {
        self.send_with(method, path, token, content_type, &[], body)
            .await
    }

    /// [`Harness::send`] with extra headers (a cookie, a CSRF token).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer> {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body))?;
        let resp = self.router.clone().oneshot(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            json,
            text,
        })
    }

    /// `GET path` with the token.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.send(Method::GET, path, Some(SECRET), None, vec![])
            .await
    }

    /// `POST path` with the token and `body` as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.post_raw(path, Some("application/json"), body.to_string())
            .await
    }

    /// `POST path` with the token, these bytes and this Content-Type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Result<Answer> {
        self.send(Method::POST, path, Some(SECRET), content_type, body.into())
            .await
    }

    /// `mosquitto_pub -q 1 [-r] -t topic -s` with `payload`.
    pub fn mosquitto_pub(&self, topic: &str, payload: &[u8], retain: bool) -> Result<()> {
        tokio::task::block_in_place(|| {
            let mut cmd = Command::new("mosquitto_pub");
            cmd.args(["-h", "127.0.0.1", "-p", &self.broker.port.to_string()])
                .args(["-q", "1", "-t", topic, "-s"]);
            if retain {
                cmd.arg("-r");
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run mosquitto_pub")?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(payload)?;
            }
            let out = child.wait_with_output()?;
            ensure!(
                out.status.success(),
                "mosquitto_pub failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        })
    }

    /// Publishes the agents' retained statuses and waits until the registry
    /// shows each of them as its status says.
    pub async fn add_agents(&self, agents: &[FakeAgent]) -> Result<()> {
        for a in agents {
            self.mosquitto_pub(&topics::status_topic(&a.id), &a.status(), true)?;
        }
        poll("the fake agents in GET /api/agents", || async move {
            let listed = self.get("/api/agents").await?.expect(StatusCode::OK)?;
            let missing: Vec<&str> = agents
                .iter()
                .filter(|a| {
                    !listed.as_array().is_some_and(|l| {
                        l.iter()
                            .any(|x| x["id"] == json!(a.id) && x["online"] == json!(a.online))
                    })
                })
                .map(|a| a.id.as_str())
                .collect();
            Ok(if missing.is_empty() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(format!("missing {missing:?} in {listed}"))
            })
        })
        .await
    }

    /// The standard fake fleet: `web1`, `web2` (linux), `db1` (freebsd).
    pub async fn add_fleet(&self) -> Result<Vec<FakeAgent>> {
        let fleet = vec![
            FakeAgent::new("0e0b0001-0000-4000-8000-000000000001", "web1", "linux"),
            FakeAgent::new("0e0b0002-0000-4000-8000-000000000002", "web2", "linux"),
            FakeAgent::new("0d0b0001-0000-4000-8000-000000000001", "db1", "freebsd"),
        ];
        self.add_agents(&fleet).await?;
        Ok(fleet)
    }

    /// Sends, as agent `agent`, a successful reply to `request_id` on the
    /// server's durable results topic (what a real agent would do).
    pub fn fake_reply(&self, agent: &FakeAgent, request_id: &str) -> Result<()> {
        let now = now_ms();
        let mut reply = Reply {
            request_id: request_id.to_owned(),
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            sender: format!("agent:{}", agent.id),
            created_ms: now,
            nonce: format!("{:016x}", now),
            status: ReplyStatus::Ok,
            data: json!({"exit_code": 0, "stdout": "done\n", "stderr": ""}),
            error: None,
            received_ms: now,
            duration_ms: 1,
            sig: None,
        };
        // Signed by the agent's key, as the server requires.
        reply.sig = Some(bot_auth::sign::detached(&agent.key, &reply.signing_bytes()));
        self.mosquitto_pub(
            &topics::durable_reply_topic(&self.client_id),
            &reply.encode(),
            false,
        )
    }

    /// Polls `GET /api/tasks/{id}` until `done` holds for the task.
    pub async fn wait_task(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let done = &done;
        poll(what, || async move {
            let t = self
                .get(&format!("/api/tasks/{id}"))
                .await?
                .expect(StatusCode::OK)?;
            Ok(if done(&t) {
                ControlFlow::Break(t)
            } else {
                ControlFlow::Continue(t.to_string())
            })
        })
        .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A test that failed half-way still stops its server.
        self.shutdown.cancel();
    }
}

/// The states of a task's targets, in rollout order.
pub fn target_states(task: &Value) -> Vec<String> {
    task["targets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| t["state"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `field` of every target of a task, in rollout order.
pub fn target_field(task: &Value, field: &str) -> Vec<Value> {
    task["targets"]
        .as_array()
        .map(|ts| ts.iter().map(|t| t[field].clone()).collect())
        .unwrap_or_default()
}
