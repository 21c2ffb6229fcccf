//! The registry: every agent seen, from retained statuses (and their last
//! wills) and heartbeats. Kept in memory for filters and the API, written
//! to the store in batches (a burst of 10,000 statuses at start-up is a few
//! transactions, not 10,000), and loaded from the store at start so it
//! survives a restart.
//!
//! Offline is known three ways: the retained last will (`online: false`,
//! published by the broker when the agent's connection dies), a clean stop's
//! own offline status, and silence: an agent with heartbeats that has not
//! been heard for [`STALE_HEARTBEATS`] intervals is marked offline.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bot_auth::PublicKey;
use bot_auth::sign::check;
use bot_proto::api::{Agent, KeyBinding, KeyState};
use bot_proto::filter::Filter;
use bot_proto::{Heartbeat, Reply, Status};
use bot_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::now_ms;

fn trusted(key: &PublicKey) -> KeyBinding {
    KeyBinding {
        state: KeyState::Trusted,
        key: Some(key.to_string()),
        pending: None,
    }
}

fn pending(key: &PublicKey) -> KeyBinding {
    KeyBinding {
        state: KeyState::Pending,
        key: None,
        pending: Some(key.to_string()),
    }
}

/// Missed heartbeat intervals after which a silent agent counts as offline.
pub const STALE_HEARTBEATS: u64 = 3;

/// How often dirty agents are written to the store.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The agents known, shared by the bus ingest, the engine and the API.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RwLock<Inner>>,
    offline_tx: mpsc::UnboundedSender<String>,
    audit: Option<crate::audit::Audit>,
    events: Option<crate::events::EventHub>,
}

#[derive(Debug, Default)]
struct Inner {
    agents: HashMap<String, Agent>,
    /// Each trusted agent's bound key, parsed (for checking its signatures).
    keys: HashMap<String, PublicKey>,
    /// Bind the key of an agent seen for the first time (else it waits for
    /// an operator's accept).
    auto_accept: bool,
    /// Each agent's JSON as the API shows it, kept up to date with `agents`,
    /// so that listing 10,000 agents is a concatenation, not 10,000
    /// serialisations.
    json: HashMap<String, Arc<str>>,
    dirty: HashSet<String>,
    /// The latest status signed by an agent's changed key (and when it
    /// came), refused until an operator accepts that key; applied then, so
    /// the registry shows what the agent last said (online or not).
    held: HashMap<String, (Status, u64)>,
}

impl Inner {
    /// Records that `id` changed: to be stored, and its JSON redone.
    fn changed(&mut self, id: &str) {
        if let Some(a) = self.agents.get(id) {
            match (
                a.key.state,
                a.key.key.as_deref().map(str::parse::<PublicKey>),
            ) {
                (KeyState::Trusted, Some(Ok(k))) => {
                    self.keys.insert(id.to_owned(), k);
                }
                _ => {
                    self.keys.remove(id);
                }
            }
            match serde_json::to_string(a) {
                Ok(j) => {
                    self.json.insert(id.to_owned(), j.into());
                }
                Err(e) => tracing::error!(%id, error = %e, "cannot encode agent"),
            }
        }
        self.dirty.insert(id.to_owned());
    }
}

/// Why a name or id does not resolve to one agent.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    /// No agent has this id or name.
    #[error("unknown agent {0:?} (no agent with this id or name has been seen)")]
    Unknown(String),
    /// Several agents share this name.
    #[error("agent name {name:?} is ambiguous: ids {ids}")]
    Ambiguous {
        /// The name.
        name: String,
        /// The ids carrying it.
        ids: String,
    },
}

impl Registry {
    /// A registry holding `agents` (as loaded from the store). Agents going
    /// offline are announced on the returned channel (for the engine).
    ///
    /// With `auto_accept`, the key of an agent seen for the first time is
    /// bound at once; without, the agent waits (`pending`) for an operator.
    pub fn new(
        agents: Vec<Agent>,
        auto_accept: bool,
    ) -> (Registry, mpsc::UnboundedReceiver<String>) {
        let (offline_tx, offline_rx) = mpsc::unbounded_channel();
        let mut inner = Inner {
            agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
            auto_accept,
            ..Inner::default()
        };
        let ids: Vec<String> = inner.agents.keys().cloned().collect();
        for id in ids {
            inner.changed(&id);
        }
        inner.dirty.clear();
        (
            Registry {
                inner: Arc::new(RwLock::new(inner)),
                offline_tx,
                audit: None,
                events: None,
            },
            offline_rx,
        )
    }

    /// This registry, announcing agents going online and offline on `events`.
    pub fn with_events(mut self, events: crate::events::EventHub) -> Registry {
        self.events = Some(events);
        self
    }

    /// Announces an online/offline transition on the event hub.
    fn announce(&self, id: &str, name: &str, online: bool, at_ms: u64) {
        if let Some(hub) = &self.events {
            hub.publish(crate::events::Event::Agent {
                id: id.to_owned(),
                name: name.to_owned(),
                online,
                at_ms,
            });
        }
    }

    /// This registry, recording key changes in `audit`.
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> Registry {
        self.audit = Some(audit);
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A status message arrived on `bot/v1/status/<topic_id>`. It counts
    /// only if signed by the key it carries, and that key is the one bound
    /// to the agent's id (see [`KeyBinding`]): a status signed by another
    /// key raises the alarm and changes nothing else.
    pub fn on_status(&self, topic_id: &str, payload: &[u8]) {
        let status = match Status::decode(payload) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(topic_id, error = %e, "bad status ignored");
                return;
            }
        };
        if status.id != topic_id {
            tracing::warn!(topic_id, id = %status.id, "status for another id ignored");
            return;
        }
        // Agents make their ids as hyphenated UUIDs (`bot agent --print-id`);
        // anything else did not come from an agent.
        if !bot_proto::is_agent_id(&status.id) {
            tracing::warn!(id = %status.id, "status with an id no agent makes (not a UUID) ignored");
            return;
        }
        let signed_by = status
            .key
            .as_deref()
            .ok_or_else(|| "it carries no key".to_owned())
            .and_then(|k| k.parse::<PublicKey>().map_err(|e| e.to_string()))
            .and_then(|k| check(status.sig.as_deref(), &status.signing_bytes(), &k).map(|()| k));
        let key = match signed_by {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!(id = %status.id, name = %status.name, %why, "unsigned or badly signed status ignored");
                return;
            }
        };
        let now = now_ms();
        let (went_offline, transition) = {
            let mut inner = self.write();
            let auto_accept = inner.auto_accept;
            let went_offline;
            let transition;
            match inner.agents.get_mut(&status.id) {
                Some(known) => {
                    let bound = known.key.key.clone();
                    if bound.is_some() && bound.as_deref() != status.key.as_deref() {
                        if known.key.state != KeyState::Changed
                            || known.key.pending.as_deref() != status.key.as_deref()
                        {
                            tracing::error!(id = %status.id, name = %status.name,
                                bound = ?bound, new = %key,
                                "ALARM: an agent's key changed; its messages are refused until an operator accepts the new key (bot agents accept ID)");
                            if let Some(a) = &self.audit {
                                a.key("key_changed", &status.id, &key.to_string(), None);
                            }
                        }
                        known.key.state = KeyState::Changed;
                        known.key.pending = status.key.clone();
                        let id = status.id.clone();
                        inner.held.insert(id.clone(), (status, now));
                        inner.changed(&id);
                        return;
                    }
                    went_offline = known.online && !status.online;
                    transition = (known.online != status.online).then_some(status.online);
                    let first = known.first_seen_ms;
                    let binding = known.key.clone();
                    *known = Agent::from_status(&status, now);
                    known.first_seen_ms = first;
                    known.key = match binding.state {
                        KeyState::None if auto_accept => trusted(&key),
                        KeyState::None => pending(&key),
                        KeyState::Pending => pending(&key),
                        _ => binding,
                    };
                }
                None => {
                    went_offline = !status.online;
                    transition = Some(status.online);
                    let mut agent = Agent::from_status(&status, now);
                    agent.key = if auto_accept {
                        trusted(&key)
                    } else {
                        pending(&key)
                    };
                    if !auto_accept {
                        tracing::warn!(id = %status.id, name = %status.name, key = %key,
                            "new agent waits for an operator: bot agents accept ID");
                    }
                    inner.agents.insert(status.id.clone(), agent);
                }
            }
            inner.changed(&status.id);
            (went_offline, transition)
        };
        if let Some(online) = transition {
            self.announce(&status.id, &status.name, online, now);
        }
        if went_offline {
            let _ = self.offline_tx.send(status.id);
        }
    }

    /// A heartbeat arrived; it counts only if signed by the agent's bound key.
    pub fn on_heartbeat(&self, payload: &[u8]) {
        let Ok(hb) = Heartbeat::decode(payload) else {
            return;
        };
        let now = now_ms();
        let mut inner = self.write();
        let Some(key) = inner.keys.get(&hb.id) else {
            return;
        };
        if check(hb.sig.as_deref(), &hb.signing_bytes(), key).is_err() {
            tracing::debug!(id = %hb.id, "heartbeat with a bad signature ignored");
            return;
        }
        if let Some(a) = inner.agents.get_mut(&hb.id) {
            a.last_seen_ms = a.last_seen_ms.max(now);
            let id = a.id.clone();
            inner.changed(&id);
        }
    }

    /// Checks that `bytes` were signed (`sig`) by the key bound to
    /// `agent_id`, and that agent is trusted.
    pub fn verify_signed(
        &self,
        agent_id: &str,
        sig: Option<&str>,
        bytes: &[u8],
    ) -> Result<(), String> {
        let inner = self.read();
        let key = inner.keys.get(agent_id).ok_or_else(|| {
            match inner.agents.get(agent_id).map(|a| a.key.state) {
                None => "unknown agent".to_owned(),
                Some(state) => format!("the agent's key is {}", state.as_str()),
            }
        })?;
        check(sig, bytes, key)
    }

    /// Checks that `reply` is signed by the key bound to the agent it
    /// names, and that agent is trusted.
    pub fn verify_reply(&self, reply: &Reply) -> Result<(), String> {
        let inner = self.read();
        let key = inner.keys.get(&reply.agent_id).ok_or_else(|| {
            match inner.agents.get(&reply.agent_id).map(|a| a.key.state) {
                None => "unknown agent".to_owned(),
                Some(state) => format!("the agent's key is {}", state.as_str()),
            }
        })?;
        check(reply.sig.as_deref(), &reply.signing_bytes(), key)
    }

    /// An operator accepts the agent's pending key (a new agent, or a
    /// changed key). False if the agent is unknown or has no pending key.
    pub fn accept(&self, id: &str) -> bool {
        let mut inner = self.write();
        let Some(a) = inner.agents.get_mut(id) else {
            return false;
        };
        let Some(new) = a.key.pending.take() else {
            return false;
        };
        tracing::warn!(%id, key = %new, "operator accepted the agent's key");
        let binding = KeyBinding {
            state: KeyState::Trusted,
            key: Some(new),
            pending: None,
        };
        // What the agent said under its new key, refused until now.
        let held = inner.held.remove(id);
        if let Some(a) = inner.agents.get_mut(id) {
            if let Some((status, seen)) = held.filter(|(s, _)| s.key == binding.key) {
                let first = a.first_seen_ms;
                *a = Agent::from_status(&status, seen);
                a.first_seen_ms = first;
            }
            a.key = binding;
        }
        inner.changed(id);
        true
    }

    /// Forgets a decommissioned agent: gone from the registry (the store row
    /// follows, see [`Registry::keep`]). Returns it, or `None` if unknown.
    pub fn forget(&self, id: &str) -> Option<Agent> {
        let mut inner = self.write();
        let agent = inner.agents.remove(id)?;
        inner.keys.remove(id);
        inner.json.remove(id);
        inner.held.remove(id);
        inner.dirty.remove(id);
        Some(agent)
    }

    /// Marks agents offline whose heartbeats stopped.
    pub fn sweep(&self, now: u64) {
        let mut gone = Vec::new();
        {
            let mut inner = self.write();
            for a in inner.agents.values_mut() {
                let limit = a.heartbeat_s.saturating_mul(STALE_HEARTBEATS * 1000);
                if a.online && a.heartbeat_s > 0 && now.saturating_sub(a.last_seen_ms) > limit {
                    a.online = false;
                    gone.push((a.id.clone(), a.name.clone()));
                }
            }
            for (id, _) in &gone {
                inner.changed(id);
            }
        }
        for (id, name) in gone {
            tracing::info!(%id, "agent silent for {STALE_HEARTBEATS} heartbeats: offline");
            self.announce(&id, &name, false, now);
            let _ = self.offline_tx.send(id);
        }
    }

    /// How many agents are online and offline.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.read();
        let online = inner.agents.values().filter(|a| a.online).count();
        (online, inner.agents.len() - online)
    }

    /// One agent by id.
    pub fn get(&self, id: &str) -> Option<Agent> {
        self.read().agents.get(id).cloned()
    }

    /// Is the agent known and online?
    pub fn is_online(&self, id: &str) -> bool {
        self.read().agents.get(id).is_some_and(|a| a.online)
    }

    /// Agents matching `filter` (all with `None`), ordered by name then id;
    /// with `online_only`, only those online AND trusted (their key bound:
    /// the only agents whose results the server accepts).
    pub fn select(&self, filter: Option<&Filter>, online_only: bool) -> Vec<Agent> {
        let mut v: Vec<Agent> = self
            .read()
            .agents
            .values()
            .filter(|a| !online_only || (a.online && a.key.state == KeyState::Trusted))
            .filter(|a| filter.is_none_or(|f| f.matches(*a)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// The JSON array of the agents matching `filter` and `online` (either
    /// when `None`), ordered by name then id, from `offset` on, at most
    /// `limit` of them: what `GET /api/agents` returns, built from each
    /// agent's cached JSON. Also returns how many matched in all.
    pub fn select_json(
        &self,
        filter: Option<&Filter>,
        online: Option<bool>,
        offset: usize,
        limit: usize,
    ) -> (String, usize) {
        let inner = self.read();
        let mut v: Vec<&Agent> = inner
            .agents
            .values()
            .filter(|a| online.is_none_or(|o| a.online == o))
            .filter(|a| filter.is_none_or(|f| f.matches(*a)))
            .collect();
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        let total = v.len();
        let parts: Vec<&str> = v
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|a| inner.json.get(&a.id).map(|j| &**j))
            .collect();
        let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(p);
        }
        out.push(']');
        (out, total)
    }

    /// The agent with this id, or else the one agent with this name.
    pub fn resolve(&self, id_or_name: &str) -> Result<Agent, ResolveError> {
        let inner = self.read();
        if let Some(a) = inner.agents.get(id_or_name) {
            return Ok(a.clone());
        }
        let named: Vec<&Agent> = inner
            .agents
            .values()
            .filter(|a| a.name == id_or_name)
            .collect();
        match named.as_slice() {
            [] => Err(ResolveError::Unknown(id_or_name.to_owned())),
            [one] => Ok((*one).clone()),
            many => {
                let mut ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
                ids.sort_unstable();
                Err(ResolveError::Ambiguous {
                    name: id_or_name.to_owned(),
                    ids: ids.join(", "),
                })
            }
        }
    }

    /// Number of agents known.
    pub fn len(&self) -> usize {
        self.read().agents.len()
    }

    /// No agent known?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_dirty(&self) -> Vec<Agent> {
        let mut inner = self.write();
        let dirty = std::mem::take(&mut inner.dirty);
        dirty
            .iter()
            .filter_map(|id| inner.agents.get(id).cloned())
            .collect()
    }

    /// Writes changed agents to the store every [`FLUSH_EVERY`] (and once
    /// more when stopping); sweeps for silent agents every few seconds.
    pub async fn keep(self, store: Store, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        let mut n = 0u64;
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = shutdown.cancelled() => true,
            };
            n += 1;
            if n.is_multiple_of(10) {
                self.sweep(now_ms());
            }
            let dirty = self.take_dirty();
            if !dirty.is_empty()
                && let Err(e) = store.upsert_agents(&dirty).await
            {
                tracing::error!(error = %e, count = dirty.len(), "cannot store agents; will retry");
                let mut inner = self.write();
                for a in dirty {
                    inner.dirty.insert(a.id);
                }
            } else if !dirty.is_empty() {
                // An agent forgotten while this batch was being written:
                // its row must not come back.
                let gone: Vec<String> = {
                    let inner = self.read();
                    dirty
                        .into_iter()
                        .filter(|a| !inner.agents.contains_key(&a.id))
                        .map(|a| a.id)
                        .collect()
                };
                if !gone.is_empty()
                    && let Err(e) = store.delete_agents(&gone).await
                {
                    tracing::error!(error = %e, "cannot delete forgotten agents");
                }
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agent ids as agents make them (UUIDs).
    const A: &str = "0000000a-0000-4000-8000-00000000000a";
    const B: &str = "0000000b-0000-4000-8000-00000000000b";

    fn agent(id: &str, name: &str, online: bool, os: &str) -> Agent {
        let mut facts = bot_proto::envelope::Facts::new();
        facts.insert("os".into(), serde_json::Value::from(os));
        Agent {
            id: id.into(),
            name: name.into(),
            hostname: name.into(),
            ips: vec!["10.0.0.1".into()],
            version: "0.1.0".into(),
            online,
            facts,
            tags: vec!["web".into()],
            pools: vec![],
            started_ms: 1,
            heartbeat_s: 30,
            first_seen_ms: 2,
            last_seen_ms: 3,
            key: KeyBinding::default(),
            measure: None,
        }
    }

    #[test]
    fn cached_json_lists_what_select_returns() {
        let (r, _rx) = Registry::new(
            vec![
                agent("3", "web2", true, "linux"),
                agent("1", "web1", true, "linux"),
                agent("2", "db1", false, "freebsd"),
            ],
            true,
        );
        let f = bot_proto::filter::parse("os=linux").expect("filter");
        for (filter, online) in [
            (None, None),
            (Some(&f), None),
            (None, Some(true)),
            (None, Some(false)),
        ] {
            let (json, total) = r.select_json(filter, online, 0, usize::MAX);
            let listed: Vec<Agent> = serde_json::from_str(&json).expect("valid JSON");
            let mut expected = r.select(filter, false);
            expected.retain(|a| online.is_none_or(|o| a.online == o));
            assert_eq!(total, expected.len());
            assert_eq!(listed, expected);
        }
        assert_eq!(r.select_json(Some(&f), Some(false), 0, 10).0, "[]");
        // Pages: in order, the total counts them all.
        let (page, total) = r.select_json(None, None, 1, 1);
        let page: Vec<Agent> = serde_json::from_str(&page).expect("valid JSON");
        assert_eq!((page.len(), page[0].name.as_str(), total), (1, "web1", 3));
    }

    #[test]
    fn names_resolve_unless_ambiguous() {
        let (r, _rx) = Registry::new(
            vec![
                agent("1", "web1", true, "linux"),
                agent("2", "dup", true, "linux"),
                agent("3", "dup", true, "linux"),
            ],
            true,
        );
        assert_eq!(r.resolve("web1").map(|a| a.id), Ok("1".to_owned()));
        assert_eq!(r.resolve("2").map(|a| a.id), Ok("2".to_owned()));
        assert!(matches!(
            r.resolve("dup"),
            Err(ResolveError::Ambiguous { .. })
        ));
        assert!(matches!(r.resolve("nope"), Err(ResolveError::Unknown(_))));
    }

    #[test]
    fn silent_agents_go_offline_and_are_announced() {
        let (r, mut rx) = Registry::new(vec![agent("1", "web1", true, "linux")], true);
        r.sweep(3 + 30 * STALE_HEARTBEATS * 1000);
        assert!(r.is_online("1"), "not yet past the limit");
        r.sweep(4 + 30 * STALE_HEARTBEATS * 1000);
        assert!(!r.is_online("1"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("1"));
    }

    /// A signed status of agent `id` with `key`, as an agent makes it.
    fn status(id: &str, key: &bot_auth::SecretKey, sign: bool) -> Vec<u8> {
        let mut st = Status {
            id: id.into(),
            name: format!("n{id}"),
            hostname: "h".into(),
            ips: vec![],
            version: "0.1.0".into(),
            online: true,
            facts: Default::default(),
            tags: vec![],
            pools: vec![],
            started_ms: 1,
            heartbeat_s: 30,
            created_ms: 1,
            measure: None,
            key: Some(key.public().to_string()),
            sig: None,
        };
        if sign {
            st.sig = Some(bot_auth::sign::detached(key, &st.signing_bytes()));
        }
        st.encode()
    }

    fn reply(id: &str, key: &bot_auth::SecretKey) -> Reply {
        let mut r = Reply {
            request_id: "r1".into(),
            agent_id: id.into(),
            agent_name: format!("n{id}"),
            sender: id.into(),
            created_ms: 1,
            nonce: "0123456789abcdef".into(),
            status: bot_proto::ReplyStatus::Ok,
            data: serde_json::Value::Null,
            error: None,
            received_ms: 1,
            duration_ms: 1,
            sig: None,
        };
        r.sig = Some(bot_auth::sign::detached(key, &r.signing_bytes()));
        r
    }

    #[test]
    fn keys_bind_on_first_sight_and_a_changed_key_is_refused_until_accepted() {
        let (r, _rx) = Registry::new(vec![], true);
        let k1 = bot_auth::SecretKey::generate().expect("key");
        let k2 = bot_auth::SecretKey::generate().expect("key");
        r.on_status(A, &status(A, &k1, false));
        assert!(r.get(A).is_none(), "an unsigned status is ignored");
        r.on_status(A, &status(A, &k1, true));
        let a = r.get(A).expect("known");
        assert_eq!(a.key.state, KeyState::Trusted);
        assert_eq!(r.verify_reply(&reply(A, &k1)), Ok(()));
        assert!(r.verify_reply(&reply(A, &k2)).is_err(), "wrong key");
        assert_eq!(r.select(None, true).len(), 1);
        // Another key for the same id: alarm, refused, nothing else changes.
        r.on_status(A, &status(A, &k2, true));
        let a = r.get(A).expect("known");
        assert_eq!(a.key.state, KeyState::Changed);
        assert_eq!(a.key.key, Some(k1.public().to_string()));
        assert_eq!(a.key.pending, Some(k2.public().to_string()));
        assert!(
            r.verify_reply(&reply(A, &k1)).is_err(),
            "refused while changed"
        );
        assert!(r.verify_reply(&reply(A, &k2)).is_err());
        assert!(r.select(None, true).is_empty(), "no task goes to it");
        // The operator accepts the new key.
        assert!(r.accept(A));
        assert_eq!(r.verify_reply(&reply(A, &k2)), Ok(()));
        assert!(!r.accept(A), "nothing pending any more");
    }

    #[test]
    fn a_status_whose_id_is_not_an_agent_id_is_ignored() {
        let (r, _rx) = Registry::new(vec![], true);
        let k = bot_auth::SecretKey::generate().expect("key");
        r.on_status("not-a-uuid", &status("not-a-uuid", &k, true));
        assert!(r.get("not-a-uuid").is_none());
        r.on_status(A, &status(A, &k, true));
        assert!(r.get(A).is_some());
    }

    #[test]
    fn accepting_a_changed_key_applies_what_the_agent_said_under_it() {
        let (r, _rx) = Registry::new(vec![], true);
        let k1 = bot_auth::SecretKey::generate().expect("key");
        let k2 = bot_auth::SecretKey::generate().expect("key");
        r.on_status(A, &status(A, &k1, true));
        // The old agent stops cleanly (offline), the new one starts with k2.
        let mut offline: Status = Status::decode(&status(A, &k1, false)).expect("decode");
        offline.online = false;
        offline.sig = Some(bot_auth::sign::detached(&k1, &offline.signing_bytes()));
        r.on_status(A, &offline.encode());
        assert!(!r.get(A).expect("known").online);
        r.on_status(A, &status(A, &k2, true));
        assert!(!r.get(A).expect("known").online, "refused while changed");
        assert!(r.accept(A));
        let a = r.get(A).expect("known");
        assert!(a.online, "the held online status applies on accept");
        assert_eq!(a.key.key, Some(k2.public().to_string()));
        assert_eq!(r.select(None, true).len(), 1, "tasks go to it again");
    }

    #[test]
    fn without_auto_accept_new_agents_wait_for_an_operator() {
        let (r, _rx) = Registry::new(vec![], false);
        let k = bot_auth::SecretKey::generate().expect("key");
        r.on_status(B, &status(B, &k, true));
        assert_eq!(r.get(B).expect("known").key.state, KeyState::Pending);
        assert!(r.verify_reply(&reply(B, &k)).is_err());
        assert!(r.accept(B));
        assert_eq!(r.verify_reply(&reply(B, &k)), Ok(()));
    }
}
