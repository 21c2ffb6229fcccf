//! Every error kind, with the exact lines of forth.md's examples, and the
//! bounds on the error line.

use crate::{agent, agent_with, err, err_on, kind, run};
use bot_lang::{Limits, MAX_ERROR_LINE_CHARS};

#[test]
fn forth_md_examples() {
    assert_eq!(run("FOO"), ["\"UnknownWord: FOO\":ERROR"]);
    assert_eq!(
        run("ADD"),
        ["\"StackUnderflow: ADD needs 2 values, stack has 0\":ERROR"]
    );
    assert_eq!(run("1: 0: DIV"), ["\"DivisionByZero: 1 0 DIV\":ERROR"]);
    assert_eq!(
        agent().run(&vec![b' '; 1 << 20]).replies,
        ["\"TooLarge: payload is 1048576 bytes, limit 65536\":ERROR"]
    );
    assert_eq!(
        agent().run(b"\xff\xfe PING").replies,
        ["\"Encoding: payload is not valid UTF-8\":ERROR"]
    );
    assert_eq!(run("1e999999:"), ["\"BadLiteral: 1e999999:\":ERROR"]);
    assert_eq!(
        run("-1: TSSET"),
        ["\"OutOfRange: TSSET needs 0.1..86400 seconds, got -1\":ERROR"]
    );
    assert_eq!(
        run(&"1: ".repeat(65)),
        ["\"Limit: stack depth 64 reached\":ERROR"]
    );
}

#[test]
fn every_kind() {
    assert_eq!(kind("FOO"), "UnknownWord");
    assert_eq!(kind("DUP"), "StackUnderflow");
    assert_eq!(kind("1: 0: MOD"), "DivisionByZero");
    assert_eq!(kind("1e999:"), "BadLiteral");
    assert_eq!(kind("1: 0: ROT"), "OutOfRange");
    assert_eq!(kind("'DUP EVAL': DUP EVAL"), "Limit");
    assert_eq!(kind("'a': 1: ADD"), "Type");
    assert_eq!(kind("$client"), "UnknownVariable");
    assert_eq!(kind("'open"), "Syntax");
    assert_eq!(kind("#open"), "Syntax");
    assert_eq!(kind("'x': GET"), "NotFound");
    assert_eq!(
        err_on(&mut agent(), "'none': THAW"),
        "NotFound: nothing frozen as none"
    );
    let mut m = agent();
    assert_eq!(m.run(b"").replies, ["\"Empty: payload is empty\":ERROR"]);
    assert_eq!(
        agent().run(&[0xc0]).replies,
        ["\"Encoding: payload is not valid UTF-8\":ERROR"]
    );
    let mut m = agent_with(Limits {
        max_payload: 4,
        ..Limits::default()
    });
    assert_eq!(
        m.run(b"PING ").replies,
        ["\"TooLarge: payload is 5 bytes, limit 4\":ERROR"]
    );
    assert_eq!(m.run(b"PING").replies, ["'host':PONG"]);
}

#[test]
fn size_is_checked_before_encoding_and_emptiness() {
    let mut m = agent_with(Limits {
        max_payload: 2,
        ..Limits::default()
    });
    assert_eq!(
        m.run(b"\xff\xff\xff").replies,
        ["\"TooLarge: payload is 3 bytes, limit 2\":ERROR"]
    );
    let mut m = agent_with(Limits {
        max_payload: 0,
        ..Limits::default()
    });
    assert_eq!(m.run(b"").replies, ["\"Empty: payload is empty\":ERROR"]);
}

#[test]
fn limit_kinds() {
    assert_eq!(err(&"1: ".repeat(65)), "Limit: stack depth 64 reached");
    assert_eq!(err("'DUP EVAL': DUP EVAL"), "Limit: EVAL nesting 8 reached");
    let mut m = agent_with(Limits {
        max_steps: 3,
        ..Limits::default()
    });
    assert_eq!(err_on(&mut m, "1: 2: 3: 4:"), "Limit: 3 steps exceeded");
    let mut m = agent_with(Limits {
        max_string: 3,
        ..Limits::default()
    });
    assert_eq!(
        err_on(&mut m, "'abcd':"),
        "Limit: string of 4 bytes exceeds limit 3"
    );
    let mut m = agent_with(Limits {
        max_stored: 1,
        ..Limits::default()
    });
    assert_eq!(
        err_on(&mut m, "1: 2: 2: 'x': FREEZE"),
        "Limit: stored values 1 reached"
    );
    let mut m = agent_with(Limits {
        max_stack: 2,
        ..Limits::default()
    });
    assert_eq!(err_on(&mut m, "1: 2: 3:"), "Limit: stack depth 2 reached");
}

#[test]
fn offending_token_is_cut_to_forty() {
    let word = "W".repeat(100);
    assert_eq!(err(&word), format!("UnknownWord: {}…", "W".repeat(40)));
    let lit = format!("{}:", "9".repeat(50) + "x");
    assert_eq!(err(&lit), format!("BadLiteral: {}…", &lit[..40]));
    let var = format!("${}", "v".repeat(60));
    assert_eq!(err(&var), format!("UnknownVariable: ${}…", "v".repeat(39)));
    assert_eq!(
        err(&format!("'{}': GET", "k".repeat(50))),
        format!("NotFound: no value tagged {}…", "k".repeat(40))
    );
}

#[test]
fn error_lines_are_one_line_and_bounded() {
    let nasty = [
        "FOO\u{1}BAR",
        "'a\nb",
        "#\n\n",
        "\"\\\"\\\"\\\"\\\"",
        "\u{85}\u{2028}X",
        "$\u{7}",
    ];
    for src in nasty {
        for line in run(src) {
            assert!(
                !line.contains(['\n', '\r', '\u{1}', '\u{7}', '\u{85}']),
                "{line:?}"
            );
            assert!(line.chars().count() <= MAX_ERROR_LINE_CHARS, "{line:?}");
        }
    }
    let long = format!("'{}': 1: ADD", "\"".repeat(5000));
    for line in run(&long) {
        assert!(line.chars().count() <= MAX_ERROR_LINE_CHARS, "{line:?}");
    }
}
