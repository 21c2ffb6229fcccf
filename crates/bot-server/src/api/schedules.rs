//! `/api/schedules` (make, list, show, pause, resume, delete) and
//! `/api/checks` (the current state of every scheduled check: "what is
//! wrong now"), `/api/agents/{id}/checks/changes` (their history).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bot_proto::api::{CheckChange, CheckStatus, NewSchedule, Schedule, check_severity};
use serde::Deserialize;

use super::{Body, Caller, Core, Error, json};
use crate::schedules::ScheduleError;

impl From<ScheduleError> for Error {
    fn from(e: ScheduleError) -> Error {
        match e {
            ScheduleError::Invalid(m) => Error::bad(m),
            ScheduleError::NotFound(m) => Error::not_found(m),
            ScheduleError::Conflict(m) => Error::conflict(m),
            ScheduleError::Store(e) => e.into(),
        }
    }
}

/// Makes a schedule: a check (`check`) or a command (`command`, run as a
/// task) on the agents a filter selects, every `every_s` seconds (the first
/// run at a random moment within the first interval) or on a crontab line.
#[utoipa::path(post, path = "/api/schedules", security(("bearer" = ["operate"])), request_body = NewSchedule,
    responses((status = 201, description = "Created", body = Schedule),
              (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 409, description = "A schedule of that name exists", body = bot_proto::api::ApiError)))]
pub(super) async fn create(
    State(core): State<Arc<Core>>,
    Extension(caller): Extension<Caller>,
    Body(new): Body<NewSchedule>,
) -> Result<Response, Error> {
    let s = core.schedules.create(new, &caller.0).await?;
    Ok(json(StatusCode::CREATED, s))
}

/// Every schedule, by name, with its counts of runs, skipped and missed
/// runs, and when the next run is due.
#[utoipa::path(get, path = "/api/schedules", security(("bearer" = ["read"])),
    responses((status = 200, description = "Success", body = Vec<Schedule>)))]
pub(super) async fn list(State(core): State<Arc<Core>>) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.schedules.list().await?))
}

/// One schedule.
#[utoipa::path(get, path = "/api/schedules/{id}", security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Schedule id or name")),
    responses((status = 200, description = "Success", body = Schedule), (status = 404, description = "No such schedule", body = bot_proto::api::ApiError)))]
pub(super) async fn show(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.schedules.get(&id).await?))
}

/// Pauses a schedule: no run is due until it is resumed.
#[utoipa::path(post, path = "/api/schedules/{id}/pause", security(("bearer" = ["operate"])),
    params(("id" = String, Path, description = "Schedule id or name")),
    responses((status = 200, description = "Success", body = Schedule), (status = 404, description = "No such schedule", body = bot_proto::api::ApiError)))]
pub(super) async fn pause(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(
        StatusCode::OK,
        core.schedules.set_paused(&id, true).await?,
    ))
}

/// Resumes a paused schedule (its next run splayed within the interval
/// again, or at its next cron time).
#[utoipa::path(post, path = "/api/schedules/{id}/resume", security(("bearer" = ["operate"])),
    params(("id" = String, Path, description = "Schedule id or name")),
    responses((status = 200, description = "Success", body = Schedule), (status = 404, description = "No such schedule", body = bot_proto::api::ApiError)))]
pub(super) async fn resume(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(
        StatusCode::OK,
        core.schedules.set_paused(&id, false).await?,
    ))
}

/// Deletes a schedule (a run already started goes on); returns it.
#[utoipa::path(delete, path = "/api/schedules/{id}", security(("bearer" = ["operate"])),
    params(("id" = String, Path, description = "Schedule id or name")),
    responses((status = 200, description = "Deleted", body = Schedule), (status = 404, description = "No such schedule", body = bot_proto::api::ApiError)))]
pub(super) async fn delete(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.schedules.delete(&id).await?))
}

/// `GET /api/checks` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ChecksQuery {
    /// Only agents this filter selects (the filter language).
    filter: Option<String>,
    /// Only these states, comma-separated: ok, warning, critical, unknown.
    state: Option<String>,
    /// Only this check.
    check: Option<String>,
}

/// Parses `warning,critical` into state names.
fn parse_states(text: &str) -> Result<Vec<&'static str>, Error> {
    text.split(',')
        .map(|s| match s.trim().to_ascii_uppercase().as_str() {
            "OK" => Ok("OK"),
            "WARNING" => Ok("WARNING"),
            "CRITICAL" => Ok("CRITICAL"),
            "UNKNOWN" => Ok("UNKNOWN"),
            _ => Err(Error::bad(format!(
                "state: {s:?} is not one of ok, warning, critical, unknown"
            ))),
        })
        .collect()
}

/// The current state of every check on every agent, worst first
/// (CRITICAL, UNKNOWN, WARNING, OK), then by agent and check. A check with
/// no result for two intervals is UNKNOWN, `stale`.
#[utoipa::path(get, path = "/api/checks", security(("bearer" = ["read"])), params(ChecksQuery),
    responses((status = 200, description = "Success", body = Vec<CheckStatus>), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError)))]
pub(super) async fn checks(
    State(core): State<Arc<Core>>,
    query: Result<Query<ChecksQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(e.body_text()))?;
    let states = q.state.as_deref().map(parse_states).transpose()?;
    let selected = match &q.filter {
        Some(text) => {
            let f = super::parse_filter(text)?;
            Some(
                core.registry
                    .select(Some(&f), false)
                    .into_iter()
                    .map(|a| a.id)
                    .collect::<std::collections::HashSet<_>>(),
            )
        }
        None => None,
    };
    let mut list: Vec<CheckStatus> = core
        .checks
        .all()
        .into_iter()
        .filter(|c| selected.as_ref().is_none_or(|s| s.contains(&c.agent_id)))
        .filter(|c| {
            states
                .as_ref()
                .is_none_or(|s| s.contains(&c.state.as_str()))
        })
        .filter(|c| q.check.as_ref().is_none_or(|n| *n == c.check))
        .map(|mut c| {
            if let Some(a) = core.registry.get(&c.agent_id) {
                c.agent_name = a.name;
            }
            c
        })
        .collect();
    list.sort_by(|a, b| {
        check_severity(&b.state)
            .cmp(&check_severity(&a.state))
            .then_with(|| a.agent_name.cmp(&b.agent_name))
            .then_with(|| a.check.cmp(&b.check))
    });
    Ok(json(StatusCode::OK, list))
}

/// `GET /api/agents/{id}/checks/changes` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesQuery {
    /// Only this check.
    check: Option<String>,
    /// Most changes, newest first (1..=1000, default 100).
    limit: Option<u32>,
}

/// The state changes of an agent's checks, newest first (kept 30 days).
#[utoipa::path(get, path = "/api/agents/{id}/checks/changes", security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Agent id or name"), ChangesQuery),
    responses((status = 200, description = "Success", body = Vec<CheckChange>), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 404, description = "No such agent", body = bot_proto::api::ApiError),
              (status = 409, description = "The name is ambiguous", body = bot_proto::api::ApiError)))]
pub(super) async fn changes(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad(format!("limit: {limit} is outside 1..=1000")));
    }
    let agent = super::agents::resolve(&core, &id)?;
    let list = core
        .store
        .check_changes(&agent.id, q.check.as_deref(), limit)
        .await?;
    Ok(json(StatusCode::OK, list))
}
