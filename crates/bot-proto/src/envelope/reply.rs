//! [`Reply`]: one agent's answer to one [`Request`](crate::Request),
//! published on the request's `reply_to`, with the agent's identity, the
//! outcome, the action's data and timings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, check_encoded, check_id, check_level, check_text, check_token};
use super::{
    DecodeError, MAX_ERROR_CHARS, MAX_ID_CHARS, MAX_NONCE_CHARS, MAX_REPLY_BYTES,
    MAX_REPLY_DATA_BYTES, MAX_SENDER_CHARS, MAX_SIG_CHARS, MIN_NONCE_CHARS, VERSION, show, to_json,
};

/// How a request ended on one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The action ran and succeeded (`data` holds its result).
    Ok,
    /// The action ran, or tried to, and failed (`error` says why).
    Error,
    /// The action did not finish within its time limit.
    Timeout,
    /// The agent refused the request (invalid, expired, replayed, not
    /// allowed by policy, bad signature); nothing ran.
    Rejected,
}

impl ReplyStatus {
    /// Every status, in declaration order.
    pub const ALL: [ReplyStatus; 4] = [
        ReplyStatus::Ok,
        ReplyStatus::Error,
        ReplyStatus::Timeout,
        ReplyStatus::Rejected,
    ];

    /// The wire name: `ok`, `error`, `timeout`, `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
            ReplyStatus::Timeout => "timeout",
            ReplyStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for ReplyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReplyStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<ReplyStatus, String> {
        ReplyStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("{} is not one of ok, error, timeout, rejected", show(s)))
    }
}

/// One agent's answer to one request.
///
/// On the wire (fields in this order; `error` and `sig` left out when
/// `None`):
///
/// ```json
/// {"v":1,"kind":"reply","request_id":"r-1","agent_id":"0f1e2d3c","agent_name":"web1",
///  "sender":"agent:0f1e2d3c","created_ms":1700000000120,"nonce":"5b0c1f0e2a9d4471",
///  "status":"ok","data":{"exit":0,"stdout":"up 3 days\n"},"received_ms":1700000000050,
///  "duration_ms":70}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The [`Request::id`](crate::Request::id) this answers (same rules).
    pub request_id: String,
    /// The answering agent's id (a topic level).
    pub agent_id: String,
    /// The answering agent's name (a topic level).
    pub agent_name: String,
    /// The identity that signs the reply (the agent's): 1..=256 characters,
    /// no control characters.
    pub sender: String,
    /// When the reply was made, unix ms (the agent's clock).
    pub created_ms: u64,
    /// 8..=64 printable ASCII characters, unique per sender.
    pub nonce: String,
    /// How it ended.
    pub status: ReplyStatus,
    /// The action's result, any JSON (≤ 1 MiB encoded); `null` when none.
    pub data: Value,
    /// What went wrong (≤ 4096 characters, no control characters other than
    /// newlines and tabs); `None` on success.
    pub error: Option<String>,
    /// When the agent received the request, unix ms (the agent's clock).
    pub received_ms: u64,
    /// How long the action took, in ms.
    pub duration_ms: u64,
    /// Signature over [`Reply::signing_bytes`]; `None` when unsigned.
    pub sig: Option<String>,
}

/// The wire form, borrowed; field order = key order on the wire.
#[derive(Serialize)]
struct Wire<'a> {
    v: u32,
    kind: &'static str,
    request_id: &'a str,
    agent_id: &'a str,
    agent_name: &'a str,
    sender: &'a str,
    created_ms: u64,
    nonce: &'a str,
    status: ReplyStatus,
    data: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    received_ms: u64,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
}

impl Reply {
    /// The `kind` of a reply.
    pub const KIND: &'static str = "reply";

    /// Decodes and validates a reply (see the [module docs](super)); the size
    /// limit is [`MAX_REPLY_BYTES`](super::MAX_REPLY_BYTES).
    pub fn decode(bytes: &[u8]) -> Result<Reply, DecodeError> {
        let mut f = Fields::parse(bytes, Self::KIND, MAX_REPLY_BYTES)?;
        let reply = Reply {
            request_id: f.string("request_id")?,
            agent_id: f.string("agent_id")?,
            agent_name: f.string("agent_name")?,
            sender: f.string("sender")?,
            created_ms: f.u64("created_ms")?,
            nonce: f.string("nonce")?,
            status: f
                .string("status")?
                .parse()
                .map_err(|e| DecodeError::field("status", e))?,
            data: f.value("data")?,
            error: f.opt_string("error")?,
            received_ms: f.u64("received_ms")?,
            duration_ms: f.u64("duration_ms")?,
            sig: f.opt_string("sig")?,
        };
        reply.validate()?;
        Ok(reply)
    }

    /// Checks every limit; `decode` runs this, senders may too.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_id("request_id", &self.request_id, MAX_ID_CHARS)?;
        check_level("agent_id", &self.agent_id)?;
        check_level("agent_name", &self.agent_name)?;
        check_text("sender", &self.sender, 1, MAX_SENDER_CHARS)?;
        check_token("nonce", &self.nonce, MIN_NONCE_CHARS, MAX_NONCE_CHARS)?;
        check_encoded("data", &self.data, MAX_REPLY_DATA_BYTES)?;
        if let Some(error) = &self.error {
            let n = error.chars().count();
            if n > MAX_ERROR_CHARS {
                return Err(DecodeError::field(
                    "error",
                    format!(
                        "{} is {n} characters, more than {MAX_ERROR_CHARS}",
                        show(error)
                    ),
                ));
            }
            if error
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(DecodeError::field(
                    "error",
                    format!("{} contains a control character", show(error)),
                ));
            }
        }
        if let Some(sig) = &self.sig {
            check_token("sig", sig, 1, MAX_SIG_CHARS)?;
        }
        Ok(())
    }

    /// The JSON encoding (compact, fields in declaration order).
    pub fn encode(&self) -> Vec<u8> {
        to_json(&self.wire(self.sig.as_deref()))
    }

    /// The canonical bytes a signature covers: [`Reply::encode`] without
    /// `sig` (see the [module docs](super#signing-bytes)).
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_json(&self.wire(None))
    }

    fn wire<'a>(&'a self, sig: Option<&'a str>) -> Wire<'a> {
        Wire {
            v: VERSION,
            kind: Self::KIND,
            request_id: &self.request_id,
            agent_id: &self.agent_id,
            agent_name: &self.agent_name,
            sender: &self.sender,
            created_ms: self.created_ms,
            nonce: &self.nonce,
            status: self.status,
            data: &self.data,
            error: self.error.as_deref(),
            received_ms: self.received_ms,
            duration_ms: self.duration_ms,
            sig,
        }
    }
}
