//! Tasks and their targets: a task is inserted with all its targets at once,
//! then changed by batches of full-row updates ([`Change`]) in one
//! transaction each. Lists carry per-task counts of targets by state,
//! computed by the database (GROUP BY over the `(task_id, state)` index),
//! never by loading targets.

use bot_proto::api::{TargetCounts, TargetRun, TargetState, Task, TaskState, TaskSummary};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

use crate::rows::{self, Fields, MAX_BINDS, Reader};
use crate::{Store, StoreError};

const TASK_COLUMNS: &str = "id, state, action, args, filter, pool, timeout_ms, parallel, \
     fail_count, fail_rate, retry_of, created_by, created_ms, started_ms, finished_ms, reason";
const TASK_NCOLS: usize = 16;

const TARGET_COLUMNS: &str = "task_id, seq, agent_id, agent_name, state, request_id, \
     request_created_ms, exit_code, signal, stdout, stderr, error, data, started_ms, finished_ms";
const TARGET_NCOLS: usize = 15;

/// Full-row updates, binding in [`TASK_COLUMNS`] / [`TARGET_COLUMNS`] order.
const UPDATE_TASK: &str = "UPDATE tasks SET state = $2, action = $3, args = $4, filter = $5, \
     pool = $6, timeout_ms = $7, parallel = $8, fail_count = $9, fail_rate = $10, \
     retry_of = $11, created_by = $12, created_ms = $13, started_ms = $14, finished_ms = $15, \
     reason = $16 WHERE id = $1";
const UPDATE_TARGET: &str = "UPDATE targets SET agent_id = $3, agent_name = $4, state = $5, \
     request_id = $6, request_created_ms = $7, exit_code = $8, signal = $9, stdout = $10, \
     stderr = $11, error = $12, data = $13, started_ms = $14, finished_ms = $15 \
     WHERE task_id = $1 AND seq = $2";

/// The most tasks one list returns.
const MAX_LIST: u32 = 1000;

/// One change in a batch given to [`Store::apply`]: the whole new row.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The task's row (keyed by its id).
    Task(Task),
    /// A target's row (keyed by task id and seq).
    Target(TargetRun),
}

/// Which tasks [`Store::tasks`] lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// At most this many (default and cap: 1000).
    pub limit: Option<u32>,
}

type Q<'q> = Query<'q, Any, AnyArguments>;

impl Store {
    /// Inserts `task` and its `targets` in one transaction (targets in
    /// multi-row statements). Every target must belong to `task`.
    pub async fn insert_task(&self, task: &Task, targets: &[TargetRun]) -> Result<(), StoreError> {
        if let Some(t) = targets.iter().find(|t| t.task_id != task.id) {
            return Err(StoreError::Invalid {
                what: format!(
                    "target #{} of task {}: it belongs to task {}",
                    t.seq, task.id, t.task_id
                ),
            });
        }
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) VALUES {}",
            rows::values(self.backend, TASK_NCOLS, 1)
        );
        bind_task(sqlx::query(AssertSqlSafe(sql)), task)?
            .execute(&mut *tx)
            .await?;
        let per_chunk = MAX_BINDS / TARGET_NCOLS;
        for chunk in targets.chunks(per_chunk) {
            let sql = format!(
                "INSERT INTO targets ({TARGET_COLUMNS}) VALUES {}",
                rows::values(self.backend, TARGET_NCOLS, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == per_chunk);
            for t in chunk {
                q = bind_target(q, t)?;
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Applies `changes` in one transaction, in order. A change of a row
    /// that does not exist fails the whole batch ([`StoreError::Missing`]):
    /// nothing of it is written.
    pub async fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for change in changes {
            let q = match change {
                Change::Task(task) => bind_task(sqlx::query(UPDATE_TASK), task)?,
                Change::Target(t) => bind_target(sqlx::query(UPDATE_TARGET), t)?,
            };
            if q.execute(&mut *tx).await?.rows_affected() == 0 {
                let what = match change {
                    Change::Task(task) => format!("task {}", task.id),
                    Change::Target(t) => format!("target #{} of task {}", t.seq, t.task_id),
                };
                return Err(StoreError::Missing { what });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Tasks newest first (by creation time, then id), with their counts of
    /// targets by state.
    /// How many tasks are in each state (states with none left out).
    pub async fn task_counts(&self) -> Result<Vec<(TaskState, u64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let r = crate::rows::Reader::new(row, "tasks");
            let state: TaskState = r.parse("state")?;
            out.push((state, r.uint("n")?));
        }
        Ok(out)
    }

    pub async fn tasks(&self, query: &TaskQuery) -> Result<Vec<TaskSummary>, StoreError> {
        let limit = query.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
        let filter = if query.state.is_some() {
            "WHERE state = $2"
        } else {
            ""
        };
        // One statement, so the counts are of the listed rows' snapshot.
        let sql = format!(
            "WITH page AS (\
                 SELECT id FROM tasks {filter} ORDER BY created_ms DESC, id DESC LIMIT $1\
             ) \
             SELECT t.*, c.state AS target_state, c.n AS target_count \
             FROM tasks t \
             JOIN page ON page.id = t.id \
             LEFT JOIN (\
                 SELECT task_id, state, COUNT(*) AS n FROM targets \
                 WHERE task_id IN (SELECT id FROM page) GROUP BY task_id, state\
             ) c ON c.task_id = t.id \
             ORDER BY t.created_ms DESC, t.id DESC"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(i64::from(limit));
        if let Some(state) = query.state {
            q = q.bind(state.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out: Vec<TaskSummary> = Vec::new();
        for row in &rows {
            let mut r = Reader::new(row, "tasks");
            let id = r.text("id")?;
            r.keyed(id.clone());
            if out.last().is_none_or(|s| s.task.id != id) {
                out.push(TaskSummary {
                    task: read_task(row)?,
                    counts: TargetCounts::default(),
                });
            }
            if let (Some(summary), Some(state)) = (out.last_mut(), r.opt_text("target_state")?) {
                let state: TargetState =
                    state.parse().map_err(|e: String| StoreError::Corrupt {
                        what: format!("targets of task {id} column state: {e}"),
                    })?;
                add(&mut summary.counts, state, r.uint("target_count")?);
            }
        }
        Ok(out)
    }

    /// The task `id`, if it exists.
    pub async fn task(&self, id: &str) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(read_task).transpose()
    }

    /// Ids of tasks that start with `prefix` (lowercase hex digits only,
    /// else none), at most `limit`, in order.
    pub async fn task_ids_with_prefix(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(Vec::new());
        }
        // Hex digits only: nothing in the pattern is a LIKE wildcard.
        let rows = sqlx::query("SELECT id FROM tasks WHERE id LIKE $1 ORDER BY id LIMIT $2")
            .bind(format!("{prefix}%"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "id").map_err(StoreError::from))
            .collect()
    }

    /// The targets of task `task_id`, in rollout order (none if the task
    /// does not exist).
    pub async fn targets(&self, task_id: &str) -> Result<Vec<TargetRun>, StoreError> {
        let sql = format!("SELECT {TARGET_COLUMNS} FROM targets WHERE task_id = $1 ORDER BY seq");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_target).collect()
    }

    /// The task `id` with its targets, read in one snapshot (a read
    /// transaction: REPEATABLE READ on PostgreSQL, SQLite's WAL snapshot),
    /// so the task's state always agrees with its targets' even while the
    /// engine commits.
    pub async fn task_detail(
        &self,
        id: &str,
    ) -> Result<Option<(Task, Vec<TargetRun>)>, StoreError> {
        let mut tx = match self.backend {
            crate::Backend::Sqlite => self.pool.begin_with("BEGIN DEFERRED").await?,
            crate::Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        };
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(task) = row.as_ref().map(read_task).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let sql = format!("SELECT {TARGET_COLUMNS} FROM targets WHERE task_id = $1 ORDER BY seq");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let targets = rows
            .iter()
            .map(read_target)
            .collect::<Result<Vec<_>, _>>()?;
        tx.rollback().await?;
        Ok(Some((task, targets)))
    }

    /// Tasks still WAITING or RUNNING (to resume after a restart), oldest
    /// first.
    pub async fn unfinished_tasks(&self) -> Result<Vec<Task>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ($1, $2) ORDER BY created_ms, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(TaskState::Waiting.as_str())
            .bind(TaskState::Running.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_task).collect()
    }
}

/// Adds `n` targets in `state` to `counts`.
fn add(counts: &mut TargetCounts, state: TargetState, n: u32) {
    counts.total += n;
    let slot = match state {
        TargetState::Waiting => &mut counts.waiting,
        TargetState::Running => &mut counts.running,
        TargetState::Succeeded => &mut counts.succeeded,
        TargetState::Failed => &mut counts.failed,
        TargetState::TimedOut => &mut counts.timed_out,
        TargetState::Skipped => &mut counts.skipped,
        TargetState::Lost => &mut counts.lost,
    };
    *slot += n;
}

/// Binds the columns of `task`, in [`TASK_COLUMNS`] order.
fn bind_task<'q>(q: Q<'q>, task: &'q Task) -> Result<Q<'q>, StoreError> {
    let f = Fields {
        kind: "task",
        id: &task.id,
        seq: None,
    };
    Ok(q.bind(task.id.as_str())
        .bind(task.state.as_str())
        .bind(task.action.as_str())
        .bind(f.json(&task.args, "args")?)
        .bind(task.filter.as_deref())
        .bind(task.pool.as_deref())
        .bind(f.int(task.timeout_ms, "timeout_ms")?)
        .bind(i64::from(task.parallel))
        .bind(task.fail_count)
        .bind(task.fail_rate)
        .bind(task.retry_of.as_deref())
        .bind(task.created_by.as_str())
        .bind(f.int(task.created_ms, "created_ms")?)
        .bind(f.opt_int(task.started_ms, "started_ms")?)
        .bind(f.opt_int(task.finished_ms, "finished_ms")?)
        .bind(task.reason.as_deref()))
}

/// Binds the columns of `t`, in [`TARGET_COLUMNS`] order.
fn bind_target<'q>(q: Q<'q>, t: &'q TargetRun) -> Result<Q<'q>, StoreError> {
    let f = Fields {
        kind: "target",
        id: &t.task_id,
        seq: Some(t.seq),
    };
    let data = t.data.as_ref().map(|d| f.json(d, "data")).transpose()?;
    Ok(q.bind(t.task_id.as_str())
        .bind(i64::from(t.seq))
        .bind(t.agent_id.as_str())
        .bind(t.agent_name.as_str())
        .bind(t.state.as_str())
        .bind(t.request_id.as_deref())
        .bind(f.opt_int(t.request_created_ms, "request_created_ms")?)
        .bind(t.exit_code)
        .bind(t.signal)
        .bind(t.stdout.as_str())
        .bind(t.stderr.as_str())
        .bind(t.error.as_deref())
        .bind(data)
        .bind(f.opt_int(t.started_ms, "started_ms")?)
        .bind(f.opt_int(t.finished_ms, "finished_ms")?))
}

fn read_task(row: &AnyRow) -> Result<Task, StoreError> {
    let mut r = Reader::new(row, "tasks");
    let id = r.text("id")?;
    r.keyed(id.clone());
    Ok(Task {
        id,
        state: r.parse("state")?,
        action: r.text("action")?,
        args: r.json("args")?,
        filter: r.opt_text("filter")?,
        pool: r.opt_text("pool")?,
        timeout_ms: r.uint("timeout_ms")?,
        parallel: r.uint("parallel")?,
        fail_count: r.i64("fail_count")?,
        fail_rate: r.f64("fail_rate")?,
        retry_of: r.opt_text("retry_of")?,
        created_by: r.text("created_by")?,
        created_ms: r.uint("created_ms")?,
        started_ms: r.opt_uint("started_ms")?,
        finished_ms: r.opt_uint("finished_ms")?,
        reason: r.opt_text("reason")?,
    })
}

fn read_target(row: &AnyRow) -> Result<TargetRun, StoreError> {
    let mut r = Reader::new(row, "targets");
    let task_id = r.text("task_id")?;
    let seq: u32 = r.uint("seq")?;
    r.keyed(format!("{task_id} #{seq}"));
    Ok(TargetRun {
        task_id,
        seq,
        agent_id: r.text("agent_id")?,
        agent_name: r.text("agent_name")?,
        state: r.parse("state")?,
        request_id: r.opt_text("request_id")?,
        request_created_ms: r.opt_uint("request_created_ms")?,
        exit_code: r.opt_i64("exit_code")?,
        signal: r.opt_i64("signal")?,
        stdout: r.text("stdout")?,
        stderr: r.text("stderr")?,
        error: r.opt_text("error")?,
        data: r.opt_json("data")?,
        started_ms: r.opt_uint("started_ms")?,
        finished_ms: r.opt_uint("finished_ms")?,
    })
}
