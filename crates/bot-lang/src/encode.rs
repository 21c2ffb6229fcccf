//! Text encodings of tagged values for `EJOIN` (`tag=val&…`) and `EDICT`
//! (a JSON object), written by hand so the crate needs no JSON dependency.
//!
//! Both take the stack bottom-to-top, skip untagged values, and stop with a
//! `Limit` error as soon as the output would exceed the string limit, so
//! they never build more than `max_string` bytes.

use std::fmt::Write as _;

use crate::error::{Error, ErrorKind, Result};
use crate::value::Value;

fn too_long(max: usize) -> Error {
    Error::new(ErrorKind::Limit, format!("string longer than {max} bytes"))
}

/// `tag=val&tag=val` for the tagged values, bottom-to-top. Values are in text
/// form (numbers as `>STR` prints them); `%`, `&`, `=` and control characters
/// in them are percent-encoded (`%25`, `%26`, `%3D`, UTF-8 bytes as `%XX`).
pub fn ejoin(values: &[Value], max: usize) -> Result<String> {
    let mut out = String::new();
    for v in values.iter().filter(|v| !v.tag().is_empty()) {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(v.tag());
        out.push('=');
        for c in v.text().chars() {
            if c == '%' || c == '&' || c == '=' || c.is_control() {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            } else {
                out.push(c);
            }
            if out.len() > max {
                return Err(too_long(max));
            }
        }
        if out.len() > max {
            return Err(too_long(max));
        }
    }
    Ok(out)
}

/// A compact JSON object `{"tag":val,…}` of the tagged values, bottom-to-top.
/// A tag seen again overwrites the earlier value but keeps its first
/// position (like a Python dict). Numbers are JSON numbers, strings JSON
/// strings (control characters as `\uXXXX` or the short escapes).
pub fn edict(values: &[Value], max: usize) -> Result<String> {
    let mut entries: Vec<(&str, &Value)> = Vec::new();
    for v in values.iter().filter(|v| !v.tag().is_empty()) {
        match entries.iter_mut().find(|(t, _)| *t == v.tag()) {
            Some(entry) => entry.1 = v,
            None => entries.push((v.tag(), v)),
        }
    }
    let mut out = String::from("{");
    for (i, (tag, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, tag, max)?;
        out.push(':');
        match v {
            Value::Num(n, _) => {
                let _ = write!(out, "{n}");
            }
            Value::Str(s, _) => json_string(&mut out, s, max)?,
        }
        if out.len() > max {
            return Err(too_long(max));
        }
    }
    out.push('}');
    if out.len() > max {
        return Err(too_long(max));
    }
    Ok(out)
}

fn json_string(out: &mut String, s: &str, max: usize) -> Result<()> {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
        if out.len() > max {
            return Err(too_long(max));
        }
    }
    out.push('"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals() -> Vec<Value> {
        vec![
            Value::num(1).with_tag("a"),
            Value::str("untagged"),
            Value::str("x&y=z%").with_tag("b"),
            Value::num(2.5).with_tag("a"),
            Value::str("line\nq\"").with_tag("c"),
        ]
    }

    #[test]
    fn ejoin_encodes_separators() {
        assert_eq!(
            ejoin(&vals(), 1000).expect("fits"),
            "a=1&b=x%26y%3Dz%25&a=2.5&c=line%0Aq\""
        );
        assert_eq!(ejoin(&[], 10).expect("fits"), "");
        assert_eq!(
            ejoin(&[Value::str("\u{85}é").with_tag("u")], 100).expect("fits"),
            "u=%C2%85é"
        );
    }

    #[test]
    fn edict_overwrites_in_place() {
        assert_eq!(
            edict(&vals(), 1000).expect("fits"),
            r#"{"a":2.5,"b":"x&y=z%","c":"line\nq\""}"#
        );
        assert_eq!(edict(&[], 10).expect("fits"), "{}");
        assert_eq!(
            edict(&[Value::str("\u{1}").with_tag("k")], 100).expect("fits"),
            r#"{"k":"\u0001"}"#
        );
        assert_eq!(
            edict(&[Value::num(1e300).with_tag("k")], 100).expect("fits"),
            r#"{"k":1e300}"#
        );
    }

    #[test]
    fn outputs_are_bounded() {
        let big = vec![Value::str("%".repeat(100)).with_tag("t")];
        assert_eq!(
            ejoin(&big, 50).expect_err("too long").kind(),
            ErrorKind::Limit
        );
        assert_eq!(
            edict(&big, 50).expect_err("too long").kind(),
            ErrorKind::Limit
        );
        assert!(ejoin(&big, 302).is_ok());
        assert!(ejoin(&big, 301).is_err());
    }
}
