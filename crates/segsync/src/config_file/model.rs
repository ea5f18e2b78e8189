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

pub(super) const DEFAULT_MAX_PROFILES: u64 = 1_000_000;

/// A `[[connection]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub display_name: Option<Spanned<String>>,
    #[serde(default)]
    pub api_key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub api_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub oauth_token_env: Option<Spanned<String>>,
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub share_with_contributors: Option<bool>,
    #[serde(default)]
    pub export_user: Option<Spanned<String>>,
    #[serde(default)]
    pub accept_privacy_terms: Option<Spanned<bool>>,
}

/// A `[[segment]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    pub name: Spanned<String>,
    #[serde(rename = "where")]
    pub predicate: Spanned<String>,
    /// A PostgreSQL profile source (`segsync profiles source add`); absent: the imported
    /// profiles.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
}

/// One of an export's `segments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    pub segment: Spanned<String>,
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
}

/// An `[[export]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    pub name: Spanned<String>,
    pub connection: Spanned<String>,
    pub audience: Spanned<String>,
    pub email_field: Spanned<String>,
    #[serde(default)]
    pub first_name: Option<Spanned<String>>,
    #[serde(default)]
    pub last_name: Option<Spanned<String>>,
    /// Merge tag → profile column.
    #[serde(default)]
    pub merge: Option<BTreeMap<String, Spanned<String>>>,
    pub segments: Spanned<Vec<SegmentRef>>,
    #[serde(default)]
    pub status_if_new: Option<NewStatus>,
    #[serde(default)]
    pub removal: Option<RemovalPolicy>,
    #[serde(default)]
    pub max_profiles: Option<Spanned<u64>>,
    #[serde(default)]
    pub create_merge_fields: Option<bool>,
    #[serde(default)]
    pub updated_at_field: Option<Spanned<String>>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleSpec>>,
    #[serde(default)]
    pub paused: Option<bool>,
}

/// `schedule = "manual" | "after_refresh" | { cron = "...", timezone = "..." }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec(pub Schedule);

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
    pub source: Source,
    pub connections: Vec<ConnectionSpec>,
    pub segments: Vec<SegmentSpec>,
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
