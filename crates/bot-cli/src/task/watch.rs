//! `bot task watch ID`: polls `GET /api/tasks/{id}` and shows each target's
//! state changes until the task ends. On a terminal a progress line with the
//! counts stays at the bottom and one line per change scrolls above it;
//! otherwise each change is printed once as a line. The final summary and
//! the exit code (0 SUCCEEDED, 1 FAILED or CANCELLED) follow; Ctrl-C stops
//! watching, not the task (exit 130).
//!
//! The diff between two polls and its lines are pure functions, tested
//! below; the loop around them is thin.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use bot_proto::api::{TargetRun, TargetState, TaskDetail, TaskState};
use clap::Args;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::client::{ApiClient, CallError, ServerArgs};
use super::render;

/// How long the server may stay unreachable before watching gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Follow a task until it ends: each target's state changes, then the
/// summary.
///
/// Exit code 0 when the task SUCCEEDED, 1 when it FAILED or was CANCELLED,
/// 130 when interrupted (Ctrl-C stops watching; the task goes on).
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The task id (as printed by `bot task submit` or `bot task list`), or a
    /// unique prefix of one.
    #[arg(value_parser = super::task_id)]
    pub id: String,
    /// Seconds between polls.
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = crate::positive_secs)]
    pub interval: f64,
    /// Print no progress; print the task as JSON once it has ended.
    #[arg(long)]
    pub json: bool,
}

/// One target whose state changed between two polls.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<'a> {
    /// The target now.
    pub target: &'a TargetRun,
    /// Its state at the previous poll (`None`: first seen).
    pub from: Option<TargetState>,
}

/// The targets of `cur` whose state differs from `prev` (matched by rollout
/// position). Without `prev`, every target that has left WAITING.
pub fn diff<'a>(prev: Option<&TaskDetail>, cur: &'a TaskDetail) -> Vec<Change<'a>> {
    let before: HashMap<u32, TargetState> = prev
        .map(|p| p.targets.iter().map(|t| (t.seq, t.state)).collect())
        .unwrap_or_default();
    cur.targets
        .iter()
        .filter_map(|t| match before.get(&t.seq) {
            Some(&s) if s == t.state => None,
            Some(&s) => Some(Change {
                target: t,
                from: Some(s),
            }),
            None if t.state == TargetState::Waiting => None,
            None => Some(Change {
                target: t,
                from: None,
            }),
        })
        .collect()
}

/// `web1: RUNNING → SUCCEEDED (exit 0, 1.2 s)`.
pub fn change_line(c: &Change<'_>) -> String {
    let t = c.target;
    let mut line = match c.from {
        Some(from) => format!("{}: {from} → {}", render::target_name(t), t.state),
        None => format!("{}: {}", render::target_name(t), t.state),
    };
    let mut details = Vec::new();
    if t.state.is_final() {
        details.extend(render::exit_text(t));
        if let (Some(s), Some(f)) = (t.started_ms, t.finished_ms) {
            details.push(render::fmt_duration(f.saturating_sub(s)));
        }
        if t.exit_code.is_none()
            && let Some(e) = t.error.as_deref().and_then(|e| e.lines().next())
            && !e.trim().is_empty()
        {
            details.push(render::truncate(e.trim(), 100));
        }
    }
    if !details.is_empty() {
        line += &format!(" ({})", details.join(", "));
    }
    line
}

/// The progress line: `RUNNING 3/10 done: 2 ok, 1 failed, 4 running, 3 waiting (of 10)`.
pub fn progress_line(d: &TaskDetail) -> String {
    let c = &d.counts;
    let done = c.total.saturating_sub(c.running + c.waiting);
    format!(
        "{} {done}/{} done: {}",
        d.task.state,
        c.total,
        render::counts_text(c)
    )
}

/// The exit code for a task's final state.
pub fn exit_code(state: TaskState) -> ExitCode {
    if state == TaskState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Where watching prints.
enum Display {
    /// A terminal: changes scroll above a redrawn progress line.
    Tty(indicatif::ProgressBar),
    /// A pipe or file: each change once, as a line.
    Lines,
    /// `--json`: nothing until the end.
    Quiet,
}

impl Display {
    fn new(json: bool) -> Display {
        if json {
            return Display::Quiet;
        }
        if !std::io::stdout().is_terminal() {
            return Display::Lines;
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Display::Tty(bar)
    }

    fn update(&self, d: &TaskDetail, changes: &[Change<'_>]) {
        match self {
            Display::Tty(bar) => {
                for c in changes {
                    bar.println(change_line(c));
                }
                bar.set_message(progress_line(d));
            }
            Display::Lines => {
                for c in changes {
                    println!("{}", change_line(c));
                }
            }
            Display::Quiet => {}
        }
    }

    fn trouble(&self, e: &CallError, first: bool) {
        match self {
            Display::Tty(bar) => bar.set_message(format!("{e} (retrying)")),
            _ if first => eprintln!("bot: {e} (retrying)"),
            _ => {}
        }
    }

    fn finish(&self) {
        if let Display::Tty(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Runs `bot task watch`.
pub async fn run(args: WatchArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&args.server) {
        Ok(c) => c,
        Err(e) => return Ok(super::usage(&e)),
    };
    let interval = Duration::from_secs_f64(args.interval);
    watch(&client, &args.id, None, interval, args.json, &shutdown).await
}

/// Watches task `id` until it ends (starting from `first`, already fetched,
/// if given) and prints the summary (or, with `json`, the task).
pub async fn watch(
    client: &ApiClient,
    id: &str,
    first: Option<TaskDetail>,
    interval: Duration,
    json: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let display = Display::new(json);
    let mut prev: Option<TaskDetail> = None;
    // Until the server has answered once, an unreachable server is an error
    // at once (a typo in --server), not something to wait out.
    let mut answered = first.is_some();
    let mut next = first;
    let mut failing_since: Option<Instant> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let detail = match next.take() {
            Some(d) => d,
            None => {
                let polled = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => None,
                    r = async { ticker.tick().await; client.get(id).await } => Some(r),
                };
                match polled {
                    None => {
                        display.finish();
                        eprintln!(
                            "stopped watching; task {id} goes on (bot task cancel {id} stops it)"
                        );
                        return Ok(ExitCode::from(130));
                    }
                    Some(Ok(d)) => d,
                    Some(Err(e)) if e.is_transient() && answered => {
                        let first_failure = failing_since.is_none();
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= GIVE_UP_AFTER {
                            display.finish();
                            return Err(anyhow::Error::new(e).context(format!(
                                "gave up watching task {id} after {} s",
                                GIVE_UP_AFTER.as_secs()
                            )));
                        }
                        display.trouble(&e, first_failure);
                        continue;
                    }
                    Some(Err(e)) => {
                        display.finish();
                        return Err(e.into());
                    }
                }
            }
        };
        answered = true;
        if failing_since.take().is_some() && matches!(display, Display::Lines) {
            eprintln!("bot: the server answers again");
        }
        let changes = diff(prev.as_ref(), &detail);
        display.update(&detail, &changes);
        if detail.task.state.is_final() {
            display.finish();
            if json {
                println!("{}", super::to_json(&detail)?);
            } else {
                print!("{}", render::summary(&detail));
            }
            return Ok(exit_code(detail.task.state));
        }
        prev = Some(detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::render::tests::{detail, target};

    #[test]
    fn first_poll_shows_targets_that_left_waiting() {
        let d = detail(
            TaskState::Running,
            vec![
                target(0, "a", TargetState::Succeeded),
                target(1, "b", TargetState::Running),
                target(2, "c", TargetState::Waiting),
            ],
        );
        let lines: Vec<String> = diff(None, &d).iter().map(change_line).collect();
        assert_eq!(lines, ["a: SUCCEEDED (exit 0, 1.2 s)", "b: RUNNING"]);
    }

    #[test]
    fn later_polls_show_only_changes() {
        let before = detail(
            TaskState::Running,
            vec![
                target(0, "a", TargetState::Running),
                target(1, "b", TargetState::Running),
                target(2, "c", TargetState::Waiting),
                target(3, "d", TargetState::Running),
                target(4, "", TargetState::Waiting),
            ],
        );
        let mut lost = target(1, "b", TargetState::Lost);
        lost.error = Some("agent went offline\nat 12:00".into());
        let mut killed = target(3, "d", TargetState::TimedOut);
        killed.signal = Some(9);
        let after = detail(
            TaskState::Running,
            vec![
                target(0, "a", TargetState::Succeeded),
                lost,
                target(2, "c", TargetState::Running),
                killed,
                target(4, "", TargetState::Waiting),
            ],
        );
        let lines: Vec<String> = diff(Some(&before), &after)
            .iter()
            .map(change_line)
            .collect();
        assert_eq!(
            lines,
            [
                "a: RUNNING → SUCCEEDED (exit 0, 1.2 s)",
                "b: RUNNING → LOST (1.2 s, agent went offline)",
                "c: WAITING → RUNNING",
                "d: RUNNING → TIMED_OUT (signal 9, 1.2 s)",
            ]
        );
        assert!(diff(Some(&after), &after).is_empty());
        assert_eq!(
            progress_line(&after),
            "RUNNING 3/5 done: 1 ok, 0 failed, 1 timed out, 1 lost, 1 running, 1 waiting (of 5)"
        );
        let slot = target(4, "", TargetState::Skipped);
        assert_eq!(
            change_line(&Change {
                target: &slot,
                from: Some(TargetState::Waiting)
            }),
            "slot 4: WAITING → SKIPPED"
        );
    }

    #[test]
    fn exit_codes_follow_the_final_state() {
        assert_eq!(exit_code(TaskState::Succeeded), ExitCode::SUCCESS);
        assert_eq!(exit_code(TaskState::Failed), ExitCode::from(1));
        assert_eq!(exit_code(TaskState::Cancelled), ExitCode::from(1));
    }

    #[tokio::test]
    async fn watches_until_the_task_ends_and_exits_by_its_state() {
        use crate::task::client::{ApiClient, tests::fake_server};
        let running = detail(
            TaskState::Running,
            vec![
                target(0, "a", TargetState::Running),
                target(1, "b", TargetState::Waiting),
            ],
        );
        let failed = detail(
            TaskState::Failed,
            vec![
                target(0, "a", TargetState::Failed),
                target(1, "b", TargetState::Skipped),
            ],
        );
        let json = |d: &TaskDetail| serde_json::to_string(d).expect("encode");
        let (url, requests) = fake_server(vec![
            (200, json(&running)),
            (503, "restarting".to_owned()),
            (200, json(&failed)),
        ]);
        let client = ApiClient::direct(url, None);
        let shutdown = CancellationToken::new();
        let code = watch(
            &client,
            "t1",
            Some(running.clone()),
            Duration::from_millis(10),
            true,
            &shutdown,
        )
        .await
        .expect("watch");
        assert_eq!(code, ExitCode::from(1));
        for _ in 0..3 {
            let req = requests.recv().expect("poll");
            assert!(req.starts_with("GET /api/tasks/t1 HTTP/1.1"), "{req}");
        }

        // Interrupted: exit 130, the task is left alone.
        shutdown.cancel();
        let code = watch(
            &client,
            "t1",
            Some(running),
            Duration::from_secs(60),
            true,
            &shutdown,
        )
        .await
        .expect("watch");
        assert_eq!(code, ExitCode::from(130));
    }
}
