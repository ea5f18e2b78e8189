//! Export schedules: cron expressions in a time zone. Pure: given a schedule and a moment,
//! when is the next tick. The server's scheduler (`server::scheduler`) fires them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::state::Schedule;

/// A parsed cron schedule with its time zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: croner::Cron,
    tz: Tz,
}

impl CronSchedule {
    /// Parses five fields (`min hour day month weekday`) or six (seconds first), and an IANA
    /// time zone name (`UTC`, `Europe/Bucharest`).
    pub fn parse(expr: &str, timezone: &str) -> Result<CronSchedule, String> {
        let tz: Tz = timezone.trim().parse().map_err(|_| {
            format!(
                "unknown time zone \"{timezone}\" (use an IANA name such as UTC or Europe/Paris)"
            )
        })?;
        let cron = croner::Cron::new(expr.trim())
            .with_seconds_optional()
            .parse()
            .map_err(|e| format!("cron schedule \"{expr}\": {e}"))?;
        Ok(CronSchedule { cron, tz })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A schedule in words, for lists and the audit log.
pub fn describe(s: &Schedule) -> String {
    match s {
        Schedule::Manual => "on demand".into(),
        Schedule::Cron { cron, timezone } => format!("cron \"{cron}\" ({timezone})"),
        Schedule::AfterRefresh => "after every profile refresh".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_tick_follows_the_time_zone() {
        let s = CronSchedule::parse("0 6 * * *", "Europe/Bucharest").unwrap();
        // 2026-11-23 03:59 UTC is 05:59 in Bucharest (UTC+2): the tick is a minute later.
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 3, 59, 0).unwrap();
        assert_eq!(
            s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap())
        );
        // Strictly after: at the tick itself, the next one is a day later.
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
        assert_eq!(
            s.next_after(at),
            Some(Utc.with_ymd_and_hms(2026, 11, 24, 4, 0, 0).unwrap())
        );
    }

    #[test]
    fn seconds_field_is_optional_and_errors_say_what_is_wrong() {
        let s = CronSchedule::parse("*/2 * * * * *", "UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap();
        assert_eq!(
            s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 2).unwrap())
        );
        let e = CronSchedule::parse("0 6 * *", "UTC").unwrap_err();
        assert!(e.starts_with("cron schedule \"0 6 * *\""), "{e}");
        let e = CronSchedule::parse("0 6 * * *", "Mars/Olympus").unwrap_err();
        assert!(e.contains("unknown time zone \"Mars/Olympus\""), "{e}");
    }
}
