//! `bot-lang`: the classic text language of the `bot` fleet agent.
//!
//! Every MQTT payload on `BUS` / `BUS/<name>` is a small Forth-like program
//! (the dialect of the ancestor's `confined` package, specified in
//! `shared/forth.md`); the agent runs it with [`Machine::run`] and publishes
//! the [`Outcome`]'s replies on `RES`, then carries out its [`Effect`]s.
//!
//! The crate is pure: no I/O, no clock, no threads, no async. Every run is
//! bounded in time and memory by [`Limits`] whatever the input, and never
//! panics. Each message gets a fresh stack; the only state that survives a
//! message is [`State`] (selected, interval, values stored with `FREEZE`).
//!
//! # Layout
//!
//! - [`error`]: [`Error`] / [`ErrorKind`] and the bounded one-line error reply.
//! - [`value`]: [`Value`] / [`Number`], number literals and the printed form.
//! - [`lexer`]: payload text to [`Token`]s; the whole program is checked
//!   before anything runs.
//! - [`words`]: the list of built-in [`Word`]s and their names.
//! - [`machine`]: [`Machine`], [`State`], [`Effect`], [`Outcome`], the run
//!   loop, and the meaning of every word.
//! - [`glob`]: [`glob_match`] for `SEL` / `UNSEL`.
//! - `encode` (private): the `EJOIN` and `EDICT` encodings.
//!
//! # Replies
//!
//! A successful run replies with whatever `PING` published (each
//! `'<name>':PONG`, in order) followed by the printed top of the stack, if
//! the stack is not empty; a run that leaves an empty stack and published
//! nothing replies `empty`. A failed run replies with what `PING` published
//! before the error and then the error line, `"Kind: message":ERROR`
//! (one line, at most 200 characters). Effects made before an error stay
//! made: nothing is rolled back.
//!
//! ```
//! use bot_lang::{AgentInfo, Effect, Limits, Machine};
//!
//! let info = AgentInfo { name: "web1".into(), version: "1.0".into(), capabilities: vec![] };
//! let mut m = Machine::new(info, Limits::default(), 10.0);
//! assert_eq!(m.run(b"2: 2: ADD").replies, ["4:"]);
//! assert_eq!(m.run(b"PING").replies, ["'web1':PONG"]);
//! let out = m.run(b"'web*': SEL");
//! assert_eq!((out.replies, out.effects), (vec!["empty".to_owned()], vec![Effect::Selected(true)]));
//! assert!(m.state().selected);
//! assert_eq!(m.run(b"SELECTED").replies, ["\"UnknownWord: SELECTED\":ERROR"]);
//! ```
//!
//! # Semantics beyond forth.md
//!
//! - **Lexing** ([`lexer`]): the whole payload is lexed before anything
//!   runs, so a bad literal, an unknown word or an unknown variable runs
//!   nothing. Any unquoted token containing `:` is a number literal (split
//!   at its last `:`); `#` opens a comment only at the start of a token;
//!   variables are lower-case only; tags are at most [`MAX_TAG_LEN`] bytes.
//! - **Numbers** ([`Number`]): integer literals that fit in `i64` are
//!   integers, other literals finite floats; `ADD SUB MUL` on integers are
//!   exact and fall back to a float on overflow; a NaN or infinite result is
//!   `OutOfRange`. Equality is numeric (`1` equals `1.0`).
//! - **Printed form** ([`Value`]'s `Display`): integral numbers below 1e21
//!   print as integers (`4:`), others in shortest round-trip form
//!   (`0.3333333333333333:`), tiny and huge ones as `1e-8:` / `1e300:`;
//!   every printed number and string re-reads as the same value.
//! - **Tags of results**: arithmetic, comparison, counts, `CAT`, `EJOIN`,
//!   `EDICT` give untagged values; booleans are tagged `true`/`false`;
//!   `TYP` tags `type`, `CAP` tags `cap`, `$x` tags `x`; `>NUM`, `>STR`,
//!   `IFT`, copies and `THAW` keep the value's tag. See [`Word`] for every
//!   word.
//! - **Per-message caps** besides [`Limits`]: at most [`MAX_PONGS`] `PING`s
//!   and [`MAX_EFFECTS`] effects, so one message cannot flood `RES` or the
//!   agent's stdout.
//!
//! # Costs
//!
//! Each literal, variable and word executed counts one step (inside `EVAL`
//! too). Words that copy, scan or build strings, and `EVAL` for the text it
//! lexes, additionally count one step per [`BYTES_PER_STEP`] bytes touched,
//! so that [`Limits::max_steps`] bounds the run time even with long strings.

pub mod error;
pub mod glob;
pub mod lexer;
pub mod machine;
pub mod value;
pub mod words;

mod encode;

pub use error::{Error, ErrorKind, MAX_ERROR_LINE_CHARS, MAX_TOKEN_CHARS};
pub use glob::glob_match;
pub use lexer::{Token, Var, tokenize, tokenize_eval};
pub use machine::{Effect, Machine, Outcome, State};
pub use value::{MAX_TAG_LEN, Number, Value, is_valid_tag, parse_number};
pub use words::Word;

/// Interval, in seconds, when the host gives none.
pub const DEFAULT_INTERVAL: f64 = 10.0;
/// Smallest interval `TSSET` accepts, in seconds.
pub const MIN_INTERVAL: f64 = 0.1;
/// Largest interval `TSSET` accepts, in seconds (one day).
pub const MAX_INTERVAL: f64 = 86400.0;

/// String bytes that cost one extra step when a word copies, scans or builds
/// them (see the crate docs, "Costs").
pub const BYTES_PER_STEP: usize = 256;
/// `PING`s per message; the next one is a `Limit` error (no reply flood).
pub const MAX_PONGS: usize = 8;
/// Effects per message; the next one is a `Limit` error (no effect flood).
pub const MAX_EFFECTS: usize = 64;

/// Configurable limits; `Default` gives forth.md's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest payload in bytes (checked before anything else). Default 65536.
    pub max_payload: usize,
    /// Deepest stack; pushing one more value is a `Limit` error. Default 64.
    pub max_stack: usize,
    /// Longest string value in bytes. Default 65536.
    pub max_string: usize,
    /// Deepest `EVAL` nesting. Default 8.
    pub max_eval_depth: usize,
    /// Values stored with `FREEZE`, in total across all names (a name with
    /// no values counts as one). Default 256.
    pub max_stored: usize,
    /// Steps per message, `EVAL`s included (see the crate docs, "Costs").
    /// Default 100 000.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_payload: 65536,
            max_stack: 64,
            max_string: 65536,
            max_eval_depth: 8,
            max_stored: 256,
            max_steps: 100_000,
        }
    }
}

/// Identity of the agent as the language sees it (`PING`, `SEL`, `$name`,
/// `$version`, `$cap`, `CAP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's name: its configured name, else the hostname.
    pub name: String,
    /// The agent's version, pushed by `$version`.
    pub version: String,
    /// The agent's capabilities, pushed joined with `,` by `CAP` and `$cap`.
    pub capabilities: Vec<String>,
}
