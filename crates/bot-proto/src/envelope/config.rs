//! [`MeasureConfig`]: the measuring settings the server wants an agent to
//! run with, published retained on `bot/v1/config/<id>` and signed by the
//! server's key. The agent applies it at once (no restart) if a key it
//! trusts for `configure` signed it, and reports the settings in force in
//! its status.

use serde::Serialize;

use super::fields::{Fields, check_level, check_token};
use super::{DecodeError, MAX_ENVELOPE_BYTES, MAX_SIG_CHARS, VERSION, to_json};
use crate::metrics::Measure;

/// The wanted measuring settings of one agent.
///
/// On the wire (fields in this order, all required but `sig`):
///
/// ```json
/// {"v":1,"kind":"config","id":"0f1e2d3c","revision":3,"enabled":true,"interval_ms":5000,
///  "collectors":["cpu","memory"],"created_ms":1700000000000,"sig":"…"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureConfig {
    /// The agent it is for (a topic level; must be the receiver's id).
    pub id: String,
    /// Counts up per agent with every change the server makes.
    pub revision: u64,
    /// Measuring on.
    pub enabled: bool,
    /// The interval, ms.
    pub interval_ms: u64,
    /// The collectors that run.
    pub collectors: Vec<String>,
    /// When the server made it, unix ms.
    pub created_ms: u64,
    /// Signature over [`MeasureConfig::signing_bytes`].
    pub sig: Option<String>,
}

#[derive(Serialize)]
struct Wire<'a> {
    v: u32,
    kind: &'static str,
    id: &'a str,
    revision: u64,
    enabled: bool,
    interval_ms: u64,
    collectors: &'a [String],
    created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
}

impl MeasureConfig {
    /// The `kind` of a config.
    pub const KIND: &'static str = "config";

    /// Decodes and validates a config.
    pub fn decode(bytes: &[u8]) -> Result<MeasureConfig, DecodeError> {
        let mut f = Fields::parse(bytes, Self::KIND, MAX_ENVELOPE_BYTES)?;
        let config = MeasureConfig {
            id: f.string("id")?,
            revision: f.u64("revision")?,
            enabled: f.bool("enabled")?,
            interval_ms: f.u64("interval_ms")?,
            collectors: f.strings("collectors", crate::metrics::MAX_COLLECTORS)?,
            created_ms: f.u64("created_ms")?,
            sig: f.opt_string("sig")?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every limit.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_level("id", &self.id)?;
        self.measure().validate().map_err(|why| {
            let (field, reason) = why.split_once(": ").unwrap_or(("collectors", &why));
            let field = if field == "interval_ms" {
                "interval_ms"
            } else {
                "collectors"
            };
            DecodeError::field(field, reason.to_owned())
        })?;
        if let Some(sig) = &self.sig {
            check_token("sig", sig, 1, MAX_SIG_CHARS)?;
        }
        Ok(())
    }

    /// The settings it asks for (`local` false: they come from the server).
    pub fn measure(&self) -> Measure {
        Measure {
            enabled: self.enabled,
            interval_ms: self.interval_ms,
            collectors: self.collectors.clone(),
            revision: self.revision,
            local: false,
        }
    }

    /// The JSON encoding (compact, fields in declaration order).
    pub fn encode(&self) -> Vec<u8> {
        to_json(&self.wire(self.sig.as_deref()))
    }

    /// The canonical bytes a signature covers: [`MeasureConfig::encode`]
    /// without `sig`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_json(&self.wire(None))
    }

    fn wire<'a>(&'a self, sig: Option<&'a str>) -> Wire<'a> {
        Wire {
            v: VERSION,
            kind: Self::KIND,
            id: &self.id,
            revision: self.revision,
            enabled: self.enabled,
            interval_ms: self.interval_ms,
            collectors: &self.collectors,
            created_ms: self.created_ms,
            sig,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MeasureConfig {
        MeasureConfig {
            id: "0f1e2d3c".into(),
            revision: 3,
            enabled: true,
            interval_ms: 5_000,
            collectors: vec!["cpu".into(), "memory".into()],
            created_ms: 1_700_000_000_000,
            sig: Some("kid.sig".into()),
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_settings() {
        let c = config();
        let bytes = c.encode();
        assert!(
            String::from_utf8_lossy(&bytes).starts_with(
                r#"{"v":1,"kind":"config","id":"0f1e2d3c","revision":3,"enabled":true,"interval_ms":5000,"collectors":["cpu","memory"]"#
            ),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(MeasureConfig::decode(&bytes), Ok(c.clone()));
        for (bad, field) in [
            (
                MeasureConfig {
                    interval_ms: 99,
                    ..config()
                },
                "interval_ms",
            ),
            (
                MeasureConfig {
                    collectors: vec!["CPU".into()],
                    ..config()
                },
                "collectors",
            ),
            (
                MeasureConfig {
                    collectors: vec!["cpu".into(), "cpu".into()],
                    ..config()
                },
                "collectors",
            ),
            (
                MeasureConfig {
                    id: "a/b".into(),
                    ..config()
                },
                "id",
            ),
        ] {
            let err = MeasureConfig::decode(&bad.encode()).expect_err("refused");
            assert!(
                matches!(&err, DecodeError::Field { field: f, .. } if *f == field),
                "{err}"
            );
        }
    }
}
