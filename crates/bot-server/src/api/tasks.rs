//! `/api/tasks`: submit (validate, resolve targets, store, hand to the
//! engine), list, show, cancel, retry.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bot_proto::api::{NewTask, RetryTask, TaskDetail, TaskState, TaskSummary};
use bot_store::TaskQuery;
use serde::Deserialize;

use super::{Body, Caller, Core, Error, json};

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
    let detail = core.tasks.submit(new, &caller.0).await?;
    Ok(json(StatusCode::CREATED, detail))
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
    Ok(core.tasks.detail(id).await?)
}

/// The task `id` names: the id itself, or a unique prefix of one.
async fn resolve_task(core: &Core, id: &str) -> Result<String, Error> {
    Ok(core.tasks.resolve(id).await?)
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
    let detail = core.tasks.retry(&id, opts, &caller.0).await?;
    Ok(json(StatusCode::CREATED, detail))
}
