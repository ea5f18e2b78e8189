//! What a run says of itself while it runs: the phase it is in with its members answered
//! (saved with the run's counts every second or so, so that any worker's page and the API
//! show it), and where its retries happened (each phase's, by cause).

use std::time::{Duration, Instant};

use crate::mailchimp::{Client, RetryCounts};
use crate::state::{PhaseRetries, RunCounts};

/// How often the members answered are saved while a phase runs.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The phases of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPhase {
    Reading,
    Preparing,
    Sending,
    Tagging,
    Removing,
}

impl RunPhase {
    /// The stable name, as the run's JSON (`counts.phase`) has it.
    pub fn key(self) -> &'static str {
        match self {
            RunPhase::Reading => "reading",
            RunPhase::Preparing => "preparing",
            RunPhase::Sending => "sending",
            RunPhase::Tagging => "tagging",
            RunPhase::Removing => "removing",
        }
    }

    /// What a progress display says.
    pub fn label(self) -> &'static str {
        match self {
            RunPhase::Reading => "reading profiles and the audience",
            RunPhase::Preparing => "preparing the audience's merge fields and tags",
            RunPhase::Sending => "sending members",
            RunPhase::Tagging => "tagging",
            RunPhase::Removing => "removing",
        }
    }
}

/// The phase a run is in, and the client's retries when it began.
pub(super) struct Tracker {
    phase: RunPhase,
    marker: RetryCounts,
    saved: Instant,
}

impl Tracker {
    /// Tracking from the start of the send stage: what was retried so far was retried
    /// while reading.
    pub fn new() -> Tracker {
        Tracker {
            phase: RunPhase::Reading,
            marker: RetryCounts::default(),
            saved: Instant::now(),
        }
    }

    /// Enters `phase`, with `total` members to go: the retries so far go to the phase
    /// left.
    pub fn enter(&mut self, counts: &mut RunCounts, client: &Client, phase: RunPhase, total: u64) {
        self.settle(counts, client);
        self.phase = phase;
        counts.phase = phase.key().to_string();
        counts.members_done = 0;
        counts.members_total = total;
    }

    /// `n` more members answered; whether it is time to save the counts.
    pub fn answered(&mut self, counts: &mut RunCounts, n: u64) -> bool {
        counts.members_done += n;
        if self.saved.elapsed() >= SAVE_EVERY {
            self.saved = Instant::now();
            return true;
        }
        false
    }

    /// The retries since the last settling, to the current phase's entry.
    pub fn settle(&mut self, counts: &mut RunCounts, client: &Client) {
        let now = client.stats().snapshot().retries;
        let delta = PhaseRetries {
            phase: self.phase.key().to_string(),
            too_many_requests: now.too_many_requests - self.marker.too_many_requests,
            server_error: now.server_error - self.marker.server_error,
            timeout: now.timeout - self.marker.timeout,
            connection: now.connection - self.marker.connection,
        };
        self.marker = now;
        if delta.total() == 0 {
            return;
        }
        let entry = match counts
            .retries_by_phase
            .iter_mut()
            .find(|p| p.phase == delta.phase)
        {
            Some(e) => e,
            None => {
                counts.retries_by_phase.push(PhaseRetries {
                    phase: delta.phase.clone(),
                    ..Default::default()
                });
                counts.retries_by_phase.last_mut().expect("just pushed")
            }
        };
        entry.too_many_requests += delta.too_many_requests;
        entry.server_error += delta.server_error;
        entry.timeout += delta.timeout;
        entry.connection += delta.connection;
    }
}
