//! Filter syntax: every grammar form parses, prints canonically and parses
//! back equal; every error points at the offending character.

use bot_proto::filter::{
    self, Filter, MAX_ATOMS, MAX_DEPTH, MAX_FILTER_BYTES, MAX_REGEX_BYTES, MAX_REGEXES,
};

/// Parses `text`, checks the canonical form and that it parses back equal.
fn canonical(text: &str, expected: &str) {
    let f = filter::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(f.to_string(), expected, "canonical form of {text:?}");
    let again = filter::parse(expected).unwrap_or_else(|e| panic!("{expected:?}: {e}"));
    assert_eq!(again, f, "{text:?} re-parsed from {expected:?}");
}

/// The position and message of the error `text` gives.
fn error(text: &str) -> (usize, String) {
    match filter::parse(text) {
        Ok(f) => panic!("{text:?} parsed as {f}"),
        Err(e) => (e.position, e.message),
    }
}

/// Asserts an error's position and that its message contains `needle`.
fn error_at(text: &str, position: usize, needle: &str) {
    let (pos, msg) = error(text);
    assert_eq!(pos, position, "position for {text:?} ({msg})");
    assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
}

#[test]
fn every_atom_form() {
    canonical("*", "*");
    canonical("  *  ", "*");
    canonical("**", "*");
    canonical("tag:web", "tag:web");
    canonical("TAG:Web", "tag:Web");
    canonical("Tag:a=b", "tag:a=b");
    canonical("web*", "web*");
    canonical("db-0?", "db-0?");
    canonical("web-01.example.com", "web-01.example.com");
    canonical("os=linux", "os=linux");
    canonical("memory.total>=8e9", "memory.total>=8e9");
    canonical("_x.y-z=1", "_x.y-z=1");
}

#[test]
fn every_operator() {
    for op in ["=", "!=", "<", "<=", ">", ">=", "=~"] {
        canonical(&format!("k{op}v"), &format!("k{op}v"));
        canonical(&format!("k {op} v"), &format!("k{op}v"));
    }
}

#[test]
fn values_bare_and_quoted() {
    canonical("x='hello world'", "x=\"hello world\"");
    canonical("x=\"hello world\"", "x=\"hello world\"");
    canonical("x='5'", "x=\"5\"");
    canonical("x=5", "x=5");
    canonical("x=-2.5e3", "x=-2.5e3");
    canonical("x='a*'", "x=\"a*\"");
    canonical("x=a*", "x=a*");
    canonical("x<a*", "x<a*");
    canonical("x<'a*'", "x<a*");
    canonical("x=''", "x=\"\"");
    canonical(r#"x='it\'s'"#, "x=it's");
    canonical(r#"x='say "hi"'"#, r#"x='say "hi"'"#);
    canonical(r#"x="it's ok""#, r#"x="it's ok""#);
    canonical(r#"x='a "b" \'c\''"#, r#"x="a \"b\" 'c'""#);
    canonical(r"x='back\\slash'", r"x=back\slash");
    canonical(r"x='a b\\'", r#"x="a b\\""#);
    canonical(r"x='a\\\\b c'", r#"x="a\\\b c""#);
    canonical("x=it's", "x=it's");
    canonical("x='\"q'", "x='\"q'");
    canonical("x=a=b", "x=a=b");
    canonical("x='=b'", "x=\"=b\"");
    canonical("x=and", "x=and");
}

#[test]
fn regex_values() {
    canonical("k=~^web", "k=~^web");
    canonical(r#"k=~"^\d+$""#, r"k=~^\d+$");
    canonical(r"k=~^\d+$", r"k=~^\d+$");
    canonical(r#"k=~"^\d+ \w$""#, r#"k=~"^\d+ \w$""#);
    canonical(r#"k=~"\\\\ a""#, r#"k=~"\\\ a""#);
    canonical("k=~'a b'", "k=~\"a b\"");
    canonical("k=~a*", "k=~a*");
    canonical("k=~''", "k=~\"\"");
    // Other backslashes in quotes are kept: the same regex both ways.
    assert_eq!(filter::parse(r#"k=~"\d""#), filter::parse(r#"k=~"\\d""#));
}

#[test]
fn keywords_any_case_and_precedence() {
    canonical("a=1 OR b=2 And c=3", "a=1 or b=2 and c=3");
    assert_eq!(
        filter::parse("a=1 or b=2 and c=3"),
        filter::parse("a=1 or (b=2 and c=3)")
    );
    assert_ne!(
        filter::parse("a=1 or b=2 and c=3"),
        filter::parse("(a=1 or b=2) and c=3")
    );
    canonical("(a=1 or b=2) and c=3", "(a=1 or b=2) and c=3");
    canonical("NOT a", "not a");
    canonical("not not a", "not not a");
    canonical("not (a and b)", "not (a and b)");
    canonical("not (a or b) or c", "not (a or b) or c");
    canonical("not a and b", "not a and b");
    assert_eq!(filter::parse("not a and b"), filter::parse("(not a) and b"));
}

#[test]
fn parentheses_flatten() {
    canonical("a and (b and c)", "a and b and c");
    canonical("(a or b) or (c or d)", "a or b or c or d");
    canonical("((web*))", "web*");
    canonical("(a)and(b)", "a and b");
    canonical("not(a)", "not a");
    canonical("a and (b or (c and d))", "a and (b or c and d)");
}

#[test]
fn keywords_as_fact_names() {
    canonical("not=1", "not=1");
    canonical("and=1", "and=1");
    canonical("or = 1", "or=1");
    canonical("not not=1", "not not=1");
    canonical("tag=web", "tag=web");
}

#[test]
fn from_str_and_default() {
    let f: Filter = "os=linux".parse().expect("parses");
    assert_eq!(f, filter::parse("os=linux").expect("parses"));
    assert_eq!(Filter::default(), Filter::all());
    assert_eq!(Filter::all().to_string(), "*");
    assert!("os==x".parse::<Filter>().is_err());
}

#[test]
fn is_match_all() {
    for yes in ["*", "**", "* or os=x", "* and *", "(* or a) and *"] {
        assert!(filter::parse(yes).expect("parses").is_match_all(), "{yes}");
    }
    for no in ["web*", "os=x", "not *", "* and os=x", "tag:a"] {
        assert!(!filter::parse(no).expect("parses").is_match_all(), "{no}");
    }
}

#[test]
fn empty_filter() {
    error_at("", 0, "empty filter; use * to match every agent");
    error_at("   \t", 0, "empty filter; use * to match every agent");
}

#[test]
fn operator_errors() {
    error_at("os==linux", 2, "unknown operator `==`; use `=`");
    error_at("os => 4", 3, "unknown operator `=>`; use `>=`");
    error_at("os=<4", 2, "use `<=`");
    error_at("os<>4", 2, "use `!=`");
    error_at("os~linux", 2, "unknown operator `~`; use `=~`");
    error_at("os!~linux", 2, "use `not KEY=~REGEX`");
    error_at("os<<4", 2, "operators are = != < <= > >= =~");
    error_at("=linux", 0, "missing fact name before `=`");
    error_at("!web", 0, "`!` is not an operator here; use `not`");
    error_at("a and !=x", 6, "missing fact name before `!`");
}

#[test]
fn value_errors() {
    error_at("os=", 3, "missing value after `=`");
    error_at("os >= ", 6, "missing value after `>=`");
    error_at("(os=)", 4, "missing value after `=`");
    error_at("os='linux", 3, "unterminated string: no closing `'`");
    error_at("os=\"a\\\"", 3, "unterminated string: no closing `\"`");
    error_at("a= =b", 3, "a value starting with `=` must be quoted");
    error_at("a=x or 'web'", 7, "unexpected `'`");
}

#[test]
fn key_errors() {
    error_at("1os=x", 0, "`1` is not allowed in fact name `1os`");
    error_at("o$s=x", 1, "`$` is not allowed in fact name `o$s`");
    error_at("a and mem:total>1", 9, "`:` is not allowed");
    error_at("tag:", 4, "missing tag name after `tag:`");
    error_at("tag: web", 4, "missing tag name after `tag:`");
}

#[test]
fn structure_errors() {
    error_at("(os=linux", 0, "unclosed `(`");
    error_at("a and ((b)", 6, "unclosed `(`");
    error_at("os=linux)", 8, "unmatched `)`");
    error_at(
        "os=linux web",
        9,
        "expected `and`, `or` or the end of the filter, found `web`",
    );
    error_at("(a b)", 3, "expected `)`, `and` or `or`, found `b`");
    error_at("a and", 5, "found the end of the filter");
    error_at("a and or b", 6, "found `or`");
    error_at("and", 0, "found `and`");
    error_at("not", 3, "found the end of the filter");
    error_at("()", 1, "found `)`");
    error_at("a or )", 5, "found `)`");
    error_at("a=1 and=2", 4, "found `and=2`");
}

#[test]
fn regex_errors() {
    error_at("k=~'a('", 3, "invalid regex");
    error_at("k = ~x", 4, "a value starting with `~` must be quoted");
    let long = format!("k=~{}", "a".repeat(MAX_REGEX_BYTES + 1));
    error_at(&long, 3, "regex is 1025 bytes, longer than 1024");
    let ok = format!("k=~{}", "a".repeat(MAX_REGEX_BYTES));
    assert!(filter::parse(&ok).is_ok());
    // Compiled size: a bounded repetition that explodes.
    error_at("k=~'(a{100}){100}'", 3, "invalid regex");
    let many: Vec<String> = (0..=MAX_REGEXES).map(|i| format!("k{i}=~a")).collect();
    let text = many.join(" or ");
    let last = text.rfind("=~a").expect("has regexes") + 2;
    error_at(&text, last, "too many regexes (more than 32)");
    assert!(filter::parse(&many[..MAX_REGEXES].join(" or ")).is_ok());
}

#[test]
fn error_messages_are_one_line() {
    let (_, msg) = error("k=~'a('");
    assert!(!msg.contains('\n'), "{msg:?}");
}

#[test]
fn nesting_limit() {
    let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(filter::parse(&ok).is_ok());
    let deep = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    error_at(&deep, MAX_DEPTH, "nested too deeply");
    let nots = format!("{}a", "not ".repeat(MAX_DEPTH));
    assert!(filter::parse(&nots).is_ok());
    let nots = format!("{}a", "not ".repeat(MAX_DEPTH + 1));
    error_at(&nots, 4 * MAX_DEPTH, "nested too deeply");
    // Depth is what is open at once, not the total.
    let wide = vec!["(a)"; 100].join(" and ");
    assert!(filter::parse(&wide).is_ok());
    // Far past the limit: an error, not a stack overflow.
    let huge = "(".repeat(4000);
    error_at(&huge, MAX_DEPTH, "nested too deeply");
}

#[test]
fn atom_limit() {
    let ok = vec!["a"; MAX_ATOMS].join(" or ");
    assert!(filter::parse(&ok).is_ok());
    let text = vec!["a"; MAX_ATOMS + 1].join(" or ");
    error_at(&text, text.len() - 1, "too many terms (more than 256)");
    let text = vec!["k=1"; MAX_ATOMS + 1].join(" or ");
    error_at(&text, text.len() - 3, "too many terms");
}

#[test]
fn size_limit() {
    let ok = format!("a={}", "x".repeat(MAX_FILTER_BYTES - 2));
    assert!(filter::parse(&ok).is_ok());
    let long = format!("a={}", "x".repeat(MAX_FILTER_BYTES - 1));
    error_at(
        &long,
        MAX_FILTER_BYTES,
        "filter is 4097 bytes, longer than 4096",
    );
    // Multi-byte: the position is a character index.
    let long = "é".repeat(3000);
    error_at(&long, 2048, "filter is 6000 bytes");
}

#[test]
fn canonical_form_must_fit_too() {
    // `(aaa… or b)and ` prints with one more space per group.
    let group = format!("({} or b)and ", "a".repeat(29));
    let text = format!("{}c", group.repeat(100));
    assert_eq!(text.len(), 4001);
    error_at(
        &text,
        text.len(),
        "filter is 4101 bytes when written canonically, longer than 4096",
    );
    let text = format!("{}c", group.repeat(90));
    let f = filter::parse(&text).expect("fits");
    assert_eq!(f.to_string().len(), 90 * 41 + 1);
}

#[test]
fn messages_quote_at_most_40_characters() {
    let key = format!("1{}", "k".repeat(100));
    let (_, msg) = error(&format!("{key}=1"));
    assert!(msg.contains(&format!("`1{}…`", "k".repeat(39))), "{msg}");
    let (_, msg) = error(&format!("a {}", "w".repeat(100)));
    assert!(msg.contains(&format!("`{}…`", "w".repeat(40))), "{msg}");
    let (_, msg) = error(&format!("a{}1", "=!".repeat(100)));
    assert!(msg.contains(&format!("`{}…`", "=!".repeat(20))), "{msg}");
    let (_, msg) = error("a \u{1b}[2J");
    assert!(!msg.chars().any(char::is_control), "{msg:?}");
}

#[test]
fn positions_are_characters() {
    error_at("x=é and b==2", 9, "unknown operator `==`");
    let e = filter::parse("x=é and b==2").expect_err("bad");
    assert_eq!(
        e.to_string(),
        "filter error at column 10: unknown operator `==`; use `=`\n  x=é and b==2\n           ^"
    );
}

#[test]
fn error_display_of_long_filters_is_cut() {
    let text = format!("{} and a==1", vec!["os=linux"; 40].join(" and "));
    let e = filter::parse(&text).expect_err("bad");
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].chars().count() < 90, "{}", lines[1]);
    let caret = lines[2].chars().count() - 1;
    assert_eq!(lines[1].chars().nth(caret), Some('='));
    assert_eq!(lines[1].chars().nth(caret - 1), Some('a'));
}

/// Issue 12: `cpus>1e999` used to compare as text (and match `cpus=2`).
/// A number beyond a double is an error naming the column; quoted, it is text.
#[test]
fn numbers_that_do_not_fit_are_errors() {
    error_at("cpus>1e999", 5, "too large for a 64-bit float");
    error_at("os=linux and mem<-4e400", 17, "too large");
    canonical("cpus>'1e999'", "cpus>\"1e999\"");
    canonical("cpus>1e300", "cpus>1e300");
}
