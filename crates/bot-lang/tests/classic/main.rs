//! Integration tests of the classic language through the public API
//! (`Machine::run`), one binary with a module per concern:
//!
//! - `words`: every word, happy path and errors;
//! - `commands`: forth.md's command table, printed forms, variables;
//! - `errors`: every error kind and the bounds of the error line;
//! - `hazards`: the ancestor's measured hazards, which must stay fixed;
//! - `props`: property tests (no panic, bounded replies, number round-trip).

mod commands;
mod errors;
mod hazards;
mod props;
mod words;

use bot_lang::{AgentInfo, Effect, Limits, Machine, Outcome};

/// The agent every test runs as: `host`, version `1.2.3`.
pub fn agent() -> Machine {
    agent_with(Limits::default())
}

/// The test agent with other limits.
pub fn agent_with(limits: Limits) -> Machine {
    Machine::new(
        AgentInfo {
            name: "host".into(),
            version: "1.2.3".into(),
            capabilities: vec!["exec".into(), "metrics".into()],
        },
        limits,
        10.0,
    )
}

/// Replies of `src` on a fresh agent.
pub fn run(src: &str) -> Vec<String> {
    agent().run(src.as_bytes()).replies
}

/// The single reply of `src` on a fresh agent.
#[track_caller]
pub fn one(src: &str) -> String {
    let replies = run(src);
    assert_eq!(replies.len(), 1, "{src:?} gave {replies:?}");
    replies.into_iter().next().unwrap_or_default()
}

/// The error text (`Kind: message`) of `src`, which must fail with one reply.
#[track_caller]
pub fn err(src: &str) -> String {
    err_on(&mut agent(), src)
}

/// The error text of `src` on the given machine.
#[track_caller]
pub fn err_on(m: &mut Machine, src: &str) -> String {
    let out = m.run(src.as_bytes());
    let last = out.replies.last().cloned().unwrap_or_default();
    let text = last
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix("\":ERROR"))
        .unwrap_or_else(|| panic!("{src:?} did not fail: {:?}", out.replies));
    text.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// The kind (first word) of the error of `src`.
#[track_caller]
pub fn kind(src: &str) -> String {
    let e = err(src);
    e.split(':').next().unwrap_or_default().to_owned()
}

/// Runs `src` and returns the outcome.
pub fn outcome(m: &mut Machine, src: &str) -> Outcome {
    m.run(src.as_bytes())
}

/// Shorthand for the effect list of a run.
pub fn effects(m: &mut Machine, src: &str) -> Vec<Effect> {
    m.run(src.as_bytes()).effects
}
