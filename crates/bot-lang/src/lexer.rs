//! The lexer: program text to [`Token`]s, rejecting anything malformed
//! before a single token runs.
//!
//! Rules (forth.md, "Lexical syntax"):
//!
//! - tokens are separated by whitespace (and by `,` inside `EVAL`, see
//!   [`tokenize_eval`]);
//! - a token starting with `'` or `"` is a string literal: it runs to the
//!   matching unescaped quote (whitespace included), escapes are `\\` `\'`
//!   `\"` only, and it must be followed by `:` and an optional tag;
//! - `#` at the start of a token opens a comment that runs to the next `#`;
//! - `$name` is an allow-listed variable ([`Var`]);
//! - any other token containing `:` is a number literal `<number>:<tag>`,
//!   split at its last `:`;
//! - anything else must be a word ([`Word::lookup`]).
//!
//! Because the whole text is lexed first, a program with an unknown word, a
//! bad literal or an unknown variable does nothing at all (`SELECTED` can
//! never run half of anything).

use crate::error::{Error, ErrorKind, Result, cut};
use crate::value::{Value, is_valid_tag, parse_number};
use crate::words::Word;

/// One lexed token.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A literal, pushed as is.
    Literal(Value),
    /// A built-in word.
    Word(Word),
    /// An agent variable, read when it runs.
    Var(Var),
}

/// The allow-listed agent variables. Nothing else is ever exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// `$name`: the agent's name, a string tagged `name`.
    Name,
    /// `$interval`: the current interval in seconds, a number tagged `interval`.
    Interval,
    /// `$time_slice`: alias of `$interval`, tagged `time_slice`.
    TimeSlice,
    /// `$cap`: the capabilities joined with `,`, a string tagged `cap`.
    Cap,
    /// `$version`: the agent's version, a string tagged `version`.
    Version,
}

impl Var {
    /// Looks up the text after `$` (case-sensitive: variables are lower-case).
    pub fn lookup(name: &str) -> Option<Var> {
        match name {
            "name" => Some(Var::Name),
            "interval" => Some(Var::Interval),
            "time_slice" => Some(Var::TimeSlice),
            "cap" => Some(Var::Cap),
            "version" => Some(Var::Version),
            _ => None,
        }
    }

    /// The variable's name, which is also the tag of the value it pushes.
    pub fn name(self) -> &'static str {
        match self {
            Var::Name => "name",
            Var::Interval => "interval",
            Var::TimeSlice => "time_slice",
            Var::Cap => "cap",
            Var::Version => "version",
        }
    }
}

/// Lexes a whole program (a payload): whitespace separates tokens.
pub fn tokenize(src: &str) -> Result<Vec<Token>> {
    lex(src, false)
}

/// Lexes the text given to `EVAL`: like [`tokenize`], but `,` also separates
/// tokens (outside string literals, where it stays a comma).
pub fn tokenize_eval(src: &str) -> Result<Vec<Token>> {
    lex(src, true)
}

fn lex(src: &str, commas: bool) -> Result<Vec<Token>> {
    let is_sep = |c: char| c.is_whitespace() || (commas && c == ',');
    let mut out = Vec::new();
    let mut rest = src;
    loop {
        rest = rest.trim_start_matches(is_sep);
        let Some(first) = rest.chars().next() else {
            return Ok(out);
        };
        match first {
            '#' => match rest[1..].find('#') {
                Some(i) => rest = &rest[i + 2..],
                None => {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        format!("unterminated comment {}", cut(rest)),
                    ));
                }
            },
            '\'' | '"' => {
                let (value, after) = lex_string(rest, first, is_sep)?;
                out.push(Token::Literal(value));
                rest = after;
            }
            _ => {
                let end = rest.find(is_sep).unwrap_or(rest.len());
                out.push(classify(&rest[..end])?);
                rest = &rest[end..];
            }
        }
    }
}

/// Lexes a quoted literal at the start of `text`; returns it and the rest.
fn lex_string(text: &str, quote: char, is_sep: impl Fn(char) -> bool) -> Result<(Value, &str)> {
    let mut content = String::new();
    let mut chars = text.char_indices().skip(1);
    let mut bad_escape = None;
    let close = loop {
        let Some((i, c)) = chars.next() else {
            return Err(Error::new(
                ErrorKind::Syntax,
                format!("unterminated string {}", cut(text)),
            ));
        };
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '\'' | '"'))) => content.push(e),
                Some((_, e)) => {
                    // Keep scanning to find the token's end for the message.
                    bad_escape.get_or_insert(e);
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        format!("unterminated string {}", cut(text)),
                    ));
                }
            },
            c if c == quote => break i,
            c => content.push(c),
        }
    };
    let after_quote = close + quote.len_utf8();
    let end = text[after_quote..]
        .find(&is_sep)
        .map_or(text.len(), |i| after_quote + i);
    let token = &text[..end];
    if let Some(e) = bad_escape {
        return Err(Error::new(
            ErrorKind::BadLiteral,
            format!("{} (unknown escape \\{e})", cut(token)),
        ));
    }
    let suffix = &text[after_quote..end];
    let Some(tag) = suffix.strip_prefix(':') else {
        return Err(Error::new(
            ErrorKind::BadLiteral,
            format!("{} (a string literal needs ':' after it)", cut(token)),
        ));
    };
    if !tag.is_empty() && !is_valid_tag(tag) {
        return Err(Error::new(
            ErrorKind::BadLiteral,
            format!("{} (a tag is [a-z_][a-z0-9_]*)", cut(token)),
        ));
    }
    Ok((Value::Str(content, tag.to_owned()), &text[end..]))
}

/// Classifies an unquoted token.
fn classify(token: &str) -> Result<Token> {
    if let Some(name) = token.strip_prefix('$') {
        return Var::lookup(name)
            .map(Token::Var)
            .ok_or_else(|| Error::new(ErrorKind::UnknownVariable, cut(token)));
    }
    if let Some(colon) = token.rfind(':') {
        let (body, tag) = (&token[..colon], &token[colon + 1..]);
        if !tag.is_empty() && !is_valid_tag(tag) {
            return Err(Error::new(ErrorKind::BadLiteral, cut(token)));
        }
        return parse_number(body)
            .map(|n| Token::Literal(Value::Num(n, tag.to_owned())))
            .ok_or_else(|| Error::new(ErrorKind::BadLiteral, cut(token)));
    }
    Word::lookup(token)
        .map(Token::Word)
        .ok_or_else(|| Error::new(ErrorKind::UnknownWord, cut(token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Number;

    fn kind(src: &str) -> ErrorKind {
        tokenize(src).expect_err(src).kind()
    }

    #[test]
    fn words_numbers_strings() {
        let t = tokenize("2: 2:n ADD 'two words':t \"x\": ping").expect("lexes");
        assert_eq!(
            t,
            vec![
                Token::Literal(Value::num(2)),
                Token::Literal(Value::num(2).with_tag("n")),
                Token::Word(Word::Add),
                Token::Literal(Value::str("two words").with_tag("t")),
                Token::Literal(Value::str("x")),
                Token::Word(Word::Ping),
            ]
        );
    }

    #[test]
    fn whitespace_of_all_kinds_separates() {
        let t = tokenize("\t1:\n2:\r\n 3:\u{a0}NOP  ").expect("lexes");
        assert_eq!(t.len(), 4);
        assert_eq!(tokenize("").expect("lexes"), vec![]);
        assert_eq!(tokenize(" \n\t ").expect("lexes"), vec![]);
    }

    #[test]
    fn escapes() {
        let t = tokenize(r#"'a\'b\\c\"d':"#).expect("lexes");
        assert_eq!(t, vec![Token::Literal(Value::str(r#"a'b\c"d"#))]);
        let t = tokenize(r#""it's":"#).expect("lexes");
        assert_eq!(t, vec![Token::Literal(Value::str("it's"))]);
        assert_eq!(kind(r"'a\nb':"), ErrorKind::BadLiteral);
        assert_eq!(kind(r"'a\"), ErrorKind::Syntax);
    }

    #[test]
    fn string_literal_needs_colon_and_valid_tag() {
        assert_eq!(kind("'abc'"), ErrorKind::BadLiteral);
        assert_eq!(kind("'abc'x:"), ErrorKind::BadLiteral);
        assert_eq!(kind("'abc':TAG"), ErrorKind::BadLiteral);
        assert_eq!(kind("'abc':'d':"), ErrorKind::BadLiteral);
        assert_eq!(kind("'abc"), ErrorKind::Syntax);
        assert_eq!(kind("\"abc' :"), ErrorKind::Syntax);
    }

    #[test]
    fn comments() {
        let t = tokenize("#a comment# 1: #another\none#2:").expect("lexes");
        assert_eq!(t.len(), 2);
        assert_eq!(tokenize("#x##y#").expect("lexes"), vec![]);
        assert_eq!(kind("1: #open"), ErrorKind::Syntax);
        let e = tokenize("#open").expect_err("unterminated");
        assert_eq!(e.to_string(), "Syntax: unterminated comment #open");
    }

    #[test]
    fn variables() {
        let t = tokenize("$name $interval $time_slice $cap $version").expect("lexes");
        assert_eq!(
            t,
            vec![
                Token::Var(Var::Name),
                Token::Var(Var::Interval),
                Token::Var(Var::TimeSlice),
                Token::Var(Var::Cap),
                Token::Var(Var::Version),
            ]
        );
        for bad in ["$client", "$", "$NAME", "$name:", "$env"] {
            assert_eq!(kind(bad), ErrorKind::UnknownVariable, "{bad}");
        }
        assert_eq!(
            tokenize("$client").expect_err("rejected").to_string(),
            "UnknownVariable: $client"
        );
    }

    #[test]
    fn bad_number_literals() {
        for bad in [
            "1e999999:",
            "nan:",
            "inf:",
            "Infinity:",
            "abc:",
            ":",
            "1:2:",
            "1:A",
            "1:-x",
            "0x1:",
        ] {
            assert_eq!(kind(bad), ErrorKind::BadLiteral, "{bad}");
        }
        assert_eq!(
            tokenize("1e999999:").expect_err("bad").to_string(),
            "BadLiteral: 1e999999:"
        );
    }

    #[test]
    fn number_literals() {
        let t = tokenize("20: -3: 2.5: 1e3: 7:count").expect("lexes");
        let nums: Vec<_> = t
            .iter()
            .map(|t| match t {
                Token::Literal(Value::Num(n, tag)) => (n.to_string(), tag.clone()),
                other => panic!("not a number: {other:?}"),
            })
            .collect();
        assert_eq!(
            nums,
            [
                ("20", ""),
                ("-3", ""),
                ("2.5", ""),
                ("1000", ""),
                ("7", "count")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(matches!(
            tokenize("4:").expect("lexes")[0],
            Token::Literal(Value::Num(Number::Int(4), _))
        ));
    }

    #[test]
    fn unknown_words_are_whole_tokens() {
        assert_eq!(kind("SELECTED"), ErrorKind::UnknownWord);
        assert_eq!(kind("PING'"), ErrorKind::UnknownWord);
        assert_eq!(kind("PING#x#"), ErrorKind::UnknownWord);
        assert_eq!(
            tokenize("FOO").expect_err("unknown").to_string(),
            "UnknownWord: FOO"
        );
        let long = "X".repeat(1000);
        let e = tokenize(&long).expect_err("unknown");
        assert_eq!(e.message(), format!("{}…", "X".repeat(40)));
    }

    #[test]
    fn commas_separate_only_in_eval() {
        assert_eq!(kind("1:,2:"), ErrorKind::BadLiteral);
        let t = tokenize_eval("1:,2:,ADD,'a,b':").expect("lexes");
        assert_eq!(
            t,
            vec![
                Token::Literal(Value::num(1)),
                Token::Literal(Value::num(2)),
                Token::Word(Word::Add),
                Token::Literal(Value::str("a,b")),
            ]
        );
        let t = tokenize_eval("'x':tag,DUP").expect("lexes");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn quotes_inside_other_quotes() {
        let t = tokenize(r#""a 'b' c": 'd "e"':"#).expect("lexes");
        assert_eq!(
            t,
            vec![
                Token::Literal(Value::str("a 'b' c")),
                Token::Literal(Value::str("d \"e\"")),
            ]
        );
    }
}
