//! The typed actions of the structured protocol: what a [`Request`] asks an
//! agent to do ([`Action`], one variant per action with typed arguments) and
//! what comes back (the `*Result` types, a reply's `data`).
//!
//! On the wire a request keeps `action` (the name) and `args` (a JSON
//! object) side by side; [`Action::from_parts`] turns them into a typed value
//! and [`Action::args`] back. Every argument type refuses unknown fields, so
//! a typo (`"comand"`) is an error naming the field, never a silent default.
//!
//! | action | args | data |
//! |---|---|---|
//! | `ping` | [`PingArgs`] (none) | [`PingResult`] |
//! | `facts` | [`FactsArgs`] | the facts (an object) |
//! | `status` | [`StatusArgs`] (none) | [`StatusResult`] |
//! | `exec` | [`ExecArgs`] | [`ExecResult`] |
//! | `cancel` | [`CancelArgs`] | [`CancelResult`] |
//!
//! [`Request`]: crate::Request

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{DecodeError, cut};

/// The names of every action, in the order of the table above.
pub const NAMES: [&str; 6] = ["ping", "facts", "status", "exec", "cancel", "check"];

/// What a key may be trusted for beyond the request actions: signing the
/// measuring settings an agent runs with ([`MeasureConfig`](crate::MeasureConfig)).
pub const CONFIGURE: &str = "configure";

/// A request's action with its typed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Is the agent there?
    Ping(PingArgs),
    /// The agent's facts, all or some.
    Facts(FactsArgs),
    /// The agent's own state (version, uptime, measuring).
    Status(StatusArgs),
    /// Run a command.
    Exec(ExecArgs),
    /// Stop a running request.
    Cancel(CancelArgs),
    /// Run one of the checks configured on the agent (Nagios plugin
    /// semantics); a key may be trusted for this without `exec`.
    Check(CheckArgs),
}

impl Action {
    /// The action's name on the wire (`"exec"`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Ping(_) => "ping",
            Action::Facts(_) => "facts",
            Action::Status(_) => "status",
            Action::Exec(_) => "exec",
            Action::Cancel(_) => "cancel",
            Action::Check(_) => "check",
        }
    }

    /// The arguments as the JSON object that travels in `args`.
    pub fn args(&self) -> Value {
        let v = match self {
            Action::Ping(a) => serde_json::to_value(a),
            Action::Facts(a) => serde_json::to_value(a),
            Action::Status(a) => serde_json::to_value(a),
            Action::Exec(a) => serde_json::to_value(a),
            Action::Cancel(a) => serde_json::to_value(a),
            Action::Check(a) => serde_json::to_value(a),
        };
        // These types serialize to objects with string keys: cannot fail.
        v.unwrap_or_else(|_| Value::Object(Default::default()))
    }

    /// The typed action from a request's `action` and `args`. An unknown
    /// action is [`ActionError::Unknown`]; arguments of the wrong shape,
    /// unknown argument names and values outside their limits are
    /// [`ActionError::Args`], naming the field.
    pub fn from_parts(action: &str, args: &Value) -> Result<Action, ActionError> {
        fn typed<T: for<'de> Deserialize<'de>>(
            action: &str,
            args: &Value,
        ) -> Result<T, ActionError> {
            T::deserialize(args).map_err(|e| ActionError::Args {
                action: action.to_owned(),
                reason: cut(&e.to_string(), false),
            })
        }
        let a = match action {
            "ping" => Action::Ping(typed(action, args)?),
            "facts" => Action::Facts(typed(action, args)?),
            "status" => Action::Status(typed(action, args)?),
            "exec" => {
                let a: ExecArgs = typed(action, args)?;
                a.check().map_err(|reason| ActionError::Args {
                    action: action.to_owned(),
                    reason,
                })?;
                Action::Exec(a)
            }
            "cancel" => Action::Cancel(typed(action, args)?),
            "check" => {
                let a: CheckArgs = typed(action, args)?;
                check_name(&a.name).map_err(|reason| ActionError::Args {
                    action: action.to_owned(),
                    reason,
                })?;
                Action::Check(a)
            }
            other => return Err(ActionError::Unknown(cut(other, true))),
        };
        Ok(a)
    }
}

/// Why a request's `action`/`args` are not a valid [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such action (the name, cut).
    #[error("unknown action \"{0}\" (known: ping, facts, status, exec, cancel, check)")]
    Unknown(String),
    /// The arguments do not fit the action.
    #[error("{action}: bad arguments: {reason}")]
    Args {
        /// The action.
        action: String,
        /// What is wrong, naming the field.
        reason: String,
    },
}

impl From<ActionError> for DecodeError {
    fn from(e: ActionError) -> DecodeError {
        match e {
            ActionError::Unknown(_) => DecodeError::field("action", e.to_string()),
            ActionError::Args { .. } => DecodeError::field("args", e.to_string()),
        }
    }
}

/// `ping` takes no arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingArgs {}

/// `ping`'s data: `{"pong": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingResult {
    /// Always true.
    pub pong: bool,
}

/// `facts`: all facts, or only those named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsArgs {
    /// Only these facts (missing ones are left out of the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
}

/// `status` takes no arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {}

/// `status`'s data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResult {
    /// Agent id.
    pub id: String,
    /// Agent name.
    pub name: String,
    /// Agent version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Classic measuring on.
    pub selected: bool,
    /// Classic measuring interval (s).
    pub interval_s: f64,
    /// The actions this agent answers.
    pub actions: Vec<String>,
}

/// `cancel`: stop the running request `request_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    /// The request to stop.
    pub request_id: String,
}

/// `cancel`'s data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelResult {
    /// True if that request was running here and was told to stop.
    pub cancelled: bool,
}

/// `check`: run the check configured on the agent under this name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckArgs {
    /// The check's name (`[checks.NAME]` in the agent's config).
    pub name: String,
}

/// Whether `name` can name a check: 1..=64 characters of `[A-Za-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "name: {} must be 1..=64 characters of [A-Za-z0-9_.-]",
            cut(name, true)
        ));
    }
    Ok(())
}

/// `check`'s data: the plugin's state and output, Nagios-style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub check: String,
    /// OK, WARNING, CRITICAL or UNKNOWN.
    pub state: String,
    /// The Nagios return code, 0..=3.
    pub code: u8,
    /// The first line of output, without performance data.
    pub output: String,
    /// The following lines, without performance data.
    pub long_output: String,
    /// The performance data, as printed.
    pub perfdata: String,
    /// Why the state is UNKNOWN when the exit code did not say it (a
    /// timeout, a signal, another code, a plugin that could not start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Run time.
    pub duration_ms: u64,
}

/// Longest `output_limit` an `exec` may ask for (per stream).
pub const MAX_OUTPUT_LIMIT: u64 = 1024 * 1024;

/// `exec`: run a command. Exactly one of `command`, `shell`, `script`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// `["prog", "arg", …]`, run directly, never through a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A string for `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// A script body fed on stdin to `interpreter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The script's interpreter (default `/bin/sh`); only with `script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Added to the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Seconds before the process group is killed (default: the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Bytes kept of stdout and of stderr each (the tail), 1..=1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_limit: Option<u64>,
}

/// What an `exec` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program<'a> {
    /// A program and its arguments, run directly.
    Argv(&'a [String]),
    /// A `/bin/sh -c` string.
    Shell(&'a str),
    /// A script body for an interpreter.
    Script {
        /// The interpreter (`/bin/sh` unless given).
        interpreter: &'a str,
        /// The body, fed on stdin.
        body: &'a str,
    },
}

impl ExecArgs {
    /// An `exec` of `argv`.
    pub fn command(argv: Vec<String>) -> ExecArgs {
        ExecArgs {
            command: Some(argv),
            ..ExecArgs::default()
        }
    }

    /// An `exec` of a shell string.
    pub fn shell(line: impl Into<String>) -> ExecArgs {
        ExecArgs {
            shell: Some(line.into()),
            ..ExecArgs::default()
        }
    }

    /// What to run (valid after [`ExecArgs::check`]).
    pub fn program(&self) -> Result<Program<'_>, String> {
        match (&self.command, &self.shell, &self.script) {
            (Some(argv), None, None) => {
                if argv.first().is_none_or(String::is_empty) {
                    return Err("command must be a non-empty array of strings".into());
                }
                Ok(Program::Argv(argv))
            }
            (None, Some(s), None) => {
                if s.is_empty() {
                    return Err("shell must be a non-empty string".into());
                }
                Ok(Program::Shell(s))
            }
            (None, None, Some(body)) => Ok(Program::Script {
                interpreter: self.interpreter.as_deref().unwrap_or("/bin/sh"),
                body,
            }),
            _ => {
                let given: Vec<&str> = [
                    ("command", self.command.is_some()),
                    ("shell", self.shell.is_some()),
                    ("script", self.script.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, on)| on.then_some(k))
                .collect();
                Err(format!(
                    "give exactly one of command, shell, script (got {})",
                    if given.is_empty() {
                        "none".to_owned()
                    } else {
                        given.join(", ")
                    }
                ))
            }
        }
    }

    /// The command line a key's policy globs are matched against: the
    /// argv joined by single spaces for `command`; `None` for `shell` and
    /// `script`, which only a policy that allows every command may run (a
    /// glob over shell text cannot stop `a; b`).
    pub fn command_line(&self) -> Option<String> {
        match self.program() {
            Ok(Program::Argv(argv)) => Some(argv.join(" ")),
            _ => None,
        }
    }

    /// Checks what serde cannot: one program, and every limit.
    pub fn check(&self) -> Result<(), String> {
        self.program()?;
        if self.interpreter.is_some() && self.script.is_none() {
            return Err("interpreter is only for script".into());
        }
        if let Some(i) = &self.interpreter
            && i.is_empty()
        {
            return Err("interpreter must be a path".into());
        }
        for k in self.env.iter().flat_map(BTreeMap::keys) {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(format!(
                    "bad environment variable name \"{}\"",
                    cut(k, true)
                ));
            }
        }
        if let Some(t) = self.timeout_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(format!(
                "timeout_s: {t} is not a positive number of seconds"
            ));
        }
        if let Some(n) = self.output_limit
            && !(1..=MAX_OUTPUT_LIMIT).contains(&n)
        {
            return Err(format!(
                "output_limit: {n} is not in 1..={MAX_OUTPUT_LIMIT}"
            ));
        }
        Ok(())
    }
}

/// `exec`'s data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// The exit code; `None` if killed by a signal or never started.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Killed for running past its timeout.
    pub timed_out: bool,
    /// Killed by a `cancel`.
    #[serde(default)]
    pub cancelled: bool,
    /// The tail of stdout (lossy UTF-8).
    pub stdout: String,
    /// The tail of stderr (lossy UTF-8).
    pub stderr: String,
    /// Bytes written to stdout in all.
    pub stdout_bytes: u64,
    /// Bytes written to stderr in all.
    pub stderr_bytes: u64,
    /// Some output was left out (only the tails are kept).
    pub truncated: bool,
    /// Run time.
    pub duration_ms: u64,
    /// False when the command could not be started at all.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub started: bool,
    /// When the command exited but background children still held its
    /// output: `left running` (the default) or `killed`
    /// (`exec_kill_descendants`). Their output after the exit is not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descendants: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_every_action() {
        for a in [
            Action::Ping(PingArgs {}),
            Action::Facts(FactsArgs {
                names: Some(vec!["os".into()]),
            }),
            Action::Status(StatusArgs {}),
            Action::Exec(ExecArgs::command(vec!["uname".into(), "-s".into()])),
            Action::Exec(ExecArgs {
                timeout_s: Some(5.0),
                env: Some([("A".to_owned(), "1".to_owned())].into()),
                ..ExecArgs::shell("echo hi")
            }),
            Action::Cancel(CancelArgs {
                request_id: "r1".into(),
            }),
        ] {
            let back = Action::from_parts(a.name(), &a.args()).expect("valid");
            assert_eq!(back, a);
        }
        assert_eq!(Action::Ping(PingArgs {}).args(), json!({}));
    }

    #[test]
    fn bad_arguments_name_the_field() {
        for (action, args, want) in [
            ("exec", json!({"comand": ["x"]}), "comand"),
            ("exec", json!({}), "exactly one"),
            (
                "exec",
                json!({"command": ["a"], "shell": "b"}),
                "command, shell",
            ),
            ("exec", json!({"command": []}), "non-empty"),
            ("exec", json!({"shell": ""}), "non-empty"),
            ("exec", json!({"command": [1]}), "invalid type"),
            (
                "exec",
                json!({"shell": "x", "interpreter": "/bin/bash"}),
                "only for script",
            ),
            ("exec", json!({"shell": "x", "env": {"A=B": "c"}}), "A=B"),
            ("exec", json!({"shell": "x", "timeout_s": -1}), "timeout_s"),
            (
                "exec",
                json!({"shell": "x", "output_limit": 0}),
                "output_limit",
            ),
            ("ping", json!({"x": 1}), "`x`"),
            ("cancel", json!({}), "request_id"),
            ("facts", json!({"names": "os"}), "invalid type"),
        ] {
            let e = Action::from_parts(action, &args).expect_err("invalid");
            assert!(e.to_string().contains(want), "{args}: {e}");
            assert!(matches!(e, ActionError::Args { .. }));
        }
        let e = Action::from_parts("reboot", &json!({})).expect_err("unknown");
        assert_eq!(e, ActionError::Unknown("reboot".into()));
    }

    #[test]
    fn errors_quote_at_most_a_cut_of_the_input() {
        let long = "k".repeat(1_000_000);
        let e = Action::from_parts("exec", &json!({ long.clone(): 1 })).expect_err("unknown field");
        assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
        let e = Action::from_parts(&long, &json!({})).expect_err("unknown action");
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn command_line_is_only_for_argv() {
        let a = ExecArgs::command(vec!["systemctl".into(), "restart".into(), "nginx".into()]);
        assert_eq!(a.command_line().as_deref(), Some("systemctl restart nginx"));
        assert_eq!(ExecArgs::shell("ls; rm -rf /").command_line(), None);
    }

    #[test]
    fn exec_result_round_trips_and_defaults_started() {
        let r = ExecResult {
            exit_code: Some(0),
            stdout: "x".into(),
            started: true,
            ..ExecResult::default()
        };
        let v = serde_json::to_value(&r).expect("encode");
        assert!(v.get("started").is_none());
        assert_eq!(serde_json::from_value::<ExecResult>(v).expect("decode"), r);
    }
}
