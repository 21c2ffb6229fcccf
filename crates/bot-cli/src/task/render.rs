//! What `bot task` prints, as pure functions of the API's values and the
//! current time: the `list` table, the `show` report (header, one block per
//! target, summary), and the pieces `watch` shares (counts, labels,
//! durations). No I/O here, so every format is unit-tested.

use std::fmt::Write as _;

use bot_proto::api::{TargetCounts, TargetRun, TargetState, Task, TaskDetail, TaskSummary};
use serde_json::Value;

/// At most this many names in a "failed: …" line.
const MAX_FAILED_NAMES: usize = 20;
/// Width of the command column in `list`.
const COMMAND_WIDTH: usize = 60;

/// `s` cut to `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A word quoted for a POSIX shell when it needs it (`shlex`); a word with
/// a NUL byte, which no shell word can hold, is shown escaped.
pub fn shell_quote(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| format!("{word:?}"), |q| q.into_owned())
}

/// The action and what it runs, on one line: `exec: uname -a`,
/// `exec: sh -c 'ls | wc -l'`, `facts {…}`.
pub fn command_summary(action: &str, args: &Value) -> String {
    if action == "exec" {
        if let Some(argv) = args.get("command").and_then(Value::as_array) {
            let words: Vec<String> = argv
                .iter()
                .map(|w| w.as_str().map_or_else(|| w.to_string(), shell_quote))
                .collect();
            return format!("exec: {}", words.join(" "));
        }
        if let Some(sh) = args.get("shell").and_then(Value::as_str) {
            return format!("exec: sh -c {}", shell_quote(sh));
        }
        if args.get("script").is_some() {
            return "exec: (script)".to_owned();
        }
    }
    match args {
        Value::Object(m) if m.is_empty() => action.to_owned(),
        Value::Null => action.to_owned(),
        other => format!("{action} {other}"),
    }
}

/// A duration for humans: `340 ms`, `1.2 s`, `12.0 s`, `3m 05s`, `2h 03m`.
pub fn fmt_duration(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Milliseconds as seconds: `60 s`, `0.5 s`.
pub fn fmt_secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

/// How long ago `then_ms` was: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn fmt_age(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0 => "just now".to_owned(),
        1..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// A unix time in milliseconds as `2026-03-21 14:03:07 UTC` (humantime's
/// RFC 3339, with a space and the zone spelt out).
pub fn fmt_utc(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ms / 1000);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
        .replace('Z', " UTC")
}

/// Counts in words: `2 ok, 1 failed, 1 skipped (of 4)`. `ok` and `failed`
/// always, the others when not zero.
pub fn counts_text(c: &TargetCounts) -> String {
    let mut parts = vec![
        format!("{} ok", c.succeeded),
        format!("{} failed", c.failed),
    ];
    for (n, word) in [
        (c.timed_out, "timed out"),
        (c.lost, "lost"),
        (c.skipped, "skipped"),
        (c.running, "running"),
        (c.waiting, "waiting"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    format!("{} (of {})", parts.join(", "), c.total)
}

/// A target for humans: `name (id8)`, or `slot N` for a pull-mode slot no
/// agent has taken yet.
pub fn target_label(t: &TargetRun) -> String {
    match (t.agent_name.is_empty(), t.agent_id.is_empty()) {
        (true, true) => format!("slot {}", t.seq),
        (true, false) => format!("agent {}", t.agent_id),
        _ => crate::fleet::label(&t.agent_name, &t.agent_id),
    }
}

/// A target's short name (its agent's name, or `slot N`).
pub fn target_name(t: &TargetRun) -> String {
    if !t.agent_name.is_empty() {
        t.agent_name.clone()
    } else if !t.agent_id.is_empty() {
        t.agent_id.get(..8).unwrap_or(&t.agent_id).to_owned()
    } else {
        format!("slot {}", t.seq)
    }
}

/// How long a target ran (or has been running, at `now_ms`).
pub fn target_duration(t: &TargetRun, now_ms: u64) -> Option<u64> {
    let start = t.started_ms?;
    match (t.finished_ms, t.state) {
        (Some(end), _) => Some(end.saturating_sub(start)),
        (None, TargetState::Running) => Some(now_ms.saturating_sub(start)),
        _ => None,
    }
}

/// The exit of a finished target: `exit 0`, `signal 9`.
pub fn exit_text(t: &TargetRun) -> Option<String> {
    match (t.exit_code, t.signal) {
        (_, Some(sig)) => Some(format!("signal {sig}")),
        (Some(code), None) => Some(format!("exit {code}")),
        (None, None) => None,
    }
}

/// The first line of a target's error, shortened.
fn short_error(t: &TargetRun) -> Option<String> {
    t.error
        .as_deref()
        .map(|e| truncate(e.lines().next().unwrap_or_default().trim(), 120))
        .filter(|e| !e.is_empty())
}

/// Why a target counts as failed: `exit 1`, `signal 9`, `timed out`, `lost`.
fn failure_word(t: &TargetRun) -> String {
    exit_text(t).unwrap_or_else(|| match t.state {
        TargetState::TimedOut => "timed out".to_owned(),
        TargetState::Lost => "lost".to_owned(),
        _ => short_error(t).map_or_else(|| "failed".to_owned(), |e| truncate(&e, 40)),
    })
}

/// `list`: one row per task, newest first as the server sent them.
pub fn list_table(tasks: &[TaskSummary], now_ms: u64) -> String {
    let header = [
        "ID", "STATE", "OK", "FAIL", "RUN", "WAIT", "SKIP", "TOTAL", "CREATED", "COMMAND",
    ];
    let mut rows: Vec<[String; 10]> = vec![header.map(str::to_owned)];
    for s in tasks {
        let c = &s.counts;
        rows.push([
            s.task.id.clone(),
            s.task.state.to_string(),
            c.succeeded.to_string(),
            c.failures().to_string(),
            c.running.to_string(),
            c.waiting.to_string(),
            c.skipped.to_string(),
            c.total.to_string(),
            fmt_age(now_ms, s.task.created_ms),
            truncate(
                &command_summary(&s.task.action, &s.task.args),
                COMMAND_WIDTH,
            ),
        ]);
    }
    let mut widths = [0usize; 10];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            let numeric = (2..=7).contains(&i);
            let cell = if numeric {
                format!("{cell:>w$}")
            } else if i == row.len() - 1 {
                cell.clone()
            } else {
                format!("{cell:<w$}")
            };
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(&cell);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Where the targets came from, in words.
fn origin_text(task: &Task, total: u32) -> String {
    let n = |k: u32| format!("{k} target{}", if k == 1 { "" } else { "s" });
    match (&task.filter, &task.pool) {
        (_, Some(pool)) => format!("{} in pool {pool:?} (pull mode)", n(total)),
        (Some(f), None) => format!("{} matching {f:?}", n(total)),
        (None, None) => format!("{} given by id", n(total)),
    }
}

/// The rollout settings in words.
fn rollout_text(task: &Task) -> String {
    let mut parts = vec![format!("parallel {}", task.parallel)];
    if task.fail_count >= 1 {
        parts.push(format!(
            "failed at {} failure{}",
            task.fail_count,
            if task.fail_count == 1 { "" } else { "s" }
        ));
    }
    if task.fail_rate < 1.0 {
        parts.push(format!(
            "stop above {}% failed",
            (task.fail_rate * 1000.0).round() / 10.0
        ));
    }
    parts.push(format!("timeout {} per target", fmt_secs(task.timeout_ms)));
    parts.join(", ")
}

/// The header of `show`: id, state and reason, action, targets, rollout,
/// times.
pub fn task_header(d: &TaskDetail, now_ms: u64) -> String {
    let t = &d.task;
    let mut out = format!("task {}  {}", t.id, t.state);
    if let Some(r) = &t.reason {
        let _ = write!(out, ": {r}");
    }
    out.push('\n');
    let _ = writeln!(out, "  {}", command_summary(&t.action, &t.args));
    let _ = writeln!(out, "  targets: {}", origin_text(t, d.counts.total));
    let _ = writeln!(out, "  rollout: {}", rollout_text(t));
    let by = if t.created_by.is_empty() {
        String::new()
    } else {
        format!(" by {}", t.created_by)
    };
    let _ = writeln!(
        out,
        "  created: {} ({}){by}",
        fmt_utc(t.created_ms),
        fmt_age(now_ms, t.created_ms)
    );
    let ran = match (t.started_ms, t.finished_ms) {
        (Some(s), Some(f)) => format!(
            "started {}, ran {}",
            fmt_utc(s),
            fmt_duration(f.saturating_sub(s))
        ),
        (Some(s), None) => format!(
            "started {}, running for {}",
            fmt_utc(s),
            fmt_duration(now_ms.saturating_sub(s))
        ),
        (None, Some(f)) => format!("ended {} without starting", fmt_utc(f)),
        (None, None) => "not started yet".to_owned(),
    };
    let _ = writeln!(out, "  {ran}");
    if let Some(r) = &t.retry_of {
        let _ = writeln!(out, "  retry of {r}");
    }
    out
}

/// `== name (id8) STATE exit N 1.2 s`.
pub fn target_heading(t: &TargetRun, now_ms: u64) -> String {
    let mut out = format!("== {} {}", target_label(t), t.state);
    if let Some(e) = exit_text(t) {
        let _ = write!(out, " {e}");
    }
    if let Some(ms) = target_duration(t, now_ms) {
        let _ = write!(out, " {}", fmt_duration(ms));
    }
    out
}

/// One target in `show`: the heading, then its output, indented: stdout as
/// it is, stderr lines marked, the error, any result data.
pub fn target_block(t: &TargetRun, now_ms: u64) -> String {
    let mut out = target_heading(t, now_ms);
    out.push('\n');
    for line in t.stdout.lines() {
        let _ = writeln!(out, "  {line}");
    }
    for line in t.stderr.lines() {
        let _ = writeln!(out, "  stderr: {line}");
    }
    if let Some(e) = &t.error {
        for line in e.lines() {
            let _ = writeln!(out, "  error: {line}");
        }
    }
    if let Some(data) = &t.data {
        let _ = writeln!(out, "  data: {data}");
    }
    out
}

/// The summary lines: counts and the task's end, then which targets
/// failed and why.
pub fn summary(d: &TaskDetail) -> String {
    let mut out = format!(
        "summary: {} — task {}",
        counts_text(&d.counts),
        d.task.state
    );
    if let Some(r) = &d.task.reason {
        let _ = write!(out, ": {r}");
    }
    out.push('\n');
    let failed: Vec<String> = d
        .targets
        .iter()
        .filter(|t| t.state.is_failure())
        .map(|t| format!("{} [{}]", target_name(t), failure_word(t)))
        .collect();
    if !failed.is_empty() {
        let mut list = failed[..failed.len().min(MAX_FAILED_NAMES)].join(", ");
        if failed.len() > MAX_FAILED_NAMES {
            let _ = write!(list, ", … and {} more", failed.len() - MAX_FAILED_NAMES);
        }
        let _ = writeln!(out, "failed: {list}");
    }
    out
}

/// `show`: header, every target, summary.
pub fn show_text(d: &TaskDetail, now_ms: u64) -> String {
    let mut out = task_header(d, now_ms);
    for t in &d.targets {
        out.push('\n');
        out.push_str(&target_block(t, now_ms));
    }
    out.push('\n');
    out.push_str(&summary(d));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bot_proto::api::TaskState;
    use serde_json::json;

    pub(crate) const T0: u64 = 1_774_101_787_000; // 2026-03-21 14:03:07 UTC

    pub(crate) fn task(state: TaskState) -> Task {
        Task {
            id: "0195b7f0c1a27e3d9a4f5b6c7d8e9f01".into(),
            state,
            action: "exec".into(),
            args: json!({"command": ["uname", "-a"]}),
            filter: Some("web*".into()),
            pool: None,
            timeout_ms: 60_000,
            parallel: 2,
            fail_count: -1,
            fail_rate: 1.0,
            retry_of: None,
            created_by: "alice".into(),
            created_ms: T0,
            started_ms: Some(T0 + 100),
            finished_ms: None,
            reason: None,
        }
    }

    pub(crate) fn target(seq: u32, name: &str, state: TargetState) -> TargetRun {
        let done = state.is_final() && state != TargetState::Skipped;
        let started = state != TargetState::Waiting && state != TargetState::Skipped;
        TargetRun {
            task_id: "0195b7f0c1a27e3d9a4f5b6c7d8e9f01".into(),
            seq,
            agent_id: if name.is_empty() {
                String::new()
            } else {
                format!("{seq:08}aaaabbbbccccdddd")
            },
            agent_name: name.into(),
            state,
            request_id: None,
            request_created_ms: None,
            exit_code: match state {
                TargetState::Succeeded => Some(0),
                TargetState::Failed => Some(2),
                _ => None,
            },
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            data: None,
            started_ms: started.then_some(T0 + 100),
            finished_ms: done.then_some(T0 + 1300),
        }
    }

    pub(crate) fn detail(state: TaskState, targets: Vec<TargetRun>) -> TaskDetail {
        TaskDetail {
            task: task(state),
            counts: TargetCounts::of(&targets),
            targets,
        }
    }

    #[test]
    fn small_formats() {
        assert_eq!(fmt_duration(1200), "1.2 s");
        assert_eq!(fmt_duration(340), "340 ms");
        assert_eq!(fmt_duration(59_999), "60.0 s");
        assert_eq!(fmt_duration(65_000), "1m 05s");
        assert_eq!(fmt_duration(7_380_000), "2h 03m");
        assert_eq!(fmt_age(T0 + 500, T0), "just now");
        assert_eq!(fmt_age(T0 + 12_000, T0), "12s ago");
        assert_eq!(fmt_age(T0 + 300_000, T0), "5m ago");
        assert_eq!(fmt_age(T0 + 3 * 3_600_000, T0), "3h ago");
        assert_eq!(fmt_age(T0 + 49 * 3_600_000, T0), "2d ago");
        assert_eq!(fmt_age(T0, T0 + 5000), "just now");
        assert_eq!(fmt_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_utc(T0), "2026-03-21 14:03:07 UTC");
        assert_eq!(fmt_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(shell_quote("a-b/c.d"), "a-b/c.d");
        assert_eq!(shell_quote("it's here"), r#""it's here""#);
        for word in ["it's here", "a b", "$(x)", "`y`", "a\"b'c", "\\n"] {
            let quoted = shell_quote(word);
            assert_eq!(
                shlex::split(&quoted),
                Some(vec![word.to_owned()]),
                "{quoted}"
            );
        }
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn command_summaries() {
        assert_eq!(
            command_summary("exec", &json!({"command": ["echo", "a b"]})),
            "exec: echo 'a b'"
        );
        assert_eq!(
            command_summary("exec", &json!({"shell": "ls | wc -l"})),
            "exec: sh -c 'ls | wc -l'"
        );
        assert_eq!(
            command_summary("exec", &json!({"script": "#!/bin/sh"})),
            "exec: (script)"
        );
        assert_eq!(command_summary("facts", &json!({})), "facts");
        assert_eq!(command_summary("ping", &json!({"x": 1})), r#"ping {"x":1}"#);
    }

    #[test]
    fn counts_in_words() {
        let c = TargetCounts::of(&[
            target(0, "a", TargetState::Succeeded),
            target(1, "b", TargetState::Succeeded),
            target(2, "c", TargetState::Failed),
            target(3, "d", TargetState::Skipped),
        ]);
        assert_eq!(counts_text(&c), "2 ok, 1 failed, 1 skipped (of 4)");
        assert_eq!(
            counts_text(&TargetCounts::default()),
            "0 ok, 0 failed (of 0)"
        );
    }

    #[test]
    fn list_is_an_aligned_table() {
        let mut a = TaskSummary {
            task: task(TaskState::Running),
            counts: TargetCounts::of(&[
                target(0, "a", TargetState::Succeeded),
                target(1, "b", TargetState::Lost),
                target(2, "c", TargetState::Running),
            ]),
        };
        a.task.created_ms = T0 - 300_000;
        let mut b = TaskSummary {
            task: task(TaskState::Succeeded),
            counts: TargetCounts::of(&[target(0, "a", TargetState::Succeeded)]),
        };
        b.task.id = "0195b7f0".into();
        b.task.args = json!({"shell": "x".repeat(100)});
        let table = list_table(&[a, b], T0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert_eq!(
            lines[0],
            "ID                                STATE      OK  FAIL  RUN  WAIT  SKIP  TOTAL  CREATED   COMMAND"
        );
        assert_eq!(
            lines[1],
            "0195b7f0c1a27e3d9a4f5b6c7d8e9f01  RUNNING     1     1    1     0     0      3  5m ago    exec: uname -a"
        );
        assert!(
            lines[2].starts_with("0195b7f0                          SUCCEEDED   1     0"),
            "{table}"
        );
        assert!(lines[2].ends_with("xxx…"), "{table}");
        assert_eq!(
            lines[2].split("exec: ").nth(1).map(|c| c.chars().count()),
            Some(54)
        );
        assert_eq!(list_table(&[], T0).lines().count(), 1);
    }

    #[test]
    fn show_has_header_targets_and_summary() {
        let mut ok = target(0, "web1", TargetState::Succeeded);
        ok.stdout = "Linux web1\n".into();
        let mut bad = target(1, "web2", TargetState::Failed);
        bad.stdout = "partial".into();
        bad.stderr = "oops\nworse\n".into();
        let mut lost = target(2, "web3", TargetState::Lost);
        lost.error = Some("the agent went offline\nwhile running".into());
        let waiting = target(3, "", TargetState::Skipped);
        let mut d = detail(TaskState::Failed, vec![ok, bad, lost, waiting]);
        d.task.fail_count = 1;
        d.task.fail_rate = 0.25;
        d.task.finished_ms = Some(T0 + 3_200);
        d.task.reason = Some("2 failures reached --fail-count 1".into());
        d.task.retry_of = Some("0195aaaa".into());
        let text = show_text(&d, T0 + 60_000);
        let want = "\
task 0195b7f0c1a27e3d9a4f5b6c7d8e9f01  FAILED: 2 failures reached --fail-count 1
  exec: uname -a
  targets: 4 targets matching \"web*\"
  rollout: parallel 2, failed at 1 failure, stop above 25% failed, timeout 60 s per target
  created: 2026-03-21 14:03:07 UTC (1m ago) by alice
  started 2026-03-21 14:03:07 UTC, ran 3.1 s
  retry of 0195aaaa

== web1 (00000000) SUCCEEDED exit 0 1.2 s
  Linux web1

== web2 (00000001) FAILED exit 2 1.2 s
  partial
  stderr: oops
  stderr: worse

== web3 (00000002) LOST 1.2 s
  error: the agent went offline
  error: while running

== slot 3 SKIPPED

summary: 1 ok, 1 failed, 1 lost, 1 skipped (of 4) — task FAILED: 2 failures reached --fail-count 1
failed: web2 [exit 2], web3 [lost]
";
        assert_eq!(text, want);
    }

    #[test]
    fn running_targets_show_elapsed_time_and_signals() {
        let run = target(0, "a", TargetState::Running);
        assert_eq!(
            target_heading(&run, T0 + 2_100),
            "== a (00000000) RUNNING 2.0 s"
        );
        let mut killed = target(1, "b", TargetState::TimedOut);
        killed.signal = Some(9);
        assert_eq!(
            target_heading(&killed, T0),
            "== b (00000001) TIMED_OUT signal 9 1.2 s"
        );
        let d = detail(TaskState::Failed, vec![killed]);
        assert!(summary(&d).contains("failed: b [signal 9]"));

        let many: Vec<TargetRun> = (0..25)
            .map(|i| target(i, &format!("n{i}"), TargetState::Failed))
            .collect();
        let s = summary(&detail(TaskState::Failed, many));
        assert!(s.contains("n19 [exit 2], … and 5 more"), "{s}");
    }
}
