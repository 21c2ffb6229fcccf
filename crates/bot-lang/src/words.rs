//! The word list: every built-in word, its canonical (upper-case) name, and
//! case-insensitive whole-token lookup.
//!
//! What each word does is in `machine.rs`; this file only names them, so the
//! lexer can reject unknown words before anything runs.

/// A built-in word. Looked up case-insensitively by whole token:
/// `ping` is [`Word::Ping`], `SELECTED` is nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Word {
    // arithmetic
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    TrueDiv,
    Cmp,
    Band,
    Bor,
    Bxor,
    // logic
    Not,
    And,
    Or,
    Ift,
    // strings
    Cat,
    In,
    StrEq,
    ToNum,
    ToStr,
    Typ,
    Tag,
    // stack
    Dup,
    Drop,
    Swap,
    Over,
    Rot,
    NDup,
    Top,
    Len,
    Nop,
    Get,
    // matching
    Match,
    MTag,
    // storage
    Freeze,
    Thaw,
    // meta
    Eval,
    EJoin,
    EDict,
    Cap,
    // agent
    Ping,
    Sel,
    Unsel,
    TsSet,
    Lun,
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
