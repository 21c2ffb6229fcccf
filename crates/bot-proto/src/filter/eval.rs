//! Evaluating a parsed filter against a [`Target`]: fact lookup along dotted
//! paths, text forms, numeric and text comparison, arrays, missing facts.
//! The rules are in the [module docs](super#meaning).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::{Cmp, Node, Num, Op, Operand, Target};

/// How deep arrays inside arrays are searched.
const MAX_ARRAY_DEPTH: usize = 8;

impl Node {
    pub(super) fn eval(&self, t: &dyn Target) -> bool {
        match self {
            Node::All => true,
            Node::Tag(tag) => t.has_tag(tag),
            Node::Name(glob) => bot_lang::glob_match(glob, t.name()),
            Node::Cmp(c) => c.eval(t),
            Node::Not(inner) => !inner.eval(t),
            Node::And(parts) => parts.iter().all(|p| p.eval(t)),
            Node::Or(parts) => parts.iter().any(|p| p.eval(t)),
        }
    }

    pub(super) fn always(&self) -> bool {
        match self {
            Node::All => true,
            Node::And(parts) => parts.iter().all(Node::always),
            Node::Or(parts) => parts.iter().any(Node::always),
            _ => false,
        }
    }
}

impl Cmp {
    fn eval(&self, t: &dyn Target) -> bool {
        let Some(fact) = lookup(t, &self.key) else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Ne => !any(fact, Op::Eq, &self.value, 0),
            op => any(fact, op, &self.value, 0),
        }
    }
}

/// The fact `key`: the whole key if it is a fact, else the longest dotted
/// prefix that is one, walked along the rest.
fn lookup<'t>(t: &'t dyn Target, key: &str) -> Option<&'t Value> {
    if let Some(v) = t.fact(key) {
        return Some(v);
    }
    let mut end = key.len();
    while let Some(dot) = key[..end].rfind('.') {
        if let Some(base) = t.fact(&key[..dot]) {
            return walk(base, &key[dot + 1..]);
        }
        end = dot;
    }
    None
}

/// Follows a dotted `path` into objects (by key) and arrays (by index).
fn walk<'v>(mut v: &'v Value, path: &str) -> Option<&'v Value> {
    for segment in path.split('.') {
        v = match v {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Whether `v`, or any element if it is an array, satisfies `op rhs`.
fn any(v: &Value, op: Op, rhs: &Operand, depth: usize) -> bool {
    match v {
        Value::Array(items) => {
            depth < MAX_ARRAY_DEPTH && items.iter().any(|item| any(item, op, rhs, depth + 1))
        }
        Value::Null | Value::Object(_) => false,
        scalar => scalar_matches(scalar, op, rhs),
    }
}

/// The text form of a scalar: a string itself, a number in JSON form, a
/// boolean `true` / `false`.
fn text_form(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        other => Cow::Owned(other.to_string()),
    }
}

/// A fact as a number, when it is one (or a string written as one).
fn number_form(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| Num::Int(i128::from(i)))
            .or_else(|| n.as_u64().map(|u| Num::Int(i128::from(u))))
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(Num::Float)),
        Value::String(s) => super::parser::parse_number(s),
        _ => None,
    }
}

fn compare_numbers(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    }
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

fn scalar_matches(v: &Value, op: Op, rhs: &Operand) -> bool {
    let text = text_form(v);
    let ordering = match rhs {
        Operand::Regex(re) => return op == Op::Match && re.0.is_match(&text),
        Operand::Glob(glob) if op == Op::Eq => return bot_lang::glob_match(glob, &text),
        Operand::Number(literal, n) => match number_form(v) {
            Some(fact) => compare_numbers(fact, *n),
            None => Some(text.as_ref().cmp(literal.as_str())),
        },
        Operand::Glob(s) | Operand::Text(s) => Some(text.as_ref().cmp(s.as_str())),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        // `!=` is evaluated as `not =` by the caller; `=~` always has a regex.
        Op::Ne | Op::Match => false,
    }
}
