//! Values on the stack — numbers and strings with a tag — and their printed form.
//!
//! The printed form is what a reply shows: `4:`, `0.3333333333333333:`,
//! `1:true`, `"abcd":`, `"a\"b":tag`. Every printed number re-reads as a
//! literal with the same value (see [`parse_number`]), and every printed
//! string re-reads as a string literal.

use std::cmp::Ordering;
use std::fmt;

/// Longest tag, in bytes. Tags are identifiers (`[a-z_][a-z0-9_]*`); the cap
/// keeps tag handling (GET, MTAG, EJOIN, EDICT) cheap.
pub const MAX_TAG_LEN: usize = 64;

/// A number: an integer when the literal or the exact result fits in `i64`,
/// otherwise a finite `f64`.
///
/// Equality is numeric: `Int(4) == Float(4.0)`. The interpreter never
/// produces NaN or infinities (they are errors), so the order is total on
/// every number a program can see.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An exact integer.
    Int(i64),
    /// A finite floating-point number.
    Float(f64),
}

impl Number {
    /// The value as `f64` (possibly rounded for large integers).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// The value as `i64` when it is integral and within range
    /// (`4.0` gives `Some(4)`, `4.5` and `1e300` give `None`).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f) => float_to_i64(f),
        }
    }

    /// Whether the number is zero.
    pub fn is_zero(self) -> bool {
        match self {
            Number::Int(i) => i == 0,
            Number::Float(f) => f == 0.0,
        }
    }

    /// Whether the value is finite (always true for numbers the interpreter made).
    pub fn is_finite(self) -> bool {
        match self {
            Number::Int(_) => true,
            Number::Float(f) => f.is_finite(),
        }
    }

    /// Exact numeric comparison (no rounding of large integers). NaN, which
    /// the interpreter never produces, compares equal to everything.
    pub fn compare(self, other: Number) -> Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(&b),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            (Number::Int(a), Number::Float(b)) => cmp_int_float(a, b),
            (Number::Float(a), Number::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        if !self.is_finite() || !other.is_finite() {
            return matches!((self, other), (Number::Float(a), Number::Float(b)) if a == b);
        }
        self.compare(*other) == Ordering::Equal
    }
}

impl From<i64> for Number {
    fn from(i: i64) -> Number {
        Number::Int(i)
    }
}

impl From<f64> for Number {
    fn from(f: f64) -> Number {
        Number::Float(f)
    }
}

/// Prints the number's text (no colon, no tag): integers and integral floats
/// below 1e21 as integers (exact digits within `i64`, shortest round-trip
/// digits padded with zeros beyond), other floats in shortest round-trip
/// form, very large or small ones as `1e300` / `5e-324`.
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            // Both zeros print `0`.
            Number::Float(0.0) => f.write_str("0"),
            Number::Float(x) if !x.is_finite() => write!(f, "{x}"),
            // Exact digits, so that the text re-reads as the very same value.
            Number::Float(x) if float_to_i64(x).is_some() => write!(f, "{}", x as i64),
            Number::Float(x) => {
                let a = x.abs();
                if a < 1e21 && (x.fract() == 0.0 || a >= 1e-7) {
                    write!(f, "{x}")
                } else {
                    write!(f, "{x:e}")
                }
            }
        }
    }
}

/// `i64` value of an integral float within range.
fn float_to_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; every integral f64 in [-2^63, 2^63) fits.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

fn cmp_int_float(a: i64, b: f64) -> Ordering {
    if b.is_nan() {
        return Ordering::Equal;
    }
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if b >= TWO_63 {
        return Ordering::Less;
    }
    if b < -TWO_63 {
        return Ordering::Greater;
    }
    let t = b.trunc();
    // `t` is integral and in range, so the cast is exact.
    match a.cmp(&(t as i64)) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(b - t)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// Reads decimal number text: `[+-]digits[.digits][(e|E)[+-]digits]` (a
/// leading or trailing `.` is allowed when there are digits on the other
/// side). Integer text that fits in `i64` gives [`Number::Int`]; anything else
/// gives a finite [`Number::Float`]. NaN and infinity spellings, and values
/// whose magnitude overflows `f64`, give `None`.
pub fn parse_number(text: &str) -> Option<Number> {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    let mut is_int = true;
    if i < b.len() && b[i] == b'.' {
        is_int = false;
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        is_int = false;
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    if is_int && let Ok(n) = text.parse::<i64>() {
        return Some(Number::Int(n));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(Number::Float(f)),
        _ => None,
    }
}

/// Whether `tag` is a valid non-empty tag: `[a-z_][a-z0-9_]*`, at most
/// [`MAX_TAG_LEN`] bytes.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_lowercase() || *c == b'_' => {}
        _ => return false,
    }
    b.len() <= MAX_TAG_LEN
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// A stack value: a number or a string, each with a tag (`""` when untagged).
///
/// Booleans are numbers: `1` tagged `true` and `0` tagged `false`.
/// `Display` gives the printed form used in replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number and its tag.
    Num(Number, String),
    /// A string and its tag.
    Str(String, String),
}

impl Value {
    /// An untagged number.
    pub fn num(n: impl Into<Number>) -> Value {
        Value::Num(n.into(), String::new())
    }

    /// An untagged string.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into(), String::new())
    }

    /// A boolean: `1:true` or `0:false`.
    pub fn bool(b: bool) -> Value {
        if b {
            Value::Num(Number::Int(1), "true".to_owned())
        } else {
            Value::Num(Number::Int(0), "false".to_owned())
        }
    }

    /// The same value with another tag.
    pub fn with_tag(self, tag: impl Into<String>) -> Value {
        match self {
            Value::Num(n, _) => Value::Num(n, tag.into()),
            Value::Str(s, _) => Value::Str(s, tag.into()),
        }
    }

    /// The tag (`""` when untagged).
    pub fn tag(&self) -> &str {
        match self {
            Value::Num(_, t) | Value::Str(_, t) => t,
        }
    }

    /// `"num"` or `"str"` (what `TYP` pushes and type errors name).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Num(..) => "num",
            Value::Str(..) => "str",
        }
    }

    /// Truthiness for `NOT AND OR IFT`: a non-zero number or a non-empty string.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Num(n, _) => !n.is_zero(),
            Value::Str(s, _) => !s.is_empty(),
        }
    }

    /// The text form (what `>STR` gives): the string itself, or the number's
    /// printed text without colon and tag.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Num(n, _) => std::borrow::Cow::Owned(n.to_string()),
            Value::Str(s, _) => std::borrow::Cow::Borrowed(s),
        }
    }

    /// The printed form without the trailing `:` and tag (`"a\"b"`, `2.5`),
    /// as values appear in error messages.
    pub fn text_quoted(&self) -> String {
        let mut printed = self.to_string();
        printed.truncate(printed.len() - self.tag().len() - 1);
        printed
    }

    /// Bytes of string payload (0 for numbers); used for size limits and costs.
    pub fn str_len(&self) -> usize {
        match self {
            Value::Num(..) => 0,
            Value::Str(s, _) => s.len(),
        }
    }

    /// Equal in type and value, tags ignored (what `MATCH` counts).
    pub fn same_value(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Num(a, _), Value::Num(b, _)) => a == b,
            (Value::Str(a, _), Value::Str(b, _)) => a == b,
            _ => false,
        }
    }
}

/// The printed form: `4:`, `2.5:tag`, `"text":tag` (with `\` and `"`
/// escaped by a backslash; other characters, newlines included, verbatim).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n, tag) => write!(f, "{n}:{tag}"),
            Value::Str(s, tag) => {
                let mut out = String::with_capacity(s.len() + tag.len() + 3);
                out.push('"');
                escape_into(&mut out, s);
                out.push_str("\":");
                out.push_str(tag);
                f.write_str(&out)
            }
        }
    }
}

/// Appends `text` with `\` and `"` escaped by a backslash.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Value::num(parse_number(s).expect("parses")).to_string()
    }

    #[test]
    fn printed_numbers() {
        assert_eq!(p("4"), "4:");
        assert_eq!(p("-3"), "-3:");
        assert_eq!(p("4.0"), "4:");
        assert_eq!(p("2.5"), "2.5:");
        assert_eq!(p("1e300"), "1e300:");
        assert_eq!(p("1e21"), "1e21:");
        assert_eq!(p("1e20"), "100000000000000000000:");
        assert_eq!(p("1e-7"), "0.0000001:");
        assert_eq!(p("1.5e-8"), "1.5e-8:");
        assert_eq!(p("-0.0"), "0:");
        assert_eq!(p("5e-324"), "5e-324:");
        assert_eq!(Value::num(1.0 / 3.0).to_string(), "0.3333333333333333:");
        assert_eq!(Value::num(i64::MIN).to_string(), "-9223372036854775808:");
    }

    #[test]
    fn quoted_text_for_messages() {
        assert_eq!(Value::str("a\"b").with_tag("t").text_quoted(), "\"a\\\"b\"");
        assert_eq!(Value::num(2.5).with_tag("x").text_quoted(), "2.5");
        assert_eq!(Value::num(-1).text_quoted(), "-1");
    }

    #[test]
    fn printed_strings_and_booleans() {
        assert_eq!(Value::str("abcd").to_string(), "\"abcd\":");
        assert_eq!(
            Value::str("a\"b\\c").with_tag("t").to_string(),
            r#""a\"b\\c":t"#
        );
        assert_eq!(Value::bool(true).to_string(), "1:true");
        assert_eq!(Value::bool(false).to_string(), "0:false");
    }

    #[test]
    fn integer_literals() {
        assert_eq!(parse_number("20"), Some(Number::Int(20)));
        assert!(matches!(parse_number("+7"), Some(Number::Int(7))));
        assert!(matches!(parse_number("007"), Some(Number::Int(7))));
        assert!(matches!(
            parse_number("9223372036854775807"),
            Some(Number::Int(i64::MAX))
        ));
        assert!(matches!(
            parse_number("9223372036854775808"),
            Some(Number::Float(_))
        ));
        assert!(matches!(parse_number("1e3"), Some(Number::Float(f)) if f == 1000.0));
        assert!(matches!(parse_number(".5"), Some(Number::Float(f)) if f == 0.5));
        assert!(matches!(parse_number("5."), Some(Number::Float(f)) if f == 5.0));
        assert!(matches!(parse_number("1e-999"), Some(Number::Float(f)) if f == 0.0));
    }

    #[test]
    fn rejected_number_text() {
        for bad in [
            "", "+", "-", ".", "e3", "1e", "1e+", "inf", "-inf", "Infinity", "NaN", "nan", "1e999",
            "-1e999", "1e999999", "0x10", "1_000", " 1", "1 ", "1.2.3", "--1", "1e3.5", "١",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numeric_equality_and_order() {
        assert_eq!(Number::Int(4), Number::Float(4.0));
        assert_ne!(Number::Int(4), Number::Float(4.5));
        assert_eq!(Number::Int(3).compare(Number::Float(3.5)), Ordering::Less);
        assert_eq!(Number::Float(-3.5).compare(Number::Int(-3)), Ordering::Less);
        assert_eq!(
            Number::Int(i64::MAX).compare(Number::Float(9.3e18)),
            Ordering::Less
        );
        assert_eq!(
            Number::Int(i64::MIN).compare(Number::Float(-1e300)),
            Ordering::Greater
        );
        // i64::MAX rounds to 2^63 as f64, but the exact comparison sees the difference.
        assert_ne!(Number::Int(i64::MAX), Number::Float(i64::MAX as f64));
        assert_eq!(Number::Float(4.0).as_i64(), Some(4));
        assert_eq!(Number::Float(4.5).as_i64(), None);
        assert_eq!(Number::Float(1e300).as_i64(), None);
        assert_eq!(
            Number::Float(-9_223_372_036_854_775_808.0).as_i64(),
            Some(i64::MIN)
        );
    }

    #[test]
    fn tags() {
        for ok in ["a", "_", "count", "time_slice", "a1_2"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", "A", "1a", "a-b", "ERROR", "PONG", "é", &"a".repeat(65)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
        assert!(is_valid_tag(&"a".repeat(64)));
    }

    #[test]
    fn truthiness_and_text() {
        assert!(Value::num(2).is_truthy());
        assert!(!Value::num(0.0).is_truthy());
        assert!(Value::str("x").is_truthy());
        assert!(!Value::str("").is_truthy());
        assert_eq!(Value::num(2.5).text(), "2.5");
        assert_eq!(Value::str("hi").text(), "hi");
        assert!(Value::num(1).same_value(&Value::num(1.0).with_tag("x")));
        assert!(!Value::num(1).same_value(&Value::str("1")));
    }
}
