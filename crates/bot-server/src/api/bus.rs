//! The HTTP → bus bridge: `POST /api/publish` (any program that can POST can
//! publish) and `POST /api/call` (request/reply over HTTP: one request to the
//! agents matching a filter, every reply and the no-reply list back).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bot_bus::Qos;
use bot_proto::topics;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Body, Core, Error, json};
use crate::now_ms;

/// Largest payload `/api/publish` accepts, in bytes.
pub const MAX_PUBLISH_BYTES: usize = 256 * 1024;
/// Longest `/api/call` wait, seconds.
pub const MAX_CALL_TIMEOUT_S: f64 = 300.0;

/// `POST /api/publish` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Topic (no wildcards).
    pub topic: String,
    /// Payload, as text.
    pub payload: String,
    /// 0 (default) or 1.
    #[serde(default)]
    pub qos: u8,
    /// Retain on the broker (default false).
    #[serde(default)]
    pub retain: bool,
}

/// `POST /api/publish` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Published {
    /// The topic.
    pub topic: String,
    /// Payload bytes sent.
    pub bytes: usize,
}

/// Publishes one message on the bus.
#[utoipa::path(post, path = "/api/publish", security(("bearer" = ["operate"])), request_body = PublishRequest,
    responses((status = 200, description = "Success", body = Published), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 503, description = "Not connected to the bus", body = bot_proto::api::ApiError)))]
pub(super) async fn publish(
    State(core): State<Arc<Core>>,
    Body(p): Body<PublishRequest>,
) -> Result<Response, Error> {
    topics::valid_publish_topic(&p.topic).map_err(|e| Error::bad(format!("topic: {e}")))?;
    if p.payload.len() > MAX_PUBLISH_BYTES {
        return Err(Error::bad(format!(
            "payload: {} bytes, more than {MAX_PUBLISH_BYTES}",
            p.payload.len()
        )));
    }
    let qos = match p.qos {
        0 => Qos::AtMostOnce,
        1 => Qos::AtLeastOnce,
        q => return Err(Error::bad(format!("qos: {q} is not 0 or 1"))),
    };
    let bytes = p.payload.len();
    core.publisher
        .publish(p.topic.clone(), p.payload.into_bytes(), qos, p.retain)
        .await
        .map_err(|e| Error::unavailable(format!("not published: {e}")))?;
    Ok(json(
        StatusCode::OK,
        Published {
            topic: p.topic,
            bytes,
        },
    ))
}

/// `POST /api/call` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The action (`ping`, `facts`, `status`, `exec`, …).
    pub action: String,
    /// Its arguments (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub args: Option<Value>,
    /// Which agents: a filter (default: all).
    #[serde(default)]
    pub filter: Option<String>,
    /// Seconds to wait for replies: 0.001..=300 (default 10).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// One agent's reply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallReply {
    /// Agent id.
    pub agent_id: String,
    /// Agent name.
    pub agent_name: String,
    /// ok, error, timeout or rejected.
    pub status: String,
    /// The action's result.
    #[schema(value_type = Object)]
    pub data: Value,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Time the action took on the agent, ms.
    pub duration_ms: u64,
}

/// An expected agent that did not reply in time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoReply {
    /// Agent id.
    pub agent_id: String,
    /// Agent name.
    pub agent_name: String,
}

/// A known agent matching the filter that is offline: the request does not
/// reach it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OfflineAgent {
    /// Agent id.
    pub agent_id: String,
    /// Agent name.
    pub agent_name: String,
    /// When the server last heard from it (unix ms).
    pub last_seen_ms: u64,
}

/// `POST /api/call` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallResult {
    /// The request id.
    pub request_id: String,
    /// Replies, in arrival order.
    pub replies: Vec<CallReply>,
    /// Agents known online and matching the filter that did not reply.
    pub no_reply: Vec<NoReply>,
    /// Agents known and matching the filter but offline (not sent to).
    pub offline: Vec<OfflineAgent>,
    /// Time from sending to the last reply (or the timeout), ms.
    pub elapsed_ms: u64,
}

/// Sends one request to the agents matching a filter and waits for their
/// replies (until every expected agent answered, or the timeout).
#[utoipa::path(post, path = "/api/call", security(("bearer" = ["operate"])), request_body = CallRequest,
    responses((status = 200, description = "Success", body = CallResult), (status = 400, description = "Bad request: the message names the field and value", body = bot_proto::api::ApiError),
              (status = 422, description = "The filter matches no online agent", body = bot_proto::api::ApiError),
              (status = 503, description = "Not connected to the bus", body = bot_proto::api::ApiError)))]
pub(super) async fn call(
    State(core): State<Arc<Core>>,
    Extension(caller): Extension<super::Caller>,
    Body(c): Body<CallRequest>,
) -> Result<Response, Error> {
    let timeout_s = c.timeout_s.unwrap_or(10.0);
    if !(timeout_s.is_finite() && (super::MIN_TIMEOUT_S..=MAX_CALL_TIMEOUT_S).contains(&timeout_s))
    {
        return Err(Error::bad(format!(
            "timeout_s: {timeout_s} is outside {}..={MAX_CALL_TIMEOUT_S} seconds",
            super::MIN_TIMEOUT_S
        )));
    }
    let filter = match &c.filter {
        Some(text) => Some(super::parse_filter(text)?),
        None => None,
    };
    let args = c.args.unwrap_or_else(|| Value::Object(Default::default()));
    let now = now_ms();
    let timeout_ms = (timeout_s * 1000.0) as u64;
    let action =
        bot_proto::Action::from_parts(&c.action, &args).map_err(|e| Error::bad(e.to_string()))?;
    let sender = format!("{} (token {})", core.signer.sender(), caller.0);
    let request = core.signer.request_as(
        bot_proto::Draft {
            action,
            filter: filter.as_ref().map(ToString::to_string),
            reply_to: core.call_topic.clone(),
            ttl_ms: timeout_ms.max(1),
        },
        &sender,
        uuid::Uuid::now_v7().simple().to_string(),
        now,
    );
    request.validate().map_err(|e| Error::bad(e.to_string()))?;
    let mut expected: BTreeMap<String, String> = core
        .registry
        .select(filter.as_ref(), true)
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let offline: Vec<OfflineAgent> = core
        .registry
        .select(filter.as_ref(), false)
        .into_iter()
        .filter(|a| !expected.contains_key(&a.id))
        .map(|a| OfflineAgent {
            agent_id: a.id,
            agent_name: a.name,
            last_seen_ms: a.last_seen_ms,
        })
        .collect();
    // As for tasks: a filter that selects nobody is answered at once, not
    // after the whole timeout with empty lists.
    if let (Some(f), true) = (&filter, expected.is_empty()) {
        let known = if offline.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = offline.iter().map(|o| o.agent_name.as_str()).collect();
            format!(" (offline or untrusted: {})", names.join(", "))
        };
        return Err(Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("filter {:?} matches no online agent{known}", f.to_string()),
        ));
    }
    core.audit
        .request(&request, topics::REQUEST_BROADCAST, &core.signer.public());
    let mut rx = core.calls.register(&request.id);
    let sent = core
        .publisher
        .publish(
            topics::REQUEST_BROADCAST,
            request.encode(),
            Qos::AtMostOnce,
            false,
        )
        .await;
    if let Err(e) = sent {
        core.calls.unregister(&request.id);
        return Err(Error::unavailable(format!("request not sent: {e}")));
    }
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(timeout_ms);
    let mut replies = Vec::new();
    let mut last = started;
    // With nobody expected (no agent known to match), collect until the
    // timeout: agents the registry has not seen yet may still answer.
    let until_timeout = expected.is_empty();
    loop {
        let Ok(Some(r)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        last = tokio::time::Instant::now();
        expected.remove(&r.agent_id);
        replies.push(CallReply {
            agent_id: r.agent_id,
            agent_name: r.agent_name,
            status: r.status.as_str().to_owned(),
            data: r.data,
            error: r.error,
            duration_ms: r.duration_ms,
        });
        if expected.is_empty() && !until_timeout {
            break;
        }
    }
    core.calls.unregister(&request.id);
    let elapsed = if expected.is_empty() && !until_timeout {
        last - started
    } else {
        deadline - started
    };
    Ok(json(
        StatusCode::OK,
        CallResult {
            request_id: request.id,
            replies,
            no_reply: expected
                .into_iter()
                .map(|(agent_id, agent_name)| NoReply {
                    agent_id,
                    agent_name,
                })
                .collect(),
            offline,
            elapsed_ms: elapsed.as_millis() as u64,
        },
    ))
}
