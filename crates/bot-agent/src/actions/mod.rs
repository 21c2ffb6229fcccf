//! Request actions of the structured protocol. Every action has the same
//! shape: a file with `pub async fn run(args: &Value, ctx: &Context) ->
//! Outcome`, registered in [`ACTIONS`] and dispatched by [`run`]. Adding an
//! action = one file + one line here.

pub mod exec;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bot_proto::envelope::ReplyStatus;
use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;

use crate::facts::Facts;

/// The requests running on this agent, by request id, each with the token
/// that cancels it (`cancel` action).
#[derive(Debug, Clone, Default)]
pub struct Running {
    inner: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers request `id`; its token cancels it.
    pub fn start(&self, id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(id.to_owned(), token.clone());
        token
    }

    /// Forgets request `id` (it ended).
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Cancels request `id`; false if it is not running here.
    pub fn cancel(&self, id: &str) -> bool {
        match self.lock().get(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}

/// What an action may know about the agent.
#[derive(Debug, Clone)]
pub struct Context {
    /// Agent id.
    pub id: String,
    /// Agent name.
    pub name: String,
    /// Current facts.
    pub facts: Facts,
    /// When the agent started (unix ms).
    pub started_ms: u64,
    /// Classic measuring state.
    pub selected: bool,
    /// Classic measuring interval (s).
    pub interval: f64,
    /// Limits for `exec`.
    pub exec: exec::Limits,
    /// Cancels this request (the `cancel` action of another request).
    pub cancel: CancellationToken,
    /// Every running request (for the `cancel` action).
    pub running: Running,
}

/// The result of an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Reply status.
    pub status: ReplyStatus,
    /// Reply data.
    pub data: Value,
    /// Error message, if any.
    pub error: Option<String>,
}

impl Outcome {
    /// Success with data.
    pub fn ok(data: Value) -> Outcome {
        Outcome {
            status: ReplyStatus::Ok,
            data,
            error: None,
        }
    }
    /// Failure with a message.
    pub fn error(message: impl Into<String>) -> Outcome {
        Outcome {
            status: ReplyStatus::Error,
            data: Value::Null,
            error: Some(message.into()),
        }
    }
}

/// The actions this agent answers.
pub const ACTIONS: [&str; 5] = ["ping", "facts", "status", "exec", "cancel"];

/// Runs `action`.
pub async fn run(action: &str, args: &Value, ctx: &Context) -> Outcome {
    match action {
        "ping" => ping(),
        "facts" => facts(args, ctx),
        "status" => status(ctx),
        "exec" => exec::run(args, &ctx.exec, &ctx.cancel).await,
        "cancel" => cancel(args, ctx),
        other => Outcome {
            status: ReplyStatus::Rejected,
            data: Value::Null,
            error: Some(format!(
                "unknown action {other:?} (this agent knows: {})",
                ACTIONS.join(", ")
            )),
        },
    }
}

/// `ping`: answers `{"pong": true}`.
fn ping() -> Outcome {
    Outcome::ok(json!({ "pong": true }))
}

/// `facts`: all facts, or those named in `{"names": [..]}`.
fn facts(args: &Value, ctx: &Context) -> Outcome {
    match args.get("names") {
        None => Outcome::ok(Value::Object(
            ctx.facts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )),
        Some(Value::Array(names)) => {
            let mut out = serde_json::Map::new();
            for n in names {
                let Some(n) = n.as_str() else {
                    return Outcome::error(format!("facts: names must be strings, got {n}"));
                };
                if let Some(v) = ctx.facts.get(n) {
                    out.insert(n.to_owned(), v.clone());
                }
            }
            Outcome::ok(Value::Object(out))
        }
        Some(other) => Outcome::error(format!(
            "facts: \"names\" must be an array of strings, got {other}"
        )),
    }
}

/// `cancel`: `{"request_id": "…"}` stops that running request (for `exec`:
/// its process group gets SIGTERM, then SIGKILL after the grace period).
/// Answers `{"cancelled": true}`, or false if it is not running here.
fn cancel(args: &Value, ctx: &Context) -> Outcome {
    match args.get("request_id").and_then(Value::as_str) {
        Some(id) => Outcome::ok(json!({ "cancelled": ctx.running.cancel(id) })),
        None => Outcome::error("cancel: args.request_id (a string) is required"),
    }
}

/// `status`: uptime, version, classic selection and interval.
fn status(ctx: &Context) -> Outcome {
    let uptime = now_ms().saturating_sub(ctx.started_ms) / 1000;
    Outcome::ok(json!({
        "id": ctx.id,
        "name": ctx.name,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime,
        "selected": ctx.selected,
        "interval_s": ctx.interval,
        "actions": ACTIONS,
    }))
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A duration from JSON seconds (positive, finite), for action arguments.
pub fn secs_arg(
    args: &Value,
    key: &str,
    default: Duration,
    max: Duration,
) -> Result<Duration, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s > 0.0 && s <= max.as_secs_f64() => {
                Ok(Duration::from_secs_f64(s))
            }
            _ => Err(format!(
                "{key}: {v} is not a number of seconds in (0, {}]",
                max.as_secs_f64()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut facts = Facts::new();
        facts.insert("os".into(), json!("linux"));
        facts.insert("cpus".into(), json!(4));
        Context {
            id: "id1".into(),
            name: "n1".into(),
            facts,
            started_ms: now_ms(),
            selected: false,
            interval: 10.0,
            exec: exec::Limits::default(),
            cancel: CancellationToken::new(),
            running: Running::default(),
        }
    }

    #[tokio::test]
    async fn cancel_finds_running_requests_only() {
        let c = ctx();
        let token = c.running.start("r1");
        assert_eq!(
            run("cancel", &json!({"request_id": "r1"}), &c).await,
            Outcome::ok(json!({"cancelled": true}))
        );
        assert!(token.is_cancelled());
        c.running.end("r1");
        assert_eq!(
            run("cancel", &json!({"request_id": "r1"}), &c).await,
            Outcome::ok(json!({"cancelled": false}))
        );
        assert_eq!(
            run("cancel", &json!({}), &c).await.status,
            ReplyStatus::Error
        );
    }

    #[tokio::test]
    async fn dispatch() {
        let c = ctx();
        assert_eq!(
            run("ping", &json!({}), &c).await,
            Outcome::ok(json!({"pong": true}))
        );
        let f = run("facts", &json!({"names": ["os", "nope"]}), &c).await;
        assert_eq!(f.data, json!({"os": "linux"}));
        assert_eq!(run("facts", &json!({}), &c).await.data["cpus"], 4);
        assert_eq!(
            run("facts", &json!({"names": "os"}), &c).await.status,
            ReplyStatus::Error
        );
        let s = run("status", &json!({}), &c).await;
        assert_eq!(s.data["name"], "n1");
        let unknown = run("reboot", &json!({}), &c).await;
        assert_eq!(unknown.status, ReplyStatus::Rejected);
        assert!(unknown.error.unwrap_or_default().contains("\"reboot\""));
    }
}
