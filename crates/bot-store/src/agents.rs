//! The registry's rows: agents upserted from their status (in batches: a
//! fleet announces itself all at once when the server starts), touched by
//! heartbeats, marked offline by their last will.

use std::collections::HashMap;

use bot_proto::api::Agent;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use crate::rows::{self, Fields, MAX_BINDS, Reader};
use crate::{Store, StoreError};

const COLUMNS: &str = "id, name, hostname, ips, version, online, facts, tags, pools, \
     started_ms, heartbeat_s, first_seen_ms, last_seen_ms, key_state, key, pending_key";
const NCOLS: usize = 16;

/// On conflict everything is replaced but the id and `first_seen_ms`.
const UPSERT_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET \
     name = excluded.name, hostname = excluded.hostname, ips = excluded.ips, \
     version = excluded.version, online = excluded.online, facts = excluded.facts, \
     tags = excluded.tags, pools = excluded.pools, started_ms = excluded.started_ms, \
     heartbeat_s = excluded.heartbeat_s, last_seen_ms = excluded.last_seen_ms, \
     key_state = excluded.key_state, key = excluded.key, pending_key = excluded.pending_key";

/// `last_seen_ms` never goes back.
const LATEST_SEEN: &str = "CASE WHEN last_seen_ms > $2 THEN last_seen_ms ELSE $2 END";

impl Store {
    /// Deletes the agents `ids` (a decommissioned agent: `bot agents
    /// forget`); their tasks' targets keep their history. Returns how many
    /// rows went.
    pub async fn delete_agents(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut gone = 0;
        for id in ids {
            gone += sqlx::query("DELETE FROM agents WHERE id = $1")
                .bind(id)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(gone)
    }

    /// Inserts or updates `agent`; an update keeps the stored `first_seen_ms`.
    pub async fn upsert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.upsert_agents(std::slice::from_ref(agent)).await
    }

    /// Inserts or updates many agents in one transaction (multi-row
    /// statements). An id given twice is stored once: the last record, with
    /// the earliest `first_seen_ms`.
    pub async fn upsert_agents(&self, agents: &[Agent]) -> Result<(), StoreError> {
        if agents.is_empty() {
            return Ok(());
        }
        let agents = dedup(agents);
        let per_chunk = MAX_BINDS / NCOLS;
        let mut tx = self.begin_write().await?;
        for chunk in agents.chunks(per_chunk) {
            let sql = format!(
                "INSERT INTO agents ({COLUMNS}) VALUES {}{UPSERT_TAIL}",
                rows::values(self.backend, NCOLS, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == per_chunk);
            for &(a, first_seen_ms) in chunk {
                let f = Fields {
                    kind: "agent",
                    id: &a.id,
                    seq: None,
                };
                q = q
                    .bind(a.id.as_str())
                    .bind(a.name.as_str())
                    .bind(a.hostname.as_str())
                    .bind(f.json(&a.ips, "ips")?)
                    .bind(a.version.as_str())
                    .bind(i64::from(a.online))
                    .bind(f.json(&a.facts, "facts")?)
                    .bind(f.json(&a.tags, "tags")?)
                    .bind(f.json(&a.pools, "pools")?)
                    .bind(f.int(a.started_ms, "started_ms")?)
                    .bind(f.int(a.heartbeat_s, "heartbeat_s")?)
                    .bind(f.int(first_seen_ms, "first_seen_ms")?)
                    .bind(f.int(a.last_seen_ms, "last_seen_ms")?)
                    .bind(a.key.state.as_str())
                    .bind(a.key.key.clone())
                    .bind(a.key.pending.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A heartbeat: `last_seen_ms` = max(stored, `seen_ms`), online. False if
    /// `id` is unknown.
    pub async fn touch_agent(&self, id: &str, seen_ms: u64) -> Result<bool, StoreError> {
        let sql =
            format!("UPDATE agents SET online = 1, last_seen_ms = {LATEST_SEEN} WHERE id = $1");
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(seen(id, seen_ms)?)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks the agent online or offline (a status, a last will, a clean
    /// stop) as of `seen_ms` (`last_seen_ms` never goes back). False if `id`
    /// is unknown.
    pub async fn set_agent_online(
        &self,
        id: &str,
        online: bool,
        seen_ms: u64,
    ) -> Result<bool, StoreError> {
        let sql =
            format!("UPDATE agents SET online = $3, last_seen_ms = {LATEST_SEEN} WHERE id = $1");
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(seen(id, seen_ms)?)
            .bind(i64::from(online))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every agent, by name then id.
    pub async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM agents ORDER BY name, id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read).collect()
    }

    /// The agent `id`, if known.
    pub async fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(read).transpose()
    }
}

/// One record per id (PostgreSQL refuses to upsert a row twice in one
/// statement): the last one given, with the earliest `first_seen_ms`.
fn dedup(agents: &[Agent]) -> Vec<(&Agent, u64)> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(agents.len());
    let mut out: Vec<(&Agent, u64)> = Vec::with_capacity(agents.len());
    for a in agents {
        match at.get(a.id.as_str()) {
            Some(&i) => {
                let first = out[i].1.min(a.first_seen_ms);
                out[i] = (a, first);
            }
            None => {
                at.insert(&a.id, out.len());
                out.push((a, a.first_seen_ms));
            }
        }
    }
    out
}

/// `seen_ms` as a BIGINT.
fn seen(id: &str, seen_ms: u64) -> Result<i64, StoreError> {
    Fields {
        kind: "agent",
        id,
        seq: None,
    }
    .int(seen_ms, "seen_ms")
}

fn read(row: &AnyRow) -> Result<Agent, StoreError> {
    let mut r = Reader::new(row, "agents");
    let id = r.text("id")?;
    r.keyed(id.clone());
    Ok(Agent {
        id,
        name: r.text("name")?,
        hostname: r.text("hostname")?,
        ips: r.json("ips")?,
        version: r.text("version")?,
        online: r.bool("online")?,
        facts: r.json("facts")?,
        tags: r.json("tags")?,
        pools: r.json("pools")?,
        started_ms: r.uint("started_ms")?,
        heartbeat_s: r.uint("heartbeat_s")?,
        first_seen_ms: r.uint("first_seen_ms")?,
        last_seen_ms: r.uint("last_seen_ms")?,
        key: bot_proto::api::KeyBinding {
            state: r.parse("key_state")?,
            key: r.opt_text("key")?,
            pending: r.opt_text("pending_key")?,
        },
        // Not stored: the agent's retained status says it again.
        measure: None,
    })
}
