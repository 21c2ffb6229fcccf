//! `bot schedule add|list|show|pause|resume|rm` and `bot checks`: the
//! server's schedules and the states of scheduled checks, through its HTTP
//! API like `bot task`.
//!
//! Routes used: `POST /api/schedules` (201), `GET /api/schedules`,
//! `GET /api/schedules/{id}`, `POST /api/schedules/{id}/pause|resume`,
//! `DELETE /api/schedules/{id}`, `GET /api/checks?filter=&state=&check=`.
//! Exit codes: 0 ok, 1 the call failed (`bot checks`: a listed check is
//! not OK), 2 bad usage, 130 interrupted.

use std::fmt::Write as _;
use std::process::ExitCode;

use bot_proto::api::{CheckStatus, NewSchedule, Schedule, check_severity};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::task::client::{ApiClient, CallError, ServerArgs};
use crate::task::render::{fmt_age, fmt_duration, fmt_utc, shell_quote, truncate};
use crate::task::{INTERRUPTED, interruptible, to_json, usage};

/// Schedules on the server.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

/// `bot schedule` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ScheduleCommand {
    /// Make a schedule: a check (--check NAME) or a command (after --) on the agents -F selects.
    ///
    /// --every runs it every interval, the first run at a random moment
    /// within the first interval (so that many schedules do not all start
    /// at once); --cron runs it at the times of a crontab line, in the
    /// server's local time zone. A run still going when the next is due is
    /// not doubled: that run is skipped and counted. Runs due while no
    /// server ran are counted as missed, not replayed.
    ///
    /// A check asks every matching agent at once (one signed request); the
    /// results go to a durable topic, the server keeps each check's state
    /// (`bot checks`) and `bot bridge nagios` can read them too. A command
    /// runs as a task (`bot task list`), with --parallel and --fail-count.
    #[command(after_help = "Examples:\n  \
        bot schedule add load --every 1m -F 'tag:web' --check load\n  \
        bot schedule add disks --cron '*/5 * * * *' --splay 30s --check disk\n  \
        bot schedule add apt-update --every 1d -F 'os=linux' --parallel 10 -- apt-get update")]
    Add(AddArgs),
    /// List schedules: when they run, what, on which agents, and their counts of runs, skipped and missed runs.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the schedules as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a schedule in full.
    Show(NameArgs),
    /// Pause a schedule: no run is due until it is resumed.
    Pause(NameArgs),
    /// Resume a paused schedule (its next run splayed within the interval again).
    Resume(NameArgs),
    /// Delete a schedule (a run already started goes on).
    Rm(NameArgs),
}

/// `bot schedule add`.
#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The schedule's name: 1..=64 characters of [A-Za-z0-9_.-], unique.
    #[arg(value_parser = schedule_name)]
    pub name: String,
    /// Run every DURATION (1s..=31d; e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = period_secs, conflicts_with = "cron", required_unless_present = "cron")]
    pub every: Option<f64>,
    /// Or at the times of a crontab line: 5 fields, e.g. '*/5 * * * *'.
    #[arg(long, value_name = "EXPR", value_parser = cron_line)]
    pub cron: Option<String>,
    /// Checks: delay each agent's run by its own random time below DURATION, to spread heavy checks.
    #[arg(long, value_name = "DURATION", value_parser = duration_secs)]
    pub splay: Option<f64>,
    /// The agents (the filter language; repeatable: joined with `and`). Default: every agent.
    #[arg(short = 'F', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Run the agents' check of this name ([checks.NAME] in their config).
    #[arg(
        long,
        value_name = "NAME",
        value_parser = schedule_name,
        conflicts_with = "command",
        required_unless_present = "command"
    )]
    pub check: Option<String>,
    /// Checks: where agents send the results (default bot/v1/reply/checks/durable, which the server records).
    #[arg(long, value_name = "TOPIC", requires = "check")]
    pub reply_to: Option<String>,
    /// How long a run may take: a command's per-target timeout, or how long a check run waits for results (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = duration_secs)]
    pub timeout: Option<f64>,
    /// Commands: targets running at once (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "check")]
    pub parallel: Option<u32>,
    /// Commands: a run fails once this many targets have failed.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..), conflicts_with = "check")]
    pub fail_count: Option<i64>,
    /// Commands: leave out matching agents that are offline (else they are LOST targets of the run).
    #[arg(long, conflicts_with = "check")]
    pub online_only: bool,
    /// Make it paused.
    #[arg(long)]
    pub paused: bool,
    /// Print the schedule as JSON.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments, run directly (no shell), after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A schedule named by its name or id.
#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The schedule's name or id.
    pub name: String,
    /// Print the schedule as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bot checks`.
#[derive(Debug, Clone, Args)]
pub struct ChecksArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only agents this filter selects (repeatable: joined with `and`).
    #[arg(short = 'F', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Only these states, comma-separated: ok, warning, critical, unknown.
    #[arg(long, value_name = "STATES", value_parser = states)]
    pub state: Option<String>,
    /// Only this check.
    #[arg(long, value_name = "NAME")]
    pub check: Option<String>,
    /// Print the states as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A duration (`30s`, `5m`, `1h`, `1d`; a bare number is seconds) in
/// seconds: more than 0, at most 31 days.
pub fn duration_secs(s: &str) -> Result<f64, String> {
    let secs = match s.trim().parse::<f64>() {
        Ok(v) => v,
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?}: {e} (e.g. 30s, 5m, 1h)"))?
            .as_secs_f64(),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 2_678_400.0) {
        return Err(format!("{s:?} is outside (0s, 31d]"));
    }
    Ok(secs)
}

/// A schedule's (or check's) name: 1..=64 characters of `[A-Za-z0-9_.-]`.
fn schedule_name(s: &str) -> Result<String, String> {
    bot_proto::action::check_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.trim_start_matches("name: ").to_owned())
}

/// A schedule's period: a duration of at least one second.
fn period_secs(s: &str) -> Result<f64, String> {
    let secs = duration_secs(s)?;
    if secs < 1.0 {
        return Err(format!("{s:?} is shorter than 1s"));
    }
    Ok(secs)
}

/// A crontab line of five fields (the server parses it in full).
fn cron_line(s: &str) -> Result<String, String> {
    let n = s.split_whitespace().count();
    if n != 5 && !s.trim_start().starts_with('@') {
        return Err(format!(
            "{s:?} has {n} fields; a crontab line has 5 (minute hour day-of-month month day-of-week)"
        ));
    }
    Ok(s.to_owned())
}

/// Checks `warning,critical`; the error names the bad state.
fn states(s: &str) -> Result<String, String> {
    for part in s.split(',') {
        if !matches!(
            part.trim().to_ascii_lowercase().as_str(),
            "ok" | "warning" | "critical" | "unknown"
        ) {
            return Err(format!(
                "{part:?} is not one of ok, warning, critical, unknown"
            ));
        }
    }
    Ok(s.to_owned())
}

/// The filter of repeated `-F`s: joined with `and`, each in parentheses.
fn joined_filter(filters: &[String]) -> Option<String> {
    match filters {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(
            many.iter()
                .map(|f| format!("({f})"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
    }
}

/// The request body of `bot schedule add`.
pub fn new_schedule(a: &AddArgs) -> Result<NewSchedule, String> {
    let command = if a.command.is_empty() {
        None
    } else {
        Some(serde_json::json!({ "command": a.command }))
    };
    if command.is_some() && a.splay.is_some() {
        return Err(
            "--splay is for checks; a command schedule spreads its targets with --parallel".into(),
        );
    }
    Ok(NewSchedule {
        name: a.name.clone(),
        every_s: a.every,
        cron: a.cron.clone(),
        splay_s: a.splay,
        filter: joined_filter(&a.filter),
        check: a.check.clone(),
        command,
        parallel: a.parallel,
        fail_count: a.fail_count,
        online_only: a.online_only.then_some(true),
        timeout_s: a.timeout,
        reply_to: a.reply_to.clone(),
        paused: a.paused,
    })
}

/// `every 2s` or `cron '*/5 * * * *'`.
fn when(s: &NewSchedule) -> String {
    match (&s.every_s, &s.cron) {
        (Some(e), _) => format!("every {}", period((e * 1000.0) as u64)),
        (None, Some(c)) => format!("cron '{c}'"),
        (None, None) => "never".into(),
    }
}

/// A period as it was likely given: `2s`, `5m`, `1h 30m` (whole
/// seconds), else `2.5 s`.
fn period(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
    } else {
        fmt_duration(ms)
    }
}

/// `check load` or `command apt-get update`.
fn what(s: &NewSchedule) -> String {
    match (&s.check, &s.command) {
        (Some(c), _) => format!("check {c}"),
        (None, Some(args)) => match args.get("command").and_then(|c| c.as_array()) {
            Some(argv) => argv
                .iter()
                .map(|w| shell_quote(w.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" "),
            None => match args.get("shell").and_then(|c| c.as_str()) {
                Some(sh) => format!("sh -c {}", shell_quote(sh)),
                None => "script".into(),
            },
        },
        (None, None) => String::new(),
    }
}

fn next_text(s: &Schedule, now: u64) -> String {
    match s.next_run_ms {
        None => "paused".into(),
        Some(t) if t <= now => "due".into(),
        Some(t) => format!("in {}", fmt_duration(t - now)),
    }
}

/// The `bot schedule list` table.
pub fn list_table(list: &[Schedule], now: u64) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "WHEN".into(),
        "AGENTS".into(),
        "WHAT".into(),
        "NEXT".into(),
        "RUNS".into(),
        "SKIPPED".into(),
        "MISSED".into(),
        "LAST ERROR".into(),
    ]];
    for s in list {
        rows.push([
            s.spec.name.clone(),
            when(&s.spec),
            truncate(s.spec.filter.as_deref().unwrap_or("*"), 30),
            truncate(&what(&s.spec), 40),
            next_text(s, now),
            s.runs.to_string(),
            s.skipped.to_string(),
            s.missed.to_string(),
            truncate(s.last_error.as_deref().unwrap_or("-"), 50),
        ]);
    }
    table(&rows)
}

/// Left-aligned columns, two spaces apart.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, (w, c)) in widths.iter().zip(r).enumerate() {
            if i + 1 == N {
                line += c;
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out += line.trim_end();
        out += "\n";
    }
    out
}

/// `1 run`, `2 runs`.
fn runs(n: u64) -> String {
    if n == 1 {
        "1 run".to_owned()
    } else {
        format!("{n} runs")
    }
}

/// `bot schedule show`.
pub fn show_text(s: &Schedule, now: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "schedule {} ({})", s.spec.name, s.id);
    let _ = writeln!(out, "  when:     {}", when(&s.spec));
    let _ = writeln!(
        out,
        "  agents:   {}",
        s.spec.filter.as_deref().unwrap_or("* (every agent)")
    );
    let _ = writeln!(out, "  runs:     {}", what(&s.spec));
    if let Some(sp) = s.spec.splay_s {
        let _ = writeln!(
            out,
            "  splay:    {} per agent",
            period((sp * 1000.0) as u64)
        );
    }
    if let Some(t) = s.spec.timeout_s {
        let _ = writeln!(out, "  timeout:  {}", period((t * 1000.0) as u64));
    }
    if let Some(p) = s.spec.parallel {
        let _ = writeln!(out, "  parallel: {p}");
    }
    if let Some(f) = s.spec.fail_count {
        let _ = writeln!(out, "  fail_count: {f}");
    }
    if let Some(r) = &s.spec.reply_to {
        let _ = writeln!(out, "  reply_to: {r}");
    }
    let _ = writeln!(
        out,
        "  made:     {} by {}",
        fmt_utc(s.created_ms),
        s.created_by
    );
    match s.next_run_ms {
        Some(t) => {
            let _ = writeln!(out, "  next run: {} ({})", fmt_utc(t), next_text(s, now));
        }
        None => {
            let _ = writeln!(out, "  next run: none (paused)");
        }
    }
    if let Some(t) = s.last_run_ms {
        let _ = writeln!(out, "  last run: {} ({})", fmt_utc(t), fmt_age(now, t));
    }
    if let Some(t) = &s.last_task_id {
        let _ = writeln!(out, "  last task: {t} (bot task show {t})");
    }
    if let Some(e) = &s.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
    let _ = writeln!(
        out,
        "  counts:   {}, {} skipped (the previous run still went), {} missed (no server ran)",
        runs(s.runs),
        s.skipped,
        s.missed
    );
    out
}

/// The `bot checks` table, then a line of counts.
pub fn checks_table(list: &[CheckStatus], now: u64) -> String {
    let mut rows = vec![[
        "STATE".to_owned(),
        "AGENT".into(),
        "CHECK".into(),
        "SINCE".into(),
        "OUTPUT".into(),
    ]];
    let mut counts = [0usize; 4];
    for c in list {
        counts[usize::from(check_severity(&c.state))] += 1;
        rows.push([
            c.state.clone(),
            if c.agent_name.is_empty() {
                c.agent_id.clone()
            } else {
                c.agent_name.clone()
            },
            c.check.clone(),
            fmt_age(now, c.since_ms),
            truncate(&c.output, 100),
        ]);
    }
    let mut out = table(&rows);
    let _ = writeln!(
        out,
        "{} checks: {} CRITICAL, {} UNKNOWN, {} WARNING, {} OK",
        list.len(),
        counts[3],
        counts[2],
        counts[1],
        counts[0]
    );
    out
}

/// Runs `bot schedule …`.
pub async fn run(args: ScheduleArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let now = bot_proto::now_ms;
    match args.command {
        ScheduleCommand::Add(a) => {
            let body = match new_schedule(&a) {
                Ok(b) => b,
                Err(e) => return Ok(usage(&e)),
            };
            let client = match ApiClient::from_args(&a.server) {
                Ok(c) => c,
                Err(e) => return Ok(usage(&e)),
            };
            let Some(s) = interruptible(client.create_schedule(&body), &shutdown).await? else {
                return Ok(ExitCode::from(INTERRUPTED));
            };
            if a.json {
                println!("{}", to_json(&s)?);
            } else {
                let next = match s.next_run_ms {
                    Some(t) => format!("first run at {} ({})", fmt_utc(t), next_text(&s, now())),
                    None => "paused".into(),
                };
                println!(
                    "schedule {} ({}): {} {} on {}; {next}",
                    s.spec.name,
                    s.id,
                    what(&s.spec),
                    when(&s.spec),
                    s.spec.filter.as_deref().unwrap_or("every agent"),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ScheduleCommand::List { server, json } => {
            let client = match ApiClient::from_args(&server) {
                Ok(c) => c,
                Err(e) => return Ok(usage(&e)),
            };
            let Some(list) = interruptible(client.schedules(), &shutdown).await? else {
                return Ok(ExitCode::from(INTERRUPTED));
            };
            if json {
                println!("{}", to_json(&list)?);
            } else if list.is_empty() {
                eprintln!("no schedules (make one with `bot schedule add`)");
            } else {
                print!("{}", list_table(&list, now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        ScheduleCommand::Show(a) => {
            one(
                a,
                &shutdown,
                |c, n| Box::pin(async move { c.schedule(&n).await }),
                |s| show_text(s, now()),
            )
            .await
        }
        ScheduleCommand::Pause(a) => {
            one(
                a,
                &shutdown,
                |c, n| Box::pin(async move { c.pause_schedule(&n, true).await }),
                |s| {
                    format!(
                        "schedule {} paused ({}, {} skipped, {} missed)\n",
                        s.spec.name,
                        runs(s.runs),
                        s.skipped,
                        s.missed
                    )
                },
            )
            .await
        }
        ScheduleCommand::Resume(a) => {
            one(
                a,
                &shutdown,
                |c, n| Box::pin(async move { c.pause_schedule(&n, false).await }),
                |s| {
                    format!(
                        "schedule {} resumed; next run {}\n",
                        s.spec.name,
                        next_text(s, now())
                    )
                },
            )
            .await
        }
        ScheduleCommand::Rm(a) => {
            one(
                a,
                &shutdown,
                |c, n| Box::pin(async move { c.delete_schedule(&n).await }),
                |s| format!("schedule {} deleted ({})\n", s.spec.name, runs(s.runs)),
            )
            .await
        }
    }
}

type Call = std::pin::Pin<Box<dyn Future<Output = Result<Schedule, CallError>> + Send>>;

/// A call about one schedule, printed as text or JSON.
async fn one(
    a: NameArgs,
    shutdown: &CancellationToken,
    call: impl FnOnce(ApiClient, String) -> Call,
    text: impl FnOnce(&Schedule) -> String,
) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let Some(s) = interruptible(call(client, a.name), shutdown).await? else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    if a.json {
        println!("{}", to_json(&s)?);
    } else {
        print!("{}", text(&s));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `bot checks`.
pub async fn run_checks(a: ChecksArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let client = match ApiClient::from_args(&a.server) {
        Ok(c) => c,
        Err(e) => return Ok(usage(&e)),
    };
    let filter = joined_filter(&a.filter);
    let Some(list) = interruptible(
        client.checks(filter.as_deref(), a.state.as_deref(), a.check.as_deref()),
        &shutdown,
    )
    .await?
    else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    if a.json {
        println!("{}", to_json(&list)?);
    } else if list.is_empty() {
        eprintln!(
            "no check results{}",
            if a.state.is_some() || filter.is_some() || a.check.is_some() {
                " match"
            } else {
                " yet (schedule checks with `bot schedule add NAME --every 1m --check CHECK`)"
            }
        );
    } else {
        print!("{}", checks_table(&list, bot_proto::now_ms()));
    }
    Ok(if list.iter().all(|c| c.state == "OK") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("30s"), Ok(30.0));
        assert_eq!(duration_secs("5m"), Ok(300.0));
        assert_eq!(duration_secs("2"), Ok(2.0));
        assert!(duration_secs("0").is_err());
        assert!(
            duration_secs("40d")
                .err()
                .unwrap_or_default()
                .contains("outside")
        );
        assert!(
            duration_secs("soon")
                .err()
                .unwrap_or_default()
                .contains("\"soon\"")
        );
    }

    #[test]
    fn periods_cron_lines_and_names_are_checked_locally() {
        assert_eq!(period_secs("2s"), Ok(2.0));
        assert!(
            period_secs("500ms")
                .err()
                .unwrap_or_default()
                .contains("shorter than 1s")
        );
        assert!(cron_line("*/5 * * * *").is_ok() && cron_line("@hourly").is_ok());
        assert!(
            cron_line("* * *")
                .err()
                .unwrap_or_default()
                .contains("has 3 fields")
        );
        assert!(schedule_name("load-1.x").is_ok());
        assert!(
            schedule_name("bad name")
                .err()
                .unwrap_or_default()
                .contains("bad name must be")
        );
    }

    #[test]
    fn states_are_checked() {
        assert!(states("warning,critical").is_ok());
        assert!(
            states("warning,bad")
                .err()
                .unwrap_or_default()
                .contains("\"bad\"")
        );
    }

    #[test]
    fn the_checks_table_counts_states() {
        let c = |agent: &str, state: &str| CheckStatus {
            agent_id: agent.into(),
            agent_name: agent.into(),
            check: "load".into(),
            state: state.into(),
            code: 0,
            output: format!("LOAD {state}"),
            long_output: String::new(),
            perfdata: String::new(),
            since_ms: 1_000,
            updated_ms: 1_000,
            interval_ms: 10_000,
            stale: false,
            schedule_id: None,
        };
        let t = checks_table(&[c("web1", "CRITICAL"), c("web2", "OK")], 61_000);
        assert!(t.contains("CRITICAL  web1   load   1m ago"), "{t}");
        assert!(
            t.ends_with("2 checks: 1 CRITICAL, 0 UNKNOWN, 0 WARNING, 1 OK\n"),
            "{t}"
        );
    }
}
