//! The state store's aggregates, one trait each. A backend implements all of them (a file
//! per aggregate in its folder); [`StateBackend`](super::StateBackend) unites them with what
//! concerns the store as a whole (its kind, schema, migrations, copying).
//!
//! Contract shared by every method: a write is one transaction, whole or not at all; names
//! are compared byte-wise; a missing record is [`StateError::NotFound`](super::StateError)
//! and a clash [`StateError::Conflict`](super::StateError), with the same message on every
//! backend (`tests/state_contract.rs` runs one suite against each).

use std::collections::HashMap;
use std::time::Duration;

use segsync_core::{MemberKey, RecordError, SnapshotEntry, Status};

use super::suppressions::{RefusalRecord, Suppression, SuppressionKind};
use super::{
    AuditEntry, ConnectionHealth, ConnectionRecord, ExportConfig, Outcome, ProfileSourceRecord,
    QueuedRun, Result, Role, RunChange, RunCounts, RunRecord, SegmentRecord, SessionRecord,
    SnapshotSink, TokenRecord, UserRecord,
};

/// Connections to Mailchimp accounts, with their sealed secrets.
pub trait ConnectionStore {
    fn add_connection(&self, c: &ConnectionRecord) -> Result<()>;
    fn connection(&self, name: &str) -> Result<ConnectionRecord>;
    fn connections(&self) -> Result<Vec<ConnectionRecord>>;
    /// Changes what may change of a connection after its creation: its display name, who may
    /// use it, the export user, its slot budget, and (on re-authentication) its credential,
    /// API root and account.
    fn update_connection(&self, c: &ConnectionRecord) -> Result<()>;
    /// Records the Mailchimp account a connection's credential belongs to, once learned.
    fn set_connection_account(&self, name: &str, account_id: &str) -> Result<()>;
    /// Records a check of a connection (its account's name kept when the check did not
    /// learn it).
    fn set_connection_health(&self, name: &str, h: &ConnectionHealth) -> Result<()>;
    /// The last check of a connection; `None` if it was never checked.
    fn connection_health(&self, name: &str) -> Result<Option<ConnectionHealth>>;
    /// Removes a connection and its sealed secret; the exports on it stop running.
    fn remove_connection(&self, name: &str) -> Result<()>;
}

/// Segments (named predicates) and the profile sources they read.
pub trait SegmentStore {
    /// A segment over the embedded profile store.
    fn add_segment(&self, name: &str, predicate: &str) -> Result<()> {
        self.add_segment_from(name, predicate, None)
    }
    /// A segment over `source` (a profile source's name; `None`: the embedded store).
    fn add_segment_from(&self, name: &str, predicate: &str, source: Option<&str>) -> Result<()> {
        self.add_segment_with(name, predicate, None, source)
    }
    /// A segment with the structured rule (JSON) its predicate was compiled from, if any.
    fn add_segment_with(
        &self,
        name: &str,
        predicate: &str,
        rule: Option<&str>,
        source: Option<&str>,
    ) -> Result<()>;
    fn segment(&self, name: &str) -> Result<SegmentRecord>;
    fn segments(&self) -> Result<Vec<SegmentRecord>>;
    /// A predicate written as SQL: any rule it was compiled from is dropped.
    fn set_segment_predicate(&self, name: &str, predicate: &str) -> Result<()> {
        self.set_segment_definition(name, predicate, None)
    }
    /// The predicate and the rule (JSON) it was compiled from, together.
    fn set_segment_definition(&self, name: &str, predicate: &str, rule: Option<&str>)
        -> Result<()>;
    /// Refused while an export uses the segment.
    fn remove_segment(&self, name: &str) -> Result<()>;
    fn add_profile_source(&self, s: &ProfileSourceRecord) -> Result<()>;
    fn profile_source(&self, name: &str) -> Result<ProfileSourceRecord>;
    fn profile_sources(&self) -> Result<Vec<ProfileSourceRecord>>;
    /// Refused while a segment reads from it.
    fn remove_profile_source(&self, name: &str) -> Result<()>;
}

/// Exports and the bit each of their tag names has in the snapshot.
pub trait ExportStore {
    fn add_export(&self, e: &ExportConfig) -> Result<()>;
    fn export(&self, name: &str) -> Result<ExportConfig>;
    fn exports(&self) -> Result<Vec<ExportConfig>>;
    /// Replaces an export's configuration. Pointing it at another connection or audience
    /// starts it afresh there: its snapshot, tag dictionary and marks belong to the old
    /// audience and are dropped.
    fn replace_export(&mut self, e: &ExportConfig) -> Result<()>;
    /// Removes an export with its snapshot and tag dictionary (its run history stays).
    fn remove_export(&mut self, name: &str) -> Result<()>;
    /// The bit of each tag name for `export`, assigning new bits for new names (never reused).
    fn tag_bits(&mut self, export: &str, tags: &[String]) -> Result<Vec<usize>>;
    /// Tag names by bit for `export`.
    fn tag_names(&self, export: &str) -> Result<HashMap<usize, String>>;
}

/// What each export delivered (its snapshot), the creates a run is about to send, and when the audience was last read. Progress never moves backwards: an entry changes only for what Mailchimp acknowledged.
pub trait SnapshotStore {
    fn snapshot(&self, export: &str) -> Result<HashMap<MemberKey, SnapshotEntry>>;
    /// Writes snapshot entries in one transaction: one acknowledged request.
    fn save_snapshot(&mut self, export: &str, entries: &[(MemberKey, SnapshotEntry)])
        -> Result<()>;
    /// Drops the entries of `keys` (members moved to another address).
    fn remove_snapshot_entries(&mut self, export: &str, keys: &[MemberKey]) -> Result<()>;
    /// The snapshot entries of `keys` that exist.
    fn snapshot_entries(
        &self,
        export: &str,
        keys: &[MemberKey],
    ) -> Result<HashMap<MemberKey, SnapshotEntry>>;
    /// Whether `export` has a snapshot at all (a first run reads the whole audience).
    fn has_snapshot(&self, export: &str) -> Result<bool>;
    /// The statuses `export`'s snapshot members have, each once: which changes of status
    /// the audience read must ask for (`segsync_core::statuses_to_read`).
    fn snapshot_statuses(&self, export: &str) -> Result<Vec<Status>>;
    /// `export`'s snapshot in key order, in batches, without holding it all in memory.
    fn snapshot_in_key_order(&self, export: &str, sink: &mut SnapshotSink<'_>) -> Result<()>;
    //
    // Written before a run sends its creates, cleared when the run ends. If the process dies
    // after Mailchimp created a member but before the answer was checkpointed, the next run
    // finds the member in the audience and, through its intent, knows this export added it.

    /// Records that the export is about to create these members (key, address).
    fn record_create_intents(&mut self, export: &str, members: &[(MemberKey, &str)]) -> Result<()>;
    /// Members a run of the export meant to create, and did not see through (key, address).
    fn create_intents(&self, export: &str) -> Result<Vec<(MemberKey, String)>>;
    /// Drops the intents of members found to exist already, added by someone else.
    fn forget_create_intents(&mut self, export: &str, keys: &[MemberKey]) -> Result<()>;
    fn clear_create_intents(&self, export: &str) -> Result<()>;
    /// When the audience was last read, for the next `since_last_changed`.
    fn audience_read_at(&self, export: &str) -> Result<Option<String>>;
    fn set_audience_read_at(&self, export: &str, at: &str) -> Result<()>;
}

/// Runs, their counts and the records they could not send.
pub trait RunStore {
    /// Exports that have a run still marked `running` (alive, or left so by a process that
    /// died).
    fn exports_with_running_runs(&self) -> Result<Vec<String>>;
    /// Marks runs left `running` by a process that died as interrupted.
    fn interrupt_stale_runs(&self, export: &str) -> Result<usize>;
    fn start_run(&self, export: &str, trigger: &str) -> Result<i64>;
    fn update_run_counts(&self, id: i64, counts: &RunCounts) -> Result<()>;
    fn finish_run(
        &self,
        id: i64,
        outcome: Outcome,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<()>;
    fn add_run_errors(&mut self, id: i64, errors: &[RecordError]) -> Result<()>;
    fn runs(&self, export: Option<&str>, limit: usize) -> Result<Vec<RunRecord>>;
    fn run(&self, id: i64) -> Result<RunRecord>;
    fn run_errors(&self, id: i64) -> Result<Vec<RecordError>>;
    /// How many records run `id` could not send (for lists, without reading them all).
    fn run_error_count(&self, id: i64) -> Result<u64>;
    /// The first `limit` records run `id` could not send, in order (for the web UI's run page).
    fn run_errors_head(&self, id: i64, limit: usize) -> Result<Vec<RecordError>>;
    /// Adds lines to run `id`'s change log, after those it has.
    fn add_run_changes(&mut self, id: i64, changes: &[RunChange]) -> Result<()>;
    /// Up to `limit` lines of run `id`'s change log after line `after` (-1: from the
    /// first), in order, each with its line number.
    fn run_changes_page(&self, id: i64, after: i64, limit: usize) -> Result<Vec<(i64, RunChange)>>;
    /// Up to `limit` of run `id`'s errors after the `after`th (-1: from the first), each
    /// with its number: the `refused` lines of its change log.
    fn run_errors_page(&self, id: i64, after: i64, limit: usize)
        -> Result<Vec<(i64, RecordError)>>;
}

/// Leases (one holder at a time for a name, until it expires) and the run queue (runs asked for, taken by one worker each).
pub trait QueueStore {
    /// Takes (or renews) lease `name` for `ttl`: true if it was free, expired, or already
    /// held by `holder`; false while someone else holds it.
    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;
    /// Lets lease `name` go, if `holder` holds it.
    fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// Queues a run; `None` when a run of `export` for the same schedule `tick` was queued
    /// already (runs without a tick never conflict).
    fn enqueue_run(
        &self,
        export: &str,
        trigger: &str,
        requested_by: &str,
        tick: Option<&str>,
    ) -> Result<Option<i64>>;
    /// Takes the oldest pending run (or one whose worker's lease ran out) for `worker`, for
    /// `ttl`; runs of an export that another worker is running wait.
    fn claim_queued_run(&self, worker: &str, ttl: Duration) -> Result<Option<QueuedRun>>;
    /// Extends `worker`'s claim on run `id`; false if it no longer holds it.
    fn renew_queued_run(&self, id: i64, worker: &str, ttl: Duration) -> Result<bool>;
    /// Marks queued run `id` done (with the run it became); refused if `worker` does not hold
    /// it.
    fn complete_queued_run(&self, id: i64, worker: &str, run_id: Option<i64>) -> Result<()>;
    /// Pending and claimed runs, oldest first, of `export` or of all.
    fn queued_runs(&self, export: Option<&str>) -> Result<Vec<QueuedRun>>;
}

/// Users, API tokens, sessions, the audit log, settings and pending OAuth flows.
pub trait PeopleStore {
    fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<()>;
    fn user(&self, name: &str) -> Result<UserRecord>;
    fn users(&self) -> Result<Vec<UserRecord>>;
    /// The stored password hash (a PHC string), for verification only.
    fn password_hash(&self, name: &str) -> Result<Option<String>>;
    /// A new password ends every session opened with the old one.
    fn set_password_hash(&self, name: &str, hash: &str) -> Result<()>;
    fn set_role(&self, name: &str, role: Role) -> Result<()>;
    /// Removes a user with their sessions and tokens.
    fn remove_user(&self, name: &str) -> Result<()>;
    fn count_admins(&self) -> Result<u64>;
    fn add_token(&self, user: &str, label: &str, token_hash: &[u8]) -> Result<i64>;
    /// The user a token (by its hash) belongs to; records its use.
    fn token_user(&self, token_hash: &[u8]) -> Result<Option<UserRecord>>;
    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>>;
    fn revoke_token(&self, id: i64) -> Result<TokenRecord>;
    fn add_session(&self, id_hash: &[u8], user: &str, csrf: &str, expires_at: &str) -> Result<()>;
    /// The live session with this hash (expired ones are not returned).
    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>>;
    fn remove_session(&self, id_hash: &[u8]) -> Result<()>;
    /// Records who did what to what. `detail` must never hold a secret.
    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()>;
    /// The newest entries first, `limit` of them, older than `before` when given.
    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>>;
    fn setting(&self, name: &str) -> Result<Option<String>>;
    fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()>;
    fn add_oauth_flow(&self, state: &str, user: &str, request: &str) -> Result<()>;
    /// Takes (and forgets) a pending flow: its user, its request and when it began. A flow is
    /// taken once: of two concurrent takers, one gets it.
    fn take_oauth_flow(&self, state: &str) -> Result<Option<(String, String, String)>>;
}

/// Suppression lists and remembered refusals.
pub trait SuppressionStore {
    /// Adds an entry to its list (`s.export`; none: the installation's); one on that list
    /// already is a conflict.
    fn add_suppression(&self, s: &Suppression) -> Result<()>;
    /// Takes an entry off a list; one not on it is not found.
    fn remove_suppression(
        &self,
        export: Option<&str>,
        kind: SuppressionKind,
        value: &str,
    ) -> Result<()>;
    /// The list of `export` (none: the installation's), by kind and value.
    fn suppressions(&self, export: Option<&str>) -> Result<Vec<Suppression>>;
    /// Remembers refusals, each replacing an earlier one of its export and address.
    fn remember_refusals(&self, refusals: &[RefusalRecord]) -> Result<()>;
    /// The refusals remembered for `export`, by address.
    fn refusals(&self, export: &str) -> Result<Vec<RefusalRecord>>;
    /// Forgets refusals of `export` by address (the next run sends them again); how many
    /// there were.
    fn forget_refusals(&self, export: &str, emails: &[String]) -> Result<u64>;
}
