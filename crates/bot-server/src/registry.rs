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

use bot_proto::api::Agent;
use bot_proto::filter::Filter;
use bot_proto::{Heartbeat, Status};
use bot_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::now_ms;

/// Missed heartbeat intervals after which a silent agent counts as offline.
pub const STALE_HEARTBEATS: u64 = 3;

/// How often dirty agents are written to the store.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The agents known, shared by the bus ingest, the engine and the API.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RwLock<Inner>>,
    offline_tx: mpsc::UnboundedSender<String>,
}

#[derive(Debug, Default)]
struct Inner {
    agents: HashMap<String, Agent>,
    /// Each agent's JSON as the API shows it, kept up to date with `agents`,
    /// so that listing 10,000 agents is a concatenation, not 10,000
    /// serialisations.
    json: HashMap<String, Arc<str>>,
    dirty: HashSet<String>,
}

impl Inner {
    /// Records that `id` changed: to be stored, and its JSON redone.
    fn changed(&mut self, id: &str) {
        if let Some(a) = self.agents.get(id) {
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
    pub fn new(agents: Vec<Agent>) -> (Registry, mpsc::UnboundedReceiver<String>) {
        let (offline_tx, offline_rx) = mpsc::unbounded_channel();
        let mut inner = Inner {
            agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
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
            },
            offline_rx,
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A status message arrived on `bot/v1/status/<topic_id>`.
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
        let now = now_ms();
        let went_offline = {
            let mut inner = self.write();
            let went_offline;
            match inner.agents.get_mut(&status.id) {
                Some(known) => {
                    went_offline = known.online && !status.online;
                    let first = known.first_seen_ms;
                    *known = Agent::from_status(&status, now);
                    known.first_seen_ms = first;
                }
                None => {
                    went_offline = !status.online;
                    inner
                        .agents
                        .insert(status.id.clone(), Agent::from_status(&status, now));
                }
            }
            inner.changed(&status.id);
            went_offline
        };
        if went_offline {
            let _ = self.offline_tx.send(status.id);
        }
    }

    /// A heartbeat arrived.
    pub fn on_heartbeat(&self, payload: &[u8]) {
        let Ok(hb) = Heartbeat::decode(payload) else {
            return;
        };
        let now = now_ms();
        let mut inner = self.write();
        if let Some(a) = inner.agents.get_mut(&hb.id) {
            a.last_seen_ms = a.last_seen_ms.max(now);
            let id = a.id.clone();
            inner.changed(&id);
        }
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
                    gone.push(a.id.clone());
                }
            }
            for id in &gone {
                inner.changed(id);
            }
        }
        for id in gone {
            tracing::info!(%id, "agent silent for {STALE_HEARTBEATS} heartbeats: offline");
            let _ = self.offline_tx.send(id);
        }
    }

    /// One agent by id.
    pub fn get(&self, id: &str) -> Option<Agent> {
        self.read().agents.get(id).cloned()
    }

    /// Is the agent known and online?
    pub fn is_online(&self, id: &str) -> bool {
        self.read().agents.get(id).is_some_and(|a| a.online)
    }

    /// Agents matching `filter` (all with `None`), online only if asked,
    /// ordered by name then id.
    pub fn select(&self, filter: Option<&Filter>, online_only: bool) -> Vec<Agent> {
        let mut v: Vec<Agent> = self
            .read()
            .agents
            .values()
            .filter(|a| !online_only || a.online)
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
        }
    }

    #[test]
    fn cached_json_lists_what_select_returns() {
        let (r, _rx) = Registry::new(vec![
            agent("3", "web2", true, "linux"),
            agent("1", "web1", true, "linux"),
            agent("2", "db1", false, "freebsd"),
        ]);
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
        let (r, _rx) = Registry::new(vec![
            agent("1", "web1", true, "linux"),
            agent("2", "dup", true, "linux"),
            agent("3", "dup", true, "linux"),
        ]);
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
        let (r, mut rx) = Registry::new(vec![agent("1", "web1", true, "linux")]);
        r.sweep(3 + 30 * STALE_HEARTBEATS * 1000);
        assert!(r.is_online("1"), "not yet past the limit");
        r.sweep(4 + 30 * STALE_HEARTBEATS * 1000);
        assert!(!r.is_online("1"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("1"));
    }
}
