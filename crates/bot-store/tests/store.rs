//! The store against real databases: every case runs twice, on a SQLite file
//! in a temporary directory and on a private PostgreSQL cluster
//! (`bot_testkit::Postgres`). Without PostgreSQL installed the `postgres::`
//! cases fail, saying to run scripts/test.sh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use bot_proto::api::{Agent, TargetCounts, TargetRun, TargetState, Task, TaskState};
use bot_store::{Backend, Change, LATEST_VERSION, Store, StoreError, TaskQuery};
use bot_testkit::{Postgres, TempDir};
use serde_json::json;
use sqlx::AssertSqlSafe;

/// A database for one test, removed afterwards.
struct TestDb {
    url: String,
    backend: Backend,
    _sqlite: Option<TempDir>,
    _postgres: Option<Arc<Postgres>>,
}

impl TestDb {
    fn sqlite() -> Result<TestDb> {
        let dir = TempDir::new("store");
        Ok(TestDb {
            url: format!("sqlite:{}/bot.db", dir.path().display()),
            backend: Backend::Sqlite,
            _sqlite: Some(dir),
            _postgres: None,
        })
    }

    /// A database of its own in the cluster shared by concurrent tests.
    fn postgres() -> Result<TestDb> {
        let pg = Postgres::shared()?;
        Ok(TestDb {
            url: pg.create_unique_database("bot")?,
            backend: Backend::Postgres,
            _sqlite: None,
            _postgres: Some(pg),
        })
    }

    async fn open(&self) -> Result<Store> {
        let store = Store::open(&self.url)
            .await
            .with_context(|| format!("opening {}", self.url))?;
        ensure!(store.backend() == self.backend);
        Ok(store)
    }

    /// Runs `sql` behind the store's back (to age or corrupt the database).
    async fn raw(&self, sql: &str) -> Result<()> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.url).await?;
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }

    /// The first column of the first row of `sql`, as an integer.
    async fn count(&self, sql: &str) -> Result<i64> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.url).await?;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Ok(n)
    }
}

/// Each case as `sqlite::<case>` and `postgres::<case>`.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    super::$case(super::TestDb::sqlite()?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    super::$case(super::TestDb::postgres()?).await
                }
            )*
        }
    };
}

both_backends!(
    webhook_deliveries_wait_for_enabled_hooks,
    schedule_runs_are_claimed_once,
    check_states_upsert_with_their_changes,
    agent_configs_count_revisions_up,
    samples_round_trip_by_range_and_prune,
    migrations_apply_once_and_reopening_changes_nothing,
    concurrent_opens_migrate_once,
    a_newer_schema_is_refused,
    upserts_keep_first_seen_and_update_the_rest,
    ten_thousand_agents_upsert_in_one_batch,
    heartbeats_and_last_wills,
    a_task_with_2500_targets_round_trips_exactly,
    apply_updates_whole_rows,
    apply_with_a_missing_row_fails_and_writes_nothing,
    task_lists_are_newest_first_filtered_limited_and_counted,
    unfinished_tasks_are_waiting_and_running_oldest_first,
    settings_are_set_and_replaced,
    undecodable_rows_are_reported_as_corrupt,
    audit_lines_append_and_filter,
);

// ---- fixtures

fn agent(id: &str, name: &str, seen_ms: u64) -> Agent {
    let mut facts = BTreeMap::new();
    facts.insert("os".to_owned(), json!("linux"));
    facts.insert("cpus".to_owned(), json!(4));
    facts.insert("load".to_owned(), json!(0.1));
    Agent {
        id: id.to_owned(),
        name: name.to_owned(),
        hostname: format!("{name}.example"),
        ips: vec!["10.0.0.1".to_owned(), "fe80::1".to_owned()],
        version: "0.1.0".to_owned(),
        online: true,
        facts,
        tags: vec!["web".to_owned()],
        pools: vec![],
        started_ms: seen_ms.saturating_sub(10),
        heartbeat_s: 30,
        first_seen_ms: seen_ms,
        last_seen_ms: seen_ms,
        // Every column of the key binding, so round trips cover them.
        key: bot_proto::api::KeyBinding {
            state: bot_proto::api::KeyState::Changed,
            key: Some(format!("ed25519:old-{id}")),
            pending: Some(format!("ed25519:new-{id}")),
        },
        measure: None,
    }
}

fn task(id: &str, state: TaskState, created_ms: u64) -> Task {
    Task {
        id: id.to_owned(),
        state,
        action: "exec".to_owned(),
        args: json!({"command": ["uptime"]}),
        filter: None,
        pool: None,
        timeout_ms: 60_000,
        parallel: 10,
        fail_count: -1,
        fail_rate: 1.0,
        retry_of: None,
        created_by: "admin".to_owned(),
        created_ms,
        started_ms: None,
        finished_ms: None,
        reason: None,
    }
}

fn target(task_id: &str, seq: u32, state: TargetState) -> TargetRun {
    TargetRun {
        task_id: task_id.to_owned(),
        seq,
        agent_id: format!("agent-{seq}"),
        agent_name: format!("node{seq}"),
        state,
        request_id: None,
        request_created_ms: None,
        exit_code: None,
        signal: None,
        stdout: String::new(),
        stderr: String::new(),
        error: None,
        data: None,
        started_ms: None,
        finished_ms: None,
    }
}

// ---- cases

async fn migrations_apply_once_and_reopening_changes_nothing(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    store.set_setting("k", "v").await?;
    store.close().await;
    let store = db.open().await?;
    ensure!(store.setting("k").await?.as_deref() == Some("v"));
    store.close().await;
    let rows = db
        .count("SELECT COUNT(*) FROM bot_schema_migrations")
        .await?;
    ensure!(rows == LATEST_VERSION, "{rows} migration rows");
    let max = db
        .count("SELECT MAX(version) FROM bot_schema_migrations")
        .await?;
    ensure!(max == LATEST_VERSION);
    Ok(())
}

async fn concurrent_opens_migrate_once(db: TestDb) -> Result<()> {
    let (a, b, c) = tokio::join!(
        Store::open(&db.url),
        Store::open(&db.url),
        Store::open(&db.url)
    );
    let (a, b, c) = (a?, b?, c?);
    a.upsert_agent(&agent("a1", "one", 1_000)).await?;
    ensure!(b.agent("a1").await?.is_some() && c.agent("a1").await?.is_some());
    for s in [a, b, c] {
        s.close().await;
    }
    let rows = db
        .count("SELECT COUNT(*) FROM bot_schema_migrations")
        .await?;
    ensure!(rows == LATEST_VERSION, "{rows} migration rows");
    Ok(())
}

async fn a_newer_schema_is_refused(db: TestDb) -> Result<()> {
    db.open().await?.close().await;
    let future = LATEST_VERSION + 1;
    db.raw(&format!(
        "INSERT INTO bot_schema_migrations (version, description, applied_ms) \
         VALUES ({future}, 'from the future', 0)"
    ))
    .await?;
    match Store::open(&db.url).await {
        Err(e @ StoreError::SchemaTooNew { found, known })
            if found == future && known == LATEST_VERSION =>
        {
            let text = e.to_string();
            ensure!(
                text == format!(
                    "database schema version {future} is newer than this bot (knows up to {LATEST_VERSION}): upgrade bot"
                ),
                "{text}"
            );
        }
        Err(e) => bail!("wrong error: {e}"),
        Ok(_) => bail!("a newer schema was opened"),
    }
    Ok(())
}

async fn upserts_keep_first_seen_and_update_the_rest(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    ensure!(store.agent("a1").await?.is_none());
    let first = agent("a1", "web-1", 1_000);
    store.upsert_agent(&first).await?;
    ensure!(store.agent("a1").await?.as_ref() == Some(&first));

    let mut second = agent("a1", "web-1-renamed", 5_000);
    second.ips = vec![];
    second.online = false;
    second
        .facts
        .insert("ü-ключ".to_owned(), json!({"nested": [1, 2.5, null, "🚀"]}));
    second.tags = vec!["db".to_owned(), "eu".to_owned()];
    second.pools = vec!["build".to_owned()];
    second.heartbeat_s = 0;
    store.upsert_agent(&second).await?;
    let stored = store.agent("a1").await?.context("a1 gone")?;
    let mut expected = second.clone();
    expected.first_seen_ms = 1_000;
    ensure!(stored == expected, "{stored:#?}");

    // By name, then id; a batch with an id twice stores the last record
    // with the earliest first_seen.
    store
        .upsert_agents(&[
            agent("b2", "alpha", 300),
            agent("b1", "alpha", 200),
            agent("c1", "zulu", 900),
            agent("c1", "mike", 950),
        ])
        .await?;
    let all = store.agents().await?;
    let order: Vec<(&str, &str)> = all
        .iter()
        .map(|a| (a.name.as_str(), a.id.as_str()))
        .collect();
    ensure!(
        order
            == [
                ("alpha", "b1"),
                ("alpha", "b2"),
                ("mike", "c1"),
                ("web-1-renamed", "a1")
            ],
        "{order:?}"
    );
    let c1 = store.agent("c1").await?.context("c1")?;
    ensure!(c1.first_seen_ms == 900 && c1.last_seen_ms == 950 && c1.name == "mike");

    // Nothing is stored that would not read back.
    let mut huge = agent("h", "huge", 1);
    huge.last_seen_ms = u64::MAX;
    match store.upsert_agent(&huge).await {
        Err(StoreError::Invalid { what }) => ensure!(what.contains("last_seen_ms"), "{what}"),
        other => bail!("{other:?}"),
    }
    ensure!(store.agent("h").await?.is_none());
    Ok(())
}

async fn ten_thousand_agents_upsert_in_one_batch(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let fleet: Vec<Agent> = (0..10_000)
        .map(|i| agent(&format!("id-{i:05}"), &format!("node-{i:05}"), 1_000 + i))
        .collect();
    let t = Instant::now();
    store.upsert_agents(&fleet).await?;
    let inserted = t.elapsed();
    let t = Instant::now();
    let mut again = fleet.clone();
    for a in &mut again {
        a.online = false;
        a.first_seen_ms = 99_999;
    }
    store.upsert_agents(&again).await?;
    let updated = t.elapsed();
    eprintln!(
        "{:?}: 10,000 agents inserted in {inserted:?}, updated in {updated:?}",
        db.backend
    );
    // Generous (debug build, shared machine): catches a row-per-statement regression.
    ensure!(inserted.as_secs_f64() < 3.0 && updated.as_secs_f64() < 3.0);
    let all = store.agents().await?;
    ensure!(all.len() == 10_000);
    ensure!(all.iter().all(|a| !a.online && a.first_seen_ms < 99_999));
    ensure!(
        all[1234] == {
            let mut a = fleet[1234].clone();
            a.online = false;
            a
        }
    );
    Ok(())
}

async fn heartbeats_and_last_wills(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    ensure!(!store.touch_agent("nobody", 1).await?);
    ensure!(!store.set_agent_online("nobody", false, 1).await?);
    ensure!(store.agents().await?.is_empty());

    let mut a = agent("a1", "web-1", 1_000);
    a.online = false;
    store.upsert_agent(&a).await?;
    ensure!(store.touch_agent("a1", 2_000).await?);
    let got = store.agent("a1").await?.context("a1")?;
    ensure!(got.online && got.last_seen_ms == 2_000);
    // A late heartbeat never moves last_seen back.
    ensure!(store.touch_agent("a1", 1_500).await?);
    ensure!(store.agent("a1").await?.context("a1")?.last_seen_ms == 2_000);

    ensure!(store.set_agent_online("a1", false, 3_000).await?);
    let got = store.agent("a1").await?.context("a1")?;
    ensure!(!got.online && got.last_seen_ms == 3_000 && got.first_seen_ms == 1_000);
    ensure!(store.set_agent_online("a1", true, 2_500).await?);
    let got = store.agent("a1").await?.context("a1")?;
    ensure!(got.online && got.last_seen_ms == 3_000);
    Ok(())
}

async fn a_task_with_2500_targets_round_trips_exactly(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    // 64 KiB and more: ASCII, and multi-byte characters.
    let stdout_64k = "0123456789abcdef".repeat(4 * 1024);
    let big = "ü🚀x\n".repeat(64 * 1024 / 8 + 1);
    let mut t = task("t-big", TaskState::Running, 1_700_000_000_000);
    t.args = json!({"shell": "echo 'ünïcödé' \"$X\"", "env": {"X": "1"}, "output_limit": 65536, "f": 0.1});
    t.filter = Some("os=linux and name~web-* and not tag:dev".to_owned());
    t.pool = Some("build".to_owned());
    t.parallel = u32::MAX;
    t.fail_count = i64::MIN;
    t.fail_rate = 0.333_333_333_333_333_3;
    t.retry_of = Some("t-old".to_owned());
    t.created_by = "ops 👩‍💻".to_owned();
    t.started_ms = Some(1_700_000_000_001);
    t.finished_ms = Some(i64::MAX as u64);
    t.reason = Some(String::new());
    let states = TargetState::ALL;
    let targets: Vec<TargetRun> = (0..2_500u32)
        .map(|seq| {
            let mut r = target("t-big", seq, states[seq as usize % states.len()]);
            if seq % 2 == 0 {
                r.request_id = Some(format!("req-{seq}"));
                r.request_created_ms = Some(1_700_000_000_000 + u64::from(seq));
                r.exit_code = Some(i64::from(seq) - 1_250);
                r.signal = Some(9);
                r.error = Some(format!("erreur nº{seq} — ✗"));
                r.data = Some(json!({"seq": seq, "x": [1.5e300, -0.0, "ß"], "none": null}));
                r.started_ms = Some(0);
                r.finished_ms = Some(u64::from(seq));
            }
            if seq % 500 == 7 {
                r.stdout = stdout_64k.clone();
                r.stderr = big.clone();
            } else {
                r.stdout = format!("line {seq}\n");
                r.agent_name = format!("nœud-{seq}-日本");
            }
            r
        })
        .collect();
    store.insert_task(&t, &targets).await?;
    ensure!(store.task("t-big").await?.as_ref() == Some(&t));
    let back = store.targets("t-big").await?;
    ensure!(back.len() == targets.len(), "{} targets", back.len());
    for (a, b) in back.iter().zip(&targets) {
        ensure!(a == b, "target #{} differs:\n{a:?}\n{b:?}", b.seq);
    }
    ensure!(store.task("nope").await?.is_none() && store.targets("nope").await?.is_empty());

    // A task with no targets, and targets of another task, refused whole.
    store
        .insert_task(&task("t-empty", TaskState::Waiting, 5), &[])
        .await?;
    ensure!(store.targets("t-empty").await?.is_empty());
    let stray = target("t-big", 0, TargetState::Waiting);
    match store
        .insert_task(&task("t-x", TaskState::Waiting, 6), &[stray])
        .await
    {
        Err(StoreError::Invalid { what }) => ensure!(what.contains("t-big"), "{what}"),
        other => bail!("{other:?}"),
    }
    ensure!(store.task("t-x").await?.is_none());
    // The same id twice: the database refuses, nothing half-written.
    ensure!(
        store
            .insert_task(&task("t-empty", TaskState::Waiting, 7), &[])
            .await
            .is_err()
    );
    ensure!(store.task("t-empty").await?.map(|t| t.created_ms) == Some(5));
    Ok(())
}

async fn apply_updates_whole_rows(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let t = task("t1", TaskState::Waiting, 10);
    let targets: Vec<TargetRun> = (0..3)
        .map(|s| target("t1", s, TargetState::Waiting))
        .collect();
    store.insert_task(&t, &targets).await?;

    let mut t2 = t.clone();
    t2.state = TaskState::Running;
    t2.started_ms = Some(20);
    t2.reason = Some("because".to_owned());
    let mut r0 = targets[0].clone();
    r0.state = TargetState::Succeeded;
    r0.request_id = Some("req-0".to_owned());
    r0.request_created_ms = Some(15);
    r0.exit_code = Some(0);
    r0.stdout = "ok\n".to_owned();
    r0.data = Some(json!({"a": 1}));
    r0.started_ms = Some(16);
    r0.finished_ms = Some(17);
    let mut r2 = targets[2].clone();
    r2.state = TargetState::Running;
    r2.agent_id = "taken-by".to_owned();
    store
        .apply(&[
            Change::Task(t2.clone()),
            Change::Target(r0.clone()),
            Change::Target(r2.clone()),
        ])
        .await?;
    // Later changes in a batch win; a field set back to None is cleared.
    let mut r0b = r0.clone();
    r0b.data = None;
    r0b.exit_code = None;
    let mut t3 = t2.clone();
    t3.reason = None;
    store
        .apply(&[
            Change::Target(r0.clone()),
            Change::Target(r0b.clone()),
            Change::Task(t3.clone()),
        ])
        .await?;
    store.apply(&[]).await?;
    ensure!(store.task("t1").await?.as_ref() == Some(&t3));
    ensure!(store.targets("t1").await? == vec![r0b, targets[1].clone(), r2]);
    Ok(())
}

async fn apply_with_a_missing_row_fails_and_writes_nothing(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    let t = task("t1", TaskState::Waiting, 10);
    let targets: Vec<TargetRun> = (0..2)
        .map(|s| target("t1", s, TargetState::Waiting))
        .collect();
    store.insert_task(&t, &targets).await?;

    let mut running = t.clone();
    running.state = TaskState::Running;
    let mut r0 = targets[0].clone();
    r0.state = TargetState::Running;
    let ghost = target("t1", 99, TargetState::Running);
    match store
        .apply(&[
            Change::Task(running.clone()),
            Change::Target(r0.clone()),
            Change::Target(ghost),
        ])
        .await
    {
        Err(e @ StoreError::Missing { .. }) => {
            ensure!(
                e.to_string() == "target #99 of task t1 does not exist",
                "{e}"
            )
        }
        other => bail!("{other:?}"),
    }
    ensure!(store.task("t1").await?.as_ref() == Some(&t));
    ensure!(store.targets("t1").await? == targets);

    match store
        .apply(&[
            Change::Target(r0),
            Change::Task(task("t-ghost", TaskState::Running, 1)),
        ])
        .await
    {
        Err(StoreError::Missing { what }) => ensure!(what == "task t-ghost", "{what}"),
        other => bail!("{other:?}"),
    }
    ensure!(store.targets("t1").await? == targets);
    // The store is still usable after the rollbacks.
    store.apply(&[Change::Task(running.clone())]).await?;
    ensure!(store.task("t1").await?.as_ref() == Some(&running));
    Ok(())
}

async fn task_lists_are_newest_first_filtered_limited_and_counted(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    use TargetState as S;
    // (id, state, created_ms, target states)
    let plan: &[(&str, TaskState, u64, &[TargetState])] = &[
        (
            "a",
            TaskState::Succeeded,
            100,
            &[S::Succeeded, S::Succeeded],
        ),
        (
            "b",
            TaskState::Running,
            300,
            &[S::Running, S::Waiting, S::Waiting, S::Failed],
        ),
        (
            "c",
            TaskState::Failed,
            200,
            &[S::Failed, S::TimedOut, S::Lost, S::Skipped, S::Succeeded],
        ),
        // Same creation time as b: the greater id first.
        ("d", TaskState::Running, 300, &[]),
        ("e", TaskState::Waiting, 50, &[S::Waiting]),
    ];
    for (id, state, created, states) in plan {
        let targets: Vec<TargetRun> = states
            .iter()
            .enumerate()
            .map(|(i, s)| target(id, i as u32, *s))
            .collect();
        store
            .insert_task(&task(id, *state, *created), &targets)
            .await?;
    }
    let ids = |list: &[bot_proto::api::TaskSummary]| -> Vec<String> {
        list.iter().map(|s| s.task.id.clone()).collect()
    };

    let all = store.tasks(&TaskQuery::default()).await?;
    ensure!(ids(&all) == ["d", "b", "c", "a", "e"], "{:?}", ids(&all));
    for s in &all {
        let (_, _, _, states) = plan.iter().find(|p| p.0 == s.task.id).context("planned")?;
        let expected = TargetCounts::of(
            &states
                .iter()
                .map(|st| target("x", 0, *st))
                .collect::<Vec<_>>(),
        );
        ensure!(
            s.counts == expected,
            "{}: {:?} != {expected:?}",
            s.task.id,
            s.counts
        );
        ensure!(store.task(&s.task.id).await?.as_ref() == Some(&s.task));
    }
    let b = &all[1];
    ensure!(
        b.counts.total == 4
            && b.counts.waiting == 2
            && b.counts.running == 1
            && b.counts.failed == 1
    );
    ensure!(all[0].counts == TargetCounts::default());

    let running = store
        .tasks(&TaskQuery {
            state: Some(TaskState::Running),
            limit: None,
        })
        .await?;
    ensure!(ids(&running) == ["d", "b"], "{:?}", ids(&running));
    ensure!(running[1].counts == b.counts);

    let two = store
        .tasks(&TaskQuery {
            state: None,
            limit: Some(2),
        })
        .await?;
    ensure!(ids(&two) == ["d", "b"]);
    let one_failed = store
        .tasks(&TaskQuery {
            state: Some(TaskState::Failed),
            limit: Some(1),
        })
        .await?;
    ensure!(ids(&one_failed) == ["c"] && one_failed[0].counts.total == 5);
    let none = store
        .tasks(&TaskQuery {
            state: Some(TaskState::Cancelled),
            limit: Some(10),
        })
        .await?;
    ensure!(none.is_empty());
    ensure!(
        store
            .tasks(&TaskQuery {
                state: None,
                limit: Some(0)
            })
            .await?
            .is_empty()
    );
    ensure!(
        store
            .tasks(&TaskQuery {
                state: None,
                limit: Some(u32::MAX)
            })
            .await?
            .len()
            == 5
    );
    Ok(())
}

async fn unfinished_tasks_are_waiting_and_running_oldest_first(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    ensure!(store.unfinished_tasks().await?.is_empty());
    for (id, state, created) in [
        ("w2", TaskState::Waiting, 30),
        ("s", TaskState::Succeeded, 5),
        ("r1", TaskState::Running, 10),
        ("f", TaskState::Failed, 15),
        ("c", TaskState::Cancelled, 20),
        ("w1", TaskState::Waiting, 10),
    ] {
        store.insert_task(&task(id, state, created), &[]).await?;
    }
    let ids: Vec<String> = store
        .unfinished_tasks()
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    ensure!(ids == ["r1", "w1", "w2"], "{ids:?}");
    Ok(())
}

async fn audit_lines_append_and_filter(db: TestDb) -> Result<()> {
    use bot_proto::api::AuditRecord;
    use bot_store::AuditQuery;
    let store = db.open().await?;
    let line = |i: u64, token: &str, agent: Option<&str>| AuditRecord {
        id: format!("a{i:05}"),
        time_ms: 1_000 + i,
        event: "request".into(),
        token: Some(token.into()),
        key: Some("srvkey".into()),
        agent: agent.map(Into::into),
        request_id: Some(format!("r{i}")),
        action: Some("exec".into()),
        args_sha256: Some("0".repeat(64)),
        detail: None,
    };
    // More than one statement's worth of binds: chunked.
    let lines: Vec<AuditRecord> = (0..1500)
        .map(|i| {
            line(
                i,
                if i % 2 == 0 { "ops" } else { "ci" },
                (i % 3 == 0).then_some("web1"),
            )
        })
        .collect();
    store.append_audit(&lines).await?;
    let all = store
        .audit(&AuditQuery {
            limit: Some(10_000),
            ..AuditQuery::default()
        })
        .await?;
    ensure!(all == lines, "round trip, oldest first");
    let ops = store
        .audit(&AuditQuery {
            key: Some("ops".into()),
            limit: Some(10_000),
            ..AuditQuery::default()
        })
        .await?;
    ensure!(ops.len() == 750 && ops.iter().all(|r| r.token.as_deref() == Some("ops")));
    let by_key = store
        .audit(&AuditQuery {
            key: Some("srvkey".into()),
            limit: Some(10_000),
            ..AuditQuery::default()
        })
        .await?;
    ensure!(by_key.len() == 1500, "the key matches too");
    let web = store
        .audit(&AuditQuery {
            agent: Some("web1".into()),
            key: Some("ci".into()),
            since_ms: Some(2_000),
            limit: Some(10),
        })
        .await?;
    ensure!(
        web.len() == 10
            && web.iter().all(|r| r.agent.as_deref() == Some("web1")
                && r.token.as_deref() == Some("ci")
                && r.time_ms >= 2_000),
        "{web:?}"
    );
    Ok(())
}

async fn webhook_deliveries_wait_for_enabled_hooks(db: TestDb) -> Result<()> {
    use bot_proto::api::{Webhook, WebhookDelivery};
    let store = db.open().await?;
    let hook = Webhook {
        id: "h1".into(),
        name: "ops".into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["agent.offline".into()],
        filter: None,
        enabled: true,
        disabled_reason: None,
        source: "api".into(),
        created_by: "admin".into(),
        created_ms: 1,
    };
    ensure!(store.insert_webhook(&hook, "secret-0123456789").await?);
    ensure!(
        !store
            .insert_webhook(
                &Webhook {
                    id: "h2".into(),
                    ..hook.clone()
                },
                "x"
            )
            .await?
    );
    // The configuration file's copy replaces url and secret, keeps the id.
    store
        .upsert_webhook(
            &Webhook {
                id: "other".into(),
                url: "http://127.0.0.1:9/new".into(),
                source: "config".into(),
                ..hook.clone()
            },
            "secret-new-0123456789",
        )
        .await?;
    let rows = store.webhooks().await?;
    ensure!(
        rows.len() == 1 && rows[0].hook.id == "h1" && rows[0].hook.url.ends_with("/new"),
        "{rows:?}"
    );
    ensure!(rows[0].secret == "secret-new-0123456789");
    let d = |id: &str, at: u64| WebhookDelivery {
        id: id.into(),
        hook_id: "h1".into(),
        event: "agent.offline".into(),
        created_ms: at,
        state: "pending".into(),
        attempts: 0,
        next_attempt_ms: Some(at),
        last_status: None,
        last_error: None,
        delivered_ms: None,
        body: json!({"event": "agent.offline", "n": at}),
    };
    store.insert_deliveries(&[d("d1", 10), d("d2", 20)]).await?;
    let due = store.due_deliveries(15, 10).await?;
    ensure!(due.len() == 1 && due[0] == d("d1", 10), "{due:?}");
    // Disabled: nothing is due; enabled again: both.
    ensure!(
        store
            .set_webhook_enabled("h1", false, Some("kept failing"))
            .await?
    );
    ensure!(store.due_deliveries(100, 10).await?.is_empty());
    let h = store.webhook("ops").await?.context("by name")?;
    ensure!(!h.enabled && h.disabled_reason.as_deref() == Some("kept failing"));
    store.set_webhook_enabled("h1", true, None).await?;
    ensure!(store.due_deliveries(100, 10).await?.len() == 2);
    let mut done = d("d1", 10);
    done.state = "delivered".into();
    done.attempts = 2;
    done.next_attempt_ms = None;
    done.last_status = Some(204);
    done.delivered_ms = Some(30);
    store.update_delivery(&done).await?;
    let list = store.deliveries("h1", 10).await?;
    ensure!(
        list.len() == 2 && list[1] == done && list[0].id == "d2",
        "{list:?}"
    );
    ensure!(store.prune_deliveries(1_000).await? == 1);
    ensure!(store.delete_webhook("h1").await?);
    ensure!(store.deliveries("h1", 10).await?.is_empty() && store.webhooks().await?.is_empty());
    Ok(())
}

async fn schedule_runs_are_claimed_once(db: TestDb) -> Result<()> {
    use bot_proto::api::{NewSchedule, Schedule};
    let store = db.open().await?;
    let schedule = Schedule {
        id: "s1".into(),
        spec: NewSchedule {
            name: "load".into(),
            every_s: Some(2.0),
            check: Some("load".into()),
            ..NewSchedule::default()
        },
        created_by: "admin".into(),
        created_ms: 1_000,
        next_run_ms: Some(5_000),
        last_run_ms: None,
        last_task_id: None,
        last_error: None,
        runs: 0,
        skipped: 0,
        missed: 0,
    };
    ensure!(store.insert_schedule(&schedule, false).await?);
    let mut again = schedule.clone();
    again.id = "s2".into();
    ensure!(
        !store.insert_schedule(&again, false).await?,
        "a second schedule named load"
    );
    // Two claims of the run due at 5,000: one wins.
    ensure!(store.claim_run("s1", 5_000, 7_000, 5_010, true, 0).await?);
    ensure!(!store.claim_run("s1", 5_000, 7_000, 5_020, true, 0).await?);
    // Skipped, with two missed.
    ensure!(
        store
            .claim_run("s1", 7_000, 13_000, 12_000, false, 2)
            .await?
    );
    store
        .finish_run(
            "s1",
            &bot_store::RunOutcome {
                task_id: Some("t1".into()),
                error: Some("no agent".into()),
            },
        )
        .await?;
    let row = store.schedule("load").await?.context("by name")?;
    let s = &row.schedule;
    ensure!(
        (s.runs, s.skipped, s.missed, s.next_run_ms, s.last_run_ms)
            == (1, 1, 2, Some(13_000), Some(5_010)),
        "{s:?}"
    );
    ensure!(s.last_task_id.as_deref() == Some("t1") && s.last_error.as_deref() == Some("no agent"));
    ensure!(s.spec.check.as_deref() == Some("load") && s.spec.every_s == Some(2.0));
    // Paused: no claim succeeds.
    ensure!(store.set_schedule_paused("s1", true, None).await?);
    ensure!(
        !store
            .claim_run("s1", 13_000, 15_000, 13_000, true, 0)
            .await?
    );
    let row = store.schedule("s1").await?.context("by id")?;
    ensure!(row.paused && row.schedule.spec.paused && row.schedule.next_run_ms.is_none());
    ensure!(store.schedules().await?.len() == 1);
    ensure!(store.delete_schedule("s1").await?);
    ensure!(!store.delete_schedule("s1").await?);
    ensure!(store.schedule("load").await?.is_none());
    Ok(())
}

async fn check_states_upsert_with_their_changes(db: TestDb) -> Result<()> {
    use bot_proto::api::{CheckChange, CheckStatus};
    let store = db.open().await?;
    let state = |state: &str, code: u8, at: u64| CheckStatus {
        agent_id: "a1".into(),
        agent_name: String::new(),
        check: "load".into(),
        state: state.into(),
        code,
        output: format!("LOAD {state} ✓"),
        long_output: String::new(),
        perfdata: "load1=0.5;5;10;0".into(),
        since_ms: at,
        updated_ms: at,
        interval_ms: 10_000,
        stale: false,
        schedule_id: Some("s1".into()),
    };
    let change = |from: Option<&str>, to: &str, at: u64| CheckChange {
        agent_id: "a1".into(),
        check: "load".into(),
        from: from.map(str::to_owned),
        to: to.into(),
        at_ms: at,
        output: String::new(),
    };
    store
        .put_check_states(&[state("OK", 0, 1_000)], &[change(None, "OK", 1_000)])
        .await?;
    store
        .put_check_states(
            &[state("CRITICAL", 2, 2_000)],
            &[change(Some("OK"), "CRITICAL", 2_000)],
        )
        .await?;
    let all = store.check_states().await?;
    ensure!(
        all.len() == 1 && all[0] == state("CRITICAL", 2, 2_000),
        "{all:?}"
    );
    let changes = store.check_changes("a1", Some("load"), 10).await?;
    ensure!(
        changes
            == vec![
                change(Some("OK"), "CRITICAL", 2_000),
                change(None, "OK", 1_000)
            ],
        "{changes:?}"
    );
    ensure!(store.check_changes("a1", None, 1).await?.len() == 1);
    ensure!(store.prune_check_changes(1_500).await? == 1);
    store
        .delete_check_states_of(&[("a1".to_owned(), "load".to_owned())])
        .await?;
    ensure!(store.check_states().await?.is_empty());
    Ok(())
}

async fn settings_are_set_and_replaced(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    ensure!(store.setting("mqtt_client_id").await?.is_none());
    store.set_setting("mqtt_client_id", "bot-server-1").await?;
    store.set_setting("api_token", "tok ✓").await?;
    ensure!(store.setting("mqtt_client_id").await?.as_deref() == Some("bot-server-1"));
    store.set_setting("mqtt_client_id", "").await?;
    ensure!(store.setting("mqtt_client_id").await?.as_deref() == Some(""));
    ensure!(store.setting("api_token").await?.as_deref() == Some("tok ✓"));
    Ok(())
}

async fn undecodable_rows_are_reported_as_corrupt(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    store
        .insert_task(&task("t1", TaskState::Waiting, 1), &[])
        .await?;
    store.upsert_agent(&agent("a1", "x", 5)).await?;
    db.raw("UPDATE tasks SET state = 'BOGUS' WHERE id = 't1'")
        .await?;
    db.raw("UPDATE agents SET facts = '[1' WHERE id = 'a1'")
        .await?;
    match store.task("t1").await {
        Err(StoreError::Corrupt { what }) => {
            ensure!(
                what.starts_with("tasks t1 column state: \"BOGUS\""),
                "{what}"
            )
        }
        other => bail!("{other:?}"),
    }
    match store.agents().await {
        Err(StoreError::Corrupt { what }) => {
            ensure!(what.starts_with("agents a1 column facts: "), "{what}")
        }
        other => bail!("{other:?}"),
    }
    Ok(())
}

// ---- URLs (no database needed)

#[tokio::test]
async fn bad_urls_are_named_without_their_password() -> Result<()> {
    for (url, shown, why) in [
        (
            "mysql://bot:hunter2@db/bot",
            "mysql://bot:***@db/bot",
            "unsupported database",
        ),
        (
            "sqlite:/nonexistent-dir/x.db",
            "sqlite:/nonexistent-dir/x.db",
            "/nonexistent-dir",
        ),
        ("sqlite://", "sqlite://", "give the path of a database file"),
        (
            "sqlite::memory:",
            "sqlite::memory:",
            "no in-memory database",
        ),
        ("bot.db", "bot.db", "unsupported database"),
    ] {
        match Store::open(url).await {
            Err(e @ StoreError::BadUrl { .. }) => {
                let text = e.to_string();
                ensure!(
                    text.starts_with(&format!("database URL {shown}: ")),
                    "{text}"
                );
                ensure!(text.contains(why) && !text.contains("hunter2"), "{text}");
            }
            Err(e) => bail!("{url}: wrong error {e}"),
            Ok(_) => bail!("{url} opened"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_failed_postgres_connection_is_named_without_its_password() -> Result<()> {
    // A server that hangs up at once (a refused connection would be retried
    // for 10 s: a database starting alongside the server).
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let url = format!("postgres://bot:hunter2@127.0.0.1:{port}/bot");
    match Store::open(&url).await {
        Err(e @ StoreError::Connect { .. }) => {
            let text = e.to_string();
            ensure!(
                text.starts_with(&format!(
                    "cannot open database postgres://bot:***@127.0.0.1:{port}/bot: "
                )),
                "{text}"
            );
            ensure!(!text.contains("hunter2"), "{text}");
        }
        Err(e) => bail!("wrong error {e}"),
        Ok(_) => bail!("opened"),
    }
    Ok(())
}

#[tokio::test]
async fn sqlite_files_are_created_in_relative_and_odd_paths() -> Result<()> {
    let dir = TempDir::new("store-paths");
    let odd = dir.path().join("a dir #1%");
    std::fs::create_dir(&odd)?;
    for url in [
        format!("sqlite:{}/bot ü.db", odd.display()),
        format!("sqlite://{}/b.db", odd.display()),
    ] {
        let store = Store::open(&url).await.with_context(|| url.clone())?;
        store.set_setting("k", "v").await?;
        store.close().await;
    }
    ensure!(odd.join("bot ü.db").is_file() && odd.join("b.db").is_file());
    Ok(())
}

async fn agent_configs_count_revisions_up(db: TestDb) -> Result<()> {
    let store = db.open().await?;
    ensure!(store.agent_config("a1").await?.is_none());
    let cpu = vec!["cpu".to_owned()];
    let first = store
        .put_agent_config("a1", true, 5_000, &cpu, "ops", 10)
        .await?;
    ensure!(first.revision == 1, "{first:?}");
    let both = vec!["cpu".to_owned(), "memory".to_owned()];
    let second = store
        .put_agent_config("a1", false, 1_000, &both, "alice", 20)
        .await?;
    ensure!(second.revision == 2, "{second:?}");
    let read = store.agent_config("a1").await?;
    ensure!(read.as_ref() == Some(&second), "{read:?}");
    // Concurrent writers get distinct revisions.
    let mut handles = Vec::new();
    for i in 0..8u64 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            s.put_agent_config("a2", true, 1_000 + i, &[], "x", i).await
        }));
    }
    let mut revisions = Vec::new();
    for h in handles {
        revisions.push(h.await??.revision);
    }
    revisions.sort_unstable();
    ensure!(revisions == (1..=8).collect::<Vec<_>>(), "{revisions:?}");
    ensure!(store.delete_agent_config("a1").await?);
    ensure!(!store.delete_agent_config("a1").await?);
    ensure!(store.agent_config("a1").await?.is_none());
    Ok(())
}

async fn samples_round_trip_by_range_and_prune(db: TestDb) -> Result<()> {
    use bot_store::{SampleRow, SampleTable};
    let store = db.open().await?;
    store
        .put_layouts(&[(7, "[\"a\"]".to_owned()), (-3, "[\"b\"]".to_owned())])
        .await?;
    // Stored again: kept, no error.
    store.put_layouts(&[(7, "[\"a\"]".to_owned())]).await?;
    let mut got = store.layouts(&[7, -3, 99]).await?;
    got.sort();
    ensure!(
        got == vec![(-3, "[\"b\"]".to_owned()), (7, "[\"a\"]".to_owned())],
        "{got:?}"
    );
    // 3,000 rows: several statements; bytes of every value come back.
    let rows: Vec<SampleRow> = (0..3_000u64)
        .map(|i| SampleRow {
            agent_id: format!("a{}", i % 3),
            time_ms: 1_000 * i,
            layout: 7,
            data: (0..=255u8)
                .cycle()
                .skip(i as usize % 256)
                .take(24)
                .collect(),
        })
        .collect();
    store.insert_samples(SampleTable::Raw, &rows).await?;
    // Again: kept as they were, no error.
    store.insert_samples(SampleTable::Raw, &rows[..10]).await?;
    let a0 = store
        .samples(SampleTable::Raw, "a0", 30_000, 60_000, 1_000)
        .await?;
    let want: Vec<SampleRow> = rows
        .iter()
        .filter(|r| r.agent_id == "a0" && (30_000..60_000).contains(&r.time_ms))
        .cloned()
        .collect();
    ensure!(a0 == want, "{} rows, wanted {}", a0.len(), want.len());
    let limited = store
        .samples(SampleTable::Raw, "a0", 0, u64::MAX, 5)
        .await?;
    ensure!(limited.len() == 5 && limited[0].time_ms == 0);
    let all = store.samples_between(SampleTable::Raw, 0, 9_000).await?;
    ensure!(all.len() == 9 && all[0].agent_id == "a0", "{all:?}");
    ensure!(store.oldest_sample_ms(SampleTable::Raw).await? == Some(0));
    ensure!(store.oldest_sample_ms(SampleTable::Minute).await?.is_none());
    let gone = store.prune_samples(SampleTable::Raw, 1_500_000).await?;
    ensure!(gone == 1_500, "{gone}");
    ensure!(store.oldest_sample_ms(SampleTable::Raw).await? == Some(1_500_000));
    Ok(())
}
