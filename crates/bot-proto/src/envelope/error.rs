//! [`DecodeError`]: why bytes from the bus are not a valid envelope, said so
//! that the error can go back to the sender as it is (one line, the field
//! named, the offending value cut to 60 characters).

use serde_json::Value;

use super::{MAX_SHOWN_CHARS, show_value};

/// Why an envelope was refused (by `decode` or `validate`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than the limit for its kind.
    #[error("message is {size} bytes, larger than the limit of {limit}")]
    TooLarge {
        /// Size of the message in bytes.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// Not one JSON object (serde_json's message, with line and column).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// `v` is not the version this crate speaks (1). Values whose JSON is
    /// longer than 60 characters are kept as a cut string.
    #[error("unsupported protocol version {} (this side speaks v1)", show_value(.0))]
    Version(Value),
    /// `kind` is not the one expected on this topic.
    #[error("kind is {got}, expected {expected:?}")]
    Kind {
        /// The kind the decoder wanted.
        expected: &'static str,
        /// What the message had, shown as JSON and cut (`"reply"`, `5`,
        /// `missing`).
        got: String,
    },
    /// A field is missing, of the wrong type or outside its limits.
    #[error("field {field:?}: {reason}")]
    Field {
        /// The field's name on the wire.
        field: &'static str,
        /// What is wrong, quoting the offending value (cut).
        reason: String,
    },
}

impl DecodeError {
    /// A [`DecodeError::Field`].
    pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError::Field {
            field,
            reason: reason.into(),
        }
    }

    /// A [`DecodeError::Version`] holding at most a cut copy of `v`.
    pub(crate) fn version(v: Value) -> DecodeError {
        let full = v.to_string();
        if full.chars().count() > MAX_SHOWN_CHARS || full.chars().any(char::is_control) {
            DecodeError::Version(Value::String(show_value(&v)))
        } else {
            DecodeError::Version(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display() {
        let e = DecodeError::TooLarge { size: 10, limit: 5 };
        assert_eq!(
            e.to_string(),
            "message is 10 bytes, larger than the limit of 5"
        );
        let e = DecodeError::Version(json!(2));
        assert_eq!(
            e.to_string(),
            "unsupported protocol version 2 (this side speaks v1)"
        );
        let e = DecodeError::Kind {
            expected: "request",
            got: "\"reply\"".into(),
        };
        assert_eq!(e.to_string(), "kind is \"reply\", expected \"request\"");
        let e = DecodeError::field("id", "is empty");
        assert_eq!(e.to_string(), "field \"id\": is empty");
    }

    #[test]
    fn version_values_are_cut() {
        let long = json!(vec![1; 100]);
        match DecodeError::version(long) {
            DecodeError::Version(Value::String(s)) => {
                assert_eq!(s.chars().count(), MAX_SHOWN_CHARS + 1);
                assert!(s.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            DecodeError::version(json!("2")),
            DecodeError::Version(json!("2"))
        );
    }
}
