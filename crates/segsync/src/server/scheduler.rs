//! The scheduler: fires exports on their cron schedule (in their time zone) and after every
//! profile refresh, through the same [`RunManager::start`](super::runs::RunManager::start)
//! as "Run now". Missed ticks are skipped, not piled up (after downtime an export runs at its
//! next tick, once); a tick that finds the export still running is skipped; paused and
//! removed exports do not fire.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::AppState;
use crate::schedule::CronSchedule;
use crate::state::{ExportConfig, Schedule};

/// The next tick of an export's cron schedule after now (none when manual, after-refresh,
/// paused, or the schedule does not parse).
pub fn next_tick(e: &ExportConfig) -> Option<DateTime<Utc>> {
    next_after(e, Utc::now())
}

fn next_after(e: &ExportConfig, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if e.paused {
        return None;
    }
    match &e.schedule {
        Schedule::Cron { cron, timezone } => {
            CronSchedule::parse(cron, timezone).ok()?.next_after(t)
        }
        _ => None,
    }
}

/// Starts the exports that run after every refresh (not paused); the ones started.
pub async fn run_after_refresh(app: &AppState) -> Vec<String> {
    let exports = match app.home.state().and_then(|s| Ok(s.exports()?)) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "reading exports after a refresh");
            return vec![];
        }
    };
    let mut started = Vec::new();
    for e in exports {
        if e.paused || e.schedule != Schedule::AfterRefresh {
            continue;
        }
        match app.runs.start(&e.name, "after-refresh").await {
            Ok(_) => started.push(e.name),
            Err(err) => {
                tracing::warn!(export = %e.name, error = %err, "after-refresh run not started")
            }
        }
    }
    started
}

/// Looks at the clock every `scheduler_tick` and fires what is due.
pub fn spawn(app: &AppState) -> JoinHandle<()> {
    let app = app.clone();
    tokio::spawn(async move {
        // Each export's next tick, computed from the moment its schedule was first seen (so
        // ticks missed while the server was down are skipped) and recomputed when the
        // schedule changes.
        let mut due: HashMap<String, (Schedule, bool, Option<DateTime<Utc>>)> = HashMap::new();
        let mut interval = tokio::time::interval(app.config.scheduler_tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let now = Utc::now();
            let exports = match app.home.state().and_then(|s| Ok(s.exports()?)) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler: reading exports");
                    continue;
                }
            };
            // Removed exports are forgotten at once.
            due.retain(|name, _| exports.iter().any(|e| &e.name == name));
            for e in exports {
                let entry = due
                    .entry(e.name.clone())
                    .or_insert_with(|| (e.schedule.clone(), e.paused, next_after(&e, now)));
                if entry.0 != e.schedule || entry.1 != e.paused {
                    *entry = (e.schedule.clone(), e.paused, next_after(&e, now));
                }
                let Some(at) = entry.2 else { continue };
                if at > now {
                    continue;
                }
                // Due: the next tick is counted from now, so a late check fires once.
                entry.2 = next_after(&e, now);
                match app.runs.start(&e.name, "schedule").await {
                    Ok(run_id) => tracing::info!(export = %e.name, run_id, "scheduled run started"),
                    Err(err) => {
                        tracing::info!(export = %e.name, error = %err, "scheduled tick skipped")
                    }
                }
            }
        }
    })
}
