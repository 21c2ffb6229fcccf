//! `GET /api/events`: the event hub as Server-Sent Events, for the
//! dashboard (its session cookie authenticates the `EventSource`).
//!
//! Each event's SSE name is its `type`: `agent`, `task`, `config`,
//! `headline` (every agent's), and `samples` only for the agent named by
//! `?samples=<id>`. A client that falls behind gets `dropped` with how many
//! events it lost (it should reload what it shows); it never slows the
//! server. A comment line every 15 s keeps proxies from closing the stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Core, Error};
use crate::events::{Event, Received, Subscription};

/// `GET /api/events` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsParams {
    /// Also send every measuring round (`samples` events) of this agent.
    samples: Option<String>,
}

/// The SSE name of an event.
fn name(e: &Event) -> &'static str {
    match e {
        Event::Task(_) => "task",
        Event::Agent { .. } => "agent",
        Event::Config { .. } => "config",
        Event::Headline { .. } => "headline",
        Event::Samples { .. } => "samples",
        Event::Check(_) => "check",
    }
}

/// The server's events, live, as Server-Sent Events (`text/event-stream`):
/// `agent` (online/offline), `task` (task and target transitions),
/// `config` (wanted measuring settings changed), `headline` (each agent's
/// CPU %, memory %, load after every round), `samples` (every value of one
/// agent's rounds, with `?samples=<id>`), and `dropped` (`{"count": n}`:
/// this client fell behind and lost n events).
#[utoipa::path(get, path = "/api/events", security(("bearer" = ["read"])), params(EventsParams),
    responses((status = 200, description = "An endless text/event-stream", content_type = "text/event-stream")))]
pub(super) async fn stream(
    State(core): State<Arc<Core>>,
    cookie: Option<axum::Extension<super::SessionCookie>>,
    query: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(super::cut_message(&e.body_text())))?;
    let samples_of = match q.samples {
        Some(id) if !id.is_empty() => Some(super::agents::resolve(&core, &id)?.id),
        _ => None,
    };
    let state = StreamState {
        sub: core.events.subscribe(),
        _watch: samples_of.as_deref().map(|a| core.metrics.watch(a)),
        samples_of,
        cookie: cookie.map(|axum::Extension(c)| c.0),
        check: tokio::time::interval(SESSION_CHECK),
        core: core.clone(),
    };
    let stream = futures_util::stream::unfold(state, |mut st: StreamState| async move {
        loop {
            let received = tokio::select! {
                r = st.sub.recv() => r?,
                () = st.core.shutdown.cancelled() => return None,
                _ = st.check.tick() => {
                    // A browser's stream ends with its session (logout, expiry).
                    if let Some(c) = &st.cookie
                        && st.core.sessions.get(c).is_none()
                    {
                        return None;
                    }
                    continue;
                }
            };
            let event = match received {
                Received::Dropped(n) => SseEvent::default()
                    .event("dropped")
                    .data(format!("{{\"type\":\"dropped\",\"count\":{n}}}")),
                Received::Event(e) => {
                    if let Event::Samples { agent_id, .. } = &*e
                        && st.samples_of.as_deref() != Some(agent_id.as_str())
                    {
                        continue;
                    }
                    match serde_json::to_string(&*e) {
                        Ok(json) => SseEvent::default().event(name(&e)).data(json),
                        Err(_) => continue,
                    }
                }
            };
            return Some((Ok::<_, Infallible>(event), st));
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// How often a browser's stream checks that its session still stands.
const SESSION_CHECK: Duration = Duration::from_secs(10);

/// What one event stream holds.
struct StreamState {
    sub: Subscription,
    samples_of: Option<String>,
    /// Keeps the followed agent's rounds on the hub while the stream lives.
    _watch: Option<crate::metrics::WatchGuard>,
    cookie: Option<String>,
    check: tokio::time::Interval,
    core: Arc<Core>,
}
