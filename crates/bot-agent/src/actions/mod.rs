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
/// that cancels it (`cancel` action); and the ids cancelled before they
/// arrived (a `cancel` overtaking its request), so that such a request is
/// cancelled as it starts instead of running to its end.
#[derive(Debug, Clone, Default)]
pub struct Running {
    inner: Arc<Mutex<RunningInner>>,
}

#[derive(Debug, Default)]
struct RunningInner {
    tokens: HashMap<String, CancellationToken>,
    /// id → until when (unix ms) a request of that id starts cancelled.
    early: HashMap<String, u64>,
}

/// How long a cancel of a request not seen yet is remembered (the server's
/// cancel is valid for as long).
pub const EARLY_CANCEL_MS: u64 = 10 * 60 * 1000;
/// Most cancels of unseen requests remembered (the oldest go first).
pub const MAX_EARLY_CANCELS: usize = 10_000;

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, RunningInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers request `id`; its token cancels it (already cancelled if
    /// a cancel of `id` came first).
    pub fn start(&self, id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        let mut inner = self.lock();
        if inner
            .early
            .remove(id)
            .is_some_and(|until| until >= bot_proto::now_ms())
        {
            token.cancel();
        }
        inner.tokens.insert(id.to_owned(), token.clone());
        token
    }

    /// Forgets request `id` (it ended).
    pub fn end(&self, id: &str) {
        self.lock().tokens.remove(id);
    }

    /// Cancels request `id`; false if it is not running here (then a
    /// request of that id arriving later starts cancelled).
    pub fn cancel(&self, id: &str) -> bool {
        let mut inner = self.lock();
        if let Some(t) = inner.tokens.get(id) {
            t.cancel();
            return true;
        }
        let now = bot_proto::now_ms();
        if inner.early.len() >= MAX_EARLY_CANCELS {
            inner.early.retain(|_, until| *until >= now);
            if inner.early.len() >= MAX_EARLY_CANCELS {
                // Still full: forget the one that expires first.
                if let Some(oldest) = inner
                    .early
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(k, _)| k.clone())
                {
                    inner.early.remove(&oldest);
                }
            }
        }
        inner.early.insert(id.to_owned(), now + EARLY_CANCEL_MS);
        false
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
    /// The checks configured (`check` action).
    pub checks: Arc<std::collections::BTreeMap<String, crate::config::CheckConfig>>,
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
pub const ACTIONS: [&str; 6] = bot_proto::action::NAMES;

/// Runs `action`.
pub async fn run(action: &Action, ctx: &Context) -> Outcome {
    match action {
        Action::Ping(_) => Outcome::data(&PingResult { pong: true }),
        Action::Facts(a) => facts(a, ctx),
        Action::Status(_) => status(ctx),
        Action::Exec(a) => exec::run(a, &ctx.exec, &ctx.cancel).await,
        Action::Cancel(a) => cancel(a, ctx),
        Action::Check(a) => check(a, ctx).await,
    }
}

/// `check`: runs the check configured under that name, as `exec` runs a
/// command (own process group, timeout, output cap), and reads the result
/// as Nagios does.
async fn check(args: &bot_proto::action::CheckArgs, ctx: &Context) -> Outcome {
    use bot_proto::nagios;
    let Some(cfg) = ctx.checks.get(&args.name) else {
        let known: Vec<&str> = ctx.checks.keys().map(String::as_str).collect();
        return Outcome::error(format!(
            "check: no check named {:?} here (configured: {})",
            args.name,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    };
    let exec = bot_proto::action::ExecArgs {
        timeout_s: Some(cfg.timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT_S)),
        ..bot_proto::action::ExecArgs::command(cfg.command.clone())
    };
    let ran = exec::run(&exec, &ctx.exec, &ctx.cancel).await;
    let result: bot_proto::action::ExecResult = match serde_json::from_value(ran.data.clone()) {
        Ok(r) => r,
        Err(_) => {
            return Outcome::data(&bot_proto::action::CheckResult {
                check: args.name.clone(),
                state: nagios::CheckState::Unknown.as_str().to_owned(),
                code: nagios::CheckState::Unknown.code(),
                output: String::new(),
                long_output: String::new(),
                perfdata: String::new(),
                reason: Some(ran.error.unwrap_or_else(|| "the plugin did not run".into())),
                duration_ms: 0,
            });
        }
    };
    let (state, mut reason) = if result.started {
        nagios::state_of(result.exit_code, result.signal, result.timed_out)
    } else {
        (nagios::CheckState::Unknown, None)
    };
    if !result.started {
        reason = Some(
            ran.error
                .unwrap_or_else(|| "the plugin could not start".into()),
        );
    }
    let out = nagios::split_output(&result.stdout);
    Outcome::data(&bot_proto::action::CheckResult {
        check: args.name.clone(),
        state: state.as_str().to_owned(),
        code: state.code(),
        output: out.text,
        long_output: out.long_text,
        perfdata: out.perfdata,
        reason,
        duration_ms: result.duration_ms,
    })
}

/// A check's timeout when its config gives none, seconds.
pub const DEFAULT_CHECK_TIMEOUT_S: f64 = 60.0;

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
            checks: Arc::new(checks()),
        }
    }

    fn checks() -> std::collections::BTreeMap<String, crate::config::CheckConfig> {
        let sh = |script: &str, timeout: Option<f64>| crate::config::CheckConfig {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout,
        };
        [
            (
                "ok",
                sh("echo 'LOAD OK - load 0.1 | load1=0.1;5;10;0'; exit 0", None),
            ),
            ("warn", sh("echo 'DISK WARNING - 85%'; exit 1", None)),
            (
                "crit",
                sh(
                    "printf 'PROCS CRITICAL\\nzombie 12\\n| procs=12\\n'; exit 2",
                    None,
                ),
            ),
            ("weird", sh("echo odd; exit 7", None)),
            ("slow", sh("sleep 5", Some(0.3))),
            (
                "missing",
                crate::config::CheckConfig {
                    command: vec!["/nonexistent/check_x".into()],
                    timeout: None,
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Nagios semantics end to end on a real process: states by exit code,
    /// UNKNOWN with a reason for any other code, a timeout, or a plugin that
    /// cannot start; output split; only configured names run.
    #[tokio::test]
    async fn checks_run_with_nagios_semantics() {
        let c = ctx();
        let run_check = |name: &str| {
            let a = parse("check", json!({ "name": name }));
            let c = c.clone();
            async move {
                let out = run(&a, &c).await;
                (out.status, out.error, out.data)
            }
        };
        let (status, _, d) = run_check("ok").await;
        assert_eq!(status, ReplyStatus::Ok);
        assert_eq!(d["state"], "OK");
        assert_eq!(d["code"], 0);
        assert_eq!(d["output"], "LOAD OK - load 0.1");
        assert_eq!(d["perfdata"], "load1=0.1;5;10;0");
        assert_eq!(run_check("warn").await.2["state"], "WARNING");
        let (_, _, d) = run_check("crit").await;
        assert_eq!(
            (d["state"].as_str(), d["code"].as_u64()),
            (Some("CRITICAL"), Some(2))
        );
        assert_eq!(d["long_output"], "zombie 12");
        assert_eq!(d["perfdata"], "procs=12");
        let (_, _, d) = run_check("weird").await;
        assert_eq!(d["state"], "UNKNOWN");
        assert!(
            d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("exit code 7")),
            "{d}"
        );
        let (_, _, d) = run_check("slow").await;
        assert_eq!(d["state"], "UNKNOWN");
        assert_eq!(d["reason"], "timed out");
        let (_, _, d) = run_check("missing").await;
        assert_eq!(d["state"], "UNKNOWN");
        assert!(
            d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("cannot start")),
            "{d}"
        );
        let (status, error, _) = run_check("nosuch").await;
        assert_eq!(status, ReplyStatus::Error);
        assert!(error.is_some_and(|e| e.contains("no check named \"nosuch\"")));
    }

    fn parse(action: &str, args: Value) -> Action {
        Action::from_parts(action, &args).expect("valid action")
    }

    #[tokio::test]
    async fn a_cancel_that_overtakes_its_request_cancels_it_at_start() {
        let c = ctx();
        assert!(!c.running.cancel("late"));
        let token = c.running.start("late");
        assert!(token.is_cancelled());
        // Once only: the same id again starts normally.
        c.running.end("late");
        assert!(!c.running.start("late").is_cancelled());
        assert!(!c.running.start("other").is_cancelled());
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
