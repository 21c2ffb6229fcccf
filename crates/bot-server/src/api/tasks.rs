//! `/api/tasks`: submit (validate, resolve targets, store, hand to the
//! engine), list, show, cancel, retry.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bot_proto::api::{
    NewTask, RetryTask, TargetCounts, TargetRun, TargetState, Task, TaskDetail, TaskState,
    TaskSummary,
};
use bot_proto::topics;
use bot_store::TaskQuery;
use serde::Deserialize;
use serde_json::Value;

use super::{Body, Caller, Core, Error, json};
use crate::engine::{Input, REPLY_GRACE_MS};
use crate::now_ms;

/// Most targets in one task.
pub const MAX_TARGETS: usize = 100_000;
/// Longest per-target timeout, seconds (one day).
pub const MAX_TIMEOUT_S: f64 = 86_400.0;
/// Default per-target timeout, seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 60.0;

/// Submits a task. Targets come from `targets` (ids or names), a `filter`
/// (resolved now against the online agents; the list is stored), or a
/// `pool` with a `count` (pull mode).
#[utoipa::path(post, path = "/api/tasks", security(("bearer" = ["operate"])), request_body = NewTask,
    responses((status = 201, description = "Created", body = TaskDetail), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 422, description = "Well-formed but unusable (unknown agent, no agent matches)", body = bot_proto::api::ApiError)))]
pub(super) async fn submit(
    State(core): State<Arc<Core>>,
    Extension(caller): Extension<Caller>,
    Body(new): Body<NewTask>,
) -> Result<Response, Error> {
    let (task, targets) = build(&core, new, &caller.0, None)?;
    start(&core, task, targets).await
}

async fn start(core: &Core, task: Task, targets: Vec<TargetRun>) -> Result<Response, Error> {
    core.store.insert_task(&task, &targets).await?;
    let detail = TaskDetail {
        counts: TargetCounts::of(&targets),
        task: task.clone(),
        targets: targets.clone(),
    };
    core.engine.send(Input::Submitted(Box::new(task), targets));
    Ok(json(StatusCode::CREATED, detail))
}

/// Validates a submission and makes the task and its WAITING targets.
pub(crate) fn build(
    core: &Core,
    new: NewTask,
    who: &str,
    retry_of: Option<String>,
) -> Result<(Task, Vec<TargetRun>), Error> {
    let forms = usize::from(!new.targets.is_empty())
        + usize::from(new.filter.is_some())
        + usize::from(new.pool.is_some());
    if forms != 1 {
        return Err(Error::bad(
            "give exactly one of targets (agent ids or names), filter, or pool (with count)",
        ));
    }
    let timeout_s = new.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if !(timeout_s.is_finite() && (super::MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&timeout_s)) {
        return Err(Error::bad(format!(
            "timeout_s: {timeout_s} is outside {}..={MAX_TIMEOUT_S} seconds",
            super::MIN_TIMEOUT_S
        )));
    }
    let fail_count = new.fail_count.unwrap_or(-1);
    if fail_count == 0 || fail_count < -1 {
        return Err(Error::bad(format!(
            "fail_count: {fail_count} is not allowed: the number of failures at which the task \
             has failed, 1 or more (1 = at the first failure), or -1 = never"
        )));
    }
    let fail_rate = new.fail_rate.unwrap_or(1.0);
    if !(fail_rate.is_finite() && (0.0..=1.0).contains(&fail_rate)) {
        return Err(Error::bad(format!(
            "fail_rate: {fail_rate} is outside 0..=1 (a fraction of the targets)"
        )));
    }
    let mut args = match new.args {
        Value::Object(m) => m,
        other => {
            return Err(Error::bad(format!(
                "args: must be a JSON object, not {other}"
            )));
        }
    };
    if new.action == "exec" {
        if !["command", "shell", "script"]
            .iter()
            .any(|k| args.contains_key(*k))
        {
            return Err(Error::bad(
                "args: exec needs one of command (argv array), shell (string) or script (string)",
            ));
        }
        if args.contains_key("timeout_s") {
            return Err(Error::bad(
                "args.timeout_s: set the task's timeout_s instead (it applies to every target)",
            ));
        }
        args.insert("timeout_s".into(), Value::from(timeout_s));
    }
    let args = Value::Object(args);
    let now = now_ms();
    // The request every target will get, checked once now (action name,
    // argument size, …), so that bad input fails here and not per target.
    let action =
        bot_proto::Action::from_parts(&new.action, &args).map_err(|e| Error::bad(e.to_string()))?;
    let probe = core.signer.request(bot_proto::Draft {
        action,
        filter: None,
        reply_to: core.call_topic.clone(),
        ttl_ms: (timeout_s * 1000.0) as u64 + REPLY_GRACE_MS,
    });
    probe.validate().map_err(|e| Error::bad(e.to_string()))?;

    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut filter_text = None;
    // Matching agents known but offline (or untrusted): LOST at once.
    let mut lost: Vec<bot_proto::api::Agent> = Vec::new();
    let agents: Vec<(String, String)> = if let Some(text) = &new.filter {
        let f = super::parse_filter(text)?;
        filter_text = Some(f.to_string());
        let (online, offline): (Vec<_>, Vec<_>) = core
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
            return Err(Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("filter {text:?} matches no online agent{known}"),
            ));
        }
        if !new.online_only.unwrap_or(false) {
            lost = offline;
        }
        online.into_iter().map(|a| (a.id, a.name)).collect()
    } else if let Some(pool) = &new.pool {
        topics::valid_topic_level(pool).map_err(|e| Error::bad(format!("pool: {e}")))?;
        let count = new
            .count
            .ok_or_else(|| Error::bad("count: a pool task needs count (how many runs)"))?;
        if count == 0 || count as usize > MAX_TARGETS {
            return Err(Error::bad(format!(
                "count: {count} is outside 1..={MAX_TARGETS}"
            )));
        }
        (0..count).map(|_| (String::new(), String::new())).collect()
    } else {
        if new.targets.len() > MAX_TARGETS {
            return Err(Error::bad(format!(
                "targets: {} targets, more than {MAX_TARGETS}",
                new.targets.len()
            )));
        }
        let mut seen = HashSet::new();
        let mut v = Vec::with_capacity(new.targets.len());
        for t in &new.targets {
            let a = core.registry.resolve(t).map_err(|e| {
                Error::new(StatusCode::UNPROCESSABLE_ENTITY, format!("targets: {e}"))
            })?;
            if !seen.insert(a.id.clone()) {
                return Err(Error::bad(format!(
                    "targets: {t:?} is listed twice (agent {})",
                    a.id
                )));
            }
            v.push((a.id, a.name));
        }
        v
    };
    if new.count.is_some() && new.pool.is_none() {
        return Err(Error::bad("count: only for pool tasks"));
    }
    // LOST targets count as failures from the start: a task they alone
    // would fail is refused rather than started and stopped at once.
    if !lost.is_empty() {
        let total = agents.len() + lost.len();
        let rate = lost.len() as f64 / total as f64;
        if (fail_count >= 1 && lost.len() as i64 >= fail_count) || rate > fail_rate {
            let names: Vec<&str> = lost.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{} of {total} matching agents are offline ({}): as LOST targets they alone \
                     would fail the task (fail_count {fail_count}, fail_rate {fail_rate}); set \
                     online_only to leave them out",
                    lost.len(),
                    names.join(", ")
                ),
            ));
        }
    }
    let parallel = new.parallel.unwrap_or(agents.len() as u32);
    if parallel == 0 || parallel as usize > MAX_TARGETS {
        return Err(Error::bad(format!(
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

/// `GET /api/tasks` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only tasks in this state (WAITING, RUNNING, SUCCEEDED, FAILED, CANCELLED).
    state: Option<String>,
    /// Most tasks returned, newest first (1..=1000, default 100).
    limit: Option<u32>,
}

/// Lists tasks, newest first, with target counts.
#[utoipa::path(get, path = "/api/tasks", security(("bearer" = ["read"])), params(ListQuery),
    responses((status = 200, description = "Success", body = Vec<TaskSummary>), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError)))]
pub(super) async fn list(
    State(core): State<Arc<Core>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(e.body_text()))?;
    let state = match &q.state {
        Some(s) => Some(
            s.parse::<TaskState>()
                .map_err(|e| Error::bad(format!("state: {e}")))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad(format!("limit: {limit} is outside 1..=1000")));
    }
    let tasks = core
        .store
        .tasks(&TaskQuery {
            state,
            limit: Some(limit),
        })
        .await?;
    Ok(json(StatusCode::OK, tasks))
}

pub(crate) async fn detail(core: &Core, id: &str) -> Result<TaskDetail, Error> {
    let (task, targets) = core
        .store
        .task_detail(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no task {id:?}")))?;
    Ok(TaskDetail {
        counts: TargetCounts::of(&targets),
        task,
        targets,
    })
}

/// The task `id` names: the id itself, or a unique prefix of one (as git
/// and docker take). An ambiguous prefix is a 409 listing the candidates.
async fn resolve_task(core: &Core, id: &str) -> Result<String, Error> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() == 32 {
        return Ok(id);
    }
    let found = core.store.task_ids_with_prefix(&id, 10).await?;
    match found.as_slice() {
        [] => Err(Error::not_found(format!("no task {id:?}"))),
        [one] => Ok(one.clone()),
        many => Err(Error::conflict(format!(
            "task id prefix {id:?} is ambiguous: {}{}",
            many.join(", "),
            if many.len() >= 10 { ", …" } else { "" }
        ))),
    }
}

/// One task with every target's state, exit code, output and times.
#[utoipa::path(get, path = "/api/tasks/{id}", security(("bearer" = ["read"])), params(("id" = String, Path, description = "Task id, or a unique prefix of one")),
    responses((status = 200, description = "Success", body = TaskDetail), (status = 404, description = "No such task or agent", body = bot_proto::api::ApiError)))]
pub(super) async fn show(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let id = resolve_task(&core, &id).await?;
    Ok(json(StatusCode::OK, detail(&core, &id).await?))
}

/// Cancels a task: no further target starts (WAITING ones become
/// SKIPPED), and each running target's agent is told to kill its command
/// (the target then ends FAILED, "cancelled"). The task ends CANCELLED once
/// nothing runs.
#[utoipa::path(post, path = "/api/tasks/{id}/cancel", security(("bearer" = ["operate"])), params(("id" = String, Path, description = "Task id, or a unique prefix of one")),
    responses((status = 200, description = "Success", body = TaskDetail), (status = 404, description = "No such task or agent", body = bot_proto::api::ApiError),
              (status = 409, description = "Not possible in the current state", body = bot_proto::api::ApiError)))]
pub(super) async fn cancel(
    State(core): State<Arc<Core>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let id = resolve_task(&core, &id).await?;
    let before = detail(&core, &id).await?;
    if before.task.state.is_final() {
        return Err(Error::conflict(format!(
            "task {id} is already {}",
            before.task.state
        )));
    }
    if !core.engine.cancel(&id, &caller.0).await {
        let now = detail(&core, &id).await?;
        return Err(Error::conflict(match now.task.reason {
            Some(reason) if !now.task.state.is_final() => format!(
                "task {id} is already stopping ({reason}); {} target(s) still running",
                now.counts.running
            ),
            _ => format!("task {id} cannot be cancelled: it is {}", now.task.state),
        }));
    }
    Ok(json(StatusCode::OK, detail(&core, &id).await?))
}

/// Runs the failed targets of a task again, as a new task with the same
/// action and settings (`retry_of` points back).
#[utoipa::path(post, path = "/api/tasks/{id}/retry", security(("bearer" = ["operate"])), params(("id" = String, Path, description = "Task id, or a unique prefix of one")),
    request_body = RetryTask,
    responses((status = 201, description = "Created", body = TaskDetail), (status = 404, description = "No such task or agent", body = bot_proto::api::ApiError),
              (status = 409, description = "Not possible in the current state", body = bot_proto::api::ApiError)))]
pub(super) async fn retry(
    State(core): State<Arc<Core>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Body<RetryTask>>,
) -> Result<Response, Error> {
    let opts = body.map(|Body(b)| b).unwrap_or_default();
    let id = resolve_task(&core, &id).await?;
    let old = detail(&core, &id).await?;
    if !old.task.state.is_final() {
        return Err(Error::conflict(format!(
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
        return Err(Error::conflict(format!(
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
    let (task, targets) = build(&core, new, &caller.0, Some(id))?;
    start(&core, task, targets).await
}
