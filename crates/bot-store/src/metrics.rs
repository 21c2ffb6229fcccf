//! Monitoring data: each agent's wanted measuring settings, and samples.
//!
//! Samples are stored one row per agent per measuring round (`samples_raw`)
//! or per minute (`samples_1m`, the rollups), the values of every series of
//! the round in one blob (`data`): what a row holds is a *layout* (the list
//! of series: metric, labels, type), stored once in `metric_layouts` under a
//! 64-bit id derived from its text, so a row is its agent, its time, a
//! layout id and a few bytes per value. The server encodes and decodes the
//! blobs (`bot_server::metrics`); this module only moves them.

use sqlx::{AssertSqlSafe, Row};

use crate::rows::{self, Fields, MAX_BINDS, Reader};
use crate::{Store, StoreError};

/// An agent's wanted measuring settings, as the server stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfigRow {
    /// The agent.
    pub agent_id: String,
    /// Counts up from 1 with every change.
    pub revision: u64,
    /// Measuring on.
    pub enabled: bool,
    /// The interval, ms.
    pub interval_ms: u64,
    /// The collectors.
    pub collectors: Vec<String>,
    /// When it was last changed, unix ms.
    pub updated_ms: u64,
    /// Who changed it (an API token's name).
    pub updated_by: String,
}

/// Which sample table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleTable {
    /// One row per agent per measuring round (kept 24 h by default).
    Raw,
    /// One row per agent per minute: min, average and max of each series
    /// (kept 30 days by default).
    Minute,
}

impl SampleTable {
    fn name(self) -> &'static str {
        match self {
            SampleTable::Raw => "samples_raw",
            SampleTable::Minute => "samples_1m",
        }
    }
}

/// One stored row of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    /// The agent.
    pub agent_id: String,
    /// The round's (or the minute's) start, unix ms.
    pub time_ms: u64,
    /// The layout id of `data`.
    pub layout: i64,
    /// The values, encoded by the server.
    pub data: Vec<u8>,
}

const SAMPLE_COLS: usize = 4;

impl Store {
    /// The wanted settings of `agent_id`, if the server has any.
    pub async fn agent_config(&self, agent_id: &str) -> Result<Option<AgentConfigRow>, StoreError> {
        let row = sqlx::query(
            "SELECT agent_id, revision, enabled, interval_ms, collectors, updated_ms, updated_by \
             FROM agent_configs WHERE agent_id = $1",
        )
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(read_config).transpose()
    }

    /// Stores new wanted settings for `agent_id` at the next revision (1 for
    /// the first) and returns them. Two servers changing one agent at once
    /// get distinct revisions (the write lock / row lock orders them).
    pub async fn put_agent_config(
        &self,
        agent_id: &str,
        enabled: bool,
        interval_ms: u64,
        collectors: &[String],
        updated_by: &str,
        now_ms: u64,
    ) -> Result<AgentConfigRow, StoreError> {
        let f = Fields {
            kind: "agent config",
            id: agent_id,
            seq: None,
        };
        // One statement: the revision counts up atomically, even with two
        // servers on one PostgreSQL.
        let row = sqlx::query(
            "INSERT INTO agent_configs \
             (agent_id, revision, enabled, interval_ms, collectors, updated_ms, updated_by) \
             VALUES ($1, 1, $2, $3, $4, $5, $6) \
             ON CONFLICT (agent_id) DO UPDATE SET revision = agent_configs.revision + 1, \
             enabled = excluded.enabled, interval_ms = excluded.interval_ms, \
             collectors = excluded.collectors, updated_ms = excluded.updated_ms, \
             updated_by = excluded.updated_by \
             RETURNING revision",
        )
        .bind(agent_id)
        .bind(i64::from(enabled))
        .bind(f.int(interval_ms, "interval_ms")?)
        .bind(f.json(collectors, "collectors")?)
        .bind(f.int(now_ms, "updated_ms")?)
        .bind(updated_by)
        .fetch_one(&self.writer)
        .await?;
        let next: i64 = row.try_get("revision")?;
        Ok(AgentConfigRow {
            agent_id: agent_id.to_owned(),
            revision: u64::try_from(next).unwrap_or(0),
            enabled,
            interval_ms,
            collectors: collectors.to_vec(),
            updated_ms: now_ms,
            updated_by: updated_by.to_owned(),
        })
    }

    /// Forgets `agent_id`'s wanted settings; true if there were any.
    pub async fn delete_agent_config(&self, agent_id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM agent_configs WHERE agent_id = $1")
            .bind(agent_id)
            .execute(&self.writer)
            .await?
            .rows_affected()
            > 0)
    }

    /// Stores layouts (`id`, series text); those already stored are kept.
    pub async fn put_layouts(&self, layouts: &[(i64, String)]) -> Result<(), StoreError> {
        if layouts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in layouts.chunks(MAX_BINDS / 2) {
            let sql = format!(
                "INSERT INTO metric_layouts (id, series) VALUES {} ON CONFLICT (id) DO NOTHING",
                rows::values(self.backend, 2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, series) in chunk {
                q = q.bind(*id).bind(series.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The series text of each layout in `ids` that is stored.
    pub async fn layouts(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BINDS) {
            let list = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT id, series FROM metric_layouts WHERE id IN ({list})");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let r = Reader::new(&row, "metric_layouts");
                out.push((r.i64("id")?, r.text("series")?));
            }
        }
        Ok(out)
    }

    /// Inserts sample rows in one transaction, many rows per statement. A
    /// row already stored (same agent, time and layout) is kept as it was.
    pub async fn insert_samples(
        &self,
        table: SampleTable,
        rows_in: &[SampleRow],
    ) -> Result<(), StoreError> {
        if rows_in.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in rows_in.chunks(MAX_BINDS / SAMPLE_COLS) {
            let sql = format!(
                "INSERT INTO {} (agent_id, time_ms, layout, data) VALUES {} \
                 ON CONFLICT (agent_id, time_ms, layout) DO NOTHING",
                table.name(),
                rows::values(self.backend, SAMPLE_COLS, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                let f = Fields {
                    kind: "samples",
                    id: &r.agent_id,
                    seq: None,
                };
                q = q
                    .bind(r.agent_id.as_str())
                    .bind(f.int(r.time_ms, "time_ms")?)
                    .bind(r.layout)
                    .bind(r.data.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The rows of `agent_id` with `since_ms <= time_ms < until_ms`, oldest
    /// first, at most `limit`.
    pub async fn samples(
        &self,
        table: SampleTable,
        agent_id: &str,
        since_ms: u64,
        until_ms: u64,
        limit: u32,
    ) -> Result<Vec<SampleRow>, StoreError> {
        let sql = format!(
            "SELECT agent_id, time_ms, layout, data FROM {} \
             WHERE agent_id = $1 AND time_ms >= $2 AND time_ms < $3 \
             ORDER BY time_ms, layout LIMIT $4",
            table.name()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(agent_id)
            .bind(clamp(since_ms))
            .bind(clamp(until_ms))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| read_sample(r, table)).collect()
    }

    /// A page of [`Store::samples`]: at most `limit` rows after `after` (a
    /// row's time and layout; `None`: from `since_ms`), so that a long
    /// range is read a page at a time, never all at once.
    pub async fn samples_page(
        &self,
        table: SampleTable,
        agent_id: &str,
        since_ms: u64,
        until_ms: u64,
        after: Option<(u64, i64)>,
        limit: u32,
    ) -> Result<Vec<SampleRow>, StoreError> {
        let Some((t, layout)) = after else {
            return self
                .samples(table, agent_id, since_ms, until_ms, limit)
                .await;
        };
        let sql = format!(
            "SELECT agent_id, time_ms, layout, data FROM {} \
             WHERE agent_id = $1 AND time_ms < $2 AND (time_ms > $3 OR (time_ms = $3 AND layout > $4)) \
             ORDER BY time_ms, layout LIMIT $5",
            table.name()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(agent_id)
            .bind(clamp(until_ms))
            .bind(clamp(t))
            .bind(layout)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| read_sample(r, table)).collect()
    }

    /// Every agent's rows with `since_ms <= time_ms < until_ms` (the rollup
    /// job reads a minute at a time), ordered by agent and time.
    pub async fn samples_between(
        &self,
        table: SampleTable,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<SampleRow>, StoreError> {
        let sql = format!(
            "SELECT agent_id, time_ms, layout, data FROM {} \
             WHERE time_ms >= $1 AND time_ms < $2 ORDER BY agent_id, time_ms, layout",
            table.name()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(clamp(since_ms))
            .bind(clamp(until_ms))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| read_sample(r, table)).collect()
    }

    /// The oldest row's time in `table`, if any.
    pub async fn oldest_sample_ms(&self, table: SampleTable) -> Result<Option<u64>, StoreError> {
        let sql = format!("SELECT MIN(time_ms) AS t FROM {}", table.name());
        let t: Option<i64> = sqlx::query(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?
            .try_get("t")?;
        Ok(t.and_then(|t| u64::try_from(t).ok()))
    }

    /// Deletes the rows older than `before_ms`; returns how many went.
    pub async fn prune_samples(
        &self,
        table: SampleTable,
        before_ms: u64,
    ) -> Result<u64, StoreError> {
        let sql = format!("DELETE FROM {} WHERE time_ms < $1", table.name());
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(clamp(before_ms))
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}

fn clamp(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn read_config(row: &sqlx::any::AnyRow) -> Result<AgentConfigRow, StoreError> {
    let mut r = Reader::new(row, "agent_configs");
    let agent_id = r.text("agent_id")?;
    r.keyed(agent_id.clone());
    let collectors: Vec<String> =
        serde_json::from_str(&r.text("collectors")?).map_err(|e| StoreError::Corrupt {
            what: format!("agent_configs {agent_id} column collectors: {e}"),
        })?;
    let unsigned = |col: &str| -> Result<u64, StoreError> {
        let v = r.i64(col)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt {
            what: format!("agent_configs {agent_id} column {col}: {v} is negative"),
        })
    };
    Ok(AgentConfigRow {
        revision: unsigned("revision")?,
        enabled: r.i64("enabled")? != 0,
        interval_ms: unsigned("interval_ms")?,
        collectors,
        updated_ms: unsigned("updated_ms")?,
        updated_by: r.text("updated_by")?,
        agent_id,
    })
}

fn read_sample(row: &sqlx::any::AnyRow, table: SampleTable) -> Result<SampleRow, StoreError> {
    let r = Reader::new(row, table.name());
    let time = r.i64("time_ms")?;
    let data: Vec<u8> = row.try_get("data").map_err(|e| StoreError::Corrupt {
        what: format!("{} column data: {e}", table.name()),
    })?;
    Ok(SampleRow {
        agent_id: r.text("agent_id")?,
        time_ms: u64::try_from(time).map_err(|_| StoreError::Corrupt {
            what: format!("{} column time_ms: {time} is negative", table.name()),
        })?,
        layout: r.i64("layout")?,
        data,
    })
}
