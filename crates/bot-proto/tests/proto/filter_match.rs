//! Filter meaning: every operator on every JSON type, globs, regexes,
//! arrays, missing and nested facts, precedence and `not`, and a `Status`
//! as the target (the server's central evaluation).

use bot_proto::filter;
use bot_proto::{Facts, Target};
use serde_json::json;

use crate::{Agent, facts, status, web01};

/// Whether `text` selects `agent`.
fn m(text: &str, agent: &dyn Target) -> bool {
    filter::parse(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .matches(agent)
}

/// Every filter in `yes` selects `web01()`, none in `no` does.
fn check(yes: &[&str], no: &[&str]) {
    let a = web01();
    for text in yes {
        assert!(m(text, &a), "{text:?} should match");
    }
    for text in no {
        assert!(!m(text, &a), "{text:?} should not match");
    }
}

#[test]
fn star_tags_and_names() {
    check(
        &[
            "*", "tag:web", "tag:prod", "TAG:web", "web-01", "web*", "WEB-0?", "*-01", "w*1",
        ],
        &[
            "tag:db", "tag:Web", "tag:we", "db*", "web", "web-0", "web-01?",
        ],
    );
}

#[test]
fn equality_strings() {
    check(
        &[
            "os=linux",
            "os='linux'",
            "os=\"linux\"",
            "spaced='hello world'",
        ],
        &["os=Linux", "os=linu", "os=windows", "spaced=hello"],
    );
    check(
        &[r#"quoted='it\'s "q"'"#, r#"quoted="it's \"q\"""#],
        &["quoted=its"],
    );
}

#[test]
fn equality_numbers() {
    check(
        &[
            "cpus=8",
            "cpus=8.0",
            "cpus=+8",
            "cpus=8e0",
            "load=0.5",
            "load=.5",
            "neg=-3",
            "big=18446744073709551615",
            "zip=7",
            "zip=007",
            "memory.free=1024",
        ],
        &[
            "cpus=9",
            "load=0.50001",
            "big=18446744073709551614",
            "neg=3",
        ],
    );
    // Quoted values are text: "007" equals '007' but not '7'.
    check(&["zip='007'", "cpus='8'"], &["zip='7'", "cpus='8.0'"]);
    // Text against a number: the text forms differ.
    check(&[], &["cpus=eight", "os=5"]);
}

#[test]
fn equality_booleans() {
    check(
        &[
            "enabled=true",
            "disabled=false",
            "enabled='true'",
            "enabled=t*",
        ],
        &["enabled=false", "enabled=1", "enabled=TRUE"],
    );
}

#[test]
fn globs_on_facts() {
    check(
        &[
            "os=lin*",
            "os=LIN*",
            "os=l?nux",
            "kernel=6.1.*",
            "kernel=*amd64",
            "cpus=8*",
            "star=a*",
        ],
        &["os=win*", "kernel=6.2.*", "os=l?x", "cpus=9*"],
    );
    // A quoted * is a literal character.
    check(&["star='a*b'"], &["star='a*'", "os='lin*'"]);
}

#[test]
fn not_equal() {
    check(
        &[
            "os!=windows",
            "os!=Linux",
            "cpus!=9",
            "os!=win*",
            "missing!=x",
            "nothing!=x",
            "obj!=x",
        ],
        &["os!=linux", "cpus!=8", "cpus!=8.0", "os!=lin*"],
    );
}

#[test]
fn ordering_numeric() {
    check(
        &[
            "cpus>4",
            "cpus>=8",
            "cpus<16",
            "cpus<=8",
            "load<1",
            "load>0.25",
            "neg<0",
            "memory.total>=8e9",
            "memory.free>1000",
            "big>1e19",
            "cpus>-1",
        ],
        &[
            "cpus>8",
            "cpus<8",
            "cpus>=9",
            "load>1",
            "memory.total<8e9",
            "neg>0",
        ],
    );
    // Numeric, not lexicographic: "10" > 9.
    let a = Agent {
        facts: facts(json!({"n": "10", "v": 10})),
        ..Agent::default()
    };
    assert!(m("n>9", &a) && m("v>9", &a) && !m("n<9", &a));
}

#[test]
fn ordering_text() {
    check(
        &[
            "os>abc",
            "os<m",
            "os>=linux",
            "os<=linux",
            "kernel>6",
            "kernel<7",
        ],
        &["os>m", "os<linux", "os>linux"],
    );
    // A quoted value compares as text even against a number: "8" > "10".
    check(&["cpus>'10'"], &["cpus<'10'"]);
    // "1.10" is written as a number: numerically it is 1.1; quote to
    // compare text.
    check(
        &["version=1.1", "version='1.10'"],
        &["version>1.1", "version='1.1'"],
    );
    // Booleans compare by text form.
    check(&["enabled>false"], &["enabled<false"]);
}

#[test]
fn regex() {
    check(
        &[
            "os=~^lin",
            "os=~nux$",
            "os=~'^l.n.x$'",
            r"kernel=~'^\d+\.\d+'",
            r"kernel=~^\d",
            "os=~'(?i)LINUX'",
            "cpus=~^8$",
            "enabled=~^t",
            "ips=~^192\\.",
            "os=~''",
            "hostname=~example",
        ],
        &[
            "os=~^LIN",
            "os=~^inux",
            "cpus=~9",
            "missing=~.",
            "nothing=~.",
            "obj=~a",
        ],
    );
}

#[test]
fn arrays_match_any_element() {
    check(
        &[
            "ips=10.0.0.5",
            "ips=10.0.*",
            "ips=192.168.*",
            "ports=443",
            "ports>400",
            "ports<23",
            "ports=~^8",
            "nested=3",
            "nested=x",
            "nested>2",
        ],
        &[
            "ips=10.0.0.6",
            "ips=172.*",
            "ports=8080",
            "ports>500",
            "empty=x",
            "empty=*",
            "nested=4",
        ],
    );
    // `!=` is `not =`: true only when no element equals.
    check(
        &["ips!=10.0.0.6", "ips!=172.*", "empty!=x", "nested!=4"],
        &["ips!=10.0.0.5", "ips!=10.*", "ports!=22"],
    );
}

#[test]
fn deeply_nested_arrays_are_bounded() {
    let mut v = json!("needle");
    for _ in 0..20 {
        v = json!([v]);
    }
    let a = Agent {
        facts: facts(json!({"deep": v, "shallow": [[["needle"]]]})),
        ..Agent::default()
    };
    assert!(m("shallow=needle", &a));
    assert!(!m("deep=needle", &a));
}

#[test]
fn missing_facts() {
    check(
        &["missing!=x", "missing!=*", "not missing=x"],
        &[
            "missing=x",
            "missing=*",
            "missing<1",
            "missing<=1",
            "missing>1",
            "missing>=1",
            "missing=~.",
            "missing=''",
        ],
    );
    // null and objects behave like missing facts.
    check(
        &["nothing!=null", "obj!=x"],
        &["nothing=null", "nothing=*", "obj=*", "obj>0"],
    );
}

#[test]
fn nested_facts() {
    check(
        &[
            "memory.total=8589934592",
            "memory.swap.total=0",
            "disks.0.size=100",
            "disks.1.size>150",
            "memory.free=1*",
        ],
        &[
            "memory.nope=1",
            "memory.total.x=1",
            "disks.2.size=1",
            "disks.x.size=1",
            "os.x=1",
            "memory=1",
        ],
    );
    check(&["memory.nope!=1"], &[]);
}

#[test]
fn literal_dotted_fact_wins() {
    let a = Agent {
        facts: facts(json!({
            "memory.total": 1,
            "memory": {"total": 2, "free": 3},
            "a.b": {"c": 4},
            "a": {"b": {"c": 5}},
        })),
        ..Agent::default()
    };
    assert!(m("memory.total=1", &a));
    assert!(m("memory.free=3", &a));
    // The longest prefix that is a fact is walked.
    assert!(m("a.b.c=4", &a));
    assert!(!m("a.b.c=5", &a));
}

#[test]
fn pseudo_facts_are_ordinary_facts() {
    check(
        &[
            "name=web-01",
            "name=web*",
            "id=0f1e2d3c",
            "hostname=*.example.com",
        ],
        &["name=db*", "id=x"],
    );
    // A bare glob uses Target::name, not the `name` fact.
    let a = Agent {
        name: "real".into(),
        facts: facts(json!({"name": "other"})),
        ..Agent::default()
    };
    assert!(m("real", &a) && m("name=other", &a) && !m("other", &a));
}

#[test]
fn boolean_logic() {
    check(
        &[
            "os=linux and cpus=8",
            "os=windows or cpus=8",
            "not os=windows",
            "not not os=linux",
            "not (os=windows or cpus=1)",
            "tag:web and (tag:db or tag:prod)",
            "os=linux and tag:web and web* and cpus>=4 and not tag:db",
        ],
        &[
            "os=linux and cpus=9",
            "os=windows or cpus=9",
            "not os=linux",
            "not *",
        ],
    );
}

#[test]
fn precedence_and_binds_tighter() {
    // a=1 or b=2 and c=3 is a=1 or (b=2 and c=3).
    let a = Agent {
        facts: facts(json!({"a": 1, "b": 0, "c": 0})),
        ..Agent::default()
    };
    assert!(m("a=1 or b=2 and c=3", &a));
    assert!(!m("(a=1 or b=2) and c=3", &a));
    // not binds tighter than and.
    let a = Agent {
        facts: facts(json!({"x": 1, "y": 1})),
        ..Agent::default()
    };
    assert!(!m("not x=1 and y=1", &a));
    assert!(m("not (x=1 and y=2)", &a));
}

#[test]
fn status_is_a_target() {
    let s = status();
    for yes in [
        "web1",
        "tag:prod",
        "os=linux and cpus>=4",
        "memory.total>8e9",
        "name=web1",
        "hostname=*.com",
    ] {
        assert!(m(yes, &s), "{yes}");
    }
    for no in ["db*", "tag:db", "os=windows", "cpus>4"] {
        assert!(!m(no, &s), "{no}");
    }
}

#[test]
fn empty_target() {
    let a = Agent {
        name: String::new(),
        tags: vec![],
        facts: Facts::new(),
    };
    assert!(m("*", &a) && m("x!=1", &a) && m("not tag:x", &a));
    assert!(!m("?", &a) && !m("x=1", &a) && !m("tag:x", &a));
}
