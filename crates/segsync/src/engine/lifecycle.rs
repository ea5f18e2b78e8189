//! A run's life around its stages: the export's lock (a lease on PostgreSQL, given up to
//! another worker if this one stalls), the run's row from "running" to its outcome, and what
//! is recorded when it fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::prepare::prepare_to_send;
use super::{execute, Progress, RunError, RunReport, RunSettings, StopReason};
use crate::app::App;
use crate::state::{Outcome, StateStore};

/// The triggers of runs that carry on an unfinished one (after a shutdown, or a dead worker's).
pub const RESUME_TRIGGERS: [&str; 2] = ["resume", "takeover"];

/// A run that has begun: its export's lock is held and its row recorded as running.
pub struct StartedRun {
    pub run_id: i64,
    pub export: String,
    lock: crate::app::ExportLock,
    state: StateStore,
    started: Instant,
}

/// Begins a run of export `name`: takes its lock (another run of it, in this process or
/// another, makes this [`RunError::Busy`]), marks runs a dead process left running as
/// interrupted, and records the new run. [`StartedRun::finish`] does the work.
pub fn start(app: &App, name: &str, trigger: &str) -> Result<StartedRun, RunError> {
    let lock = app
        .lock_export(name)?
        .ok_or_else(|| RunError::Busy(name.to_string()))?;
    let state = app.state()?;
    state.export(name)?;
    // A resume decided on before the lock was taken: the run it was for may have been carried
    // to its end meanwhile (by another worker, which then released the lock).
    if RESUME_TRIGGERS.contains(&trigger) {
        let last = state.runs(Some(name), 1)?.into_iter().next();
        if !last.is_some_and(|r| matches!(r.outcome, Outcome::Running | Outcome::Interrupted)) {
            return Err(RunError::NothingToResume(name.to_string()));
        }
    }
    state.interrupt_stale_runs(name)?;
    let run_id = state.start_run(name, trigger)?;
    Ok(StartedRun {
        run_id,
        export: name.to_string(),
        lock,
        state,
        started: Instant::now(),
    })
}

impl StartedRun {
    /// Prepares and sends the plan, then records how the run ended (failures too).
    pub async fn finish(
        mut self,
        app: &App,
        settings: &RunSettings,
        progress: Arc<dyn Progress>,
    ) -> Result<RunReport, RunError> {
        let (run_id, name) = (self.run_id, self.export.clone());
        // A lease lost to another worker (this one stalled past its length) stops the run
        // at its next checkpoint: the other worker carries on from there.
        let fence = self.lock.lost_flag().map(|lost| {
            let stop = settings.stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if lost.load(std::sync::atomic::Ordering::SeqCst) {
                        stop.stop(StopReason::LeaseLost);
                        return;
                    }
                }
            })
        });
        let state = &mut self.state;
        let result = async {
            progress.phase(super::RunPhase::Reading.label(), 0);
            let reading = crate::state::RunCounts {
                phase: super::RunPhase::Reading.key().into(),
                ..Default::default()
            };
            state.update_run_counts(run_id, &reading)?;
            let prepared = prepare_to_send(app, state, &name, settings).await?;
            progress.attach(prepared.client.stats());
            let checkpoint_store = app.state()?;
            execute(
                state,
                checkpoint_store,
                run_id,
                prepared,
                progress.clone(),
                &settings.stop,
            )
            .await
        }
        .await;
        if let Some(f) = fence {
            f.abort();
        }
        progress.finish();
        record_health(state, &name, &result);
        match result {
            Ok(mut report) => {
                report.seconds = self.started.elapsed().as_secs_f64();
                Ok(report)
            }
            Err(e) => {
                // Keep what the run did before it failed (saved after every phase).
                let msg = e.to_string();
                let counts = state.run(run_id).map(|r| r.counts).unwrap_or_default();
                state.finish_run(run_id, Outcome::Failed, &counts, Some(&msg))?;
                Err(e)
            }
        }
    }
}

/// Runs export `name`: takes its lock, records the run, prepares and sends the plan.
pub async fn run(
    app: &App,
    name: &str,
    settings: &RunSettings,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, RunError> {
    start(app, name, &settings.trigger)?
        .finish(app, settings, progress)
        .await
}

/// What the run learned of its connection's health (see [`crate::ops::health::record_run`]).
fn record_health(state: &StateStore, export: &str, result: &Result<RunReport, RunError>) {
    let Ok(e) = state.export(export) else { return };
    let rejected = crate::mailchimp::Error::CredentialRejected;
    let error = match result {
        // A credential refused mid-run fails the run through its answers.
        Ok(r) if r.error.as_deref() == Some(rejected.to_string().as_str()) => Some(&rejected),
        Ok(_) => None,
        Err(RunError::Mailchimp(e)) => Some(&**e),
        Err(_) => return,
    };
    crate::ops::health::record_run(state, &e.connection, error);
}
