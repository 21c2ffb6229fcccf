//! [`Request`]: what a requester (CLI, server, scheduler) asks agents to do,
//! with the filter that selects them, where to send the replies, a TTL and
//! the sender's identity, nonce and (later) signature.

use serde::Serialize;
use serde_json::Value;

use super::fields::{Fields, check_encoded, check_id, check_text, check_token};
use super::{
    DecodeError, MAX_ACTION_CHARS, MAX_ARGS_BYTES, MAX_CLOCK_SKEW_MS, MAX_ENVELOPE_BYTES,
    MAX_ID_CHARS, MAX_NONCE_CHARS, MAX_SENDER_CHARS, MAX_SIG_CHARS, MAX_TTL_MS, MIN_NONCE_CHARS,
    VERSION, show, to_json,
};
use crate::filter::{self, Filter, FilterError, MAX_FILTER_BYTES};
use crate::topics;

/// A request: run `action` with `args` on every agent the filter selects
/// and publish each [`Reply`](crate::Reply) on `reply_to`.
///
/// On the wire (fields in this order; `filter` and `sig` left out when
/// `None`):
///
/// ```json
/// {"v":1,"kind":"request","id":"r-1","sender":"op@admin","created_ms":1700000000000,
///  "nonce":"9f86d081884c7d65","ttl_ms":30000,"filter":"os=linux and tag:web",
///  "action":"run","args":{"cmd":"uptime"},"reply_to":"bot/v1/reply/s-1"}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Unique id: 1..=64 characters of `[A-Za-z0-9_-]`. Agents never run two
    /// requests with the same id (idempotence).
    pub id: String,
    /// Who sends it (the identity a signature is checked against): 1..=256
    /// characters, no control characters.
    pub sender: String,
    /// When it was created, unix milliseconds (the requester's clock).
    pub created_ms: u64,
    /// Replay protection: 8..=64 printable ASCII characters, unique per
    /// sender within the TTL.
    pub nonce: String,
    /// Lifetime: 1..=86 400 000 ms after `created_ms`.
    pub ttl_ms: u64,
    /// Which agents act ([`crate::filter`] syntax, ≤ 4096 bytes); `None`:
    /// every agent that receives it.
    pub filter: Option<String>,
    /// What to do: 1..=64 characters of `[a-z][a-z0-9_]*` (`ping`, `run`).
    pub action: String,
    /// The action's arguments: a JSON object, ≤ 128 KiB encoded.
    pub args: Value,
    /// Where replies go: a topic to publish to (see
    /// [`topics::valid_reply_topic`]).
    pub reply_to: String,
    /// Signature over [`Request::signing_bytes`]; `None` when unsigned.
    pub sig: Option<String>,
}

/// What a requester wants, before the one constructor
/// ([`Request::from_draft`], called by the signer that owns the clock and the
/// nonce source) makes it a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The typed action.
    pub action: crate::Action,
    /// Which agents act; `None`: every agent that receives it.
    pub filter: Option<String>,
    /// Where replies go.
    pub reply_to: String,
    /// Lifetime in ms (clamped to 1..=[`MAX_TTL_MS`]).
    pub ttl_ms: u64,
}

/// The wire form, borrowed; field order = key order on the wire.
#[derive(Serialize)]
struct Wire<'a> {
    v: u32,
    kind: &'static str,
    id: &'a str,
    sender: &'a str,
    created_ms: u64,
    nonce: &'a str,
    ttl_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<&'a str>,
    action: &'a str,
    args: &'a Value,
    reply_to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
}

/// Longest input [`Request::salvage`] looks at.
const MAX_SALVAGE_BYTES: usize = 4 * MAX_ENVELOPE_BYTES;

impl Request {
    /// The `kind` of a request.
    pub const KIND: &'static str = "request";

    /// The one constructor of requests: `draft` with the sender's identity,
    /// a fresh id, the creation time and a nonce (all from the caller, who
    /// owns the clock and the randomness), unsigned.
    pub fn from_draft(
        draft: Draft,
        sender: String,
        id: String,
        created_ms: u64,
        nonce: String,
    ) -> Request {
        Request {
            id,
            sender,
            created_ms,
            nonce,
            ttl_ms: draft.ttl_ms.clamp(1, MAX_TTL_MS),
            filter: draft.filter,
            action: draft.action.name().to_owned(),
            args: draft.action.args(),
            reply_to: draft.reply_to,
            sig: None,
        }
    }

    /// The typed action of this request.
    pub fn typed_action(&self) -> Result<crate::Action, crate::ActionError> {
        crate::Action::from_parts(&self.action, &self.args)
    }

    /// Decodes and validates a request (see the [module docs](super)).
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        let mut f = Fields::parse(bytes, Self::KIND, MAX_ENVELOPE_BYTES)?;
        let request = Request {
            id: f.string("id")?,
            sender: f.string("sender")?,
            created_ms: f.u64("created_ms")?,
            nonce: f.string("nonce")?,
            ttl_ms: f.u64("ttl_ms")?,
            filter: f.opt_string("filter")?,
            action: f.string("action")?,
            args: Value::Object(f.object("args")?),
            reply_to: f.string("reply_to")?,
            sig: f.opt_string("sig")?,
        };
        request.validate()?;
        Ok(request)
    }

    /// Checks every limit; `decode` runs this, senders may too.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_id("id", &self.id, MAX_ID_CHARS)?;
        check_text("sender", &self.sender, 1, MAX_SENDER_CHARS)?;
        check_token("nonce", &self.nonce, MIN_NONCE_CHARS, MAX_NONCE_CHARS)?;
        if !(1..=MAX_TTL_MS).contains(&self.ttl_ms) {
            return Err(DecodeError::field(
                "ttl_ms",
                format!("{} is outside 1..={MAX_TTL_MS}", self.ttl_ms),
            ));
        }
        if let Some(text) = &self.filter {
            if text.len() > MAX_FILTER_BYTES {
                return Err(DecodeError::field(
                    "filter",
                    format!("is {} bytes, more than {MAX_FILTER_BYTES}", text.len()),
                ));
            }
            filter::parse(text).map_err(|e| {
                DecodeError::field(
                    "filter",
                    format!(
                        "{}: filter error at column {}: {}",
                        show(text),
                        e.position + 1,
                        e.message
                    ),
                )
            })?;
        }
        check_action(&self.action)?;
        if !self.args.is_object() {
            return Err(DecodeError::field("args", "must be a JSON object"));
        }
        check_encoded("args", &self.args, MAX_ARGS_BYTES)?;
        topics::valid_reply_topic(&self.reply_to).map_err(|e| DecodeError::field("reply_to", e))?;
        if let Some(sig) = &self.sig {
            check_token("sig", sig, 1, MAX_SIG_CHARS)?;
        }
        Ok(())
    }

    /// The JSON encoding (compact, fields in declaration order).
    pub fn encode(&self) -> Vec<u8> {
        to_json(&self.wire(self.sig.as_deref()))
    }

    /// The canonical bytes a signature covers: [`Request::encode`] without
    /// `sig` (see the [module docs](super#signing-bytes)).
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_json(&self.wire(None))
    }

    fn wire<'a>(&'a self, sig: Option<&'a str>) -> Wire<'a> {
        Wire {
            v: VERSION,
            kind: Self::KIND,
            id: &self.id,
            sender: &self.sender,
            created_ms: self.created_ms,
            nonce: &self.nonce,
            ttl_ms: self.ttl_ms,
            filter: self.filter.as_deref(),
            action: &self.action,
            args: &self.args,
            reply_to: &self.reply_to,
            sig,
        }
    }

    /// The request's filter, parsed; no filter is [`Filter::all`].
    pub fn parsed_filter(&self) -> Result<Filter, FilterError> {
        match &self.filter {
            Some(text) => filter::parse(text),
            None => Ok(Filter::all()),
        }
    }

    /// Unix ms after which the request must not be acted on
    /// (`created_ms + ttl_ms`, saturating).
    pub fn expires_ms(&self) -> u64 {
        self.created_ms.saturating_add(self.ttl_ms)
    }

    /// True when `now_ms` is past the request's lifetime
    /// (`created_ms + ttl_ms < now_ms`).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms() < now_ms
    }

    /// Refuses a request created more than [`MAX_CLOCK_SKEW_MS`] (30 s) in
    /// the future of `now_ms`: the sender's clock (or the message) is wrong,
    /// and honouring it would stretch its lifetime. Expiry is
    /// [`Request::is_expired`]'s business, not this one's.
    pub fn check_clock(&self, now_ms: u64) -> Result<(), String> {
        let ahead = self.created_ms.saturating_sub(now_ms);
        if ahead > MAX_CLOCK_SKEW_MS {
            return Err(format!(
                "request {} was created {ahead} ms in the future (more than {MAX_CLOCK_SKEW_MS} ms of clock skew)",
                self.id
            ));
        }
        Ok(())
    }

    /// Best effort, for answering a message that failed [`Request::decode`]:
    /// its `id` and `reply_to` when the bytes are a JSON object (of at most
    /// 1 MiB) whose `id` is a valid request id, whose `reply_to` is a valid
    /// reply topic, and whose `kind` is `"request"` or absent (so that a
    /// reply or status sent to a request topic is never answered: no loops).
    /// `v` is not checked: a v2 request gets a v1 error reply.
    pub fn salvage(bytes: &[u8]) -> Option<(String, String)> {
        if bytes.len() > MAX_SALVAGE_BYTES {
            return None;
        }
        let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(bytes) else {
            return None;
        };
        match map.get("kind") {
            None => {}
            Some(Value::String(k)) if k == Self::KIND => {}
            Some(_) => return None,
        }
        let (Some(Value::String(id)), Some(Value::String(reply_to))) =
            (map.remove("id"), map.remove("reply_to"))
        else {
            return None;
        };
        check_id("id", &id, MAX_ID_CHARS).ok()?;
        topics::valid_reply_topic(&reply_to).ok()?;
        Some((id, reply_to))
    }
}

/// `action`: 1..=64 characters of `[a-z][a-z0-9_]*`.
fn check_action(action: &str) -> Result<(), DecodeError> {
    let mut bytes = action.bytes();
    let ok = action.len() <= MAX_ACTION_CHARS
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DecodeError::field(
            "action",
            format!(
                "{} must be 1..={MAX_ACTION_CHARS} characters of [a-z][a-z0-9_]*",
                show(action)
            ),
        ))
    }
}
