//! The filter language: which agents a request is for. One language, one
//! implementation: agents evaluate a request's filter against themselves,
//! the server evaluates the same text against the [`Status`](crate::Status)
//! of every agent it knows (a `Status` is a [`Target`]).
//!
//! ```
//! use bot_proto::filter::{self, Target};
//! # use bot_proto::{Facts, Status};
//! # let mut facts = Facts::new();
//! # facts.insert("os".into(), "linux".into());
//! # facts.insert("cpus".into(), 8.into());
//! # facts.insert("memory".into(), serde_json::json!({"total": 8_589_934_592u64}));
//! # let agent = Status { id: "a1".into(), name: "web-01".into(), hostname: "web-01".into(),
//! #     ips: vec![], version: "1".into(), online: true, facts, tags: vec!["prod".into()],
//! #     pools: vec![], started_ms: 0, heartbeat_s: 30, created_ms: 0, measure: None, key: None, sig: None };
//! let f = filter::parse("web* and os=linux and (cpus>=4 or tag:big) and memory.total>4e9")?;
//! assert!(f.matches(&agent));
//! assert!(!filter::parse("not tag:prod")?.matches(&agent));
//! assert_eq!(f.to_string(), "web* and os=linux and (cpus>=4 or tag:big) and memory.total>4e9");
//!
//! let err = filter::parse("os==linux").expect_err("`==` is not an operator");
//! assert_eq!(err.to_string(), "filter error at column 3: unknown operator `==`; use `=`\n  os==linux\n    ^");
//! # Ok::<(), filter::FilterError>(())
//! ```
//!
//! # Grammar
//!
//! Keywords (`and`, `or`, `not`, `tag:`) are case-insensitive; whitespace
//! separates tokens and is optional around operators and parentheses.
//!
//! ```text
//! expr    := or
//! or      := and ( "or" and )*
//! and     := unary ( "and" unary )*
//! unary   := "not" unary | "(" expr ")" | atom
//! atom    := "*"                        -- every agent
//!          | "tag:" WORD                -- the agent has this tag (from its config)
//!          | KEY OP VALUE               -- fact comparison
//!          | GLOB                       -- a bare word: the agent's name matches this glob
//! KEY     := [A-Za-z_][A-Za-z0-9_.-]*   -- fact name, or a dotted path into a fact
//! OP      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "=~"
//! VALUE   := quoted string ('…' or "…") | bare word (no whitespace or parentheses)
//! ```
//!
//! - `not` binds tighter than `and`, which binds tighter than `or`:
//!   `a=1 or b=2 and c=3` is `a=1 or (b=2 and c=3)`.
//! - A GLOB is a word of any characters but whitespace, parentheses, quotes
//!   and the operator characters `= ! < > ~`; `*` matches any run of
//!   characters, `?` one, ASCII case is ignored (as in the classic `SEL`):
//!   `web*`, `db-0?`. A word made only of `*` is the match-all `*`. The
//!   words `and`, `or` and `not` are keywords, never globs (use
//!   `name=and` for an agent named `and`).
//! - `tag:` is followed by the tag itself, up to whitespace or a parenthesis;
//!   it is compared exactly.
//! - `not` followed by an operator (`not=1`) is a fact named `not`, likewise
//!   `and=1`, `or=1`: keywords are only keywords where a keyword can be.
//! - A bare VALUE runs to the next whitespace or parenthesis and may not
//!   start with an operator character (`a= =b` is an error: write `a='=b'`);
//!   one starting with a quote is a quoted VALUE. Quotes and backslashes
//!   inside a bare VALUE are literal: `a=it's`, `ver=~^\d+\.\d+$`.
//! - In a quoted VALUE `\\`, `\'` and `\"` are escapes; any other backslash
//!   is kept as it is, so regexes read naturally: `msg=~"^\d+ \w+$"`.
//!
//! `Display` prints the canonical text: keywords in lower case, single
//! spaces, parentheses only where needed, operators without spaces, values
//! bare when that reads back the same, else quoted with the quote character
//! they contain least.
//!
//! # Meaning
//!
//! - **Facts**: `KEY` names a fact. A dotted key is looked up as the longest
//!   prefix that is a fact, then walked: `memory.total` is the fact
//!   `memory.total` if the agent has one, else key `total` of the object fact
//!   `memory`; a numeric segment indexes an array (`disks.0.size`).
//! - **Numbers**: a bare VALUE written as a number (`4`, `-2.5`, `1e9`) is a
//!   number; a fact is a number when it is a JSON number or a string written
//!   as one (`"8"`). Integers compare exactly, anything else as doubles.
//!   A quoted VALUE is always text: `ver='1.10'` does not equal `"1.1"`.
//! - `=`: when the VALUE is bare and contains `*` or `?`, a glob match
//!   against the fact's text (ASCII case ignored); else numeric equality when
//!   both sides are numbers; else exact equality of the text forms. The text
//!   form of a string is itself, of a number its JSON form (`4`, `2.5`), of a
//!   boolean `true` / `false`.
//! - `!=` is exactly `not (KEY = VALUE)`: true for a missing fact, and for an
//!   array fact, true when no element equals VALUE.
//! - `<`, `<=`, `>`, `>=`: numeric when both sides are numbers, else
//!   lexicographic (by Unicode code point) on the text forms.
//! - `=~`: the VALUE is a regex (the `regex-lite` syntax, ≤ 1024 bytes,
//!   compiled when the filter is parsed), searched for anywhere in the
//!   fact's text: anchor it with `^…$` for a whole match, `(?i)` ignores
//!   case.
//! - **Arrays**: a fact that is an array matches when ANY element matches
//!   (`ips=10.0.*`); nested arrays are searched too (up to 8 levels).
//! - **Missing facts**, `null` and objects: every comparison is false except
//!   `!=`, which is true.
//! - `name`, `id` and `hostname` are ordinary facts: the agent supplies them
//!   in its facts. Bare GLOBs match [`Target::name`].
//!
//! # Limits
//!
//! Each gives a [`FilterError`] pointing at the offending place:
//! [`MAX_FILTER_BYTES`] of text (and of canonical text, see [`parse`]),
//! [`MAX_DEPTH`] levels of `(` / `not`, [`MAX_ATOMS`] atoms,
//! [`MAX_REGEX_BYTES`] per regex, [`MAX_REGEXES`] regexes per filter, and
//! each compiled regex within [`REGEX_SIZE_LIMIT`] bytes. Matching never
//! backtracks exponentially: each atom costs at most the length of the fact's
//! text times the length of its glob or compiled regex.

mod error;
mod eval;
mod parser;

use std::fmt;
use std::str::FromStr;

pub use error::FilterError;

/// Longest filter text, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Deepest nesting of `(` and `not`.
pub const MAX_DEPTH: usize = 32;
/// Most atoms (`*`, `tag:`, comparisons, globs) in one filter.
pub const MAX_ATOMS: usize = 256;
/// Longest regex text, in bytes.
pub const MAX_REGEX_BYTES: usize = 1024;
/// Most `=~` comparisons in one filter (bounds the memory of compiled
/// regexes to `MAX_REGEXES * REGEX_SIZE_LIMIT`).
pub const MAX_REGEXES: usize = 32;
/// Largest compiled regex, approximately, in bytes (regex-lite's
/// `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// What a filter is evaluated against: an agent as it sees itself, or an
/// agent's [`Status`](crate::Status) on the server.
pub trait Target {
    /// The fact named `key` (a whole name; dotted paths are walked by the
    /// filter, which asks for each prefix).
    fn fact(&self, key: &str) -> Option<&serde_json::Value>;
    /// Whether the agent has this tag (exact comparison).
    fn has_tag(&self, tag: &str) -> bool;
    /// The agent's name, matched by bare globs.
    fn name(&self) -> &str;
}

/// A parsed filter. Equality is structural (`a and (b and c)` equals
/// `a and b and c`; a regex equals another with the same text), `Display`
/// prints the canonical text, which parses back to an equal filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

/// One node of the syntax tree. `And` / `Or` hold at least two children,
/// none of them of the same kind (nested ones are flattened when parsed).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// `*`.
    All,
    /// `tag:WORD`.
    Tag(String),
    /// A bare glob on the agent's name.
    Name(String),
    /// `KEY OP VALUE`.
    Cmp(Box<Cmp>),
    /// `not X`.
    Not(Box<Node>),
    /// `X and Y and …`.
    And(Vec<Node>),
    /// `X or Y or …`.
    Or(Vec<Node>),
}

/// A fact comparison.
#[derive(Debug, Clone, PartialEq)]
struct Cmp {
    key: String,
    op: Op,
    value: Operand,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Match => "=~",
        }
    }
}

/// The right-hand side of a comparison, classified when parsed.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// Bare, contains `*` or `?`, with `=` / `!=`.
    Glob(String),
    /// Bare and written as a number (the text is kept for text comparisons).
    Number(String, Num),
    /// Any other text (quoted values always are).
    Text(String),
    /// The value of `=~`.
    Regex(Pattern),
}

/// A number: integers exactly, others as finite doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

/// A compiled regex; equal when the texts are.
#[derive(Debug, Clone)]
struct Pattern(regex_lite::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Parses a filter (see the [module docs](self) for the grammar).
///
/// Besides the text itself, its canonical form (`Display`) must fit in
/// [`MAX_FILTER_BYTES`], so that every `Filter` prints as text that parses
/// back (it is rarely longer: `(a or b)and c` prints as `(a or b) and c`).
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    let filter = Filter {
        root: parser::parse(text)?,
    };
    let canonical = filter.canonical_len();
    if canonical > MAX_FILTER_BYTES {
        return Err(FilterError::new(
            text,
            text.chars().count(),
            format!(
                "filter is {canonical} bytes when written canonically, longer than {MAX_FILTER_BYTES}"
            ),
        ));
    }
    Ok(filter)
}

impl Filter {
    /// The length in bytes of the canonical text, without building it.
    fn canonical_len(&self) -> usize {
        struct Count(usize);
        impl fmt::Write for Count {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 += s.len();
                Ok(())
            }
        }
        let mut count = Count(0);
        match fmt::Write::write_fmt(&mut count, format_args!("{self}")) {
            Ok(()) => count.0,
            Err(_) => usize::MAX,
        }
    }

    /// The filter `*`: every agent.
    pub fn all() -> Filter {
        Filter { root: Node::All }
    }

    /// Whether the agent `t` is selected.
    pub fn matches(&self, t: &dyn Target) -> bool {
        self.root.eval(t)
    }

    /// True when the filter selects every agent whatever its facts, tags and
    /// name, as far as the syntax shows: `*`, `**`, `* or x`, `* and (* or
    /// y)`. Conservative: `x or not x` is not recognised.
    pub fn is_match_all(&self) -> bool {
        self.root.always()
    }
}

impl Default for Filter {
    fn default() -> Filter {
        Filter::all()
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt_into(f)
    }
}

impl Node {
    /// Binding strength, for parentheses: `or` < `and` < `not` < atoms.
    fn precedence(&self) -> u8 {
        match self {
            Node::Or(_) => 1,
            Node::And(_) => 2,
            Node::Not(_) => 3,
            _ => 4,
        }
    }

    /// Writes `self`, in parentheses when it binds no tighter than `min`.
    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.precedence() <= min {
            f.write_str("(")?;
            self.fmt_into(f)?;
            f.write_str(")")
        } else {
            self.fmt_into(f)
        }
    }

    fn fmt_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::All => f.write_str("*"),
            Node::Tag(tag) => write!(f, "tag:{tag}"),
            Node::Name(glob) => f.write_str(glob),
            Node::Cmp(c) => {
                write!(f, "{}{}", c.key, c.op.as_str())?;
                c.value.fmt_into(f, c.op)
            }
            Node::Not(inner) => {
                f.write_str("not ")?;
                inner.fmt_child(f, 2)
            }
            Node::And(parts) | Node::Or(parts) => {
                let (sep, min) = match self {
                    Node::And(_) => (" and ", 2),
                    _ => (" or ", 1),
                };
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    part.fmt_child(f, min)?;
                }
                Ok(())
            }
        }
    }
}

impl Operand {
    fn fmt_into(&self, f: &mut fmt::Formatter<'_>, op: Op) -> fmt::Result {
        match self {
            // Both came from bare words and print as they were read.
            Operand::Glob(text) | Operand::Number(text, _) => f.write_str(text),
            Operand::Text(text) => {
                let bare = bare_safe(text)
                    && parser::numeric_syntax(text).is_none()
                    && !(matches!(op, Op::Eq | Op::Ne) && text.contains(['*', '?']));
                write_value(f, text, bare)
            }
            Operand::Regex(p) => write_value(f, p.0.as_str(), bare_safe(p.0.as_str())),
        }
    }
}

/// Whether `text` reads back as the same bare VALUE: not empty, not
/// starting with a quote or an operator character, no whitespace or
/// parentheses (quotes and backslashes inside are literal in a bare word).
fn bare_safe(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| !parser::is_op_char(c) && !matches!(c, '\'' | '"'))
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '(' | ')'))
}

/// Writes a value bare, or quoted with the quote character it contains
/// least (`"` on a tie), escaping that quote and only the backslashes that
/// would otherwise read as an escape.
fn write_value(f: &mut fmt::Formatter<'_>, text: &str, bare: bool) -> fmt::Result {
    if bare {
        return f.write_str(text);
    }
    let doubles = text.matches('"').count();
    let singles = text.matches('\'').count();
    let q = if singles < doubles { '\'' } else { '"' };
    write!(f, "{q}")?;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let escape =
            c == q || (c == '\\' && chars.peek().is_none_or(|&n| matches!(n, '\\' | '\'' | '"')));
        if escape {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    write!(f, "{q}")
}
