//! Glob matching for `SEL` / `UNSEL` agent names.
//!
//! `*` matches any run of characters (including none), `?` exactly one
//! character; everything else matches itself, ignoring ASCII case. There is
//! no escaping and no `[...]` class. The algorithm is the iterative one that
//! remembers only the last `*`, so it runs in O(pattern × text) time at worst
//! and never backtracks exponentially.

/// Whether `text` matches the glob `pattern` (`*`, `?`, ASCII case-insensitive).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob_match_with(pattern, text, true)
}

/// [`glob_match`], with ASCII case ignored only when `ignore_case` (command
/// lines in a key's policy are matched exactly: `SYSTEMCTL` is another program).
pub fn glob_match_with(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen, and the text position it is trying.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c)
                if c == '?' || c == t[ti] || (ignore_case && c.eq_ignore_ascii_case(&t[ti])) =>
            {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn literal_names() {
        assert!(glob_match("web1", "web1"));
        assert!(glob_match("WEB1", "web1"));
        assert!(glob_match("web1", "WeB1"));
        assert!(!glob_match("web1", "web10"));
        assert!(!glob_match("web10", "web1"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(!glob_match("a", ""));
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(glob_match("web*", "web"));
        assert!(glob_match("web*", "web-7.example"));
        assert!(!glob_match("web*", "db1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("**", "x"));
        assert!(glob_match("*1", "web1"));
        assert!(!glob_match("*1", "web2"));
        assert!(glob_match("w?b*", "wEb9"));
        assert!(!glob_match("w?b", "wb"));
        assert!(glob_match("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!glob_match("*a*b*c*", "xxaxxcxxbxx"));
        assert!(glob_match("a*b*a", "abba"));
        assert!(glob_match("???", "é≈z"));
        assert!(!glob_match("[ab]", "a"));
        assert!(glob_match("[ab]", "[AB]"));
    }

    #[test]
    fn adversarial_pattern_is_fast() {
        let pattern = "*a".repeat(5_000) + "b";
        let text = "a".repeat(10_000);
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
