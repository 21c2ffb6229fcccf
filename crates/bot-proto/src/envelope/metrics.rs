//! [`Metrics`]: one collecting round of an agent, every sample of it in one
//! message on `bot/v1/metrics/<id>` (not retained, QoS 0), next to the
//! classic `DATA/<name>` lines.
//!
//! Decoding is lenient about samples and strict about the rest: a sample
//! that is malformed is left out and counted ([`DecodedMetrics::rejected`]),
//! and the rest of the batch is kept. The signature covers the batch as
//! sent, rejected samples included ([`DecodedMetrics::signing_bytes`]).

use serde::Serialize;
use serde_json::Value;

use super::fields::{Fields, check_level, check_token};
use super::{DecodeError, MAX_ENVELOPE_BYTES, MAX_SIG_CHARS, VERSION, to_json};
use crate::metrics::{Kind, Number, Sample};

/// Most samples in one batch.
pub const MAX_BATCH_SAMPLES: usize = 4_096;

/// One round's samples.
///
/// On the wire (fields in this order, all required but `sig`; each sample
/// is `[metric, labels, value, TYPE]`, labels an object sorted by key):
///
/// ```json
/// {"v":1,"kind":"metrics","id":"0f1e2d3c","name":"web1","time_ms":1700000000000,
///  "interval_ms":10000,"samples":[["cpu.usage",{"cpu":"total"},12.5,"GAUGE"],
///  ["net.rx_bytes",{"iface":"eth0"},123456789,"DERIVE"]]}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// The agent's id (a topic level).
    pub id: String,
    /// The agent's name (a topic level).
    pub name: String,
    /// When the round started, unix ms: the time of every sample in it.
    pub time_ms: u64,
    /// The measuring interval in force, ms (for rates and gaps).
    pub interval_ms: u64,
    /// The samples, at most [`MAX_BATCH_SAMPLES`].
    pub samples: Vec<Sample>,
    /// Signature over [`Metrics::signing_bytes`] by the agent's key.
    pub sig: Option<String>,
}

/// What [`Metrics::decode`] gives: the valid samples, how many were left
/// out and why (the first), and the bytes the signature covers.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMetrics {
    /// The batch, with its valid samples.
    pub metrics: Metrics,
    /// Samples left out as malformed.
    pub rejected: usize,
    /// Why the first of them was.
    pub first_rejection: Option<String>,
    /// The canonical bytes the signature covers (all samples as sent).
    pub signing_bytes: Vec<u8>,
}

#[derive(Serialize)]
struct Wire<'a, S: Serialize> {
    v: u32,
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    time_ms: u64,
    interval_ms: u64,
    samples: S,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a str>,
}

/// A sample on the wire: `[metric, {labels}, value, TYPE]`.
struct WireSample<'a>(&'a Sample);

impl Serialize for WireSample<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let sample = self.0;
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&sample.metric)?;
        t.serialize_element(&crate::metrics::LabelsObject(&sample.labels))?;
        match sample.value {
            Number::Int(i) => t.serialize_element(&i)?,
            Number::Real(r) => t.serialize_element(&r)?,
        }
        t.serialize_element(sample.kind.as_str())?;
        t.end()
    }
}

struct WireSamples<'a>(&'a [Sample]);

impl Serialize for WireSamples<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(WireSample))
    }
}

impl Metrics {
    /// The `kind` of a metrics batch.
    pub const KIND: &'static str = "metrics";

    /// Decodes a batch: the envelope strictly (any problem is an error),
    /// the samples leniently (a malformed one is counted and left out).
    pub fn decode(bytes: &[u8]) -> Result<DecodedMetrics, DecodeError> {
        let mut f = Fields::parse(bytes, Self::KIND, MAX_ENVELOPE_BYTES)?;
        let id = f.string("id")?;
        let name = f.string("name")?;
        let time_ms = f.u64("time_ms")?;
        let interval_ms = f.u64("interval_ms")?;
        let raw = match f.value("samples")? {
            Value::Array(items) => items,
            _ => return Err(DecodeError::field("samples", "expected an array")),
        };
        if raw.len() > MAX_BATCH_SAMPLES {
            return Err(DecodeError::field(
                "samples",
                format!("has {} entries, more than {MAX_BATCH_SAMPLES}", raw.len()),
            ));
        }
        let sig = f.opt_string("sig")?;
        check_level("id", &id)?;
        check_level("name", &name)?;
        if let Some(sig) = &sig {
            check_token("sig", sig, 1, MAX_SIG_CHARS)?;
        }
        let signing_bytes = to_json(&Wire {
            v: VERSION,
            kind: Self::KIND,
            id: &id,
            name: &name,
            time_ms,
            interval_ms,
            samples: &raw,
            sig: None,
        });
        let mut samples = Vec::with_capacity(raw.len());
        let mut rejected = 0;
        let mut first_rejection = None;
        for (i, item) in raw.into_iter().enumerate() {
            match sample_from(item) {
                Ok(s) => samples.push(s),
                Err(why) => {
                    rejected += 1;
                    first_rejection.get_or_insert_with(|| format!("sample {i}: {why}"));
                }
            }
        }
        Ok(DecodedMetrics {
            metrics: Metrics {
                id,
                name,
                time_ms,
                interval_ms,
                samples,
                sig,
            },
            rejected,
            first_rejection,
            signing_bytes,
        })
    }

    /// Checks every limit (what a receiver would reject).
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_level("id", &self.id)?;
        check_level("name", &self.name)?;
        if self.samples.len() > MAX_BATCH_SAMPLES {
            return Err(DecodeError::field(
                "samples",
                format!(
                    "has {} entries, more than {MAX_BATCH_SAMPLES}",
                    self.samples.len()
                ),
            ));
        }
        for (i, s) in self.samples.iter().enumerate() {
            s.validate()
                .map_err(|why| DecodeError::field("samples", format!("sample {i}: {why}")))?;
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

    /// The canonical bytes a signature covers: [`Metrics::encode`] without
    /// `sig`. A receiver gets the same bytes from
    /// [`DecodedMetrics::signing_bytes`].
    pub fn signing_bytes(&self) -> Vec<u8> {
        to_json(&self.wire(None))
    }

    fn wire<'a>(&'a self, sig: Option<&'a str>) -> Wire<'a, WireSamples<'a>> {
        Wire {
            v: VERSION,
            kind: Self::KIND,
            id: &self.id,
            name: &self.name,
            time_ms: self.time_ms,
            interval_ms: self.interval_ms,
            samples: WireSamples(&self.samples),
            sig,
        }
    }
}

/// One wire sample, checked.
fn sample_from(item: Value) -> Result<Sample, String> {
    let Value::Array(parts) = item else {
        return Err("expected [metric, labels, value, TYPE]".into());
    };
    let [metric, labels, value, kind] = <[Value; 4]>::try_from(parts)
        .map_err(|p| format!("expected 4 entries, got {}", p.len()))?;
    let Value::String(metric) = metric else {
        return Err("metric is not a string".into());
    };
    let Value::Object(labels) = labels else {
        return Err(format!("{}: labels are not an object", cut(&metric)));
    };
    let mut pairs = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        let Value::String(v) = v else {
            return Err(format!(
                "{}: label {}'s value is not a string",
                cut(&metric),
                cut(&k)
            ));
        };
        pairs.push((k, v));
    }
    let value = match value {
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
            return Err(format!("{}: integer value beyond i64", cut(&metric)));
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => Number::Int(i),
            None => Number::Real(
                n.as_f64()
                    .filter(|r| r.is_finite())
                    .ok_or_else(|| format!("{}: value is not finite", cut(&metric)))?,
            ),
        },
        _ => return Err(format!("{}: value is not a number", cut(&metric))),
    };
    let kind = match &kind {
        Value::String(k) => Kind::parse(k),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "{}: TYPE must be GAUGE, DERIVE, COUNTER or ABSOLUTE",
            cut(&metric)
        )
    })?;
    let sample = Sample {
        metric,
        labels: pairs,
        value,
        kind,
    };
    sample.validate()?;
    Ok(sample)
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Metrics {
        Metrics {
            id: "0f1e2d3c".into(),
            name: "web1".into(),
            time_ms: 1_700_000_000_000,
            interval_ms: 10_000,
            samples: vec![
                Sample::gauge("cpu.usage", Number::Real(12.5)).label("cpu", "total"),
                Sample::derive("net.rx_bytes", 123_456_789).label("iface", "eth0"),
                Sample::gauge("uptime", Number::Real(0.1 + 0.2)),
            ],
            sig: None,
        }
    }

    #[test]
    fn round_trips_with_the_documented_shape() {
        let b = batch();
        assert_eq!(b.validate(), Ok(()));
        let bytes = b.encode();
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(
            text.starts_with(
                r#"{"v":1,"kind":"metrics","id":"0f1e2d3c","name":"web1","time_ms":1700000000000,"interval_ms":10000,"samples":[["cpu.usage",{"cpu":"total"},12.5,"GAUGE"],["net.rx_bytes",{"iface":"eth0"},123456789,"DERIVE"]"#
            ),
            "{text}"
        );
        let d = Metrics::decode(&bytes).expect("decode");
        assert_eq!(d.metrics, b);
        assert_eq!(d.rejected, 0);
        assert_eq!(d.signing_bytes, b.signing_bytes());
    }

    #[test]
    fn a_bad_sample_is_counted_and_the_rest_kept_and_signed_as_sent() {
        let mut b = batch();
        b.sig = Some("c2ln".into());
        let mut v: Value = serde_json::from_slice(&b.encode()).expect("json");
        let samples = v["samples"].as_array_mut().expect("array");
        samples.insert(1, serde_json::json!(["bad metric!", {}, 1, "GAUGE"]));
        samples.push(serde_json::json!(["x", {"Cpu": "0"}, 1, "GAUGE"]));
        samples.push(serde_json::json!(["x", {}, "1", "GAUGE"]));
        samples.push(serde_json::json!(["x", {}, 1, "gauge"]));
        samples.push(serde_json::json!("x"));
        samples.push(serde_json::json!(["x", {}, u64::MAX, "COUNTER"]));
        let bytes = serde_json::to_vec(&v).expect("encode");
        let d = Metrics::decode(&bytes).expect("decode");
        assert_eq!(d.metrics.samples, b.samples);
        assert_eq!(d.rejected, 6);
        assert!(
            d.first_rejection
                .as_deref()
                .is_some_and(|r| r.starts_with("sample 1: metric \"bad metric!\"")),
            "{:?}",
            d.first_rejection
        );
        // The signature covers what was sent, not what was kept.
        assert_ne!(d.signing_bytes, b.signing_bytes());
        let mut unsigned = v.clone();
        unsigned.as_object_mut().expect("obj").remove("sig");
        let covered: Value = serde_json::from_slice(&d.signing_bytes).expect("json");
        assert_eq!(covered, unsigned);
    }

    #[test]
    fn the_envelope_is_strict() {
        for bad in [
            &br#"{"v":1,"kind":"metrics","id":"a/b","name":"n","time_ms":1,"interval_ms":1,"samples":[]}"#[..],
            br#"{"v":1,"kind":"metrics","id":"a","name":"n","time_ms":-1,"interval_ms":1,"samples":[]}"#,
            br#"{"v":1,"kind":"metrics","id":"a","name":"n","time_ms":1,"interval_ms":1,"samples":{}}"#,
            br#"{"v":1,"kind":"status","id":"a","name":"n","time_ms":1,"interval_ms":1,"samples":[]}"#,
            br#"[]"#,
        ] {
            assert!(
                Metrics::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = format!(
            r#"{{"v":1,"kind":"metrics","id":"a","name":"n","time_ms":1,"interval_ms":1,"samples":[{}]}}"#,
            vec!["1"; MAX_BATCH_SAMPLES + 1].join(",")
        );
        assert!(Metrics::decode(many.as_bytes()).is_err());
    }
}
