//! Request actions of the structured protocol. The typed [`Action`] (from
//! `bot-proto`, arguments already validated) is dispatched by [`run`]; each
//! action is a function (or, for `exec`, a file) returning an [`Outcome`]
//! whose data is the action's typed result. Adding an action = a variant in
//! `bot_proto::action` + one function here.

pub mod exec;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bot_proto::Action;
use bot_proto::action::{CancelArgs, CancelResult, FactsArgs, PingResult, StatusResult};
use bot_proto::envelope::ReplyStatus;
use serde_json::Value;

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
    /// Success with a typed result as data.
    pub fn data(result: &impl serde::Serialize) -> Outcome {
        Outcome::ok(serde_json::to_value(result).unwrap_or(Value::Null))
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
pub const ACTIONS: [&str; 5] = bot_proto::action::NAMES;

/// Runs `action`.
pub async fn run(action: &Action, ctx: &Context) -> Outcome {
    match action {
        Action::Ping(_) => Outcome::data(&PingResult { pong: true }),
        Action::Facts(a) => facts(a, ctx),
        Action::Status(_) => status(ctx),
        Action::Exec(a) => exec::run(a, &ctx.exec, &ctx.cancel).await,
        Action::Cancel(a) => cancel(a, ctx),
    }
}

/// `facts`: all facts, or those named.
fn facts(args: &FactsArgs, ctx: &Context) -> Outcome {
    let all = || ctx.facts.iter().map(|(k, v)| (k.clone(), v.clone()));
    Outcome::ok(Value::Object(match &args.names {
        None => all().collect(),
        Some(names) => all().filter(|(k, _)| names.contains(k)).collect(),
    }))
}

/// `cancel`: stops that running request (for `exec`: its process group gets
/// SIGTERM, then SIGKILL after the grace period); false if it is not
/// running here.
fn cancel(args: &CancelArgs, ctx: &Context) -> Outcome {
    Outcome::data(&CancelResult {
        cancelled: ctx.running.cancel(&args.request_id),
    })
}

/// `status`: uptime, version, classic selection and interval.
fn status(ctx: &Context) -> Outcome {
    Outcome::data(&StatusResult {
        id: ctx.id.clone(),
        name: ctx.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: now_ms().saturating_sub(ctx.started_ms) / 1000,
        selected: ctx.selected,
        interval_s: ctx.interval,
        actions: ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
    })
}

/// Unix time in milliseconds.
pub use bot_proto::now_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn parse(action: &str, args: Value) -> Action {
        Action::from_parts(action, &args).expect("valid action")
    }

    #[tokio::test]
    async fn cancel_finds_running_requests_only() {
        let c = ctx();
        let token = c.running.start("r1");
        let cancel = parse("cancel", json!({"request_id": "r1"}));
        assert_eq!(
            run(&cancel, &c).await,
            Outcome::ok(json!({"cancelled": true}))
        );
        assert!(token.is_cancelled());
        c.running.end("r1");
        assert_eq!(
            run(&cancel, &c).await,
            Outcome::ok(json!({"cancelled": false}))
        );
    }

    #[tokio::test]
    async fn dispatch() {
        let c = ctx();
        assert_eq!(
            run(&parse("ping", json!({})), &c).await,
            Outcome::ok(json!({"pong": true}))
        );
        let f = run(&parse("facts", json!({"names": ["os", "nope"]})), &c).await;
        assert_eq!(f.data, json!({"os": "linux"}));
        assert_eq!(run(&parse("facts", json!({})), &c).await.data["cpus"], 4);
        let s = run(&parse("status", json!({})), &c).await;
        assert_eq!(s.data["name"], "n1");
        assert_eq!(s.data["actions"], json!(ACTIONS));
    }
}
