//! [`Heartbeat`]: the small periodic "still here" of an agent on
//! `bot/v1/heartbeat/<id>`, so that a server notices an agent that hangs
//! without disconnecting (the last will only covers lost connections).

use serde::Serialize;

use super::fields::{Fields, check_level, check_token};
use super::{DecodeError, MAX_ENVELOPE_BYTES, MAX_SIG_CHARS, VERSION, to_json};

/// One heartbeat.
///
/// On the wire (fields in this order, all required):
///
/// ```json
/// {"v":1,"kind":"heartbeat","id":"0f1e2d3c","name":"web1","seq":42,"uptime_s":1260,
///  "created_ms":1700000001260}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The agent's id (a topic level).
    pub id: String,
    /// The agent's name (a topic level).
    pub name: String,
    /// Counts up from 0 at agent start: a gap means lost heartbeats, a
    /// smaller number a restart.
    pub seq: u64,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// When it was sent, unix ms.
    pub created_ms: u64,
    /// Signature over [`Heartbeat::signing_bytes`] by the agent's key (the
    /// one in its status); `None` when unsigned.
    pub sig: Option<String>,
}

/// The wire form, borrowed; field order = key order on the wire.
#[derive(Serialize)]
struct Wire<'a> {
    v: u32,
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    seq: u64,
    uptime_s: u64,
    created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
}

impl Heartbeat {
    /// The `kind` of a heartbeat.
    pub const KIND: &'static str = "heartbeat";

    /// Decodes and validates a heartbeat (see the [module docs](super)).
    pub fn decode(bytes: &[u8]) -> Result<Heartbeat, DecodeError> {
        let mut f = Fields::parse(bytes, Self::KIND, MAX_ENVELOPE_BYTES)?;
        let heartbeat = Heartbeat {
            id: f.string("id")?,
            name: f.string("name")?,
            seq: f.u64("seq")?,
            uptime_s: f.u64("uptime_s")?,
            created_ms: f.u64("created_ms")?,
            sig: f.opt_string("sig")?,
        };
        heartbeat.validate()?;
        Ok(heartbeat)
    }

    /// Checks every limit; `decode` runs this, agents may too.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_level("id", &self.id)?;
        check_level("name", &self.name)?;
        if let Some(sig) = &self.sig {
            check_token("sig", sig, 1, MAX_SIG_CHARS)?;
        }
        Ok(())
    }

    /// The JSON encoding (compact, fields in declaration order).
    pub fn encode(&self) -> Vec<u8> {
        to_json(&self.wire(self.sig.as_deref()))
    }

    /// The canonical bytes a signature covers: [`Heartbeat::encode`]
    /// without `sig`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_json(&self.wire(None))
    }

    fn wire<'a>(&'a self, sig: Option<&'a str>) -> Wire<'a> {
        Wire {
            v: VERSION,
            kind: Self::KIND,
            id: &self.id,
            name: &self.name,
            seq: self.seq,
            uptime_s: self.uptime_s,
            created_ms: self.created_ms,
            sig,
        }
    }
}
