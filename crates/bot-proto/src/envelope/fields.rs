//! The two halves every decoder shares: [`Fields`] reads the JSON object
//! (size, `v`, `kind`, one typed getter per JSON type), and the `check_*`
//! functions enforce the limits common to several envelopes. Each error
//! names the field and quotes the offending value.

use serde_json::{Map, Value};

use super::{DecodeError, VERSION, encoded_len, show, show_value};
use crate::topics;

/// The JSON object of one envelope, fields taken out one by one.
pub(crate) struct Fields {
    map: Map<String, Value>,
}

/// The JSON type of `v`, with the value, for "expected X, got Y".
fn got(v: &Value) -> String {
    let ty = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    if matches!(v, Value::Null) {
        ty.to_owned()
    } else {
        format!("{ty} {}", show_value(v))
    }
}

impl Fields {
    /// Parses `bytes` as the envelope of `kind`: at most `limit` bytes, one
    /// JSON object, `"v": 1`, `"kind": kind`.
    pub(crate) fn parse(
        bytes: &[u8],
        kind: &'static str,
        limit: usize,
    ) -> Result<Fields, DecodeError> {
        if bytes.len() > limit {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(DecodeError::Json(format!(
                "expected a JSON object, got {}",
                got(&value)
            )));
        };
        let mut fields = Fields { map };
        match fields.map.remove("v") {
            None => return Err(DecodeError::field("v", "missing")),
            Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
            Some(v) => return Err(DecodeError::version(v)),
        }
        match fields.map.remove("kind") {
            Some(Value::String(k)) if k == kind => Ok(fields),
            Some(Value::String(k)) => Err(DecodeError::Kind {
                expected: kind,
                got: show(&k),
            }),
            Some(other) => Err(DecodeError::Kind {
                expected: kind,
                got: show_value(&other),
            }),
            None => Err(DecodeError::Kind {
                expected: kind,
                got: "missing".to_owned(),
            }),
        }
    }

    /// Takes a required field of any JSON type (`null` included).
    pub(crate) fn value(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        self.map
            .remove(field)
            .ok_or_else(|| DecodeError::field(field, "missing"))
    }

    /// Takes an optional field: absent and `null` are `None`.
    fn optional(&mut self, field: &'static str) -> Option<Value> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Takes an optional field of any JSON type (absent or `null`: `None`).
    pub(crate) fn opt_value(&mut self, field: &'static str) -> Option<Value> {
        self.optional(field)
    }

    /// Takes a required string.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.value(field)? {
            Value::String(s) => Ok(s),
            other => Err(expected(field, "a string", &other)),
        }
    }

    /// Takes an optional string (absent or `null`: `None`).
    pub(crate) fn opt_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match self.optional(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(expected(field, "a string or null", &other)),
        }
    }

    /// Takes a required whole number within `u64`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let v = self.value(field)?;
        v.as_u64()
            .ok_or_else(|| expected(field, "a whole number 0..=18446744073709551615", &v))
    }

    /// Takes a required boolean.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.value(field)? {
            Value::Bool(b) => Ok(b),
            other => Err(expected(field, "true or false", &other)),
        }
    }

    /// Takes a required object.
    pub(crate) fn object(
        &mut self,
        field: &'static str,
    ) -> Result<Map<String, Value>, DecodeError> {
        match self.value(field)? {
            Value::Object(m) => Ok(m),
            other => Err(expected(field, "an object", &other)),
        }
    }

    /// Takes a required array of strings (limits are checked by the caller,
    /// except the entry count, which is checked before anything is copied).
    pub(crate) fn strings(
        &mut self,
        field: &'static str,
        max_entries: usize,
    ) -> Result<Vec<String>, DecodeError> {
        let items = match self.value(field)? {
            Value::Array(items) => items,
            other => return Err(expected(field, "an array of strings", &other)),
        };
        check_count(field, items.len(), max_entries)?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                other => Err(DecodeError::field(
                    field,
                    format!("entry {i}: expected a string, got {}", got(&other)),
                )),
            })
            .collect()
    }
}

/// "expected X, got Y".
fn expected(field: &'static str, what: &str, v: &Value) -> DecodeError {
    DecodeError::field(field, format!("expected {what}, got {}", got(v)))
}

/// At most `max` entries.
pub(crate) fn check_count(field: &'static str, n: usize, max: usize) -> Result<(), DecodeError> {
    if n > max {
        return Err(DecodeError::field(
            field,
            format!("has {n} entries, more than {max}"),
        ));
    }
    Ok(())
}

/// An id: 1..=`max` characters of `[A-Za-z0-9_-]`.
pub(crate) fn check_id(field: &'static str, s: &str, max: usize) -> Result<(), DecodeError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DecodeError::field(
            field,
            format!("{} must be 1..={max} characters of [A-Za-z0-9_-]", show(s)),
        ))
    }
}

/// A topic level (an agent id or name, a tag, a pool).
pub(crate) fn check_level(field: &'static str, s: &str) -> Result<(), DecodeError> {
    topics::valid_topic_level(s).map_err(|e| DecodeError::field(field, e))
}

/// Free text: `min..=max` characters, no control characters.
pub(crate) fn check_text(
    field: &'static str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), DecodeError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(DecodeError::field(
            field,
            format!("{} is {n} characters, must be {min}..={max}", show(s)),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(DecodeError::field(
            field,
            format!("{} contains a control character", show(s)),
        ));
    }
    Ok(())
}

/// A word: `min..=max` bytes, no whitespace or control characters.
pub(crate) fn check_word(
    field: &'static str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), DecodeError> {
    if s.len() < min || s.len() > max {
        return Err(DecodeError::field(
            field,
            format!("{} is {} bytes, must be {min}..={max}", show(s), s.len()),
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DecodeError::field(
            field,
            format!("{} contains whitespace or a control character", show(s)),
        ));
    }
    Ok(())
}

/// Printable ASCII (`!`..=`~`), `min..=max` characters: nonces, signatures.
pub(crate) fn check_token(
    field: &'static str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), DecodeError> {
    let ok = s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(DecodeError::field(
            field,
            format!(
                "{} must be {min}..={max} printable ASCII characters without spaces",
                show(s)
            ),
        ))
    }
}

/// A JSON value whose compact encoding is at most `max` bytes.
pub(crate) fn check_encoded(field: &'static str, v: &Value, max: usize) -> Result<(), DecodeError> {
    let n = encoded_len(v);
    if n > max {
        return Err(DecodeError::field(
            field,
            format!("is {n} bytes encoded, more than {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn got_names_the_type_and_value() {
        assert_eq!(got(&Value::Null), "null");
        assert_eq!(got(&serde_json::json!(5)), "a number 5");
        assert_eq!(got(&serde_json::json!("x")), "a string \"x\"");
        assert_eq!(got(&serde_json::json!([true])), "an array [true]");
    }

    #[test]
    fn checks() {
        assert!(check_id("id", "aZ0_-", 64).is_ok());
        assert!(check_id("id", "", 64).is_err());
        assert!(check_id("id", "a b", 64).is_err());
        assert!(check_id("id", "é", 64).is_err());
        assert!(check_text("s", "é", 1, 1).is_ok());
        assert!(check_text("s", "a\u{7}", 1, 9).is_err());
        assert!(check_word("w", "a b", 1, 9).is_err());
        assert!(check_token("t", "abc~!", 5, 5).is_ok());
        assert!(check_token("t", "abc d", 5, 5).is_err());
        assert!(check_count("l", 3, 2).is_err());
    }
}
