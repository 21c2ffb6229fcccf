//! What every built-in word does. Stack effects are `( before -- after )`,
//! top on the right. Unless stated, results are untagged; booleans are
//! `1:true` / `0:false`.
//!
//! Every word first checks the depth it needs (`StackUnderflow`), then the
//! types (`Type`), then ranges, and checks size limits *before* building
//! anything, so no input can make a word allocate more than the limits
//! allow.

use crate::encode::{edict, ejoin};
use crate::error::{Error, ErrorKind, Result, cut};
use crate::glob::glob_match;
use crate::lexer::{Token, tokenize_eval};
use crate::value::{MAX_TAG_LEN, Number, Value, is_valid_tag, parse_number};
use crate::words::Word;
use crate::{MAX_INTERVAL, MAX_PONGS, MIN_INTERVAL};

use super::{Effect, Exec, type_error};

impl Exec<'_> {
    /// Runs one word. `Some(tokens)` asks the run loop to run them next
    /// (`EVAL`).
    pub(super) fn word(&mut self, w: Word) -> Result<Option<Vec<Token>>> {
        match w {
            Word::Add | Word::Sub | Word::Mul | Word::Div | Word::Mod | Word::TrueDiv => {
                self.arith(w)?
            }
            Word::Cmp => self.cmp()?,
            Word::Band | Word::Bor | Word::Bxor => self.bitwise(w)?,
            Word::Not => {
                let v = self.pop(w)?;
                self.push(Value::bool(!v.is_truthy()))?;
            }
            Word::And | Word::Or => {
                self.need(w, 2)?;
                let b = self.pop(w)?.is_truthy();
                let a = self.pop(w)?.is_truthy();
                let r = if w == Word::And { a && b } else { a || b };
                self.push(Value::bool(r))?;
            }
            Word::Ift => {
                // ( t f c -- c ? t : f )
                self.need(w, 3)?;
                let c = self.pop(w)?;
                let f = self.pop(w)?;
                let t = self.pop(w)?;
                self.push(if c.is_truthy() { t } else { f })?;
            }
            Word::Cat => {
                self.need(w, 2)?;
                let (b, _) = self.pop_str(w, "strings")?;
                let (mut a, _) = self.pop_str(w, "strings")?;
                self.check_len(a.len().saturating_add(b.len()))?;
                a.push_str(&b);
                self.push(Value::str(a))?;
            }
            Word::In => {
                // ( hay needle -- bool ): substring test.
                self.need(w, 2)?;
                let (needle, _) = self.pop_str(w, "strings")?;
                let (hay, _) = self.pop_str(w, "strings")?;
                self.charge(hay.len() + needle.len())?;
                self.push(Value::bool(hay.contains(needle.as_str())))?;
            }
            Word::StrEq => {
                // ( a b -- bool ): equal text forms (a number's text is >STR's).
                self.need(w, 2)?;
                let b = self.pop(w)?;
                let a = self.pop(w)?;
                self.charge(a.str_len().min(b.str_len()))?;
                self.push(Value::bool(a.text() == b.text()))?;
            }
            Word::ToNum => {
                // ( s -- n ): the tag is kept; a number stays as it is.
                match self.pop(w)? {
                    v @ Value::Num(..) => self.push(v)?,
                    Value::Str(s, tag) => {
                        self.charge(s.len())?;
                        let n = parse_number(s.trim()).ok_or_else(|| {
                            Error::new(
                                ErrorKind::BadLiteral,
                                format!(">NUM cannot read {}", Value::str(cut(&s)).text_quoted()),
                            )
                        })?;
                        self.push(Value::Num(n, tag))?;
                    }
                }
            }
            Word::ToStr => {
                // ( n -- s ): the tag is kept; a string stays as it is.
                match self.pop(w)? {
                    Value::Num(n, tag) => self.push(Value::Str(n.to_string(), tag))?,
                    v @ Value::Str(..) => self.push(v)?,
                }
            }
            Word::Typ => {
                let v = self.pop(w)?;
                self.push(Value::str(v.type_name()).with_tag("type"))?;
            }
            Word::Tag => {
                // ( x name -- x tagged name )
                self.need(w, 2)?;
                let (name, _) = self.pop_str(w, "a string name")?;
                let v = self.pop(w)?;
                if !is_valid_tag(&name) {
                    return Err(Error::new(
                        ErrorKind::BadLiteral,
                        format!(
                            "TAG needs [a-z_][a-z0-9_]* of at most {MAX_TAG_LEN} bytes, got {}",
                            cut(&name)
                        ),
                    ));
                }
                self.push(v.with_tag(name))?;
            }
            Word::Dup => {
                self.need(w, 1)?;
                let v = self.stack[self.stack.len() - 1].clone();
                self.push(v)?;
            }
            Word::Drop => {
                self.pop(w)?;
            }
            Word::Swap => {
                self.need(w, 2)?;
                let n = self.stack.len();
                self.stack.swap(n - 1, n - 2);
            }
            Word::Over => {
                self.need(w, 2)?;
                let v = self.stack[self.stack.len() - 2].clone();
                self.push(v)?;
            }
            Word::Rot => {
                // ( xn … x1 n -- xn-1 … x1 xn ): `3 ROT` is Forth's ROT.
                let n = self.pop_count(w, 1)?;
                self.need(w, n)?;
                let v = self.stack.remove(self.stack.len() - n);
                self.stack.push(v);
            }
            Word::NDup => {
                // ( x1 … xn n -- x1 … xn x1 … xn )
                let n = self.pop_count(w, 0)?;
                self.need(w, n)?;
                self.check_room(n)?;
                let start = self.stack.len() - n;
                for i in start..start + n {
                    let v = self.stack[i].clone();
                    self.push(v)?;
                }
            }
            Word::Top => {
                let v = self.pop(w)?;
                self.stack.clear();
                self.push(v)?;
            }
            Word::Len => {
                let n = i64::try_from(self.stack.len()).unwrap_or(i64::MAX);
                self.push(Value::num(n))?;
            }
            Word::Nop => {}
            Word::Get => {
                // ( key -- copy ): the value nearest the top tagged `key`.
                let (key, _) = self.pop_str(w, "a string key")?;
                let found = self.stack.iter().rev().find(|v| v.tag() == key).cloned();
                match found {
                    Some(v) => self.push(v)?,
                    None => {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!("no value tagged {}", cut(&key)),
                        ));
                    }
                }
            }
            Word::Match | Word::MTag => self.matching(w)?,
            Word::Freeze => self.freeze()?,
            Word::Thaw => {
                let (name, _) = self.pop_str(w, "a string name")?;
                let Some(values) = self.state.frozen.get(&name) else {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("nothing frozen as {}", cut(&name)),
                    ));
                };
                let values = values.clone();
                self.check_room(values.len())?;
                for v in values {
                    self.push(v)?;
                }
            }
            Word::Eval => {
                let (src, _) = self.pop_str(w, "a string")?;
                // frames = the program + the EVALs running now.
                if self.frames.len() > self.limits.max_eval_depth {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!("EVAL nesting {} reached", self.limits.max_eval_depth),
                    ));
                }
                self.charge(src.len())?;
                return tokenize_eval(&src).map(Some);
            }
            Word::EJoin | Word::EDict => {
                let values = std::mem::take(&mut self.stack);
                let max = self.limits.max_string;
                let s = if w == Word::EJoin {
                    ejoin(&values, max)?
                } else {
                    edict(&values, max)?
                };
                self.push(Value::str(s))?;
            }
            Word::Cap => {
                let caps = &self.info.capabilities;
                let len = caps.iter().map(String::len).sum::<usize>() + caps.len();
                self.check_len(len)?;
                let v = Value::str(caps.join(",")).with_tag("cap");
                self.push(v)?;
            }
            Word::Ping => {
                if self.pongs.len() >= MAX_PONGS {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!("{MAX_PONGS} PINGs per message"),
                    ));
                }
                self.pongs.push(format!("'{}':PONG", self.info.name));
            }
            Word::Sel | Word::Unsel => {
                let (pattern, _) = self.pop_str(w, "a string name")?;
                // Glob matching is at worst pattern × name.
                let name_len = self.info.name.len() + 1;
                self.charge(pattern.len().saturating_mul(name_len))?;
                if glob_match(&pattern, &self.info.name) {
                    let selected = w == Word::Sel;
                    self.state.selected = selected;
                    self.effect(Effect::Selected(selected))?;
                }
            }
            Word::TsSet => {
                let (n, _) = self.pop_num(w, "a number")?;
                let secs = n.as_f64();
                if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&secs) {
                    return Err(Error::new(
                        ErrorKind::OutOfRange,
                        format!(
                            "TSSET needs {}..{} seconds, got {n}",
                            Number::Float(MIN_INTERVAL),
                            Number::Float(MAX_INTERVAL)
                        ),
                    ));
                }
                self.state.interval = secs;
                self.effect(Effect::Interval(secs))?;
            }
            Word::Lun => {
                self.state.selected = false;
                self.state.interval = self.default_interval;
                self.state.frozen.clear();
                self.state.stored = 0;
                self.effect(Effect::Reset)?;
            }
            Word::Test => self.effect(Effect::Print("Yo".to_owned()))?,
        }
        Ok(None)
    }

    /// `ADD SUB MUL DIV MOD TRUEDIV ( a b -- a∘b )`.
    fn arith(&mut self, w: Word) -> Result<()> {
        self.need(w, 2)?;
        let (b, _) = self.pop_num(w, "numbers")?;
        let (a, _) = self.pop_num(w, "numbers")?;
        let r = match w {
            Word::Add => int_or_float(a, b, i64::checked_add, |x, y| x + y),
            Word::Sub => int_or_float(a, b, i64::checked_sub, |x, y| x - y),
            Word::Mul => int_or_float(a, b, i64::checked_mul, |x, y| x * y),
            _ if b.is_zero() => {
                return Err(Error::new(
                    ErrorKind::DivisionByZero,
                    format!("{a} {b} {w}"),
                ));
            }
            Word::Div => div(a, b),
            Word::Mod => floored_mod(a, b),
            _ => floor_div(a, b),
        };
        if !r.is_finite() {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!("{a} {b} {w} is not a finite number"),
            ));
        }
        self.push(Value::num(r))
    }

    /// `CMP ( a b -- -1/0/1 )`: numbers numerically, strings by code point.
    fn cmp(&mut self) -> Result<()> {
        let w = Word::Cmp;
        self.need(w, 2)?;
        let b = self.pop(w)?;
        let a = self.pop(w)?;
        let ord = match (&a, &b) {
            (Value::Num(x, _), Value::Num(y, _)) => x.compare(*y),
            (Value::Str(x, _), Value::Str(y, _)) => {
                self.charge(x.len().min(y.len()))?;
                x.cmp(y)
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Type,
                    format!(
                        "CMP needs two numbers or two strings, got {} and {}",
                        a.type_name(),
                        b.type_name()
                    ),
                ));
            }
        };
        self.push(Value::num(ord as i64))
    }

    /// `BAND BOR BXOR ( a b -- a∘b )` on whole numbers within `i64`.
    fn bitwise(&mut self, w: Word) -> Result<()> {
        self.need(w, 2)?;
        let (b, _) = self.pop_num(w, "numbers")?;
        let (a, _) = self.pop_num(w, "numbers")?;
        let int = |n: Number| {
            n.as_i64().ok_or_else(|| {
                Error::new(
                    ErrorKind::OutOfRange,
                    format!("{w} needs whole numbers within 64 bits, got {n}"),
                )
            })
        };
        let (x, y) = (int(a)?, int(b)?);
        let r = match w {
            Word::Band => x & y,
            Word::Bor => x | y,
            _ => x ^ y,
        };
        self.push(Value::num(r))
    }

    /// `items… ref n MATCH` and `items… tag n MTAG ( -- count )`: pops `n`,
    /// the reference, then `n` items; counts the items equal to the
    /// reference in type and value (`MATCH`) or whose tag is the string
    /// reference (`MTAG`).
    fn matching(&mut self, w: Word) -> Result<()> {
        self.need(w, 2)?;
        let n = self.pop_count(w, 0)?;
        let reference = self.pop(w)?;
        let tag = match (&reference, w) {
            (Value::Str(s, _), Word::MTag) => Some(s.clone()),
            (v, Word::MTag) => return Err(type_error(w, "a string tag", v)),
            _ => None,
        };
        self.need(w, n)?;
        let items = self.stack.split_off(self.stack.len() - n);
        let count = match tag {
            Some(tag) => items.iter().filter(|v| v.tag() == tag).count(),
            None => {
                let bytes: usize = items
                    .iter()
                    .map(|v| v.str_len().min(reference.str_len()))
                    .sum();
                self.charge(bytes)?;
                items.iter().filter(|v| v.same_value(&reference)).count()
            }
        };
        self.push(Value::num(i64::try_from(count).unwrap_or(i64::MAX)))
    }

    /// `n name FREEZE ( x1 … xn n name -- x1 … xn )`: stores copies of the
    /// top `n` values under `name` (1..=64 bytes), replacing what was there.
    fn freeze(&mut self) -> Result<()> {
        let w = Word::Freeze;
        self.need(w, 2)?;
        let (name, _) = self.pop_str(w, "a string name")?;
        let n = self.pop_count(w, 0)?;
        if name.is_empty() || name.len() > MAX_TAG_LEN {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "FREEZE needs a name of 1..{MAX_TAG_LEN} bytes, got {} bytes",
                    name.len()
                ),
            ));
        }
        self.need(w, n)?;
        let cost = n.max(1);
        let old = self.state.frozen.get(&name).map_or(0, |v| v.len().max(1));
        let total = self.state.stored - old + cost;
        if total > self.limits.max_stored {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("stored values {} reached", self.limits.max_stored),
            ));
        }
        let values = self.stack[self.stack.len() - n..].to_vec();
        self.charge(values.iter().map(Value::str_len).sum())?;
        self.state.frozen.insert(name, values);
        self.state.stored = total;
        Ok(())
    }
}

/// Exact integer result when both are integers and it fits, else `f64`.
fn int_or_float(
    a: Number,
    b: Number,
    int: fn(i64, i64) -> Option<i64>,
    float: fn(f64, f64) -> f64,
) -> Number {
    if let (Number::Int(x), Number::Int(y)) = (a, b)
        && let Some(r) = int(x, y)
    {
        return Number::Int(r);
    }
    Number::Float(float(a.as_f64(), b.as_f64()))
}

/// True division; integer when both are integers and it is exact. `b != 0`.
fn div(a: Number, b: Number) -> Number {
    if let (Number::Int(x), Number::Int(y)) = (a, b)
        && x.checked_rem(y) == Some(0)
        && let Some(q) = x.checked_div(y)
    {
        return Number::Int(q);
    }
    Number::Float(a.as_f64() / b.as_f64())
}

/// Floored modulo: the result has the sign of the divisor. `b != 0`.
fn floored_mod(a: Number, b: Number) -> Number {
    if let (Number::Int(x), Number::Int(y)) = (a, b) {
        let r = x.wrapping_rem(y);
        // |r| < |y| and the signs differ, so `r + y` cannot overflow.
        return Number::Int(if r != 0 && (r < 0) != (y < 0) {
            r + y
        } else {
            r
        });
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    let r = x % y;
    Number::Float(if r != 0.0 && (r < 0.0) != (y < 0.0) {
        r + y
    } else {
        r
    })
}

/// Floor division (Python's `//`). `b != 0`.
fn floor_div(a: Number, b: Number) -> Number {
    if let (Number::Int(x), Number::Int(y)) = (a, b)
        && let Some(q) = x.checked_div(y)
    {
        // No overflow here: q == i64::MIN only when the division is exact.
        let inexact = x % y != 0;
        return Number::Int(if inexact && (x < 0) != (y < 0) {
            q - 1
        } else {
            q
        });
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    // CPython's float floor division, accurate where (x / y).floor() is not.
    let m = x % y;
    let mut d = (x - m) / y;
    if m != 0.0 && (y < 0.0) != (m < 0.0) {
        d -= 1.0;
    }
    if d == 0.0 {
        return Number::Float(0.0);
    }
    let mut f = d.floor();
    if d - f > 0.5 {
        f += 1.0;
    }
    Number::Float(f)
}
