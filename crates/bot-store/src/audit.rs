//! The server's audit trail: appended in batches, read newest last with
//! filters (`GET /api/audit`).

use bot_proto::api::AuditRecord;
use sqlx::AssertSqlSafe;

use crate::rows::{self, Fields, MAX_BINDS, Reader};
use crate::{Store, StoreError};

const COLUMNS: &str =
    "id, time_ms, event, token, key, agent, request_id, action, args_sha256, detail";
const NCOLS: usize = 10;

/// Most records one query returns.
pub const MAX_AUDIT_LIST: u32 = 10_000;

/// Which audit records to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records at or after this time (unix ms).
    pub since_ms: Option<u64>,
    /// Only records of this API token name or key.
    pub key: Option<String>,
    /// Only records about this agent id.
    pub agent: Option<String>,
    /// At most this many (the oldest first from `since`), ≤ 10,000.
    pub limit: Option<u32>,
}

impl Store {
    /// Appends `records` in one transaction.
    pub async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let per_chunk = MAX_BINDS / NCOLS;
        let mut tx = self.begin_write().await?;
        for chunk in records.chunks(per_chunk) {
            let sql = format!(
                "INSERT INTO audit ({COLUMNS}) VALUES {}",
                rows::values(self.backend, NCOLS, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                let f = Fields {
                    kind: "audit record",
                    id: &r.id,
                    seq: None,
                };
                q = q
                    .bind(r.id.as_str())
                    .bind(f.int(r.time_ms, "time_ms")?)
                    .bind(r.event.as_str())
                    .bind(r.token.clone())
                    .bind(r.key.clone())
                    .bind(r.agent.clone())
                    .bind(r.request_id.clone())
                    .bind(r.action.clone())
                    .bind(r.args_sha256.clone())
                    .bind(r.detail.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Audit records matching `query`, oldest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = query.limit.unwrap_or(1000).min(MAX_AUDIT_LIST);
        let since = Fields {
            kind: "audit query",
            id: "since",
            seq: None,
        }
        .int(query.since_ms.unwrap_or(0), "since")?;
        let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE time_ms >= $2");
        let mut n = 2;
        if query.key.is_some() {
            n += 1;
            sql += &format!(" AND (token = ${n} OR key = ${n})");
        }
        if query.agent.is_some() {
            n += 1;
            sql += &format!(" AND agent = ${n}");
        }
        sql += " ORDER BY time_ms, id LIMIT $1";
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .bind(since);
        if let Some(k) = &query.key {
            q = q.bind(k.as_str());
        }
        if let Some(a) = &query.agent {
            q = q.bind(a.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let mut r = Reader::new(row, "audit");
                let id = r.text("id")?;
                r.keyed(id.clone());
                Ok(AuditRecord {
                    id,
                    time_ms: r.uint("time_ms")?,
                    event: r.text("event")?,
                    token: r.opt_text("token")?,
                    key: r.opt_text("key")?,
                    agent: r.opt_text("agent")?,
                    request_id: r.opt_text("request_id")?,
                    action: r.opt_text("action")?,
                    args_sha256: r.opt_text("args_sha256")?,
                    detail: r.opt_text("detail")?,
                })
            })
            .collect()
    }
}
