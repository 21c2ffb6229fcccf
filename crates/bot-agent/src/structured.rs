//! The structured protocol on the agent (`bot/v1/…`, see docs/protocol.md):
//! retained status and last will, heartbeats, and requests.
//!
//! A request goes through, in order: size and schema validation (a malformed
//! request whose id and reply topic can be salvaged gets a `rejected`
//! reply), then the trust checks of [`bot_auth::Trust::admit`] (clock and
//! TTL, signature, a trusted key, typed arguments, the key's policy), then
//! replay (a request id is never run twice; a nonce is never accepted under
//! a second id), then the request's filter (a broadcast whose filter does
//! not match this agent is ignored); only then does the action run, in its
//! own task. `exec` is bounded by a concurrency limit and a bounded queue
//! (beyond it: a `busy` refusal); `ping`, `facts`, `status` and `cancel`
//! never wait. A refused request gets a
//! `rejected` reply naming the reason; every decision is an audit line.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bot_bus::{Publisher, Qos};
use bot_proto::envelope::{Heartbeat, Reply, ReplyStatus, Request, Status};
use bot_proto::{filter, topics};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use bot_auth::{Rejection, Trust};

use crate::MeasureState;
use crate::actions::{self, Context, now_ms};
use crate::audit::{self, Audit};
use crate::facts::Facts;

/// The largest reply an agent sends: what every receiver accepts
/// (`MAX_REPLY_BYTES`, data at most `MAX_REPLY_DATA_BYTES`), less room for
/// the signature, and well under the 4 MiB packets brokers take by default.
const MAX_REPLY_WIRE_BYTES: usize = bot_proto::envelope::MAX_REPLY_DATA_BYTES;

/// Room left for the signature and escaping slack when fitting a reply.
const SIG_ROOM: usize = 512;

/// `reply` made to fit `limit` bytes encoded: the output tails (`stdout`,
/// `stderr`, the longer first) are cut further from the front, and
/// `truncated` is set; the reply is never dropped for its size. Escaping
/// (a NUL byte is six bytes of JSON) is why the kept tails are measured
/// encoded, not by their length.
fn fit(mut reply: Reply, limit: usize) -> Reply {
    let limit = limit.saturating_sub(SIG_ROOM);
    for _ in 0..64 {
        let data_len = reply.data.to_string().len();
        let total = reply.encode().len();
        let data_limit = bot_proto::envelope::MAX_REPLY_DATA_BYTES.saturating_sub(SIG_ROOM);
        let excess = total
            .saturating_sub(limit)
            .max(data_len.saturating_sub(data_limit));
        if excess == 0 {
            return reply;
        }
        let Value::Object(map) = &mut reply.data else {
            break;
        };
        // The longer stream, by its encoded size.
        let longest = ["stdout", "stderr"]
            .into_iter()
            .filter_map(|k| map.get(k).and_then(Value::as_str).map(|s| (k, s)))
            .map(|(k, s)| (k, Value::from(s).to_string().len()))
            .max_by_key(|(_, n)| *n);
        let Some((field, encoded)) = longest else {
            break;
        };
        if encoded <= 2 {
            break;
        }
        let text = map
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let chars = text.chars().count();
        // Keep a share of the characters proportional to what must go,
        // with a little more cut so that it converges quickly.
        let keep_ratio = 1.0 - (excess as f64 + 64.0) / encoded as f64;
        let keep = ((chars as f64) * keep_ratio.max(0.0)).floor() as usize;
        let tail: String = text.chars().skip(chars - keep.min(chars)).collect();
        map.insert(field.to_owned(), Value::from(tail));
        map.insert("truncated".to_owned(), Value::from(true));
    }
    // Still too big (no output to cut): say so instead of sending nothing.
    if reply.encode().len() > limit {
        reply.data = serde_json::json!({ "truncated": true });
        reply.error = Some(format!(
            "the reply was larger than {limit} bytes and had no output to cut"
        ));
    }
    reply
}

/// Most request ids remembered for duplicate detection.
const SEEN_CAPACITY: usize = 100_000;

/// Who this agent is, as the structured protocol says it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub key: Arc<bot_auth::SecretKey>,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub pools: Vec<String>,
    pub started_ms: u64,
    pub heartbeat_s: u64,
}

impl Identity {
    /// The status message (retained on `bot/v1/status/<id>`).
    pub fn status(&self, facts: &Facts, online: bool, measure: &MeasureState) -> Status {
        let hostname = facts
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ips = match facts.get("ips") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Status {
            id: self.id.clone(),
            name: self.name.clone(),
            hostname,
            ips,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            online,
            facts: facts.clone(),
            tags: self.tags.clone(),
            pools: self.pools.clone(),
            started_ms: self.started_ms,
            heartbeat_s: self.heartbeat_s,
            created_ms: now_ms(),
            measure: Some(measure.measure()),
            key: Some(self.key.public().to_string()),
            sig: None,
        }
        .signed(&self.key)
    }
}

/// Envelopes the agent signs with its own key.
trait SignedBy: Sized {
    fn signed(self, key: &bot_auth::SecretKey) -> Self;
}

impl SignedBy for Status {
    fn signed(mut self, key: &bot_auth::SecretKey) -> Status {
        self.sig = Some(bot_auth::sign::detached(key, &self.signing_bytes()));
        self
    }
}

impl SignedBy for Heartbeat {
    fn signed(mut self, key: &bot_auth::SecretKey) -> Heartbeat {
        self.sig = Some(bot_auth::sign::detached(key, &self.signing_bytes()));
        self
    }
}

impl SignedBy for Reply {
    fn signed(mut self, key: &bot_auth::SecretKey) -> Reply {
        self.sig = Some(bot_auth::sign::detached(key, &self.signing_bytes()));
        self
    }
}

/// Request ids already seen, remembered until their TTL has passed, and
/// (with a journal) across restarts of the agent: each id is appended to
/// `state_dir/seen-requests` as `<until_ms> <id>` before its action runs,
/// and reloaded at start. So a request resent after the agent restarted
/// (the server resumes a task with the same request id) is still refused.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    expiry: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
    journal: Option<Journal>,
}

/// The append-only file behind [`Seen`]. It is opened for each append and
/// not kept open: an agent holds no descriptor for it (10,000 simulated
/// agents in one process would otherwise need 10,000 more).
#[derive(Debug)]
struct Journal {
    path: std::path::PathBuf,
    /// Lines in the file (compacted when it holds far more than is live).
    lines: usize,
}

/// Largest journal read at start; a bigger one is ignored (and replaced).
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

impl Seen {
    /// A set backed by the journal at `path`: loads the ids still valid at
    /// `now_ms`, rewrites the file with only those, and appends from then on.
    /// Failing that, a warning and an in-memory set (the agent still runs).
    pub fn with_journal(path: std::path::PathBuf, now_ms: u64) -> Seen {
        let mut seen = Seen::default();
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_JOURNAL_BYTES => {
                tracing::warn!(path = %path.display(), bytes = m.len(), "request journal too big; starting a new one");
            }
            Ok(_) => match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let mut entries: Vec<(u64, &str)> = text
                        .lines()
                        .filter_map(|l| {
                            let (until, id) = l.split_once(' ')?;
                            Some((until.parse().ok()?, id))
                        })
                        .filter(|(until, id)| *until >= now_ms && !id.is_empty())
                        .collect();
                    entries.sort_unstable();
                    for (until, id) in entries {
                        seen.insert(id, until, now_ms);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the request journal")
                }
            },
            Err(_) => {}
        }
        match seen.rewrite(&path) {
            Ok(journal) => seen.journal = Some(journal),
            Err(e) => tracing::warn!(
                path = %path.display(), error = %e,
                "cannot write the request journal: duplicates are detected only until the agent restarts"
            ),
        }
        seen
    }

    /// Writes the live entries to `path` (through a temporary file and a
    /// rename).
    fn rewrite(&self, path: &std::path::Path) -> std::io::Result<Journal> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut out = String::with_capacity(self.order.len() * 48);
        for (until, id) in &self.order {
            if self.expiry.contains_key(id) {
                out.push_str(&format!("{until} {id}\n"));
            }
        }
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(out.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(Journal {
            path: path.to_owned(),
            lines: self.expiry.len(),
        })
    }

    /// Whether `id` is remembered and still within its TTL at `now_ms`.
    pub fn contains(&self, id: &str, now_ms: u64) -> bool {
        self.expiry.get(id).is_some_and(|until| *until >= now_ms)
    }

    /// Records `id` (valid until `until_ms`); false if it was already there.
    pub fn insert(&mut self, id: &str, until_ms: u64, now_ms: u64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if *t >= now_ms && self.order.len() < SEEN_CAPACITY {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.expiry.remove(&old);
            }
        }
        if self.expiry.contains_key(id) {
            return false;
        }
        self.expiry.insert(id.to_owned(), until_ms);
        // Requests mostly arrive in TTL order; a late short-TTL one is kept a
        // little longer than needed, never shorter.
        let until = self
            .order
            .back()
            .map_or(until_ms, |(t, _)| until_ms.max(*t));
        self.order.push_back((until, id.to_owned()));
        self.append(id, until);
        true
    }

    /// Appends one entry to the journal (one `write`, so a crash leaves
    /// whole lines); compacts it when most of it has expired.
    fn append(&mut self, id: &str, until: u64) {
        use std::io::Write;
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let written = std::fs::OpenOptions::new()
            .append(true)
            .open(&j.path)
            .and_then(|mut f| f.write_all(format!("{until} {id}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot append to the request journal");
            return;
        }
        j.lines += 1;
        if j.lines > 2 * self.expiry.len() + 1024 {
            let path = j.path.clone();
            match self.rewrite(&path) {
                Ok(fresh) => self.journal = Some(fresh),
                Err(e) => tracing::warn!(error = %e, "cannot compact the request journal"),
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.expiry.len()
    }
}

/// A stand-in request for auditing a message that failed to decode.
fn salvaged(id: &str) -> Request {
    Request {
        id: id.to_owned(),
        sender: "?".into(),
        created_ms: 0,
        nonce: String::new(),
        ttl_ms: 0,
        filter: None,
        action: "?".into(),
        args: Value::Null,
        reply_to: String::new(),
        sig: None,
    }
}

/// Facts and tags as seen by a filter.
struct Me<'a> {
    facts: &'a Facts,
    tags: &'a [String],
    name: &'a str,
}

impl filter::Target for Me<'_> {
    fn fact(&self, key: &str) -> Option<&Value> {
        self.facts.get(key)
    }
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
    fn name(&self) -> &str {
        self.name
    }
}

/// How much `exec` may run and wait.
#[derive(Debug)]
pub(crate) struct ExecBounds {
    /// Timeouts and output caps.
    pub limits: actions::exec::Limits,
    /// Slots: `exec` requests running at once.
    pub max_concurrent: usize,
    /// `exec` requests that may wait for a slot.
    pub max_waiting: usize,
    /// The checks configured (`check` runs them like `exec`, in a slot).
    pub checks: Arc<std::collections::BTreeMap<String, crate::config::CheckConfig>>,
}

/// What stands between a request and running it: the keys this agent
/// trusts, the replay memory, and the audit log.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Request ids and nonces seen.
    pub seen: Seen,
    /// Trusted keys and their policies.
    pub trust: Trust,
    /// Where every decision is written.
    pub audit: Audit,
}

pub(crate) struct Structured {
    me: Identity,
    publisher: Publisher,
    facts: watch::Receiver<Arc<Facts>>,
    measure: watch::Receiver<MeasureState>,
    exec: actions::exec::Limits,
    checks: Arc<std::collections::BTreeMap<String, crate::config::CheckConfig>>,
    seen: Seen,
    slots: Arc<Semaphore>,
    /// `exec` requests waiting for a slot, and how many may.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    own_topic: String,
    running: actions::Running,
    trust: Trust,
    audit: Audit,
}

impl Structured {
    pub fn new(
        me: Identity,
        publisher: Publisher,
        facts: watch::Receiver<Arc<Facts>>,
        measure: watch::Receiver<MeasureState>,
        bounds: ExecBounds,
        guard: Guard,
    ) -> Structured {
        let Guard { seen, trust, audit } = guard;
        let ExecBounds {
            limits: exec,
            max_concurrent,
            max_waiting,
            checks,
        } = bounds;
        let own_topic = topics::request_agent_topic(&me.id);
        Structured {
            me,
            publisher,
            facts,
            measure,
            exec,
            seen,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            checks,
            own_topic,
            running: actions::Running::default(),
            trust,
            audit,
        }
    }

    /// A receiver that wakes when the facts change.
    pub fn facts_watch(&self) -> watch::Receiver<Arc<Facts>> {
        let mut rx = self.facts.clone();
        rx.mark_unchanged();
        rx
    }

    /// Is this topic a request topic of ours?
    pub fn wants(&self, topic: &str) -> bool {
        topic == topics::REQUEST_BROADCAST
            || topic == self.own_topic
            || self
                .me
                .pools
                .iter()
                .any(|p| topic == topics::request_pool_topic(p))
    }

    /// Publishes the retained status (online or offline).
    pub async fn publish_status(&self, online: bool) {
        let facts = self.facts.borrow().clone();
        let measure = self.measure.borrow().clone();
        let status = self.me.status(&facts, online, &measure);
        let topic = topics::status_topic(&self.me.id);
        if let Err(e) = self
            .publisher
            .publish(topic, status.encode(), Qos::AtLeastOnce, true)
            .await
        {
            tracing::warn!(error = %e, "status not published");
        }
    }

    /// A config from `bot/v1/config/<id>` that passes the trust checks
    /// (`Trust::admit_config`); anything else is logged and audited, and
    /// `None`. An empty payload (the server cleared it) is ignored.
    pub fn admit_config(&mut self, payload: &[u8]) -> Option<bot_proto::MeasureConfig> {
        if payload.is_empty() {
            return None;
        }
        let config = match bot_proto::MeasureConfig::decode(payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "malformed measuring config ignored");
                return None;
            }
        };
        let facts = self.facts.borrow().clone();
        let me = Me {
            facts: &facts,
            tags: &self.me.tags,
            name: &self.me.name,
        };
        match self.trust.admit_config(&config, &self.me.id, now_ms(), &me) {
            Ok(by) => {
                tracing::info!(key = %by.name, revision = config.revision, enabled = config.enabled,
                    interval_ms = config.interval_ms, collectors = ?config.collectors,
                    "measuring config applied");
                Some(config)
            }
            Err(why) => {
                tracing::warn!(code = why.code(), %why, "measuring config refused");
                None
            }
        }
    }

    /// Publishes one heartbeat.
    pub async fn heartbeat(&self, seq: u64) {
        let hb = Heartbeat {
            id: self.me.id.clone(),
            name: self.me.name.clone(),
            seq,
            uptime_s: now_ms().saturating_sub(self.me.started_ms) / 1000,
            created_ms: now_ms(),
            sig: None,
        }
        .signed(&self.me.key);
        let _ = self
            .publisher
            .publish(
                topics::heartbeat_topic(&self.me.id),
                hb.encode(),
                Qos::AtMostOnce,
                false,
            )
            .await;
    }

    /// Handles one request message: decode, then [`bot_auth::Trust::admit`]
    /// (clock, signature, trusted key, typed arguments, the key's policy),
    /// then replay (id, nonce), then the request's own filter; only then
    /// does anything run. Every decision is an audit line.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) {
        let received_ms = now_ms();
        let request = match Request::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%topic, error = %e, bytes = payload.len(), "malformed request");
                if let Some((id, reply_to)) = Request::salvage(payload) {
                    self.audit.record(&audit::Line {
                        code: Some("malformed"),
                        reason: Some(format!("malformed request: {e}")),
                        ..audit::Line::about(&salvaged(&id), "rejected", received_ms)
                    });
                    let reply = self.reply(
                        &id,
                        ReplyStatus::Rejected,
                        Value::Null,
                        Some(format!("malformed request: {e}")),
                        received_ms,
                    );
                    self.send(reply_to, reply);
                }
                return;
            }
        };
        let facts = self.facts.borrow().clone();
        let me = Me {
            facts: &facts,
            tags: &self.me.tags,
            name: &self.me.name,
        };
        let (action, key) = match self.trust.admit(&request, received_ms, &me) {
            Ok(a) => (a.action, a.by.name.clone()),
            Err(why) => return self.refuse(&request, &why, &me, received_ms),
        };
        // Replays: a second copy of an id (QoS 1 redelivery, a resend after
        // a restart, or a replay) is dropped without a reply, since the
        // first copy answers; a known nonce under a new id is refused.
        let nonce_key = format!("n:{}", request.nonce);
        if self.seen.contains(&request.id, received_ms) {
            tracing::info!(id = %request.id, "request ignored: duplicate (already received)");
            self.audit.record(&audit::Line {
                key: Some(&key),
                code: Some("replayed"),
                reason: Some("request id already received".into()),
                ..audit::Line::about(&request, "duplicate", received_ms)
            });
            return;
        }
        if self.seen.contains(&nonce_key, received_ms) {
            let why = Rejection::Replayed("nonce already used by another request".into());
            return self.refuse(&request, &why, &me, received_ms);
        }
        if let Some(text) = &request.filter {
            // decode validated the filter, so it parses.
            let matched = filter::parse(text).is_ok_and(|f| f.matches(&me));
            if !matched {
                tracing::debug!(id = %request.id, filter = %text, "request not for us");
                return;
            }
        }
        // Only `exec` takes a slot; the others answer at once, so a busy
        // agent still says it is alive. Beyond the queue bound an `exec` is
        // refused "busy" (and not remembered: it may be sent again).
        // A check runs a process too: it takes a slot like `exec`.
        let is_exec = matches!(
            action,
            bot_proto::Action::Exec(_) | bot_proto::Action::Check(_)
        );
        let waiting = self.waiting.load(Ordering::Relaxed);
        if is_exec && self.slots.available_permits() == 0 && waiting >= self.max_waiting {
            let why = Rejection::Busy(format!(
                "{waiting} requests already wait for a free exec slot (max_queued_requests = {})",
                self.max_waiting
            ));
            return self.refuse(&request, &why, &me, received_ms);
        }
        let until = request.expires_ms();
        if !self.seen.insert(&request.id, until, received_ms) {
            return;
        }
        self.seen.insert(&nonce_key, until, received_ms);
        self.audit.record(&audit::Line {
            key: Some(&key),
            ..audit::Line::about(&request, "accepted", received_ms)
        });
        let measure = self.measure.borrow().clone();
        let ctx = Context {
            id: self.me.id.clone(),
            name: self.me.name.clone(),
            facts: (*facts).clone(),
            started_ms: self.me.started_ms,
            selected: measure.selected,
            interval: measure.interval,
            exec: self.exec.clone(),
            cancel: self.running.start(&request.id),
            running: self.running.clone(),
            checks: self.checks.clone(),
        };
        tracing::info!(id = %request.id, sender = %request.sender, %key, action = %request.action, "running request");
        let slots = self.slots.clone();
        let publisher = self.publisher.clone();
        let base = self.reply(&request.id, ReplyStatus::Ok, Value::Null, None, received_ms);
        let running = self.running.clone();
        let audit = self.audit.clone();
        let key_for_reply = self.me.key.clone();
        let waiting = self.waiting.clone();
        if is_exec {
            waiting.fetch_add(1, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            let _permit = if is_exec {
                let p = slots.acquire_owned().await.ok();
                waiting.fetch_sub(1, Ordering::Relaxed);
                p
            } else {
                None
            };
            let outcome = actions::run(&action, &ctx).await;
            running.end(&request.id);
            audit.record(&audit::Line {
                key: Some(&key),
                result: Some(outcome.status.as_str()),
                reason: outcome.error.clone(),
                ..audit::Line::about(&request, "done", now_ms())
            });
            let reply = Reply {
                status: outcome.status,
                data: outcome.data,
                error: outcome.error,
                duration_ms: now_ms().saturating_sub(received_ms),
                created_ms: now_ms(),
                ..base
            };
            publish_reply(&publisher, &key_for_reply, request.reply_to, reply).await;
        });
    }

    /// Refuses `request`: a log line, an audit line, and a `rejected` reply
    /// naming the reason, unless the request's own filter shows it was not
    /// meant for this agent (no fleet-wide echo of a stranger's broadcast).
    fn refuse(&self, request: &Request, why: &Rejection, me: &Me<'_>, received_ms: u64) {
        let key = self.trust.claimed(request).map(|t| t.name.as_str());
        tracing::warn!(id = %request.id, sender = %request.sender, key = ?key,
            action = %request.action, reason = %why, "request refused");
        self.audit.record(&audit::Line {
            key,
            code: Some(why.code()),
            reason: Some(why.to_string()),
            ..audit::Line::about(request, "rejected", received_ms)
        });
        let for_us = match &request.filter {
            Some(text) => filter::parse(text).is_ok_and(|f| f.matches(me)),
            None => true,
        };
        if for_us {
            let reply = self.reply(
                &request.id,
                ReplyStatus::Rejected,
                Value::Null,
                Some(why.to_string()),
                received_ms,
            );
            self.send(request.reply_to.clone(), reply);
        }
    }

    fn reply(
        &self,
        request_id: &str,
        status: ReplyStatus,
        data: Value,
        error: Option<String>,
        received_ms: u64,
    ) -> Reply {
        Reply {
            request_id: request_id.to_owned(),
            agent_id: self.me.id.clone(),
            agent_name: self.me.name.clone(),
            sender: self.me.id.clone(),
            created_ms: now_ms(),
            nonce: format!("{:016x}", fastrand::u64(..)),
            status,
            data,
            error,
            received_ms,
            duration_ms: now_ms().saturating_sub(received_ms),
            sig: None,
        }
    }

    fn send(&self, reply_to: String, reply: Reply) {
        let publisher = self.publisher.clone();
        let key = self.me.key.clone();
        tokio::spawn(async move { publish_reply(&publisher, &key, reply_to, reply).await });
    }
}

/// Interactive replies (to a `bot/v1/reply/<session>` topic of a waiting
/// client) go at QoS 0: the client tracks completion itself and a broker's
/// per-client queue would drop a big fan-out's QoS 1 replies anyway. Replies
/// to any other destination (`…/durable` for the server's task engine,
/// asynchronous consumers) go at QoS 1.
async fn publish_reply(
    publisher: &Publisher,
    key: &bot_auth::SecretKey,
    reply_to: String,
    reply: Reply,
) {
    let reply = fit(reply, MAX_REPLY_WIRE_BYTES).signed(key);
    let qos = if topics::reply_wants_qos1(&reply_to) {
        Qos::AtLeastOnce
    } else {
        Qos::AtMostOnce
    };
    if let Err(e) = publisher
        .publish(reply_to, reply.encode(), qos, false)
        .await
    {
        tracing::warn!(id = %reply.request_id, error = %e, "reply not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_with(stdout: &str, stderr: &str) -> Reply {
        Reply {
            request_id: "r1".into(),
            agent_id: "a".into(),
            agent_name: "n".into(),
            sender: "a".into(),
            created_ms: 1,
            nonce: "0123456789abcdef".into(),
            status: ReplyStatus::Ok,
            data: serde_json::json!({"exit_code": 0, "stdout": stdout, "stderr": stderr,
                "stdout_bytes": stdout.len(), "truncated": false}),
            error: None,
            received_ms: 1,
            duration_ms: 1,
            sig: None,
        }
    }

    #[test]
    fn big_replies_are_cut_to_fit_keeping_the_tails() {
        // 1 MiB of NULs: 6 MiB of JSON.
        let zeros = "\0".repeat(1024 * 1024);
        let r = fit(
            reply_with(&format!("head{zeros}tail"), "err-tail"),
            MAX_REPLY_WIRE_BYTES,
        );
        assert!(
            r.encode().len() <= MAX_REPLY_WIRE_BYTES - SIG_ROOM,
            "{}",
            r.encode().len()
        );
        let out = r.data["stdout"].as_str().unwrap_or_default();
        assert!(
            out.ends_with("tail") && out.len() > 100_000,
            "{}",
            out.len()
        );
        assert!(!out.starts_with("head"));
        assert_eq!(r.data["truncated"], true);
        assert_eq!(r.data["stderr"], "err-tail", "the short stream is kept");
        assert_eq!(r.data["stdout_bytes"], 1024 * 1024 + 8, "totals are kept");
        // The decoder everyone uses accepts it once signed.
        let key = bot_auth::SecretKey::generate().expect("key");
        let signed = r.signed(&key);
        assert!(Reply::decode(&signed.encode()).is_ok());
        // Small replies are untouched.
        let small = reply_with("hi", "");
        assert_eq!(fit(small.clone(), MAX_REPLY_WIRE_BYTES), small);
        // Both streams big: both cut, the whole fits.
        let a = "a".repeat(900 * 1024);
        let r = fit(reply_with(&a, &a), MAX_REPLY_WIRE_BYTES);
        assert!(r.encode().len() <= MAX_REPLY_WIRE_BYTES - SIG_ROOM);
        assert!(r.data["stdout"].as_str().is_some_and(|s| s.len() > 100_000));
    }

    #[test]
    fn seen_rejects_duplicates_until_expiry() {
        let mut s = Seen::default();
        assert!(s.insert("a", 1_000, 0));
        assert!(!s.insert("a", 1_000, 10));
        assert!(s.insert("b", 2_000, 10));
        // After a's expiry it is forgotten (an expired request is refused by TTL anyway).
        assert!(s.insert("c", 3_000, 1_500));
        assert_eq!(s.len(), 2);
        assert!(!s.insert("b", 2_000, 1_600));
    }

    #[test]
    fn seen_journal_survives_a_restart_and_drops_expired_ids() {
        let dir = std::env::temp_dir().join(format!("bot-seen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("seen-requests");
        {
            let mut s = Seen::with_journal(path.clone(), 1_000);
            // (In TTL order: a later id with a shorter TTL is kept as long
            // as the one before it.)
            assert!(s.insert("b", 2_000, 1_000));
            assert!(s.insert("a", 5_000, 1_000));
            assert!(!s.insert("a", 5_000, 1_000));
        }
        // Restarted at t = 3,000: "a" is still valid, "b" (until 2,000) is not.
        let mut s = Seen::with_journal(path.clone(), 3_000);
        assert!(
            !s.insert("a", 5_000, 3_000),
            "a remembered across the restart"
        );
        assert!(s.insert("b", 9_000, 3_000), "b had expired");
        let text = std::fs::read_to_string(&path).expect("journal");
        assert!(text.lines().all(|l| l.split_once(' ').is_some()), "{text}");
        // Garbage lines are skipped, not fatal.
        std::fs::write(&path, "junk\n7000\nx y\n8000 c\n").expect("write");
        let mut s = Seen::with_journal(path.clone(), 3_000);
        assert!(!s.insert("c", 8_000, 3_000));
        assert_eq!(s.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seen_journal_is_compacted() {
        let dir = std::env::temp_dir().join(format!("bot-seen-c-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("seen-requests");
        let mut s = Seen::with_journal(path.clone(), 0);
        // Each id expires at once: the live set stays tiny, the file must not grow without bound.
        for i in 0..10_000u64 {
            s.insert(&format!("r{i}"), i, i);
        }
        let lines = std::fs::read_to_string(&path)
            .expect("journal")
            .lines()
            .count();
        assert!(
            lines <= 2 * s.len() + 1025,
            "{lines} lines for {} live ids",
            s.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seen_is_bounded() {
        let mut s = Seen::default();
        for i in 0..(SEEN_CAPACITY + 10) {
            s.insert(&i.to_string(), u64::MAX, 0);
        }
        assert!(s.len() <= SEEN_CAPACITY + 1, "{}", s.len());
    }
}
