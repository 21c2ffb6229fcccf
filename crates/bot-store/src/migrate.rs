//! The schema, versioned: migrations embedded in the binary
//! (`migrations/NNNN_*.sql`), applied in order by [`run`] when a store opens,
//! each in its own transaction together with its row in
//! `bot_schema_migrations`.
//!
//! Servers starting at once on one database apply each migration once: on
//! PostgreSQL every step holds a transaction-scoped advisory lock; on SQLite
//! it holds the write lock (`BEGIN IMMEDIATE`). A database already migrated
//! further than this binary knows is refused, never written.

use sqlx::{Executor, Row};

use crate::{Backend, Store, StoreError};

/// One step of the schema.
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Append only: a released migration is never
/// edited (databases in the field already ran it).
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "agents, tasks, targets, settings",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "agents' signing keys",
        sql: include_str!("../migrations/0002_agent_keys.sql"),
    },
    Migration {
        version: 3,
        description: "the server's audit trail",
        sql: include_str!("../migrations/0003_audit.sql"),
    },
    Migration {
        version: 4,
        description: "fail_count counts the failures that fail a task",
        sql: include_str!("../migrations/0004_fail_count_reached.sql"),
    },
    Migration {
        version: 5,
        description: "measuring configs and samples",
        sql: include_str!("../migrations/0005_metrics.sql"),
    },
    Migration {
        version: 6,
        description: "schedules and check states",
        sql: include_str!("../migrations/0006_schedules_checks.sql"),
    },
    Migration {
        version: 7,
        description: "webhooks and deliveries",
        sql: include_str!("../migrations/0007_webhooks.sql"),
    },
];

/// The newest schema version this binary knows.
pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The PostgreSQL advisory lock taken while migrating ("botschem").
const LOCK_KEY: i64 = 0x626f_7473_6368_656d;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS bot_schema_migrations (\
     version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_ms BIGINT NOT NULL)";

/// Applies the migrations `store` has not seen, one transaction each.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    loop {
        let mut tx = store.begin_write().await?;
        if store.backend == Backend::Postgres {
            // `SELECT 1 FROM`: the function returns void, which no driver decodes.
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *tx)
                .await?;
        }
        tx.execute(CREATE_TABLE).await?;
        let current: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM bot_schema_migrations")
                .fetch_one(&mut *tx)
                .await?
                .try_get("v")?;
        let current = current.unwrap_or(0);
        if current > LATEST_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known: LATEST_VERSION,
            });
        }
        let Some(m) = MIGRATIONS.iter().find(|m| m.version > current) else {
            tx.commit().await?;
            return Ok(());
        };
        let failed = |source| StoreError::Migration {
            version: m.version,
            description: m.description,
            source,
        };
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(
            "INSERT INTO bot_schema_migrations (version, description, applied_ms) \
             VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.description)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(
            version = m.version,
            description = m.description,
            "database migrated"
        );
    }
}

/// Unix milliseconds now, as the database column type.
fn now_ms() -> i64 {
    i64::try_from(bot_proto::now_ms()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
        }
    }
}
