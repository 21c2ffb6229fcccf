//! Filter text to syntax tree: a recursive-descent parser over characters,
//! so that every error carries the character position it is about. It
//! enforces the limits (text size, depth, atoms, regexes) as it goes.

use super::{
    Cmp, FilterError, MAX_ATOMS, MAX_DEPTH, MAX_FILTER_BYTES, MAX_REGEX_BYTES, MAX_REGEXES, Node,
    Num, Op, Operand, Pattern, REGEX_SIZE_LIMIT,
};

/// The characters operators are made of; a bare word stops at them (except
/// a VALUE, which only may not start with one).
pub(super) fn is_op_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | '~')
}

/// Parses a whole filter.
pub(super) fn parse(text: &str) -> Result<Node, FilterError> {
    if text.len() > MAX_FILTER_BYTES {
        let mut end = MAX_FILTER_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return Err(FilterError::new(
            text,
            text[..end].chars().count(),
            format!(
                "filter is {} bytes, longer than {MAX_FILTER_BYTES}",
                text.len()
            ),
        ));
    }
    let mut p = Parser {
        text,
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
        atoms: 0,
        regexes: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error(0, "empty filter; use * to match every agent"));
    }
    let node = p.parse_or()?;
    p.skip_ws();
    match p.peek() {
        None => Ok(node),
        Some(')') => Err(p.error(p.pos, "unmatched `)`")),
        Some(_) => Err(p.error(
            p.pos,
            format!(
                "expected `and`, `or` or the end of the filter, found {}",
                p.describe(p.pos)
            ),
        )),
    }
}

struct Parser<'t> {
    text: &'t str,
    chars: Vec<char>,
    pos: usize,
    /// Open `(` and `not` around the current position.
    depth: usize,
    atoms: usize,
    regexes: usize,
}

impl Parser<'_> {
    fn error(&self, position: usize, message: impl Into<String>) -> FilterError {
        FilterError::new(self.text, position, message)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// The token at `at`, for "found …" in messages.
    fn describe(&self, at: usize) -> String {
        match self.chars.get(at) {
            None => "the end of the filter".to_owned(),
            Some(&c) if matches!(c, '(' | ')') => format!("`{c}`"),
            Some(_) => {
                let word: String = self.chars[at..]
                    .iter()
                    .take_while(|&&c| !c.is_whitespace() && !matches!(c, '(' | ')'))
                    .take(MAX_QUOTED_CHARS + 1)
                    .collect();
                format!("`{}`", shorten(&word))
            }
        }
    }

    /// Whether the keyword `kw` (lower case) stands at `at`, as a whole word.
    fn keyword_at(&self, at: usize, kw: &str) -> bool {
        let n = kw.chars().count();
        let Some(word) = self.chars.get(at..at + n) else {
            return false;
        };
        word.iter()
            .zip(kw.chars())
            .all(|(a, b)| a.eq_ignore_ascii_case(&b))
            && self
                .chars
                .get(at + n)
                .is_none_or(|&c| c.is_whitespace() || matches!(c, '(' | ')'))
    }

    /// Whether the next non-blank character from `at` is an operator's.
    fn op_follows(&self, at: usize) -> bool {
        self.chars[at.min(self.chars.len())..]
            .iter()
            .find(|c| !c.is_whitespace())
            .is_some_and(|&c| is_op_char(c))
    }

    /// One level deeper (`(` or `not` at `at`).
    fn enter(&mut self, at: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                at,
                format!("filter nested too deeply (more than {MAX_DEPTH} levels of `(` and `not`)"),
            ));
        }
        Ok(())
    }

    /// Counts one atom starting at `at`.
    fn atom_at(&mut self, at: usize) -> Result<(), FilterError> {
        self.atoms += 1;
        if self.atoms > MAX_ATOMS {
            return Err(self.error(at, format!("too many terms (more than {MAX_ATOMS})")));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Node, FilterError> {
        let mut parts = vec![self.parse_and()?];
        loop {
            self.skip_ws();
            if !self.keyword_at(self.pos, "or") {
                break;
            }
            self.pos += 2;
            parts.push(self.parse_and()?);
        }
        Ok(join(parts, Node::Or, |n| match n {
            Node::Or(v) => Ok(v),
            other => Err(other),
        }))
    }

    fn parse_and(&mut self) -> Result<Node, FilterError> {
        let mut parts = vec![self.parse_unary()?];
        loop {
            self.skip_ws();
            if !self.keyword_at(self.pos, "and") {
                break;
            }
            self.pos += 3;
            parts.push(self.parse_unary()?);
        }
        Ok(join(parts, Node::And, |n| match n {
            Node::And(v) => Ok(v),
            other => Err(other),
        }))
    }

    fn parse_unary(&mut self) -> Result<Node, FilterError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None | Some(')') => Err(self.error(
                start,
                format!(
                    "expected a term such as `*`, `tag:web`, `os=linux` or `web*`, found {}",
                    self.describe(start)
                ),
            )),
            Some('(') => {
                self.enter(start)?;
                self.pos += 1;
                let inner = self.parse_or()?;
                self.skip_ws();
                match self.peek() {
                    Some(')') => {
                        self.pos += 1;
                        self.depth -= 1;
                        Ok(inner)
                    }
                    None => Err(self.error(start, "unclosed `(`: no matching `)`")),
                    Some(_) => Err(self.error(
                        self.pos,
                        format!(
                            "expected `)`, `and` or `or`, found {}",
                            self.describe(self.pos)
                        ),
                    )),
                }
            }
            Some(_) if self.keyword_at(start, "not") && !self.op_follows(start + 3) => {
                self.enter(start)?;
                self.pos += 3;
                let inner = self.parse_unary()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            Some(_) => self.parse_atom(),
        }
    }

    fn parse_atom(&mut self) -> Result<Node, FilterError> {
        let start = self.pos;
        let first = self.peek().unwrap_or(' ');
        if first == '\'' || first == '"' {
            return Err(self.error(
                start,
                format!("unexpected `{first}`: quoted text can only follow an operator"),
            ));
        }
        if is_op_char(first) {
            let message = if first == '!' && self.chars.get(start + 1).is_none_or(|&c| c != '=') {
                "`!` is not an operator here; use `not`".to_owned()
            } else {
                format!("missing fact name before `{first}`")
            };
            return Err(self.error(start, message));
        }
        if self.keyword_at_prefix(start, "tag:") {
            self.atom_at(start)?;
            self.pos += 4;
            let tag_start = self.pos;
            let tag = self.bare_word();
            if tag.is_empty() {
                return Err(self.error(tag_start, "missing tag name after `tag:`"));
            }
            return Ok(Node::Tag(tag));
        }
        while self.peek().is_some_and(|c| {
            !c.is_whitespace() && !is_op_char(c) && !matches!(c, '(' | ')' | '\'' | '"')
        }) {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        if self.op_follows(self.pos) {
            return self.parse_comparison(start, word);
        }
        self.atom_at(start)?;
        if ["and", "or", "not"]
            .iter()
            .any(|kw| word.eq_ignore_ascii_case(kw))
        {
            return Err(self.error(
                start,
                format!(
                    "expected a term such as `*`, `tag:web`, `os=linux` or `web*`, found `{word}`"
                ),
            ));
        }
        if word.chars().all(|c| c == '*') {
            return Ok(Node::All);
        }
        Ok(Node::Name(word))
    }

    /// Whether `prefix` (lower case) starts at `at`, in any case.
    fn keyword_at_prefix(&self, at: usize, prefix: &str) -> bool {
        let n = prefix.chars().count();
        self.chars.get(at..at + n).is_some_and(|w| {
            w.iter()
                .zip(prefix.chars())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b))
        })
    }

    /// Reads characters up to whitespace, a parenthesis or the end.
    fn bare_word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !matches!(c, '(' | ')'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn parse_comparison(&mut self, start: usize, key: String) -> Result<Node, FilterError> {
        self.atom_at(start)?;
        check_key(&key).map_err(|(i, msg)| self.error(start + i, msg))?;
        self.skip_ws();
        let op_start = self.pos;
        while self.peek().is_some_and(is_op_char) {
            self.pos += 1;
        }
        let op_text: String = self.chars[op_start..self.pos].iter().collect();
        let op = match op_text.as_str() {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "=~" => Op::Match,
            other => return Err(self.error(op_start, unknown_operator(other))),
        };
        self.skip_ws();
        let value_start = self.pos;
        let (text, quoted) = match self.peek() {
            None | Some('(' | ')') => {
                return Err(self.error(value_start, format!("missing value after `{op_text}`")));
            }
            Some(q @ ('\'' | '"')) => (self.quoted(q)?, true),
            Some(c) if is_op_char(c) => {
                return Err(self.error(
                    value_start,
                    format!("a value starting with `{c}` must be quoted"),
                ));
            }
            Some(_) => (self.bare_word(), false),
        };
        let value = if op == Op::Match {
            self.regex(value_start, &text)?
        } else if quoted {
            Operand::Text(text)
        } else if matches!(op, Op::Eq | Op::Ne) && text.contains(['*', '?']) {
            Operand::Glob(text)
        } else if let Some(n) = parse_number(&text) {
            Operand::Number(text, n)
        } else if numeric_syntax(&text).is_some() {
            // Written as a number but beyond a double (`1e999`): an error,
            // not a silent comparison as text.
            return Err(self.error(
                value_start,
                format!(
                    "the number {} is too large for a 64-bit float; quote it to compare it as text",
                    text.chars().take(40).collect::<String>()
                ),
            ));
        } else {
            Operand::Text(text)
        };
        Ok(Node::Cmp(Box::new(Cmp { key, op, value })))
    }

    /// Reads a string quoted with `q`, the opening quote at `self.pos`.
    fn quoted(&mut self, q: char) -> Result<String, FilterError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.error(open, format!("unterminated string: no closing `{q}`")));
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    match self.chars.get(self.pos + 1) {
                        Some(&e @ ('\\' | '\'' | '"')) => {
                            out.push(e);
                            self.pos += 2;
                        }
                        // Any other backslash is kept (regexes: `\d`).
                        _ => {
                            out.push('\\');
                            self.pos += 1;
                        }
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// Compiles the regex of `=~`, written at `at`.
    fn regex(&mut self, at: usize, text: &str) -> Result<Operand, FilterError> {
        self.regexes += 1;
        if self.regexes > MAX_REGEXES {
            return Err(self.error(at, format!("too many regexes (more than {MAX_REGEXES})")));
        }
        if text.len() > MAX_REGEX_BYTES {
            return Err(self.error(
                at,
                format!(
                    "regex is {} bytes, longer than {MAX_REGEX_BYTES}",
                    text.len()
                ),
            ));
        }
        regex_lite::RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(|re| Operand::Regex(Pattern(re)))
            .map_err(|e| {
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                self.error(at, format!("invalid regex: {}", shorten(&msg)))
            })
    }
}

/// Longest piece of the filter (or of a regex error) quoted in a message.
const MAX_QUOTED_CHARS: usize = 40;

/// `s` with control characters escaped, cut to [`MAX_QUOTED_CHARS`]
/// characters as shown, `…` appended when cut.
fn shorten(s: &str) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in s.chars() {
        let piece: String = if c.is_control() {
            c.escape_debug().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if shown + n > MAX_QUOTED_CHARS {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        shown += n;
    }
    out
}

/// Builds an `and` / `or` of `parts`, splicing in nested ones of the same
/// kind (from parentheses); one part is itself.
fn join(
    parts: Vec<Node>,
    make: fn(Vec<Node>) -> Node,
    split: fn(Node) -> Result<Vec<Node>, Node>,
) -> Node {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or(Node::All);
    }
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts {
        match split(part) {
            Ok(children) => flat.extend(children),
            Err(node) => flat.push(node),
        }
    }
    make(flat)
}

/// Checks a fact key: `[A-Za-z_][A-Za-z0-9_.-]*`. On error, the index of the
/// offending character in the key and the message.
fn check_key(key: &str) -> Result<(), (usize, String)> {
    for (i, c) in key.chars().enumerate() {
        let ok = if i == 0 {
            c.is_ascii_alphabetic() || c == '_'
        } else {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
        };
        if !ok {
            let rule = if i == 0 {
                "a fact name starts with a letter or `_`"
            } else {
                "a fact name has letters, digits, `_`, `.` and `-`"
            };
            return Err((
                i,
                format!(
                    "`{c}` is not allowed in fact name `{}`: {rule}",
                    shorten(key)
                ),
            ));
        }
    }
    Ok(())
}

/// The message for an operator that does not exist, with the likely one.
fn unknown_operator(op: &str) -> String {
    let suggestion = match op {
        "==" | "===" => Some("`=`"),
        "=>" => Some("`>=`"),
        "=<" => Some("`<=`"),
        "<>" | "!" | "=!" | "!==" => Some("`!=`"),
        "~" | "~=" | "==~" => Some("`=~`"),
        "!~" | "!=~" => Some("`not KEY=~REGEX`"),
        _ => None,
    };
    let op = shorten(op);
    match suggestion {
        Some(s) => format!("unknown operator `{op}`; use {s}"),
        None => format!("unknown operator `{op}`; operators are = != < <= > >= =~"),
    }
}

/// `text` as a number when it is written as one: optional sign, digits with
/// an optional fraction (or a fraction alone), optional exponent. Integers
/// within `i128` are exact; others must be finite doubles.
pub(super) fn parse_number(text: &str) -> Option<Num> {
    let integer = numeric_syntax(text)?;
    if integer && let Ok(n) = text.parse::<i128>() {
        return Some(Num::Int(n));
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Num::Float)
}

/// Whether `text` is written as a number (see [`parse_number`]), and if so
/// whether as an integer (no fraction, no exponent).
pub(super) fn numeric_syntax(text: &str) -> Option<bool> {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let int_digits = digits(&mut i);
    let mut integer = true;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        integer = false;
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        integer = false;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    Some(integer)
}
