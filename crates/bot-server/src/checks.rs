//! Check results: the current state of every check on every agent, its
//! history of state changes, and staleness.
//!
//! Scheduled checks send their results to a durable topic
//! ([`topics::CHECK_RESULTS`], QoS 1, read through the server's persistent
//! session, so results sent while the server was down arrive when it is
//! back). The bus ingest hands each verified result here
//! ([`Checks::on_result`]); the state is kept in memory for the API and
//! `/metrics` and written in batches ([`keep`]), each change with its
//! history row in one transaction. A check with no result within two
//! intervals becomes UNKNOWN "stale" (Nagios's freshness check).
//!
//! The interval of a result is its schedule's: from the request it answers
//! (remembered when the scheduler sent it), else from the check's previous
//! state, else from a schedule of that check, else [`DEFAULT_INTERVAL_MS`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot_proto::action::CheckResult;
use bot_proto::api::{CheckChange, CheckStatus};
use bot_proto::{Reply, ReplyStatus, topics};
use bot_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventHub};
use crate::metrics::Incoming;

/// The interval assumed for a result nothing else dates (5 minutes, the
/// usual Nagios check interval).
pub const DEFAULT_INTERVAL_MS: u64 = 300_000;
/// How often states are written and staleness is checked.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest output kept per state (the agent caps it too; this bounds what
/// a hostile reply could make the server store).
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024;
/// State changes kept this long (30 days).
pub const HISTORY_RETENTION_MS: u64 = 30 * 86_400_000;
/// Requests remembered at most (older ones are forgotten first; a result of
/// a forgotten request still counts, dated by its check's previous state).
const MAX_REQUESTS: usize = 100_000;

/// What the scheduler tells about a request it sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The schedule.
    pub schedule_id: String,
    /// The check.
    pub check: String,
    /// The schedule's interval, ms.
    pub interval_ms: u64,
    /// The agents expected to answer.
    pub expected: HashSet<String>,
    /// When the run gives up waiting.
    pub deadline_ms: u64,
}

#[derive(Debug)]
struct Run {
    deadline_ms: u64,
    pending: HashSet<String>,
}

#[derive(Debug, Default)]
struct Inner {
    states: HashMap<(String, String), CheckStatus>,
    /// request id → (schedule id, check, interval)
    requests: HashMap<String, (String, String, u64)>,
    request_order: std::collections::VecDeque<String>,
    /// schedule id → the run in progress
    runs: HashMap<String, Run>,
    /// check name → (schedule id, interval), from the scheduler's last look.
    by_check: HashMap<String, (String, u64)>,
    dirty: HashSet<(String, String)>,
    changes: Vec<CheckChange>,
}

/// The check states (cheap to clone).
#[derive(Debug, Clone)]
pub struct Checks {
    inner: Arc<Mutex<Inner>>,
    events: EventHub,
    samples: mpsc::Sender<Incoming>,
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Checks {
    /// The states stored in `store`.
    pub(crate) async fn load(
        store: &Store,
        events: EventHub,
        samples: mpsc::Sender<Incoming>,
    ) -> Result<Checks, bot_store::StoreError> {
        let mut inner = Inner::default();
        for s in store.check_states().await? {
            inner
                .states
                .insert((s.agent_id.clone(), s.check.clone()), s);
        }
        Ok(Checks {
            inner: Arc::new(Mutex::new(inner)),
            events,
            samples,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scheduler sent `request_id` for a run of `sent.schedule_id`.
    pub fn sent(&self, request_ids: &[String], sent: Sent) {
        let mut inner = self.lock();
        for id in request_ids {
            inner.requests.insert(
                id.clone(),
                (
                    sent.schedule_id.clone(),
                    sent.check.clone(),
                    sent.interval_ms,
                ),
            );
            inner.request_order.push_back(id.clone());
        }
        while inner.request_order.len() > MAX_REQUESTS {
            if let Some(old) = inner.request_order.pop_front() {
                inner.requests.remove(&old);
            }
        }
        inner.runs.insert(
            sent.schedule_id,
            Run {
                deadline_ms: sent.deadline_ms,
                pending: sent.expected,
            },
        );
    }

    /// Whether the last run of `schedule_id` still waits for results.
    pub fn running(&self, schedule_id: &str, now_ms: u64) -> bool {
        self.lock()
            .runs
            .get(schedule_id)
            .is_some_and(|r| now_ms < r.deadline_ms && !r.pending.is_empty())
    }

    /// The scheduler's current schedules of checks: check name → (schedule
    /// id, interval ms), to date results of requests it no longer knows.
    pub fn set_schedules(&self, by_check: HashMap<String, (String, u64)>) {
        self.lock().by_check = by_check;
    }

    /// A verified reply on a check results topic. A reply that is not a
    /// check's (another action, a refusal of a request this server did not
    /// send) is ignored; a refusal or an error of a scheduled check makes
    /// the check UNKNOWN with the reason.
    pub fn on_result(&self, reply: &Reply, now_ms: u64) {
        let mut inner = self.lock();
        let known = inner.requests.get(&reply.request_id).cloned();
        let (check, code, output, long_output, perfdata) = match reply.status {
            ReplyStatus::Ok => {
                let Ok(r) = serde_json::from_value::<CheckResult>(reply.data.clone()) else {
                    tracing::debug!(agent = %reply.agent_id, request = %reply.request_id,
                        "a reply on the check results topic that is not a check result: ignored");
                    return;
                };
                if bot_proto::action::check_name(&r.check).is_err() || r.code > 3 {
                    return;
                }
                let output = match &r.reason {
                    Some(reason) if r.output.is_empty() => format!("UNKNOWN: {reason}"),
                    _ => r.output.clone(),
                };
                (r.check, r.code, output, r.long_output, r.perfdata)
            }
            _ => {
                // Only for a request we sent: we know which check it was.
                let Some((_, check, _)) = &known else {
                    return;
                };
                let why = reply
                    .error
                    .clone()
                    .unwrap_or_else(|| "no reason given".into());
                (
                    check.clone(),
                    3,
                    format!("check not run: {why}"),
                    String::new(),
                    String::new(),
                )
            }
        };
        // The state is the code's (Nagios's rule), whatever the text says.
        let state = match code {
            0 => "OK",
            1 => "WARNING",
            2 => "CRITICAL",
            _ => "UNKNOWN",
        };
        let key = (reply.agent_id.clone(), check.clone());
        let prev = inner.states.get(&key).cloned();
        let (schedule_id, interval_ms) = match (&known, &prev) {
            (Some((s, _, i)), _) => (Some(s.clone()), *i),
            (None, Some(p)) => (p.schedule_id.clone(), p.interval_ms),
            (None, None) => match inner.by_check.get(&check) {
                Some((s, i)) => (Some(s.clone()), *i),
                None => (None, DEFAULT_INTERVAL_MS),
            },
        };
        if let Some((schedule, _, _)) = &known
            && let Some(run) = inner.runs.get_mut(schedule)
        {
            run.pending.remove(&reply.agent_id);
        }
        // A result older than the one we have (a redelivery) changes nothing.
        let at = reply.created_ms.min(now_ms);
        if prev.as_ref().is_some_and(|p| p.updated_ms > at) {
            return;
        }
        let output = cut(output, MAX_OUTPUT_BYTES);
        let changed = prev.as_ref().is_none_or(|p| p.state != state);
        let since_ms = match &prev {
            Some(p) if !changed => p.since_ms,
            _ => at,
        };
        let status = CheckStatus {
            agent_id: reply.agent_id.clone(),
            agent_name: reply.agent_name.clone(),
            check: check.clone(),
            state: state.to_owned(),
            code,
            output: output.clone(),
            long_output: cut(long_output, MAX_OUTPUT_BYTES),
            perfdata: cut(perfdata, MAX_OUTPUT_BYTES),
            since_ms,
            updated_ms: at,
            interval_ms,
            stale: false,
            schedule_id,
        };
        if changed {
            let change = CheckChange {
                agent_id: reply.agent_id.clone(),
                check: check.clone(),
                from: prev.map(|p| p.state),
                to: state.to_owned(),
                at_ms: at,
                output,
            };
            self.events.publish(Event::Check(Box::new(change.clone())));
            inner.changes.push(change);
        }
        let (perf, _) = bot_proto::nagios::parse_perfdata(&status.perfdata);
        inner.states.insert(key.clone(), status);
        inner.dirty.insert(key);
        drop(inner);
        if !perf.is_empty() {
            let samples = bot_proto::nagios::perf_samples(&check, &perf);
            // Never wait: a full ingest queue loses these samples, not the state.
            let _ = self.samples.try_send(Incoming::Checked {
                agent_id: reply.agent_id.clone(),
                name: reply.agent_name.clone(),
                time_ms: at,
                samples,
            });
        }
    }

    /// Marks checks with no result for two intervals as UNKNOWN "stale".
    pub fn sweep(&self, now_ms: u64) {
        let mut inner = self.lock();
        let mut stale = Vec::new();
        for (key, s) in &inner.states {
            if !s.stale && now_ms.saturating_sub(s.updated_ms) > s.interval_ms.saturating_mul(2) {
                stale.push(key.clone());
            }
        }
        for key in stale {
            let Some(s) = inner.states.get_mut(&key) else {
                continue;
            };
            let from = std::mem::replace(&mut s.state, "UNKNOWN".to_owned());
            s.code = 3;
            s.stale = true;
            s.output = format!(
                "stale: no result for {} s (twice the interval of {} s)",
                now_ms.saturating_sub(s.updated_ms) / 1000,
                s.interval_ms / 1000
            );
            let change = CheckChange {
                agent_id: s.agent_id.clone(),
                check: s.check.clone(),
                from: Some(from.clone()),
                to: "UNKNOWN".to_owned(),
                at_ms: now_ms,
                output: s.output.clone(),
            };
            if from != "UNKNOWN" {
                s.since_ms = now_ms;
            }
            self.events.publish(Event::Check(Box::new(change.clone())));
            inner.changes.push(change);
            inner.dirty.insert(key);
        }
        inner.runs.retain(|_, r| r.deadline_ms > now_ms);
    }

    /// Forgets the states that schedule `id` made; returns their (agent,
    /// check) keys, for the store.
    pub fn forget_schedule(&self, id: &str) -> Vec<(String, String)> {
        let mut inner = self.lock();
        let keys: Vec<(String, String)> = inner
            .states
            .iter()
            .filter(|(_, s)| s.schedule_id.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            inner.states.remove(k);
            inner.dirty.remove(k);
        }
        inner.runs.remove(id);
        keys
    }

    /// Forgets an agent's states (the agent was forgotten); returns their
    /// (agent, check) keys, for the store.
    pub fn forget_agent(&self, agent_id: &str) -> Vec<(String, String)> {
        let mut inner = self.lock();
        let keys: Vec<(String, String)> = inner
            .states
            .keys()
            .filter(|(a, _)| a == agent_id)
            .cloned()
            .collect();
        for k in &keys {
            inner.states.remove(k);
            inner.dirty.remove(k);
        }
        keys
    }

    /// Every state (agent names as the results gave them).
    pub fn all(&self) -> Vec<CheckStatus> {
        self.lock().states.values().cloned().collect()
    }

    /// Takes what is to be written.
    fn take_dirty(&self) -> (Vec<CheckStatus>, Vec<CheckChange>) {
        let mut inner = self.lock();
        let keys: Vec<_> = inner.dirty.drain().collect();
        let states = keys
            .iter()
            .filter_map(|k| inner.states.get(k).cloned())
            .collect();
        (states, std::mem::take(&mut inner.changes))
    }

    /// Puts back what could not be written (the database failed).
    fn put_back(&self, states: &[CheckStatus], changes: Vec<CheckChange>) {
        let mut inner = self.lock();
        for s in states {
            inner.dirty.insert((s.agent_id.clone(), s.check.clone()));
        }
        let mut changes = changes;
        changes.append(&mut inner.changes);
        // Bounded: a database down for long loses the oldest history rows,
        // never the current states.
        let excess = changes.len().saturating_sub(MAX_REQUESTS);
        changes.drain(..excess);
        inner.changes = changes;
    }
}

/// Writes states and changes every [`FLUSH_EVERY`], sweeps staleness, and
/// prunes old history hourly, until `shutdown` (then writes once more).
pub(crate) async fn keep(
    checks: Checks,
    store: Store,
    clock: Arc<dyn crate::clock::Clock>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = 0u64;
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            () = shutdown.cancelled() => true,
        };
        let now = clock.now_ms();
        checks.sweep(now);
        let (states, changes) = checks.take_dirty();
        if !(states.is_empty() && changes.is_empty())
            && let Err(e) = store.put_check_states(&states, &changes).await
        {
            tracing::error!(error = %e, "cannot store check states; retrying");
            checks.put_back(&states, changes);
        }
        if now.saturating_sub(last_prune) >= 3_600_000 {
            last_prune = now;
            if let Err(e) = store
                .prune_check_changes(now.saturating_sub(HISTORY_RETENTION_MS))
                .await
            {
                tracing::warn!(error = %e, "cannot prune the check history");
            }
        }
        if stop {
            break;
        }
    }
}

/// Whether `topic` carries check results for the server.
pub fn is_results_topic(topic: &str) -> bool {
    topic == topics::CHECK_RESULTS
}
