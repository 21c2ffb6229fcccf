//! The word list: every built-in word, its canonical (upper-case) name, and
//! case-insensitive whole-token lookup.
//!
//! What each word does is in `machine.rs`; this file only names them, so the
//! lexer can reject unknown words before anything runs.

/// A built-in word. Looked up case-insensitively by whole token:
/// `ping` is [`Word::Ping`], `SELECTED` is nothing.
///
/// Stack effects are `( before -- after )`, top on the right. Every word
/// first checks that the stack holds what it needs (`StackUnderflow`), then
/// the types (`Type`), then ranges. Results carry no tag unless stated;
/// booleans are `1:true` / `0:false`; a value is truthy when it is a
/// non-zero number or a non-empty string. A *count* (`n` below) is a whole
/// number (an integral float such as `2.0` is accepted); a negative or
/// fractional count is `OutOfRange`, one larger than the stack is
/// `StackUnderflow` — never an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Word {
    /// `ADD ( a b -- a+b )`. Two integers give an exact integer, falling back
    /// to a float on overflow; a non-finite result is `OutOfRange`.
    Add,
    /// `SUB ( a b -- a-b )`, like `ADD`.
    Sub,
    /// `MUL ( a b -- a*b )`, like `ADD` (`1e300: 1e300: MUL` is `OutOfRange`).
    Mul,
    /// `DIV ( a b -- a/b )`: true division; two integers give an integer
    /// when exact (`6: 3: DIV` → `2:`, `1: 3: DIV` → `0.3333333333333333:`).
    /// Zero divisor: `DivisionByZero: 1 0 DIV`.
    Div,
    /// `MOD ( a b -- a mod b )`: floored, the result has the sign of `b`
    /// (`-7: 3: MOD` → `2:`). Zero divisor: `DivisionByZero`.
    Mod,
    /// `TRUEDIV ( a b -- floor(a/b) )`: floor division, Python's `//`
    /// (`-7: 2: TRUEDIV` → `-4:`). Zero divisor: `DivisionByZero`.
    TrueDiv,
    /// `CMP ( a b -- -1/0/1 )`: numbers numerically, strings by code point;
    /// a number and a string is a `Type` error.
    Cmp,
    /// `BAND ( a b -- a&b )` on whole numbers within `i64` (`4.0` is
    /// accepted; `1.5` or `1e300` is `OutOfRange`).
    Band,
    /// `BOR ( a b -- a|b )`, like `BAND`.
    Bor,
    /// `BXOR ( a b -- a^b )`, like `BAND`.
    Bxor,
    /// `NOT ( x -- bool )`: true when `x` is falsy.
    Not,
    /// `AND ( a b -- bool )`: both truthy.
    And,
    /// `OR ( a b -- bool )`: either truthy.
    Or,
    /// `IFT ( t f c -- c ? t : f )`: keeps the chosen value's tag.
    Ift,
    /// `CAT ( s1 s2 -- s1s2 )`: strings only (`Type` otherwise); a result
    /// over the string limit is a `Limit` error, checked before building it.
    Cat,
    /// `IN ( hay needle -- bool )`: whether `needle` is a substring of
    /// `hay`; strings only.
    In,
    /// `STREQ ( a b -- bool )`: whether the text forms are equal (a number's
    /// text form is what `>STR` gives, so `4: '4': STREQ` is true).
    StrEq,
    /// `>NUM ( s -- n )`: reads number text (surrounding whitespace
    /// ignored, same grammar as literals), keeping the tag; a number is left
    /// as it is; unreadable text is `BadLiteral`.
    ToNum,
    /// `>STR ( n -- s )`: the number's printed text without colon and tag,
    /// keeping the tag; a string is left as it is.
    ToStr,
    /// `TYP ( x -- "num"/"str":type )`.
    Typ,
    /// `TAG ( x name -- x )`: `x` tagged `name`, which must be a string
    /// matching `[a-z_][a-z0-9_]*` of at most 64 bytes (else `BadLiteral`).
    Tag,
    /// `DUP ( x -- x x )`.
    Dup,
    /// `DROP ( x -- )`.
    Drop,
    /// `SWAP ( a b -- b a )`.
    Swap,
    /// `OVER ( a b -- a b a )`.
    Over,
    /// `n ROT ( xn … x1 n -- xn-1 … x1 xn )`: moves the `n`-th value from the
    /// top to the top, like Forth's `ROLL`: `1 ROT` does nothing, `2 ROT` is
    /// `SWAP`, `3 ROT` is Forth's `ROT`. `n` must be at least 1.
    Rot,
    /// `n NDUP ( x1 … xn n -- x1 … xn x1 … xn )`: duplicates the top `n`
    /// values (`0` does nothing); past the stack limit is a `Limit` error.
    NDup,
    /// `TOP ( … x -- x )`: keeps only the top value.
    Top,
    /// `LEN ( -- depth )`: the stack depth before `LEN`.
    Len,
    /// `NOP ( -- )`.
    Nop,
    /// `key GET ( key -- x )`: a copy of the value nearest the top whose tag
    /// is the string `key`; none is `NotFound: no value tagged key`.
    Get,
    /// `items… ref n MATCH ( -- count )`: pops `n`, `ref`, then `n` items;
    /// pushes how many items equal `ref` in type and value (tags ignored,
    /// `1` equals `1.0`).
    Match,
    /// `items… tag n MTAG ( -- count )`: pops `n`, the string `tag`, then `n`
    /// items; pushes how many items are tagged `tag` (`''` counts untagged
    /// ones).
    MTag,
    /// `n name FREEZE ( x1 … xn n name -- x1 … xn )`: stores copies of the
    /// top `n` values under the string `name` (1 to 64 bytes) without
    /// popping them, replacing what was stored under that name. The total
    /// stored, across names, is bounded by `max_stored` (a name storing no
    /// values counts as one). Survives across messages until `LUN`.
    Freeze,
    /// `name THAW ( name -- x1 … xn )`: pushes copies of the values stored
    /// under `name`, bottom first; `NotFound` if nothing is.
    Thaw,
    /// `s EVAL ( s -- … )`: runs the string as a program on the same stack,
    /// with `,` as a separator outside string literals. The string is lexed
    /// whole first. Nesting is bounded by `max_eval_depth` (`Limit: EVAL
    /// nesting 8 reached`); steps are shared with the outer program.
    Eval,
    /// `EJOIN ( … -- s )`: pops the whole stack and pushes
    /// `tag=val&tag=val` of its tagged values, bottom to top (untagged ones
    /// are skipped); values in text form with `%`, `&`, `=` and control
    /// characters percent-encoded.
    EJoin,
    /// `EDICT ( … -- s )`: like `EJOIN` but a compact JSON object
    /// (`{"a":1,"b":"x"}`); a repeated tag overwrites the earlier value and
    /// keeps its first position; numbers are JSON numbers.
    EDict,
    /// `CAP ( -- s )`: the agent's capabilities joined with `,`, tagged `cap`.
    Cap,
    /// `PING ( -- )`: publishes `'<name>':PONG` (before the final reply);
    /// at most [`crate::MAX_PONGS`] per message.
    Ping,
    /// `SEL ( pattern -- )`: if the glob (see [`crate::glob_match`]) matches
    /// the agent's name, the agent becomes selected
    /// ([`crate::Effect::Selected`]`(true)`).
    Sel,
    /// `UNSEL ( pattern -- )`: like `SEL`, unselecting.
    Unsel,
    /// `TSSET ( seconds -- )`: sets the interval, which must be within
    /// `0.1..=86400` (else `OutOfRange: TSSET needs 0.1..86400 seconds, got
    /// -1`); [`crate::Effect::Interval`].
    TsSet,
    /// `LUN ( -- )`: unselected, the default interval, stored values
    /// cleared; [`crate::Effect::Reset`].
    Lun,
    /// `_TEST ( -- )`: the agent prints `Yo` ([`crate::Effect::Print`]).
    Test,
}

impl Word {
    /// Every word, in the order of forth.md's table.
    pub const ALL: [Word; 45] = [
        Word::Add,
        Word::Sub,
        Word::Mul,
        Word::Div,
        Word::Mod,
        Word::TrueDiv,
        Word::Cmp,
        Word::Band,
        Word::Bor,
        Word::Bxor,
        Word::Not,
        Word::And,
        Word::Or,
        Word::Ift,
        Word::Cat,
        Word::In,
        Word::StrEq,
        Word::ToNum,
        Word::ToStr,
        Word::Typ,
        Word::Tag,
        Word::Dup,
        Word::Drop,
        Word::Swap,
        Word::Over,
        Word::Rot,
        Word::NDup,
        Word::Top,
        Word::Len,
        Word::Nop,
        Word::Get,
        Word::Match,
        Word::MTag,
        Word::Freeze,
        Word::Thaw,
        Word::Eval,
        Word::EJoin,
        Word::EDict,
        Word::Cap,
        Word::Ping,
        Word::Sel,
        Word::Unsel,
        Word::TsSet,
        Word::Lun,
        Word::Test,
    ];

    /// The canonical spelling, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Word::Add => "ADD",
            Word::Sub => "SUB",
            Word::Mul => "MUL",
            Word::Div => "DIV",
            Word::Mod => "MOD",
            Word::TrueDiv => "TRUEDIV",
            Word::Cmp => "CMP",
            Word::Band => "BAND",
            Word::Bor => "BOR",
            Word::Bxor => "BXOR",
            Word::Not => "NOT",
            Word::And => "AND",
            Word::Or => "OR",
            Word::Ift => "IFT",
            Word::Cat => "CAT",
            Word::In => "IN",
            Word::StrEq => "STREQ",
            Word::ToNum => ">NUM",
            Word::ToStr => ">STR",
            Word::Typ => "TYP",
            Word::Tag => "TAG",
            Word::Dup => "DUP",
            Word::Drop => "DROP",
            Word::Swap => "SWAP",
            Word::Over => "OVER",
            Word::Rot => "ROT",
            Word::NDup => "NDUP",
            Word::Top => "TOP",
            Word::Len => "LEN",
            Word::Nop => "NOP",
            Word::Get => "GET",
            Word::Match => "MATCH",
            Word::MTag => "MTAG",
            Word::Freeze => "FREEZE",
            Word::Thaw => "THAW",
            Word::Eval => "EVAL",
            Word::EJoin => "EJOIN",
            Word::EDict => "EDICT",
            Word::Cap => "CAP",
            Word::Ping => "PING",
            Word::Sel => "SEL",
            Word::Unsel => "UNSEL",
            Word::TsSet => "TSSET",
            Word::Lun => "LUN",
            Word::Test => "_TEST",
        }
    }

    /// Looks a token up, ignoring ASCII case; whole tokens only.
    pub fn lookup(token: &str) -> Option<Word> {
        // No word is longer than 7 bytes: skip the scan for anything longer.
        if token.len() > 8 {
            return None;
        }
        Word::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(token))
    }
}

impl std::fmt::Display for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_whole_token() {
        assert_eq!(Word::lookup("PING"), Some(Word::Ping));
        assert_eq!(Word::lookup("ping"), Some(Word::Ping));
        assert_eq!(Word::lookup("PiNg"), Some(Word::Ping));
        assert_eq!(Word::lookup(">num"), Some(Word::ToNum));
        assert_eq!(Word::lookup("_test"), Some(Word::Test));
        assert_eq!(Word::lookup("SELECTED"), None);
        assert_eq!(Word::lookup("SE"), None);
        assert_eq!(Word::lookup(""), None);
        assert_eq!(Word::lookup("PİNG"), None);
    }

    #[test]
    fn every_name_round_trips() {
        for w in Word::ALL {
            assert_eq!(Word::lookup(w.name()), Some(w));
            assert_eq!(Word::lookup(&w.name().to_lowercase()), Some(w));
            assert!(w.name().len() <= 8);
        }
    }
}
