//! The agent's audit log: one JSON line per structured request it accepted
//! or refused, and one when an accepted request finished, in
//! `state_dir/audit.log`, rotated by size (`audit.log.1` … `.3`).
//!
//! A line: `{"time_ms":…,"event":"accepted"|"rejected"|"duplicate"|"done",
//! "request_id":…,"sender":…,"key":…,"key_id":…,"action":…,
//! "args_sha256":…,"result":…,"code":…,"reason":…}`. The arguments themselves are not
//! written (they may hold secrets); their digest ties a line to a request
//! kept elsewhere. The file is opened for each line and never kept open.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bot_proto::Request;
use serde::Serialize;

/// Size at which `audit.log` is rotated.
pub const MAX_AUDIT_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`audit.log.1` is the newest).
pub const AUDIT_KEEP: u32 = 3;

/// One audit line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// When (unix ms).
    pub time_ms: u64,
    /// `accepted`, `rejected`, `duplicate` or `done`.
    pub event: &'a str,
    /// The request id.
    pub request_id: &'a str,
    /// Who the request says sent it.
    pub sender: &'a str,
    /// The trusted key's name in this agent's config, if the key is trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// The signing key's short id, if the request was signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The action.
    pub action: &'a str,
    /// SHA-256 of the request's `args` (compact JSON).
    pub args_sha256: String,
    /// For `done`: the reply status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a str>,
    /// For `rejected` and `duplicate`: a stable word (`unsigned`,
    /// `bad_signature`, `unknown_key`, `not_allowed`, `expired`, `future`,
    /// `replayed`, `malformed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    /// For `rejected` (the message the sender got) and `done` with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl<'a> Line<'a> {
    /// A line about `request`, at `time_ms`.
    pub fn about(request: &'a Request, event: &'a str, time_ms: u64) -> Line<'a> {
        let key_id = request
            .sig
            .as_deref()
            .and_then(|s| bot_auth::sign::parse_sig(s).ok())
            .map(|p| p.key.short());
        Line {
            time_ms,
            event,
            request_id: &request.id,
            sender: &request.sender,
            key: None,
            key_id,
            action: &request.action,
            args_sha256: bot_auth::digest_hex(request.args.to_string().as_bytes()),
            result: None,
            code: None,
            reason: None,
        }
    }
}

/// The audit log (cheap to clone; one writer at a time).
#[derive(Debug, Clone)]
pub struct Audit {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    max_bytes: u64,
    warned: bool,
}

impl Audit {
    /// An audit log at `path`.
    pub fn new(path: PathBuf) -> Audit {
        Audit::with_limit(Some(path), MAX_AUDIT_BYTES)
    }

    /// An audit log rotated at `max_bytes`; `None` writes nothing (tests).
    pub fn with_limit(path: Option<PathBuf>, max_bytes: u64) -> Audit {
        Audit {
            inner: Arc::new(Mutex::new(Inner {
                path,
                max_bytes,
                warned: false,
            })),
        }
    }

    /// Appends one line (one `write`); rotates first when the file is full.
    /// A failure is logged once and never stops the agent.
    pub fn record(&self, line: &Line<'_>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = inner.path.clone() else {
            return;
        };
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        let result = rotate_if_full(&path, inner.max_bytes).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
        });
        match result {
            Ok(()) => inner.warned = false,
            Err(e) if !inner.warned => {
                inner.warned = true;
                tracing::warn!(path = %path.display(), error = %e, "cannot write the audit log");
            }
            Err(_) => {}
        }
    }
}

fn rotate_if_full(path: &std::path::Path, max: u64) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() >= max => {}
        _ => return Ok(()),
    }
    let numbered = |n: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    for n in (1..AUDIT_KEEP).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> Request {
        Request {
            id: "r1".into(),
            sender: "op".into(),
            created_ms: 1,
            nonce: "0123456789abcdef".into(),
            ttl_ms: 1000,
            filter: None,
            action: "exec".into(),
            args: json!({"command": ["id"]}),
            reply_to: "bot/v1/reply/s".into(),
            sig: None,
        }
    }

    #[test]
    fn lines_are_json_and_the_log_rotates() {
        let dir = std::env::temp_dir().join(format!("bot-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("audit.log");
        let audit = Audit::with_limit(Some(path.clone()), 400);
        let r = request();
        for _ in 0..10 {
            let mut l = Line::about(&r, "rejected", 5);
            l.reason = Some("unsigned: …".into());
            audit.record(&l);
        }
        let text = std::fs::read_to_string(&path).expect("log");
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("a line")).expect("json");
        assert_eq!(first["event"], "rejected");
        assert_eq!(first["request_id"], "r1");
        assert_eq!(first["args_sha256"].as_str().map(str::len), Some(64));
        assert!(!text.contains("\"command\""), "arguments are not logged");
        assert!(dir.join("audit.log.1").exists());
        assert!(!dir.join("audit.log.4").exists(), "at most 3 rotated files");
        std::fs::remove_dir_all(dir).ok();
    }
}
