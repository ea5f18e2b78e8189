//! The runs of a server: started by "Run now", the scheduler or a resume, each in its own
//! task through the same engine as `segsync run`, with live progress, cancel, and a clean
//! stop on shutdown. One run per export at a time (the export's lock makes that hold across
//! processes too).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use crate::engine::{self, Progress, RunError, RunSettings, StopReason, StopSignal};
use crate::home::Home;
use crate::mailchimp::ClientStats;
use crate::ops::OpError;
use crate::state::{Outcome, RunCounts};

/// What happened, for whoever listens (alerts, metrics, the scheduler).
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

struct Active {
    run_id: i64,
    trigger: String,
    stop: StopSignal,
    progress: Arc<LiveProgress>,
}

impl Active {
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

struct Inner {
    home: Home,
    settings: RunSettings,
    active: Mutex<HashMap<String, Active>>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
    events: broadcast::Sender<Event>,
    shutting_down: std::sync::atomic::AtomicBool,
}

/// Starts, watches, cancels and stops runs. Cheap to clone.
#[derive(Clone)]
pub struct RunManager(Arc<Inner>);

impl RunManager {
    /// `settings` is the template of every run (timeout, retries, in-flight); its trigger
    /// and stop signal are set per run.
    pub fn new(home: Home, settings: RunSettings) -> RunManager {
        let (events, _) = broadcast::channel(1024);
        RunManager(Arc::new(Inner {
            home,
            settings,
            active: Mutex::new(HashMap::new()),
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
            events,
            shutting_down: Default::default(),
        }))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }

    pub fn publish(&self, e: Event) {
        let _ = self.0.events.send(e);
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.0.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a run of `export` in the background and returns its id. Refused (conflict)
    /// when the export is running already, here or in another process.
    pub async fn start(&self, export: &str, trigger: &str) -> Result<i64, OpError> {
        if self.0.shutting_down.load(Ordering::SeqCst) {
            return Err(OpError::Conflict(
                "the server is shutting down: no new run starts".into(),
            ));
        }
        if let Some(a) = self.active().get(export) {
            return Err(OpError::Conflict(format!(
                "export \"{export}\" is already running (run {})",
                a.run_id
            )));
        }
        let started = engine::start(&self.0.home, export, trigger).map_err(|e| match e {
            RunError::Busy(_) => OpError::Conflict(e.to_string()),
            other => OpError::from(other),
        })?;
        let run_id = started.run_id;
        let stop = StopSignal::default();
        let progress = Arc::new(LiveProgress::default());
        {
            let mut active = self.active();
            if let Some(a) = active.get(export) {
                return Err(OpError::Conflict(format!(
                    "export \"{export}\" is already running (run {})",
                    a.run_id
                )));
            }
            active.insert(
                export.to_string(),
                Active {
                    run_id,
                    trigger: trigger.to_string(),
                    stop: stop.clone(),
                    progress: progress.clone(),
                },
            );
        }
        self.publish(Event::RunStarted {
            export: export.to_string(),
            run_id,
            trigger: trigger.to_string(),
        });
        let mut settings = self.0.settings.clone();
        settings.trigger = trigger.to_string();
        settings.stop = stop;
        let me = self.clone();
        let (export, trigger) = (export.to_string(), trigger.to_string());
        let t0 = std::time::Instant::now();
        let mut tasks = self.0.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let home = me.0.home.clone();
            let result = started
                .finish(&home, &settings, progress.clone() as Arc<dyn Progress>)
                .await;
            let client = progress.stats.get().map(|s| s.snapshot());
            let ended = match result {
                Ok(r) => RunEnded {
                    export: export.clone(),
                    run_id,
                    trigger,
                    outcome: r.outcome,
                    error: r.error,
                    counts: r.counts,
                    seconds: t0.elapsed().as_secs_f64(),
                    client,
                },
                Err(e) => {
                    let counts = home
                        .state()
                        .ok()
                        .and_then(|s| s.run(run_id).ok())
                        .map(|r| r.counts)
                        .unwrap_or_default();
                    RunEnded {
                        export: export.clone(),
                        run_id,
                        trigger,
                        outcome: Outcome::Failed,
                        error: Some(e.to_string()),
                        counts,
                        seconds: t0.elapsed().as_secs_f64(),
                        client,
                    }
                }
            };
            tracing::info!(export = %ended.export, run_id, outcome = ended.outcome.as_str(), "run ended");
            me.active().remove(&export);
            me.publish(Event::RunEnded(ended));
        });
        Ok(run_id)
    }

    /// Asks the running run of `export` to stop at its next checkpoint; its id, or `None`
    /// when it is not running here.
    pub fn cancel(&self, export: &str) -> Option<i64> {
        let active = self.active();
        let a = active.get(export)?;
        a.stop.stop(StopReason::Cancelled);
        Some(a.run_id)
    }

    /// The run in progress of `export`, if any.
    pub fn running(&self, export: &str) -> Option<ActiveRun> {
        self.active().get(export).map(|a| a.view(export))
    }

    /// Every run in progress.
    pub fn all_running(&self) -> Vec<ActiveRun> {
        let mut v: Vec<ActiveRun> = self.active().iter().map(|(e, a)| a.view(e)).collect();
        v.sort_by_key(|r| r.run_id);
        v
    }

    /// The live view of run `run_id` while it runs.
    pub fn progress(&self, run_id: i64) -> Option<ActiveRun> {
        self.active()
            .iter()
            .find(|(_, a)| a.run_id == run_id)
            .map(|(e, a)| a.view(e))
    }

    /// Waits until no run is in progress.
    pub async fn wait_idle(&self) {
        let mut tasks = self.0.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }

    /// Stops every run at its next checkpoint (they end as interrupted and resume at the
    /// next start) and waits for them. No run starts after this.
    pub async fn shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
        for a in self.active().values() {
            a.stop.stop(StopReason::Shutdown);
        }
        self.wait_idle().await;
    }

    /// Resumes what a previous server left unfinished: exports whose last run was
    /// interrupted (a shutdown, a crash). Returns the exports resumed.
    pub async fn resume_interrupted(&self) -> Vec<String> {
        let Ok(state) = self.0.home.state() else {
            return vec![];
        };
        let Ok(exports) = state.exports() else {
            return vec![];
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
            if unfinished && self.start(&e.name, "resume").await.is_ok() {
                resumed.push(e.name);
            }
        }
        resumed
    }
}
