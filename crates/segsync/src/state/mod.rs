//! The state store: connections (secrets sealed), segments, exports, each export's tag
//! dictionary and snapshot, the history of runs with their per-record errors, people (users,
//! API tokens, sessions: [`people`]), the audit log, settings, profile sources, leases and the
//! run queue.
//!
//! Design: every durable operation is a method of one of the store's aggregates, a trait each
//! ([`stores`]: connections, segments and profile sources, exports, snapshots, runs, leases and
//! the queue, people); [`StateBackend`] unites them with what concerns the store as a whole.
//! Two implementations, each a folder with a file per aggregate and its own ordered
//! migrations (`migrations.rs`; `schema_migrations` records what was applied):
//!
//! - [`sqlite`]: one SQLite file (`state.sqlite` in the home folder), apart from the profiles,
//!   so that segment predicates can never read it. The default.
//! - [`postgres`]: a PostgreSQL database shared by several `segsync serve` workers. Its client
//!   runs on a thread of its own ([`crate::pg::PgThread`]); leases and the run queue use the
//!   database's clock so that workers on different machines agree.
//!
//! [`StateStore`] is the type the rest of the crate holds: it dereferences to the backend, so
//! `state.add_segment(..)` reaches the trait method, and it owns a run's working set (the
//! stage and the plan, [`staging`]), which always lives in SQLite: on the SQLite backend in
//! temporary tables of the state connection itself (the merge-join reads `main.snapshot`
//! directly), on PostgreSQL in a private scratch SQLite database into which the diff first
//! streams the export's snapshot in key order.
//!
//! [`copy_state`] moves everything from one backend to another ([`copy`]).
//!
//! Contract: the snapshot moves forward only for what Mailchimp acknowledged, one transaction
//! per acknowledged request, so a crash at any moment leaves a snapshot that is true.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use segsync_core::{MemberKey, NewStatus, RemovalPolicy, SnapshotEntry};
use serde::{Deserialize, Serialize};

pub mod changes;
pub mod copy;
mod msg;
mod people;
pub mod postgres;
mod schema;
pub mod sqlite;
mod staging;
pub mod stores;
pub mod suppressions;

pub use changes::{ChangeAction, ConnectionHealth, RunChange, CHANGES_PAGE};
pub use copy::{copy_state, Cell, ColKind, CopyReport, Import, TableDef, TABLES};
pub use people::{AuditEntry, Role, SessionRecord, TokenRecord, UserRecord};
pub use staging::{
    DiffCursor, KnownHolders, PlanWriter, PlannedUpsert, StageRow, StagedMember, UpsertPhase,
};
pub use stores::{
    ConnectionStore, ExportStore, PeopleStore, QueueStore, RunStore, SegmentStore, SnapshotStore,
    SuppressionStore,
};
pub use suppressions::{RefusalRecord, Suppression, SuppressionKind};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// PostgreSQL's own message, with the operation that failed (never a password).
    #[error("state store (PostgreSQL): {0}")]
    Postgres(String),
    /// A state store URL that names no backend, or a schema this program cannot use.
    #[error("state store: {0}")]
    Config(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("state store: corrupt record: {0}")]
    Corrupt(String),
    /// The state file could not be created or made private.
    #[error("state store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StateError>;

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Milliseconds since the Unix epoch as an RFC 3339 time (lease and queue deadlines).
pub(crate) fn millis_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rows per batch when a table is streamed.
pub(crate) const STREAM_BATCH: usize = 2048;

/// The statuses an export's snapshot members hold, each once (`?1`: the export), for both
/// backends: those other than `subscribed` from their partial index (schema version 9), and
/// `subscribed` from the first such member found (the common status: found at once).
pub(crate) const SNAPSHOT_STATUSES: &str = "SELECT DISTINCT status FROM snapshot WHERE export = ?1 AND status <> 'subscribed'
 UNION ALL
 SELECT 'subscribed' WHERE EXISTS (SELECT 1 FROM snapshot WHERE export = ?1 AND status = 'subscribed')";

pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A stored Mailchimp connection (its secret sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub name: String,
    pub display_name: String,
    pub base_url: String,
    pub credential_kind: crate::mailchimp::CredentialKind,
    pub sealed_secret: Vec<u8>,
    pub consent_by: String,
    pub consent_at: String,
    pub shared_with_contributors: bool,
    pub export_user: Option<String>,
    pub created_at: String,
    /// The Mailchimp account the credential belongs to (the API root's `account_id`), once
    /// learned: connections of one account share its connection budget.
    pub account_id: Option<String>,
    /// Requests in flight at once over every run on the account; `None`: the default
    /// ([`crate::mailchimp::DEFAULT_SLOT_BUDGET`]).
    pub slot_budget: Option<u32>,
}

impl ConnectionRecord {
    /// The connection's slot budget, its default applied.
    pub fn budget(&self) -> usize {
        self.slot_budget
            .map_or(crate::mailchimp::DEFAULT_SLOT_BUDGET, |b| b as usize)
    }
}

impl std::fmt::Debug for ConnectionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRecord")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("base_url", &self.base_url)
            .field("credential_kind", &self.credential_kind)
            .field("sealed_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub name: String,
    pub predicate: String,
    pub created_at: String,
    /// The profile source the predicate runs over; `None` is the embedded profile store.
    #[serde(default)]
    pub source: Option<String>,
    /// The structured rule (JSON, see [`crate::rules::Rule`]) the predicate was compiled
    /// from; `None` for a predicate written as SQL.
    #[serde(default)]
    pub rule: Option<String>,
}

/// A profile column sent as a merge field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldMap {
    pub tag: String,
    pub column: String,
    /// The type of the merge field when the export creates it (default: the one that fits
    /// the column, see [`crate::merge_type::suggest`]); an existing field keeps its own.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::merge_type::MergeType>,
}

/// A chosen segment and the Mailchimp tag its members carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SegmentTag {
    pub segment: String,
    pub tag: String,
}

/// An export's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportConfig {
    pub name: String,
    pub connection: String,
    pub audience_id: String,
    pub email_field: String,
    /// FNAME, LNAME and further merge fields, each from a profile column.
    pub fields: Vec<FieldMap>,
    pub segments: Vec<SegmentTag>,
    #[schema(value_type = crate::server::openapi::NewStatus)]
    pub status_if_new: NewStatus,
    #[schema(value_type = crate::server::openapi::RemovalPolicy)]
    pub removal: RemovalPolicy,
    pub max_profiles: u64,
    pub create_merge_fields: bool,
    /// A column telling when a profile was last updated, to pick among duplicate addresses.
    pub updated_at_field: Option<String>,
    /// When the server runs it by itself.
    #[serde(default)]
    pub schedule: Schedule,
    /// A paused export keeps its configuration but its schedule does not fire.
    #[serde(default)]
    pub paused: bool,
    /// The audience's name in Mailchimp, as last read (when saved, and at each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_name: Option<String>,
}

/// When `segsync serve` runs an export by itself (besides "Run now").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Only when someone asks.
    #[default]
    Manual,
    /// On a cron schedule (`0 6 * * *`, five or six fields) in a time zone (`Europe/Paris`).
    Cron { cron: String, timezone: String },
    /// After every profile import or refresh ("runs with each scheduled refresh").
    AfterRefresh,
}

/// What a run did, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunCounts {
    pub profiles: u64,
    pub members: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub created: u64,
    pub updated: u64,
    /// Members moved to their profile's new address.
    #[serde(default)]
    pub moved: u64,
    pub unchanged: u64,
    pub tagged: u64,
    pub untagged: u64,
    pub archived: u64,
    pub unsubscribed: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Records Mailchimp refused for now only (an address that "signed up to a lot of lists
    /// very recently"): not failures; the next run sends them again.
    #[serde(default)]
    pub deferred: u64,
    /// Members on a suppression list (the export's or the installation's): not sent, left
    /// as they are in Mailchimp; not errors.
    #[serde(default)]
    pub suppressed: u64,
    /// Members Mailchimp refused for good in an earlier run, with the content they have now:
    /// not sent again until it changes; not errors.
    #[serde(default)]
    pub remembered_refusals: u64,
    pub requests: u64,
    pub retries: u64,
    /// Milliseconds of the account's connection slots the run held, summed over its
    /// requests: divided by the run's duration, the slots it held on average.
    #[serde(default)]
    pub slot_ms: u64,
    /// Milliseconds from the run's first word with Mailchimp to its end: the time over which
    /// [`RunCounts::slots_held`] averages.
    #[serde(default)]
    pub mailchimp_ms: u64,
    /// Requests Mailchimp refused for too many connections (429, or a bodyless 403).
    #[serde(default)]
    pub throttled: u64,
    /// Whether the run evaluated every profile or only those that changed, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Where the retries happened: per phase of the run, by cause.
    #[serde(default)]
    pub retries_by_phase: Vec<PhaseRetries>,
    /// The phase the run is in while it runs (the one it ended in after): `reading`,
    /// `preparing`, `sending`, `tagging` or `removing`; empty before it starts reading.
    #[serde(default)]
    pub phase: String,
    /// Members answered in that phase, and its members in all (0 of 0 while reading);
    /// saved every second or so while the run sends.
    #[serde(default)]
    pub members_done: u64,
    #[serde(default)]
    pub members_total: u64,
}

/// How a run evaluated the segments: a full pass over every profile, or only the profiles
/// changed since the run it went on from (and those sharing an address with them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// `full` or `incremental`.
    pub mode: EvaluationMode,
    /// Why a full pass (empty for an incremental run).
    #[serde(default)]
    pub reason: String,
    /// Profiles new, changed or removed since the run this one went on from (incremental).
    #[serde(default)]
    pub changed_profiles: u64,
    /// Profiles the run evaluated against the segments.
    #[serde(default)]
    pub evaluated_profiles: u64,
    /// Addresses the run compared with what it delivered (incremental; the others are as
    /// the last run left them).
    #[serde(default)]
    pub touched_members: u64,
    /// The profile import generation the run read (embedded profile store only).
    #[serde(default)]
    pub generation: Option<u64>,
    /// The highest value of the source's cursor column the run read (a database source
    /// with a cursor column): the next run reads the rows past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Prints of what the result depends on (segments, mapping, export, source): the next
    /// run goes on from this one only if they are the same.
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, String>,
}

/// See [`Evaluation::mode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationMode {
    #[default]
    Full,
    Incremental,
}

impl Evaluation {
    /// One line for people: `incremental: 12 profiles evaluated (3 changed), 9 addresses
    /// compared` or `full pass: segment 'vip' changed`.
    pub fn describe(&self) -> String {
        match self.mode {
            EvaluationMode::Incremental => format!(
                "incremental: {} profiles evaluated ({} changed), {} addresses compared",
                self.evaluated_profiles, self.changed_profiles, self.touched_members
            ),
            EvaluationMode::Full => format!(
                "full pass: {} ({} profiles evaluated)",
                self.reason, self.evaluated_profiles
            ),
        }
    }
}

/// The retries of one phase of a run, by cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhaseRetries {
    pub phase: String,
    /// After a 429 Too Many Requests (or a bodyless 403).
    pub too_many_requests: u64,
    /// After a 5xx (or a 408).
    pub server_error: u64,
    /// After no answer within the timeout.
    pub timeout: u64,
    /// After a connection that failed or broke.
    pub connection: u64,
}

impl PhaseRetries {
    pub fn total(&self) -> u64 {
        self.too_many_requests + self.server_error + self.timeout + self.connection
    }

    /// "sending: 3 retries after 429, 1 after a timeout".
    pub fn in_words(&self) -> String {
        let causes = [
            (self.too_many_requests, "429 (too many requests)"),
            (self.server_error, "a Mailchimp server error"),
            (self.timeout, "a timeout"),
            (self.connection, "a broken connection"),
        ];
        let parts: Vec<String> = causes
            .iter()
            .filter(|(n, _)| *n > 0)
            .enumerate()
            .map(|(i, (n, why))| match (i, n) {
                (0, 1) => format!("1 retry after {why}"),
                (0, n) => format!("{n} retries after {why}"),
                (_, n) => format!("{n} after {why}"),
            })
            .collect();
        if parts.is_empty() {
            return format!("{}: no retries", self.phase);
        }
        format!("{}: {}", self.phase, parts.join(", "))
    }
}

impl RunCounts {
    /// The account's connection slots the run held on average while it talked to Mailchimp.
    pub fn slots_held(&self) -> f64 {
        if self.mailchimp_ms > 0 {
            self.slot_ms as f64 / self.mailchimp_ms as f64
        } else {
            0.0
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Succeeded,
    SucceededWithErrors,
    Failed,
    Interrupted,
    /// Stopped by someone before the end; what was acknowledged is kept.
    Cancelled,
}

impl Outcome {
    /// The outcome in words, as people read it on the command line and in the web UI alike
    /// ("succeeded with errors"); [`Outcome::as_str`] is the stable value of the JSON and
    /// the API (`succeeded_with_errors`).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::SucceededWithErrors => "succeeded with errors",
            other => other.as_str(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::SucceededWithErrors => "succeeded_with_errors",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Cancelled => "cancelled",
        }
    }
    pub(crate) fn parse(s: &str) -> Outcome {
        match s {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "succeeded_with_errors" => Outcome::SucceededWithErrors,
            "interrupted" => Outcome::Interrupted,
            "cancelled" => Outcome::Cancelled,
            _ => Outcome::Failed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: i64,
    pub export: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Outcome,
    pub counts: RunCounts,
    pub error: Option<String>,
    /// The run's number among its export's runs: 1 for its first (ids count every export's).
    #[serde(default)]
    pub number: i64,
}

/// Where the profiles of segments come from, besides the embedded store: a table or a query
/// of an external database. Its URL (which may hold a password) is sealed like a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileSourceRecord {
    pub name: String,
    /// The kind of database, e.g. `postgres`.
    pub kind: String,
    pub sealed_url: Vec<u8>,
    /// `table` or `query`.
    pub relation_kind: String,
    /// The table's name, or the query's text.
    pub relation: String,
    pub key_column: String,
    /// The column that most likely holds e-mail addresses, if one was recognised.
    pub email_hint: Option<String>,
    pub created_at: String,
    /// A column the database sets whenever a row is written (`updated_at`): re-runs read
    /// only the rows past the last run's value of it (see `engine::evaluate`).
    pub cursor_column: Option<String>,
}

impl std::fmt::Debug for ProfileSourceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSourceRecord")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("sealed_url", &"<redacted>")
            .field("relation_kind", &self.relation_kind)
            .field("relation", &self.relation)
            .field("key_column", &self.key_column)
            .field("email_hint", &self.email_hint)
            .field("created_at", &self.created_at)
            .field("cursor_column", &self.cursor_column)
            .finish()
    }
}

/// Where a queued run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Waiting for a worker.
    Pending,
    /// A worker holds it until its lease runs out (then another may take it over).
    Claimed,
    /// Finished (kept so that its schedule tick is never queued again).
    Done,
}

impl QueueState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::Pending => "pending",
            QueueState::Claimed => "claimed",
            QueueState::Done => "done",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<QueueState> {
        match s {
            "pending" => Ok(QueueState::Pending),
            "claimed" => Ok(QueueState::Claimed),
            "done" => Ok(QueueState::Done),
            other => Err(StateError::Corrupt(format!("run queue state {other:?}"))),
        }
    }
}

/// A run somebody (or a schedule) asked for, waiting for or held by a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRun {
    pub id: i64,
    pub export: String,
    pub trigger: String,
    pub requested_by: String,
    /// The schedule tick it was queued for (at most one row per export and tick).
    pub tick: Option<String>,
    pub requested_at: String,
    pub state: QueueState,
    pub worker: Option<String>,
    /// When the worker's claim runs out (RFC 3339, milliseconds), by the store's clock.
    pub lease_until: Option<String>,
    /// The run it became, once done.
    pub run_id: Option<i64>,
}

/// What [`migrate`] found and did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The schema version before (0: an empty database).
    pub from_version: u32,
    /// The schema version after.
    pub to_version: u32,
    /// The migrations applied, in order: (version, name).
    pub applied: Vec<(u32, String)>,
}

/// Receives a snapshot batch by batch ([`SnapshotStore::snapshot_in_key_order`]).
pub type SnapshotSink<'a> = dyn FnMut(&[(MemberKey, SnapshotEntry)]) -> Result<()> + 'a;

/// The durable state: everything that outlives a run. Implemented by [`sqlite::SqliteState`]
/// and [`postgres::PgState`]; the rest of the crate reaches it through [`StateStore`].
///
/// Both implementations return identical records for identical operations, and map errors
/// identically: a missing record is [`StateError::NotFound`], a duplicate name
/// [`StateError::Conflict`], with the same messages.
pub trait StateBackend:
    ConnectionStore
    + SegmentStore
    + ExportStore
    + SnapshotStore
    + RunStore
    + QueueStore
    + PeopleStore
    + SuppressionStore
    + Send
{
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Where it is: the file, or the URL without its password.
    fn location(&self) -> String;
    /// The SQLite connection holding the state itself, when the backend is SQLite (the run's
    /// working set then lives in its temporary tables).
    fn sqlite(&self) -> Option<&Connection>;
    fn sqlite_mut(&mut self) -> Option<&mut Connection>;
    /// The schema version (the highest migration applied; 0 for an empty database).
    fn schema_version(&self) -> Result<u32>;
    /// Applies the migrations not applied yet (several processes at once are safe).
    fn migrate(&mut self) -> Result<MigrationReport>;
    /// "ok" when the store is sound (SQLite: `PRAGMA integrity_check`).
    fn integrity_check(&self) -> Result<String>;
    /// Every row of `table`, in primary-key order, one at a time.
    fn copy_out(
        &self,
        table: &'static TableDef,
        sink: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
    ) -> Result<()>;
    /// The last id handed out by `table`'s id sequence (0 if none), for tables with one.
    fn sequence_value(&self, table: &'static TableDef) -> Result<i64>;
    /// Begins writing rows in one transaction: nothing is visible, or kept, until
    /// [`Import::commit`].
    fn import(&mut self) -> Result<Box<dyn Import + '_>>;
}

/// The state store the crate uses: a [`StateBackend`] (through `Deref`) and the run's working
/// set ([`staging`]).
pub struct StateStore {
    backend: Box<dyn StateBackend>,
    /// The run's working set when the backend has no SQLite connection of its own: a private
    /// temporary database (on disk, deleted when closed) holding the stage, the plan and a
    /// copy of the snapshot being diffed.
    scratch: Option<Connection>,
    /// The export whose snapshot the scratch database holds now (loaded once per run).
    scratch_export: Option<String>,
}

impl std::ops::Deref for StateStore {
    type Target = dyn StateBackend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl std::ops::DerefMut for StateStore {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.backend
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("kind", &self.backend.kind())
            .field("location", &self.backend.location())
            .finish()
    }
}

/// Where a state store is, from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StateUrl {
    /// `sqlite:PATH`, `sqlite://PATH` (absolute as `sqlite:///abs/path`, or relative), or
    /// `postgres://...` / `postgresql://...`.
    pub fn parse(url: &str) -> Result<StateUrl> {
        if crate::pg::is_postgres_url(url) {
            return Ok(StateUrl::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        match path {
            Some(p) if !p.is_empty() => Ok(StateUrl::Sqlite(PathBuf::from(p))),
            Some(_) => Err(StateError::Config(format!(
                "the state store URL {} names no file",
                crate::pg::redact(url)
            ))),
            None => Err(StateError::Config(format!(
                "unknown state store URL {}: use sqlite:PATH or postgres://USER@HOST/DATABASE",
                crate::pg::redact(url)
            ))),
        }
    }
}

/// Where the state store is: chosen once where the process starts, then handed down; every
/// connection to the store comes from it. The migrations are applied on the first connection
/// of the process (a version check), not on every one.
#[derive(Clone)]
pub struct StateSource {
    /// As given, password included: never shown (see [`StateSource::location`]).
    url: Arc<str>,
    migrated: Arc<std::sync::OnceLock<()>>,
}

impl std::fmt::Debug for StateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateSource({})", self.location())
    }
}

impl StateSource {
    /// The store at `url` (see [`StateUrl::parse`]); checked now, opened when asked.
    pub fn parse(url: &str) -> Result<StateSource> {
        StateUrl::parse(url)?;
        Ok(StateSource {
            url: url.into(),
            migrated: Arc::default(),
        })
    }

    /// The SQLite file at `path`.
    pub fn sqlite(path: &Path) -> StateSource {
        StateSource {
            url: format!("sqlite:{}", path.display()).into(),
            migrated: Arc::default(),
        }
    }

    /// A connection to the store, migrated on the process's first.
    pub fn open(&self) -> Result<StateStore> {
        let store = StateStore::open_url_unmigrated(&self.url)?;
        if self.migrated.get().is_some() {
            return Ok(store);
        }
        let store = store.migrated()?;
        let _ = self.migrated.set(());
        Ok(store)
    }

    /// The URL, password hidden.
    pub fn location(&self) -> String {
        crate::pg::redact(&self.url)
    }

    /// The URL as given, password included.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Whether several processes may share it (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        crate::pg::is_postgres_url(&self.url)
    }
}

impl StateStore {
    /// Opens (creating if needed) the SQLite state file at `path` and applies pending
    /// migrations.
    pub fn open(path: &Path) -> Result<StateStore> {
        let store = StateStore::with_backend(Box::new(sqlite::SqliteState::open(path)?))?;
        store.migrated()
    }

    /// Opens the state store at `url` (see [`StateUrl::parse`]) and applies pending
    /// migrations.
    pub fn open_url(url: &str) -> Result<StateStore> {
        StateStore::open_url_unmigrated(url)?.migrated()
    }

    /// Applies pending migrations, if any (a cheap version check otherwise).
    fn migrated(mut self) -> Result<StateStore> {
        let (current, latest) = (
            self.backend.schema_version()?,
            schema::latest(self.backend.kind()),
        );
        if current > latest {
            return Err(schema::too_new(current, latest));
        }
        if current < latest {
            self.backend.migrate()?;
        }
        Ok(self)
    }

    fn open_url_unmigrated(url: &str) -> Result<StateStore> {
        match StateUrl::parse(url)? {
            StateUrl::Sqlite(path) => {
                StateStore::with_backend(Box::new(sqlite::SqliteState::open(&path)?))
            }
            StateUrl::Postgres(url) => {
                StateStore::with_backend(Box::new(postgres::PgState::connect(&url)?))
            }
        }
    }

    /// A store over `backend`; a backend without a SQLite connection gets a scratch database
    /// for the run's working set.
    pub fn with_backend(backend: Box<dyn StateBackend>) -> Result<StateStore> {
        let scratch = match backend.sqlite() {
            Some(_) => None,
            None => Some(staging::open_scratch()?),
        };
        Ok(StateStore {
            backend,
            scratch,
            scratch_export: None,
        })
    }

    /// The backend itself.
    pub fn backend(&self) -> &dyn StateBackend {
        &*self.backend
    }
}

/// Applies the pending migrations of the state store at `url` and says what it did.
pub fn migrate(url: &str) -> Result<MigrationReport> {
    let mut store = StateStore::open_url_unmigrated(url)?;
    store.backend.migrate()
}

/// The schema version of the state store at `url`, without changing anything, and the
/// version this program would bring it to.
pub fn schema_version(url: &str) -> Result<(u32, u32)> {
    let store = StateStore::open_url_unmigrated(url)?;
    let kind = store.backend.kind();
    Ok((store.backend.schema_version()?, schema::latest(kind)))
}
