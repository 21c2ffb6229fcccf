//! Errors of the classic language: a kind plus a bounded, single-line message.
//!
//! Every error a program can cause ends up as exactly one reply line,
//! `"Kind: message":ERROR`. This module owns the rules that keep that line
//! safe to publish: no control characters (so it is always one line), the
//! offending token cut to [`MAX_TOKEN_CHARS`] characters, and the whole line
//! at most [`MAX_ERROR_LINE_CHARS`] characters.

use std::fmt;

use crate::value::escape_into;

/// Longest reply line an error can produce, in characters (tag included).
pub const MAX_ERROR_LINE_CHARS: usize = 200;

/// An offending token or value quoted in an error message is cut to this many
/// characters (and `…` appended when cut).
pub const MAX_TOKEN_CHARS: usize = 40;

/// What went wrong. The name (`Debug`/`Display`) is the first word of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A token that is neither a literal, a variable nor a known word.
    UnknownWord,
    /// A word needed more values than the stack holds.
    StackUnderflow,
    /// `DIV`, `MOD` or `TRUEDIV` by zero.
    DivisionByZero,
    /// The payload exceeds [`crate::Limits::max_payload`].
    TooLarge,
    /// The payload is not UTF-8.
    Encoding,
    /// A malformed literal (number, string escape, tag) or unreadable text.
    BadLiteral,
    /// A value outside what a word accepts, or a non-finite result.
    OutOfRange,
    /// One of the [`crate::Limits`] (or a fixed per-message cap) was reached.
    Limit,
    /// A value of the wrong type (number where a string is needed, or back).
    Type,
    /// A `$name` that is not on the allow list.
    UnknownVariable,
    /// An unterminated string literal or comment.
    Syntax,
    /// A zero-length payload.
    Empty,
    /// `GET` or `THAW` found nothing under the given tag or name.
    NotFound,
}

impl ErrorKind {
    /// The kind's name as printed at the start of the error line.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::UnknownWord => "UnknownWord",
            ErrorKind::StackUnderflow => "StackUnderflow",
            ErrorKind::DivisionByZero => "DivisionByZero",
            ErrorKind::TooLarge => "TooLarge",
            ErrorKind::Encoding => "Encoding",
            ErrorKind::BadLiteral => "BadLiteral",
            ErrorKind::OutOfRange => "OutOfRange",
            ErrorKind::Limit => "Limit",
            ErrorKind::Type => "Type",
            ErrorKind::UnknownVariable => "UnknownVariable",
            ErrorKind::Syntax => "Syntax",
            ErrorKind::Empty => "Empty",
            ErrorKind::NotFound => "NotFound",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of one program run.
///
/// `Display` gives the one-line text `Kind: message`; [`Error::reply`] gives
/// the line published on `RES`, `"Kind: message":ERROR`. The message is
/// sanitised when the error is built: control characters become spaces and
/// the text is cut (with `…`) so that the reply stays within
/// [`MAX_ERROR_LINE_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// Builds an error, sanitising and bounding `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        let message = bound_message(kind, &message.into());
        Error { kind, message }
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message after `Kind: ` (already sanitised and bounded).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The reply line: the text printed as a string tagged `ERROR`.
    pub fn reply(&self) -> String {
        let mut out = String::with_capacity(self.message.len() + 32);
        out.push('"');
        escape_into(&mut out, self.kind.name());
        out.push_str(": ");
        escape_into(&mut out, &self.message);
        out.push_str("\":ERROR");
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cuts a token or value to [`MAX_TOKEN_CHARS`] characters for quoting in a
/// message, appending `…` when something was cut.
pub fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_TOKEN_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut out = text[..end].to_owned();
            out.push('…');
            out
        }
    }
}

/// Replaces control characters and cuts the message so that
/// `"Kind: message":ERROR` (with `\` and `"` escaped) fits the line limit.
fn bound_message(kind: ErrorKind, message: &str) -> String {
    // `"` + kind + `: ` + message + `":ERROR`, counting escapes as 2 chars.
    let fixed = 1 + kind.name().chars().count() + 2 + 7;
    let budget = MAX_ERROR_LINE_CHARS.saturating_sub(fixed);
    let width = |c: char| if c == '"' || c == '\\' { 2 } else { 1 };
    let total: usize = message.chars().map(width).sum();
    let limit = if total <= budget {
        usize::MAX
    } else {
        budget.saturating_sub(1) // room for the `…`
    };
    let mut out = String::with_capacity(message.len().min(4 * MAX_ERROR_LINE_CHARS));
    let mut used = 0;
    for c in message.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if used + width(c) > limit {
            out.push('…');
            break;
        }
        used += width(c);
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_tagged_string() {
        let e = Error::new(ErrorKind::UnknownWord, "FOO");
        assert_eq!(e.to_string(), "UnknownWord: FOO");
        assert_eq!(e.reply(), "\"UnknownWord: FOO\":ERROR");
        assert_eq!(e.kind(), ErrorKind::UnknownWord);
        assert_eq!(e.message(), "FOO");
    }

    #[test]
    fn control_characters_become_spaces() {
        let e = Error::new(ErrorKind::BadLiteral, "a\nb\r\tc\u{7f}");
        assert_eq!(e.message(), "a b  c ");
        assert!(!e.reply().contains('\n'));
    }

    #[test]
    fn quotes_are_escaped_in_reply() {
        let e = Error::new(ErrorKind::UnknownWord, "a\"b\\c");
        assert_eq!(e.reply(), r#""UnknownWord: a\"b\\c":ERROR"#);
    }

    #[test]
    fn long_messages_are_bounded() {
        for c in ["x", "\"", "\\", "é", "\n"] {
            let e = Error::new(ErrorKind::StackUnderflow, c.repeat(10_000));
            let line = e.reply();
            assert!(line.chars().count() <= MAX_ERROR_LINE_CHARS, "{line}");
            assert!(line.ends_with("…\":ERROR"), "{line}");
        }
        let exact = "x".repeat(MAX_ERROR_LINE_CHARS - 8 - "Limit".len() - 2);
        let e = Error::new(ErrorKind::Limit, exact.clone());
        assert_eq!(e.message(), exact);
        assert_eq!(e.reply().chars().count(), MAX_ERROR_LINE_CHARS);
    }

    #[test]
    fn cut_keeps_forty_characters() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(100);
        let c = cut(&long);
        assert_eq!(c.chars().count(), MAX_TOKEN_CHARS + 1);
        assert!(c.ends_with('…'));
        assert_eq!(cut(&"a".repeat(40)), "a".repeat(40));
    }

    #[test]
    fn every_kind_has_its_name() {
        let kinds = [
            ErrorKind::UnknownWord,
            ErrorKind::StackUnderflow,
            ErrorKind::DivisionByZero,
            ErrorKind::TooLarge,
            ErrorKind::Encoding,
            ErrorKind::BadLiteral,
            ErrorKind::OutOfRange,
            ErrorKind::Limit,
            ErrorKind::Type,
            ErrorKind::UnknownVariable,
            ErrorKind::Syntax,
            ErrorKind::Empty,
            ErrorKind::NotFound,
        ];
        for k in kinds {
            assert_eq!(format!("{k:?}"), k.name());
            assert_eq!(k.to_string(), k.name());
        }
    }
}
