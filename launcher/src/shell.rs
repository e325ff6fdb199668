//! POSIX shell quoting and the strict character sets of everything the launcher writes into a
//! shell command.
//!
//! The rule (thesis-code.md §8 item 32 is the bug it fixes): user text reaches a shell only as
//! **one single-quoted word** made by [`quote`]; values the launcher generates or checks itself
//! (job names, UUIDs, the supervisor URL, report tokens) must also pass a strict character set
//! ([`check_charset`]) so that nothing in them could ever mean anything to a shell or break the
//! JSON the reporter builds.

/// Quotes `s` as one POSIX shell word: wrapped in single quotes, each `'` written as `'\''`.
/// Inside single quotes nothing is special (no `$`, backtick, `\`, `;`, newline handling), so the
/// word reaches the command verbatim. Words made only of characters that are never special
/// (`[A-Za-z0-9_./:@%+,-]`) are left bare for
/// readability; `=` is not among them (a bare `a=b` in command position is an assignment). The
/// empty string becomes `''`.
#[must_use]
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(is_bare_safe) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str(r"'\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Always single-quotes (even safe words), for places where a reader should see the quoting.
#[must_use]
pub fn quote_always(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    out.push_str(&s.replace('\'', r"'\''"));
    out.push('\'');
    out
}

/// Quotes each word and joins them with spaces.
#[must_use]
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_bare_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'.' | b'/' | b':' | b'@' | b'%' | b'+' | b',' | b'-'
        )
}

/// Checks that `value` is non-empty and made only of ASCII letters, digits and the characters in
/// `extra`. Returns the first offending character otherwise.
///
/// # Errors
/// A sentence naming the offending character (or emptiness).
pub fn check_charset(value: &str, extra: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".to_owned());
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c)))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains {c:?}; only ASCII letters, digits and {} are allowed",
            describe(extra)
        )),
    }
}

fn describe(extra: &str) -> String {
    let parts: Vec<String> = extra.chars().map(|c| format!("'{c}'")).collect();
    match parts.len() {
        0 => "nothing else".to_owned(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc"), "abc");
        assert_eq!(quote("/linpack_openmp"), "/linpack_openmp");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(id)"), "'$(id)'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote_always("x"), "'x'");
        assert_eq!(join(&["a", "b c"]), "a 'b c'");
    }

    #[test]
    fn charset() {
        check_charset("openmpLinpack1", "_.-").unwrap();
        assert!(check_charset("", "_").unwrap_err().contains("empty"));
        let e = check_charset("a;b", "_.-").unwrap_err();
        assert!(e.contains("';'") && e.contains("'_', '.' and '-'"), "{e}");
    }
}
