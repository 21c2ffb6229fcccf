//! Fuzz target `classic`: feeds arbitrary bytes to `Machine::run`, twice on
//! the same machine (so state left by the first input meets the second), and
//! checks the invariants the agent relies on: no panic, at least one reply,
//! replies bounded in number, error lines one line of at most 200 characters,
//! the interval in range and the stored values within the limit.

#![no_main]

use bot_lang::{
    AgentInfo, Limits, MAX_EFFECTS, MAX_ERROR_LINE_CHARS, MAX_INTERVAL, MAX_PONGS, MAX_TAG_LEN,
    MIN_INTERVAL, Machine, Outcome,
};
use libfuzzer_sys::fuzz_target;

fn check(m: &Machine, out: &Outcome) {
    let limits = m.limits();
    assert!(!out.replies.is_empty());
    assert!(out.replies.len() <= MAX_PONGS + 1);
    assert!(out.effects.len() <= MAX_EFFECTS);
    for line in &out.replies {
        if line.ends_with(":ERROR") {
            assert!(line.chars().count() <= MAX_ERROR_LINE_CHARS, "{line:?}");
            assert!(!line.chars().any(char::is_control), "{line:?}");
        } else {
            assert!(line.len() <= 2 * limits.max_string + MAX_TAG_LEN + 4);
        }
    }
    let state = m.state();
    assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&state.interval));
    assert!(state.stored_count() <= limits.max_stored);
}

fuzz_target!(|data: &[u8]| {
    let info = AgentInfo {
        name: "fuzz-host".into(),
        version: "0.0.0".into(),
        capabilities: vec!["exec".into(), "metrics".into()],
    };
    let mut m = Machine::new(info, Limits::default(), 10.0);
    // Split the input at the first NUL: two messages on one machine.
    let (first, second) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for payload in [first, second] {
        let out = m.run(payload);
        check(&m, &out);
    }
});
