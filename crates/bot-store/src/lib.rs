//! The server's persistence: the agent registry, tasks with their targets, and
//! a few key/value settings, in SQLite or PostgreSQL.
//!
//! One implementation serves both back ends: every statement is written once,
//! in the SQL both understand (`$1` placeholders, `ON CONFLICT … DO UPDATE`,
//! TEXT / BIGINT / DOUBLE PRECISION columns, booleans as 0/1, JSON as TEXT),
//! and runs through sqlx's `Any` driver. No compile-time query macros: the
//! crate builds without a database.
//!
//! Layout:
//! - this file: [`Store`] (opening a URL, the pool, transactions), [`Backend`], [`StoreError`];
//! - `migrate.rs`: the embedded, versioned schema (`migrations/*.sql`) and its runner;
//! - `agents.rs`: the registry (upserts in batches, heartbeats, online/offline);
//! - `tasks.rs`: tasks and targets ([`Change`], [`TaskQuery`], counts in SQL);
//! - `settings.rs`: key/value settings;
//! - `rows.rs`: encoding fields into columns and reading rows back, checked.

mod agents;
mod audit;
mod metrics;
mod migrate;
mod rows;
mod schedules;
mod settings;
mod tasks;
mod webhooks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use audit::{AuditQuery, MAX_AUDIT_LIST};
pub use metrics::{AgentConfigRow, SampleRow, SampleTable};
pub use migrate::LATEST_VERSION;
pub use schedules::{RunOutcome, ScheduleRow};
pub use tasks::{Change, TaskQuery};
pub use webhooks::HookRow;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (WAL journal).
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL cannot be used (the URL is shown without its password).
    #[error("database URL {url}: {reason}")]
    BadUrl {
        /// The URL, password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting to the database failed.
    #[error("cannot open database {url}: {source}")]
    Connect {
        /// The URL, password replaced by `***`.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The database was written by a newer bot.
    #[error(
        "database schema version {found} is newer than this bot (knows up to {known}): upgrade bot"
    )]
    SchemaTooNew {
        /// The newest version recorded in the database.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// A migration failed (nothing of it was applied).
    #[error("database migration {version} ({description}) failed: {source}")]
    Migration {
        /// Its version.
        version: i64,
        /// What it does.
        description: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row cannot be decoded into its record.
    #[error("corrupt row in the database: {what}")]
    Corrupt {
        /// Which row and column, and why.
        what: String,
    },
    /// An update named a row that does not exist (the whole batch was rolled back).
    #[error("{what} does not exist")]
    Missing {
        /// Which row.
        what: String,
    },
    /// A value cannot be stored (a time beyond `i64::MAX`, a target of another task, …).
    #[error("cannot store {what}")]
    Invalid {
        /// Which value, and why.
        what: String,
    },
}

/// The store: connection pools to one database, migrated to
/// [`LATEST_VERSION`]. Cloning is cheap (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, writes too).
    pool: AnyPool,
    /// Every write. On SQLite, one connection: SQLite has one writer at a
    /// time anyway, and writers that queue here wait their turn in order,
    /// where writers on several connections each wait at most the busy
    /// timeout and then fail with "database is locked" (issue 12: a
    /// 100k-target task's insert outlasted it). On PostgreSQL, `pool`.
    writer: AnyPool,
    backend: Backend,
}

/// How long a write may wait for the SQLite writer: behind the largest
/// transaction (a 100,000-target task is inserted in one) with room to
/// spare; a write that waits longer fails with a pool timeout.
const SQLITE_WRITE_WAIT: Duration = Duration::from_secs(60);

/// The statements every new SQLite connection runs: durable enough with the
/// WAL journal (a power loss may lose the last commits, never corrupt
/// anything), writers wait for each other up to 5 s, references are
/// enforced. (The journal mode is a property of the file: set once, at open.)
const SQLITE_PRAGMAS: &str = "PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 5000; \
     PRAGMA foreign_keys = ON;";

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    ///
    /// - `sqlite:PATH` or `sqlite://PATH` (`sqlite:///abs/path` too): the file
    ///   is created if absent; its directory must exist. PATH is taken
    ///   literally (no percent-decoding).
    /// - `postgres://…` or `postgresql://…`: the database must exist. A
    ///   refused connection is retried for up to 10 s (a database starting
    ///   alongside the server).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let shown = redact(url);
        let (backend, connect_url) = if let Some(path) = sqlite_path(url) {
            (Backend::Sqlite, sqlite_connect_url(&shown, path)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::BadUrl {
                url: shown,
                reason: "unsupported database: give sqlite:PATH or postgres://USER@HOST/DB".into(),
            });
        };
        // sqlx's default, stated: a request waits this long for a connection.
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            });
        }
        let connect = |options: AnyPoolOptions| {
            let shown = shown.clone();
            let url = connect_url.clone();
            async move {
                options
                    .connect(&url)
                    .await
                    .map_err(|source| StoreError::Connect { url: shown, source })
            }
        };
        let pool = connect(options.clone()).await?;
        let writer = match backend {
            Backend::Sqlite => {
                connect(
                    options
                        .max_connections(1)
                        .acquire_timeout(SQLITE_WRITE_WAIT),
                )
                .await?
            }
            Backend::Postgres => pool.clone(),
        };
        if backend == Backend::Sqlite {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&pool)
                .await
                .map_err(|source| StoreError::Connect {
                    url: shown.clone(),
                    source,
                })?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    url = %shown,
                    journal_mode = %mode,
                    "SQLite could not switch to WAL: reads will wait for writes"
                );
            }
        }
        let store = Store {
            pool,
            writer,
            backend,
        };
        migrate::run(&store).await?;
        tracing::debug!(url = %shown, %backend, "database open");
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (waits for those in use to be returned).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Begins a transaction that will write, on the writer. SQLite takes
    /// the write lock at once (`BEGIN IMMEDIATE`), so a transaction never
    /// fails half-way because another process's writer got there first; it
    /// waits (busy timeout). Writers of this process queue for the writer.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }
}

/// The path of a `sqlite:` URL, if it is one.
fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

/// The URL sqlx opens for the SQLite file `path`: its directory checked and
/// made absolute, the file name percent-encoded (sqlx decodes it), created
/// if missing.
fn sqlite_connect_url(shown: &str, path: &str) -> Result<String, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: shown.to_owned(),
        reason,
    };
    if path.is_empty() || path.contains(":memory:") || path.contains('?') {
        return Err(bad(
            "give the path of a database file (no in-memory database, no ?options)".into(),
        ));
    }
    let path = Path::new(path);
    let Some(name) = path.file_name() else {
        return Err(bad(format!("{} is not a file name", path.display())));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = dir.canonicalize().map_err(|e| {
        bad(format!(
            "the directory {} does not exist or cannot be read: {e}",
            dir.display()
        ))
    })?;
    if !dir.is_dir() {
        return Err(bad(format!("{} is not a directory", dir.display())));
    }
    let full = dir.join(name);
    let Some(full) = full.to_str() else {
        return Err(bad(format!("{} is not UTF-8", full.display())));
    };
    let mut url = String::from("sqlite:");
    for c in full.chars() {
        match c {
            '%' | '?' | '#' | ' ' => url.push_str(&format!("%{:02X}", c as u32)),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// `url` with its password (in the user info or a `password=` parameter)
/// replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| auth_start + i);
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = auth_start..auth_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(userinfo.start + colon + 1..userinfo.end, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use sqlx::{AssertSqlSafe, Row};

    use super::*;

    #[tokio::test]
    async fn sqlite_connections_are_configured() -> Result<(), StoreError> {
        let dir = bot_testkit::TempDir::new("store-pragmas");
        let store = Store::open(&format!("sqlite:{}/p.db", dir.path().display())).await?;
        // Several connections at once: each ran the pragmas.
        let conns = [
            store.pool.acquire().await?,
            store.pool.acquire().await?,
            store.pool.acquire().await?,
        ];
        for mut conn in conns {
            for (pragma, expected) in [
                ("journal_mode", "wal"),
                ("synchronous", "1"),
                ("busy_timeout", "5000"),
                ("foreign_keys", "1"),
            ] {
                let row = sqlx::query(AssertSqlSafe(format!("PRAGMA {pragma}")))
                    .fetch_one(&mut *conn)
                    .await?;
                let value = row
                    .try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))?;
                assert_eq!(value, expected, "PRAGMA {pragma}");
            }
        }
        Ok(())
    }

    /// Issue 12: a write that comes while a long transaction holds the
    /// write lock waits for it, however long (here past the 5 s busy
    /// timeout), instead of failing with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_wait_behind_a_long_transaction() -> Result<(), StoreError> {
        let dir = bot_testkit::TempDir::new("store-writer");
        let store = Store::open(&format!("sqlite:{}/w.db", dir.path().display())).await?;
        store.set_setting("k", "before").await?;
        let mut tx = store.begin_write().await?;
        sqlx::query("UPDATE settings SET value = 'held' WHERE name = 'k'")
            .execute(&mut *tx)
            .await?;
        let other = store.clone();
        let waiting = tokio::spawn(async move { other.set_setting("k", "after").await });
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert!(!waiting.is_finished(), "the second write did not wait");
        // Reads go on meanwhile (WAL), and see the last commit.
        assert_eq!(store.setting("k").await?.as_deref(), Some("before"));
        tx.commit().await?;
        waiting.await.expect("join")?;
        assert_eq!(store.setting("k").await?.as_deref(), Some("after"));
        Ok(())
    }

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://bot:s3cr%40t@db:5432/bot"),
            "postgres://bot:***@db:5432/bot"
        );
        assert_eq!(redact("postgres://bot@db/bot"), "postgres://bot@db/bot");
        assert_eq!(
            redact("postgresql://db/bot?user=bot&password=x&sslmode=require"),
            "postgresql://db/bot?user=bot&password=***&sslmode=require"
        );
        assert_eq!(
            redact("sqlite:/var/lib/bot/bot.db"),
            "sqlite:/var/lib/bot/bot.db"
        );
    }

    #[test]
    fn sqlite_paths_are_made_absolute_and_encoded() {
        let dir = std::env::temp_dir();
        let url = sqlite_connect_url("x", &format!("{}/a b%?.db", dir.display()));
        assert!(url.is_err(), "a ? is refused: {url:?}");
        let url =
            sqlite_connect_url("x", &format!("{}/a b%.db", dir.display())).unwrap_or_default();
        let canon = dir.canonicalize().unwrap_or_default();
        assert_eq!(
            url,
            format!("sqlite:{}/a%20b%25.db?mode=rwc", canon.display())
        );
        assert!(matches!(
            sqlite_connect_url("x", "/nonexistent-dir/x.db"),
            Err(StoreError::BadUrl { reason, .. }) if reason.contains("/nonexistent-dir")
        ));
    }
}
