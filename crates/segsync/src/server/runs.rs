//! The runs of a server: started by "Run now", the scheduler or a resume, each in its own
//! task through the same engine as `segsync run`, with live progress, cancel, and a clean
//! stop on shutdown. One run per export at a time (the export's lock makes that hold across
//! processes too).
//!
//! How a run's life is kept consistent, whatever happens to its task:
//!
//! - [`RunManager::start`] reserves the export's slot (under one lock, so two callers
//!   never both pass the "is it running?" check) before the engine records the run, and
//!   spawns the run's task without an `.await` in between: a caller that is cancelled (an
//!   aborted scheduler, a dropped HTTP request) cannot leave a recorded run without a task.
//! - Each task owns a guard that, however the task ends (normally, a panic, or an abort
//!   when the shutdown's grace period runs out), frees the export's slot, records the run's
//!   end if the engine could not, publishes [`Event::RunEnded`] and counts the task out.
//! - [`RunManager::shutdown`] refuses new runs, asks every run to stop at its next
//!   checkpoint, and waits at most [`SHUTDOWN_GRACE`] before aborting what is left (recorded
//!   as interrupted: the checkpoints make that as safe as a crash, and the next start
//!   resumes it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

use crate::app::App;
use crate::engine::{self, Progress, RunError, RunSettings, StopReason, StopSignal};
use crate::mailchimp::ClientStats;
use crate::ops::OpError;
use crate::state::{Outcome, RunCounts};

/// How long a shutdown waits for the runs to reach their checkpoint before it aborts them.
/// A run stops at its next checkpoint once its requests in flight are answered, which takes
/// seconds; one that is still reading a large audience, or waiting on a Mailchimp that does
/// not answer, is aborted after this (recorded as interrupted, resumed at the next start).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// What a run that stopped before it began, or was aborted, is recorded with.
const STOPPED_BEFORE_START: &str = "stopped before it began: nothing was sent";
const ABORTED_AT_SHUTDOWN: &str = "the server shut down before the run reached a checkpoint; \
     what Mailchimp acknowledged is kept and the run resumes when the server starts again";
const EXPORT_REMOVED: &str = "cancelled: the export was removed while the run was going on";
const PANICKED: &str = "the run stopped on an internal error of segsync (the server log says \
     more); what Mailchimp acknowledged is kept and the next run sends the rest";

/// What happened, for whoever listens (alerts, metrics, the scheduler).
// A few events a run: their size does not matter, and listeners match on `RunEnded` plainly.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Event {
    RunStarted {
        export: String,
        run_id: i64,
        trigger: String,
    },
    RunEnded(RunEnded),
    /// Profiles were imported again: exports that run "after every refresh" go.
    ProfilesRefreshed,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct RunEnded {
    pub export: String,
    pub run_id: i64,
    pub trigger: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub counts: RunCounts,
    pub seconds: f64,
    /// The Mailchimp client's counters of this run (absent when it failed before the client).
    pub client: Option<crate::mailchimp::StatsSnapshot>,
}

/// Live progress of a run, as the engine reports it.
#[derive(Default)]
pub struct LiveProgress {
    phase: Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
    stats: OnceLock<Arc<ClientStats>>,
}

impl Progress for LiveProgress {
    fn attach(&self, stats: Arc<ClientStats>) {
        let _ = self.stats.set(stats);
    }
    fn phase(&self, name: &str, total: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = name.to_string();
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    fn finish(&self) {}
}

/// A running run, as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ActiveRun {
    pub run_id: i64,
    pub export: String,
    pub trigger: String,
    /// What the run is doing: "reading profiles and the audience", "sending members", ...
    pub phase: String,
    /// Members done and to do in this phase (0 of 0 while reading).
    pub done: u64,
    pub total: u64,
    /// Mailchimp requests sent so far, and on the wire now.
    pub requests: u64,
    pub in_flight: usize,
    /// Someone asked it to stop; it stops at its next checkpoint.
    pub stopping: bool,
}

/// An export's slot: reserved while its run is being recorded (`run_id` 0), then its run.
struct Active {
    run_id: i64,
    trigger: String,
    stop: StopSignal,
    progress: Arc<LiveProgress>,
    /// To abort the run's task when a shutdown's grace period runs out.
    abort: Option<AbortHandle>,
}

impl Active {
    fn started(&self) -> bool {
        self.run_id > 0
    }

    fn view(&self, export: &str) -> ActiveRun {
        let stats = self.progress.stats.get();
        ActiveRun {
            run_id: self.run_id,
            export: export.to_string(),
            trigger: self.trigger.clone(),
            phase: self
                .progress
                .phase
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            done: self.progress.done.load(Ordering::Relaxed),
            total: self.progress.total.load(Ordering::Relaxed),
            requests: stats.map_or(0, |s| s.requests_sent()),
            in_flight: stats.map_or(0, |s| s.in_flight()),
            stopping: self.stop.reason().is_some(),
        }
    }
}

#[derive(Default)]
struct Slots {
    /// Per export, its run in progress (or being started).
    active: HashMap<String, Active>,
    /// Per export, the trigger of a run to start as soon as its current run ends (an
    /// after-refresh run asked for while a run was reading the old profiles).
    queued: HashMap<String, String>,
    /// Exports that must not start now (being removed).
    held: std::collections::HashSet<String>,
}

/// An export kept from starting by [`RunManager::hold_and_stop`], until this is dropped.
pub struct Held {
    manager: RunManager,
    export: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.manager.slots().held.remove(&self.export);
    }
}

struct Inner {
    app: App,
    settings: RunSettings,
    slots: Mutex<Slots>,
    /// How many run tasks are alive.
    tasks: watch::Sender<usize>,
    events: broadcast::Sender<Event>,
    shutting_down: AtomicBool,
}

/// Starts, watches, cancels and stops runs. Cheap to clone.
#[derive(Clone)]
pub struct RunManager(Arc<Inner>);

/// What [`RunManager::start_or_queue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// The run began: its id.
    Now(i64),
    /// The export is running: a run starts when that one ends.
    Queued,
}

impl RunManager {
    /// `settings` is the template of every run (timeout, retries, in-flight); its trigger
    /// and stop signal are set per run.
    pub fn new(app: App, settings: RunSettings) -> RunManager {
        let (events, _) = broadcast::channel(1024);
        RunManager(Arc::new(Inner {
            app,
            settings,
            slots: Mutex::new(Slots::default()),
            tasks: watch::Sender::new(0),
            events,
            shutting_down: AtomicBool::new(false),
        }))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }

    pub fn publish(&self, e: Event) {
        let _ = self.0.events.send(e);
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.0.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }

    fn refuse_running(export: &str, a: &Active) -> OpError {
        if a.started() {
            OpError::Conflict(format!(
                "export \"{export}\" is already running (run {})",
                a.run_id
            ))
        } else {
            OpError::Conflict(format!("export \"{export}\" is already starting"))
        }
    }

    /// Starts a run of `export` in the background and returns its id. Refused (conflict)
    /// when the export is running already, here or in another process, or when the server
    /// is shutting down.
    pub async fn start(&self, export: &str, trigger: &str) -> Result<i64, OpError> {
        self.start_now(export, trigger)
    }

    /// [`RunManager::start`], evaluating every profile when `full` (as `segsync run --full`).
    pub async fn start_full(
        &self,
        export: &str,
        trigger: &str,
        full: bool,
    ) -> Result<i64, OpError> {
        self.start_with(export, trigger, full)
    }

    /// Starts a run of `export`, or, when it is running here, starts one as soon as that
    /// run ends (one waits per export; a later request replaces its trigger). For triggers
    /// that must not be lost, such as a profile refresh during a run that read the old
    /// profiles.
    pub async fn start_or_queue(&self, export: &str, trigger: &str) -> Result<Started, OpError> {
        {
            let mut slots = self.slots();
            if slots.active.contains_key(export) {
                if self.is_shutting_down() {
                    return Err(Self::shutting_down_error());
                }
                slots.queued.insert(export.to_string(), trigger.to_string());
                return Ok(Started::Queued);
            }
        }
        self.start_now(export, trigger).map(Started::Now)
    }

    fn shutting_down_error() -> OpError {
        OpError::Conflict("the server is shutting down: no new run starts".into())
    }

    /// The whole start, without an `.await`: reserve the slot, record the run, spawn its
    /// task.
    fn start_now(&self, export: &str, trigger: &str) -> Result<i64, OpError> {
        self.start_with(export, trigger, false)
    }

    fn start_with(&self, export: &str, trigger: &str, full: bool) -> Result<i64, OpError> {
        let stop = StopSignal::default();
        let progress = Arc::new(LiveProgress::default());
        {
            let mut slots = self.slots();
            // Checked under the lock that `shutdown` takes to stop the runs: a run is either
            // refused here or seen (and stopped) there.
            if self.is_shutting_down() {
                return Err(Self::shutting_down_error());
            }
            if let Some(a) = slots.active.get(export) {
                return Err(Self::refuse_running(export, a));
            }
            if slots.held.contains(export) {
                return Err(OpError::Conflict(format!(
                    "export \"{export}\" is being removed"
                )));
            }
            slots.active.insert(
                export.to_string(),
                Active {
                    run_id: 0,
                    trigger: trigger.to_string(),
                    stop: stop.clone(),
                    progress: progress.clone(),
                    abort: None,
                },
            );
        }
        let started = match engine::start(&self.0.app, export, trigger) {
            Ok(s) => s,
            Err(e) => {
                self.slots().active.remove(export);
                return Err(match e {
                    RunError::Busy(_) | RunError::NothingToResume(_) => {
                        OpError::Conflict(e.to_string())
                    }
                    other => OpError::from(other),
                });
            }
        };
        let run_id = started.run_id;
        if let Some(a) = self.slots().active.get_mut(export) {
            a.run_id = run_id;
        }
        self.publish(Event::RunStarted {
            export: export.to_string(),
            run_id,
            trigger: trigger.to_string(),
        });
        let mut settings = self.0.settings.clone();
        settings.trigger = trigger.to_string();
        settings.stop = stop.clone();
        settings.full = full;
        let me = self.clone();
        // Counted before the task exists, counted out by its guard: the guard is moved into
        // the task, so it is dropped even if the task is aborted before it first runs.
        self.0.tasks.send_modify(|n| *n += 1);
        let mut guard = RunGuard {
            manager: self.clone(),
            export: export.to_string(),
            run_id,
            trigger: trigger.to_string(),
            t0: Instant::now(),
            ended: None,
        };
        let task = tokio::spawn(async move {
            let app = me.0.app.clone();
            let result = match stop.reason() {
                // Cancelled (its export removed) or shut down between reservation and here.
                Some(reason) => {
                    drop(started);
                    Err(reason)
                }
                None => Ok(started
                    .finish(&app, &settings, progress.clone() as Arc<dyn Progress>)
                    .await),
            };
            let client = progress.stats.get().map(|s| s.snapshot());
            let seconds = guard.t0.elapsed().as_secs_f64();
            let ended = match result {
                Ok(Ok(r)) => RunEnded {
                    export: guard.export.clone(),
                    run_id,
                    trigger: guard.trigger.clone(),
                    outcome: r.outcome,
                    error: r.error,
                    counts: r.counts,
                    seconds,
                    client,
                },
                // A run whose export was removed under it (by another process: the API
                // stops the run before it removes the export) fails for that reason only.
                Ok(Err(e)) if me.export_gone(&guard.export) => {
                    tracing::info!(export = %guard.export, run_id, error = %e, "the export was removed while it ran");
                    me.relabel(run_id, Outcome::Cancelled, EXPORT_REMOVED);
                    RunEnded {
                        export: guard.export.clone(),
                        run_id,
                        trigger: guard.trigger.clone(),
                        outcome: Outcome::Cancelled,
                        error: Some(EXPORT_REMOVED.into()),
                        counts: me.recorded_counts(run_id),
                        seconds,
                        client,
                    }
                }
                Ok(Err(e)) => RunEnded {
                    export: guard.export.clone(),
                    run_id,
                    trigger: guard.trigger.clone(),
                    outcome: Outcome::Failed,
                    error: Some(e.to_string()),
                    counts: me.recorded_counts(run_id),
                    seconds,
                    client,
                },
                Err(reason) => {
                    let outcome = match reason {
                        StopReason::Cancelled => Outcome::Cancelled,
                        StopReason::Shutdown | StopReason::LeaseLost => Outcome::Interrupted,
                    };
                    me.record_end(run_id, outcome, STOPPED_BEFORE_START);
                    RunEnded {
                        export: guard.export.clone(),
                        run_id,
                        trigger: guard.trigger.clone(),
                        outcome,
                        error: Some(STOPPED_BEFORE_START.into()),
                        counts: RunCounts::default(),
                        seconds,
                        client,
                    }
                }
            };
            tracing::info!(export = %ended.export, run_id, outcome = ended.outcome.as_str(), "run ended");
            guard.ended = Some(ended);
            let export = guard.export.clone();
            drop(guard);
            me.start_queued(&export);
        });
        if let Some(a) = self.slots().active.get_mut(export) {
            if a.run_id == run_id {
                a.abort = Some(task.abort_handle());
            }
        }
        Ok(run_id)
    }

    /// Starts the run queued behind the one of `export` that just ended, if any.
    fn start_queued(&self, export: &str) {
        let Some(trigger) = self.slots().queued.remove(export) else {
            return;
        };
        match self.start_now(export, &trigger) {
            Ok(run_id) => tracing::info!(export, run_id, trigger, "queued run started"),
            Err(e) => tracing::warn!(export, trigger, error = %e, "queued run not started"),
        }
    }

    /// The counts the engine recorded for a run (its checkpoints save them).
    fn recorded_counts(&self, run_id: i64) -> RunCounts {
        self.0
            .app
            .state()
            .ok()
            .and_then(|s| s.run(run_id).ok())
            .map(|r| r.counts)
            .unwrap_or_default()
    }

    /// Whether `export` is no longer configured (a failure to read says no).
    fn export_gone(&self, export: &str) -> bool {
        matches!(
            self.0.app.state().map(|s| s.export(export)),
            Ok(Err(crate::state::StateError::NotFound(_)))
        )
    }

    /// Records another outcome for a run the engine ended.
    fn relabel(&self, run_id: i64, outcome: Outcome, message: &str) {
        let done = self.0.app.state().map_err(|e| e.to_string()).and_then(|s| {
            let run = s.run(run_id).map_err(|e| e.to_string())?;
            s.finish_run(run_id, outcome, &run.counts, Some(message))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = done {
            tracing::error!(run_id, error = %e, "recording the end of a run");
        }
    }

    /// Records how a run ended when the engine could not (it never began, or its task was
    /// aborted or panicked), if it is still recorded as running.
    fn record_end(&self, run_id: i64, outcome: Outcome, message: &str) {
        let done = self.0.app.state().map_err(|e| e.to_string()).and_then(|s| {
            let run = s.run(run_id).map_err(|e| e.to_string())?;
            if run.outcome == Outcome::Running {
                s.finish_run(run_id, outcome, &run.counts, Some(message))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        if let Err(e) = done {
            tracing::error!(run_id, error = %e, "recording the end of a run");
        }
    }

    /// Asks the running run of `export` to stop at its next checkpoint; its id, or `None`
    /// when it is not running here. A run queued behind it is dropped.
    pub fn cancel(&self, export: &str) -> Option<i64> {
        let mut slots = self.slots();
        slots.queued.remove(export);
        let a = slots.active.get(export)?;
        a.stop.stop(StopReason::Cancelled);
        a.started().then_some(a.run_id)
    }

    /// Keeps `export` from starting (its run, if any, is asked to stop, as by
    /// [`RunManager::cancel`]) and waits, at most `within`, until no run of it is left: what
    /// to do before removing an export, so that no run writes for an export that is gone
    /// and no scheduled tick starts one meanwhile. Starts are allowed again when the
    /// returned [`Held`] is dropped.
    pub async fn hold_and_stop(&self, export: &str, within: Duration) -> Held {
        self.slots().held.insert(export.to_string());
        let held = Held {
            manager: self.clone(),
            export: export.to_string(),
        };
        self.cancel(export);
        let deadline = Instant::now() + within;
        while self.slots().active.contains_key(export) {
            if Instant::now() >= deadline {
                tracing::warn!(export, "the run did not stop in time; going on without it");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held
    }

    /// The run in progress of `export`, if any.
    pub fn running(&self, export: &str) -> Option<ActiveRun> {
        self.slots()
            .active
            .get(export)
            .filter(|a| a.started())
            .map(|a| a.view(export))
    }

    /// Every run in progress.
    pub fn all_running(&self) -> Vec<ActiveRun> {
        let mut v: Vec<ActiveRun> = self
            .slots()
            .active
            .iter()
            .filter(|(_, a)| a.started())
            .map(|(e, a)| a.view(e))
            .collect();
        v.sort_by_key(|r| r.run_id);
        v
    }

    /// The live view of run `run_id` while it runs.
    pub fn progress(&self, run_id: i64) -> Option<ActiveRun> {
        if run_id <= 0 {
            return None;
        }
        self.slots()
            .active
            .iter()
            .find(|(_, a)| a.run_id == run_id)
            .map(|(e, a)| a.view(e))
    }

    /// Waits until no run is in progress. Never keeps others from starting runs meanwhile.
    pub async fn wait_idle(&self) {
        let mut rx = self.0.tasks.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// From now on no run starts (nor any queued one), and every run is asked to stop at
    /// its next checkpoint (it ends as interrupted and resumes at the next start). Returns
    /// at once; [`RunManager::shutdown`] also waits.
    pub fn begin_shutdown(&self) {
        let mut slots = self.slots();
        self.0.shutting_down.store(true, Ordering::SeqCst);
        slots.queued.clear();
        for a in slots.active.values() {
            a.stop.stop(StopReason::Shutdown);
        }
    }

    /// Stops every run at its next checkpoint and waits for them, at most
    /// [`SHUTDOWN_GRACE`]. No run starts after this.
    pub async fn shutdown(&self) {
        self.shutdown_within(SHUTDOWN_GRACE).await
    }

    /// [`RunManager::shutdown`] with another grace period: runs that have not reached a
    /// checkpoint by then are aborted and recorded as interrupted.
    pub async fn shutdown_within(&self, grace: Duration) {
        self.begin_shutdown();
        if tokio::time::timeout(grace, self.wait_idle()).await.is_ok() {
            return;
        }
        let stuck: Vec<(String, i64, Option<AbortHandle>)> = self
            .slots()
            .active
            .iter()
            .map(|(e, a)| (e.clone(), a.run_id, a.abort.clone()))
            .collect();
        for (export, run_id, abort) in stuck {
            tracing::warn!(
                export,
                run_id,
                grace_seconds = grace.as_secs_f64(),
                "run did not reach a checkpoint in time: aborted; it resumes at the next start"
            );
            if let Some(a) = abort {
                a.abort();
            }
        }
        // An aborted task ends at its next await; its guard records the run as interrupted.
        if tokio::time::timeout(Duration::from_secs(10), self.wait_idle())
            .await
            .is_err()
        {
            tracing::error!(
                "runs still busy after being aborted: leaving them to the process exit"
            );
        }
    }

    /// Resumes what a previous server left unfinished: exports whose last run was
    /// interrupted (a shutdown, a crash), unless paused. Returns the exports resumed.
    pub async fn resume_interrupted(&self) -> Vec<String> {
        let listed = self.0.app.state().and_then(|s| {
            let exports = s.exports()?;
            Ok((s, exports))
        });
        let (state, exports) = match listed {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "reading exports to resume interrupted runs");
                return vec![];
            }
        };
        let mut resumed = Vec::new();
        for e in exports {
            let last = state
                .runs(Some(&e.name), 1)
                .ok()
                .and_then(|r| r.into_iter().next());
            let unfinished = matches!(
                last.map(|r| r.outcome),
                Some(Outcome::Interrupted | Outcome::Running)
            );
            if !unfinished {
                continue;
            }
            if e.paused {
                tracing::info!(export = %e.name, "interrupted run not resumed: the export is paused");
                continue;
            }
            match self.start_now(&e.name, "resume") {
                Ok(run_id) => {
                    tracing::info!(export = %e.name, run_id, "resuming an interrupted run");
                    resumed.push(e.name);
                }
                Err(err) => {
                    tracing::warn!(export = %e.name, error = %err, "interrupted run not resumed")
                }
            }
        }
        resumed
    }
}

/// Owned by a run's task: whatever ends the task, frees the export's slot, records and
/// publishes the run's end, and counts the task out.
struct RunGuard {
    manager: RunManager,
    export: String,
    run_id: i64,
    trigger: String,
    t0: Instant,
    /// Set when the task got to the end of its run.
    ended: Option<RunEnded>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let m = &self.manager;
        let ended = self.ended.take().unwrap_or_else(|| {
            // The task was aborted (only a shutdown that ran out of grace does that) or
            // panicked (tokio drops a panicked task's future after catching the panic): the
            // engine recorded nothing.
            let (outcome, message) = if m.is_shutting_down() {
                (Outcome::Interrupted, ABORTED_AT_SHUTDOWN)
            } else {
                tracing::error!(export = %self.export, run_id = self.run_id, "a run's task ended without finishing its run (a panic)");
                (Outcome::Failed, PANICKED)
            };
            m.record_end(self.run_id, outcome, message);
            RunEnded {
                export: self.export.clone(),
                run_id: self.run_id,
                trigger: self.trigger.clone(),
                outcome,
                error: Some(message.into()),
                counts: m.recorded_counts(self.run_id),
                seconds: self.t0.elapsed().as_secs_f64(),
                client: None,
            }
        });
        {
            let mut slots = m.slots();
            if slots
                .active
                .get(&self.export)
                .is_some_and(|a| a.run_id == self.run_id)
            {
                slots.active.remove(&self.export);
            }
        }
        m.publish(Event::RunEnded(ended));
        m.0.tasks.send_modify(|n| *n = n.saturating_sub(1));
    }
}
