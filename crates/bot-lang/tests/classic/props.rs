//! Property tests: any input runs without panic and with bounded replies;
//! printed numbers and strings re-read as the same value.

use proptest::prelude::*;

use crate::{agent, agent_with};
use bot_lang::{
    Limits, MAX_EFFECTS, MAX_ERROR_LINE_CHARS, MAX_INTERVAL, MAX_PONGS, MAX_TAG_LEN, MIN_INTERVAL,
    Machine, Number, Outcome, Token, Value, Word, glob_match, tokenize,
};

/// Checks every invariant of an outcome and of the machine after it.
fn check(m: &Machine, out: &Outcome) {
    let limits = m.limits();
    assert!(!out.replies.is_empty());
    assert!(
        out.replies.len() <= MAX_PONGS + 1,
        "{} replies",
        out.replies.len()
    );
    assert!(out.effects.len() <= MAX_EFFECTS);
    for (i, line) in out.replies.iter().enumerate() {
        let last = i + 1 == out.replies.len();
        if line.ends_with(":ERROR") {
            assert!(last, "error not last: {:?}", out.replies);
            assert!(line.chars().count() <= MAX_ERROR_LINE_CHARS, "{line:?}");
            assert!(!line.chars().any(char::is_control), "{line:?}");
        } else if line == "'host':PONG" {
        } else {
            assert!(last, "value not last: {:?}", out.replies);
            // Worst case: every byte of the string escaped, plus tag.
            assert!(
                line.len() <= 2 * limits.max_string + MAX_TAG_LEN + 4,
                "{}",
                line.len()
            );
        }
    }
    let state = m.state();
    assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&state.interval));
    assert!(state.stored_count() <= limits.max_stored);
}

/// A token users (or attackers) could type: words in any case, literals,
/// variables, small programs for EVAL, and junk.
fn token() -> impl Strategy<Value = String> {
    let names: Vec<&'static str> = Word::ALL.iter().map(|w| w.name()).collect();
    let word = (prop::sample::select(names), any::<u8>()).prop_map(|(n, bits)| {
        n.chars()
            .enumerate()
            .map(|(i, c)| {
                if bits >> (i % 8) & 1 == 1 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect::<String>()
    });
    let tag = prop_oneof![Just(String::new()), "[a-z_][a-z0-9_]{0,4}"];
    let small = (-3i64..70, tag.clone()).prop_map(|(n, t)| format!("{n}:{t}"));
    let int = (any::<i64>(), tag.clone()).prop_map(|(n, t)| format!("{n}:{t}"));
    let float = (
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        tag.clone(),
    )
        .prop_map(|(f, t)| format!("{}{t}", Value::num(f)));
    let string = ("[a-z*?, ]{0,8}", tag).prop_map(|(s, t)| format!("'{s}':{t}"));
    let programs = prop::sample::select(vec![
        "'DUP EVAL':",
        "'1:,2:,ADD':",
        "'NOP':",
        "'DUP CAT':",
        "'h*':",
        "'host':",
        "'PING':",
        "'1: 0: DIV':",
        "'10: NDUP':",
        "'x':x",
        "'x':",
        "$name",
        "$interval",
        "$time_slice",
        "$cap",
        "$version",
        "#c#",
    ])
    .prop_map(str::to_owned);
    let junk = "\\PC{0,6}";
    prop_oneof![
        8 => word,
        4 => small,
        1 => int,
        1 => float,
        2 => string,
        2 => programs,
        1 => junk,
    ]
}

fn program() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..60).prop_map(|t| t.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_run_safely(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut m = agent();
        let out = m.run(&bytes);
        check(&m, &out);
    }

    #[test]
    fn any_text_runs_safely(text in "\\PC{0,200}") {
        let mut m = agent();
        let out = m.run(text.as_bytes());
        check(&m, &out);
    }

    #[test]
    fn token_soups_run_safely(programs in prop::collection::vec(program(), 1..4)) {
        // Several messages on one machine: state carries over, nothing breaks.
        let mut m = agent();
        for p in &programs {
            let out = m.run(p.as_bytes());
            check(&m, &out);
        }
        prop_assert_eq!(m.run(b"PING").replies, vec!["'host':PONG".to_owned()]);
    }

    #[test]
    fn token_soups_under_tight_limits(p in program()) {
        let limits = Limits {
            max_payload: 300,
            max_stack: 6,
            max_string: 40,
            max_eval_depth: 2,
            max_stored: 5,
            max_steps: 50,
        };
        let mut m = agent_with(limits);
        let out = m.run(p.as_bytes());
        check(&m, &out);
    }

    #[test]
    fn printed_integers_reparse(i in any::<i64>()) {
        let printed = Value::num(i).to_string();
        let tokens = tokenize(&printed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(matches!(&tokens[..], [Token::Literal(Value::Num(Number::Int(j), t))] if *j == i && t.is_empty()));
    }

    #[test]
    fn printed_floats_reparse(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let printed = Value::num(f).to_string();
        let tokens = tokenize(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        let [Token::Literal(Value::Num(n, _))] = &tokens[..] else {
            return Err(TestCaseError::fail(format!("{printed}: {tokens:?}")));
        };
        prop_assert_eq!(*n, Number::Float(f), "{}", printed);
        prop_assert_eq!(n.as_f64(), f, "{}", printed);
        // Printing is a fixed point: what is shown is what re-prints.
        let mut m = agent();
        prop_assert_eq!(m.run(printed.as_bytes()).replies, vec![printed.clone()]);
    }

    #[test]
    fn printed_strings_reparse(s in "\\PC{0,40}", tag in "[a-z_]{0,3}") {
        let v = Value::str(s).with_tag(tag);
        let printed = v.to_string();
        let tokens = tokenize(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(tokens, vec![Token::Literal(v)]);
    }

    #[test]
    fn glob_basics(s in "[a-zA-Z0-9.-]{0,20}") {
        prop_assert!(glob_match(&s, &s));
        prop_assert!(glob_match(&s.to_ascii_uppercase(), &s));
        prop_assert!(glob_match("*", &s));
        let q = "?".repeat(s.chars().count());
        prop_assert!(glob_match(&q, &s));
        let prefix: String = s.chars().take(3).collect();
        let pattern = format!("{prefix}*");
        prop_assert!(glob_match(&pattern, &s));
    }
}
