//! `bot task …`: the operator's client of the server's task API. A task
//! runs one command on many agents with a rollout window (`--parallel`) and
//! failure thresholds; the server keeps it and every target's result.
//!
//! Layout: `client.rs` (server URL, token, the HTTP calls and their errors),
//! `submit.rs` (flags → `NewTask`, checked locally), `render.rs` (every
//! table and report, pure), `watch.rs` (polling and live progress); this file
//! holds the subcommands and the small ones (`list`, `show`, `cancel`,
//! `retry`).
//!
//! Routes used: `POST /api/tasks` (201), `GET /api/tasks?state=&limit=`,
//! `GET /api/tasks/{id}`, `POST /api/tasks/{id}/cancel`,
//! `POST /api/tasks/{id}/retry` (201). Exit codes: 0 ok, 1 the operation or
//! the task failed, 2 bad usage, 130 interrupted.

pub mod client;
pub mod render;
pub mod submit;
pub mod watch;

use std::process::ExitCode;
use std::time::Duration;

use bot_proto::api::{RetryTask, TaskDetail, TaskState};
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use client::{ApiClient, CallError, ServerArgs};
use submit::SubmitArgs;
use watch::WatchArgs;

/// Tasks on the server: submit, list, show, watch, cancel, retry.
#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    #[command(subcommand)]
    pub command: TaskCommand,
}

/// The `bot task` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TaskCommand {
    /// Submit a task: a command for many agents, a few at a time, stopping when too many fail.
    ///
    /// Choose the targets with exactly one of -F FILTER, -T ID,… or
    /// --pool P --count N. The server records the task and every target's
    /// result: follow it with --watch (or `bot task watch ID`), read the
    /// output with `bot task show ID`.
    ///
    /// Prints the task id (with --json: the task). With --watch the exit
    /// code says how the task ended: 0 SUCCEEDED, 1 FAILED or CANCELLED.
    Submit(SubmitArgs),
    /// List recent tasks, newest first: state, target counts, age, command.
    List(ListArgs),
    /// Show a task: its settings, then every target's state, exit code and output.
    ///
    /// Exit code 1 when the task FAILED or was CANCELLED.
    Show(ShowArgs),
    /// Follow a task until it ends: each target's state changes, then the summary.
    ///
    /// On a terminal a progress line stays at the bottom; otherwise each
    /// change is printed once. Exit code 0 when the task SUCCEEDED, 1 when it
    /// FAILED or was CANCELLED, 130 when interrupted: Ctrl-C stops watching,
    /// not the task.
    Watch(WatchArgs),
    /// Cancel a task: no further target starts (running ones finish).
    Cancel(CancelArgs),
    /// Retry a task's FAILED, TIMED_OUT and LOST targets as a new task.
    ///
    /// Prints the new task's id; --include-skipped also runs the targets a
    /// threshold or a cancel skipped.
    Retry(RetryArgs),
}

/// `bot task list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only tasks in this state: WAITING, RUNNING, SUCCEEDED, FAILED or CANCELLED.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<TaskState>,
    /// At most this many tasks (1..=1000).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Print the tasks as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bot task show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The task id, or a unique prefix of one (as git and docker take).
    #[arg(value_parser = task_id)]
    pub id: String,
    /// Print the task and its targets as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bot task cancel`.
#[derive(Debug, Clone, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The task id, or a unique prefix of one (as git and docker take).
    #[arg(value_parser = task_id)]
    pub id: String,
    /// Print the task as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bot task retry`.
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The task id, or a unique prefix of one (as git and docker take).
    #[arg(value_parser = task_id)]
    pub id: String,
    /// Also run the targets that were SKIPPED.
    #[arg(long)]
    pub include_skipped: bool,
    /// Then watch the new task until it ends, like `bot task watch`.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch.
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = crate::positive_secs, requires = "watch")]
    pub interval: f64,
    /// Print the new task as JSON (with --watch: once it has ended).
    #[arg(long)]
    pub json: bool,
}

fn parse_state(s: &str) -> Result<TaskState, String> {
    s.parse()
}

/// A task id as it may appear in a URL path: letters, digits, `-`, `_`.
pub fn task_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a task id (letters, digits, '-' and '_', at most 128)"
        ))
    }
}

/// Reports a usage problem found after parsing; exit code 2.
pub(crate) fn usage(message: &str) -> ExitCode {
    eprintln!("bot: {message}");
    ExitCode::from(2)
}

/// Pretty JSON for `--json`.
pub(crate) fn to_json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| anyhow::anyhow!("cannot encode the JSON output: {e}"))
}

/// Runs `bot task …`.
pub async fn run(args: TaskArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match args.command {
        TaskCommand::Submit(a) => run_submit(a, shutdown).await,
        TaskCommand::List(a) => run_list(a, shutdown).await,
        TaskCommand::Show(a) => run_show(a, shutdown).await,
        TaskCommand::Watch(a) => watch::run(a, shutdown).await,
        TaskCommand::Cancel(a) => run_cancel(a, shutdown).await,
        TaskCommand::Retry(a) => run_retry(a, shutdown).await,
    }
}

/// Awaits a call unless the operator interrupts: `None` then.
pub(crate) async fn interruptible<T>(
    call: impl Future<Output = Result<T, CallError>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<T>> {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Ok(None),
        r = call => Ok(Some(r?)),
    }
}

pub(crate) const INTERRUPTED: u8 = 130;

use bot_proto::now_ms;

async fn run_submit(a: SubmitArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let body = match submit::new_task(&a) {
        Ok(b) => b,
        Err(e) => return Ok(usage(&e)),
    };
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let Some(detail) = interruptible(client.submit(&body), &shutdown).await? else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    after_create(&client, detail, a.watch, a.interval, a.json, &shutdown).await
}

/// Prints a task just created (id, or JSON) and watches it if asked.
async fn after_create(
    client: &ApiClient,
    detail: TaskDetail,
    watch: bool,
    interval: f64,
    json: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    if watch {
        if !json {
            println!("{}", detail.task.id);
        }
        let id = detail.task.id.clone();
        let interval = Duration::from_secs_f64(interval);
        return watch::watch(client, &id, Some(detail), interval, json, shutdown).await;
    }
    if json {
        println!("{}", to_json(&detail)?);
    } else {
        println!("{}", detail.task.id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_list(a: ListArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let Some(tasks) = interruptible(client.list(a.state, a.limit), &shutdown).await? else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    if a.json {
        println!("{}", to_json(&tasks)?);
    } else if tasks.is_empty() {
        eprintln!(
            "no tasks{}",
            a.state
                .map(|s| format!(" in state {s}"))
                .unwrap_or_default()
        );
    } else {
        print!("{}", render::list_table(&tasks, now_ms()));
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_show(a: ShowArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let Some(detail) = interruptible(client.get(&a.id), &shutdown).await? else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    if a.json {
        println!("{}", to_json(&detail)?);
    } else {
        print!("{}", render::show_text(&detail, now_ms()));
    }
    Ok(match detail.task.state {
        TaskState::Failed | TaskState::Cancelled => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

async fn run_cancel(a: CancelArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let Some(detail) = interruptible(client.cancel(&a.id), &shutdown).await? else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    if a.json {
        println!("{}", to_json(&detail)?);
    } else {
        println!("{}", cancel_line(&detail));
    }
    Ok(ExitCode::SUCCESS)
}

/// `task ID RUNNING (cancelled by alice): 2 ok, 0 failed, 1 running, 7
/// skipped (of 10)`: running targets finish, nothing further starts.
pub fn cancel_line(d: &TaskDetail) -> String {
    let reason = d
        .task
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "task {} {}{reason}: {}",
        d.task.id,
        d.task.state,
        render::counts_text(&d.counts)
    )
}

async fn run_retry(a: RetryArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let body = RetryTask {
        include_skipped: a.include_skipped,
    };
    let Some(detail) = interruptible(client.retry(&a.id, &body), &shutdown).await? else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    after_create(&client, detail, a.watch, a.interval, a.json, &shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        task: TaskCommand,
    }

    fn parse(argv: &[&str]) -> Result<TaskCommand, clap::Error> {
        let mut all = vec!["task"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).map(|c| c.task)
    }

    #[test]
    fn task_ids_are_url_safe() {
        assert!(task_id("0195b7f0c1a27e3d9a4f5b6c7d8e9f01").is_ok());
        for bad in ["", "a/b", "..", "a b", "a?b=1", &"x".repeat(129)] {
            assert!(task_id(bad).is_err(), "{bad:?}");
        }
        let e = parse(&["show", "../admin"]).expect_err("path in id");
        assert!(
            e.to_string().contains("\"../admin\" is not a task id"),
            "{e}"
        );
    }

    #[test]
    fn subcommands_parse() {
        let Ok(TaskCommand::List(l)) = parse(&["list", "--state", "running", "--limit", "5"])
        else {
            panic!("list");
        };
        assert_eq!((l.state, l.limit), (Some(TaskState::Running), 5));
        assert_eq!(l.server.server.as_str(), "http://127.0.0.1:8080");
        let e = parse(&["list", "--state", "DONE"]).expect_err("bad state");
        assert!(e.to_string().contains("\"DONE\" is not one of"), "{e}");
        let e = parse(&["list", "--server", "ftp://h:1"]).expect_err("ftp");
        assert!(e.to_string().contains("https://HOST:PORT"), "{e}");

        let Ok(TaskCommand::Retry(r)) = parse(&["retry", "abc", "--include-skipped", "--watch"])
        else {
            panic!("retry");
        };
        assert!(r.include_skipped && r.watch && r.interval == 0.5);
        let Ok(TaskCommand::Watch(w)) = parse(&["watch", "abc", "--interval", "2"]) else {
            panic!("watch");
        };
        assert_eq!((w.id.as_str(), w.interval), ("abc", 2.0));
        assert!(parse(&["watch", "abc", "--interval", "0"]).is_err());
        assert!(parse(&["submit", "-F", "x", "--interval", "1", "--", "true"]).is_err());
    }

    #[test]
    fn token_values_stay_out_of_help() {
        let e = parse(&["list", "--help"]).expect_err("help is an error kind");
        let help = e.to_string();
        assert!(help.contains("--token <TOKEN>"), "{help}");
        assert!(help.contains("[env: BOT_TOKEN]"), "{help}");
    }

    #[test]
    fn cancel_prints_state_and_counts() {
        use bot_proto::api::TargetState;
        let mut d = render::tests::detail(
            TaskState::Cancelled,
            vec![
                render::tests::target(0, "a", TargetState::Succeeded),
                render::tests::target(1, "b", TargetState::Skipped),
            ],
        );
        assert_eq!(
            cancel_line(&d),
            "task 0195b7f0c1a27e3d9a4f5b6c7d8e9f01 CANCELLED: 1 ok, 0 failed, 1 skipped (of 2)"
        );
        d.task.reason = Some("cancelled by alice".into());
        assert!(cancel_line(&d).contains(" CANCELLED (cancelled by alice): "));
    }
}
