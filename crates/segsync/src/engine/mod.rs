//! One run of an export, in stages, each a file:
//!
//! 1. [`prepare`]: read the profiles (every segment in one pass), normalise and stage them,
//!    learn what changed in the audience ([`audience`], read while the profiles are), diff
//!    and plan ([`diff`]). `segsync plan` stops here. A run with a large stage and no moves
//!    starts sending before its diff is done ([`stream`]).
//! 2. [`execute`]: send the plan phase by phase, each operation through the Mailchimp
//!    destination (`segsync_mailchimp::sink`: request bodies, the request stack, answers read
//!    into facts), with up to 10 requests in flight.
//! 3. [`checkpoint`]: the facts of every answer move the snapshot forward, on a thread of
//!    their own.
//! 4. [`report`]: how the run ended, its counts and the records it could not send.
//!
//! [`lifecycle`] holds the run around them: the export's lock (or lease), the run's row, and
//! what is recorded when it fails.
//!
//! Crash safety comes from the order of things: the snapshot only moves for what Mailchimp
//! acknowledged, creates are sent with `update_existing: false` (a member created by a request
//! whose answer was lost comes back as "exists" and is then updated, never duplicated), and a
//! new run recomputes the diff from the snapshot, so it sends exactly what is left. Creates
//! are recorded as intents before they are sent, so that the members a killed run created
//! without checkpointing them are still known as the export's own (only those are ever
//! archived or unsubscribed by it). The crash tests kill a run at the worst moment through
//! [`crash`], a hook compiled in only with the `crash-hook` feature.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::app::App;
use crate::mailchimp::{self, Client, ClientConfig};
use crate::state::StateStore;

mod audience;
mod checkpoint;
pub mod crash;
mod diff;
mod evaluate;
mod execute;
mod holds;
mod lifecycle;
mod prepare;
mod report;
mod stream;
mod tracking;

pub use execute::execute;
pub use holds::HeldCounts;
pub use lifecycle::{run, start, StartedRun, RESUME_TRIGGERS};
pub use prepare::{mapping_problems, prepare, PlanReport, Prepared, StagedPlan};
pub use report::RunReport;
pub use tracking::RunPhase;

/// Why a run could not go on. Per-record problems are not errors: they are reported.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The export, its connection or its mapping is not usable as configured.
    #[error("{0}")]
    Config(String),
    /// More members than the export allows; nothing was sent.
    #[error("{0}")]
    Limit(String),
    /// Another run of the same export holds its lock.
    #[error("export \"{0}\" is already running (another segsync process holds its lock); wait for it to finish")]
    Busy(String),
    /// A resume found the export's last run finished (another worker carried it on).
    #[error("export \"{0}\" has no unfinished run to resume")]
    NothingToResume(String),
    #[error(transparent)]
    Mailchimp(Box<mailchimp::Error>),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<mailchimp::Error> for RunError {
    fn from(e: mailchimp::Error) -> Self {
        RunError::Mailchimp(Box::new(e))
    }
}

impl From<crate::state::StateError> for RunError {
    fn from(e: crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::NotFound(m) | crate::state::StateError::Conflict(m) => {
                RunError::Config(m)
            }
            other => RunError::Other(other.into()),
        }
    }
}

/// What a progress display is told. Implemented by the CLI (a bar on a terminal, plain lines
/// elsewhere).
pub trait Progress: Send + Sync {
    /// The client's live counters (requests in flight), once the client exists.
    fn attach(&self, _stats: Arc<mailchimp::ClientStats>) {}
    /// A new phase with `total` members to go (or 0 when unknown).
    fn phase(&self, name: &str, total: u64);
    /// `n` more members done in the current phase.
    fn advance(&self, n: u64);
    fn finish(&self);
}

/// A progress that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Why a run was asked to stop before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Someone pressed "Cancel": the run ends as cancelled.
    Cancelled,
    /// The server is shutting down: the run ends as interrupted and the next start resumes it.
    Shutdown,
    /// Another worker took the export's lease (this one stalled past it): the run ends as
    /// interrupted and the other worker's run carries on.
    LeaseLost,
}

/// Asks a run to stop at its next checkpoint: no new request is sent, the requests in flight
/// are answered and checkpointed, and the run ends with what Mailchimp acknowledged.
#[derive(Clone, Default)]
pub struct StopSignal(Arc<AtomicU8>);

impl StopSignal {
    pub fn stop(&self, reason: StopReason) {
        let v = match reason {
            StopReason::Cancelled => 1,
            StopReason::Shutdown => 2,
            StopReason::LeaseLost => 3,
        };
        // The first reason given wins.
        let _ = self
            .0
            .compare_exchange(0, v, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn reason(&self) -> Option<StopReason> {
        match self.0.load(Ordering::SeqCst) {
            1 => Some(StopReason::Cancelled),
            2 => Some(StopReason::Shutdown),
            3 => Some(StopReason::LeaseLost),
            _ => None,
        }
    }
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopSignal({:?})", self.reason())
    }
}

/// How a run is told to behave from outside its configuration.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub trigger: String,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub retry: mailchimp::RetryPolicy,
    pub stop: StopSignal,
    /// Evaluate every profile, even when only some changed since the last run.
    pub full: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            trigger: "manual".into(),
            max_in_flight: 10,
            timeout: Duration::from_secs(120),
            retry: mailchimp::RetryPolicy::default(),
            stop: StopSignal::default(),
            full: false,
        }
    }
}

/// Builds the Mailchimp client of a stored connection: the one way from a connection to a
/// client, for runs, checks and the audience pickers alike. Once the connection's account is
/// known, the client takes its slots from the process's budget of that account
/// ([`crate::budget`]); `settings.max_in_flight` caps its own share.
pub fn client_for(
    state: &StateStore,
    app: &App,
    connection: &str,
    settings: &RunSettings,
) -> Result<Client, RunError> {
    let c = state.connection(connection).map_err(|e| match e {
        crate::state::StateError::NotFound(_) => {
            RunError::Config(format!("connection \"{connection}\" was removed: add it again with `segsync connection add`, or point the export at another one"))
        }
        other => other.into(),
    })?;
    let secret: SecretString = app
        .master_key()?
        .open(&c.name, &c.sealed_secret)
        .map_err(anyhow::Error::from)?;
    let mut config = ClientConfig::for_connection(c.credential_kind, secret, &c.base_url)
        .map_err(|e| RunError::Config(format!("connection {connection}: {e}")))?;
    config.max_in_flight = settings.max_in_flight;
    config.timeout = settings.timeout;
    config.retry = settings.retry.clone();
    config.allow_private_targets = app.private_targets();
    config.budget = crate::budget::budget_of(state, &c);
    Ok(Client::new(config)?)
}

/// The client of a run: [`client_for`], after learning the connection's account (one
/// `GET /`, the first time), so that the run shares its account's connection budget.
pub async fn run_client(
    state: &mut StateStore,
    app: &App,
    connection: &str,
    settings: &RunSettings,
) -> Result<Client, RunError> {
    let c = state.connection(connection).ok();
    if let Some(c) = c.filter(|c| c.account_id.is_none()) {
        let first = client_for(state, app, connection, settings)?;
        crate::budget::learn_account(state, &first, c).await?;
    }
    client_for(state, app, connection, settings)
}
