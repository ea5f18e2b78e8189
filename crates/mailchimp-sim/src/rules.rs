//! Mailchimp's rules as pure functions: addresses, statuses and their transitions, merge-field
//! values by type. No state, no I/O, so each rule is tested on its own.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::DateMergeValues;

/// The subscriber hash: MD5 of the lower-cased address, in hex.
pub fn subscriber_hash(email: &str) -> String {
    hex::encode(hash_key(email))
}

/// The raw 16 bytes behind the subscriber hash, used as the key of a member.
pub fn hash_key(email: &str) -> [u8; 16] {
    Md5::digest(email.trim().to_lowercase().as_bytes()).into()
}

/// Parses a `{subscriber_hash}` path segment: a 32-hex hash, or an email address (which the
/// API also accepts there).
pub fn key_from_path(segment: &str) -> Option<[u8; 16]> {
    if segment.contains('@') {
        return Some(hash_key(segment));
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(segment.to_ascii_lowercase(), &mut out).ok()?;
    Some(out)
}

/// Why an address is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum EmailProblem {
    Invalid,
    LooksFake,
    /// Non-ASCII characters before the `@`, which Mailchimp's KB says it cannot process.
    NonAsciiLocalPart,
}

impl EmailProblem {
    pub fn message(&self, email: &str) -> String {
        match self {
            EmailProblem::Invalid => "Please provide a valid email address.".to_string(),
            EmailProblem::LooksFake | EmailProblem::NonAsciiLocalPart => {
                format!("{email} looks fake or invalid, please enter a real email address.")
            }
        }
    }
}

/// Checks an address the way Mailchimp does: plain syntax first, then the refused domains.
pub fn check_email(email: &str, refused_domains: &[String]) -> Result<(), EmailProblem> {
    check_email_as(email, refused_domains, false)
}

/// [`check_email`], refusing non-ASCII characters before the `@` when `ascii_local_parts`.
pub fn check_email_as(
    email: &str,
    refused_domains: &[String],
    ascii_local_parts: bool,
) -> Result<(), EmailProblem> {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailProblem::Invalid);
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(EmailProblem::Invalid);
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.contains(['(', ')', '<', '>', ',', ';', ':', '\\', '"', '[', ']'])
    {
        return Err(EmailProblem::Invalid);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(EmailProblem::Invalid);
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
        return Err(EmailProblem::Invalid);
    }
    if ascii_local_parts && !local.is_ascii() {
        return Err(EmailProblem::NonAsciiLocalPart);
    }
    let domain = domain.to_lowercase();
    if refused_domains
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
    {
        return Err(EmailProblem::LooksFake);
    }
    Ok(())
}

/// A member's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    Archived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Cleaned => "cleaned",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
            Status::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "subscribed" => Status::Subscribed,
            "unsubscribed" => Status::Unsubscribed,
            "cleaned" => Status::Cleaned,
            "pending" => Status::Pending,
            "transactional" => Status::Transactional,
            "archived" => Status::Archived,
            _ => return None,
        })
    }
}

/// Why a status change is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TransitionRefused {
    /// Unsubscribed or cleaned members cannot be subscribed by an API call.
    ComplianceState,
}

impl TransitionRefused {
    pub fn title(&self) -> &'static str {
        "Member In Compliance State"
    }
    pub fn message(&self, email: &str) -> String {
        format!("{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.")
    }
}

/// May an API call move a member from `from` to `to`? `from` is the status before archiving
/// for archived members, so archiving does not launder an unsubscribe.
pub fn check_transition(from: Status, to: Status) -> Result<(), TransitionRefused> {
    match (from, to) {
        (Status::Unsubscribed, Status::Subscribed) => Err(TransitionRefused::ComplianceState),
        (Status::Cleaned, Status::Subscribed | Status::Pending | Status::Transactional) => {
            Err(TransitionRefused::ComplianceState)
        }
        _ => Ok(()),
    }
}

/// The eleven merge-field types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeType {
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

impl MergeType {
    pub fn parse(s: &str) -> Option<MergeType> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MergeType::Text => "text",
            MergeType::Number => "number",
            MergeType::Address => "address",
            MergeType::Phone => "phone",
            MergeType::Date => "date",
            MergeType::Url => "url",
            MergeType::Imageurl => "imageurl",
            MergeType::Radio => "radio",
            MergeType::Dropdown => "dropdown",
            MergeType::Birthday => "birthday",
            MergeType::Zip => "zip",
        }
    }
}

/// Is a value empty as far as a required field goes?
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(o) => o.values().all(is_blank),
        _ => false,
    }
}

/// A merge tag: upper-case letters, digits and underscore, at most 10 characters.
pub fn valid_merge_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 10
        && tag
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !tag.starts_with(|c: char| c.is_ascii_digit())
}

/// Whether a merge value fits the request schema's `anyOf` for merge values: a string, a
/// number, null, or an address object (keys among addr1, addr2, city, state, zip, country).
/// Booleans, arrays and other objects do not ("Data did not match any of the schemas
/// described in anyOf").
pub fn merge_value_fits_schema(v: &Value) -> bool {
    match v {
        Value::Null | Value::String(_) | Value::Number(_) => true,
        Value::Bool(_) | Value::Array(_) => false,
        Value::Object(o) => o.keys().all(|k| {
            matches!(
                k.as_str(),
                "addr1" | "addr2" | "city" | "state" | "zip" | "country"
            )
        }),
    }
}

/// The message of a merge value that fails the schema.
pub const ANY_OF_MESSAGE: &str = "Data did not match any of the schemas described in anyOf";

/// Checks and normalises a merge-field value of type `ty`; `Err` is the message Mailchimp
/// puts in `errors[].message`. Blank values are accepted (required-ness is checked apart).
pub fn normalise_merge_value(
    ty: MergeType,
    value: &Value,
    date_format: &str,
    choices: &[String],
) -> Result<Value, String> {
    normalise_merge_value_as(
        ty,
        value,
        date_format,
        choices,
        DateMergeValues::DisplayFormat,
    )
}

/// [`normalise_merge_value`], with dates and birthdays read as `dates` says: by the field's
/// display format, or only in the documented `YYYY-MM-DD` and `MM/DD`.
pub fn normalise_merge_value_as(
    ty: MergeType,
    value: &Value,
    date_format: &str,
    choices: &[String],
    dates: DateMergeValues,
) -> Result<Value, String> {
    let documented = dates == DateMergeValues::DocumentedOnly;
    if is_blank(value) && !matches!(value, Value::Object(_)) {
        return Ok(Value::String(String::new()));
    }
    match ty {
        MergeType::Text => {
            let s = scalar_text(value).ok_or("Please enter a text value")?;
            Ok(Value::String(truncate_bytes(&s, 255)))
        }
        MergeType::Number => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or("Please enter a number")?;
            Ok(serde_json::Number::from_f64(n)
                .map(|x| {
                    if n.fract() == 0.0 && n.abs() < 9e15 {
                        Value::from(n as i64)
                    } else {
                        Value::Number(x)
                    }
                })
                .unwrap_or(Value::Null))
        }
        MergeType::Address => {
            let Value::Object(o) = value else {
                return Err("Please enter a complete address".into());
            };
            if o.values().all(is_blank) {
                return Ok(Value::String(String::new()));
            }
            let get = |k: &str| o.get(k).and_then(scalar_text).unwrap_or_default();
            for k in ["addr1", "city", "state", "zip"] {
                if get(k).trim().is_empty() {
                    return Err("Please enter a complete address".into());
                }
            }
            let country = get("country");
            Ok(serde_json::json!({
                "addr1": get("addr1"), "addr2": get("addr2"), "city": get("city"),
                "state": get("state"), "zip": get("zip"),
                "country": if country.is_empty() { "US".to_string() } else { country },
            }))
        }
        MergeType::Phone => {
            let s = scalar_text(value).ok_or("Please enter a phone number")?;
            if s.chars().filter(|c| c.is_ascii_digit()).count() < 6
                || !s
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().x".contains(c))
            {
                return Err("Please enter a valid phone number".into());
            }
            Ok(Value::String(s))
        }
        MergeType::Date => {
            let s = scalar_text(value).ok_or("Please enter a date")?;
            if documented {
                return parse_documented_date(&s, date_format)
                    .map(Value::String)
                    .ok_or_else(|| "Please enter the date in the format YYYY-MM-DD".into());
            }
            parse_date(&s, date_format)
                .map(Value::String)
                .ok_or_else(|| format!("Please enter the date in the format {date_format}"))
        }
        MergeType::Birthday => {
            let s = scalar_text(value).ok_or("Please enter a month and day")?;
            if documented {
                return parse_documented_birthday(&s, date_format)
                    .map(Value::String)
                    .ok_or_else(|| "Please enter the birthday in the format MM/DD".into());
            }
            parse_birthday(&s, date_format)
                .map(Value::String)
                .ok_or_else(|| format!("Please enter the birthday in the format {date_format}"))
        }
        MergeType::Url | MergeType::Imageurl => {
            let s = scalar_text(value).ok_or("Please enter a valid URL")?;
            let ok = url::Url::parse(&s)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err("Please enter a valid URL".into());
            }
            Ok(Value::String(s))
        }
        MergeType::Radio | MergeType::Dropdown => {
            let s = scalar_text(value).ok_or("Please choose one of the options")?;
            if !choices.contains(&s) {
                return Err(format!(
                    "\"{s}\" is not one of the choices: {}",
                    choices.join(", ")
                ));
            }
            Ok(Value::String(s))
        }
        MergeType::Zip => {
            let s = scalar_text(value).ok_or("Please enter a zip code")?;
            let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
            if !(digits.len() == 5 || digits.len() == 9) {
                return Err("Please enter a valid 5-digit zip code".into());
            }
            Ok(Value::String(s))
        }
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Accepts the four date forms Mailchimp takes and returns it as the field's format.
fn parse_date(s: &str, date_format: &str) -> Option<String> {
    let s = s.trim();
    let parts: Vec<&str> = s.split(['-', '/']).collect();
    if parts.len() != 3 || parts.iter().any(|p| !p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let n: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (y, m, d) = if parts[0].len() == 4 {
        (n[0], n[1], n[2])
    } else if parts[2].len() == 4 {
        if date_format.starts_with("DD") {
            (n[2], n[1], n[0])
        } else {
            (n[2], n[0], n[1])
        }
    } else {
        return None;
    };
    chrono::NaiveDate::from_ymd_opt(y as i32, m, d)?;
    Some(match date_format {
        "DD/MM/YYYY" => format!("{d:02}/{m:02}/{y:04}"),
        "MM/DD/YYYY" => format!("{m:02}/{d:02}/{y:04}"),
        _ => format!("{y:04}-{m:02}-{d:02}"),
    })
}

/// Digits only, exactly `len` of them.
fn digits(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.chars().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A date only as `YYYY-MM-DD`, returned in the field's format.
fn parse_documented_date(s: &str, date_format: &str) -> Option<String> {
    let mut parts = s.trim().split('-');
    let (y, m, d) = (
        digits(parts.next()?, 4)?,
        digits(parts.next()?, 2)?,
        digits(parts.next()?, 2)?,
    );
    if parts.next().is_some() {
        return None;
    }
    parse_date(&format!("{y:04}-{m:02}-{d:02}"), date_format)
}

/// A birthday only as `MM/DD`, returned in the field's format.
fn parse_documented_birthday(s: &str, date_format: &str) -> Option<String> {
    let (m, d) = s.trim().split_once('/')?;
    let (m, d) = (digits(m, 2)?, digits(d, 2)?);
    chrono::NaiveDate::from_ymd_opt(2000, m, d)?;
    Some(if date_format.starts_with("DD") {
        format!("{d:02}/{m:02}")
    } else {
        format!("{m:02}/{d:02}")
    })
}

/// A birthday as the API takes it, `MM/DD` whatever the field's display format (Mailchimp's
/// merge-field guide documents only that form), stored in the display format.
fn parse_birthday(s: &str, date_format: &str) -> Option<String> {
    let (m, d) = s.trim().split_once('/')?;
    let (m, d): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    chrono::NaiveDate::from_ymd_opt(2000, m, d)?;
    Some(if date_format.starts_with("DD") {
        format!("{d:02}/{m:02}")
    } else {
        format!("{m:02}/{d:02}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused() -> Vec<String> {
        vec!["example.com".into()]
    }

    #[test]
    fn emails() {
        for ok in [
            "ana@mail.ro",
            "Ana.Maria+news@Posta.Ro",
            "o'brien@shop.ie",
            "jörg@exämple.de",
        ] {
            assert_eq!(check_email(ok, &refused()), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b.c",
            "a@1.23",
        ] {
            assert_eq!(
                check_email(bad, &refused()),
                Err(EmailProblem::Invalid),
                "{bad}"
            );
        }
        assert_eq!(
            check_email("x@Example.COM", &refused()),
            Err(EmailProblem::LooksFake)
        );
        assert_eq!(
            check_email("x@mail.example.com", &refused()),
            Err(EmailProblem::LooksFake)
        );
        assert_eq!(
            check_email_as("jörg@posta.de", &refused(), true),
            Err(EmailProblem::NonAsciiLocalPart)
        );
        assert_eq!(check_email_as("jorg@pöstä.de", &refused(), true), Ok(()));
    }

    #[test]
    fn documented_date_forms_only() {
        let d = |v: &str, f| {
            normalise_merge_value_as(
                MergeType::Date,
                &json!(v),
                f,
                &[],
                DateMergeValues::DocumentedOnly,
            )
        };
        assert_eq!(d("2024-02-29", "MM/DD/YYYY"), Ok(json!("02/29/2024")));
        for bad in [
            "2024/02/29",
            "29-02-2024",
            "02/29/2024",
            "2024-2-29",
            "2023-02-29",
        ] {
            assert!(d(bad, "YYYY-MM-DD").is_err(), "{bad}");
        }
        let b = |v: &str, f| {
            normalise_merge_value_as(
                MergeType::Birthday,
                &json!(v),
                f,
                &[],
                DateMergeValues::DocumentedOnly,
            )
        };
        assert_eq!(b("03/07", "DD/MM"), Ok(json!("07/03")));
        for bad in ["3/7", "03-07", "1990-03-07", "13/01"] {
            assert!(b(bad, "MM/DD").is_err(), "{bad}");
        }
    }

    #[test]
    fn merge_value_schema() {
        for ok in [
            json!("x"),
            json!(1),
            json!(null),
            json!({"addr1": "a", "city": "b"}),
        ] {
            assert!(merge_value_fits_schema(&ok), "{ok}");
        }
        for bad in [json!(true), json!(["a"]), json!({"first": "a"})] {
            assert!(!merge_value_fits_schema(&bad), "{bad}");
        }
    }

    #[test]
    fn hash_is_md5_of_lowercase() {
        assert_eq!(
            subscriber_hash("Urist.McVankab@freddiesjokes.com"),
            "62eeb292278cc15f5817cb78f7790b08"
        );
        assert_eq!(
            key_from_path("62EEB292278CC15F5817CB78F7790B08"),
            Some(hash_key("urist.mcvankab@freddiesjokes.com"))
        );
        assert_eq!(
            key_from_path("urist.mcvankab@freddiesjokes.com"),
            Some(hash_key("urist.mcvankab@freddiesjokes.com"))
        );
        assert_eq!(key_from_path("nothex"), None);
    }

    #[test]
    fn transitions() {
        use Status::*;
        assert!(check_transition(Unsubscribed, Subscribed).is_err());
        assert!(check_transition(Cleaned, Subscribed).is_err());
        assert!(check_transition(Cleaned, Pending).is_err());
        assert!(check_transition(Unsubscribed, Pending).is_ok());
        assert!(check_transition(Subscribed, Unsubscribed).is_ok());
        assert!(check_transition(Transactional, Subscribed).is_ok());
    }

    #[test]
    fn merge_values() {
        let n = |v| normalise_merge_value(MergeType::Number, &v, "", &[]);
        assert_eq!(n(json!("42")), Ok(json!(42)));
        assert_eq!(n(json!(1.5)), Ok(json!(1.5)));
        assert!(n(json!("abc")).is_err());
        let d = |v: &str, f| normalise_merge_value(MergeType::Date, &json!(v), f, &[]);
        assert_eq!(d("2024-02-29", "YYYY-MM-DD"), Ok(json!("2024-02-29")));
        assert_eq!(d("12/31/2024", "MM/DD/YYYY"), Ok(json!("12/31/2024")));
        assert_eq!(d("31-12-2024", "DD/MM/YYYY"), Ok(json!("31/12/2024")));
        assert!(d("2023-02-29", "YYYY-MM-DD").is_err());
        let b = |v: &str| normalise_merge_value(MergeType::Birthday, &json!(v), "MM/DD", &[]);
        assert_eq!(b("3/7"), Ok(json!("03/07")));
        assert!(b("13/01").is_err());
        let t = normalise_merge_value(MergeType::Text, &json!("é".repeat(200)), "", &[]).unwrap();
        assert_eq!(t.as_str().unwrap().len(), 254);
        let a = normalise_merge_value(
            MergeType::Address,
            &json!({"addr1": "Str. Lunga 1", "city": "Brasov"}),
            "",
            &[],
        );
        assert_eq!(a, Err("Please enter a complete address".to_string()));
        let c = ["Gold".to_string(), "Silver".to_string()];
        assert!(normalise_merge_value(MergeType::Dropdown, &json!("Gold"), "", &c).is_ok());
        assert!(normalise_merge_value(MergeType::Dropdown, &json!("Bronze"), "", &c).is_err());
    }

    #[test]
    fn merge_tags() {
        assert!(valid_merge_tag("FNAME"));
        assert!(valid_merge_tag("MMERGE10"));
        assert!(!valid_merge_tag("TOOLONGTAG1"));
        assert!(!valid_merge_tag("lower"));
        assert!(!valid_merge_tag(""));
    }
}
