//! When a re-run may evaluate only the profiles that changed, and why not.
//!
//! A run records what it evaluated from: the profiles' import generation and a print of
//! everything else its result depends on (each segment's predicate and tag, the mapping, the
//! export's settings, the profile source). The next run evaluates only the profiles changed
//! since that generation when all of it is the same, the last run completed with nothing
//! left to retry, and no predicate reads the clock; otherwise it takes a full pass, and says
//! why.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// A short, stable print of `text` (hex).
pub fn print(text: &str) -> String {
    let d = Md5::digest(text.as_bytes());
    hex::encode(&d[..8])
}

/// The prints of what a run's result depends on, by part: `segment:NAME`, `mapping`,
/// `export`, `source`.
pub type ConfigPrints = BTreeMap<String, String>;

/// Why two configurations give different results, in words (`None`: they are the same).
pub fn config_change(before: &ConfigPrints, now: &ConfigPrints) -> Option<String> {
    for (part, print) in now {
        match before.get(part) {
            Some(p) if p == print => {}
            Some(_) => return Some(changed(part, "changed")),
            None => return Some(changed(part, "was added")),
        }
    }
    before
        .keys()
        .find(|part| !now.contains_key(*part))
        .map(|part| changed(part, "was removed"))
}

fn changed(part: &str, what: &str) -> String {
    match part.strip_prefix("segment:") {
        Some(name) => format!("segment '{name}' {what}"),
        None if part == "mapping" => format!("the mapping {what}"),
        None if part == "export" => format!("the export's settings {what}"),
        None if part == "source" => format!("the profile source {what}"),
        None if part == "holds" => {
            format!("the suppression lists or the remembered refusals {what}")
        }
        None => format!("{part} {what}"),
    }
}

/// Words that make a predicate's result depend on when (or how often) it is evaluated.
const CLOCK_WORDS: [&str; 22] = [
    "'now'",
    "\"now\"",
    "current_date",
    "current_time",
    "localtime",
    "now(",
    "sysdate",
    "curdate(",
    "curtime(",
    "utc_date",
    "utc_time",
    "random(",
    "rand(",
    "uuid",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "date()",
    "time()",
    "julianday()",
    "unixepoch()",
];

/// Whether a predicate reads the clock (`date('now')`, `CURRENT_DATE`, `now()`, `date()`,
/// `strftime('%s')`, ...) or a random source: its result can change with no import, so a
/// re-run must evaluate every profile. Errs on the side of yes.
pub fn reads_clock(predicate: &str) -> bool {
    let squeezed: String = predicate
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    CLOCK_WORDS.iter().any(|w| squeezed.contains(w))
        || squeezed.contains("unix_timestamp()")
        || strftime_without_time(&squeezed)
}

/// `strftime('format')`: a format and no time value, which means now.
fn strftime_without_time(squeezed: &str) -> bool {
    squeezed.match_indices("strftime('").any(|(i, m)| {
        let rest = &squeezed[i + m.len()..];
        let mut chars = rest.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    continue;
                }
                return chars.peek().is_some_and(|(_, n)| *n == ')');
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_predicates() {
        for p in [
            "signup > date('now', '-30 days')",
            "d >= CURRENT_DATE",
            "t < current_timestamp",
            "julianday('now') - julianday(x) < 7",
            "x > strftime('%s')",
            "x > strftime( '%Y-%m-%d' )",
            "created > now() - interval '1 day'",
            "d = date()",
            "random() % 2 = 0",
            "datetime('NOW') > x",
        ] {
            assert!(reads_clock(p), "{p}");
        }
        for p in [
            "lifetime_value > 500 AND country = 'RO'",
            "date(birthday) > '1990-01-01'",
            "strftime('%Y', birthday) = '1990'",
            "julianday(a) - julianday(b) > 3",
            "name = 'nowhere'",
        ] {
            assert!(!reads_clock(p), "{p}");
        }
    }

    #[test]
    fn config_changes_are_named() {
        let a: ConfigPrints = [
            ("segment:vip".to_string(), "1".to_string()),
            ("mapping".to_string(), "2".to_string()),
        ]
        .into();
        assert_eq!(config_change(&a, &a), None);
        let mut b = a.clone();
        b.insert("segment:vip".into(), "3".into());
        assert_eq!(
            config_change(&a, &b).as_deref(),
            Some("segment 'vip' changed")
        );
        let mut c = a.clone();
        c.remove("segment:vip");
        assert_eq!(
            config_change(&a, &c).as_deref(),
            Some("segment 'vip' was removed")
        );
        let mut d = a.clone();
        d.insert("mapping".into(), "9".into());
        assert_eq!(
            config_change(&a, &d).as_deref(),
            Some("the mapping changed")
        );
    }
}
