//! The interpreter: [`Machine`] keeps the agent's persistent [`State`] and
//! runs one payload at a time on a fresh stack, producing an [`Outcome`].
//!
//! This file holds the public types, the run loop (an explicit frame stack
//! for `EVAL`, so nesting never recurses on the Rust stack) and the checked
//! stack primitives every word goes through: `push` (depth and string-size
//! limits, byte costs), `need` (underflow), `step` (the step budget). The
//! meaning of each word is in `machine/ops.rs`.

mod ops;

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind, Result};
use crate::lexer::{Token, Var, tokenize};
use crate::value::{Number, Value};
use crate::words::Word;
use crate::{AgentInfo, BYTES_PER_STEP, DEFAULT_INTERVAL, Limits, MAX_INTERVAL, MIN_INTERVAL};

/// Persistent state of the agent that the language may change. Everything
/// else (the stack, the step count, what `PING` published) lives for one
/// message only.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Whether the agent is selected (publishes samples on `DATA/<name>`).
    pub selected: bool,
    /// The measuring interval in seconds, within
    /// [`MIN_INTERVAL`]`..=`[`MAX_INTERVAL`].
    pub interval: f64,
    /// Values stored with `FREEZE`, by name.
    frozen: BTreeMap<String, Vec<Value>>,
    /// What `frozen` counts against [`Limits::max_stored`].
    stored: usize,
}

impl State {
    fn new(interval: f64) -> State {
        State {
            selected: false,
            interval,
            frozen: BTreeMap::new(),
            stored: 0,
        }
    }

    /// The values stored under `name` with `FREEZE`, bottom-to-top.
    pub fn frozen(&self, name: &str) -> Option<&[Value]> {
        self.frozen.get(name).map(Vec::as_slice)
    }

    /// The names under which values are stored.
    pub fn frozen_names(&self) -> impl Iterator<Item = &str> {
        self.frozen.keys().map(String::as_str)
    }

    /// How much of [`Limits::max_stored`] is in use (a name with no values
    /// counts as one).
    pub fn stored_count(&self) -> usize {
        self.stored
    }
}

/// A side effect the host (the agent) must carry out, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Print this line on the agent's stdout (`_TEST` gives `Print("Yo")`).
    Print(String),
    /// The agent became selected (`true`, by `SEL`) or unselected (`false`,
    /// by `UNSEL`): start or stop measuring at once. Emitted on every
    /// matching `SEL`/`UNSEL`, even when the state did not change.
    Selected(bool),
    /// The interval became this many seconds (`TSSET`): apply at once.
    Interval(f64),
    /// `LUN`: unselected, default interval, stored values cleared.
    Reset,
}

/// The result of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Payloads to publish on `RES`, in order (see the crate docs, "Replies").
    pub replies: Vec<String>,
    /// Effects to carry out, in order. They are already applied to
    /// [`Machine::state`].
    pub effects: Vec<Effect>,
}

impl Outcome {
    fn error(e: &Error) -> Outcome {
        Outcome {
            replies: vec![e.reply()],
            effects: Vec::new(),
        }
    }
}

/// The interpreter with the agent's persistent state.
#[derive(Debug, Clone)]
pub struct Machine {
    info: AgentInfo,
    limits: Limits,
    default_interval: f64,
    state: State,
}

/// Clamps an interval into range; NaN gives `fallback`.
fn clamp_interval(secs: f64, fallback: f64) -> f64 {
    if secs.is_nan() {
        fallback
    } else {
        secs.clamp(MIN_INTERVAL, MAX_INTERVAL)
    }
}

impl Machine {
    /// A machine for this agent, unselected, at `default_interval` (clamped
    /// into [`MIN_INTERVAL`]`..=`[`MAX_INTERVAL`]; NaN gives
    /// [`DEFAULT_INTERVAL`]). `LUN` returns to this interval.
    pub fn new(info: AgentInfo, limits: Limits, default_interval: f64) -> Machine {
        let default_interval = clamp_interval(default_interval, DEFAULT_INTERVAL);
        Machine {
            info,
            limits,
            default_interval,
            state: State::new(default_interval),
        }
    }

    /// The persistent state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The agent identity given to [`Machine::new`].
    pub fn info(&self) -> &AgentInfo {
        &self.info
    }

    /// The limits given to [`Machine::new`].
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Host-driven interval change (e.g. the overrun auto-raise), clamped
    /// into range; NaN is ignored. Produces no [`Effect`].
    pub fn set_interval(&mut self, secs: f64) {
        self.state.interval = clamp_interval(secs, self.state.interval);
    }

    /// Host-driven selection change (the server's live config turning
    /// measuring on or off). Produces no [`Effect`].
    pub fn set_selected(&mut self, on: bool) {
        self.state.selected = on;
    }

    /// Runs one MQTT payload. Never panics; bounded time and memory for any
    /// input.
    ///
    /// Checks, in order: size (`TooLarge`, before anything else), emptiness
    /// (`Empty`), UTF-8 (`Encoding`), then lexes the whole program (so a
    /// lexical error, unknown word or unknown variable runs nothing), then
    /// runs it on a fresh stack, stopping at the first error.
    pub fn run(&mut self, payload: &[u8]) -> Outcome {
        let max = self.limits.max_payload;
        if payload.len() > max {
            return Outcome::error(&Error::new(
                ErrorKind::TooLarge,
                format!("payload is {} bytes, limit {max}", payload.len()),
            ));
        }
        if payload.is_empty() {
            return Outcome::error(&Error::new(ErrorKind::Empty, "payload is empty"));
        }
        let Ok(src) = std::str::from_utf8(payload) else {
            return Outcome::error(&Error::new(
                ErrorKind::Encoding,
                "payload is not valid UTF-8",
            ));
        };
        let tokens = match tokenize(src) {
            Ok(tokens) => tokens,
            Err(e) => return Outcome::error(&e),
        };
        let mut exec = Exec {
            info: &self.info,
            limits: &self.limits,
            default_interval: self.default_interval,
            state: &mut self.state,
            stack: Vec::new(),
            frames: Vec::new(),
            steps: 0,
            pongs: Vec::new(),
            effects: Vec::new(),
        };
        let result = exec.run(tokens);
        let mut replies = exec.pongs;
        match result {
            Ok(()) => match exec.stack.last() {
                Some(top) => replies.push(top.to_string()),
                None if replies.is_empty() => replies.push("empty".to_owned()),
                None => {}
            },
            Err(e) => replies.push(e.reply()),
        }
        Outcome {
            replies,
            effects: exec.effects,
        }
    }
}

/// One message being run.
struct Exec<'m> {
    info: &'m AgentInfo,
    limits: &'m Limits,
    default_interval: f64,
    state: &'m mut State,
    stack: Vec<Value>,
    /// The program, then one frame per `EVAL` being run.
    frames: Vec<std::vec::IntoIter<Token>>,
    steps: u64,
    pongs: Vec<String>,
    effects: Vec<Effect>,
}

impl Exec<'_> {
    fn run(&mut self, tokens: Vec<Token>) -> Result<()> {
        self.frames.push(tokens.into_iter());
        while let Some(frame) = self.frames.last_mut() {
            let Some(token) = frame.next() else {
                self.frames.pop();
                continue;
            };
            self.step(1)?;
            match token {
                Token::Literal(v) => self.push(v)?,
                Token::Var(var) => {
                    let v = self.var(var);
                    self.push(v)?;
                }
                Token::Word(w) => {
                    if let Some(tokens) = self.word(w)? {
                        self.frames.push(tokens.into_iter());
                    }
                }
            }
        }
        Ok(())
    }

    fn var(&self, var: Var) -> Value {
        let v = match var {
            Var::Name => Value::str(self.info.name.clone()),
            Var::Interval | Var::TimeSlice => Value::num(self.state.interval),
            Var::Cap => Value::str(self.info.capabilities.join(",")),
            Var::Version => Value::str(self.info.version.clone()),
        };
        v.with_tag(var.name())
    }

    /// Counts `n` steps against the budget.
    fn step(&mut self, n: u64) -> Result<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("{} steps exceeded", self.limits.max_steps),
            ));
        }
        Ok(())
    }

    /// Counts the cost of touching `bytes` bytes of string.
    fn charge(&mut self, bytes: usize) -> Result<()> {
        self.step((bytes / BYTES_PER_STEP) as u64)
    }

    /// Errors if a string of `len` bytes would exceed the string limit.
    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.limits.max_string {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "string of {len} bytes exceeds limit {}",
                    self.limits.max_string
                ),
            ));
        }
        Ok(())
    }

    /// Errors if `extra` more values would exceed the stack limit.
    fn check_room(&self, extra: usize) -> Result<()> {
        if self.stack.len().saturating_add(extra) > self.limits.max_stack {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("stack depth {} reached", self.limits.max_stack),
            ));
        }
        Ok(())
    }

    /// Pushes with the depth and string-size checks, charging for the bytes.
    fn push(&mut self, v: Value) -> Result<()> {
        self.check_room(1)?;
        self.check_len(v.str_len())?;
        self.charge(v.str_len())?;
        self.stack.push(v);
        Ok(())
    }

    /// Errors unless the stack holds at least `n` values.
    fn need(&self, w: Word, n: usize) -> Result<()> {
        let have = self.stack.len();
        if have < n {
            let values = if n == 1 { "value" } else { "values" };
            return Err(Error::new(
                ErrorKind::StackUnderflow,
                format!("{w} needs {n} {values}, stack has {have}"),
            ));
        }
        Ok(())
    }

    fn pop(&mut self, w: Word) -> Result<Value> {
        self.need(w, 1)?;
        self.stack
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::StackUnderflow, w.name()))
    }

    /// Pops a number; `expected` names what the word wants in the message.
    fn pop_num(&mut self, w: Word, expected: &str) -> Result<(Number, String)> {
        match self.pop(w)? {
            Value::Num(n, tag) => Ok((n, tag)),
            v => Err(type_error(w, expected, &v)),
        }
    }

    /// Pops a string; `expected` names what the word wants in the message.
    fn pop_str(&mut self, w: Word, expected: &str) -> Result<(String, String)> {
        match self.pop(w)? {
            Value::Str(s, tag) => Ok((s, tag)),
            v => Err(type_error(w, expected, &v)),
        }
    }

    /// Pops a count: a whole number ≥ `min` (an integral float is
    /// accepted). Huge counts saturate; callers compare them with the stack
    /// depth before doing anything, so they never allocate.
    fn pop_count(&mut self, w: Word, min: u8) -> Result<usize> {
        let (n, _) = self.pop_num(w, "a number")?;
        match n.as_i64() {
            Some(i) if i >= i64::from(min) => Ok(usize::try_from(i).unwrap_or(usize::MAX)),
            _ => Err(Error::new(
                ErrorKind::OutOfRange,
                format!("{w} needs a whole number of at least {min}, got {n}"),
            )),
        }
    }

    fn effect(&mut self, e: Effect) -> Result<()> {
        if self.effects.len() >= crate::MAX_EFFECTS {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("{} effects per message", crate::MAX_EFFECTS),
            ));
        }
        self.effects.push(e);
        Ok(())
    }
}

fn type_error(w: Word, expected: &str, got: &Value) -> Error {
    Error::new(
        ErrorKind::Type,
        format!("{w} needs {expected}, got {}", got.type_name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine::new(
            AgentInfo {
                name: "host".into(),
                version: "9".into(),
                capabilities: vec!["a".into(), "b".into()],
            },
            Limits::default(),
            DEFAULT_INTERVAL,
        )
    }

    #[test]
    fn interval_is_clamped() {
        let mut m = machine();
        m.set_interval(0.0);
        assert_eq!(m.state().interval, MIN_INTERVAL);
        m.set_interval(1e9);
        assert_eq!(m.state().interval, MAX_INTERVAL);
        m.set_interval(f64::NAN);
        assert_eq!(m.state().interval, MAX_INTERVAL);
        m.set_interval(30.0);
        assert_eq!(m.state().interval, 30.0);
        let m = Machine::new(m.info().clone(), Limits::default(), f64::NAN);
        assert_eq!(m.state().interval, DEFAULT_INTERVAL);
        let m = Machine::new(m.info().clone(), Limits::default(), -5.0);
        assert_eq!(m.state().interval, MIN_INTERVAL);
    }

    #[test]
    fn machine_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Machine>();
        assert_send_sync::<Outcome>();
    }

    #[test]
    fn default_limits_are_forth_md() {
        let l = Limits::default();
        assert_eq!(
            (l.max_payload, l.max_stack, l.max_string),
            (64 * 1024, 64, 64 * 1024)
        );
        assert_eq!(
            (l.max_eval_depth, l.max_stored, l.max_steps),
            (8, 256, 100_000)
        );
    }

    #[test]
    fn fresh_state() {
        let m = machine();
        assert!(!m.state().selected);
        assert_eq!(m.state().interval, DEFAULT_INTERVAL);
        assert_eq!(m.state().stored_count(), 0);
        assert_eq!(m.state().frozen_names().count(), 0);
        assert_eq!(m.limits(), &Limits::default());
        assert_eq!(m.info().name, "host");
    }
}
