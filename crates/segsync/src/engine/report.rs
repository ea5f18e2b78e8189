//! The last stage of a run: its outcome, counts and the records it could not send, written
//! to the run's row and returned as the report the CLI, the API and the UI show.

use segsync_core::{MemberKey, RecordError};
use serde::Serialize;

use super::{RunError, StopReason};
use crate::mailchimp::Client;
use crate::state::{Outcome, RunCounts, StateStore};

/// The report of a finished run.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub export: String,
    pub outcome: Outcome,
    pub counts: RunCounts,
    pub seconds: f64,
    pub error: Option<String>,
    pub errors_sample: Vec<RecordError>,
}

/// What a run counted while it sent: its counts, the records it could not send, and the
/// first error that failed it.
pub(super) struct Tallied {
    pub counts: RunCounts,
    pub errors: Vec<RecordError>,
    pub failure: Option<String>,
}

/// Ends a run that sent its whole plan: failed if a request failed for good, else succeeded
/// (with errors if any record could not be sent). The audience mark moves only after a run
/// that did not fail, so that the next run reads what changed since the last complete one.
pub(super) fn finished(
    state: &StateStore,
    run_id: i64,
    export: &str,
    client: &Client,
    tally: Tallied,
    audience_read_at: chrono::DateTime<chrono::Utc>,
) -> Result<RunReport, RunError> {
    let Tallied {
        mut counts,
        errors,
        failure,
    } = tally;
    count_requests(&mut counts, client);
    let outcome = if failure.is_some() {
        Outcome::Failed
    } else if errors.is_empty() {
        Outcome::Succeeded
    } else {
        Outcome::SucceededWithErrors
    };
    if failure.is_none() {
        state.set_audience_read_at(
            export,
            &audience_read_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )?;
    }
    record(state, run_id, export, outcome, counts, errors, failure)
}

/// Ends a run that was asked to stop: every answer received is checkpointed already; the
/// next run diffs from that snapshot and sends what is left. The audience mark is not moved,
/// so the next run reads everything that changed since the last complete run.
pub(super) fn stopped(
    state: &StateStore,
    run_id: i64,
    export: &str,
    client: &Client,
    mut counts: RunCounts,
    errors: Vec<RecordError>,
    reason: StopReason,
) -> Result<RunReport, RunError> {
    count_requests(&mut counts, client);
    let (outcome, msg) = match reason {
        StopReason::Cancelled => (
            Outcome::Cancelled,
            "cancelled: what Mailchimp acknowledged is kept; the next run sends the rest",
        ),
        StopReason::Shutdown => (
            Outcome::Interrupted,
            "the server shut down: the run resumes from its checkpoint when it starts again",
        ),
        StopReason::LeaseLost => (
            Outcome::Interrupted,
            "another worker took the export over (this one did not renew its lease in time): \
             it carries on from the last checkpoint",
        ),
    };
    record(
        state,
        run_id,
        export,
        outcome,
        counts,
        errors,
        Some(msg.to_string()),
    )
}

/// Writes how the run ended to its row, and makes its report.
fn record(
    state: &StateStore,
    run_id: i64,
    export: &str,
    outcome: Outcome,
    counts: RunCounts,
    errors: Vec<RecordError>,
    error: Option<String>,
) -> Result<RunReport, RunError> {
    state.finish_run(run_id, outcome, &counts, error.as_deref())?;
    Ok(RunReport {
        run_id,
        export: export.to_string(),
        outcome,
        counts,
        seconds: 0.0,
        error,
        errors_sample: errors.into_iter().take(10).collect(),
    })
}

/// The client's request and retry counts, into the run's.
fn count_requests(counts: &mut RunCounts, client: &Client) {
    let stats = client.stats().snapshot();
    counts.requests = stats.requests_sent;
    counts.retries = stats.retries.total();
    counts.slot_ms = stats.slot_ms;
    counts.mailchimp_ms = client.age().as_millis() as u64;
    counts.throttled = stats.throttled;
}

/// The profile key of the profile that gave `email`, for error reports ("" if unknown).
pub(super) fn profile_key(state: &StateStore, email: &str) -> String {
    state
        .staged_profile_key(&MemberKey::of(email))
        .ok()
        .flatten()
        .unwrap_or_default()
}
