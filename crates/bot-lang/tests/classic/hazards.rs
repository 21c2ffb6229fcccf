//! The ancestor's measured hazards (forth.md, introduction). Each test is a
//! scenario that bricked, blocked or leaked on the reference agent.

use std::time::{Duration, Instant};

use crate::{agent, err, outcome};
use bot_lang::Effect;

/// Generous bound for debug builds on a slow machine; release runs are far
/// below it. What matters is that these finish at all instead of hanging.
const SLOW: Duration = Duration::from_secs(20);

#[test]
fn selected_is_not_sel() {
    let mut m = agent();
    let out = outcome(&mut m, "'host': SELECTED");
    assert_eq!(out.replies, ["\"UnknownWord: SELECTED\":ERROR"]);
    assert_eq!(out.effects, []);
    assert!(!m.state().selected);
}

#[test]
fn client_is_not_exposed() {
    assert_eq!(err("$client"), "UnknownVariable: $client");
    for internal in [
        "$client",
        "$mqtt",
        "$self",
        "$env",
        "$password",
        "$__dict__",
    ] {
        let out = agent().run(internal.as_bytes());
        assert_eq!(out.replies.len(), 1);
        assert!(
            out.replies[0].starts_with("\"UnknownVariable: "),
            "{:?}",
            out.replies
        );
    }
}

#[test]
fn huge_payload_is_not_echoed() {
    let payload = vec![b'A'; 1 << 20];
    let out = agent().run(&payload);
    assert_eq!(
        out.replies,
        ["\"TooLarge: payload is 1048576 bytes, limit 65536\":ERROR"]
    );
    // The largest allowed payload of garbage is not echoed either.
    let payload = "A".repeat(65536);
    let out = agent().run(payload.as_bytes());
    assert_eq!(out.replies.len(), 1);
    assert!(out.replies[0].len() <= 200 + 3, "{}", out.replies[0].len());
}

#[test]
fn many_messages_never_brick() {
    let mut m = agent();
    for i in 0..500 {
        let out = m.run(format!("{i}: 1: 2: 3:").as_bytes());
        assert_eq!(out.replies, ["3:"]);
    }
    // Fill the stack to the brim; the next message starts fresh.
    for _ in 0..100 {
        let out = m.run("1: ".repeat(80).as_bytes());
        assert_eq!(out.replies, ["\"Limit: stack depth 64 reached\":ERROR"]);
        assert_eq!(m.run(b"LEN").replies, ["0:"]);
    }
    assert_eq!(m.run(b"PING").replies, ["'host':PONG"]);
}

#[test]
fn binary_garbage_and_bad_tsset_do_not_kill() {
    let mut m = agent();
    let garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    assert_eq!(
        m.run(&garbage).replies,
        ["\"Encoding: payload is not valid UTF-8\":ERROR"]
    );
    assert_eq!(
        m.run(b"-1: TSSET").replies,
        ["\"OutOfRange: TSSET needs 0.1..86400 seconds, got -1\":ERROR"]
    );
    assert_eq!(m.state().interval, 10.0);
    assert_eq!(m.run(b"\0\0\0").replies, ["\"UnknownWord:    \":ERROR"]);
    assert_eq!(m.run(b"PING").replies, ["'host':PONG"]);
}

#[test]
fn short_messages_cannot_block() {
    // Small payloads that would run "forever" or grow without end if
    // unbounded; each must stop with a Limit error, quickly.
    let doubling = "'NOP ': ".to_owned() + &"DUP CAT ".repeat(20);
    let cases = [
        "'DUP EVAL': DUP EVAL".to_owned(),
        "'DUP DUP EVAL EVAL': DUP EVAL".to_owned(),
        "1: ".to_owned() + &"1: NDUP ".repeat(100),
        doubling.clone(),
        // 8192 NOPs evaluated again and again.
        "'NOP ': ".to_owned() + &"DUP CAT ".repeat(13) + &"DUP EVAL ".repeat(20),
        // A 64 KiB string scanned and copied again and again.
        "'xxxxxxxx': ".to_owned() + &"DUP CAT ".repeat(13) + &"DUP DUP IN DROP ".repeat(3000),
        // A 64 KiB comment lexed again and again by nested EVALs.
        "'#xxxxxxx': ".to_owned()
            + &"DUP CAT ".repeat(13)
            + "'#': CAT 'DUP DUP DUP DUP EVAL EVAL EVAL EVAL': CAT DUP EVAL",
    ];
    for src in &cases {
        assert!(src.len() < 65536);
        let start = Instant::now();
        let out = agent().run(src.as_bytes());
        let took = start.elapsed();
        let last = out.replies.last().cloned().unwrap_or_default();
        assert!(last.starts_with("\"Limit: "), "{src:.60}: {last}");
        assert!(took < SLOW, "{src:.60} took {took:?}");
    }
    assert_eq!(
        err(&doubling),
        "Limit: string of 131072 bytes exceeds limit 65536"
    );
}

#[test]
fn state_survives_only_what_it_should() {
    let mut m = agent();
    let out = m.run(b"'host': SEL 1: 2: 3:");
    assert_eq!(out.effects, [Effect::Selected(true)]);
    // Stack values are gone, the selection stays.
    assert_eq!(m.run(b"LEN").replies, ["0:"]);
    assert!(m.state().selected);
    // An error after an effect does not roll it back.
    let out = m.run(b"'host': UNSEL DROP");
    assert_eq!(out.effects, [Effect::Selected(false)]);
    assert!(!m.state().selected);
}
