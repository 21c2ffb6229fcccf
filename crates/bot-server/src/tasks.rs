//! The tasks service: making tasks. Validating a submission, resolving its
//! targets (ids or names, a filter against the registry, or a pool), storing
//! the task and handing it to the engine; and retrying a finished task's
//! failed targets as a new task. The HTTP API calls it, and so will
//! schedules and bridges. Its errors say which field is wrong and why
//! ([`TaskError`]); the API maps them to statuses.

use std::collections::HashSet;
use std::sync::Arc;

use bot_proto::api::{
    NewTask, RetryTask, TargetCounts, TargetRun, TargetState, Task, TaskDetail, TaskState,
};
use bot_proto::topics;
use bot_store::Store;
use serde_json::Value;

use crate::engine::{EngineHandle, Input, REPLY_GRACE_MS};
use crate::now_ms;
use crate::registry::Registry;

/// Most targets in one task.
pub const MAX_TARGETS: usize = 100_000;
/// Longest per-target timeout, seconds (one day).
pub const MAX_TIMEOUT_S: f64 = 86_400.0;
/// Default per-target timeout, seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 60.0;
/// The shortest `timeout_s` a task or a call may ask for: 1 ms (less would
/// be stored as 0).
pub const MIN_TIMEOUT_S: f64 = 0.001;

/// Why a task was not made.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The submission is malformed; the message names the field and value.
    #[error("{0}")]
    Invalid(String),
    /// Well formed but unusable: an unknown agent, a filter matching no
    /// online agent, offline targets that alone would fail it.
    #[error("{0}")]
    Unusable(String),
    /// No such task.
    #[error("{0}")]
    NotFound(String),
    /// Not possible in the task's state (or an ambiguous id prefix).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] bot_store::StoreError),
}

impl TaskError {
    fn invalid(m: impl Into<String>) -> TaskError {
        TaskError::Invalid(m.into())
    }
    fn unusable(m: impl Into<String>) -> TaskError {
        TaskError::Unusable(m.into())
    }
    fn not_found(m: impl Into<String>) -> TaskError {
        TaskError::NotFound(m.into())
    }
    fn conflict(m: impl Into<String>) -> TaskError {
        TaskError::Conflict(m.into())
    }
}

fn parse_filter(text: &str) -> Result<bot_proto::Filter, TaskError> {
    bot_proto::filter::parse(text).map_err(|e| {
        TaskError::invalid(format!(
            "filter: {text:?}: error at column {}: {}",
            e.position + 1,
            e.message
        ))
    })
}

/// Makes tasks (cheap to clone).
#[derive(Debug, Clone)]
pub struct TaskService {
    store: Store,
    registry: Registry,
    engine: EngineHandle,
    /// Signs the probe request each submission is checked with.
    signer: Arc<bot_auth::Signer>,
    /// A reply topic for the probe (any valid one).
    call_topic: String,
}

impl TaskService {
    /// A service over these parts.
    pub(crate) fn new(
        store: Store,
        registry: Registry,
        engine: EngineHandle,
        signer: Arc<bot_auth::Signer>,
        call_topic: String,
    ) -> TaskService {
        TaskService {
            store,
            registry,
            engine,
            signer,
            call_topic,
        }
    }

    /// Validates `new`, stores the task and its targets, and hands it to
    /// the engine. `who` is recorded as `created_by`.
    pub async fn submit(&self, new: NewTask, who: &str) -> Result<TaskDetail, TaskError> {
        let (task, targets) = self.build(new, who, None)?;
        self.start(task, targets).await
    }

    /// A new task of the failed (and, with `include_skipped`, skipped)
    /// targets of the finished task `id` (or a unique prefix of one), with
    /// the same action and settings (`retry_of` points back).
    pub async fn retry(
        &self,
        id: &str,
        opts: RetryTask,
        who: &str,
    ) -> Result<TaskDetail, TaskError> {
        let id = self.resolve(id).await?;
        let old = self.detail(&id).await?;
        if !old.task.state.is_final() {
            return Err(TaskError::conflict(format!(
                "task {id} is still {}: cancel it or wait for it to end",
                old.task.state
            )));
        }
        let again: Vec<String> = old
            .targets
            .iter()
            .filter(|t| {
                t.state.is_failure() || (opts.include_skipped && t.state == TargetState::Skipped)
            })
            .filter(|t| !t.agent_id.is_empty())
            .map(|t| t.agent_id.clone())
            .collect();
        if again.is_empty() {
            return Err(TaskError::conflict(format!(
                "task {id} has no failed{} targets to retry",
                if opts.include_skipped {
                    " or skipped"
                } else {
                    ""
                }
            )));
        }
        let mut args = old.task.args.clone();
        if let Some(m) = args.as_object_mut() {
            m.remove("timeout_s");
        }
        let new = NewTask {
            action: old.task.action.clone(),
            args,
            targets: again,
            filter: None,
            pool: None,
            count: None,
            timeout_s: Some(old.task.timeout_ms as f64 / 1000.0),
            parallel: Some(old.task.parallel),
            fail_count: Some(old.task.fail_count),
            fail_rate: Some(old.task.fail_rate),
            online_only: None,
        };
        let (task, targets) = self.build(new, who, Some(id))?;
        self.start(task, targets).await
    }

    async fn start(&self, task: Task, targets: Vec<TargetRun>) -> Result<TaskDetail, TaskError> {
        self.store.insert_task(&task, &targets).await?;
        let detail = TaskDetail {
            counts: TargetCounts::of(&targets),
            task: task.clone(),
            targets: targets.clone(),
        };
        self.engine.send(Input::Submitted(Box::new(task), targets));
        Ok(detail)
    }

    /// Validates a submission and makes the task and its WAITING targets
    /// (nothing is stored yet).
    pub fn build(
        &self,
        new: NewTask,
        who: &str,
        retry_of: Option<String>,
    ) -> Result<(Task, Vec<TargetRun>), TaskError> {
        let forms = usize::from(!new.targets.is_empty())
            + usize::from(new.filter.is_some())
            + usize::from(new.pool.is_some());
        if forms != 1 {
            return Err(TaskError::invalid(
                "give exactly one of targets (agent ids or names), filter, or pool (with count)",
            ));
        }
        let timeout_s = new.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
        if !(timeout_s.is_finite() && (MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&timeout_s)) {
            return Err(TaskError::invalid(format!(
                "timeout_s: {timeout_s} is outside {}..={MAX_TIMEOUT_S} seconds",
                MIN_TIMEOUT_S
            )));
        }
        let fail_count = new.fail_count.unwrap_or(-1);
        if fail_count == 0 || fail_count < -1 {
            return Err(TaskError::invalid(format!(
                "fail_count: {fail_count} is not allowed: the number of failures at which the task \
                 has failed, 1 or more (1 = at the first failure), or -1 = never"
            )));
        }
        let fail_rate = new.fail_rate.unwrap_or(1.0);
        if !(fail_rate.is_finite() && (0.0..=1.0).contains(&fail_rate)) {
            return Err(TaskError::invalid(format!(
                "fail_rate: {fail_rate} is outside 0..=1 (a fraction of the targets)"
            )));
        }
        let mut args = match new.args {
            Value::Object(m) => m,
            other => {
                return Err(TaskError::invalid(format!(
                    "args: must be a JSON object, not {other}"
                )));
            }
        };
        if new.action == "exec" {
            if !["command", "shell", "script"]
                .iter()
                .any(|k| args.contains_key(*k))
            {
                return Err(TaskError::invalid(
                    "args: exec needs one of command (argv array), shell (string) or script (string)",
                ));
            }
            if args.contains_key("timeout_s") {
                return Err(TaskError::invalid(
                    "args.timeout_s: set the task's timeout_s instead (it applies to every target)",
                ));
            }
            args.insert("timeout_s".into(), Value::from(timeout_s));
        }
        let args = Value::Object(args);
        let now = now_ms();
        // The request every target will get, checked once now (action name,
        // argument size, …), so that bad input fails here and not per target.
        let action = bot_proto::Action::from_parts(&new.action, &args)
            .map_err(|e| TaskError::invalid(e.to_string()))?;
        let probe = self.signer.request(bot_proto::Draft {
            action,
            filter: None,
            reply_to: self.call_topic.clone(),
            ttl_ms: (timeout_s * 1000.0) as u64 + REPLY_GRACE_MS,
        });
        probe
            .validate()
            .map_err(|e| TaskError::invalid(e.to_string()))?;

        let id = uuid::Uuid::now_v7().simple().to_string();
        let mut filter_text = None;
        // Matching agents known but offline (or untrusted): LOST at once.
        let mut lost: Vec<bot_proto::api::Agent> = Vec::new();
        let agents: Vec<(String, String)> = if let Some(text) = &new.filter {
            let f = parse_filter(text)?;
            filter_text = Some(f.to_string());
            let (online, offline): (Vec<_>, Vec<_>) = self
                .registry
                .select(Some(&f), false)
                .into_iter()
                .partition(|a| a.online && a.key.state == bot_proto::api::KeyState::Trusted);
            if online.is_empty() {
                let known = if offline.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = offline.iter().map(|a| a.name.as_str()).collect();
                    format!(" (offline or untrusted: {})", names.join(", "))
                };
                return Err(TaskError::unusable(format!(
                    "filter {text:?} matches no online agent{known}"
                )));
            }
            if !new.online_only.unwrap_or(false) {
                lost = offline;
            }
            online.into_iter().map(|a| (a.id, a.name)).collect()
        } else if let Some(pool) = &new.pool {
            topics::valid_topic_level(pool)
                .map_err(|e| TaskError::invalid(format!("pool: {e}")))?;
            let count = new.count.ok_or_else(|| {
                TaskError::invalid("count: a pool task needs count (how many runs)")
            })?;
            if count == 0 || count as usize > MAX_TARGETS {
                return Err(TaskError::invalid(format!(
                    "count: {count} is outside 1..={MAX_TARGETS}"
                )));
            }
            (0..count).map(|_| (String::new(), String::new())).collect()
        } else {
            if new.targets.len() > MAX_TARGETS {
                return Err(TaskError::invalid(format!(
                    "targets: {} targets, more than {MAX_TARGETS}",
                    new.targets.len()
                )));
            }
            let mut seen = HashSet::new();
            let mut v = Vec::with_capacity(new.targets.len());
            for t in &new.targets {
                let a = self
                    .registry
                    .resolve(t)
                    .map_err(|e| TaskError::unusable(format!("targets: {e}")))?;
                if !seen.insert(a.id.clone()) {
                    return Err(TaskError::invalid(format!(
                        "targets: {t:?} is listed twice (agent {})",
                        a.id
                    )));
                }
                v.push((a.id, a.name));
            }
            v
        };
        if new.count.is_some() && new.pool.is_none() {
            return Err(TaskError::invalid("count: only for pool tasks"));
        }
        // LOST targets count as failures from the start: a task they alone
        // would fail is refused rather than started and stopped at once.
        if !lost.is_empty() {
            let total = agents.len() + lost.len();
            let rate = lost.len() as f64 / total as f64;
            if (fail_count >= 1 && lost.len() as i64 >= fail_count) || rate > fail_rate {
                let names: Vec<&str> = lost.iter().map(|a| a.name.as_str()).collect();
                return Err(TaskError::unusable(format!(
                    "{} of {total} matching agents are offline ({}): as LOST targets they alone \
                         would fail the task (fail_count {fail_count}, fail_rate {fail_rate}); set \
                         online_only to leave them out",
                    lost.len(),
                    names.join(", ")
                )));
            }
        }
        let parallel = new.parallel.unwrap_or(agents.len() as u32);
        if parallel == 0 || parallel as usize > MAX_TARGETS {
            return Err(TaskError::invalid(format!(
                "parallel: {parallel} is outside 1..={MAX_TARGETS}"
            )));
        }
        let task = Task {
            id: id.clone(),
            state: TaskState::Waiting,
            action: new.action,
            args,
            filter: filter_text,
            pool: new.pool,
            timeout_ms: (timeout_s * 1000.0).round() as u64,
            parallel,
            fail_count,
            fail_rate,
            retry_of,
            created_by: who.to_owned(),
            created_ms: now,
            started_ms: None,
            finished_ms: None,
            reason: None,
        };
        let online_n = agents.len();
        let mut targets: Vec<TargetRun> = agents
            .into_iter()
            .enumerate()
            .map(|(seq, (agent_id, agent_name))| {
                TargetRun::waiting(&id, seq as u32, agent_id, agent_name)
            })
            .collect();
        for (i, a) in lost.into_iter().enumerate() {
            let mut t = TargetRun::waiting(&id, (online_n + i) as u32, a.id, a.name);
            t.state = TargetState::Lost;
            t.error = Some(format!(
                "offline when the task was submitted (last seen {} s before)",
                now.saturating_sub(a.last_seen_ms) / 1000
            ));
            t.finished_ms = Some(now);
            targets.push(t);
        }
        Ok((task, targets))
    }

    /// One task with every target.
    pub async fn detail(&self, id: &str) -> Result<TaskDetail, TaskError> {
        let (task, targets) = self
            .store
            .task_detail(id)
            .await?
            .ok_or_else(|| TaskError::not_found(format!("no task {id:?}")))?;
        Ok(TaskDetail {
            counts: TargetCounts::of(&targets),
            task,
            targets,
        })
    }

    /// The task `id` names: the id itself, or a unique prefix of one (as git
    /// and docker take). An ambiguous prefix is a 409 listing the candidates.
    pub async fn resolve(&self, id: &str) -> Result<String, TaskError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() == 32 {
            return Ok(id);
        }
        let found = self.store.task_ids_with_prefix(&id, 10).await?;
        match found.as_slice() {
            [] => Err(TaskError::not_found(format!("no task {id:?}"))),
            [one] => Ok(one.clone()),
            many => Err(TaskError::conflict(format!(
                "task id prefix {id:?} is ambiguous: {}{}",
                many.join(", "),
                if many.len() >= 10 { ", …" } else { "" }
            ))),
        }
    }
}
