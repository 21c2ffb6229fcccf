//! `/api/agents`: the registry, filterable with the filter language.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bot_proto::api::Agent;
use serde::Deserialize;

use super::{Core, Error, json};

/// `GET /api/agents` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// A filter (`os=linux and tag:web and not db*`); default: every agent.
    filter: Option<String>,
    /// Only online (true) or offline (false) agents; default: both.
    online: Option<bool>,
    /// Most agents returned (1..=100000; default: all). The header
    /// `X-Total-Count` says how many matched in all.
    limit: Option<usize>,
    /// Agents skipped first, in name order (default 0).
    offset: Option<usize>,
}

/// Lists the agents in the registry, ordered by name (then id); pages with
/// `limit` and `offset`, the total in `X-Total-Count`.
#[utoipa::path(get, path = "/api/agents", security(("bearer" = ["read"])), params(ListQuery),
    responses((status = 200, description = "Success", body = Vec<Agent>), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError)))]
pub(super) async fn list(
    State(core): State<Arc<Core>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(e.body_text()))?;
    let filter = match &q.filter {
        Some(text) => Some(super::parse_filter(text)?),
        None => None,
    };
    let limit = q.limit.unwrap_or(usize::MAX);
    if limit == 0 || (q.limit.is_some() && limit > 100_000) {
        return Err(Error::bad(format!("limit: {limit} is outside 1..=100000")));
    }
    let (body, total) =
        core.registry
            .select_json(filter.as_ref(), q.online, q.offset.unwrap_or(0), limit);
    Ok((
        StatusCode::OK,
        [
            (
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            ),
            (
                axum::http::HeaderName::from_static("x-total-count"),
                axum::http::HeaderValue::from(total),
            ),
        ],
        body,
    )
        .into_response())
}

/// One agent by id (or by name, when exactly one agent has it).
#[utoipa::path(get, path = "/api/agents/{id}", security(("bearer" = ["read"])), params(("id" = String, Path, description = "Agent id or name")),
    responses((status = 200, description = "Success", body = Agent), (status = 404, description = "No such task or agent", body = bot_proto::api::ApiError)))]
pub(super) async fn show(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, resolve(&core, &id)?))
}

/// The agent an id or name names: 404 if none, 409 if the name is ambiguous.
pub(super) fn resolve(core: &Core, id: &str) -> Result<Agent, Error> {
    core.registry.resolve(id).map_err(|e| match e {
        crate::registry::ResolveError::Unknown(_) => Error::not_found(format!("no agent {id:?}")),
        e => Error::conflict(e.to_string()),
    })
}

/// Accepts the agent's pending signing key: a new agent waiting (the server
/// runs with `--auto-accept false`), or an agent whose key changed (an
/// alarm: until accepted its statuses, heartbeats and results are refused).
/// Like adding a host to ssh's known_hosts: check out of band first.
#[utoipa::path(post, path = "/api/agents/{id}/accept", security(("bearer" = ["admin"])), params(("id" = String, Path, description = "Agent id or name")),
    responses((status = 200, description = "The key is now bound; the agent as the registry knows it", body = Agent),
              (status = 404, description = "No such agent", body = bot_proto::api::ApiError),
              (status = 409, description = "No key is pending for this agent, or the name is ambiguous", body = bot_proto::api::ApiError)))]
pub(super) async fn accept(
    State(core): State<Arc<Core>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let agent = resolve(&core, &id)?;
    if !core.registry.accept(&agent.id) {
        return Err(Error::conflict(format!(
            "agent {} ({}) has no pending key (its key is {})",
            agent.name,
            agent.id,
            agent.key.state.as_str()
        )));
    }
    let now = core.registry.get(&agent.id).unwrap_or(agent);
    core.audit.key(
        "key_accepted",
        &now.id,
        now.key.key.as_deref().unwrap_or("?"),
        Some(&caller.0),
    );
    Ok(json(StatusCode::OK, now))
}

/// Forgets a decommissioned agent: its registry row, and its retained status
/// on the bus (cleared with an empty retained message). Its tasks' history
/// stays. An online agent is refused (stop it first: it would come back
/// with its next status).
#[utoipa::path(delete, path = "/api/agents/{id}", security(("bearer" = ["admin"])), params(("id" = String, Path, description = "Agent id or name")),
    responses((status = 200, description = "Forgotten; the agent as it was", body = Agent),
              (status = 404, description = "No such agent", body = bot_proto::api::ApiError),
              (status = 409, description = "The agent is online, or the name is ambiguous", body = bot_proto::api::ApiError),
              (status = 503, description = "Not connected to the bus: the retained status cannot be cleared", body = bot_proto::api::ApiError)))]
pub(super) async fn forget(
    State(core): State<Arc<Core>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let agent = resolve(&core, &id)?;
    if agent.online {
        return Err(Error::conflict(format!(
            "agent {} ({}) is online: stop it first (it would come back with its next status)",
            agent.name, agent.id
        )));
    }
    // Clear the retained status first: if the bus is down, nothing changes.
    core.publisher
        .publish(
            bot_proto::topics::status_topic(&agent.id),
            Vec::new(),
            bot_bus::Qos::AtLeastOnce,
            true,
        )
        .await
        .map_err(|e| Error::unavailable(format!("cannot clear the retained status: {e}")))?;
    // Its measuring config too (an empty retained message clears it).
    core.publisher
        .publish(
            bot_proto::topics::config_topic(&agent.id),
            Vec::new(),
            bot_bus::Qos::AtLeastOnce,
            true,
        )
        .await
        .map_err(|e| Error::unavailable(format!("cannot clear the retained config: {e}")))?;
    core.store.delete_agent_config(&agent.id).await?;
    core.metrics.forget(&agent.id);
    // Its check states (else they would stay, stale, in `GET /api/checks`).
    let checks = core.checks.forget_agent(&agent.id);
    core.store.delete_check_states_of(&checks).await?;
    let gone = core.registry.forget(&agent.id).unwrap_or(agent);
    core.store
        .delete_agents(std::slice::from_ref(&gone.id))
        .await?;
    core.audit.key(
        "agent_forgotten",
        &gone.id,
        gone.key.key.as_deref().unwrap_or("-"),
        Some(&caller.0),
    );
    Ok(json(StatusCode::OK, gone))
}

/// `GET /api/audit` query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    /// Only records at or after this time (unix ms).
    since: Option<u64>,
    /// Only records of this API token name or key.
    key: Option<String>,
    /// Only records about this agent id.
    agent: Option<String>,
    /// At most this many, oldest first (default 1000, at most 10000).
    limit: Option<u32>,
}

/// The server's audit trail, oldest first: every request it signed and sent
/// (with the API token behind it and a digest of the arguments), the
/// requests agents refused, replies refused for their signature, and agents'
/// key changes and accepts.
#[utoipa::path(get, path = "/api/audit", security(("bearer" = ["admin"])), params(AuditParams),
    responses((status = 200, description = "Success", body = [bot_proto::api::AuditRecord]),
              (status = 400, description = "Bad query", body = bot_proto::api::ApiError)))]
pub(super) async fn audit(
    State(core): State<Arc<Core>>,
    axum::extract::Query(q): axum::extract::Query<AuditParams>,
) -> Result<Response, Error> {
    if let Some(l) = q.limit
        && !(1..=bot_store::MAX_AUDIT_LIST).contains(&l)
    {
        return Err(Error::bad(format!(
            "limit: {l} is outside 1..={}",
            bot_store::MAX_AUDIT_LIST
        )));
    }
    let records = core
        .store
        .audit(&bot_store::AuditQuery {
            since_ms: q.since,
            key: q.key,
            agent: q.agent,
            limit: q.limit,
        })
        .await
        .map_err(|e| Error::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json(StatusCode::OK, records))
}
