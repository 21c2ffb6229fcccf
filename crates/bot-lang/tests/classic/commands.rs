//! forth.md's command table, the printed forms and the variables, exactly
//! as users type them.

use crate::{agent, effects, one, outcome, run};
use bot_lang::{AgentInfo, Effect, Limits, Machine};

#[test]
fn ping_answers_pong() {
    assert_eq!(run("PING"), ["'host':PONG"]);
    // BUS/<name> carries the same payload; routing is the host's business.
    let mut m = Machine::new(
        AgentInfo {
            name: "web-7.example".into(),
            version: String::new(),
            capabilities: vec![],
        },
        Limits::default(),
        10.0,
    );
    assert_eq!(m.run(b"PING").replies, ["'web-7.example':PONG"]);
    assert_eq!(m.run(b"PING\n").replies, ["'web-7.example':PONG"]);
}

#[test]
fn distributed_calculator() {
    assert_eq!(run("2: 2: ADD"), ["4:"]);
}

#[test]
fn sel_by_name_and_glob() {
    for payload in ["'host': SEL", "\"host\": SEL", "'h*': SEL", "'HOST': sel"] {
        let mut m = agent();
        let out = outcome(&mut m, payload);
        assert_eq!(out.replies, ["empty"], "{payload}");
        assert_eq!(out.effects, [Effect::Selected(true)], "{payload}");
        assert!(m.state().selected);
    }
    let mut m = agent();
    assert_eq!(effects(&mut m, "'web*': SEL"), []);
    assert!(!m.state().selected);
}

#[test]
fn tsset_changes_the_interval_at_once() {
    let mut m = agent();
    let out = outcome(&mut m, "20: TSSET");
    assert_eq!(out.effects, [Effect::Interval(20.0)]);
    assert_eq!(m.state().interval, 20.0);
    assert_eq!(m.run(b"$interval").replies, ["20:interval"]);
}

#[test]
fn unsel_stops_at_once() {
    let mut m = agent();
    m.run(b"'host': SEL");
    let out = outcome(&mut m, "'host': UNSEL");
    assert_eq!(out.effects, [Effect::Selected(false)]);
    assert_eq!(out.replies, ["empty"]);
    assert!(!m.state().selected);
}

#[test]
fn lun_resets() {
    let mut m = agent();
    m.run(b"'host': SEL 20: TSSET 1: 1: 'x': FREEZE");
    assert_eq!(effects(&mut m, "LUN"), [Effect::Reset]);
    assert!(!m.state().selected);
    assert_eq!(m.state().interval, 10.0);
    assert_eq!(m.state().stored_count(), 0);
}

#[test]
fn test_word_prints_yo() {
    let mut m = agent();
    assert_eq!(effects(&mut m, "_TEST"), [Effect::Print("Yo".into())]);
}

#[test]
fn printed_forms() {
    assert_eq!(one("4:"), "4:");
    assert_eq!(one("4.0:"), "4:");
    assert_eq!(one("2: 2.0: ADD"), "4:");
    assert_eq!(one("1: 3: DIV"), "0.3333333333333333:");
    assert_eq!(one("2.5:"), "2.5:");
    assert_eq!(one("-3:"), "-3:");
    assert_eq!(one("1: NOT NOT"), "1:true");
    assert_eq!(one("1: NOT"), "0:false");
    assert_eq!(one("'ab': 'cd': CAT"), "\"abcd\":");
    assert_eq!(one("7:count"), "7:count");
    assert_eq!(one("1e3:"), "1000:");
    assert_eq!(one("1e300:"), "1e300:");
    assert_eq!(one("'two words':t"), "\"two words\":t");
    assert_eq!(one(r#"'say "hi" \\o/':"#), r#""say \"hi\" \\o/":"#);
    assert_eq!(run("PING"), ["'host':PONG"]);
    assert_eq!(run("NOP"), ["empty"]);
    assert_eq!(run("  #only a comment#  "), ["empty"]);
    assert_eq!(run(" \n\t "), ["empty"]);
}

#[test]
fn only_the_top_is_printed() {
    assert_eq!(run("1: 2: 3:"), ["3:"]);
    assert_eq!(run("PING 1: PING 2:"), ["'host':PONG", "'host':PONG", "2:"]);
}

#[test]
fn variables() {
    assert_eq!(one("$name"), "\"host\":name");
    assert_eq!(one("$interval"), "10:interval");
    assert_eq!(one("$time_slice"), "10:time_slice");
    assert_eq!(one("$cap"), "\"exec,metrics\":cap");
    assert_eq!(one("$version"), "\"1.2.3\":version");
    assert_eq!(one("2.5: TSSET $interval"), "2.5:interval");
    assert_eq!(one("$interval 1: ADD"), "11:");
    assert_eq!(one("$name SEL $name"), "\"host\":name");
}
