//! Every word: its happy path and at least one error.

use crate::{agent, agent_with, effects, err, err_on, kind, one, outcome, run};
use bot_lang::{Effect, Limits};

// ---- arithmetic -------------------------------------------------------------

#[test]
fn add() {
    assert_eq!(one("2: 2: ADD"), "4:");
    assert_eq!(one("1.5: 1: ADD"), "2.5:");
    assert_eq!(one("0.1: 0.2: ADD"), "0.30000000000000004:");
    // Integer overflow falls back to a float.
    assert_eq!(one("9223372036854775807: 1: ADD"), "9223372036854776000:");
    assert_eq!(
        err("ADD"),
        "StackUnderflow: ADD needs 2 values, stack has 0"
    );
    assert_eq!(
        err("1: ADD"),
        "StackUnderflow: ADD needs 2 values, stack has 1"
    );
    assert_eq!(err("'a': 1: ADD"), "Type: ADD needs numbers, got str");
    assert_eq!(err("1: 'a': ADD"), "Type: ADD needs numbers, got str");
    assert_eq!(
        err("1e308: 1e308: ADD"),
        "OutOfRange: 1e308 1e308 ADD is not a finite number"
    );
}

#[test]
fn sub() {
    assert_eq!(one("5: 7: SUB"), "-2:");
    assert_eq!(one("2.5: 1: SUB"), "1.5:");
    assert_eq!(one("-9223372036854775808: 1: SUB"), "-9223372036854775808:");
    assert_eq!(
        err("SUB"),
        "StackUnderflow: SUB needs 2 values, stack has 0"
    );
    assert_eq!(err("1: 'x': SUB"), "Type: SUB needs numbers, got str");
    assert_eq!(kind("-1e308: 1e308: SUB"), "OutOfRange");
}

#[test]
fn mul() {
    assert_eq!(one("3: 4: MUL"), "12:");
    assert_eq!(one("-3: 0.5: MUL"), "-1.5:");
    assert_eq!(one("4294967296: 4294967296: MUL"), "18446744073709552000:");
    assert_eq!(
        err("1e300: 1e300: MUL"),
        "OutOfRange: 1e300 1e300 MUL is not a finite number"
    );
    assert_eq!(err("'a': 'b': MUL"), "Type: MUL needs numbers, got str");
}

#[test]
fn div() {
    assert_eq!(one("1: 3: DIV"), "0.3333333333333333:");
    assert_eq!(one("6: 3: DIV"), "2:");
    assert_eq!(one("5: 2: DIV"), "2.5:");
    assert_eq!(one("-6: 4: DIV"), "-1.5:");
    assert_eq!(one("-9223372036854775808: -1: DIV"), "9223372036854776000:");
    assert_eq!(err("1: 0: DIV"), "DivisionByZero: 1 0 DIV");
    assert_eq!(err("2.5: 0.0: DIV"), "DivisionByZero: 2.5 0 DIV");
    assert_eq!(err("1: -0.0: DIV"), "DivisionByZero: 1 0 DIV");
    assert_eq!(kind("1e300: 1e-300: DIV"), "OutOfRange");
    assert_eq!(
        err("DIV"),
        "StackUnderflow: DIV needs 2 values, stack has 0"
    );
    assert_eq!(err("'1': 1: DIV"), "Type: DIV needs numbers, got str");
}

#[test]
fn modulo_is_floored() {
    assert_eq!(one("7: 3: MOD"), "1:");
    assert_eq!(one("-7: 3: MOD"), "2:");
    assert_eq!(one("7: -3: MOD"), "-2:");
    assert_eq!(one("-7: -3: MOD"), "-1:");
    assert_eq!(one("-7.5: 2: MOD"), "0.5:");
    assert_eq!(one("7.5: -2: MOD"), "-0.5:");
    assert_eq!(one("-9223372036854775808: -1: MOD"), "0:");
    assert_eq!(err("7: 0: MOD"), "DivisionByZero: 7 0 MOD");
    assert_eq!(
        err("MOD"),
        "StackUnderflow: MOD needs 2 values, stack has 0"
    );
    assert_eq!(err("'a': 2: MOD"), "Type: MOD needs numbers, got str");
}

#[test]
fn truediv_floors() {
    assert_eq!(one("7: 2: TRUEDIV"), "3:");
    assert_eq!(one("-7: 2: TRUEDIV"), "-4:");
    assert_eq!(one("7: -2: TRUEDIV"), "-4:");
    assert_eq!(one("-8: 2: TRUEDIV"), "-4:");
    assert_eq!(one("7.5: 2: TRUEDIV"), "3:");
    assert_eq!(one("-7.5: 2: TRUEDIV"), "-4:");
    assert_eq!(
        one("-9223372036854775808: -1: TRUEDIV"),
        "9223372036854776000:"
    );
    assert_eq!(err("1: 0: TRUEDIV"), "DivisionByZero: 1 0 TRUEDIV");
    assert_eq!(err("1.5: 0: TRUEDIV"), "DivisionByZero: 1.5 0 TRUEDIV");
    assert_eq!(kind("1e300: 1e-300: TRUEDIV"), "OutOfRange");
    assert_eq!(
        err("1: TRUEDIV"),
        "StackUnderflow: TRUEDIV needs 2 values, stack has 1"
    );
}

#[test]
fn cmp() {
    assert_eq!(one("1: 2: CMP"), "-1:");
    assert_eq!(one("2: 2.0: CMP"), "0:");
    assert_eq!(one("3: 2.5: CMP"), "1:");
    assert_eq!(one("'b': 'a': CMP"), "1:");
    assert_eq!(one("'a': 'ab': CMP"), "-1:");
    assert_eq!(one("'x':t 'x':u CMP"), "0:");
    assert_eq!(
        err("1: 'a': CMP"),
        "Type: CMP needs two numbers or two strings, got num and str"
    );
    assert_eq!(
        err("CMP"),
        "StackUnderflow: CMP needs 2 values, stack has 0"
    );
}

#[test]
fn bitwise() {
    assert_eq!(one("12: 10: BAND"), "8:");
    assert_eq!(one("12: 10: BOR"), "14:");
    assert_eq!(one("12: 10: BXOR"), "6:");
    assert_eq!(one("-1: 255: BAND"), "255:");
    assert_eq!(one("4.0: 1: BOR"), "5:");
    assert_eq!(
        err("1.5: 1: BAND"),
        "OutOfRange: BAND needs whole numbers within 64 bits, got 1.5"
    );
    assert_eq!(
        err("1e300: 1: BXOR"),
        "OutOfRange: BXOR needs whole numbers within 64 bits, got 1e300"
    );
    assert_eq!(err("1e300000: 1: BXOR"), "BadLiteral: 1e300000:");
    assert_eq!(err("'a': 1: BOR"), "Type: BOR needs numbers, got str");
    assert_eq!(
        err("1: BXOR"),
        "StackUnderflow: BXOR needs 2 values, stack has 1"
    );
}

// ---- logic --------------------------------------------------------------------

#[test]
fn not() {
    assert_eq!(one("0: NOT"), "1:true");
    assert_eq!(one("0.0: NOT"), "1:true");
    assert_eq!(one("'': NOT"), "1:true");
    assert_eq!(one("'x': NOT"), "0:false");
    assert_eq!(one("-2: NOT"), "0:false");
    assert_eq!(one("1: NOT NOT"), "1:true");
    assert_eq!(err("NOT"), "StackUnderflow: NOT needs 1 value, stack has 0");
}

#[test]
fn and_or() {
    assert_eq!(one("1: 0: AND"), "0:false");
    assert_eq!(one("1: 'x': AND"), "1:true");
    assert_eq!(one("0: '': OR"), "0:false");
    assert_eq!(one("0: 1: OR"), "1:true");
    assert_eq!(one("'': 'a': OR"), "1:true");
    assert_eq!(
        err("1: AND"),
        "StackUnderflow: AND needs 2 values, stack has 1"
    );
    assert_eq!(err("OR"), "StackUnderflow: OR needs 2 values, stack has 0");
}

#[test]
fn ift() {
    assert_eq!(one("'yes': 'no': 1: IFT"), "\"yes\":");
    assert_eq!(one("'yes': 'no': 0: IFT"), "\"no\":");
    assert_eq!(one("1:t 2:f 'c': IFT"), "1:t");
    assert_eq!(one("1: 2: 3: 4: 1: 1: IFT LEN"), "4:");
    assert_eq!(
        err("1: 2: IFT"),
        "StackUnderflow: IFT needs 3 values, stack has 2"
    );
}

// ---- strings ------------------------------------------------------------------

#[test]
fn cat() {
    assert_eq!(one("'ab': 'cd': CAT"), "\"abcd\":");
    assert_eq!(one("'': '': CAT"), "\"\":");
    assert_eq!(one("'é': \"'\": CAT"), "\"é'\":");
    assert_eq!(err("'a': 1: CAT"), "Type: CAT needs strings, got num");
    assert_eq!(
        err("'a': CAT"),
        "StackUnderflow: CAT needs 2 values, stack has 1"
    );
    let mut m = agent_with(Limits {
        max_string: 4,
        ..Limits::default()
    });
    assert_eq!(m.run(b"'ab': 'cd': CAT").replies, ["\"abcd\":"]);
    assert_eq!(
        err_on(&mut m, "'abc': 'de': CAT"),
        "Limit: string of 5 bytes exceeds limit 4"
    );
}

#[test]
fn in_is_substring() {
    assert_eq!(one("'hello': 'ell': IN"), "1:true");
    assert_eq!(one("'hello': '': IN"), "1:true");
    assert_eq!(one("'hello': 'xyz': IN"), "0:false");
    assert_eq!(one("'ell': 'hello': IN"), "0:false");
    assert_eq!(err("1: 'a': IN"), "Type: IN needs strings, got num");
    assert_eq!(err("IN"), "StackUnderflow: IN needs 2 values, stack has 0");
}

#[test]
fn streq() {
    assert_eq!(one("'a': 'a': STREQ"), "1:true");
    assert_eq!(one("'a':x 'a':y STREQ"), "1:true");
    assert_eq!(one("'a': 'b': STREQ"), "0:false");
    assert_eq!(one("4: '4': STREQ"), "1:true");
    assert_eq!(one("4.0: 4: STREQ"), "1:true");
    assert_eq!(
        err("'a': STREQ"),
        "StackUnderflow: STREQ needs 2 values, stack has 1"
    );
}

#[test]
fn to_num() {
    assert_eq!(one("'42': >NUM"), "42:");
    assert_eq!(one("' 2.5 ':t >NUM"), "2.5:t");
    assert_eq!(one("'1e3': >NUM"), "1000:");
    assert_eq!(one("7:n >NUM"), "7:n");
    assert_eq!(one("'4': >num 1: ADD"), "5:");
    assert_eq!(err("'abc': >NUM"), "BadLiteral: >NUM cannot read \"abc\"");
    assert_eq!(
        run("'a\"b': >NUM"),
        [r#""BadLiteral: >NUM cannot read \"a\\\"b\"":ERROR"#]
    );
    assert_eq!(kind("'inf': >NUM"), "BadLiteral");
    assert_eq!(kind("'NaN': >NUM"), "BadLiteral");
    assert_eq!(kind("'1e999': >NUM"), "BadLiteral");
    assert_eq!(
        err(">NUM"),
        "StackUnderflow: >NUM needs 1 value, stack has 0"
    );
}

#[test]
fn to_str() {
    assert_eq!(one("4: >STR"), "\"4\":");
    assert_eq!(one("2.5:x >STR"), "\"2.5\":x");
    assert_eq!(one("1e300: >STR"), "\"1e300\":");
    assert_eq!(one("'s': >STR"), "\"s\":");
    assert_eq!(one("1: 3: DIV >STR >NUM"), "0.3333333333333333:");
    assert_eq!(
        err(">STR"),
        "StackUnderflow: >STR needs 1 value, stack has 0"
    );
}

#[test]
fn typ() {
    assert_eq!(one("1: TYP"), "\"num\":type");
    assert_eq!(one("'a':x TYP"), "\"str\":type");
    assert_eq!(one("1: TYP LEN"), "1:");
    assert_eq!(err("TYP"), "StackUnderflow: TYP needs 1 value, stack has 0");
}

#[test]
fn tag() {
    assert_eq!(one("1: 'n': TAG"), "1:n");
    assert_eq!(one("'v':old 'new_1': TAG"), "\"v\":new_1");
    assert_eq!(
        err("1: 'Bad': TAG"),
        "BadLiteral: TAG needs [a-z_][a-z0-9_]* of at most 64 bytes, got Bad"
    );
    assert_eq!(kind("1: '': TAG"), "BadLiteral");
    assert_eq!(kind("1: 'ERROR': TAG"), "BadLiteral");
    assert_eq!(kind(&format!("1: '{}': TAG", "a".repeat(65))), "BadLiteral");
    assert_eq!(err("1: 2: TAG"), "Type: TAG needs a string name, got num");
    assert_eq!(
        err("'n': TAG"),
        "StackUnderflow: TAG needs 2 values, stack has 1"
    );
}

// ---- stack --------------------------------------------------------------------

#[test]
fn dup() {
    assert_eq!(one("1: DUP ADD"), "2:");
    assert_eq!(one("'a':t DUP LEN"), "2:");
    assert_eq!(err("DUP"), "StackUnderflow: DUP needs 1 value, stack has 0");
}

#[test]
fn drop() {
    assert_eq!(one("1: 2: DROP"), "1:");
    assert_eq!(one("1: DROP"), "empty");
    assert_eq!(
        err("DROP"),
        "StackUnderflow: DROP needs 1 value, stack has 0"
    );
}

#[test]
fn swap() {
    assert_eq!(one("1: 2: SWAP SUB"), "1:");
    assert_eq!(one("1:a 2:b SWAP EJOIN"), "\"b=2&a=1\":");
    assert_eq!(
        err("1: SWAP"),
        "StackUnderflow: SWAP needs 2 values, stack has 1"
    );
}

#[test]
fn over() {
    assert_eq!(one("1: 2: OVER"), "1:");
    assert_eq!(one("1:a 2:b OVER EJOIN"), "\"a=1&b=2&a=1\":");
    assert_eq!(
        err("1: OVER"),
        "StackUnderflow: OVER needs 2 values, stack has 1"
    );
}

#[test]
fn rot() {
    assert_eq!(one("1:a 2:b 3:c 3: ROT EJOIN"), "\"b=2&c=3&a=1\":");
    assert_eq!(one("1:a 2:b 3:c 2: ROT EJOIN"), "\"a=1&c=3&b=2\":");
    assert_eq!(one("1:a 2:b 1: ROT EJOIN"), "\"a=1&b=2\":");
    assert_eq!(one("1:a 2:b 3:c 4:d 4: ROT EJOIN"), "\"b=2&c=3&d=4&a=1\":");
    assert_eq!(one("1:a 2:b 2.0: ROT EJOIN"), "\"b=2&a=1\":");
    assert_eq!(
        err("1: 0: ROT"),
        "OutOfRange: ROT needs a whole number of at least 1, got 0"
    );
    assert_eq!(kind("1: -1: ROT"), "OutOfRange");
    assert_eq!(kind("1: 1.5: ROT"), "OutOfRange");
    assert_eq!(
        err("1: 5: ROT"),
        "StackUnderflow: ROT needs 5 values, stack has 1"
    );
    assert_eq!(
        err("1: 9223372036854775807: ROT"),
        "StackUnderflow: ROT needs 9223372036854775807 values, stack has 1"
    );
    assert_eq!(kind("1: 1e300: ROT"), "OutOfRange");
    assert_eq!(err("'a': ROT"), "Type: ROT needs a number, got str");
    assert_eq!(err("ROT"), "StackUnderflow: ROT needs 1 value, stack has 0");
}

#[test]
fn ndup() {
    assert_eq!(one("1:a 2:b 2: NDUP EJOIN"), "\"a=1&b=2&a=1&b=2\":");
    assert_eq!(one("1:a 2:b 1: NDUP EJOIN"), "\"a=1&b=2&b=2\":");
    assert_eq!(one("0: NDUP"), "empty");
    assert_eq!(one("7: 0: NDUP"), "7:");
    assert_eq!(
        err("1: 3: NDUP"),
        "StackUnderflow: NDUP needs 3 values, stack has 1"
    );
    assert_eq!(
        err("1: 9223372036854775807: NDUP"),
        "StackUnderflow: NDUP needs 9223372036854775807 values, stack has 1"
    );
    assert_eq!(
        err("-1: NDUP"),
        "OutOfRange: NDUP needs a whole number of at least 0, got -1"
    );
    // 40 values duplicated would make 80 > 64.
    let program = "1: ".repeat(40) + "40: NDUP";
    assert_eq!(err(&program), "Limit: stack depth 64 reached");
    let program = "1: ".repeat(32) + "32: NDUP LEN";
    assert_eq!(err(&program), "Limit: stack depth 64 reached");
    let program = "1: ".repeat(32) + "32: NDUP DROP LEN";
    assert_eq!(one(&program), "63:");
}

#[test]
fn top() {
    assert_eq!(one("1: 2: 3: TOP LEN"), "1:");
    assert_eq!(one("1: 2: 3:x TOP"), "3:x");
    assert_eq!(err("TOP"), "StackUnderflow: TOP needs 1 value, stack has 0");
}

#[test]
fn len() {
    assert_eq!(one("LEN"), "0:");
    assert_eq!(one("1: 2: LEN"), "2:");
    let full = "1: ".repeat(64) + "LEN";
    assert_eq!(err(&full), "Limit: stack depth 64 reached");
}

#[test]
fn nop() {
    assert_eq!(one("NOP"), "empty");
    assert_eq!(one("1: NOP nop"), "1:");
    assert_eq!(err("NOPE"), "UnknownWord: NOPE");
}

#[test]
fn get() {
    assert_eq!(one("5:x 1:y 'x': GET"), "5:x");
    assert_eq!(one("1:x 2:x 3: 'x': GET"), "2:x");
    assert_eq!(one("'v':s 'x': 's': GET"), "\"v\":s");
    assert_eq!(one("5:x 'x': GET LEN"), "2:");
    assert_eq!(err("1: 'nope': GET"), "NotFound: no value tagged nope");
    assert_eq!(err("1: 1: GET"), "Type: GET needs a string key, got num");
    assert_eq!(err("GET"), "StackUnderflow: GET needs 1 value, stack has 0");
}

// ---- matching -----------------------------------------------------------------

#[test]
fn match_counts_equal_values() {
    assert_eq!(one("1: 2: 1: 1.0: 3: MATCH"), "2:");
    assert_eq!(one("'a': 'b': 'a': 'a': 3: MATCH"), "2:");
    assert_eq!(one("'1': 1: 1: MATCH"), "0:");
    assert_eq!(one("1:x 1:y 1: 2: MATCH"), "2:");
    assert_eq!(one("9: 1: 2: 1: 2: MATCH LEN"), "2:");
    assert_eq!(one("1: 0: MATCH"), "0:");
    assert_eq!(
        err("1: 5: MATCH"),
        "StackUnderflow: MATCH needs 5 values, stack has 0"
    );
    assert_eq!(
        err("1: 1e18: MATCH"),
        "StackUnderflow: MATCH needs 1000000000000000000 values, stack has 0"
    );
    assert_eq!(err("1: 'x': MATCH"), "Type: MATCH needs a number, got str");
    assert_eq!(
        err("MATCH"),
        "StackUnderflow: MATCH needs 2 values, stack has 0"
    );
    assert_eq!(kind("1: -2: MATCH"), "OutOfRange");
}

#[test]
fn mtag_counts_tags() {
    assert_eq!(one("1:a 2:b 3:a 'a': 3: MTAG"), "2:");
    assert_eq!(one("1:a 2:b 3:a 'a': 2: MTAG"), "1:");
    assert_eq!(one("1: 2: '': 2: MTAG"), "2:");
    assert_eq!(one("1:a 'zz': 1: MTAG"), "0:");
    assert_eq!(
        err("1: 2: 1: MTAG"),
        "Type: MTAG needs a string tag, got num"
    );
    assert_eq!(
        err("'a': 3: MTAG"),
        "StackUnderflow: MTAG needs 3 values, stack has 0"
    );
}

// ---- storage ------------------------------------------------------------------

#[test]
fn freeze_and_thaw_across_messages() {
    let mut m = agent();
    // FREEZE does not pop the stored values.
    assert_eq!(m.run(b"1:a 2:b 2: 'saved': FREEZE").replies, ["2:b"]);
    assert_eq!(m.state().stored_count(), 2);
    assert_eq!(m.state().frozen("saved").map(<[_]>::len), Some(2));
    assert_eq!(m.run(b"'saved': THAW EJOIN").replies, ["\"a=1&b=2\":"]);
    assert_eq!(m.run(b"'saved': THAW 'saved': THAW LEN").replies, ["4:"]);
    // Replacing a name frees its old count.
    assert_eq!(m.run(b"9: 1: 'saved': FREEZE").replies, ["9:"]);
    assert_eq!(m.state().stored_count(), 1);
    assert_eq!(m.run(b"'saved': THAW").replies, ["9:"]);
    // Zero values still take a slot.
    m.run(b"0: 'none': FREEZE");
    assert_eq!(m.state().stored_count(), 2);
    assert_eq!(m.run(b"'none': THAW").replies, ["empty"]);
    assert_eq!(
        m.state().frozen_names().collect::<Vec<_>>(),
        ["none", "saved"]
    );
}

#[test]
fn freeze_errors() {
    assert_eq!(
        err("1: 5: 'x': FREEZE"),
        "StackUnderflow: FREEZE needs 5 values, stack has 1"
    );
    assert_eq!(
        err("'x': FREEZE"),
        "StackUnderflow: FREEZE needs 2 values, stack has 1"
    );
    assert_eq!(
        err("1: 1: 2: FREEZE"),
        "Type: FREEZE needs a string name, got num"
    );
    assert_eq!(
        err("1: 'a': 'x': FREEZE"),
        "Type: FREEZE needs a number, got str"
    );
    assert_eq!(
        err("1: 1: '': FREEZE"),
        "OutOfRange: FREEZE needs a name of 1..64 bytes, got 0 bytes"
    );
    let mut m = agent_with(Limits {
        max_stored: 3,
        ..Limits::default()
    });
    assert_eq!(m.run(b"1: 2: 2: 'a': FREEZE").replies, ["2:"]);
    assert_eq!(
        err_on(&mut m, "1: 2: 2: 'b': FREEZE"),
        "Limit: stored values 3 reached"
    );
    assert_eq!(m.state().frozen("b"), None);
    // Replacing `a` (2 values) by 3 values fits.
    assert_eq!(m.run(b"1: 2: 3: 3: 'a': FREEZE").replies, ["3:"]);
    assert_eq!(m.state().stored_count(), 3);
}

#[test]
fn thaw_errors() {
    assert_eq!(err("'x': THAW"), "NotFound: nothing frozen as x");
    assert_eq!(err("1: THAW"), "Type: THAW needs a string name, got num");
    assert_eq!(
        err("THAW"),
        "StackUnderflow: THAW needs 1 value, stack has 0"
    );
    let mut m = agent();
    m.run(format!("{} 40: 'many': FREEZE", "1: ".repeat(40)).as_bytes());
    assert_eq!(
        err_on(&mut m, &format!("{} 'many': THAW", "1: ".repeat(30))),
        "Limit: stack depth 64 reached"
    );
}

// ---- meta ---------------------------------------------------------------------

#[test]
fn eval() {
    assert_eq!(one("'2: 3: ADD': EVAL"), "5:");
    assert_eq!(one("'2:,3:,ADD': EVAL"), "5:");
    assert_eq!(one("1: '2: ADD': EVAL"), "3:");
    assert_eq!(one("'\"a,b\": \"c\": CAT': EVAL"), "\"a,bc\":");
    assert_eq!(one("'\\'7:\\': EVAL': EVAL"), "7:");
    assert_eq!(one("'': EVAL"), "empty");
    assert_eq!(one("'PING': EVAL"), "'host':PONG");
    assert_eq!(err("'FOO': EVAL"), "UnknownWord: FOO");
    assert_eq!(err("'1: 0: DIV': EVAL"), "DivisionByZero: 1 0 DIV");
    assert_eq!(err("1: EVAL"), "Type: EVAL needs a string, got num");
    assert_eq!(
        err("EVAL"),
        "StackUnderflow: EVAL needs 1 value, stack has 0"
    );
    assert_eq!(err("'DUP EVAL': DUP EVAL"), "Limit: EVAL nesting 8 reached");
    assert_eq!(kind("'#open': EVAL"), "Syntax");
}

#[test]
fn eval_nesting_is_exactly_the_limit() {
    // Builds an EVAL nested `depth` times around `7:`.
    fn nested(depth: usize) -> String {
        let mut inner = "7:".to_owned();
        for _ in 0..depth {
            let quoted = inner.replace('\\', "\\\\").replace('\'', "\\'");
            inner = format!("'{quoted}': EVAL");
        }
        inner
    }
    assert_eq!(one(&nested(8)), "7:");
    assert_eq!(err(&nested(9)), "Limit: EVAL nesting 8 reached");
    let mut m = agent_with(Limits {
        max_eval_depth: 0,
        ..Limits::default()
    });
    assert_eq!(err_on(&mut m, &nested(1)), "Limit: EVAL nesting 0 reached");
}

#[test]
fn eval_shares_steps() {
    let mut m = agent_with(Limits {
        max_steps: 10,
        ..Limits::default()
    });
    // 1 literal + EVAL + 8 inside = 10 steps: fits.
    let ok = format!("'{}': EVAL", "NOP ".repeat(8));
    assert_eq!(m.run(ok.as_bytes()).replies, ["empty"]);
    let over = format!("'{}': EVAL", "NOP ".repeat(9));
    assert_eq!(err_on(&mut m, &over), "Limit: 10 steps exceeded");
}

#[test]
fn ejoin() {
    assert_eq!(one("1:a 'x y':b 3: EJOIN"), "\"a=1&b=x y\":");
    assert_eq!(one("'a&b=c%':k 2.5:n EJOIN"), "\"k=a%26b%3Dc%25&n=2.5\":");
    assert_eq!(one("'l1\nl2':k EJOIN"), "\"k=l1%0Al2\":");
    assert_eq!(one("EJOIN"), "\"\":");
    assert_eq!(one("1: 2: EJOIN LEN"), "1:");
    let mut m = agent_with(Limits {
        max_string: 5,
        ..Limits::default()
    });
    assert_eq!(
        err_on(&mut m, "1:a 2:b EJOIN"),
        "Limit: string longer than 5 bytes"
    );
}

#[test]
fn edict() {
    assert_eq!(one("1:a 'x':b 2:a 3: EDICT"), r#""{\"a\":2,\"b\":\"x\"}":"#);
    assert_eq!(
        one("0.5:f '\"q\"':s EDICT"),
        r#""{\"f\":0.5,\"s\":\"\\\"q\\\"\"}":"#
    );
    assert_eq!(one("EDICT"), "\"{}\":");
    let mut m = agent_with(Limits {
        max_string: 5,
        ..Limits::default()
    });
    assert_eq!(
        err_on(&mut m, "1:a 2:b EDICT"),
        "Limit: string longer than 5 bytes"
    );
}

#[test]
fn cap() {
    assert_eq!(one("CAP"), "\"exec,metrics\":cap");
    assert_eq!(one("cap $cap STREQ"), "1:true");
    let full = "1: ".repeat(64) + "CAP";
    assert_eq!(err(&full), "Limit: stack depth 64 reached");
}

// ---- agent --------------------------------------------------------------------

#[test]
fn ping() {
    assert_eq!(run("PING"), ["'host':PONG"]);
    assert_eq!(run("ping"), ["'host':PONG"]);
    assert_eq!(run("PING 1:"), ["'host':PONG", "1:"]);
    assert_eq!(run("PING PING"), ["'host':PONG", "'host':PONG"]);
    // A lexical error stops everything before PING runs.
    assert_eq!(run("PING FOO"), ["\"UnknownWord: FOO\":ERROR"]);
    // A run-time error keeps what was published before it.
    assert_eq!(
        run("PING DROP"),
        [
            "'host':PONG",
            "\"StackUnderflow: DROP needs 1 value, stack has 0\":ERROR"
        ]
    );
    let replies = run(&"PING ".repeat(9));
    assert_eq!(replies.len(), 9);
    assert_eq!(replies[8], "\"Limit: 8 PINGs per message\":ERROR");
}

#[test]
fn sel() {
    for pattern in ["host", "HOST", "ho*", "*", "h?st", "*st"] {
        let mut m = agent();
        let out = outcome(&mut m, &format!("'{pattern}': SEL"));
        assert_eq!(out.replies, ["empty"], "{pattern}");
        assert_eq!(out.effects, [Effect::Selected(true)], "{pattern}");
        assert!(m.state().selected, "{pattern}");
    }
    for pattern in ["web*", "hos", "host?", "", "other"] {
        let mut m = agent();
        let out = outcome(&mut m, &format!("'{pattern}': SEL"));
        assert_eq!(out.replies, ["empty"], "{pattern}");
        assert_eq!(out.effects, [], "{pattern}");
        assert!(!m.state().selected, "{pattern}");
    }
    assert_eq!(err("1: SEL"), "Type: SEL needs a string name, got num");
    assert_eq!(err("SEL"), "StackUnderflow: SEL needs 1 value, stack has 0");
}

#[test]
fn unsel() {
    let mut m = agent();
    m.run(b"'host': SEL");
    assert_eq!(effects(&mut m, "'web*': UNSEL"), []);
    assert!(m.state().selected);
    assert_eq!(effects(&mut m, "'h*': UNSEL"), [Effect::Selected(false)]);
    assert!(!m.state().selected);
    assert_eq!(err("2: UNSEL"), "Type: UNSEL needs a string name, got num");
    assert_eq!(
        err("UNSEL"),
        "StackUnderflow: UNSEL needs 1 value, stack has 0"
    );
}

#[test]
fn tsset() {
    let mut m = agent();
    let out = outcome(&mut m, "20: TSSET");
    assert_eq!(out.replies, ["empty"]);
    assert_eq!(out.effects, [Effect::Interval(20.0)]);
    assert_eq!(m.state().interval, 20.0);
    assert_eq!(effects(&mut m, "0.1: TSSET"), [Effect::Interval(0.1)]);
    assert_eq!(effects(&mut m, "86400: TSSET"), [Effect::Interval(86400.0)]);
    assert_eq!(effects(&mut m, "2.5: TSSET"), [Effect::Interval(2.5)]);
    assert_eq!(
        err_on(&mut m, "-1: TSSET"),
        "OutOfRange: TSSET needs 0.1..86400 seconds, got -1"
    );
    assert_eq!(
        err_on(&mut m, "0.05: TSSET"),
        "OutOfRange: TSSET needs 0.1..86400 seconds, got 0.05"
    );
    assert_eq!(
        err_on(&mut m, "86401: TSSET"),
        "OutOfRange: TSSET needs 0.1..86400 seconds, got 86401"
    );
    assert_eq!(kind("0: TSSET"), "OutOfRange");
    assert_eq!(kind("1e300: TSSET"), "OutOfRange");
    assert_eq!(m.state().interval, 2.5);
    assert_eq!(err("'20': TSSET"), "Type: TSSET needs a number, got str");
    assert_eq!(
        err("TSSET"),
        "StackUnderflow: TSSET needs 1 value, stack has 0"
    );
}

#[test]
fn lun() {
    let mut m = agent();
    m.run(b"'host': SEL 20: TSSET 1: 1: 'k': FREEZE");
    assert!(m.state().selected);
    let out = outcome(&mut m, "LUN");
    assert_eq!(out.replies, ["empty"]);
    assert_eq!(out.effects, [Effect::Reset]);
    assert!(!m.state().selected);
    assert_eq!(m.state().interval, 10.0);
    assert_eq!(m.state().stored_count(), 0);
    assert_eq!(m.state().frozen("k"), None);
    // LUN never fails by itself; an error after it keeps the reset.
    m.run(b"'host': SEL");
    let out = outcome(&mut m, "lun DROP");
    assert_eq!(out.effects, [Effect::Reset]);
    assert!(!m.state().selected);
    assert_eq!(
        out.replies,
        ["\"StackUnderflow: DROP needs 1 value, stack has 0\":ERROR"]
    );
}

#[test]
fn test_prints_yo() {
    let mut m = agent();
    let out = outcome(&mut m, "_TEST");
    assert_eq!(out.replies, ["empty"]);
    assert_eq!(out.effects, [Effect::Print("Yo".into())]);
    assert_eq!(effects(&mut m, "_test"), [Effect::Print("Yo".into())]);
    assert_eq!(err("_TESTS"), "UnknownWord: _TESTS");
    let out = outcome(&mut m, &"_TEST ".repeat(65));
    assert_eq!(out.effects.len(), 64);
    assert_eq!(out.replies, ["\"Limit: 64 effects per message\":ERROR"]);
}
