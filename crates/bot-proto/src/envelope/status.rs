//! [`Status`]: an agent's registration — identity, facts, tags, pools —
//! published retained on `bot/v1/status/<id>` when it connects and whenever
//! it changes; the same message with `online: false` is its MQTT last will,
//! so the fleet sees it go offline at once.

use serde::Serialize;

use super::fields::{Fields, check_count, check_level, check_text, check_token, check_word};
use super::{
    DecodeError, Facts, MAX_ENVELOPE_BYTES, MAX_FACT_KEY_BYTES, MAX_FACTS, MAX_HEARTBEAT_S,
    MAX_HOSTNAME_BYTES, MAX_IP_BYTES, MAX_KEY_CHARS, MAX_LIST_ENTRIES, MAX_SIG_CHARS,
    MAX_VERSION_CHARS, VERSION, show, to_json,
};
use crate::filter::Target;
use crate::metrics::Measure;

/// An agent's registration.
///
/// On the wire (fields in this order, all required but `key` and `sig`;
/// `facts` sorted by name):
///
/// ```json
/// {"v":1,"kind":"status","id":"0f1e2d3c","name":"web1","hostname":"web1.example.com",
///  "ips":["10.0.0.5","fe80::1"],"version":"0.1.0","online":true,
///  "facts":{"cpus":4,"memory":{"total":8589934592},"os":"linux"},"tags":["web","prod"],
///  "pools":["build"],"started_ms":1700000000000,"heartbeat_s":30,"created_ms":1700000000000,
///  "measure":{"enabled":true,"interval_ms":10000,"collectors":["cpu","memory"],"revision":3,
///  "local":false}}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The agent's persistent id (a topic level: 1..=128 bytes, no `/ + #`,
    /// whitespace or control characters).
    pub id: String,
    /// The agent's name (a topic level), what name globs in filters match.
    pub name: String,
    /// The host's name: 1..=255 bytes, no whitespace or control characters.
    pub hostname: String,
    /// The host's addresses, at most 64, each 1..=64 bytes without
    /// whitespace (not otherwise checked: `fe80::1%eth0` is fine).
    pub ips: Vec<String>,
    /// The agent's version: 1..=64 characters, no control characters.
    pub version: String,
    /// False in the last will (and in a clean shutdown's final status).
    pub online: bool,
    /// Facts, at most 512, names 1..=128 bytes without control characters.
    /// Agents include the pseudo-facts `name`, `id` and `hostname` here, so
    /// that a filter means the same on the agent and on the server.
    pub facts: Facts,
    /// Tags from the agent's config, at most 64 topic levels.
    pub tags: Vec<String>,
    /// Work-queue pools the agent serves, at most 64 topic levels.
    pub pools: Vec<String>,
    /// When the agent process started, unix ms.
    pub started_ms: u64,
    /// The agent's heartbeat interval in seconds, 0..=86 400 (0: none).
    pub heartbeat_s: u64,
    /// When this status was made, unix ms.
    pub created_ms: u64,
    /// The measuring settings in force (`None` from an agent that does not
    /// report them).
    pub measure: Option<Measure>,
    /// The agent's public key (`ed25519:<base64>`), with which it signs its
    /// replies, statuses and heartbeats; `None` from an agent without one.
    pub key: Option<String>,
    /// Signature over [`Status::signing_bytes`] by `key`; `None` when unsigned.
    pub sig: Option<String>,
}

/// The wire form, borrowed; field order = key order on the wire.
#[derive(Serialize)]
struct Wire<'a> {
    v: u32,
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    hostname: &'a str,
    ips: &'a [String],
    version: &'a str,
    online: bool,
    facts: &'a Facts,
    tags: &'a [String],
    pools: &'a [String],
    started_ms: u64,
    heartbeat_s: u64,
    created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    measure: Option<&'a Measure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
}

impl Status {
    /// The `kind` of a status.
    pub const KIND: &'static str = "status";

    /// Decodes and validates a status (see the [module docs](super)).
    pub fn decode(bytes: &[u8]) -> Result<Status, DecodeError> {
        let mut f = Fields::parse(bytes, Self::KIND, MAX_ENVELOPE_BYTES)?;
        let id = f.string("id")?;
        let name = f.string("name")?;
        let hostname = f.string("hostname")?;
        let ips = f.strings("ips", MAX_LIST_ENTRIES)?;
        let version = f.string("version")?;
        let online = f.bool("online")?;
        let facts = f.object("facts")?;
        check_count("facts", facts.len(), MAX_FACTS)?;
        let status = Status {
            id,
            name,
            hostname,
            ips,
            version,
            online,
            facts: facts.into_iter().collect(),
            tags: f.strings("tags", MAX_LIST_ENTRIES)?,
            pools: f.strings("pools", MAX_LIST_ENTRIES)?,
            started_ms: f.u64("started_ms")?,
            heartbeat_s: f.u64("heartbeat_s")?,
            created_ms: f.u64("created_ms")?,
            measure: match f.opt_value("measure") {
                None => None,
                Some(v) => Some(
                    serde_json::from_value::<Measure>(v)
                        .map_err(|e| DecodeError::field("measure", e.to_string()))?,
                ),
            },
            key: f.opt_string("key")?,
            sig: f.opt_string("sig")?,
        };
        status.validate()?;
        Ok(status)
    }

    /// Checks every limit; `decode` runs this, agents may too.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_level("id", &self.id)?;
        check_level("name", &self.name)?;
        check_word("hostname", &self.hostname, 1, MAX_HOSTNAME_BYTES)?;
        check_count("ips", self.ips.len(), MAX_LIST_ENTRIES)?;
        for ip in &self.ips {
            check_word("ips", ip, 1, MAX_IP_BYTES)?;
        }
        check_text("version", &self.version, 1, MAX_VERSION_CHARS)?;
        check_count("facts", self.facts.len(), MAX_FACTS)?;
        for key in self.facts.keys() {
            if key.is_empty() || key.len() > MAX_FACT_KEY_BYTES || key.chars().any(char::is_control)
            {
                return Err(DecodeError::field(
                    "facts",
                    format!(
                        "fact name {} must be 1..={MAX_FACT_KEY_BYTES} bytes without control characters",
                        show(key)
                    ),
                ));
            }
        }
        for (field, list) in [("tags", &self.tags), ("pools", &self.pools)] {
            check_count(field, list.len(), MAX_LIST_ENTRIES)?;
            for entry in list {
                check_level(field, entry)?;
            }
        }
        if let Some(m) = &self.measure {
            m.validate()
                .map_err(|why| DecodeError::field("measure", why))?;
        }
        if let Some(key) = &self.key {
            check_token("key", key, 1, MAX_KEY_CHARS)?;
        }
        if let Some(sig) = &self.sig {
            check_token("sig", sig, 1, MAX_SIG_CHARS)?;
        }
        if self.heartbeat_s > MAX_HEARTBEAT_S {
            return Err(DecodeError::field(
                "heartbeat_s",
                format!("{} is outside 0..={MAX_HEARTBEAT_S}", self.heartbeat_s),
            ));
        }
        Ok(())
    }

    /// The JSON encoding (compact, fields in declaration order).
    pub fn encode(&self) -> Vec<u8> {
        to_json(&self.wire(self.sig.as_deref()))
    }

    /// The canonical bytes a signature covers: [`Status::encode`] without
    /// `sig` (see the [module docs](super#signing-bytes)).
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_json(&self.wire(None))
    }

    fn wire<'a>(&'a self, sig: Option<&'a str>) -> Wire<'a> {
        Wire {
            v: VERSION,
            kind: Self::KIND,
            id: &self.id,
            name: &self.name,
            hostname: &self.hostname,
            ips: &self.ips,
            version: &self.version,
            online: self.online,
            facts: &self.facts,
            tags: &self.tags,
            pools: &self.pools,
            started_ms: self.started_ms,
            heartbeat_s: self.heartbeat_s,
            created_ms: self.created_ms,
            measure: self.measure.as_ref(),
            key: self.key.as_deref(),
            sig,
        }
    }
}

/// A status is a filter target (how the server selects agents centrally):
/// facts from `facts`, tags from `tags`, the name from `name`.
impl Target for Status {
    fn fact(&self, key: &str) -> Option<&serde_json::Value> {
        self.facts.get(key)
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    fn name(&self) -> &str {
        &self.name
    }
}
