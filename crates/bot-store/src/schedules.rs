//! Schedules and check states.
//!
//! A schedule's run is claimed before it starts ([`Store::claim_run`]): one
//! `UPDATE … WHERE next_run_ms = <the due time seen>`, so of two servers (or
//! a server and its restarted self) exactly one starts each run. Check
//! states are upserted in batches ([`Store::put_check_states`]) with their
//! state changes appended to `check_changes` in the same transaction.

use bot_proto::api::{CheckChange, CheckStatus, NewSchedule, Schedule};
use sqlx::AssertSqlSafe;

use crate::rows::{Fields, Reader};
use crate::{Store, StoreError};

const SCHEDULE_COLUMNS: &str = "id, name, spec, created_by, created_ms, paused, next_run_ms, \
     last_run_ms, last_task_id, last_error, runs, skipped, missed";

/// A stored schedule: the API's view plus whether it is paused.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    /// The schedule.
    pub schedule: Schedule,
    /// Paused: no run is due.
    pub paused: bool,
}

/// How a run went, for [`Store::finish_run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// The task of the run (commands).
    pub task_id: Option<String>,
    /// What went wrong (`None`: the run started).
    pub error: Option<String>,
}

fn read_schedule(row: &sqlx::any::AnyRow) -> Result<ScheduleRow, StoreError> {
    let mut r = Reader::new(row, "schedules");
    let id = r.text("id")?;
    r.keyed(id.clone());
    let mut spec: NewSchedule = r.json("spec")?;
    spec.name = r.text("name")?;
    let paused = r.bool("paused")?;
    spec.paused = paused;
    Ok(ScheduleRow {
        schedule: Schedule {
            id,
            spec,
            created_by: r.text("created_by")?,
            created_ms: r.uint("created_ms")?,
            next_run_ms: r.opt_uint("next_run_ms")?,
            last_run_ms: r.opt_uint("last_run_ms")?,
            last_task_id: r.opt_text("last_task_id")?,
            last_error: r.opt_text("last_error")?,
            runs: r.uint("runs")?,
            skipped: r.uint("skipped")?,
            missed: r.uint("missed")?,
        },
        paused,
    })
}

fn read_check(row: &sqlx::any::AnyRow) -> Result<CheckStatus, StoreError> {
    let mut r = Reader::new(row, "check_states");
    let agent_id = r.text("agent_id")?;
    r.keyed(agent_id.clone());
    Ok(CheckStatus {
        agent_name: String::new(),
        check: r.text("check_name")?,
        state: r.text("state")?,
        code: r.uint("code")?,
        output: r.text("output")?,
        long_output: r.text("long_output")?,
        perfdata: r.text("perfdata")?,
        since_ms: r.uint("since_ms")?,
        updated_ms: r.uint("updated_ms")?,
        interval_ms: r.uint("interval_ms")?,
        stale: r.bool("stale")?,
        schedule_id: r.opt_text("schedule_id")?,
        agent_id,
    })
}

impl Store {
    /// Stores a new schedule; `Ok(false)` if the name is taken.
    pub async fn insert_schedule(
        &self,
        schedule: &Schedule,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let f = Fields {
            kind: "schedule",
            id: &schedule.id,
            seq: None,
        };
        let done = sqlx::query(
            "INSERT INTO schedules (id, name, spec, created_by, created_ms, paused, next_run_ms, \
             last_run_ms, last_task_id, last_error, runs, skipped, missed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, 0, 0, 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&schedule.id)
        .bind(&schedule.spec.name)
        .bind(f.json(&schedule.spec, "spec")?)
        .bind(&schedule.created_by)
        .bind(f.int(schedule.created_ms, "created_ms")?)
        .bind(i64::from(paused))
        .bind(f.opt_int(schedule.next_run_ms, "next_run_ms")?)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_schedule).collect()
    }

    /// One schedule by id or name.
    pub async fn schedule(&self, id_or_name: &str) -> Result<Option<ScheduleRow>, StoreError> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 OR name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(read_schedule).transpose()
    }

    /// Pauses (`next_run_ms` cleared) or resumes (`next_run_ms` set) a
    /// schedule; `Ok(false)` if there is no such schedule.
    pub async fn set_schedule_paused(
        &self,
        id: &str,
        paused: bool,
        next_run_ms: Option<u64>,
    ) -> Result<bool, StoreError> {
        let f = Fields {
            kind: "schedule",
            id,
            seq: None,
        };
        let done = sqlx::query("UPDATE schedules SET paused = $2, next_run_ms = $3 WHERE id = $1")
            .bind(id)
            .bind(i64::from(paused))
            .bind(f.opt_int(next_run_ms, "next_run_ms")?)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a schedule; `Ok(false)` if there was none.
    pub async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims the run due at `due_ms`: moves `next_run_ms` from `due_ms` to
    /// `next_ms`, and counts the run as started (`started`) or skipped, and
    /// `missed` runs. `Ok(false)`: somebody else claimed it (or the schedule
    /// was paused, changed or deleted meanwhile): do not run.
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_run(
        &self,
        id: &str,
        due_ms: u64,
        next_ms: u64,
        now_ms: u64,
        started: bool,
        missed: u64,
    ) -> Result<bool, StoreError> {
        let f = Fields {
            kind: "schedule",
            id,
            seq: None,
        };
        let sql = if started {
            "UPDATE schedules SET next_run_ms = $3, last_run_ms = $4, runs = runs + 1, \
             missed = missed + $5 WHERE id = $1 AND next_run_ms = $2 AND paused = 0"
        } else {
            "UPDATE schedules SET next_run_ms = $3, skipped = skipped + 1, \
             missed = missed + $5 WHERE id = $1 AND next_run_ms = $2 AND paused = 0"
        };
        let done = sqlx::query(sql)
            .bind(id)
            .bind(f.int(due_ms, "next_run_ms")?)
            .bind(f.int(next_ms, "next_run_ms")?)
            .bind(f.int(now_ms, "last_run_ms")?)
            .bind(f.int(missed, "missed")?)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how the last run went.
    pub async fn finish_run(&self, id: &str, outcome: &RunOutcome) -> Result<(), StoreError> {
        sqlx::query("UPDATE schedules SET last_task_id = $2, last_error = $3 WHERE id = $1")
            .bind(id)
            .bind(outcome.task_id.as_deref())
            .bind(outcome.error.as_deref())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Every check state (agent names left empty: the registry fills them).
    pub async fn check_states(&self) -> Result<Vec<CheckStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, check_name, state, code, output, long_output, perfdata, since_ms, \
             updated_ms, interval_ms, stale, schedule_id FROM check_states \
             ORDER BY agent_id, check_name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_check).collect()
    }

    /// Writes check states and their changes, in one transaction.
    pub async fn put_check_states(
        &self,
        states: &[CheckStatus],
        changes: &[CheckChange],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for s in states {
            let f = Fields {
                kind: "check state",
                id: &s.agent_id,
                seq: None,
            };
            sqlx::query(
                "INSERT INTO check_states (agent_id, check_name, state, code, output, \
                 long_output, perfdata, since_ms, updated_ms, interval_ms, stale, schedule_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (agent_id, check_name) DO UPDATE SET state = excluded.state, \
                 code = excluded.code, output = excluded.output, \
                 long_output = excluded.long_output, perfdata = excluded.perfdata, \
                 since_ms = excluded.since_ms, updated_ms = excluded.updated_ms, \
                 interval_ms = excluded.interval_ms, stale = excluded.stale, \
                 schedule_id = excluded.schedule_id",
            )
            .bind(&s.agent_id)
            .bind(&s.check)
            .bind(&s.state)
            .bind(i64::from(s.code))
            .bind(&s.output)
            .bind(&s.long_output)
            .bind(&s.perfdata)
            .bind(f.int(s.since_ms, "since_ms")?)
            .bind(f.int(s.updated_ms, "updated_ms")?)
            .bind(f.int(s.interval_ms, "interval_ms")?)
            .bind(i64::from(s.stale))
            .bind(s.schedule_id.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        for c in changes {
            let f = Fields {
                kind: "check change",
                id: &c.agent_id,
                seq: None,
            };
            sqlx::query(
                "INSERT INTO check_changes (agent_id, check_name, at_ms, from_state, to_state, \
                 output) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (agent_id, check_name, at_ms) DO NOTHING",
            )
            .bind(&c.agent_id)
            .bind(&c.check)
            .bind(f.int(c.at_ms, "at_ms")?)
            .bind(c.from.as_deref())
            .bind(&c.to)
            .bind(&c.output)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The state changes of one agent's check (or of all its checks),
    /// newest first, at most `limit`.
    pub async fn check_changes(
        &self,
        agent_id: &str,
        check: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CheckChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, check_name, at_ms, from_state, to_state, output \
             FROM check_changes WHERE agent_id = $1 AND ($2 IS NULL OR check_name = $2) \
             ORDER BY at_ms DESC LIMIT $3",
        )
        .bind(agent_id)
        .bind(check)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let r = Reader::new(row, "check_changes");
                Ok(CheckChange {
                    agent_id: r.text("agent_id")?,
                    check: r.text("check_name")?,
                    at_ms: r.uint("at_ms")?,
                    from: r.opt_text("from_state")?,
                    to: r.text("to_state")?,
                    output: r.text("output")?,
                })
            })
            .collect()
    }

    /// Deletes state changes older than `before_ms`; how many went.
    pub async fn prune_check_changes(&self, before_ms: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM check_changes WHERE at_ms < $1")
            .bind(i64::try_from(before_ms).unwrap_or(i64::MAX))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes the check states of these (agent, check) pairs.
    pub async fn delete_check_states_of(
        &self,
        keys: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for (agent, check) in keys {
            sqlx::query("DELETE FROM check_states WHERE agent_id = $1 AND check_name = $2")
                .bind(agent)
                .bind(check)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
