//! From profile rows to what Mailchimp should hold: addresses validated and lower-cased,
//! values formatted for their merge-field type, duplicate addresses merged into one member
//! (union of tags, attributes of the most recently updated profile, or the first), and every
//! refused row kept with its reason. A bad row never stops the others.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Desired, MemberKey, MergeValues, TagSet};

/// Why an address is not sendable.
pub fn check_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("no email address".into());
    }
    let invalid = |why: &str| {
        Err(format!(
            "invalid email address {}: {why}",
            shown(raw.trim())
        ))
    };
    if email.len() > 254 {
        return invalid("longer than 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("contains spaces or control characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return invalid("no @");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return invalid("bad local part");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return invalid("misplaced dot");
    }
    if local.contains(['(', ')', '<', '>', ',', ';', ':', '\\', '"', '[', ']']) {
        return invalid("forbidden character");
    }
    // Mailchimp refuses addresses whose local part is not ASCII (its knowledge base: no UTF-8
    // before the @); refused here, with the reason, rather than by Mailchimp halfway.
    if !local.is_ascii() {
        return invalid("non-ASCII characters before the @ (Mailchimp accepts only ASCII there)");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let bad_label = |l: &&str| {
        l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || labels.iter().any(bad_label) {
        return invalid("bad domain");
    }
    let tld = labels[labels.len() - 1];
    if tld.chars().count() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
        return invalid("bad top-level domain");
    }
    Ok(email)
}

/// `"value"` for a reason: control characters escaped (`\n`, `\u{1b}`), so that a reason
/// stays one printable line, and cut after 100 characters, so that it stays short.
fn shown(s: &str) -> String {
    const MAX: usize = 100;
    let mut out = String::from("\"");
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

/// A Mailchimp merge-field type, as the audience declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeKind {
    Text,
    Number,
    Address,
    Phone,
    Date,
    Url,
    Imageurl,
    Radio,
    Dropdown,
    Birthday,
    Zip,
}

impl MergeKind {
    pub fn parse(s: &str) -> Option<MergeKind> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// How one mapped merge field is formatted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub tag: String,
    pub kind: MergeKind,
    pub required: bool,
    /// The field's date format for dates and birthdays (`MM/DD/YYYY`, `DD/MM/YYYY`,
    /// `YYYY-MM-DD`, `MM/DD`, `DD/MM`).
    pub date_format: String,
    pub choices: Vec<String>,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Cuts a string to at most `max` bytes on a character boundary (Mailchimp keeps 255).
fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// (year, month, day) of a date given as `YYYY-MM-DD[...]`, `YYYY/MM/DD` or a timestamp.
fn ymd(s: &str) -> Option<(i32, u32, u32)> {
    let s = s.trim();
    let head: String = s.chars().take(10).collect();
    let parts: Vec<&str> = head.split(['-', '/']).collect();
    if parts.len() == 3 && parts[0].len() == 4 {
        let (y, m, d) = (
            parts[0].parse().ok()?,
            parts[1].parse().ok()?,
            parts[2].parse().ok()?,
        );
        chrono::NaiveDate::from_ymd_opt(y, m, d)?;
        return Some((y, m, d));
    }
    None
}

/// Formats a value for a merge field of `spec`; `Err` says why the value cannot be sent.
pub fn format_value(spec: &FieldSpec, v: &Value) -> Result<Option<Value>, String> {
    if is_blank(v) {
        return Ok(None);
    }
    let shown = || match v {
        Value::String(s) => shown(s),
        // Numbers, booleans, arrays, objects: JSON, which escapes control characters itself.
        other => {
            let json = other.to_string();
            match json.char_indices().nth(100) {
                Some((at, _)) => format!("{}…", &json[..at]),
                None => json,
            }
        }
    };
    let out = match spec.kind {
        MergeKind::Text | MergeKind::Phone | MergeKind::Zip => Value::String(truncate(
            text_of(v).ok_or_else(|| format!("{} is not text", shown()))?,
            255,
        )),
        MergeKind::Number => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("{} is not a number", shown()))?;
            if n.fract() == 0.0 && n.abs() < 9e15 {
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        MergeKind::Date => {
            let s = text_of(v).ok_or_else(|| format!("{} is not a date", shown()))?;
            let (y, m, d) = ymd(&s)
                .ok_or_else(|| format!("{} is not a date (expected YYYY-MM-DD)", shown()))?;
            // The form Mailchimp documents for the API, whatever the field's display format
            // (how a DD/MM/YYYY field would read 07/03/2024 is not documented).
            Value::String(format!("{y:04}-{m:02}-{d:02}"))
        }
        MergeKind::Birthday => {
            let s = text_of(v).ok_or_else(|| format!("{} is not a birthday", shown()))?;
            let (m, d) = match ymd(&s) {
                Some((_, m, d)) => (m, d),
                None => {
                    let (a, b) = s.trim().split_once('/').ok_or_else(|| {
                        format!(
                            "{} is not a birthday (expected YYYY-MM-DD or MM/DD)",
                            shown()
                        )
                    })?;
                    let (a, b): (u32, u32) = (
                        a.parse()
                            .map_err(|_| format!("{} is not a birthday", shown()))?,
                        b.parse()
                            .map_err(|_| format!("{} is not a birthday", shown()))?,
                    );
                    if spec.date_format.starts_with("DD") {
                        (b, a)
                    } else {
                        (a, b)
                    }
                }
            };
            chrono::NaiveDate::from_ymd_opt(2000, m, d)
                .ok_or_else(|| format!("{} is not a valid month and day", shown()))?;
            // MM/DD, the form Mailchimp documents for the API, whatever the display format.
            Value::String(format!("{m:02}/{d:02}"))
        }
        MergeKind::Address => match v {
            Value::Object(o) => {
                let get = |k: &str| o.get(k).and_then(text_of).unwrap_or_default();
                if ["addr1", "city", "state", "zip"]
                    .iter()
                    .any(|k| get(k).trim().is_empty())
                {
                    return Err("an address needs addr1, city, state and zip".into());
                }
                Value::Object(o.clone())
            }
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(obj @ Value::Object(_)) => return format_value(spec, &obj),
                _ => {
                    return Err(format!(
                        "{} is not an address object (addr1, city, state, zip)",
                        shown()
                    ))
                }
            },
            _ => return Err(format!("{} is not an address object", shown())),
        },
        MergeKind::Url | MergeKind::Imageurl => {
            let s = text_of(v).ok_or_else(|| format!("{} is not a URL", shown()))?;
            if !(s.starts_with("http://") || s.starts_with("https://")) {
                return Err(format!("{} is not an http(s) URL", shown()));
            }
            Value::String(s)
        }
        MergeKind::Radio | MergeKind::Dropdown => {
            let s = text_of(v).ok_or_else(|| format!("{} is not one of the choices", shown()))?;
            if !spec.choices.contains(&s) {
                return Err(format!(
                    "{} is not one of the choices: {}",
                    shown(),
                    spec.choices.join(", ")
                ));
            }
            Value::String(s)
        }
    };
    Ok(Some(out))
}

/// A record that cannot be sent, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// The profile's key, or empty for errors Mailchimp reported per address.
    pub profile_key: String,
    pub email: String,
    pub reason: String,
}

/// One profile row, as the source gives it for one export.
pub struct Row<'a> {
    pub profile_key: &'a str,
    pub email: &'a Value,
    /// Values in the order of the collector's field specs.
    pub fields: &'a [&'a Value],
    pub tags: TagSet,
    /// When the profile was last updated, if the export names such a column.
    pub updated_at: Option<&'a Value>,
}

struct Entry {
    desired: Desired,
    updated_at: Option<String>,
}

/// One accepted row: its member and when its profile was last updated (in a form that sorts
/// as time does).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    pub key: MemberKey,
    pub desired: Desired,
    pub updated_at: Option<String>,
}

/// Whether a duplicate row updated at `candidate` gives the attributes instead of the one
/// updated at `current`: the most recently updated profile wins; without a time, the first
/// one seen keeps them. Tags are always united.
pub fn newer(candidate: Option<&str>, current: Option<&str>) -> bool {
    candidate.is_some() && candidate > current
}

/// Collects the rows of one run into one desired member per address.
pub struct Collector {
    specs: Vec<FieldSpec>,
    members: HashMap<MemberKey, Entry>,
    pub refused: Vec<RecordError>,
    /// Rows that merged into a member seen before (same address, any case).
    pub duplicates: u64,
    pub rows: u64,
}

fn sortable_time(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        // Numbers (epoch seconds) sort after any date string and among themselves by width.
        Value::Number(n) => Some(format!("~{:>20}", n)),
        _ => None,
    }
}

impl Collector {
    pub fn new(specs: Vec<FieldSpec>) -> Collector {
        Collector {
            specs,
            members: HashMap::new(),
            refused: Vec::new(),
            duplicates: 0,
            rows: 0,
        }
    }

    pub fn specs(&self) -> &[FieldSpec] {
        &self.specs
    }

    /// Normalises one row: the member it describes, or the reason it is refused. Counts the
    /// row; does not keep it (a streaming caller merges duplicates itself, by [`newer`]).
    pub fn normalize(&mut self, row: Row<'_>) -> Result<Normalized, RecordError> {
        self.rows += 1;
        let refuse = |email: String, reason: String| RecordError {
            profile_key: row.profile_key.to_string(),
            email,
            reason,
        };
        let raw: std::borrow::Cow<'_, str> = match row.email {
            Value::String(s) => s.into(),
            Value::Null => "".into(),
            other => other.to_string().into(),
        };
        let email = match check_email(&raw) {
            Ok(e) => e,
            Err(reason) => return Err(refuse(raw.trim().to_string(), reason)),
        };
        let mut merge = MergeValues::new();
        for (spec, v) in self.specs.iter().zip(row.fields) {
            match format_value(spec, v) {
                Ok(Some(val)) => {
                    merge.insert(spec.tag.clone(), val);
                }
                Ok(None) if spec.required => {
                    let reason = format!("required merge field {} is empty", spec.tag);
                    return Err(refuse(email, reason));
                }
                // Sent as "" so that a value emptied in the profile is emptied in Mailchimp.
                Ok(None) => {
                    merge.insert(spec.tag.clone(), Value::String(String::new()));
                }
                Err(why) => {
                    let reason = format!("merge field {}: {why}", spec.tag);
                    return Err(refuse(email, reason));
                }
            }
        }
        Ok(Normalized {
            key: MemberKey::of(&email),
            desired: Desired {
                email,
                merge,
                tags: row.tags,
            },
            updated_at: row.updated_at.and_then(sortable_time),
        })
    }

    /// Takes one row: refused with its reason, or merged into its address's member.
    pub fn add(&mut self, row: Row<'_>) {
        let n = match self.normalize(row) {
            Ok(n) => n,
            Err(e) => return self.refused.push(e),
        };
        match self.members.get_mut(&n.key) {
            None => {
                self.members.insert(
                    n.key,
                    Entry {
                        desired: n.desired,
                        updated_at: n.updated_at,
                    },
                );
            }
            Some(e) => {
                self.duplicates += 1;
                e.desired.tags = e.desired.tags.union(n.desired.tags);
                if newer(n.updated_at.as_deref(), e.updated_at.as_deref()) {
                    e.desired.merge = n.desired.merge;
                    e.updated_at = n.updated_at;
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The desired members, one per address.
    pub fn finish(self) -> (HashMap<MemberKey, Desired>, Vec<RecordError>, u64) {
        let members = self
            .members
            .into_iter()
            .map(|(k, e)| (k, e.desired))
            .collect();
        (members, self.refused, self.duplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            check_email("  Ana.Pop+News@Posta.RO "),
            Ok("ana.pop+news@posta.ro".into())
        );
        // Non-ASCII domains are fine; Mailchimp refuses non-ASCII before the @.
        assert_eq!(check_email("jorg@straße.de"), Ok("jorg@straße.de".into()));
        assert_eq!(
            check_email("jörg@straße.de"),
            Err("invalid email address \"jörg@straße.de\": non-ASCII characters before the @ (Mailchimp accepts only ASCII there)".into())
        );
        for bad in ["", "plain", "a@b", "a b@c.ro", "a..b@c.ro", "a@c.1"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_email("x@@y.ro"),
            Err("invalid email address \"x@@y.ro\": bad local part".into())
        );
    }

    #[test]
    fn reasons_show_values_escaped_and_cut() {
        assert_eq!(
            check_email("bad\u{1b}[31m@gmail.com"),
            Err(
                "invalid email address \"bad\\u{1b}[31m@gmail.com\": contains spaces or control characters"
                    .into()
            )
        );
        let long = format!("{}@gmail.com", "a".repeat(300));
        let reason = check_email(&long).unwrap_err();
        assert!(
            reason.contains(&format!("\"{}…\"", "a".repeat(100))),
            "{reason}"
        );
        let n = spec("LTV", MergeKind::Number);
        let reason = format_value(&n, &json!("x".repeat(5000))).unwrap_err();
        assert_eq!(reason, format!("\"{}…\" is not a number", "x".repeat(100)));
        let reason = format_value(&n, &json!({ "a": "line\nbreak" })).unwrap_err();
        assert_eq!(reason, "{\"a\":\"line\\nbreak\"} is not a number");
    }

    fn spec(tag: &str, kind: MergeKind) -> FieldSpec {
        FieldSpec {
            tag: tag.into(),
            kind,
            required: false,
            date_format: String::new(),
            choices: vec![],
        }
    }

    #[test]
    fn values_are_formatted_by_type() {
        let n = spec("LTV", MergeKind::Number);
        assert_eq!(format_value(&n, &json!("12.50")), Ok(Some(json!(12.5))));
        assert_eq!(format_value(&n, &json!(7)), Ok(Some(json!(7))));
        assert_eq!(format_value(&n, &json!("")), Ok(None));
        assert_eq!(
            format_value(&n, &json!("lots")),
            Err("\"lots\" is not a number".into())
        );
        let mut d = spec("JOINED", MergeKind::Date);
        d.date_format = "DD/MM/YYYY".into();
        assert_eq!(
            format_value(&d, &json!("2024-03-07T10:00:00Z")),
            Ok(Some(json!("2024-03-07")))
        );
        let mut b = spec("BDAY", MergeKind::Birthday);
        b.date_format = "MM/DD".into();
        assert_eq!(
            format_value(&b, &json!("1990-12-31")),
            Ok(Some(json!("12/31")))
        );
        let t = format_value(&spec("NOTE", MergeKind::Text), &json!("ă".repeat(200)))
            .unwrap()
            .unwrap();
        assert_eq!(t.as_str().unwrap().len(), 254);
        let mut c = spec("TIER", MergeKind::Dropdown);
        c.choices = vec!["Gold".into()];
        assert!(format_value(&c, &json!("Bronze")).is_err());
    }

    #[test]
    fn duplicates_merge_by_address() {
        let mut c = Collector::new(vec![spec("FNAME", MergeKind::Text)]);
        let (a, b, old, new) = (
            json!("Ana"),
            json!("Anca"),
            json!("2024-01-01"),
            json!("2025-06-01"),
        );
        c.add(Row {
            profile_key: "1",
            email: &json!("ana@posta.ro"),
            fields: &[&a],
            tags: TagSet(0b01),
            updated_at: Some(&old),
        });
        c.add(Row {
            profile_key: "2",
            email: &json!("ANA@Posta.ro"),
            fields: &[&b],
            tags: TagSet(0b10),
            updated_at: Some(&new),
        });
        c.add(Row {
            profile_key: "3",
            email: &json!("not-an-address"),
            fields: &[&a],
            tags: TagSet(1),
            updated_at: None,
        });
        let (members, refused, dups) = c.finish();
        assert_eq!((members.len(), refused.len(), dups), (1, 1, 1));
        let m = &members[&MemberKey::of("ana@posta.ro")];
        assert_eq!(m.tags, TagSet(0b11));
        assert_eq!(
            m.merge["FNAME"],
            json!("Anca"),
            "the most recently updated profile wins"
        );
        assert_eq!(refused[0].profile_key, "3");
    }
}
