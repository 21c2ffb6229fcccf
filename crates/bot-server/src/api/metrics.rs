//! Monitoring routes: an agent's measuring config (wanted and in force),
//! its sample history as series, and `/metrics` for Prometheus.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bot_proto::MeasureConfig;
use bot_proto::api::{AgentConfigChange, AgentConfigView, WantedConfig};
use bot_proto::metrics::{COLLECTORS, MAX_INTERVAL_MS, MIN_INTERVAL_MS};
use serde::Deserialize;

use super::{Body, Caller, Core, Error, json};
use crate::events::Event;
use crate::metrics::history::{self, SeriesAnswer};

async fn view(core: &Core, agent_id: &str) -> Result<AgentConfigView, Error> {
    let wanted = core
        .store
        .agent_config(agent_id)
        .await?
        .map(|c| WantedConfig {
            revision: c.revision,
            enabled: c.enabled,
            interval_ms: c.interval_ms,
            collectors: c.collectors,
            updated_ms: c.updated_ms,
            updated_by: c.updated_by,
        });
    let in_force = core.registry.get(agent_id).and_then(|a| a.measure);
    let in_sync = match (&wanted, &in_force) {
        (None, _) => true,
        (Some(w), Some(f)) => {
            f.revision == w.revision
                && !f.local
                && f.enabled == w.enabled
                && f.interval_ms == w.interval_ms
                && f.collectors == w.collectors
        }
        (Some(_), None) => false,
    };
    Ok(AgentConfigView {
        agent_id: agent_id.to_owned(),
        wanted,
        in_force,
        in_sync,
        collectors_known: COLLECTORS.iter().map(|c| (*c).to_owned()).collect(),
    })
}

/// An agent's measuring config, wanted and in force.
#[utoipa::path(get, path = "/api/agents/{id}/config", security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Agent id or name")),
    responses((status = 200, description = "Success", body = AgentConfigView),
              (status = 404, description = "No such agent", body = bot_proto::api::ApiError)))]
pub(super) async fn get_config(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let agent = super::agents::resolve(&core, &id)?;
    Ok(json(StatusCode::OK, view(&core, &agent.id).await?))
}

/// Changes an agent's measuring settings: stored, then sent to the agent as
/// a retained config signed by the server's key; the agent applies it at
/// once and reports it in its status (`in_sync` then turns true).
#[utoipa::path(put, path = "/api/agents/{id}/config", security(("bearer" = ["operate"])),
    params(("id" = String, Path, description = "Agent id or name")), request_body = AgentConfigChange,
    responses((status = 200, description = "Stored and sent", body = AgentConfigView),
              (status = 400, description = "A bad value, named", body = bot_proto::api::ApiError),
              (status = 404, description = "No such agent", body = bot_proto::api::ApiError),
              (status = 503, description = "Not connected to the bus", body = bot_proto::api::ApiError)))]
pub(super) async fn put_config(
    State(core): State<Arc<Core>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(change): Body<AgentConfigChange>,
) -> Result<Response, Error> {
    let agent = super::agents::resolve(&core, &id)?;
    if let Some(ms) = change.interval_ms
        && !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms)
    {
        return Err(Error::bad(format!(
            "interval_ms: {ms} is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}"
        )));
    }
    if let Some(list) = &change.collectors {
        for c in list {
            if !COLLECTORS.contains(&c.as_str()) {
                return Err(Error::bad(format!(
                    "collectors: unknown collector {:?} (known: {})",
                    c.chars().take(40).collect::<String>(),
                    COLLECTORS.join(", ")
                )));
            }
        }
    }
    // The base: what is wanted, else what is in force, else the defaults.
    let base = match core.store.agent_config(&agent.id).await? {
        Some(c) => (c.enabled, c.interval_ms, c.collectors),
        None => match &agent.measure {
            Some(m) => (m.enabled, m.interval_ms, m.collectors.clone()),
            None => (
                false,
                10_000,
                COLLECTORS.iter().map(|s| (*s).to_owned()).collect(),
            ),
        },
    };
    let enabled = change.enabled.unwrap_or(base.0);
    let interval_ms = change.interval_ms.unwrap_or(base.1);
    let mut collectors = change.collectors.unwrap_or(base.2);
    // Known names, each once, in the agent's order.
    collectors = COLLECTORS
        .iter()
        .filter(|c| collectors.iter().any(|x| x == *c))
        .map(|c| (*c).to_owned())
        .collect();
    let now = crate::now_ms();
    let row = core
        .store
        .put_agent_config(&agent.id, enabled, interval_ms, &collectors, &caller.0, now)
        .await?;
    let mut msg = MeasureConfig {
        id: agent.id.clone(),
        revision: row.revision,
        enabled,
        interval_ms,
        collectors: collectors.clone(),
        created_ms: now,
        sig: None,
    };
    msg.sig = Some(core.signer.sign_bytes(&msg.signing_bytes()));
    core.publisher
        .publish(
            bot_proto::topics::config_topic(&agent.id),
            msg.encode(),
            bot_bus::Qos::AtLeastOnce,
            true,
        )
        .await
        .map_err(|e| {
            Error::unavailable(format!(
                "stored as revision {}, but not sent: {e}; PUT again once the bus is back",
                row.revision
            ))
        })?;
    core.audit.config(&agent.id, row.revision, &caller.0);
    core.events.publish(Event::Config {
        agent_id: agent.id.clone(),
        revision: row.revision,
        enabled,
        interval_ms,
        collectors,
    });
    Ok(json(StatusCode::OK, view(&core, &agent.id).await?))
}

/// `GET /api/agents/{id}/metrics` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct SeriesParams {
    /// Metric names, comma-separated; a name ending in `*` is a prefix
    /// (`cpu.*`). Default: every metric.
    name: Option<String>,
    /// From, unix ms (default: an hour before `until`).
    since: Option<u64>,
    /// To, unix ms (default: now).
    until: Option<u64>,
    /// Bucket width, ms (default: about 300 points; at least a minute
    /// beyond the raw retention; at most 10,000 points).
    step: Option<u64>,
}

/// Longest `name` list.
const MAX_NAMES: usize = 64;

/// An agent's sample history as series ready to plot: one time axis, the
/// average per bucket of each series (and min/max from minute rollups).
/// Raw rows within the raw retention (24 h by default), minute rollups
/// beyond (30 days). Counters (DERIVE, COUNTER, ABSOLUTE) are per-second
/// rates.
#[utoipa::path(get, path = "/api/agents/{id}/metrics", security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Agent id or name"), SeriesParams),
    responses((status = 200, description = "Success", body = SeriesAnswer),
              (status = 400, description = "A bad parameter, named", body = bot_proto::api::ApiError),
              (status = 404, description = "No such agent", body = bot_proto::api::ApiError)))]
pub(super) async fn series(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
    query: Result<Query<SeriesParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|e| Error::bad(super::cut_message(&e.body_text())))?;
    let agent = super::agents::resolve(&core, &id)?;
    let now = crate::now_ms();
    let until = q.until.unwrap_or(now);
    let since = q.since.unwrap_or(until.saturating_sub(3_600_000));
    if since >= until {
        return Err(Error::bad(format!(
            "since: {since} is not before until ({until})"
        )));
    }
    if q.step == Some(0) {
        return Err(Error::bad("step: must be at least 1 ms"));
    }
    let names: Vec<String> = q
        .name
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() > MAX_NAMES {
        return Err(Error::bad(format!(
            "name: {} names, more than {MAX_NAMES}",
            names.len()
        )));
    }
    for n in &names {
        let bare = n.strip_suffix('*').unwrap_or(n);
        if n != "*" && !bot_proto::metrics::valid_metric(bare) {
            return Err(Error::bad(format!(
                "name: {:?} is not a metric name ([A-Za-z0-9._-], optionally ending in *)",
                n.chars().take(60).collect::<String>()
            )));
        }
    }
    let answer = history::query(
        &core.store,
        &core.metrics,
        &agent.id,
        &history::Query {
            names,
            since_ms: since,
            until_ms: until,
            step_ms: q.step,
        },
        now,
    )
    .await?;
    Ok(json(StatusCode::OK, answer))
}

/// A Prometheus metric name from ours: `bot_` + the name with every
/// character outside `[A-Za-z0-9_]` as `_`, `_per_second` for rates.
fn prom_name(metric: &str, rate: bool) -> String {
    let mut n = String::with_capacity(metric.len() + 16);
    n.push_str("bot_");
    n.extend(
        metric
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    if rate {
        n.push_str("_per_second");
    }
    n
}

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The latest value of every agent's metrics, the fleet's gauges and the
/// server's own counters, in Prometheus's text exposition format (0.0.4).
/// Agent metrics are `bot_<metric>` (`.` → `_`; counters as
/// `…_per_second` rates), labelled `agent` (name), `agent_id` and the
/// sample's labels.
#[utoipa::path(get, path = "/metrics", security(("bearer" = ["read"])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(super) async fn prometheus(State(core): State<Arc<Core>>) -> Result<Response, Error> {
    let mut out = String::with_capacity(64 * 1024);
    // Agents' metrics, grouped by name (one TYPE line each).
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (agent_id, latest) in core.metrics.latest() {
        for p in &latest.points {
            if !p.value.is_finite() {
                continue;
            }
            let rate = p.key.kind != bot_proto::metrics::Kind::Gauge;
            let mut labels = format!(
                "agent=\"{}\",agent_id=\"{}\"",
                esc(&latest.name),
                esc(&agent_id)
            );
            let mut used = vec!["agent".to_owned(), "agent_id".to_owned()];
            for (k, v) in &p.key.labels {
                // `agent` and `agent_id` are ours, and `__*` Prometheus's: a
                // sample's own become exported_*; a name still taken is left
                // out (a duplicate label would fail the whole scrape).
                let k = if k == "agent" || k == "agent_id" || k.starts_with("__") {
                    format!("exported_{}", k.trim_matches('_'))
                } else {
                    k.clone()
                };
                if used.contains(&k) {
                    continue;
                }
                let _ = write!(labels, ",{k}=\"{}\"", esc(v));
                used.push(k);
            }
            by_name
                .entry(prom_name(&p.key.metric, rate))
                .or_default()
                .push(format!("{{{labels}}} {}", p.value));
        }
    }
    for (name, lines) in &by_name {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for l in lines {
            let _ = writeln!(out, "{name}{l}");
        }
    }
    // The fleet.
    let (online, offline) = core.registry.counts();
    let _ = writeln!(out, "# HELP bot_agents Agents in the registry, by state.");
    let _ = writeln!(out, "# TYPE bot_agents gauge");
    let _ = writeln!(out, "bot_agents{{state=\"online\"}} {online}");
    let _ = writeln!(out, "bot_agents{{state=\"offline\"}} {offline}");
    let _ = writeln!(out, "# HELP bot_tasks Tasks in the database, by state.");
    let _ = writeln!(out, "# TYPE bot_tasks gauge");
    let counts = core.store.task_counts().await?;
    for s in bot_proto::api::TaskState::ALL {
        let n = counts.iter().find(|(t, _)| t == s).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "bot_tasks{{state=\"{}\"}} {n}", s.as_str());
    }
    // Scheduled checks: the Nagios code of each (3 when stale), and how
    // many are in each state.
    let checks = core.checks.all();
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "# HELP bot_check_state A check's state on an agent: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also when stale)."
        );
        let _ = writeln!(out, "# TYPE bot_check_state gauge");
        let mut per_state: BTreeMap<&str, u64> = BTreeMap::new();
        for c in &checks {
            let name = core
                .registry
                .get(&c.agent_id)
                .map_or_else(|| c.agent_name.clone(), |a| a.name);
            let _ = writeln!(
                out,
                "bot_check_state{{agent=\"{}\",agent_id=\"{}\",check=\"{}\",stale=\"{}\"}} {}",
                esc(&name),
                esc(&c.agent_id),
                esc(&c.check),
                c.stale,
                c.code
            );
            *per_state.entry(c.state.as_str()).or_default() += 1;
        }
        let _ = writeln!(out, "# HELP bot_checks Checks on agents, by state.");
        let _ = writeln!(out, "# TYPE bot_checks gauge");
        for state in ["OK", "WARNING", "CRITICAL", "UNKNOWN"] {
            let n = per_state.get(state).copied().unwrap_or(0);
            let _ = writeln!(out, "bot_checks{{state=\"{state}\"}} {n}");
        }
    }
    // The server itself.
    let c = &core.metrics.counters;
    for (name, help, v) in [
        (
            "bot_samples_ingested_total",
            "Samples stored.",
            c.ingested.load(Ordering::Relaxed),
        ),
        (
            "bot_samples_rejected_total",
            "Samples left out of a batch as malformed.",
            c.rejected.load(Ordering::Relaxed),
        ),
        (
            "bot_samples_bad_batches_total",
            "Metrics batches refused whole (malformed, bad signature, unknown agent).",
            c.bad_batches.load(Ordering::Relaxed),
        ),
        (
            "bot_samples_dropped_total",
            "Batches dropped by a full ingest queue, and rows dropped while the database did not answer.",
            c.dropped.load(Ordering::Relaxed),
        ),
        (
            "bot_requests_sent_total",
            "Signed requests the server sent to agents.",
            core.audit.requests_sent(),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP bot_http_responses_total HTTP responses, by status."
    );
    let _ = writeln!(out, "# TYPE bot_http_responses_total counter");
    for (code, n) in core.statuses.snapshot() {
        let _ = writeln!(out, "bot_http_responses_total{{code=\"{code}\"}} {n}");
    }
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_fit_the_text_format() {
        assert_eq!(prom_name("cpu.usage", false), "bot_cpu_usage");
        assert_eq!(
            prom_name("net.rx_bytes", true),
            "bot_net_rx_bytes_per_second"
        );
        assert_eq!(prom_name("a-b.c", false), "bot_a_b_c");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
