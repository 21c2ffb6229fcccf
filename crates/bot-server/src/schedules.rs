//! Schedules: named jobs that run every N seconds or on a crontab line,
//! stored in the database and resumed after a restart.
//!
//! - **Timing** ([`Timing`], [`decide`]; pure, unit-tested): an `every`
//!   schedule's first run falls at a random moment within its first
//!   interval (splay, as the ancestor did: no thundering herd), then runs
//!   follow the period; a cron schedule runs at its times (server's local
//!   time zone).
//! - **Once per run**: before a run starts its due time is claimed in the
//!   database (`UPDATE … WHERE next_run_ms = due`), so a run never fires
//!   twice — not with two servers, not after a crash and restart.
//! - **Missed runs** (due while no server ran) are counted in `missed` and
//!   logged, not replayed: after downtime the latest due run starts late,
//!   once, and the period goes on.
//! - **No overlap**: a run due while the previous one still goes (its task
//!   unfinished; its check results still awaited) is not started but
//!   counted in `skipped`.
//! - **What runs**: a command is a task of the tasks service (parallel,
//!   `fail_count`, history); a check is one signed `check` request to
//!   every matching agent at once (or one per agent, each delayed by its
//!   own random splay), whose results go to a durable topic
//!   ([`topics::CHECK_RESULTS`]) and into [`Checks`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bot_bus::{Publisher, Qos};
use bot_proto::api::{NewSchedule, NewTask, Schedule};
use bot_proto::{Action, Draft, topics};
use bot_store::{RunOutcome, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::checks::{Checks, Sent};
use crate::clock::Clock;
use crate::registry::Registry;
use crate::tasks::{MAX_TIMEOUT_S, MIN_TIMEOUT_S, TaskService};

/// Shortest `every_s`.
pub const MIN_EVERY_S: f64 = 1.0;
/// Longest `every_s` (31 days).
pub const MAX_EVERY_S: f64 = 2_678_400.0;
/// Longest per-agent splay (one hour).
pub const MAX_SPLAY_S: f64 = 3_600.0;
/// Longest time a check run waits for results (one hour).
pub const MAX_CHECK_TIMEOUT_S: f64 = 3_600.0;
/// How long a run may take when the schedule does not say (seconds).
pub const DEFAULT_RUN_TIMEOUT_S: f64 = 60.0;
/// Most schedules.
pub const MAX_SCHEDULES: usize = 10_000;
/// The scheduler re-reads the schedules at least this often (ms), to see
/// other servers' changes.
const RELOAD_MS: u64 = 30_000;
/// Most slots counted when working out missed runs (a cron schedule down
/// for years would otherwise iterate for long).
const MAX_SLOTS_COUNTED: u64 = 100_000;

/// Why a schedule was not made or changed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Malformed; the message names the field and value.
    #[error("{0}")]
    Invalid(String),
    /// No such schedule.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken, or too many schedules.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// When a schedule runs.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Every this many ms.
    Every(u64),
    /// At the times of a crontab line, in the local time zone.
    Cron(Box<croner::Cron>),
}

/// Parses a standard 5-field crontab line (no seconds, no year).
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    if text.len() > 256 {
        return Err(format!("cron: {} bytes, longer than 256", text.len()));
    }
    let fields = text.split_whitespace().count();
    if fields != 5 && !text.trim_start().starts_with('@') {
        return Err(format!(
            "cron: {text:?} has {fields} fields; a crontab line has 5 (minute hour day-of-month month day-of-week)"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("cron: {text:?}: {e}"))
}

impl Timing {
    /// The timing of `spec` (validated: exactly one of `every_s`, `cron`).
    pub fn of(spec: &NewSchedule) -> Result<Timing, String> {
        match (spec.every_s, &spec.cron) {
            (Some(s), None) => {
                if !(s.is_finite() && (MIN_EVERY_S..=MAX_EVERY_S).contains(&s)) {
                    return Err(format!(
                        "every_s: {s} is outside {MIN_EVERY_S}..={MAX_EVERY_S} seconds"
                    ));
                }
                Ok(Timing::Every((s * 1000.0).round() as u64))
            }
            (None, Some(c)) => Ok(Timing::Cron(Box::new(parse_cron(c)?))),
            (Some(_), Some(_)) => Err("give every_s or cron, not both".into()),
            (None, None) => Err("give every_s (seconds) or cron (a crontab line)".into()),
        }
    }

    /// The first cron time strictly after `t` (ms); `None` if there is
    /// none (a date that never comes, like 30 February).
    fn cron_after(cron: &croner::Cron, t: u64) -> Option<u64> {
        use chrono::TimeZone;
        let secs = i64::try_from(t / 1000).ok()?;
        let nanos = u32::try_from((t % 1000) * 1_000_000).ok()?;
        let at = chrono::Local.timestamp_opt(secs, nanos).earliest()?;
        let next = cron.find_next_occurrence(&at, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// When a new (or resumed) schedule first runs: for `every`, a random
    /// moment within the first interval (`rand` in `[0, 1)`); for cron, its
    /// next time.
    pub fn first(&self, now_ms: u64, rand: f64) -> Option<u64> {
        match self {
            Timing::Every(ms) => {
                Some(now_ms + ((*ms as f64) * rand.clamp(0.0, 1.0)) as u64 % ms.max(&1))
            }
            Timing::Cron(c) => Timing::cron_after(c, now_ms),
        }
    }

    /// The slot after `due` that is later than `now_ms`, and how many slots
    /// fell in `(due, now_ms]`.
    pub fn advance(&self, due: u64, now_ms: u64) -> Option<(u64, u64)> {
        match self {
            Timing::Every(ms) => {
                let ms = (*ms).max(1);
                let passed = now_ms.saturating_sub(due) / ms;
                Some((due + (passed + 1) * ms, passed))
            }
            Timing::Cron(c) => {
                let mut t = due;
                let mut passed = 0;
                loop {
                    let next = Timing::cron_after(c, t)?;
                    if next > now_ms {
                        return Some((next, passed));
                    }
                    passed += 1;
                    if passed >= MAX_SLOTS_COUNTED {
                        return Some((Timing::cron_after(c, now_ms)?, passed));
                    }
                    t = next;
                }
            }
        }
    }

    /// The interval around `at` (for cron: between its next two times),
    /// which dates a check's staleness.
    pub fn interval_ms(&self, at: u64) -> u64 {
        match self {
            Timing::Every(ms) => *ms,
            Timing::Cron(c) => Timing::cron_after(c, at)
                .and_then(|a| Some((a, Timing::cron_after(c, a)?)))
                .map_or(crate::checks::DEFAULT_INTERVAL_MS, |(a, b)| b - a),
        }
    }
}

/// What to do with a run that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Start it (false: the previous run still goes; counted as skipped).
    pub run: bool,
    /// When the next run is due.
    pub next_ms: u64,
    /// Runs that fell due without being started (the server was down).
    pub missed: u64,
}

/// Decides about the run due at `due` at `now_ms`: the latest due slot runs
/// (late, once) unless the previous run still goes; the slots before it
/// that passed while nothing ran are missed, and so is a slot less than
/// half an interval after a late run. `None`: no next time.
pub fn decide(timing: &Timing, due: u64, now_ms: u64, running: bool) -> Option<Decision> {
    let (mut next_ms, mut passed) = timing.advance(due, now_ms)?;
    if passed > 0 {
        // Catching up after downtime: the late run stands for the latest
        // slot; a slot less than half an interval after it would make two
        // runs back to back, so it is missed too.
        let half = timing.interval_ms(now_ms) / 2;
        (next_ms, passed) = timing.advance(due, now_ms + half)?;
    }
    Some(Decision {
        run: !running,
        next_ms,
        missed: passed,
    })
}

/// Checks a new schedule; the error names the field and the value.
pub fn validate(spec: &NewSchedule) -> Result<(), String> {
    bot_proto::action::check_name(&spec.name)?;
    Timing::of(spec)?;
    if let Some(f) = &spec.filter {
        bot_proto::filter::parse(f).map_err(|e| {
            format!(
                "filter: {f:?}: error at column {}: {}",
                e.position + 1,
                e.message
            )
        })?;
    }
    let timeout = spec.timeout_s.unwrap_or(DEFAULT_RUN_TIMEOUT_S);
    match (&spec.check, &spec.command) {
        (Some(check), None) => {
            bot_proto::action::check_name(check).map_err(|e| format!("check: {e}"))?;
            if !(timeout.is_finite() && (MIN_TIMEOUT_S..=MAX_CHECK_TIMEOUT_S).contains(&timeout)) {
                return Err(format!(
                    "timeout_s: {timeout} is outside {MIN_TIMEOUT_S}..={MAX_CHECK_TIMEOUT_S} seconds"
                ));
            }
            if let Some(s) = spec.splay_s
                && !(s.is_finite() && (0.0..=MAX_SPLAY_S).contains(&s))
            {
                return Err(format!("splay_s: {s} is outside 0..={MAX_SPLAY_S} seconds"));
            }
            if let Some(t) = &spec.reply_to {
                topics::valid_reply_topic(t).map_err(|e| format!("reply_to: {e}"))?;
            }
            for (set, field) in [
                (spec.parallel.is_some(), "parallel"),
                (spec.fail_count.is_some(), "fail_count"),
                (spec.online_only.is_some(), "online_only"),
            ] {
                if set {
                    return Err(format!(
                        "{field}: only for command schedules (a check runs on every matching agent at once)"
                    ));
                }
            }
        }
        (None, Some(args)) => {
            if !(timeout.is_finite() && (MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&timeout)) {
                return Err(format!(
                    "timeout_s: {timeout} is outside {MIN_TIMEOUT_S}..={MAX_TIMEOUT_S} seconds"
                ));
            }
            let action = Action::from_parts("exec", args).map_err(|e| format!("command: {e}"))?;
            drop(action);
            if spec.splay_s.is_some_and(|s| s != 0.0) {
                return Err(
                    "splay_s: per-agent splay is for check schedules; a command schedule spreads its targets with parallel"
                        .into(),
                );
            }
            if spec.reply_to.is_some() {
                return Err(
                    "reply_to: only for check schedules (a command's results are its task's)"
                        .into(),
                );
            }
            if spec.parallel == Some(0) {
                return Err("parallel: 0; give 1 or more".into());
            }
            if let Some(n) = spec.fail_count
                && n != -1
                && n < 1
            {
                return Err(format!("fail_count: {n}; give N >= 1, or -1 for never"));
            }
        }
        (Some(_), Some(_)) => return Err("give check or command, not both".into()),
        (None, None) => {
            return Err("give check (a check's name) or command (exec's arguments)".into());
        }
    }
    Ok(())
}

/// The schedules service and its run loop (cheap to clone).
#[derive(Debug, Clone)]
pub struct Schedules {
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    runner: Arc<Runner>,
}

/// What a run needs.
#[derive(Debug)]
pub(crate) struct Runner {
    pub(crate) tasks: TaskService,
    pub(crate) registry: Registry,
    pub(crate) publisher: Publisher,
    pub(crate) signer: Arc<bot_auth::Signer>,
    pub(crate) audit: Audit,
    pub(crate) checks: Checks,
}

impl Schedules {
    /// The service.
    pub(crate) fn new(store: Store, clock: Arc<dyn Clock>, runner: Runner) -> Schedules {
        Schedules {
            store,
            clock,
            wake: Arc::new(Notify::new()),
            runner: Arc::new(runner),
        }
    }

    /// Stores a new schedule (its first run splayed within the interval).
    pub async fn create(&self, spec: NewSchedule, who: &str) -> Result<Schedule, ScheduleError> {
        validate(&spec).map_err(ScheduleError::Invalid)?;
        if self.store.schedules().await?.len() >= MAX_SCHEDULES {
            return Err(ScheduleError::Conflict(format!(
                "there are {MAX_SCHEDULES} schedules already (the most allowed)"
            )));
        }
        let timing = Timing::of(&spec).map_err(ScheduleError::Invalid)?;
        let now = self.clock.now_ms();
        let next = if spec.paused {
            None
        } else {
            Some(timing.first(now, fastrand::f64()).ok_or_else(|| {
                ScheduleError::Invalid(format!(
                    "cron: {:?} never comes",
                    spec.cron.as_deref().unwrap_or("")
                ))
            })?)
        };
        let schedule = Schedule {
            id: uuid::Uuid::now_v7().simple().to_string(),
            spec,
            created_by: who.to_owned(),
            created_ms: now,
            next_run_ms: next,
            last_run_ms: None,
            last_task_id: None,
            last_error: None,
            runs: 0,
            skipped: 0,
            missed: 0,
        };
        let paused = schedule.spec.paused;
        if !self.store.insert_schedule(&schedule, paused).await? {
            return Err(ScheduleError::Conflict(format!(
                "a schedule named {:?} exists already",
                schedule.spec.name
            )));
        }
        tracing::info!(name = %schedule.spec.name, id = %schedule.id, kind = schedule.spec.kind(),
            next_run_ms = ?schedule.next_run_ms, by = who, "schedule made");
        self.wake.notify_one();
        Ok(schedule)
    }

    /// Every schedule, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        Ok(self
            .store
            .schedules()
            .await?
            .into_iter()
            .map(|r| r.schedule)
            .collect())
    }

    /// One schedule, by id or name.
    pub async fn get(&self, id_or_name: &str) -> Result<Schedule, ScheduleError> {
        self.store
            .schedule(id_or_name)
            .await?
            .map(|r| r.schedule)
            .ok_or_else(|| ScheduleError::NotFound(format!("no schedule {id_or_name:?}")))
    }

    /// Pauses (no run is due) or resumes (the next run splayed again within
    /// the interval, or the next cron time) a schedule.
    pub async fn set_paused(
        &self,
        id_or_name: &str,
        paused: bool,
    ) -> Result<Schedule, ScheduleError> {
        let s = self.get(id_or_name).await?;
        if s.spec.paused != paused {
            let next = if paused {
                None
            } else {
                let timing = Timing::of(&s.spec).map_err(ScheduleError::Invalid)?;
                timing.first(self.clock.now_ms(), fastrand::f64())
            };
            self.store.set_schedule_paused(&s.id, paused, next).await?;
            tracing::info!(name = %s.spec.name, paused, "schedule {}", if paused { "paused" } else { "resumed" });
            self.wake.notify_one();
        }
        self.get(&s.id).await
    }

    /// Deletes a schedule (a run already started goes on) and the check
    /// states it made (else they would stay, stale, in "what is wrong now";
    /// their change history stays).
    pub async fn delete(&self, id_or_name: &str) -> Result<Schedule, ScheduleError> {
        let s = self.get(id_or_name).await?;
        self.store.delete_schedule(&s.id).await?;
        let forgotten = self.runner.checks.forget_schedule(&s.id);
        if !forgotten.is_empty() {
            self.store.delete_check_states_of(&forgotten).await?;
        }
        tracing::info!(name = %s.spec.name, checks = forgotten.len(), "schedule deleted");
        self.wake.notify_one();
        Ok(s)
    }

    /// Runs due schedules until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        loop {
            let now = self.clock.now_ms();
            let mut wake_at = now + RELOAD_MS;
            let mut again = false;
            match self.store.schedules().await {
                Ok(rows) => {
                    let mut by_check = HashMap::new();
                    for row in &rows {
                        let s = &row.schedule;
                        let Ok(timing) = Timing::of(&s.spec) else {
                            continue;
                        };
                        if let Some(check) = &s.spec.check {
                            by_check.insert(check.clone(), (s.id.clone(), timing.interval_ms(now)));
                        }
                        let Some(due) = s.next_run_ms.filter(|_| !row.paused) else {
                            continue;
                        };
                        if due <= now {
                            match self.fire(s, &timing, due, now).await {
                                Ok(()) => again = true,
                                Err(e) => {
                                    tracing::error!(schedule = %s.spec.name, error = %e, "cannot start a scheduled run; retrying");
                                    wake_at = wake_at.min(now + 1_000);
                                }
                            }
                        } else {
                            wake_at = wake_at.min(due);
                        }
                    }
                    self.runner.checks.set_schedules(by_check);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the schedules; retrying in 5 s");
                    wake_at = now + 5_000;
                }
            }
            if again {
                continue;
            }
            tokio::select! {
                () = self.clock.sleep_until(wake_at) => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Claims and starts (or skips) the run of `s` due at `due`.
    async fn fire(
        &self,
        s: &Schedule,
        timing: &Timing,
        due: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let running = match &s.spec.check {
            Some(_) => self.runner.checks.running(&s.id, now),
            None => match &s.last_task_id {
                Some(task) => self
                    .store
                    .task(task)
                    .await?
                    .is_some_and(|t| !t.state.is_final()),
                None => false,
            },
        };
        let Some(d) = decide(timing, due, now, running) else {
            // No next time (a cron date that never comes again): pause.
            self.store.set_schedule_paused(&s.id, true, None).await?;
            return Ok(());
        };
        if !self
            .store
            .claim_run(&s.id, due, d.next_ms, now, d.run, d.missed)
            .await?
        {
            return Ok(());
        }
        if d.missed > 0 {
            tracing::warn!(schedule = %s.spec.name, missed = d.missed, due_ms = due,
                "scheduled runs missed while no server was running (counted, not replayed)");
        }
        if !d.run {
            tracing::info!(schedule = %s.spec.name, "the previous run still goes: this run is skipped");
            return Ok(());
        }
        let outcome = match &s.spec.check {
            Some(check) => self.run_check(s, check, timing, now).await,
            None => self.run_command(s).await,
        };
        if let Some(e) = &outcome.error {
            tracing::warn!(schedule = %s.spec.name, error = %e, "scheduled run");
        }
        self.store.finish_run(&s.id, &outcome).await
    }

    async fn run_command(&self, s: &Schedule) -> RunOutcome {
        let new = NewTask {
            action: "exec".into(),
            args: s.spec.command.clone().unwrap_or_default(),
            targets: Vec::new(),
            filter: Some(s.spec.filter.clone().unwrap_or_else(|| "*".into())),
            pool: None,
            count: None,
            timeout_s: s.spec.timeout_s,
            parallel: s.spec.parallel,
            online_only: s.spec.online_only,
            fail_count: s.spec.fail_count,
            fail_rate: None,
        };
        match self
            .runner
            .tasks
            .submit(new, &format!("schedule:{}", s.spec.name))
            .await
        {
            Ok(detail) => RunOutcome {
                task_id: Some(detail.task.id),
                error: None,
            },
            Err(e) => RunOutcome {
                task_id: None,
                error: Some(e.to_string()),
            },
        }
    }

    async fn run_check(&self, s: &Schedule, check: &str, timing: &Timing, now: u64) -> RunOutcome {
        let r = &self.runner;
        let filter_text = s.spec.filter.clone().unwrap_or_else(|| "*".into());
        let filter = match bot_proto::filter::parse(&filter_text) {
            Ok(f) => f,
            Err(e) => {
                return RunOutcome {
                    task_id: None,
                    error: Some(format!("filter: {filter_text:?}: {}", e.message)),
                };
            }
        };
        let timeout_ms = (s.spec.timeout_s.unwrap_or(DEFAULT_RUN_TIMEOUT_S) * 1000.0) as u64;
        let splay_ms = (s.spec.splay_s.unwrap_or(0.0) * 1000.0) as u64;
        let reply_to = s
            .spec
            .reply_to
            .clone()
            .unwrap_or_else(|| topics::CHECK_RESULTS.to_owned());
        let expected: HashSet<String> = r
            .registry
            .select(Some(&filter), true)
            .into_iter()
            .map(|a| a.id)
            .collect();
        let sender = format!("{} (schedule {})", r.signer.sender(), s.spec.name);
        let action = Action::Check(bot_proto::action::CheckArgs {
            name: check.to_owned(),
        });
        let error = expected
            .is_empty()
            .then(|| format!("filter {filter_text:?} matches no online agent"));
        let sent = |ids: Vec<String>| {
            r.checks.sent(
                &ids,
                Sent {
                    schedule_id: s.id.clone(),
                    check: check.to_owned(),
                    interval_ms: timing.interval_ms(now),
                    expected: expected.clone(),
                    deadline_ms: now + splay_ms + timeout_ms,
                },
            );
        };
        if splay_ms == 0 {
            // One request, every matching agent at once.
            let request = r.signer.request_for(
                Draft {
                    action,
                    filter: Some(filter.to_string()),
                    reply_to,
                    ttl_ms: timeout_ms.max(1),
                },
                &sender,
            );
            r.audit
                .request(&request, topics::REQUEST_BROADCAST, &r.signer.public());
            sent(vec![request.id.clone()]);
            if let Err(e) = r
                .publisher
                .publish(
                    topics::REQUEST_BROADCAST,
                    request.encode(),
                    Qos::AtMostOnce,
                    false,
                )
                .await
            {
                return RunOutcome {
                    task_id: None,
                    error: Some(format!("request not sent: {e}")),
                };
            }
        } else {
            // One request per agent, each sent after its own random delay
            // (valid for the splay and the timeout).
            let mut ids = Vec::with_capacity(expected.len());
            for agent in &expected {
                let request = r.signer.request_for(
                    Draft {
                        action: action.clone(),
                        filter: None,
                        reply_to: reply_to.clone(),
                        ttl_ms: (splay_ms + timeout_ms).max(1),
                    },
                    &sender,
                );
                ids.push(request.id.clone());
                let topic = topics::request_agent_topic(agent);
                r.audit.request(&request, &topic, &r.signer.public());
                let at = now + fastrand::u64(0..splay_ms);
                let publisher = r.publisher.clone();
                let clock = self.clock.clone();
                tokio::spawn(async move {
                    clock.sleep_until(at).await;
                    let _ = publisher
                        .publish(topic, request.encode(), Qos::AtLeastOnce, false)
                        .await;
                });
            }
            sent(ids);
        }
        RunOutcome {
            task_id: None,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(s: f64) -> Timing {
        Timing::of(&NewSchedule {
            every_s: Some(s),
            ..NewSchedule::default()
        })
        .unwrap_or(Timing::Every(0))
    }

    #[test]
    fn the_first_run_falls_within_the_first_interval() {
        let t = every(2.0);
        assert_eq!(t.first(10_000, 0.0), Some(10_000));
        assert_eq!(t.first(10_000, 0.5), Some(11_000));
        assert_eq!(t.first(10_000, 0.999_999), Some(11_999));
        for _ in 0..1000 {
            let first = t.first(10_000, fastrand::f64()).unwrap_or(0);
            assert!((10_000..12_000).contains(&first), "{first}");
        }
    }

    #[test]
    fn runs_follow_the_period_and_downtime_is_missed_not_replayed() {
        let t = every(2.0);
        // On time: the next slot, nothing missed.
        let d = decide(&t, 10_000, 10_005, false);
        assert_eq!(
            d,
            Some(Decision {
                run: true,
                next_ms: 12_000,
                missed: 0
            })
        );
        // Late by less than a period: still on the grid.
        let d = decide(&t, 10_000, 11_999, false);
        assert_eq!(
            d,
            Some(Decision {
                run: true,
                next_ms: 12_000,
                missed: 0
            })
        );
        // Down for 5 s: slots 10, 12 and 14 s passed; one run now (for 14 s),
        // 10 and 12 missed, and 16 too (half an interval after this run).
        let d = decide(&t, 10_000, 15_000, false);
        assert_eq!(
            d,
            Some(Decision {
                run: true,
                next_ms: 18_000,
                missed: 3
            })
        );
        // Down for 4.5 s: 10, 12, 14 passed; the run now, 16 s is 1.5 s away.
        let d = decide(&t, 10_000, 14_500, false);
        assert_eq!(
            d,
            Some(Decision {
                run: true,
                next_ms: 16_000,
                missed: 2
            })
        );
        // The previous run still goes: skipped, the grid kept.
        let d = decide(&t, 10_000, 10_001, true);
        assert_eq!(
            d,
            Some(Decision {
                run: false,
                next_ms: 12_000,
                missed: 0
            })
        );
    }

    #[test]
    fn cron_times_and_intervals() {
        let cron = |text: &str| {
            Timing::of(&NewSchedule {
                cron: Some(text.into()),
                ..NewSchedule::default()
            })
        };
        let Ok(t) = cron("*/5 * * * *") else {
            panic!("*/5 * * * * did not parse");
        };
        assert_eq!(t.interval_ms(1_700_000_000_000), 300_000);
        // 2023-11-14T22:13:20Z: the next */5 minute is at :15:00.
        let Some(first) = t.first(1_700_000_000_000, 0.7) else {
            panic!("no next time");
        };
        assert_eq!(first % 300_000, 0, "{first}");
        assert!(first > 1_700_000_000_000 && first - 1_700_000_000_000 <= 300_000);
        // An hour down: 11 slots passed after the due one.
        let Some((next, passed)) = t.advance(first, first + 3_600_000 + 1) else {
            panic!("no advance");
        };
        assert_eq!((next, passed), (first + 3_900_000, 12));
        for bad in ["* * * *", "*/5 * * * * *", "61 * * * *", "x", ""] {
            let e = cron(bad).err().unwrap_or_default();
            assert!(e.starts_with("cron:"), "{bad}: {e}");
        }
    }

    #[test]
    fn validation_names_the_field_and_value() {
        let ok = NewSchedule {
            name: "load".into(),
            every_s: Some(10.0),
            check: Some("load".into()),
            ..NewSchedule::default()
        };
        assert_eq!(validate(&ok), Ok(()));
        let cases: Vec<(NewSchedule, &str)> = vec![
            (
                NewSchedule {
                    name: "bad name".into(),
                    ..ok.clone()
                },
                "name:",
            ),
            (
                NewSchedule {
                    every_s: Some(0.5),
                    ..ok.clone()
                },
                "every_s: 0.5",
            ),
            (
                NewSchedule {
                    every_s: None,
                    ..ok.clone()
                },
                "give every_s",
            ),
            (
                NewSchedule {
                    cron: Some("* * * * *".into()),
                    ..ok.clone()
                },
                "not both",
            ),
            (
                NewSchedule {
                    filter: Some("a and".into()),
                    ..ok.clone()
                },
                "filter: \"a and\"",
            ),
            (
                NewSchedule {
                    check: Some("no way".into()),
                    ..ok.clone()
                },
                "check: name:",
            ),
            (
                NewSchedule {
                    splay_s: Some(-1.0),
                    ..ok.clone()
                },
                "splay_s: -1",
            ),
            (
                NewSchedule {
                    reply_to: Some("bot/v1/req/all".into()),
                    ..ok.clone()
                },
                "reply_to:",
            ),
            (
                NewSchedule {
                    parallel: Some(2),
                    ..ok.clone()
                },
                "parallel: only for command",
            ),
            (
                NewSchedule {
                    command: Some(serde_json::json!({"command": ["true"]})),
                    ..ok.clone()
                },
                "not both",
            ),
            (
                NewSchedule {
                    check: None,
                    ..ok.clone()
                },
                "give check",
            ),
            (
                NewSchedule {
                    check: None,
                    command: Some(serde_json::json!({"shell": 5})),
                    ..ok.clone()
                },
                "command:",
            ),
            (
                NewSchedule {
                    check: None,
                    command: Some(serde_json::json!({"command": ["true"]})),
                    splay_s: Some(5.0),
                    ..ok.clone()
                },
                "splay_s: per-agent splay is for check schedules",
            ),
            (
                NewSchedule {
                    timeout_s: Some(0.0),
                    ..ok.clone()
                },
                "timeout_s: 0",
            ),
        ];
        for (spec, want) in cases {
            let e = validate(&spec).err().unwrap_or_default();
            assert!(e.contains(want), "{spec:?}: {e:?} (want {want:?})");
        }
    }
}
