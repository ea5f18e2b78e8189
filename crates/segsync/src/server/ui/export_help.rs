//! What helps on the export form: the email column suggested (by its name, else by its
//! values), the type each created merge field gets, and the schedule picker (every day,
//! weekdays, a day of the week or every hour, at a time, in a time zone from the list)
//! compiled to the cron expression the scheduler runs, with the cron text under "Advanced".

use maud::{html, Markup};

use crate::merge_type::{suggest, MergeType};
use crate::profiles::ColumnType;
use crate::rules::stats::ColumnStats;

// --- the email column ---

/// Names an email column goes by, compared without case, spaces, dashes or underscores.
const EMAIL_NAMES: [&str; 8] = [
    "email",
    "emailaddress",
    "mail",
    "mailaddress",
    "courriel",
    "emailadresse",
    "correo",
    "correoelectronico",
];

fn squeezed(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// The column whose name says it holds email addresses, and why.
pub fn email_by_name(columns: &[String]) -> Option<(String, String)> {
    let exact = columns
        .iter()
        .find(|c| EMAIL_NAMES.contains(&squeezed(c).as_str()));
    let loose = || columns.iter().find(|c| squeezed(c).contains("email"));
    exact.or_else(loose).map(|c| {
        (
            c.clone(),
            format!("Suggested because of its name, \u{201c}{c}\u{201d}."),
        )
    })
}

fn looks_like_address(v: &str) -> bool {
    let Some((local, domain)) = v.trim().split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

/// The text column most of whose most frequent values look like addresses, and why.
pub fn email_by_content(stats: &[ColumnStats]) -> Option<(String, String)> {
    stats
        .iter()
        .filter(|s| !s.top.is_empty())
        .map(|s| {
            let texts: Vec<&str> = s.top.iter().filter_map(|t| t.value.as_str()).collect();
            let hits = texts.iter().filter(|v| looks_like_address(v)).count();
            (s, hits, texts.len())
        })
        .filter(|(_, hits, n)| *n > 0 && hits * 10 >= n * 8)
        .max_by_key(|(_, hits, _)| *hits)
        .map(|(s, _, _)| {
            (
                s.name.clone(),
                format!(
                    "Suggested because its values look like email addresses (such as {}).",
                    s.top[0].value.as_str().unwrap_or_default()
                ),
            )
        })
}

// --- merge field types ---

/// The type a created merge field gets, chosen in the mapping ("" for the one that fits).
pub fn merge_type_select(i: usize, column: &str, kind: Option<ColumnType>, chosen: &str) -> Markup {
    let fits = suggest(column, kind);
    html! {
        select name="attr_type" aria-label=(format!("Type of merge field {}", i + 1)) data-fits=(fits.as_str()) {
            option value="" selected[chosen.is_empty()] { "fits the column (" (fits.as_str()) ")" }
            @for t in MergeType::ALL {
                option value=(t.as_str()) selected[chosen == t.as_str()] { (t.as_str()) }
            }
        }
    }
}

// --- the schedule ---

/// The days of the week as cron numbers them, with their names.
const DAYS: [(&str, &str); 7] = [
    ("1", "Monday"),
    ("2", "Tuesday"),
    ("3", "Wednesday"),
    ("4", "Thursday"),
    ("5", "Friday"),
    ("6", "Saturday"),
    ("0", "Sunday"),
];

/// The picker's fields: how often (`day`, `weekdays`, `week`, `hour`, or `custom` for the
/// cron text), the day of the week (`0`–`6`), the time (`HH:MM`; for `hour`, its minutes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Picker {
    pub every: String,
    pub weekday: String,
    pub at: String,
}

impl Picker {
    /// The picker that gives `cron`, if it is one of its simple forms; `custom` otherwise.
    pub fn from_cron(cron: &str) -> Picker {
        let f: Vec<&str> = cron.split_whitespace().collect();
        let num = |s: &str, max: u32| s.parse::<u32>().ok().filter(|n| *n <= max);
        let custom = Picker {
            every: "custom".into(),
            weekday: "1".into(),
            at: "06:00".into(),
        };
        let [m, h, "*", "*", dow] = f.as_slice() else {
            return custom;
        };
        let Some(m) = num(m, 59) else { return custom };
        let (every, hour) = match (*h, *dow) {
            ("*", "*") => ("hour", 0),
            (h, "*") => ("day", num(h, 23).unwrap_or(99)),
            (h, "1-5") => ("weekdays", num(h, 23).unwrap_or(99)),
            (h, d) if num(d, 6).is_some() => ("week", num(h, 23).unwrap_or(99)),
            _ => return custom,
        };
        if hour > 23 {
            return custom;
        }
        Picker {
            every: every.into(),
            weekday: if every == "week" {
                dow.to_string()
            } else {
                "1".into()
            },
            at: format!("{hour:02}:{m:02}"),
        }
    }

    /// The cron expression (minute hour day month weekday); `None` for `custom` (the cron
    /// text is used as typed).
    pub fn to_cron(&self) -> Result<Option<String>, String> {
        if matches!(self.every.as_str(), "" | "custom") {
            return Ok(None);
        }
        let (h, m) = self
            .at
            .trim()
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60)
            .ok_or_else(|| {
                format!(
                    "Time \"{}\": enter a time as HH:MM, such as 06:30.",
                    self.at
                )
            })?;
        Ok(Some(match self.every.as_str() {
            "day" => format!("{m} {h} * * *"),
            "weekdays" => format!("{m} {h} * * 1-5"),
            "week" => {
                let d = DAYS
                    .iter()
                    .find(|(n, _)| *n == self.weekday)
                    .ok_or_else(|| format!("Unknown day of the week \"{}\".", self.weekday))?;
                format!("{m} {h} * * {}", d.0)
            }
            "hour" => format!("{m} * * * *"),
            other => return Err(format!("Unknown repetition \"{other}\".")),
        }))
    }
}

/// The picker, the time zone list and the cron text under "Advanced".
pub fn schedule_fields(p: &Picker, cron: &str, timezone: &str) -> Markup {
    let custom = p.every == "custom";
    html! {
        div class="grid2" id="schedule-picker" {
            div class="field" {
                label for="every" { "Repeat" }
                select id="every" name="every" {
                    @for (v, l) in [("day", "Every day"), ("weekdays", "Every weekday (Monday to Friday)"), ("week", "Every week"), ("hour", "Every hour"), ("custom", "Custom (cron, under Advanced)")] {
                        option value=(v) selected[p.every == v] { (l) }
                    }
                }
            }
            div class="field" {
                label for="weekday" { "Day (every week)" }
                select id="weekday" name="weekday" {
                    @for (v, l) in DAYS { option value=(v) selected[p.weekday == v] { (l) } }
                }
            }
            div class="field" {
                label for="at" { "At" }
                input id="at" name="at" type="time" value=(p.at) step="60";
                span class="hint" { "Every hour: at these minutes past the hour." }
            }
            div class="field" {
                label for="timezone" { "Time zone" }
                select id="timezone" name="timezone" {
                    @if !timezone.is_empty() && timezone.parse::<chrono_tz::Tz>().is_err() {
                        option value=(timezone) selected { (timezone) " (unknown)" }
                    }
                    @for tz in chrono_tz::TZ_VARIANTS {
                        option value=(tz.name()) selected[tz.name() == timezone] { (tz.name()) }
                    }
                }
            }
        }
        details id="schedule-advanced" open[custom] {
            summary { "Advanced: cron expression" }
            div class="field" {
                label for="cron" { "Cron expression (with Repeat: Custom)" }
                input id="cron" name="cron" type="text" value=(cron) placeholder="0 6 * * *";
                span class="hint" { "Minute, hour, day of month, month, day of week: 0 6 * * * is every day at 06:00." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_crons_come_back_to_the_picker_and_compile_to_themselves() {
        for cron in ["30 6 * * *", "0 7 * * 1-5", "15 18 * * 0", "5 * * * *"] {
            let p = Picker::from_cron(cron);
            assert_ne!(p.every, "custom", "{cron}");
            assert_eq!(p.to_cron().unwrap().as_deref(), Some(cron));
        }
        assert_eq!(Picker::from_cron("30 6 * * 3").weekday, "3");
        assert_eq!(Picker::from_cron("*/5 * * * *").every, "custom");
        assert_eq!(Picker::from_cron("0 6 1 * *").every, "custom");
        assert_eq!(Picker::from_cron("0 6 * * * *").every, "custom");
        let bad = Picker {
            every: "day".into(),
            weekday: "1".into(),
            at: "25:00".into(),
        };
        assert!(bad.to_cron().unwrap_err().contains("HH:MM"));
    }

    #[test]
    fn the_email_column_is_found_by_name() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            email_by_name(&cols(&["id", "E-mail", "name"])).unwrap().0,
            "E-mail"
        );
        assert_eq!(email_by_name(&cols(&["id", "e_mail"])).unwrap().0, "e_mail");
        assert_eq!(
            email_by_name(&cols(&["EmailAddress"])).unwrap().0,
            "EmailAddress"
        );
        assert_eq!(
            email_by_name(&cols(&["work_email_2"])).unwrap().0,
            "work_email_2"
        );
        assert!(email_by_name(&cols(&["id", "contact"])).is_none());
        assert!(looks_like_address("ana@posta.ro") && !looks_like_address("ana@posta"));
    }
}
