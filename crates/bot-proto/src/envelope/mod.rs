//! The envelopes of the structured protocol: one JSON object per MQTT
//! message, `{"v": 1, "kind": "...", ...}`, decoded and validated here at
//! every boundary.
//!
//! | kind | type | topic |
//! |---|---|---|
//! | `request` | [`Request`] | `bot/v1/req/…` |
//! | `reply` | [`Reply`] | the request's `reply_to` |
//! | `status` | [`Status`] | `bot/v1/status/<id>` (retained, last will) |
//! | `heartbeat` | [`Heartbeat`] | `bot/v1/heartbeat/<id>` |
//! | `config` | [`MeasureConfig`] | `bot/v1/config/<id>` (retained, signed by the server) |
//! | `metrics` | [`Metrics`] | `bot/v1/metrics/<id>` (samples of one round; lenient about samples) |
//!
//! # Decoding
//!
//! `decode` checks, in order: the size ([`MAX_ENVELOPE_BYTES`], or
//! [`MAX_REPLY_BYTES`] for replies), that the bytes are one JSON object, `v`
//! (must be the integer `1`: [`DecodeError::Version`] otherwise), `kind`
//! ([`DecodeError::Kind`]), the JSON type of every field, and then every
//! limit (the type's `validate`). The first problem found is reported, with
//! the field and the offending value (cut to 60 characters).
//!
//! - Unknown fields are **ignored** (a v1 peer may add optional fields; a
//!   breaking change gets a new `v`).
//! - Every field without `Option` is required. An `Option` field may be
//!   absent or `null`; `encode` leaves it out when it is `None`.
//! - Whole numbers (`created_ms`, `ttl_ms`, …) must be written as JSON
//!   integers within `u64` (`1.0`, `1e3` and `-1` are rejected).
//! - Duplicate keys: the last one wins (serde_json's behaviour); signatures
//!   are computed over the decoded values (see below), so this cannot make a
//!   signed message mean two things.
//!
//! `encode` writes the fields in the order they are declared (`v` and `kind`
//! first), compact, and never fails; `decode(&x.encode())` succeeds exactly
//! when `x.validate()` does, and gives back `x`.
//!
//! # Signing bytes
//!
//! [`Request::signing_bytes`] and [`Reply::signing_bytes`] are the canonical
//! bytes a signature covers: the compact encoding of the envelope without
//! its `sig` field, keys in declaration order (`v`, `kind`, then the fields
//! as listed on the type), `None` fields left out, objects inside `args` /
//! `data` with their keys sorted (serde_json's map is ordered), numbers in
//! serde_json's shortest round-trip form (floats are parsed exactly: the
//! crate enables serde_json's `float_roundtrip`). They are a function of the
//! decoded value, not of the received text, so a receiver recomputes them
//! from what it decoded: whitespace, key order and escapes on the wire do not
//! matter, and `decode` → `signing_bytes` equals the sender's
//! `signing_bytes`.
//!
//! # Time
//!
//! The crate has no clock: [`Request::is_expired`] and
//! [`Request::check_clock`] take the current time in unix milliseconds.

mod config;
mod error;
mod fields;
mod heartbeat;
mod metrics;
mod reply;
mod request;
mod status;

pub use config::MeasureConfig;
pub use error::DecodeError;
pub use heartbeat::Heartbeat;
pub use metrics::{DecodedMetrics, MAX_BATCH_SAMPLES, Metrics};
pub use reply::{Reply, ReplyStatus};
pub use request::{Draft, Request};
pub use status::Status;

/// The protocol version this crate speaks (the `v` of every envelope).
pub const VERSION: u32 = 1;

/// Largest request, status or heartbeat, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Largest reply, in bytes: room for [`MAX_REPLY_DATA_BYTES`] of `data` plus
/// the other fields (a command's output is the big part of a reply).
pub const MAX_REPLY_BYTES: usize = MAX_REPLY_DATA_BYTES + 64 * 1024;

/// Request ids (and a reply's `request_id`): 1..=64 characters of
/// `[A-Za-z0-9_-]`.
pub const MAX_ID_CHARS: usize = 64;

/// `sender`: 1..=256 characters, no control characters.
pub const MAX_SENDER_CHARS: usize = 256;

/// `nonce`: at least this many printable ASCII characters (`!`..=`~`).
pub const MIN_NONCE_CHARS: usize = 8;

/// `nonce`: at most this many characters.
pub const MAX_NONCE_CHARS: usize = 64;

/// `sig`, when present: 1..=1024 printable ASCII characters.
pub const MAX_SIG_CHARS: usize = 1024;

/// A status's `key`, when present: 1..=128 printable ASCII characters.
pub const MAX_KEY_CHARS: usize = 128;

/// `action`: 1..=64 characters of `[a-z][a-z0-9_]*`.
pub const MAX_ACTION_CHARS: usize = 64;

/// `args`, encoded as compact JSON, at most this many bytes.
pub const MAX_ARGS_BYTES: usize = 128 * 1024;

/// Longest `ttl_ms`: one day (the shortest is 1).
pub const MAX_TTL_MS: u64 = 86_400_000;

/// How far in the future a request's `created_ms` may be (clock skew):
/// 30 s. Further would let a signed request outlive its TTL by that much.
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;

/// A reply's `data`, encoded as compact JSON, at most this many bytes.
pub const MAX_REPLY_DATA_BYTES: usize = 1024 * 1024;

/// A reply's `error`: at most this many characters.
pub const MAX_ERROR_CHARS: usize = 4096;

/// A status's `facts`: at most this many keys.
pub const MAX_FACTS: usize = 512;

/// A fact name: 1..=128 bytes, no control characters.
pub const MAX_FACT_KEY_BYTES: usize = 128;

/// A status's `tags`, `pools` and `ips`: at most this many entries each.
pub const MAX_LIST_ENTRIES: usize = 64;

/// One entry of a status's `ips`: 1..=64 bytes, no whitespace or control
/// characters.
pub const MAX_IP_BYTES: usize = 64;

/// A status's `hostname`: 1..=255 bytes, no whitespace or control characters.
pub const MAX_HOSTNAME_BYTES: usize = 255;

/// A status's `version`: 1..=64 characters, no control characters.
pub const MAX_VERSION_CHARS: usize = 64;

/// A status's `heartbeat_s`: 0 (the agent sends no heartbeats) ..= one day.
pub const MAX_HEARTBEAT_S: u64 = 86_400;

/// Facts of an agent: name → any JSON value (sorted by name).
pub type Facts = std::collections::BTreeMap<String, serde_json::Value>;

/// Offending values quoted in an error are cut to this many characters.
pub const MAX_SHOWN_CHARS: usize = 60;

/// `s` for an error message: control characters escaped (`\n`,
/// `\u{1b}`), and `"` and `\` too when `quotes`; cut to
/// [`MAX_SHOWN_CHARS`] characters as shown, `…` appended when cut.
pub(crate) fn cut(s: &str, quotes: bool) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in s.chars() {
        let escape = c.is_control() || (quotes && matches!(c, '"' | '\\'));
        let piece: String = if escape {
            c.escape_debug().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if shown + n > MAX_SHOWN_CHARS {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        shown += n;
    }
    out
}

/// `s` quoted, escaped and cut for an error message.
pub(crate) fn show(s: &str) -> String {
    format!("\"{}\"", cut(s, true))
}

/// A JSON value in compact form, escaped and cut, for an error message.
pub(crate) fn show_value(v: &serde_json::Value) -> String {
    cut(&v.to_string(), false)
}

/// Compact JSON of `value`. Serializing these types into a `Vec` cannot
/// fail (every map key is a string and a `Vec` never refuses bytes).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The length of `value`'s compact JSON encoding, without building it.
pub(crate) fn encoded_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cut_and_show() {
        assert_eq!(cut("abc", true), "abc");
        let long = "é".repeat(61);
        assert_eq!(cut(&long, true), format!("{}…", "é".repeat(60)));
        assert_eq!(cut(&"x".repeat(60), true), "x".repeat(60));
        assert_eq!(show("a\nb"), "\"a\\nb\"");
        assert_eq!(show("say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
        assert_eq!(show_value(&json!({"a": [1, 2]})), "{\"a\":[1,2]}");
        assert_eq!(show_value(&json!("\u{7f}")), "\"\\u{7f}\"");
        // Escapes count as shown: never more than 60 characters.
        let ctl = "\u{7f}".repeat(30);
        let shown = cut(&ctl, true);
        assert_eq!(shown, format!("{}…", "\\u{7f}".repeat(10)));
    }

    #[test]
    fn encoded_len_counts_compact_json() {
        for v in [
            json!(null),
            json!({"b": 1, "a": "x\"y"}),
            json!([1.5, "é", {}]),
        ] {
            assert_eq!(encoded_len(&v), v.to_string().len());
        }
    }
}
