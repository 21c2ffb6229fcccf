//! The server's records and the JSON of its HTTP API (`/api/…`): agents in
//! the registry, tasks and their targets, the states they move through, and
//! the bodies clients send. One set of types serves the store (rows), the
//! server (API bodies) and the CLI (`bot task …`), so the three cannot drift.
//!
//! Times are unix milliseconds. With the `openapi` feature every type also
//! describes itself for the server's OpenAPI document.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Facts, Status};
use crate::filter::Target;

/// An agent as the registry knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    /// The agent's persistent id.
    pub id: String,
    /// Its name (what name globs in filters match).
    pub name: String,
    /// The host's name.
    pub hostname: String,
    /// The host's addresses (no loopback or link-local).
    pub ips: Vec<String>,
    /// The agent's version.
    pub version: String,
    /// Online: its last status said so and no last will or clean stop since.
    pub online: bool,
    /// Facts, as in its last status.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub facts: Facts,
    /// Tags from its configuration.
    pub tags: Vec<String>,
    /// Work-queue pools it serves.
    pub pools: Vec<String>,
    /// When the agent process started (from its status).
    pub started_ms: u64,
    /// Its heartbeat interval, seconds (0: none).
    pub heartbeat_s: u64,
    /// When the registry first saw it.
    pub first_seen_ms: u64,
    /// When the registry last heard from it (status or heartbeat).
    pub last_seen_ms: u64,
    /// The agent's signing key as the server knows it.
    #[serde(default)]
    pub key: KeyBinding,
    /// The measuring settings in force, from its last status (not stored:
    /// known again from the retained status after a server restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<crate::metrics::Measure>,
}

/// The measuring settings the server wants an agent to run with, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WantedConfig {
    /// Counts up with every change.
    pub revision: u64,
    /// Measuring on.
    pub enabled: bool,
    /// The interval, ms.
    pub interval_ms: u64,
    /// The collectors.
    pub collectors: Vec<String>,
    /// When it was changed, unix ms.
    pub updated_ms: u64,
    /// The API token that changed it.
    pub updated_by: String,
}

/// An agent's measuring config (`GET /api/agents/{id}/config`): what the
/// server wants, and what the agent reports in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentConfigView {
    /// The agent.
    pub agent_id: String,
    /// What the server wants (`null`: never set; the agent runs its own).
    pub wanted: Option<WantedConfig>,
    /// What the agent's last status says is in force.
    pub in_force: Option<crate::metrics::Measure>,
    /// True when `in_force` is `wanted` (same revision and values, not
    /// changed on the agent since), or nothing is wanted.
    pub in_sync: bool,
    /// The collectors an agent knows.
    pub collectors_known: Vec<String>,
}

/// `PUT /api/agents/{id}/config` body: the fields to change; the others
/// keep their wanted value, else the value in force, else the defaults
/// (off, 10 s, every collector).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentConfigChange {
    /// Measuring on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The interval, ms (100..=86,400,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// The collectors that run (names from `collectors_known`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collectors: Option<Vec<String>>,
}

/// An agent's signing key as the server has bound it to the agent's id
/// (like ssh's known_hosts): the first key seen is bound (or held pending
/// an operator's `bot agents accept ID` when the server does not accept new
/// agents by itself); a different key later is an alarm, and the agent's
/// statuses, heartbeats and results are refused until an operator accepts
/// the new key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyBinding {
    /// Where the binding stands.
    pub state: KeyState,
    /// The bound key (`ed25519:<base64>`): replies must be signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A key seen but not (yet) accepted: a new agent's, or a changed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

/// The state of an agent's [`KeyBinding`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// No key known yet.
    #[default]
    None,
    /// `key` is bound; the agent is trusted.
    Trusted,
    /// A new agent waits for an operator to accept `pending`.
    Pending,
    /// The agent now signs with `pending`, not with the bound `key`: an
    /// alarm; its messages are refused until an operator accepts `pending`.
    Changed,
}

impl KeyState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::None => "none",
            KeyState::Trusted => "trusted",
            KeyState::Pending => "pending",
            KeyState::Changed => "changed",
        }
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<KeyState, String> {
        [
            KeyState::None,
            KeyState::Trusted,
            KeyState::Pending,
            KeyState::Changed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown key state {s:?}"))
    }
}

impl Agent {
    /// The record for `status`, seen at `now_ms` for the first time.
    pub fn from_status(status: &Status, now_ms: u64) -> Agent {
        Agent {
            id: status.id.clone(),
            name: status.name.clone(),
            hostname: status.hostname.clone(),
            ips: status.ips.clone(),
            version: status.version.clone(),
            online: status.online,
            facts: status.facts.clone(),
            tags: status.tags.clone(),
            pools: status.pools.clone(),
            started_ms: status.started_ms,
            heartbeat_s: status.heartbeat_s,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            key: KeyBinding::default(),
            measure: status.measure.clone(),
        }
    }
}

impl Target for Agent {
    fn fact(&self, key: &str) -> Option<&Value> {
        self.facts.get(key)
    }
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Generates an enum of states with its wire names (SCREAMING_CASE),
/// `as_str`, `Display`, `FromStr` and `ALL`.
macro_rules! states {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<$name, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("{:?} is not one of {}", s, names.join(", "))
                    })
            }
        }
    };
}

states! {
    /// Where a task is: WAITING → RUNNING → SUCCEEDED / FAILED / CANCELLED.
    TaskState {
        /// Accepted, not started yet.
        Waiting = "WAITING",
        /// Targets are being run.
        Running = "RUNNING",
        /// Every target succeeded.
        Succeeded = "SUCCEEDED",
        /// A target failed, or a threshold stopped the rollout.
        Failed = "FAILED",
        /// Cancelled by an operator: nothing further was started.
        Cancelled = "CANCELLED",
    }
}

impl TaskState {
    /// No further change will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

states! {
    /// Where one target of a task is: WAITING → RUNNING → SUCCEEDED / FAILED
    /// / TIMED_OUT / LOST, or WAITING → SKIPPED.
    TargetState {
        /// Not started yet.
        Waiting = "WAITING",
        /// The request was sent; no result yet.
        Running = "RUNNING",
        /// The action succeeded (exit code 0).
        Succeeded = "SUCCEEDED",
        /// The action failed (non-zero exit, could not start, rejected).
        Failed = "FAILED",
        /// No result within the timeout (the agent killed it, or never answered).
        TimedOut = "TIMED_OUT",
        /// Never started: a threshold stopped the task, or it was cancelled.
        Skipped = "SKIPPED",
        /// The agent went offline while the target ran (or was offline when due).
        Lost = "LOST",
    }
}

impl TargetState {
    /// No further change will happen.
    pub fn is_final(self) -> bool {
        !matches!(self, TargetState::Waiting | TargetState::Running)
    }

    /// Counts against `fail_count` / `fail_rate`.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            TargetState::Failed | TargetState::TimedOut | TargetState::Lost
        )
    }
}

/// A task: one action run on many targets, with a parallel window and
/// failure thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// Task id (a UUID v7 in simple form: sortable by creation).
    pub id: String,
    /// Where it is.
    pub state: TaskState,
    /// The agent action each target runs (usually `exec`).
    pub action: String,
    /// The action's arguments.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Value,
    /// The filter the targets were resolved from at submit time, if any.
    pub filter: Option<String>,
    /// Work-queue pool for a pull-mode task (targets are slots taken by any
    /// idle agent of the pool), if any.
    pub pool: Option<String>,
    /// Time allowed per target, milliseconds.
    pub timeout_ms: u64,
    /// Targets running at once (a sliding window).
    pub parallel: u32,
    /// Once this many targets have failed, the task is FAILED and no further target starts: N ≥ 1, or -1 = never (the default).
    pub fail_count: i64,
    /// Once failures / targets exceed this fraction (0..=1), the task is FAILED and no further target starts; 1 = never (the default).
    pub fail_rate: f64,
    /// The task this one retries, if any.
    pub retry_of: Option<String>,
    /// Who submitted it (the API token's name).
    pub created_by: String,
    /// When it was submitted.
    pub created_ms: u64,
    /// When its first target started.
    pub started_ms: Option<u64>,
    /// When it reached a final state.
    pub finished_ms: Option<u64>,
    /// Why it stopped early (threshold crossed, cancelled), if it did.
    pub reason: Option<String>,
}

/// One target of a task: one agent (or, in pull mode, one slot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetRun {
    /// The task.
    pub task_id: String,
    /// Position in the rollout order, from 0.
    pub seq: u32,
    /// The agent (empty for a pull-mode slot not yet taken).
    pub agent_id: String,
    /// The agent's name when the task was submitted (or when it took the slot).
    pub agent_name: String,
    /// Where it is.
    pub state: TargetState,
    /// The request sent for it (sent again with the same id after a server
    /// restart: the agent never runs one id twice).
    pub request_id: Option<String>,
    /// The request's creation time (kept so a resent request is identical).
    pub request_created_ms: Option<u64>,
    /// Exit code of the command, if it exited.
    pub exit_code: Option<i64>,
    /// Signal that killed it, if one did.
    pub signal: Option<i64>,
    /// The tail of its standard output.
    pub stdout: String,
    /// The tail of its standard error.
    pub stderr: String,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// The action's result data for actions other than `exec`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    /// When the request was sent.
    pub started_ms: Option<u64>,
    /// When the result was recorded.
    pub finished_ms: Option<u64>,
}

impl TargetRun {
    /// A target not started yet: WAITING, no request, no result.
    pub fn waiting(task_id: &str, seq: u32, agent_id: String, agent_name: String) -> TargetRun {
        TargetRun {
            task_id: task_id.to_owned(),
            seq,
            agent_id,
            agent_name,
            state: TargetState::Waiting,
            request_id: None,
            request_created_ms: None,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            data: None,
            started_ms: None,
            finished_ms: None,
        }
    }
}

/// A task with its targets: `GET /api/tasks/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Targets by state.
    pub counts: TargetCounts,
    /// Every target, in rollout order.
    pub targets: Vec<TargetRun>,
}

/// How many targets are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetCounts {
    /// All targets.
    pub total: u32,
    /// WAITING.
    pub waiting: u32,
    /// RUNNING.
    pub running: u32,
    /// SUCCEEDED.
    pub succeeded: u32,
    /// FAILED.
    pub failed: u32,
    /// TIMED_OUT.
    pub timed_out: u32,
    /// SKIPPED.
    pub skipped: u32,
    /// LOST.
    pub lost: u32,
}

impl TargetCounts {
    /// Counts the states of `targets`.
    pub fn of<'a>(targets: impl IntoIterator<Item = &'a TargetRun>) -> TargetCounts {
        let mut c = TargetCounts::default();
        for t in targets {
            c.add(t.state);
        }
        c
    }

    /// Adds one target in `state`.
    pub fn add(&mut self, state: TargetState) {
        self.total += 1;
        let slot = match state {
            TargetState::Waiting => &mut self.waiting,
            TargetState::Running => &mut self.running,
            TargetState::Succeeded => &mut self.succeeded,
            TargetState::Failed => &mut self.failed,
            TargetState::TimedOut => &mut self.timed_out,
            TargetState::Skipped => &mut self.skipped,
            TargetState::Lost => &mut self.lost,
        };
        *slot += 1;
    }

    /// Failures (FAILED, TIMED_OUT, LOST).
    pub fn failures(&self) -> u32 {
        self.failed + self.timed_out + self.lost
    }
}

/// A task summary in lists: `GET /api/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskSummary {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Targets by state.
    pub counts: TargetCounts,
}

/// The body of `POST /api/tasks`. Give `targets`, `filter` or `pool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The agent action (default `exec`).
    #[serde(default = "default_action")]
    pub action: String,
    /// Its arguments; for `exec`: `command` (argv), `shell` or `script`, and
    /// optionally `env`, `cwd`, `output_limit` (`timeout_s` is set from
    /// `timeout_s` below).
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Value,
    /// Explicit agent ids (or names), in rollout order.
    #[serde(default)]
    pub targets: Vec<String>,
    /// A filter, resolved against the known agents at submit time: the
    /// online ones become targets; matching agents that are known but
    /// offline become LOST targets at once (see `online_only`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Pull mode: a work-queue pool whose idle agents take the targets.
    #[serde(default)]
    pub pool: Option<String>,
    /// Pull mode: how many times to run the action in the pool.
    #[serde(default)]
    pub count: Option<u32>,
    /// Seconds allowed per target: 0.001..=86400 (default 60).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Targets running at once (default: all).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// With a filter: leave out matching agents that are offline, instead
    /// of making them LOST targets (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_only: Option<bool>,
    /// Once this many targets have failed, the task is FAILED and no further target starts: N ≥ 1, or -1 = never (the default).
    #[serde(default)]
    pub fail_count: Option<i64>,
    /// Once failures / targets exceed this fraction (0..=1), the task is FAILED and no further target starts; 1 = never (the default).
    #[serde(default)]
    pub fail_rate: Option<f64>,
}

fn default_action() -> String {
    "exec".to_owned()
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The body of `POST /api/tasks/{id}/retry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetryTask {
    /// Also run the targets that were SKIPPED (default: only FAILED,
    /// TIMED_OUT and LOST ones).
    #[serde(default)]
    pub include_skipped: bool,
}

/// One line of the server's audit trail (`GET /api/audit`): what the
/// server signed and sent on whose behalf, and what it refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Unique, time-ordered (UUIDv7).
    pub id: String,
    /// When, unix ms.
    pub time_ms: u64,
    /// `request` (the server signed and sent a request), `rejected` (an
    /// agent refused one of its requests), `refused_reply` (a reply not
    /// signed by the agent's bound key), `key_changed` (an agent's key
    /// changed: the alarm), `key_accepted` (an operator accepted a key).
    pub event: String,
    /// The API token whose call caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The key involved: the server's (requests) or an agent's (key events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The agent, when one is concerned (a broadcast names its filter in
    /// `detail` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The request's action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// SHA-256 of the request's arguments (not the arguments: they may hold
    /// secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_sha256: Option<String>,
    /// The filter, the task, the reason, the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An error from the API: `{"error": "…"}` with the HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// What was wrong, naming the field and the value.
    pub error: String,
}

/// A task event, published on `bot/v1/event/task/<id>` at every transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskEvent {
    /// The task.
    pub task_id: String,
    /// The task's state after the change.
    pub state: TaskState,
    /// The target that changed, if the change was a target's.
    pub target: Option<TargetRun>,
    /// Targets by state after the change.
    pub counts: TargetCounts,
    /// When.
    pub at_ms: u64,
}

/// The body of `POST /api/schedules`: a named, repeating job. Exactly one
/// of `every_s` and `cron`; exactly one of `check` and `command`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// 1..=64 characters of `[A-Za-z0-9_.-]`, unique.
    pub name: String,
    /// Run every this many seconds (1..=2,678,400, 31 days). The first run
    /// falls at a random moment within the first interval (splay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_s: Option<f64>,
    /// Or a standard 5-field crontab expression (`*/5 * * * *`), in the
    /// server's local time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Checks only: each agent's run is delayed by its own random time in
    /// `[0, splay_s)` seconds, to spread heavy checks (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splay_s: Option<f64>,
    /// Which agents (the filter language); default: every agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Run the agents' check of this name (`[checks.NAME]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Or run a command as a task: `exec`'s arguments (`command`, `shell`
    /// or `script`, and `env`, `cwd`, `output_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub command: Option<Value>,
    /// Commands: targets running at once (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Commands: the task's `fail_count` (default -1, never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_count: Option<i64>,
    /// Commands: leave out matching agents that are offline (default false:
    /// they are LOST targets of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_only: Option<bool>,
    /// Seconds a run may take: a command's per-target timeout, or how long
    /// a check run waits for results (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Checks: where agents send the results (default
    /// `bot/v1/reply/checks/durable`, which the server records and `bot
    /// bridge nagios` reads). Results sent elsewhere are for your own
    /// receiver: the server does not record them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Made paused (default false).
    #[serde(default)]
    pub paused: bool,
}

/// A schedule and how its runs went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// Its id.
    pub id: String,
    /// What it runs and when.
    #[serde(flatten)]
    pub spec: NewSchedule,
    /// Who made it (an API token's name).
    pub created_by: String,
    /// When it was made.
    pub created_ms: u64,
    /// When the next run is due; `None` while paused.
    pub next_run_ms: Option<u64>,
    /// When it last ran.
    pub last_run_ms: Option<u64>,
    /// The task of the last run (commands).
    pub last_task_id: Option<String>,
    /// What went wrong with the last run, if anything (no agent matched, …).
    pub last_error: Option<String>,
    /// Runs started.
    pub runs: u64,
    /// Runs not started because the previous one was still going.
    pub skipped: u64,
    /// Runs that fell due while no server was running (reported, not
    /// replayed).
    pub missed: u64,
}

impl NewSchedule {
    /// What the schedule runs: `check` or `command`.
    pub fn kind(&self) -> &'static str {
        if self.check.is_some() {
            "check"
        } else {
            "command"
        }
    }
}

/// One check on one agent, as the server last saw it: `GET /api/checks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckStatus {
    /// The agent.
    pub agent_id: String,
    /// Its name.
    pub agent_name: String,
    /// The check's name.
    pub check: String,
    /// OK, WARNING, CRITICAL or UNKNOWN (UNKNOWN when stale).
    pub state: String,
    /// The Nagios return code, 0..=3.
    pub code: u8,
    /// The first line of output (`stale: …` when stale).
    pub output: String,
    /// The following lines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub long_output: String,
    /// The performance data, as the plugin printed it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub perfdata: String,
    /// Since when the state is what it is.
    pub since_ms: u64,
    /// When the last result arrived.
    pub updated_ms: u64,
    /// The interval of the schedule that asks for it; a result older than
    /// two intervals makes the check stale.
    pub interval_ms: u64,
    /// No result within two intervals: the state is UNKNOWN "stale".
    pub stale: bool,
    /// The schedule that asked, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
}

/// A check's state change, in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckChange {
    /// The agent.
    pub agent_id: String,
    /// The check.
    pub check: String,
    /// The state before (`None`: the first result).
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// When.
    pub at_ms: u64,
    /// The output that came with the change.
    pub output: String,
}

/// The events a webhook can ask for.
pub const WEBHOOK_EVENTS: [&str; 5] = [
    "task.finished",
    "target.failed",
    "agent.online",
    "agent.offline",
    "check.changed",
];

/// The body of `POST /api/webhooks` (and a `[[webhooks]]` table of the
/// server's configuration file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// 1..=64 characters of `[A-Za-z0-9_.-]`, unique.
    pub name: String,
    /// Where to POST: `http://` or `https://` (checked against the
    /// system's roots).
    pub url: String,
    /// Which events: `task.finished`, `target.failed`, `agent.online`,
    /// `agent.offline`, `check.changed`.
    pub events: Vec<String>,
    /// Only events about agents this filter selects (events about no one
    /// agent, `task.finished`, are sent whatever the filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The HMAC-SHA256 key of the `X-Bot-Signature` header: 16..=1024
    /// characters. Never shown again.
    pub secret: String,
}

/// A webhook (its secret is never shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it POSTs.
    pub url: String,
    /// Its events.
    pub events: Vec<String>,
    /// Its filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Deliveries are attempted (false: disabled after a delivery failed
    /// every attempt; its pending deliveries wait until it is enabled).
    pub enabled: bool,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// `config` (the server's configuration file) or `api`.
    pub source: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_ms: u64,
}

/// One delivery of one event to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Its id: the `Idempotency-Key` (and `X-Bot-Delivery`) header, the
    /// same on every attempt.
    pub id: String,
    /// The webhook.
    pub hook_id: String,
    /// The event.
    pub event: String,
    /// When the event happened.
    pub created_ms: u64,
    /// `pending`, `delivered` or `failed` (every attempt failed).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// The last HTTP status received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// The last error (connection refused, a timeout, a non-2xx status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_ms: Option<u64>,
    /// The JSON body sent.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: Value,
}

/// Nagios's order of badness: CRITICAL, UNKNOWN, WARNING, OK (worst first,
/// the order `bot checks` lists in).
pub fn check_severity(state: &str) -> u8 {
    match state {
        "CRITICAL" => 3,
        "UNKNOWN" => 2,
        "WARNING" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_text_and_json() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(*s));
            assert_eq!(
                serde_json::to_string(s).unwrap_or_default(),
                format!("\"{}\"", s.as_str())
            );
        }
        for s in TargetState::ALL {
            assert_eq!(s.as_str().parse::<TargetState>(), Ok(*s));
        }
        assert_eq!(
            "timed_out".parse::<TargetState>(),
            Ok(TargetState::TimedOut)
        );
        let e = "DONE".parse::<TaskState>().expect_err("not a state");
        assert!(e.contains("\"DONE\"") && e.contains("SUCCEEDED"), "{e}");
    }

    #[test]
    fn counts_and_failures() {
        let mut c = TargetCounts::default();
        for s in TargetState::ALL {
            c.add(*s);
        }
        assert_eq!(c.total, 7);
        assert_eq!(c.failures(), 3);
        assert!(TargetState::Lost.is_failure() && !TargetState::Skipped.is_failure());
        assert!(TaskState::Cancelled.is_final() && !TaskState::Running.is_final());
    }

    #[test]
    fn new_task_defaults_and_unknown_fields() {
        let t: NewTask = serde_json::from_str(r#"{"targets":["a"]}"#).expect("minimal task");
        assert_eq!(t.action, "exec");
        assert!(t.args.is_object());
        let e = serde_json::from_str::<NewTask>(r#"{"targets":["a"],"paralel":3}"#)
            .expect_err("typo must be rejected");
        assert!(e.to_string().contains("paralel"), "{e}");
    }
}
