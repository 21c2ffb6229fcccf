//! How a round's values are stored: a *layout* (the list of series, each a
//! metric, its labels and its type) as JSON text under a 64-bit id derived
//! from that text, and the values as one blob of little-endian `f64`s in
//! layout order (raw rows), or three per series — min, average, max — for
//! the minute rollups. `NaN` marks a value that is not known (the first
//! reading of a counter, a reset).

use bot_proto::metrics::Kind;
use serde::{Deserialize, Serialize};

/// One series of an agent: a metric with its labels and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The metric name.
    pub metric: String,
    /// Its labels, sorted by key.
    pub labels: Vec<(String, String)>,
    /// Its type as sent (stored values of DERIVE, COUNTER and ABSOLUTE
    /// series are per-second rates).
    pub kind: Kind,
}

/// The wire form of a layout entry: `[metric, {labels}, "TYPE"]`.
#[derive(Serialize, Deserialize)]
struct Entry(String, std::collections::BTreeMap<String, String>, String);

/// The text of a layout (what its id is derived from).
pub fn layout_text(series: &[SeriesKey]) -> String {
    let entries: Vec<Entry> = series
        .iter()
        .map(|s| {
            Entry(
                s.metric.clone(),
                s.labels.iter().cloned().collect(),
                s.kind.as_str().to_owned(),
            )
        })
        .collect();
    serde_json::to_string(&entries).unwrap_or_default()
}

/// The series of a layout's text, or why it cannot be read.
pub fn parse_layout(text: &str) -> Result<Vec<SeriesKey>, String> {
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    entries
        .into_iter()
        .map(|Entry(metric, labels, kind)| {
            Ok(SeriesKey {
                metric,
                labels: labels.into_iter().collect(),
                kind: Kind::parse(&kind).ok_or_else(|| format!("bad type {kind:?}"))?,
            })
        })
        .collect()
}

/// The id of a layout: the first 8 bytes of the SHA-256 of its text.
pub fn layout_id(text: &str) -> i64 {
    let hex = bot_auth::digest_hex(text.as_bytes());
    let first = hex.get(..16).unwrap_or("0");
    u64::from_str_radix(first, 16).map_or(0, |v| v as i64)
}

/// `values` as a blob.
pub fn encode(values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A blob's values (a trailing partial value is ignored).
pub fn decode(blob: &[u8]) -> Vec<f64> {
    blob.chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_values_round_trip() {
        let series = vec![
            SeriesKey {
                metric: "cpu.usage".into(),
                labels: vec![("cpu".into(), "total".into())],
                kind: Kind::Gauge,
            },
            SeriesKey {
                metric: "net.rx_bytes".into(),
                labels: vec![("iface".into(), "eth0".into())],
                kind: Kind::Derive,
            },
        ];
        let text = layout_text(&series);
        assert_eq!(
            text,
            r#"[["cpu.usage",{"cpu":"total"},"GAUGE"],["net.rx_bytes",{"iface":"eth0"},"DERIVE"]]"#
        );
        assert_eq!(parse_layout(&text), Ok(series));
        assert_eq!(layout_id(&text), layout_id(&text));
        assert_ne!(layout_id(&text), layout_id("[]"));
        let values = [1.5, f64::NAN, -3.0, 1e300];
        let back = decode(&encode(&values));
        assert_eq!(back.len(), 4);
        assert!(back[1].is_nan());
        assert_eq!((back[0], back[2], back[3]), (1.5, -3.0, 1e300));
        assert!(parse_layout("[[1]]").is_err());
        assert!(parse_layout(r#"[["m",{},"gauge"]]"#).is_err());
    }
}
