//! One task's rollout as a pure state machine: which target starts next,
//! what a result does to the counts, when a threshold stops the rollout, and
//! when the task is over. No I/O and no clock: the engine passes `now` in and
//! persists and publishes what changed.
//!
//! Invariants (checked by the tests here and, end to end, by the engine
//! tests from the recorded start and end times):
//! - at most `parallel` targets are RUNNING at any time;
//! - thresholds: once `fail_count` targets have failed (N ≥ 1; -1 = never),
//!   or once failures / targets exceed `fail_rate`, the task is FAILED;
//! - once a threshold is reached or the task is cancelled, no target starts:
//!   every WAITING target becomes SKIPPED at that moment;
//! - a target's state only moves forward (WAITING → RUNNING → final, or
//!   WAITING → SKIPPED), and a final state never changes.

use bot_proto::api::{TargetCounts, TargetRun, TargetState, Task, TaskState};

/// The rollout of one task.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    pub task: Task,
    pub targets: Vec<TargetRun>,
    pub counts: TargetCounts,
    /// Index of the first target that may still be WAITING.
    next: usize,
    /// A threshold was crossed or the task was cancelled.
    stopped: bool,
    cancelled: bool,
}

/// What changed in one step: the targets to persist (by index) and whether
/// the task row changed too.
#[derive(Debug, Default)]
pub(crate) struct Step {
    pub targets: Vec<usize>,
    pub task: bool,
}

impl Step {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && !self.task
    }
}

/// How a target ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub state: TargetState,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub data: Option<serde_json::Value>,
}

impl Outcome {
    /// An outcome with no output: timeouts, lost agents.
    pub fn bare(state: TargetState, error: String) -> Outcome {
        Outcome {
            state,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error),
            data: None,
        }
    }
}

impl Rollout {
    /// A rollout of `task` over `targets` as stored (fresh, or resumed after
    /// a restart).
    pub fn new(task: Task, targets: Vec<TargetRun>) -> Rollout {
        let counts = TargetCounts::of(&targets);
        let next = targets
            .iter()
            .position(|t| t.state == TargetState::Waiting)
            .unwrap_or(targets.len());
        let cancelled = task.state == TaskState::Cancelled;
        Rollout {
            task,
            targets,
            counts,
            next,
            stopped: cancelled,
            cancelled,
        }
    }

    /// Is the task over (nothing running, nothing left to start)?
    pub fn is_final(&self) -> bool {
        self.task.state.is_final()
    }

    /// The indices of targets to start now, each already moved to RUNNING
    /// (with `started_ms = now`); the caller fills in the request and sends
    /// it. Respects the parallel window and the stop flag.
    pub fn start_due(&mut self, now: u64, step: &mut Step) -> Vec<usize> {
        let mut started = Vec::new();
        if self.stopped || self.task.state.is_final() {
            return started;
        }
        let window = self.task.parallel.max(1);
        while self.counts.running < window && self.next < self.targets.len() {
            let i = self.next;
            self.next += 1;
            if self.targets[i].state != TargetState::Waiting {
                continue;
            }
            self.move_target(i, TargetState::Running);
            self.targets[i].started_ms = Some(now);
            step.targets.push(i);
            started.push(i);
        }
        if !started.is_empty() && self.task.state == TaskState::Waiting {
            self.task.state = TaskState::Running;
            self.task.started_ms = Some(now);
            step.task = true;
        }
        started
    }

    /// Records how target `i` ended (ignored unless it is RUNNING), then
    /// checks the thresholds.
    pub fn finish(&mut self, i: usize, outcome: Outcome, now: u64, step: &mut Step) {
        if self.targets.get(i).map(|t| t.state) != Some(TargetState::Running) {
            return;
        }
        let failed = outcome.state.is_failure();
        self.move_target(i, outcome.state);
        let t = &mut self.targets[i];
        t.exit_code = outcome.exit_code;
        t.signal = outcome.signal;
        t.stdout = outcome.stdout;
        t.stderr = outcome.stderr;
        t.error = outcome.error;
        t.data = outcome.data;
        t.finished_ms = Some(now);
        step.targets.push(i);
        if failed
            && !self.stopped
            && let Some(reason) = self.threshold_crossed()
        {
            self.stop(reason, step);
        }
    }

    /// Cancels: nothing further starts. False if the task was already over.
    pub fn cancel(&mut self, who: &str, step: &mut Step) -> bool {
        if self.task.state.is_final() || self.cancelled {
            return false;
        }
        self.cancelled = true;
        if !self.stopped {
            self.stop(format!("cancelled by {who}"), step);
        } else {
            self.task.reason = Some(format!("cancelled by {who}"));
            step.task = true;
        }
        true
    }

    /// Ends the task if nothing runs and nothing is left to start.
    pub fn settle(&mut self, now: u64, step: &mut Step) {
        if self.task.state.is_final() || self.counts.running > 0 {
            return;
        }
        if !self.stopped && self.counts.waiting > 0 {
            return;
        }
        self.task.state = if self.cancelled {
            TaskState::Cancelled
        } else if self.counts.succeeded == self.counts.total {
            TaskState::Succeeded
        } else {
            TaskState::Failed
        };
        if self.task.state == TaskState::Failed && self.task.reason.is_none() {
            let c = &self.counts;
            self.task.reason = Some(format!(
                "{} of {} targets did not succeed",
                c.total - c.succeeded,
                c.total
            ));
        }
        self.task.finished_ms = Some(now);
        step.task = true;
    }

    /// The threshold crossed by the current failures, in words.
    fn threshold_crossed(&self) -> Option<String> {
        let failures = self.counts.failures();
        let fc = self.task.fail_count;
        if fc >= 1 && i64::from(failures) >= fc {
            return Some(format!(
                "fail_count {fc} reached: {failures} failure{}",
                if failures == 1 { "" } else { "s" }
            ));
        }
        let total = self.counts.total.max(1);
        let rate = f64::from(failures) / f64::from(total);
        if rate > self.task.fail_rate {
            return Some(format!(
                "fail_rate {} exceeded: {failures} of {total} targets failed",
                self.task.fail_rate
            ));
        }
        None
    }

    /// Stops the rollout: every WAITING target becomes SKIPPED now.
    fn stop(&mut self, reason: String, step: &mut Step) {
        self.stopped = true;
        self.task.reason = Some(reason);
        step.task = true;
        for i in self.next..self.targets.len() {
            if self.targets[i].state == TargetState::Waiting {
                self.move_target(i, TargetState::Skipped);
                step.targets.push(i);
            }
        }
        self.next = self.targets.len();
    }

    fn move_target(&mut self, i: usize, to: TargetState) {
        let from = self.targets[i].state;
        let c = &mut self.counts;
        dec(c, from);
        inc(c, to);
        self.targets[i].state = to;
    }
}

fn counter(c: &mut TargetCounts, s: TargetState) -> &mut u32 {
    match s {
        TargetState::Waiting => &mut c.waiting,
        TargetState::Running => &mut c.running,
        TargetState::Succeeded => &mut c.succeeded,
        TargetState::Failed => &mut c.failed,
        TargetState::TimedOut => &mut c.timed_out,
        TargetState::Skipped => &mut c.skipped,
        TargetState::Lost => &mut c.lost,
    }
}

fn dec(c: &mut TargetCounts, s: TargetState) {
    let n = counter(c, s);
    *n = n.saturating_sub(1);
}

fn inc(c: &mut TargetCounts, s: TargetState) {
    *counter(c, s) += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(parallel: u32, fail_count: i64, fail_rate: f64) -> Task {
        Task {
            id: "t".into(),
            state: TaskState::Waiting,
            action: "exec".into(),
            args: serde_json::json!({}),
            filter: None,
            pool: None,
            timeout_ms: 1000,
            parallel,
            fail_count,
            fail_rate,
            retry_of: None,
            created_by: "test".into(),
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            reason: None,
        }
    }

    fn targets(n: u32) -> Vec<TargetRun> {
        (0..n)
            .map(|seq| TargetRun::waiting("t", seq, format!("a{seq}"), format!("n{seq}")))
            .collect()
    }

    fn ok() -> Outcome {
        Outcome {
            state: TargetState::Succeeded,
            exit_code: Some(0),
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            data: None,
        }
    }

    fn fail() -> Outcome {
        Outcome {
            exit_code: Some(1),
            state: TargetState::Failed,
            ..ok()
        }
    }

    /// Runs a rollout where target `i` fails iff `fails(i)`, finishing the
    /// oldest running target first; returns the rollout and how many started.
    fn drive(mut r: Rollout, fails: impl Fn(usize) -> bool) -> (Rollout, usize) {
        let mut started = 0;
        let mut running: std::collections::VecDeque<usize> = Default::default();
        for now in 0..10_000u64 {
            let mut step = Step::default();
            for i in r.start_due(now, &mut step) {
                started += 1;
                running.push_back(i);
            }
            assert!(r.counts.running <= r.task.parallel.max(1));
            r.settle(now, &mut step);
            if r.is_final() {
                return (r, started);
            }
            if let Some(i) = running.pop_front() {
                r.finish(i, if fails(i) { fail() } else { ok() }, now, &mut step);
            }
        }
        panic!("rollout did not end");
    }

    #[test]
    fn all_succeed_within_the_window() {
        let (r, started) = drive(Rollout::new(task(3, -1, 1.0), targets(10)), |_| false);
        assert_eq!(started, 10);
        assert_eq!(r.task.state, TaskState::Succeeded);
        assert_eq!(r.counts.succeeded, 10);
        assert!(r.task.reason.is_none());
    }

    #[test]
    fn fail_count_fails_the_task_at_exactly_that_many_failures() {
        // The case: 10 targets all failing, parallel 1, fail_count 3:
        // 3 FAILED, 7 SKIPPED.
        for fc in 1..5 {
            let (r, started) = drive(Rollout::new(task(1, fc, 1.0), targets(10)), |_| true);
            assert_eq!(started as i64, fc, "fail_count {fc}");
            assert_eq!(r.task.state, TaskState::Failed);
            assert_eq!(r.counts.failed as i64, fc);
            assert_eq!(r.counts.skipped as i64, 10 - fc);
            assert!(
                r.task
                    .reason
                    .as_deref()
                    .is_some_and(|s| s.starts_with(&format!("fail_count {fc} reached"))),
                "{:?}",
                r.task.reason
            );
        }
    }

    #[test]
    fn one_failure_fewer_than_fail_count_runs_everything() {
        // fail_count 3 with only 2 failing targets (N - 1): all 10 run.
        let (r, started) = drive(Rollout::new(task(1, 3, 1.0), targets(10)), |i| i < 2);
        assert_eq!(started, 10);
        assert_eq!(r.counts.failed, 2);
        assert_eq!(r.counts.skipped, 0);
        assert_eq!(r.task.state, TaskState::Failed);
        assert!(
            r.task
                .reason
                .as_deref()
                .is_some_and(|s| s.contains("did not succeed"))
        );
    }

    #[test]
    fn fail_rate_equal_runs_on_and_just_above_stops() {
        // 10 targets, rate 0.2, the first 2 failing: 2/10 = 0.2 is not above.
        let (r, started) = drive(Rollout::new(task(1, -1, 0.2), targets(10)), |i| i < 2);
        assert_eq!((started, r.counts.skipped), (10, 0));
        // The first 3 failing: 0.3 > 0.2 stops at the third.
        let (r, started) = drive(Rollout::new(task(1, -1, 0.2), targets(10)), |i| i < 3);
        assert_eq!((started, r.counts.failed, r.counts.skipped), (3, 3, 7));
    }

    #[test]
    fn fail_rate_stops_when_exceeded() {
        // 10 targets, rate 0.2: the third failure (0.3) stops it.
        let (r, started) = drive(Rollout::new(task(1, -1, 0.2), targets(10)), |_| true);
        assert_eq!(started, 3);
        assert_eq!(r.counts.failed, 3);
        assert_eq!(r.counts.skipped, 7);
    }

    #[test]
    fn failures_within_thresholds_run_everything_and_fail_the_task() {
        let (r, started) = drive(Rollout::new(task(2, -1, 1.0), targets(6)), |i| i % 2 == 0);
        assert_eq!(started, 6);
        assert_eq!(r.task.state, TaskState::Failed);
        assert_eq!(r.counts.failed, 3);
        assert_eq!(r.counts.skipped, 0);
    }

    #[test]
    fn nothing_starts_after_a_stop_even_with_a_wide_window() {
        let mut r = Rollout::new(task(4, 1, 1.0), targets(10));
        let mut step = Step::default();
        let first = r.start_due(0, &mut step);
        assert_eq!(first, vec![0, 1, 2, 3]);
        r.finish(0, fail(), 1, &mut step);
        assert_eq!(r.counts.skipped, 6);
        assert!(r.start_due(2, &mut step).is_empty());
        // The running ones still finish and are recorded.
        r.finish(1, ok(), 3, &mut step);
        r.finish(2, ok(), 3, &mut step);
        r.settle(3, &mut step);
        assert!(!r.is_final(), "target 3 still runs");
        r.finish(3, ok(), 4, &mut step);
        r.settle(4, &mut step);
        assert_eq!(r.task.state, TaskState::Failed);
        assert_eq!(r.counts.succeeded, 3);
    }

    #[test]
    fn cancel_skips_waiting_and_waits_for_running() {
        let mut r = Rollout::new(task(2, -1, 1.0), targets(5));
        let mut step = Step::default();
        r.start_due(0, &mut step);
        assert!(r.cancel("ops", &mut step));
        assert_eq!(r.counts.skipped, 3);
        r.settle(1, &mut step);
        assert!(!r.is_final());
        r.finish(0, ok(), 2, &mut step);
        r.finish(1, ok(), 2, &mut step);
        r.settle(2, &mut step);
        assert_eq!(r.task.state, TaskState::Cancelled);
        assert_eq!(r.task.reason.as_deref(), Some("cancelled by ops"));
        assert!(!r.cancel("ops", &mut step), "already over");
        let mut r2 = Rollout::new(task(1, -1, 1.0), targets(2));
        r2.start_due(0, &mut step);
        assert!(r2.cancel("ops", &mut step));
        assert!(!r2.cancel("ops", &mut step), "already cancelled");
    }

    #[test]
    fn a_result_for_a_target_not_running_is_ignored() {
        let mut r = Rollout::new(task(1, -1, 1.0), targets(2));
        let mut step = Step::default();
        r.finish(1, ok(), 0, &mut step);
        assert_eq!(r.counts.waiting, 2);
        r.start_due(0, &mut step);
        r.finish(0, ok(), 1, &mut step);
        r.finish(0, fail(), 2, &mut step);
        assert_eq!(r.targets[0].state, TargetState::Succeeded);
        assert_eq!(r.counts.succeeded, 1);
    }

    #[test]
    fn resumed_rollout_continues_where_it_was() {
        let mut ts = targets(4);
        ts[0].state = TargetState::Succeeded;
        ts[1].state = TargetState::Running;
        let mut t = task(2, -1, 1.0);
        t.state = TaskState::Running;
        let mut r = Rollout::new(t, ts);
        let mut step = Step::default();
        assert_eq!(r.start_due(5, &mut step), vec![2]);
        r.finish(1, ok(), 6, &mut step);
        assert_eq!(r.start_due(6, &mut step), vec![3]);
    }
}
