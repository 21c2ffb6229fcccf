//! `/api/webhooks`: make, list, show, delete, enable a webhook, and its
//! delivery history.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bot_proto::api::{NewWebhook, Webhook, WebhookDelivery};
use serde::Deserialize;

use super::{Body, Caller, Core, Error, json};
use crate::webhooks::WebhookError;

impl From<WebhookError> for Error {
    fn from(e: WebhookError) -> Error {
        match e {
            WebhookError::Invalid(m) => Error::bad(m),
            WebhookError::NotFound(m) => Error::not_found(m),
            WebhookError::Conflict(m) => Error::conflict(m),
            WebhookError::Store(e) => e.into(),
        }
    }
}

/// Makes a webhook: events POSTed as JSON to `url`, signed with HMAC-SHA256
/// (`X-Bot-Signature: t=<unix s>,sha256=<hex of "<t>.<body>">`), with an
/// `Idempotency-Key` that stays the same across retries.
#[utoipa::path(post, path = "/api/webhooks", security(("bearer" = ["operate"])), request_body = NewWebhook,
    responses((status = 201, description = "Created (the secret is not shown)", body = Webhook),
              (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 409, description = "A webhook of that name exists", body = bot_proto::api::ApiError)))]
pub(super) async fn create(
    State(core): State<Arc<Core>>,
    Extension(caller): Extension<Caller>,
    Body(new): Body<NewWebhook>,
) -> Result<Response, Error> {
    Ok(json(
        StatusCode::CREATED,
        core.webhooks.create(new, &caller.0).await?,
    ))
}

/// Every webhook, by name (secrets are never shown).
#[utoipa::path(get, path = "/api/webhooks", security(("bearer" = ["read"])),
    responses((status = 200, description = "Success", body = Vec<Webhook>)))]
pub(super) async fn list(State(core): State<Arc<Core>>) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.webhooks.list().await?))
}

/// One webhook.
#[utoipa::path(get, path = "/api/webhooks/{id}", security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Webhook id or name")),
    responses((status = 200, description = "Success", body = Webhook), (status = 404, description = "No such webhook", body = bot_proto::api::ApiError)))]
pub(super) async fn show(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.webhooks.get(&id).await?))
}

/// Deletes a webhook made over the API, and its deliveries; returns it.
#[utoipa::path(delete, path = "/api/webhooks/{id}", security(("bearer" = ["operate"])),
    params(("id" = String, Path, description = "Webhook id or name")),
    responses((status = 200, description = "Deleted", body = Webhook), (status = 404, description = "No such webhook", body = bot_proto::api::ApiError),
              (status = 409, description = "It comes from the configuration file", body = bot_proto::api::ApiError)))]
pub(super) async fn delete(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.webhooks.delete(&id).await?))
}

/// Enables a webhook that was disabled after a delivery failed every
/// attempt: its pending deliveries are attempted again.
#[utoipa::path(post, path = "/api/webhooks/{id}/enable", security(("bearer" = ["operate"])),
    params(("id" = String, Path, description = "Webhook id or name")),
    responses((status = 200, description = "Success", body = Webhook), (status = 404, description = "No such webhook", body = bot_proto::api::ApiError)))]
pub(super) async fn enable(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    Ok(json(StatusCode::OK, core.webhooks.enable(&id).await?))
}

/// `GET /api/webhooks/{id}/deliveries` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveriesQuery {
    /// Most deliveries, newest first (1..=1000, default 100).
    limit: Option<u32>,
}

/// A webhook's deliveries, newest first (kept 7 days once delivered or
/// failed): state, attempts, the last status or error, the body sent.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Webhook id or name"), DeliveriesQuery),
    responses((status = 200, description = "Success", body = Vec<WebhookDelivery>), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 404, description = "No such webhook", body = bot_proto::api::ApiError)))]
pub(super) async fn deliveries(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad(format!("limit: {limit} is outside 1..=1000")));
    }
    Ok(json(
        StatusCode::OK,
        core.webhooks.deliveries(&id, limit).await?,
    ))
}
