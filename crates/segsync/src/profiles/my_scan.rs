//! How MySQL and MariaDB read SQL text, as far as the shape of a query depends on it: where
//! strings, quoted identifiers and comments begin and end. [`scan`] refuses a predicate (or a
//! source's query) that could change the shape of the query it is put in, and the calls and
//! clauses that reach outside the profiles or hold the server.
//!
//! The rules followed (MySQL 8 and MariaDB 10/11 lexers, with the `sql_mode` the source fixes
//! before every statement: no `ANSI_QUOTES`, no `NO_BACKSLASH_ESCAPES`):
//!
//! - `'…'` and `"…"` are strings: a backslash escapes the next character (`'\''`), and a
//!   doubled quote is a quote (`'it''s'`). `N'…'` and `_utf8mb4'…'` are the same strings after
//!   a word. `X'…'` and `B'…'` (a word of that one letter) end at the next quote.
//! - `` `…` `` is an identifier; a doubled backtick is a backtick; no backslash escapes.
//! - `#` starts a comment to the end of the line, and so does `-- ` (two dashes followed by a
//!   space, a tab or a line break: `1--1` is arithmetic). `/* … */` comments do not nest.
//! - `/*! … */`, `/*!50000 … */` and MariaDB's `/*M! … */` are *version comments*, which the
//!   server runs as SQL: refused. So are `/*+ … */` optimizer hints (`MAX_EXECUTION_TIME`,
//!   `SET_VAR` in a hint would undo the source's limits).
//!
//! Outside all of these the parentheses must balance (never closing more than were opened),
//! and there may be no `;`, no `?` parameter, no `:=` assignment, no `INTO` (`INTO OUTFILE`,
//! `INTO DUMPFILE`, `INTO @var`), no `PROCEDURE`, and no call of the functions that hold the
//! server or reach outside the profiles ([`refused_call`]). A bare carriage return (one not
//! followed by a line feed) and other control characters are refused, so that no rule about
//! where a line ends can differ between this scanner and the server.

use super::PredicateError;

/// Checks SQL text the way the MySQL / MariaDB lexer would see it (see the module's rules).
pub(crate) fn scan(sql: &str) -> Result<(), PredicateError> {
    let b = sql.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let bare_cr = c == b'\r' && b.get(i + 1) != Some(&b'\n');
        if bare_cr || (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')) || c == 0x7f {
            return Err(PredicateError::NotAllowed(
                "control characters (other than tab and line breaks)".into(),
            ));
        }
    }
    let mut depth: i64 = 0;
    let mut tokens = 0usize;
    // The word written last (comments and spaces aside): a function's name when `(` follows.
    let mut name: Option<String> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let last = name.take();
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                name = last;
            }
            b'#' => {
                i = line_end(b, i);
                name = last;
            }
            b'-' if next == Some(b'-') && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) => {
                i = line_end(b, i);
                name = last;
            }
            b'/' if next == Some(b'*') => {
                i = comment_end(b, i)?;
                name = last;
            }
            b'\'' | b'"' => {
                tokens += 1;
                i = string_end(b, i, true)?;
            }
            b'`' => {
                tokens += 1;
                let end = identifier_end(b, i)?;
                name = Some(sql[i + 1..end - 1].replace("``", "`"));
                i = end;
            }
            b';' => return Err(PredicateError::MultipleStatements),
            b'?' => return Err(PredicateError::NotAllowed("SQL parameters (?)".into())),
            b':' if next == Some(b'=') => {
                return Err(PredicateError::NotAllowed(
                    "assignments (:=) to variables".into(),
                ))
            }
            b'(' => {
                if let Some(called) = last {
                    if let Some(why) = refused_call(&called) {
                        return Err(PredicateError::NotAllowed(why));
                    }
                }
                tokens += 1;
                depth += 1;
                i += 1;
            }
            b')' => {
                tokens += 1;
                depth -= 1;
                if depth < 0 {
                    return Err(PredicateError::Unbalanced("a ')' without its '('"));
                }
                i += 1;
            }
            c if word_char(c) => {
                tokens += 1;
                let mut j = i + 1;
                while j < b.len() && word_char(b[j]) {
                    j += 1;
                }
                let word = &sql[i..j];
                if j == i + 1 && matches!(c, b'x' | b'X' | b'b' | b'B') && b.get(j) == Some(&b'\'')
                {
                    i = string_end(b, j, false)?;
                    continue;
                }
                if let Some(why) = refused_word(word) {
                    return Err(PredicateError::NotAllowed(why));
                }
                name = Some(word.to_string());
                i = j;
            }
            _ => {
                tokens += 1;
                i += 1;
            }
        }
    }
    if tokens == 0 {
        return Err(PredicateError::Empty);
    }
    if depth > 0 {
        return Err(PredicateError::Unbalanced("a '(' without its ')'"));
    }
    Ok(())
}

/// A character of an unquoted word (identifier, keyword or number): MySQL lets identifiers
/// start with a digit, and any non-ASCII character is part of one.
fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Keywords that would make a predicate more than an expression.
fn refused_word(word: &str) -> Option<String> {
    if word.eq_ignore_ascii_case("INTO") {
        return Some("INTO (INTO OUTFILE, INTO DUMPFILE, INTO @variable)".into());
    }
    if word.eq_ignore_ascii_case("PROCEDURE") {
        return Some("PROCEDURE clauses".into());
    }
    None
}

/// Functions a predicate may not call: they wait (and hold a connection and the transaction
/// open), take server-wide locks, read files of the server, or change state that outlives
/// the statement.
const REFUSED_CALLS: &[(&str, &str)] = &[
    ("sleep", "waits"),
    ("benchmark", "burns the server's CPU"),
    ("load_file", "reads a file of the server"),
    ("get_lock", "takes a server-wide lock"),
    ("release_lock", "releases a server-wide lock"),
    ("release_all_locks", "releases server-wide locks"),
    ("is_free_lock", "inspects server-wide locks"),
    ("is_used_lock", "inspects server-wide locks"),
    ("master_pos_wait", "waits for replication"),
    ("source_pos_wait", "waits for replication"),
    ("master_gtid_wait", "waits for replication"),
    ("wait_for_executed_gtid_set", "waits for replication"),
    ("wait_until_sql_thread_after_gtids", "waits for replication"),
    ("last_insert_id", "sets a session value"),
    ("nextval", "advances a sequence"),
    ("setval", "changes a sequence"),
    ("lastval", "reads the session's sequence state"),
    ("sys_exec", "runs a program on the server"),
    ("sys_eval", "runs a program on the server"),
];

/// Why a call of `name` (as written, maybe backquoted) is refused, if it is.
pub(crate) fn refused_call(name: &str) -> Option<String> {
    REFUSED_CALLS
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(name.trim()))
        .map(|(f, why)| format!("{}() ({why})", f.to_ascii_uppercase()))
}

/// The end of a `#` or `-- ` comment: the next line feed (or the end).
fn line_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// The end of a `/* */` comment starting at `i` (they do not nest); version comments and
/// optimizer hints are refused.
fn comment_end(b: &[u8], i: usize) -> Result<usize, PredicateError> {
    match b.get(i + 2) {
        Some(b'!') => {
            return Err(PredicateError::NotAllowed(
                "version comments (/*! … */), which MySQL runs as SQL".into(),
            ))
        }
        Some(b'M' | b'm') if b.get(i + 3) == Some(&b'!') => {
            return Err(PredicateError::NotAllowed(
                "version comments (/*M! … */), which MariaDB runs as SQL".into(),
            ))
        }
        Some(b'+') => {
            return Err(PredicateError::NotAllowed(
                "optimizer hints (/*+ … */)".into(),
            ))
        }
        _ => {}
    }
    let mut j = i + 2;
    loop {
        match (b.get(j), b.get(j + 1)) {
            (None, _) => return Err(PredicateError::Unterminated("/* comment")),
            (Some(b'*'), Some(b'/')) => return Ok(j + 2),
            _ => j += 1,
        }
    }
}

/// The end of a string whose opening quote (`'` or `"`) is at `i`: a doubled quote is a
/// quote and, with `escapes`, a backslash escapes the next character.
fn string_end(b: &[u8], i: usize, escapes: bool) -> Result<usize, PredicateError> {
    let quote = b[i];
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(PredicateError::Unterminated("string")),
            Some(b'\\') if escapes => j += 2,
            Some(&c) if c == quote && b.get(j + 1) == Some(&quote) => j += 2,
            Some(&c) if c == quote => return Ok(j + 1),
            Some(_) => j += 1,
        }
    }
}

/// The end of a backquoted identifier whose opening backtick is at `i`.
fn identifier_end(b: &[u8], i: usize) -> Result<usize, PredicateError> {
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(PredicateError::Unterminated("quoted identifier")),
            Some(b'`') if b.get(j + 1) == Some(&b'`') => j += 2,
            Some(b'`') => return Ok(j + 1),
            Some(_) => j += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> PredicateError {
        match scan(sql) {
            Err(e) => e,
            Ok(()) => panic!("accepted: {sql}"),
        }
    }

    #[test]
    fn scans_ordinary_predicates() {
        for ok in [
            "ltv > 500 AND country = 'RO'",
            "name = 'it''s; (not) code' AND note = \"a \\\" ) ; b\"",
            "`we;ird (col` = 1 AND `a``b` = 2",
            "JSON_EXTRACT(attrs, '$.plan') = 'pro' AND 1--1 = 2",
            "x = 1 # a comment with ) and ;\n AND y = 2",
            "x = 1 -- a comment with ) and ;",
            "x = 1 /* a comment ) ; */ AND y = X'1F' AND z = _utf8mb4'ț' AND w = N'x'",
            "signed_up >= DATE '2024-01-01' - INTERVAL 30 DAY",
            "x IN (1, (2)) AND 1e3 < amount AND .5 < ratio",
            "note = 'sleep(1)' AND `into` = 1 AND sleeper(1) = 1",
            "x = 1\r\n AND y = 2",
        ] {
            assert!(scan(ok).is_ok(), "{ok}: {:?}", scan(ok));
        }
    }

    #[test]
    fn refuses_what_would_change_the_query() {
        assert!(matches!(refused("  "), PredicateError::Empty));
        assert!(matches!(refused("# only"), PredicateError::Empty));
        assert!(matches!(
            refused("true; DROP TABLE customers"),
            PredicateError::MultipleStatements
        ));
        for breakout in [
            "1=1) OR (true",
            // A backslash escapes the quote in MySQL: the string ends at the third quote.
            "email = '\\'' ) OR (true -- '",
            "email = \"\\\"\" ) OR (true -- \"",
            // `--` without a space is not a comment: the ')' counts.
            "x = 1 --) OR (true",
            // Comments do not nest: the first '*/' ends this one.
            "true /* /* */ ( */ ) OR (true",
            // A backquoted name holds a quote; what follows is code.
            "`a'` = 1) OR (true -- '",
        ] {
            assert!(
                matches!(refused(breakout), PredicateError::Unbalanced(_)),
                "{breakout}: {:?}",
                scan(breakout)
            );
        }
        for open in [
            "x = 'open",
            "x = 'open\\'",
            "`open = 1",
            "x /* open",
            "x = X'1",
        ] {
            assert!(
                matches!(refused(open), PredicateError::Unterminated(_)),
                "{open}"
            );
        }
        for bad in [
            "x = 1 /*! OR 1=1 */",
            "x = 1 /*!50000 ) OR (true */",
            "x = 1 /*M!100000 OR 1 */",
            "x IN (SELECT /*+ MAX_EXECUTION_TIME(100000) */ 1)",
            "SLEEP(5) = 0",
            "`sleep` (5) = 0",
            "x = BENCHMARK(1000000, MD5('a'))",
            "LOAD_FILE('/etc/passwd') IS NOT NULL",
            "x IN (SELECT 1 INTO OUTFILE '/tmp/x')",
            "id = ?",
            "(@a := 1) = 1",
            "GET_LOCK('x', 10) = 1",
            "x = 1\ry = 2",
            "x = 1\0",
        ] {
            assert!(
                matches!(refused(bad), PredicateError::NotAllowed(_)),
                "{bad}: {:?}",
                scan(bad)
            );
        }
    }
}
