//! `bot-proto`: the wire types of the `bot` fleet system's structured
//! protocol — versioned JSON envelopes over MQTT under `bot/v1/…` — and its
//! filter language.
//!
//! The crate is pure: no I/O, no clock, no randomness, no async. Callers
//! pass ids, nonces and the current time in; every decoder and the filter
//! parser take untrusted bytes and never panic (property tests and the
//! `envelope` fuzz target check it).
//!
//! # Layout
//!
//! - [`action`]: the typed actions ([`Action`]: ping, facts, status, exec,
//!   cancel), their arguments (unknown fields refused) and results.
//! - [`api`]: the server's records and HTTP API bodies (agents, tasks,
//!   targets and their states), shared by the store, the server and the CLI.
//! - [`topics`]: the topic tree (`bot/v1/status/<id>`, `bot/v1/req/…`,
//!   `bot/v1/reply/<session>`, …) and the checks on topic levels, publish
//!   topics and reply destinations.
//! - [`envelope`]: [`Request`], [`Reply`], [`Status`], [`Heartbeat`] —
//!   `decode` (with every limit checked), `encode`, `validate`, the
//!   canonical signing bytes, expiry and clock checks, and
//!   [`Request::salvage`] for answering a request that failed validation.
//!   [`DecodeError`] says which field is wrong and why.
//! - [`metrics`]: samples ([`metrics::Sample`]: metric, value, GAUGE/DERIVE/
//!   COUNTER/ABSOLUTE) and the classic line codec `<name>:<metric>:<value>:<TYPE>`.
//! - [`nagios`]: Nagios plugin semantics for checks: exit codes to states,
//!   output split into text, long text and performance data, and
//!   performance data parsed into samples.
//! - [`filter`]: the filter language (`os=linux and tag:web and not db*`):
//!   [`filter::parse`], [`Filter::matches`] against any [`filter::Target`]
//!   (an agent, or a [`Status`] on the server), and a canonical `Display`.
//!
//! JSON Schemas for the four envelopes live in `docs/schemas/` (draft
//! 2020-12); the tests check that they accept what `encode` writes and
//! reject what `decode` rejects.
//!
//! ```
//! use bot_proto::{Request, topics};
//!
//! let req = Request {
//!     id: "r-1".into(),
//!     sender: "op@admin".into(),
//!     created_ms: 1_700_000_000_000,
//!     nonce: "9f86d081884c7d65".into(),
//!     ttl_ms: 30_000,
//!     filter: Some("os=linux and web*".into()),
//!     action: "ping".into(),
//!     args: serde_json::json!({}),
//!     reply_to: topics::reply_topic("s-1"),
//!     sig: None,
//! };
//! let bytes = req.encode();
//! assert_eq!(Request::decode(&bytes), Ok(req.clone()));
//! assert!(!req.is_expired(1_700_000_030_000));
//! assert!(req.is_expired(1_700_000_030_001));
//! ```

pub mod action;
pub mod api;
pub mod envelope;
pub mod filter;
pub mod metrics;
pub mod nagios;
pub mod topics;

pub use action::{Action, ActionError};
pub use envelope::Draft;
pub use envelope::{
    DecodeError, DecodedMetrics, Facts, Heartbeat, MAX_ENVELOPE_BYTES, MAX_REPLY_BYTES,
    MeasureConfig, Metrics, Reply, ReplyStatus, Request, Status, VERSION,
};
pub use filter::{Filter, FilterError, Target};

/// Unix time in milliseconds (0 if the clock is before 1970): the one
/// clock function of every crate (requests, statuses, replies, the store).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `id` is an agent id as agents make them: a hyphenated UUID
/// (`bot agent --print-id`). A status with any other id did not come from
/// an agent.
pub fn is_agent_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}
