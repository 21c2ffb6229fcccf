//! [`FilterError`]: where and why a filter does not parse, displayed with the
//! filter text and a caret under the offending character.

use std::fmt;

/// Characters of the filter kept around the error position for display.
const WINDOW_CHARS: usize = 72;

/// A filter that does not parse.
///
/// `Display` gives three lines:
///
/// ```text
/// filter error at column 4: unknown operator `==`; use `=`
///   os==linux
///      ^
/// ```
///
/// Long filters are cut to about 72 characters around the position (`…`
/// marks the cuts); control characters show as spaces so the caret lines up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 0-based index, in characters, of the offending character (the
    /// filter's length in characters when the problem is at its end).
    pub position: usize,
    /// What is wrong, and what would be right when that is known.
    pub message: String,
    /// The text shown: the filter, or a window of it around the position.
    snippet: String,
    /// Index, in characters, of the caret in `snippet`.
    caret: usize,
}

impl FilterError {
    /// An error at `position` (a character index into `text`).
    pub fn new(text: &str, position: usize, message: impl Into<String>) -> FilterError {
        let len = text.chars().count();
        let position = position.min(len);
        let (start, end) = if len <= WINDOW_CHARS {
            (0, len)
        } else {
            let start = position
                .saturating_sub(WINDOW_CHARS / 2)
                .min(len - WINDOW_CHARS);
            (start, start + WINDOW_CHARS)
        };
        let mut snippet = String::new();
        let mut caret = position - start;
        if start > 0 {
            snippet.push('…');
            caret += 1;
        }
        snippet.extend(
            text.chars()
                .skip(start)
                .take(end - start)
                .map(|c| if c.is_control() { ' ' } else { c }),
        );
        if end < len {
            snippet.push('…');
        }
        // Messages quote bits of the filter: keep them one printable line.
        let message = message
            .into()
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        FilterError {
            position,
            message,
            snippet,
            caret,
        }
    }

    /// The filter text as displayed (possibly cut around the position).
    pub fn snippet(&self) -> &str {
        &self.snippet
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "filter error at column {}: {}\n  {}\n  {}^",
            self.position + 1,
            self.message,
            self.snippet,
            " ".repeat(self.caret)
        )
    }
}

impl std::error::Error for FilterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_whole() {
        let e = FilterError::new("os==linux", 3, "unknown operator `==`; use `=`");
        assert_eq!(
            e.to_string(),
            "filter error at column 4: unknown operator `==`; use `=`\n  os==linux\n     ^"
        );
    }

    #[test]
    fn end_of_text_caret_after_last_char() {
        let e = FilterError::new("os=", 3, "missing value");
        assert_eq!(
            e.to_string(),
            "filter error at column 4: missing value\n  os=\n     ^"
        );
    }

    #[test]
    fn messages_escape_control_characters() {
        let e = FilterError::new("x", 0, "found `a\u{1b}[31m\nb`");
        assert_eq!(e.message, "found `a\\u{1b}[31m\\nb`");
    }

    #[test]
    fn control_characters_become_spaces() {
        let e = FilterError::new("a\tb\n", 2, "x");
        assert_eq!(e.snippet(), "a b ");
    }

    #[test]
    fn long_text_is_cut_around_position() {
        let text: String = (0..200)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let e = FilterError::new(&text, 100, "here");
        let shown = e.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[1].starts_with("  …") && lines[1].ends_with('…'),
            "{}",
            lines[1]
        );
        let caret_col = lines[2].chars().count() - 1;
        // The character above the caret is the one at position 100.
        let above = lines[1].chars().nth(caret_col);
        assert_eq!(above, text.chars().nth(100));
        // Near the start: no leading cut.
        let e = FilterError::new(&text, 3, "x");
        assert!(!e.snippet().starts_with('…') && e.snippet().ends_with('…'));
        // At the very end.
        let e = FilterError::new(&text, 200, "x");
        assert!(e.snippet().starts_with('…') && !e.snippet().ends_with('…'));
        assert_eq!(e.caret, e.snippet().chars().count());
        assert_eq!(e.position, 200);
    }
}
