//! The file's tables as serde reads them: `[[connection]]`, `[[segment]]` and `[[export]]`.
//! Values are kept with their place in the file, so that a check made later, against the
//! installation or Mailchimp, can still point at the line that causes it.

use std::collections::BTreeMap;
use std::fmt;

use segsync_core::{NewStatus, RemovalPolicy};
use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::state::Schedule;

use super::source::Source;

/// What `max_profiles` is when the file does not say; `dump` leaves it out then.
pub(super) const DEFAULT_MAX_PROFILES: u64 = 1_000_000;

/// A `[[connection]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// What the installation knows it by, and what exports name in `connection`.
    pub name: Spanned<String>,
    /// What people see; absent: the name on creation, left as it is afterwards.
    #[serde(default)]
    pub display_name: Option<Spanned<String>>,
    /// An environment variable holding an API key: one of the three secret sources, so that
    /// the secret itself never has to be in a file kept in git.
    #[serde(default)]
    pub api_key_env: Option<Spanned<String>>,
    /// A file holding an API key, relative to the folder of the TOML file.
    #[serde(default)]
    pub api_key_file: Option<Spanned<String>>,
    /// An environment variable holding an OAuth token.
    #[serde(default)]
    pub oauth_token_env: Option<Spanned<String>>,
    /// The API root; absent: from the key's data center. An existing connection's changes
    /// only with a new credential, since the two belong together.
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    /// Whether contributors may run exports on it (admins always may); absent: no on
    /// creation, left as it is afterwards.
    #[serde(default)]
    pub share_with_contributors: Option<bool>,
    /// Who exports run as; absent: whoever applies the file, on creation.
    #[serde(default)]
    pub export_user: Option<Spanned<String>>,
    /// Requests in flight at once over every run on the connection's Mailchimp account
    /// (1 to 10); absent: 8 on creation, left as it is afterwards.
    #[serde(default)]
    pub slot_budget: Option<Spanned<u32>>,
    /// Agreement to the data privacy statement, without which no connection is created.
    #[serde(default)]
    pub accept_privacy_terms: Option<Spanned<bool>>,
}

/// A `[[source]]`: a PostgreSQL or MySQL / MariaDB table or query that segments read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// What the installation knows it by, and what segments name in `source`.
    pub name: Spanned<String>,
    /// `postgres` or `mysql` (MySQL and MariaDB).
    pub kind: Spanned<String>,
    /// `env:VAR`: an environment variable holding the URL, which may hold a password; a URL
    /// written in the file is taken only without a password.
    pub url: Spanned<String>,
    /// The table (or view) holding the profiles; give it or `query`.
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    /// A SELECT giving the profiles; give it or `table`.
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// The column that identifies a profile.
    pub key: Spanned<String>,
    /// A column the database sets whenever a row is written: re-runs read only the rows
    /// past it.
    #[serde(default)]
    pub cursor: Option<Spanned<String>>,
    /// Add it even when its user can read every table (refused otherwise); absent: no.
    #[serde(default)]
    pub allow_superuser: Option<bool>,
}

/// A `[[segment]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// What the installation knows it by, and what exports name in `segments`.
    pub name: Spanned<String>,
    /// `where`: a SQL predicate over the profile columns of its source (or give `rule`).
    #[serde(rename = "where", default)]
    pub predicate: Option<Spanned<String>>,
    /// `rule`: the condition as a structured rule (see [`crate::rules::Rule`]), compiled to
    /// the predicate (or give `where`).
    #[serde(default)]
    pub rule: Option<Spanned<crate::rules::Rule>>,
    /// A PostgreSQL or MySQL profile source (`segsync profiles source add`); absent: the imported
    /// profiles.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
}

/// One of an export's `segments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    /// A segment of the file or of the installation.
    pub segment: Spanned<String>,
    /// The Mailchimp tag its members get; absent: the segment's name.
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
}

/// An `[[export]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// What the installation knows it by.
    pub name: Spanned<String>,
    /// A connection of the file or of the installation.
    pub connection: Spanned<String>,
    /// The Mailchimp audience id (Audience > Settings in Mailchimp).
    pub audience: Spanned<String>,
    /// The profile column holding the email address.
    pub email_field: Spanned<String>,
    /// The profile column sent as the merge field FNAME.
    #[serde(default)]
    pub first_name: Option<Spanned<String>>,
    /// The profile column sent as the merge field LNAME.
    #[serde(default)]
    pub last_name: Option<Spanned<String>>,
    /// Merge tag → profile column.
    #[serde(default)]
    pub merge: Option<BTreeMap<String, Spanned<String>>>,
    /// The segments sent, each with its tag; their order means nothing.
    pub segments: Spanned<Vec<SegmentRef>>,
    /// The status a contact new to the audience gets; absent: subscribed.
    #[serde(default)]
    pub status_if_new: Option<NewStatus>,
    /// What happens to a member who leaves every segment; absent: untag.
    #[serde(default)]
    pub removal: Option<RemovalPolicy>,
    /// A run with more members than this is refused before anything is sent; absent:
    /// 1,000,000.
    #[serde(default)]
    pub max_profiles: Option<Spanned<u64>>,
    /// Whether a run creates the mapped merge fields the audience lacks; absent: no.
    #[serde(default)]
    pub create_merge_fields: Option<bool>,
    /// The profile column that picks the newest among profiles sharing an address.
    #[serde(default)]
    pub updated_at_field: Option<Spanned<String>>,
    /// When it runs; absent: only when asked (manual).
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleSpec>>,
    /// An operational switch, so absent means left as it is in the installation, not `false`.
    #[serde(default)]
    pub paused: Option<bool>,
}

/// `schedule = "manual" | "after_refresh" | { cron = "...", timezone = "..." }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec(
    /// The schedule as the installation stores it.
    pub Schedule,
);

impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const HOW: &str =
            "\"manual\", \"after_refresh\", or { cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }";
        impl<'de> Visitor<'de> for V {
            type Value = ScheduleSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a schedule: {HOW}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ScheduleSpec, E> {
                match s {
                    "manual" => Ok(ScheduleSpec(Schedule::Manual)),
                    "after_refresh" => Ok(ScheduleSpec(Schedule::AfterRefresh)),
                    other => Err(E::custom(format!(
                        "unknown schedule \"{other}\": use {HOW}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScheduleSpec, A::Error> {
                let mut cron: Option<String> = None;
                let mut timezone: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "cron" if cron.is_none() => cron = Some(map.next_value()?),
                        "timezone" if timezone.is_none() => timezone = Some(map.next_value()?),
                        "cron" | "timezone" => return Err(de::Error::duplicate_field("cron")),
                        other => {
                            return Err(de::Error::unknown_field(other, &["cron", "timezone"]))
                        }
                    }
                }
                let cron = cron.ok_or_else(|| de::Error::missing_field("cron"))?;
                Ok(ScheduleSpec(Schedule::Cron {
                    cron,
                    timezone: timezone.unwrap_or_else(|| "UTC".into()),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// A parsed file: its objects in file order, and its source for messages.
pub struct ConfigFile {
    /// The text it was read from, kept so that the plan's problems can be located too.
    pub source: Source,
    /// The `[[connection]]` tables.
    pub connections: Vec<ConnectionSpec>,
    /// The `[[source]]` tables.
    pub sources: Vec<SourceSpec>,
    /// The `[[segment]]` tables.
    pub segments: Vec<SegmentSpec>,
    /// The `[[export]]` tables.
    pub exports: Vec<ExportSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_take_three_forms() {
        let parse_one = |s: &str| -> Result<Schedule, String> {
            #[derive(Deserialize)]
            struct T {
                schedule: ScheduleSpec,
            }
            toml::from_str::<T>(&format!("schedule = {s}"))
                .map(|t| t.schedule.0)
                .map_err(|e| e.message().to_string())
        };
        assert_eq!(parse_one("\"manual\""), Ok(Schedule::Manual));
        assert_eq!(parse_one("\"after_refresh\""), Ok(Schedule::AfterRefresh));
        assert_eq!(
            parse_one("{ cron = \"0 6 * * *\" }"),
            Ok(Schedule::Cron {
                cron: "0 6 * * *".into(),
                timezone: "UTC".into()
            })
        );
        assert!(parse_one("\"daily\"")
            .unwrap_err()
            .contains("unknown schedule \"daily\""));
        assert!(parse_one("{ cron = \"x\", tz = \"UTC\" }")
            .unwrap_err()
            .contains("unknown field `tz`"));
        assert!(parse_one("{ timezone = \"UTC\" }")
            .unwrap_err()
            .contains("missing field `cron`"));
    }
}
