//! `exec`: run a command on the agent's machine.
//!
//! Arguments (exactly one of `command`, `shell`, `script`):
//! - `command`: `["prog", "arg", …]`, run directly — never through a shell;
//! - `shell`: a string run with `/bin/sh -c` (the caller asked for a shell);
//! - `script`: a script body fed on stdin to `interpreter` (default `/bin/sh`);
//! - `env`: `{"KEY": "value"}` added to the environment; `cwd`: working directory;
//! - `timeout_s`: seconds before the whole process group is killed (default 60);
//! - `output_limit`: bytes kept of stdout and of stderr each (the TAIL is kept).
//!
//! Data: `exit_code` (null if killed by a signal), `signal`, `timed_out`,
//! `stdout`, `stderr`, `stdout_bytes`/`stderr_bytes` (total produced),
//! `truncated`, `duration_ms`. Status: `ok` for exit code 0, `error` for
//! another exit code or a command that could not start, `timeout` when killed
//! for running too long.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot_proto::action::{ExecArgs, ExecResult, Program};
use bot_proto::envelope::ReplyStatus;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::Outcome;

/// Bounds on what a request may ask of `exec`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Default timeout.
    pub default_timeout: Duration,
    /// Largest timeout a request may ask for.
    pub max_timeout: Duration,
    /// Default bytes kept per stream.
    pub default_output: usize,
    /// Largest `output_limit` a request may ask for.
    pub max_output: usize,
    /// Time between SIGTERM and SIGKILL on timeout.
    pub kill_grace: Duration,
    /// Kill the process group when the command exits but left background
    /// children holding its output (systemd's `KillMode=control-group`);
    /// false leaves them running (`KillMode=process`).
    pub kill_descendants: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(24 * 3600),
            default_output: 64 * 1024,
            max_output: 1024 * 1024,
            kill_grace: Duration::from_secs(2),
            kill_descendants: false,
        }
    }
}

/// The last `cap` bytes of a stream, and how many there were in all.
#[derive(Debug)]
struct Tail {
    cap: usize,
    buf: VecDeque<u8>,
    total: u64,
}

impl Tail {
    fn new(cap: usize) -> Tail {
        Tail {
            cap,
            buf: VecDeque::with_capacity(cap.min(8192)),
            total: 0,
        }
    }
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let chunk = if chunk.len() > self.cap {
            &chunk[chunk.len() - self.cap..]
        } else {
            chunk
        };
        let overflow = (self.buf.len() + chunk.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow.min(self.buf.len()));
        self.buf.extend(chunk);
    }
    fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// Reads `r` to its end into `tail` (shared, so that what was read is kept
/// even when the reading is abandoned: background children holding the
/// pipe open).
async fn drain(mut r: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut chunk = vec![0u8; 8192];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(&chunk[..n]);
    }
}

/// How long the output is still read after the command exited, for
/// background children writing their last lines.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// The timeout and output cap of a request, within the agent's limits.
fn bounds(args: &ExecArgs, limits: &Limits) -> Result<(Duration, usize), String> {
    let timeout = match args.timeout_s {
        None => limits.default_timeout,
        Some(s) if s > 0.0 && s <= limits.max_timeout.as_secs_f64() => Duration::from_secs_f64(s),
        Some(s) => {
            return Err(format!(
                "exec: timeout_s {s} is not in (0, {}]",
                limits.max_timeout.as_secs_f64()
            ));
        }
    };
    let output = match args.output_limit {
        None => limits.default_output,
        Some(n) if n >= 1 && n as usize <= limits.max_output => n as usize,
        Some(n) => {
            return Err(format!(
                "exec: output_limit {n} is not in 1..{}",
                limits.max_output
            ));
        }
    };
    Ok((timeout, output))
}

/// Runs `exec`; `cancel` stops it like a timeout does (the whole process
/// group: SIGTERM, then SIGKILL after the grace period).
pub async fn run(args: &ExecArgs, limits: &Limits, cancel: &CancellationToken) -> Outcome {
    let (timeout, output) = match bounds(args, limits) {
        Ok(p) => p,
        Err(e) => return Outcome::error(e),
    };
    if cancel.is_cancelled() {
        // Cancelled before it started (a cancel that overtook the request,
        // or one while it waited for a slot): nothing runs.
        return Outcome {
            status: ReplyStatus::Error,
            data: serde_json::to_value(ExecResult {
                cancelled: true,
                started: false,
                ..ExecResult::default()
            })
            .unwrap_or(Value::Null),
            error: Some("cancelled before it started".to_owned()),
        };
    }
    let program = match args.program() {
        Ok(p) => p,
        Err(e) => return Outcome::error(format!("exec: {e}")),
    };
    let (mut cmd, stdin_body) = match program {
        Program::Argv(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            (c, None)
        }
        Program::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            (c, None)
        }
        Program::Script { interpreter, body } => (Command::new(interpreter), Some(body.to_owned())),
    };
    for (k, v) in args.env.iter().flatten() {
        cmd.env(k, v);
    }
    if let Some(d) = &args.cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(if stdin_body.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let data = ExecResult {
                started: false,
                ..ExecResult::default()
            };
            return Outcome {
                error: Some(format!("exec: cannot start: {e}")),
                status: ReplyStatus::Error,
                ..Outcome::data(&data)
            };
        }
    };
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    if let (Some(body), Some(mut stdin)) = (stdin_body, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(body.as_bytes()).await;
        });
    }
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Outcome::error("exec: no output pipes");
    };
    let out_tail = Arc::new(Mutex::new(Tail::new(output)));
    let err_tail = Arc::new(Mutex::new(Tail::new(output)));
    let mut readers = tokio::spawn({
        let (o, e) = (out_tail.clone(), err_tail.clone());
        async move { tokio::join!(drain(out, o), drain(err, e)) }
    });
    let mut timed_out = false;
    let mut cancelled = false;
    let waited = tokio::select! {
        s = tokio::time::timeout(timeout, child.wait()) => s.map_err(|_| false),
        () = cancel.cancelled() => Err(true),
    };
    let status = match waited {
        Ok(s) => s,
        Err(by_cancel) => {
            timed_out = !by_cancel;
            cancelled = by_cancel;
            signal_group(pgid, nix::sys::signal::Signal::SIGTERM);
            match tokio::time::timeout(limits.kill_grace, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    // Children that kept the pipes open were killed with the group above on
    // a timeout or cancel. When the command exited by itself but left
    // background children holding the pipes, keep what was read, stop
    // reading after a short drain, and either leave them (the default) or
    // kill the group (`exec_kill_descendants`, systemd's KillMode choice).
    let mut descendants = None;
    if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut readers)
        .await
        .is_err()
    {
        readers.abort();
        if limits.kill_descendants {
            signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
            descendants = Some("killed".to_owned());
        } else {
            descendants = Some("left running".to_owned());
        }
    }
    let take = |t: &Arc<Mutex<Tail>>| {
        let t = t.lock().unwrap_or_else(|e| e.into_inner());
        (t.text(), t.total, t.total > t.buf.len() as u64)
    };
    let (out_text, out_total, out_cut) = take(&out_tail);
    let (err_text, err_total, err_cut) = take(&err_tail);
    let duration_ms = started.elapsed().as_millis() as u64;
    let (exit_code, signal) = match &status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    let truncated = out_cut || err_cut;
    let data = serde_json::to_value(ExecResult {
        exit_code,
        signal,
        timed_out,
        cancelled,
        stdout: out_text,
        stderr: err_text,
        stdout_bytes: out_total,
        stderr_bytes: err_total,
        truncated,
        duration_ms,
        started: true,
        descendants,
    })
    .unwrap_or(Value::Null);
    if cancelled {
        return Outcome {
            status: ReplyStatus::Error,
            data,
            error: Some("cancelled: process group killed".to_owned()),
        };
    }
    if timed_out {
        return Outcome {
            status: ReplyStatus::Timeout,
            data,
            error: Some(format!(
                "timed out after {:.1} s; process group killed",
                timeout.as_secs_f64()
            )),
        };
    }
    match exit_code {
        Some(0) => Outcome::ok(data),
        Some(code) => Outcome {
            status: ReplyStatus::Error,
            data,
            error: Some(format!("exited with code {code}")),
        },
        None => Outcome {
            status: ReplyStatus::Error,
            data,
            error: Some(format!("killed by signal {}", signal.unwrap_or(0))),
        },
    }
}

fn signal_group(pgid: Option<i32>, sig: nix::sys::signal::Signal) {
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_proto::Action;
    use serde_json::json;

    /// Runs `exec` with JSON arguments, typed as the agent types them.
    async fn jrun(args: &Value, limits: &Limits, cancel: &CancellationToken) -> Outcome {
        match Action::from_parts("exec", args) {
            Ok(Action::Exec(a)) => run(&a, limits, cancel).await,
            Ok(other) => Outcome::error(format!("not exec: {other:?}")),
            Err(e) => Outcome::error(e.to_string()),
        }
    }

    fn limits() -> Limits {
        Limits {
            kill_grace: Duration::from_millis(200),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn argv_is_not_a_shell() {
        let o = jrun(
            &json!({"command": ["echo", "a;b", "$HOME"]}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(o.status, ReplyStatus::Ok, "{o:?}");
        assert_eq!(o.data["stdout"], "a;b $HOME\n");
        assert_eq!(o.data["exit_code"], 0);
    }

    #[tokio::test]
    async fn shell_env_cwd_and_exit_codes() {
        let o = jrun(&json!({"shell": "echo $GREETING; pwd; echo oops >&2; exit 3", "env": {"GREETING": "hi"}, "cwd": "/tmp"}), &limits(), &CancellationToken::new()).await;
        assert_eq!(o.status, ReplyStatus::Error);
        assert_eq!(o.data["exit_code"], 3);
        assert_eq!(o.data["stdout"], "hi\n/tmp\n");
        assert_eq!(o.data["stderr"], "oops\n");
    }

    #[tokio::test]
    async fn script_body_goes_to_the_interpreter() {
        let o = jrun(
            &json!({"script": "x=40\necho $((x+2))\n"}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(o.data["stdout"], "42\n", "{o:?}");
    }

    /// Issue 12, item 4: a background child holding the pipe open used to
    /// lose all the output (empty stdout and stderr, `truncated: false`).
    #[tokio::test]
    async fn output_is_kept_when_a_background_child_holds_the_pipe() {
        let marker = format!("{}", 7_000 + std::process::id() % 1000);
        for (kill, want) in [(false, "left running"), (true, "killed")] {
            let l = Limits {
                kill_descendants: kill,
                ..limits()
            };
            let line = format!("echo before; sleep {marker}.5 & echo after; echo err >&2");
            let o = jrun(&json!({ "shell": line }), &l, &CancellationToken::new()).await;
            assert_eq!(o.status, ReplyStatus::Ok, "{o:?}");
            assert_eq!(o.data["stdout"], "before\nafter\n");
            assert_eq!(o.data["stderr"], "err\n");
            assert_eq!(o.data["descendants"], want);
            let alive = std::process::Command::new("pgrep")
                .args(["-f", &format!("sleep {marker}.5")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert_eq!(alive, !kill, "the background child is {want}");
            if alive {
                let _ = std::process::Command::new("pkill")
                    .args(["-f", &format!("sleep {marker}.5")])
                    .status();
            }
        }
        // A command without background children says nothing about them.
        let o = jrun(
            &json!({"shell": "echo x"}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert!(o.data.get("descendants").is_none(), "{o:?}");
    }

    #[tokio::test]
    async fn the_tail_is_kept() {
        let o = jrun(
            &json!({"shell": "seq 1 10000", "output_limit": 12}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(o.data["stdout"], "9998\n9999\n10000\n"[4..].to_string());
        assert_eq!(o.data["truncated"], true);
        assert_eq!(o.data["stdout_bytes"], 48894);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let o = jrun(
            &json!({"shell": "sleep 300 & sleep 300", "timeout_s": 0.3}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(o.status, ReplyStatus::Timeout, "{o:?}");
        assert_eq!(o.data["timed_out"], true);
        assert!(o.data["duration_ms"].as_u64().unwrap_or(u64::MAX) < 10_000);
    }

    #[tokio::test]
    async fn bad_arguments_are_named() {
        for (args, want) in [
            (json!({}), "exactly one of"),
            (json!({"command": ["a"], "shell": "b"}), "command, shell"),
            (json!({"command": []}), "non-empty"),
            (json!({"command": "ls"}), "invalid type"),
            (json!({"shell": "true", "timeout_s": -1}), "timeout_s: -1"),
            (
                json!({"shell": "true", "output_limit": 0}),
                "output_limit: 0",
            ),
            (
                json!({"shell": "true", "bogus": 1}),
                "unknown field `bogus`",
            ),
            (
                json!({"shell": "true", "env": {"A": 1}}),
                "invalid type: integer",
            ),
        ] {
            let o = jrun(&args, &limits(), &CancellationToken::new()).await;
            assert_eq!(o.status, ReplyStatus::Error, "{args}");
            assert!(
                o.error.as_deref().unwrap_or("").contains(want),
                "{args}: {:?}",
                o.error
            );
        }
        let token = CancellationToken::new();
        let t2 = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            t2.cancel();
        });
        let started = Instant::now();
        let o = jrun(&json!({"shell": "sleep 30"}), &limits(), &token).await;
        assert!(started.elapsed() < Duration::from_secs(10), "not stopped");
        assert_eq!(o.status, ReplyStatus::Error);
        assert_eq!(o.data["cancelled"], true);
        assert!(
            o.error
                .as_deref()
                .is_some_and(|e| e.starts_with("cancelled")),
            "{o:?}"
        );
        let o = jrun(
            &json!({"command": ["/nonexistent/prog"]}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert!(o.error.unwrap_or_default().contains("cannot start"));
        assert_eq!(o.data["started"], false);
        let o = jrun(
            &json!({"shell": "true", "timeout_s": 1e9}),
            &limits(),
            &CancellationToken::new(),
        )
        .await;
        assert!(o.error.unwrap_or_default().contains("timeout_s 1000000000"));
    }
}
