//! Property tests: no decoder or the filter parser panics on any input; a
//! parsed filter's `Display` parses back to an equal filter that selects the
//! same agents; envelopes with arbitrary JSON inside round-trip with stable
//! signing bytes; `decode(encode(x))` succeeds exactly when `validate` does.

use bot_proto::filter::{self, Filter};
use bot_proto::{DecodeError, Heartbeat, Reply, Request, Status};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{Agent, reply, request, status};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A decode error is one line of bounded length (it goes back to the
/// sender as it is).
fn check_error(e: &DecodeError) {
    let line = e.to_string();
    assert!(
        !line.contains('\n') && line.chars().count() <= 400,
        "{line:?}"
    );
}

/// Feeds `bytes` to every decoder, and re-checks what decodes.
fn decode_all(bytes: &[u8]) {
    for e in [
        Request::decode(bytes).err(),
        Reply::decode(bytes).err(),
        Status::decode(bytes).err(),
        Heartbeat::decode(bytes).err(),
    ]
    .iter()
    .flatten()
    {
        check_error(e);
    }
    if let Ok(r) = Request::decode(bytes) {
        assert_eq!(Request::decode(&r.encode()), Ok(r.clone()));
        assert!(r.parsed_filter().is_ok());
    }
    if let Ok(r) = Reply::decode(bytes) {
        assert_eq!(Reply::decode(&r.encode()), Ok(r));
    }
    if let Ok(s) = Status::decode(bytes) {
        assert_eq!(Status::decode(&s.encode()), Ok(s));
    }
    if let Ok(h) = Heartbeat::decode(bytes) {
        assert_eq!(Heartbeat::decode(&h.encode()), Ok(h));
    }
    if let Some((id, reply_to)) = Request::salvage(bytes) {
        assert!(!id.is_empty() && !reply_to.is_empty());
    }
}

/// Parses `text`; when it parses, checks the canonical round trip.
fn parse_and_reparse(text: &str) -> Option<Filter> {
    match filter::parse(text) {
        Ok(f) => {
            let shown = f.to_string();
            let again = filter::parse(&shown)
                .unwrap_or_else(|e| panic!("{text:?} printed as {shown:?}, which fails: {e}"));
            assert_eq!(again, f, "{text:?} printed as {shown:?}");
            assert_eq!(again.to_string(), shown);
            Some(f)
        }
        Err(e) => {
            assert!(e.position <= text.chars().count(), "{e:?}");
            assert!(!e.message.is_empty() && !e.message.contains('\n'), "{e:?}");
            assert_eq!(e.to_string().lines().count(), 3, "{e}");
            None
        }
    }
}

/// Wraps raw text in single quotes with escapes.
fn quote(raw: &str) -> String {
    let mut out = String::from("'");
    for c in raw.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]".prop_map(String::from),
        Just("n".to_owned()),
        Just("ips".to_owned()),
        Just("mem.total".to_owned()),
        Just("not".to_owned()),
        Just("and".to_owned()),
        Just("OR".to_owned()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c0-9]{1,3}",
        "-?[0-9]{1,3}(\\.[0-9]{1,2})?",
        "[a-c]?\\*[0-9]?",
        "[a-c]\\?",
        Just("1e2".to_owned()),
        Just("true".to_owned()),
        Just("and".to_owned()),
        "[a-c *()'\"\\\\=]{0,4}".prop_map(|raw| quote(&raw)),
    ]
}

fn regex() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("^a".to_owned()),
        Just("b$".to_owned()),
        Just("[0-9]+".to_owned()),
        Just("'(?i)A'".to_owned()),
        Just(r"\d".to_owned()),
        Just(r#""a\\.b""#.to_owned()),
        Just("a*".to_owned()),
    ]
}

fn op() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("="),
        Just("!="),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">="),
        Just(" = ")
    ]
}

/// Filter texts that the grammar accepts.
fn filter_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("*".to_owned()),
        "(tag|TAG):[a-c]{1,2}",
        "[a-c]{1,2}\\*?",
        "[a-c]\\?",
        (key(), op(), value()).prop_map(|(k, o, v)| format!("{k}{o}{v}")),
        (key(), regex()).prop_map(|(k, r)| format!("{k}=~{r}")),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("( {a})")),
        ]
    })
}

fn fact_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        (-5i64..200).prop_map(|i| json!(i)),
        (-5.0f64..5.0).prop_map(|f| json!(f)),
        "[a-c0-9*]{0,3}".prop_map(Value::String),
        "-?[0-9]{1,2}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => vec(scalar.clone(), 0..3).prop_map(Value::Array),
        1 => scalar.prop_map(|v| json!({"total": v})),
    ]
}

fn agent() -> impl Strategy<Value = Agent> {
    let keys = prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("n"),
        Just("ips"),
        Just("mem"),
        Just("mem.total"),
        Just("not"),
        Just("and"),
        Just("OR"),
    ];
    (
        "[a-c]{1,3}",
        vec(
            prop_oneof![Just("a"), Just("b"), Just("c"), Just("ab")],
            0..3,
        ),
        btree_map(keys, fact_value(), 0..6),
    )
        .prop_map(|(name, tags, facts)| Agent {
            name,
            tags: tags.into_iter().map(String::from).collect(),
            facts: facts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(".{0,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
        parse_and_reparse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn json_shaped_bytes_never_panic(
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        which in 0usize..4,
    ) {
        let mut bytes = match which {
            0 => request().encode(),
            1 => reply().encode(),
            2 => status().encode(),
            _ => crate::heartbeat().encode(),
        };
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        decode_all(&bytes);
    }

    #[test]
    fn filter_alphabet_never_panics(text in "[a-c0-9 ()=!<>~*?'\"\\\\.:_-]{0,40}") {
        parse_and_reparse(&text);
    }

    #[test]
    fn keyword_soup_never_panics(words in vec(prop_oneof![
        Just("and"), Just("or"), Just("not"), Just("("), Just(")"), Just("*"), Just("tag:x"),
        Just("a=1"), Just("b"), Just("NOT"), Just("'"), Just("=~"), Just("="),
    ], 0..16)) {
        parse_and_reparse(&words.join(" "));
        parse_and_reparse(&words.concat());
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        parse_and_reparse(&text);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn display_reparses_to_a_filter_that_behaves_the_same(
        text in filter_text(),
        agents in vec(agent(), 1..6),
    ) {
        let f = filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let g = parse_and_reparse(&text).ok_or_else(|| TestCaseError::fail("no reparse"))?;
        let shown = f.to_string();
        let h = filter::parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
        prop_assert_eq!(&f, &g);
        let not_f = filter::parse(&format!("not ({shown})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for agent in &agents {
            prop_assert_eq!(f.matches(agent), h.matches(agent), "{} vs {}", text, shown);
            prop_assert_eq!(not_f.matches(agent), !f.matches(agent));
        }
    }

    #[test]
    fn and_or_not_are_boolean(a in filter_text(), b in filter_text(), agent in agent()) {
        let fa = filter::parse(&a).map_err(|e| TestCaseError::fail(e.to_string()))?.matches(&agent);
        let fb = filter::parse(&b).map_err(|e| TestCaseError::fail(e.to_string()))?.matches(&agent);
        let and = filter::parse(&format!("({a}) and ({b})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let or = filter::parse(&format!("({a}) or ({b})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(and.matches(&agent), fa && fb);
        prop_assert_eq!(or.matches(&agent), fa || fb);
    }

    #[test]
    fn envelopes_with_arbitrary_json_round_trip(
        args in btree_map(".{0,6}", json_value(), 0..5),
        data in json_value(),
    ) {
        let r = Request { args: Value::Object(args.into_iter().collect()), ..request() };
        let got = Request::decode(&r.encode()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &r);
        prop_assert_eq!(got.signing_bytes(), r.signing_bytes());
        prop_assert_eq!(got.encode(), r.encode());

        let p = Reply { data, ..reply() };
        let got = Reply::decode(&p.encode()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &p);
        prop_assert_eq!(got.signing_bytes(), p.signing_bytes());
    }

    #[test]
    fn decode_of_encode_succeeds_exactly_when_valid(
        id in prop_oneof!["[a-z0-9_-]{1,70}", ".{0,3}"],
        sender in ".{0,3}",
        nonce in prop_oneof!["[!-~]{6,66}", ".{8,9}"],
        ttl_ms in prop_oneof![0u64..3, Just(86_400_000u64), Just(86_400_001u64)],
        filter_text in proptest::option::of(prop_oneof![filter_text(), ".{0,6}"]),
        action in prop_oneof!["[a-z][a-z0-9_]{0,65}", ".{0,4}"],
        reply_to in prop_oneof!["[a-z/+#$]{0,6}", Just("bot/v1/req/all".to_owned())],
        sig in proptest::option::of(".{0,4}"),
        tags in vec(".{0,3}", 0..3),
        facts in btree_map(".{0,3}", Just(json!(1)), 0..3),
    ) {
        let r = Request {
            id, sender, nonce, ttl_ms, filter: filter_text, action, reply_to, sig,
            ..request()
        };
        if let Err(e) = r.validate() {
            check_error(&e);
        }
        prop_assert_eq!(Request::decode(&r.encode()), r.validate().map(|()| r.clone()));
        let s = Status { tags, facts: facts.into_iter().collect(), ..status() };
        prop_assert_eq!(Status::decode(&s.encode()), s.validate().map(|()| s.clone()));
    }
}
