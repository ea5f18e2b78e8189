//! The scheduler: fires exports on their cron schedule (in their time zone) and after every
//! profile refresh, through the same [`RunManager::start`](super::runs::RunManager::start)
//! as "Run now".
//!
//! Several servers may share one PostgreSQL state store. A due tick goes into the store's
//! run queue, which holds one row per export and tick whichever worker queues it first;
//! each worker claims rows (`FOR UPDATE SKIP LOCKED`) and starts them, so a tick runs once.
//! An export's run holds a lease on it; a run recorded as running whose lease ran out (its
//! worker died) is taken over by the next worker that looks, and resumes from its
//! checkpoint. Missed ticks are skipped, not piled up (after downtime an export runs at its
//! next tick, once); a tick that finds the export still running is skipped; paused and
//! removed exports do not fire. A refresh that finds an after-refresh export running queues
//! one more run after it (the running one read the old profiles).
//!
//! Scheduled runs of exports on one Mailchimp account are staggered: each starts
//! `--stagger` (2 s) after the previous one on that account (all of them share the account's
//! connection budget, so starting them together only makes them queue for slots while each
//! reads its profiles and audience at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::runs::Started;
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

/// Starts the exports that run after every refresh (not paused); the ones started. One
/// that is running already gets another run queued behind it.
pub async fn run_after_refresh(app: &AppState) -> Vec<String> {
    let exports = match app.app.state().and_then(|s| Ok(s.exports()?)) {
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
        if let Some(why) = not_runnable(app, &e.name, Some(&e.schedule)) {
            tracing::info!(export = %e.name, why, "after-refresh run not started");
            continue;
        }
        match app.runs.start_or_queue(&e.name, "after-refresh").await {
            Ok(Started::Now(run_id)) => {
                tracing::info!(export = %e.name, run_id, "after-refresh run started");
                started.push(e.name)
            }
            Ok(Started::Queued) => tracing::info!(
                export = %e.name,
                "export is running: an after-refresh run starts when it ends"
            ),
            Err(err) => {
                tracing::warn!(export = %e.name, error = %err, "after-refresh run not started")
            }
        }
    }
    started
}

/// What the scheduler remembers of an export between two looks at the clock.
struct Due {
    schedule: Schedule,
    paused: bool,
    /// The next tick, `None` when it never fires (manual, after-refresh, paused, invalid).
    at: Option<DateTime<Utc>>,
    /// Why its last due tick did not start it (said once, not at every tick).
    skipped: Option<&'static str>,
}

impl Due {
    fn of(e: &ExportConfig, now: DateTime<Utc>) -> Due {
        if let Schedule::Cron { cron, timezone } = &e.schedule {
            if let Err(why) = CronSchedule::parse(cron, timezone) {
                // Said once per schedule seen, not at every look at the clock.
                tracing::warn!(export = %e.name, error = %why, "the export's schedule does not parse: it never fires");
            }
        }
        Due {
            schedule: e.schedule.clone(),
            paused: e.paused,
            at: next_after(e, now),
            skipped: None,
        }
    }
}

/// Why a due export does not start now, if it does not: it was paused, removed or given
/// another schedule since the exports were read (checked again right before the start), or
/// its connection was removed (it stops running until it gets one again). `schedule`: the
/// schedule it was found due by (`None`: whatever it is now, for a queued run).
fn not_runnable(app: &AppState, name: &str, schedule: Option<&Schedule>) -> Option<&'static str> {
    let state = match app.app.state() {
        Ok(s) => s,
        Err(_) => return Some("the state store does not answer"),
    };
    match state.export(name) {
        Ok(e) if e.paused => Some("paused"),
        Ok(e) if schedule.is_some_and(|s| s != &e.schedule) => Some("its schedule changed"),
        Ok(e) => match state.connection(&e.connection) {
            Err(crate::state::StateError::NotFound(_)) => Some("its connection was removed"),
            _ => None,
        },
        Err(_) => Some("removed"),
    }
}

/// Whether `name` is not configured any more (read afresh: it may have been added since the
/// exports were listed).
fn export_gone(app: &AppState, name: &str) -> bool {
    matches!(
        app.app.state().map(|s| s.export(name)),
        Ok(Err(crate::state::StateError::NotFound(_)))
    )
}

/// Looks at the clock every `scheduler_tick` and fires what is due.
pub fn spawn(app: &AppState) -> JoinHandle<()> {
    let app = app.clone();
    tokio::spawn(async move {
        // Each export's next tick, computed from the moment its schedule was first seen (so
        // ticks missed while the server was down are skipped) and recomputed when the
        // schedule changes or it is paused or resumed.
        let mut due: HashMap<String, Due> = HashMap::new();
        let mut interval = tokio::time::interval(app.config.scheduler_tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut store_failing = false;
        let mut last_takeover = std::time::Instant::now();
        loop {
            interval.tick().await;
            let now = Utc::now();
            let exports = match app.app.state().and_then(|s| Ok(s.exports()?)) {
                Ok(e) => {
                    if store_failing {
                        tracing::info!("scheduler: the state store answers again");
                        store_failing = false;
                    }
                    e
                }
                Err(e) => {
                    // Once, not at every tick.
                    if !store_failing {
                        tracing::error!(error = %e, "scheduler: reading exports (retrying at every tick)");
                        store_failing = true;
                    }
                    continue;
                }
            };
            // Removed exports are forgotten at once, and a run of one removed by another
            // process (`segsync export remove`, `segsync apply`) is stopped.
            due.retain(|name, _| exports.iter().any(|e| &e.name == name));
            for r in app.runs.all_running() {
                if !r.stopping
                    && !exports.iter().any(|e| e.name == r.export)
                    && export_gone(&app, &r.export)
                {
                    tracing::info!(export = %r.export, run_id = r.run_id, "the export was removed: stopping its run");
                    app.runs.cancel(&r.export);
                }
            }
            for e in exports {
                let entry = due
                    .entry(e.name.clone())
                    .or_insert_with(|| Due::of(&e, now));
                if entry.schedule != e.schedule || entry.paused != e.paused {
                    *entry = Due::of(&e, now);
                }
                let Some(at) = entry.at else { continue };
                if at > now {
                    continue;
                }
                // Due: the next tick is counted from now, so a late check fires once.
                entry.at = next_after(&e, now);
                if let Some(r) = app.runs.running(&e.name) {
                    tracing::info!(export = %e.name, run_id = r.run_id, "scheduled tick skipped: the export is still running");
                    continue;
                }
                if let Some(why) = not_runnable(&app, &e.name, Some(&e.schedule)) {
                    if entry.skipped != Some(why) {
                        tracing::info!(export = %e.name, why, "scheduled tick skipped (said once)");
                        entry.skipped = Some(why);
                    }
                    continue;
                }
                entry.skipped = None;
                queue_tick(&app, &e.name, at);
            }
            start_queued(&app).await;
            if last_takeover.elapsed() >= TAKEOVER_EVERY {
                last_takeover = std::time::Instant::now();
                take_over(&app).await;
            }
        }
    })
}

/// Puts an export's due tick in the run queue of the state store. Every worker of a shared
/// store sees the same tick; the queue keeps one row per export and tick, so it runs once.
fn queue_tick(app: &AppState, export: &str, at: DateTime<Utc>) {
    let tick = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let queued = app
        .app
        .state()
        .and_then(|s| Ok(s.enqueue_run(export, "schedule", "scheduler", Some(&tick))?));
    match queued {
        Ok(Some(id)) => tracing::debug!(export, tick, id, "scheduled tick queued"),
        Ok(None) => tracing::debug!(
            export,
            tick,
            "scheduled tick already queued by another worker"
        ),
        Err(e) => tracing::warn!(export, tick, error = %e, "scheduled tick not queued"),
    }
}

/// How long after a scheduled run starts the next scheduled run on the same Mailchimp
/// account may start, by default (`segsync serve --stagger`).
pub const STAGGER: Duration = Duration::from_secs(2);

/// When the next scheduled run may start on each account, and the runs waiting for it.
#[derive(Default)]
struct Stagger {
    next: Mutex<HashMap<String, Instant>>,
    waiting: AtomicUsize,
}

impl Stagger {
    fn shared() -> &'static Stagger {
        static S: std::sync::OnceLock<Stagger> = std::sync::OnceLock::new();
        S.get_or_init(Stagger::default)
    }

    /// How long a scheduled run on `account` waits before it starts; books its start.
    fn delay(&self, account: &str, stagger: Duration) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        next.retain(|_, t| *t > now);
        let at = next.get(account).copied().unwrap_or(now).max(now);
        next.insert(account.to_string(), at + stagger);
        at - now
    }
}

/// The Mailchimp account of an export's connection, when known.
fn account_of(state: &crate::state::StateStore, export: &str) -> Option<String> {
    let e = state.export(export).ok()?;
    state.connection(&e.connection).ok()?.account_id
}

/// How long a claimed queue row stays this worker's before another may claim it: the time
/// between the claim and the run's start (its export's lease takes over from there).
const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts what the run queue holds, one claimed row at a time (rows claimed by another
/// worker are skipped, not waited for). A row whose export is running, here or on another
/// worker, is done without a run: the tick is skipped, as on a single server.
async fn start_queued(app: &AppState) {
    let worker = crate::app::worker_id();
    loop {
        if busy(app) {
            return;
        }
        let claimed = app
            .app
            .state()
            .and_then(|s| Ok((s.claim_queued_run(worker, CLAIM_TTL)?, s)));
        let (q, state) = match claimed {
            Ok((Some(q), state)) => (q, state),
            Ok((None, _)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "claiming a queued run (retrying at the next tick)");
                return;
            }
        };
        let wait = match account_of(&state, &q.export) {
            Some(account) if q.trigger == "schedule" && !app.config.stagger.is_zero() => {
                Stagger::shared().delay(&account, app.config.stagger)
            }
            _ => Duration::ZERO,
        };
        if wait.is_zero() {
            start_claimed(app, state, q).await;
            continue;
        }
        tracing::info!(export = %q.export, wait_ms = wait.as_millis() as u64, "scheduled run staggered behind another on the same Mailchimp account");
        Stagger::shared().waiting.fetch_add(1, Ordering::Relaxed);
        let app = app.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            Stagger::shared().waiting.fetch_sub(1, Ordering::Relaxed);
            match app.app.state() {
                Ok(state) => start_claimed(&app, state, q).await,
                Err(e) => {
                    tracing::warn!(export = %q.export, error = %e, "a staggered run could not start")
                }
            }
        });
    }
}

/// Starts a claimed queue row's run (unless its export cannot run now) and marks the row done.
async fn start_claimed(
    app: &AppState,
    state: crate::state::StateStore,
    q: crate::state::QueuedRun,
) {
    let worker = crate::app::worker_id();
    let run_id = match not_runnable(app, &q.export, None) {
        Some(why) => {
            tracing::info!(export = %q.export, why, "queued run skipped");
            None
        }
        None => match app.runs.start(&q.export, &q.trigger).await {
            Ok(run_id) => {
                tracing::info!(export = %q.export, run_id, trigger = %q.trigger, "queued run started");
                Some(run_id)
            }
            Err(err) => {
                tracing::info!(export = %q.export, error = %err, "queued run skipped");
                None
            }
        },
    };
    if let Err(e) = state.complete_queued_run(q.id, worker, run_id) {
        tracing::warn!(export = %q.export, error = %e, "marking a queued run done");
    }
}

/// Whether this server runs as many exports as it takes on (`--max-runs`), the staggered
/// ones about to start included.
fn busy(app: &AppState) -> bool {
    app.runs.all_running().len() + Stagger::shared().waiting.load(Ordering::Relaxed)
        >= app.config.max_runs
}

/// How often a server looks for runs that another one left unfinished.
const TAKEOVER_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Resumes the runs that another process left: a run recorded as running whose export's lock
/// nobody holds (its worker was killed, or lost its machine, and its lease ran out), and a
/// run interrupted by a worker's shutdown (a rolling restart). The first worker to take the
/// export's lock resumes it from its checkpoint; the others find it busy.
async fn take_over(app: &AppState) {
    let found = app.app.state().and_then(|s| {
        let mut left: Vec<(String, &'static str)> = s
            .exports_with_running_runs()?
            .into_iter()
            .map(|e| (e, "takeover"))
            .collect();
        for e in s.exports()? {
            let last = s.runs(Some(&e.name), 1)?.into_iter().next();
            if last.is_some_and(|r| r.outcome == crate::state::Outcome::Interrupted) {
                left.push((e.name, "resume"));
            }
        }
        Ok(left)
    });
    let left = match found {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "looking for runs left by another worker");
            return;
        }
    };
    for (export, trigger) in left {
        if busy(app) {
            return;
        }
        if app.runs.running(&export).is_some() {
            continue;
        }
        if not_runnable(app, &export, None).is_some() {
            continue;
        }
        match app.runs.start(&export, trigger).await {
            Ok(run_id) => {
                tracing::warn!(export = %export, run_id, trigger, "resuming a run another worker left")
            }
            // Alive somewhere: its worker holds the lease.
            Err(err) => {
                tracing::trace!(export = %export, error = %err, "run held by another worker")
            }
        }
    }
}
