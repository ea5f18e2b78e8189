//! One run of an export, top to bottom: read the profiles (every segment in one pass),
//! normalise, learn what changed in the audience, diff, plan, then send the plan with up to
//! 10 requests in flight, checkpointing the snapshot for every acknowledged request (on a
//! thread of its own, see [`checkpoint`]), and report. `segsync plan` stops after the plan;
//! `segsync run` goes on.
//!
//! Crash safety comes from the order of things: the snapshot only moves for what Mailchimp
//! acknowledged, creates are sent with `update_existing: false` (a member created by a request
//! whose answer was lost comes back as "exists" and is then updated, never duplicated), and a
//! new run recomputes the diff from the snapshot, so it sends exactly what is left. Creates
//! are recorded as intents before they are sent, so that the members a killed run created
//! without checkpointing them are still known as the export's own (only those are ever
//! archived or unsubscribed by it). `SEGSYNC_CRASH_AFTER_ACK` is a test hook (see
//! [`CRASH_AFTER_ACK_ENV`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use segsync_core::{
    decide, fingerprint, Collector, DiffOptions, DiffSink, FieldSpec, MemberKey, MergeKind,
    Normalized, Op, PlanSummary, RecordError, Row, SnapshotEntry, Status, TagSet, Upsert, Want,
    BATCH,
};
use serde::Serialize;
use serde_json::Value;

use crate::home::Home;
use crate::mailchimp::{self, Client, ClientConfig, Credential, MemberStatus, UpsertItem};
use crate::profiles::SelectError;
use crate::state::{ExportConfig, Outcome, PlanWriter, RunCounts, StateStore, UpsertPhase};

mod checkpoint;
use checkpoint::{Checkpoints, Fact};

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
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            trigger: "manual".into(),
            max_in_flight: 10,
            timeout: Duration::from_secs(120),
            retry: mailchimp::RetryPolicy::default(),
            stop: StopSignal::default(),
        }
    }
}

/// The plan of a prepared run, kept on disk in the run's temporary tables (see
/// `state::staging`): its counts, and the tags it changes.
pub struct StagedPlan {
    pub summary: PlanSummary,
    pub tag_bits: Vec<usize>,
}

/// Everything up to the plan: what `segsync plan` shows and `segsync run` sends.
pub struct Prepared {
    pub export: ExportConfig,
    pub client: Client,
    pub tag_names: Vec<String>,
    pub tag_bits: Vec<usize>,
    pub fields_to_create: Vec<String>,
    pub specs: Vec<FieldSpec>,
    pub plan: StagedPlan,
    pub refused: Vec<RecordError>,
    pub skipped: Vec<segsync_core::Skip>,
    pub counts: RunCounts,
    /// When the audience was read (minus a safety margin), for the next run's
    /// `since_last_changed`.
    pub audience_read_at: chrono::DateTime<chrono::Utc>,
    pub audience_name: String,
}

/// What `segsync plan` prints.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub export: String,
    pub audience: String,
    pub profiles: u64,
    pub members: u64,
    pub duplicates: u64,
    pub unchanged: u64,
    pub merge_fields_to_create: Vec<String>,
    pub summary: PlanSummary,
    pub refused: Vec<RecordError>,
    pub skipped: Vec<RecordError>,
}

impl Prepared {
    pub fn report(&self) -> PlanReport {
        PlanReport {
            export: self.export.name.clone(),
            audience: format!("{} ({})", self.audience_name, self.export.audience_id),
            profiles: self.counts.profiles,
            members: self.counts.members,
            duplicates: self.counts.duplicates,
            unchanged: self.counts.unchanged,
            merge_fields_to_create: self.fields_to_create.clone(),
            summary: self.plan.summary.clone(),
            refused: self.refused.clone(),
            skipped: self
                .skipped
                .iter()
                .map(|s| RecordError {
                    profile_key: String::new(),
                    email: s.email.clone(),
                    reason: s.reason.clone(),
                })
                .collect(),
        }
    }
}

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

fn to_status(s: &MemberStatus) -> Status {
    Status::parse(s.as_str()).unwrap_or(Status::Subscribed)
}

fn to_member_status(s: Status) -> MemberStatus {
    MemberStatus::from(s.as_str().to_string())
}

fn merge_kind(t: &mailchimp::MergeFieldType) -> MergeKind {
    MergeKind::parse(t.as_str()).unwrap_or(MergeKind::Text)
}

/// Builds the Mailchimp client of a stored connection.
pub fn client_for(
    state: &StateStore,
    home: &Home,
    connection: &str,
    settings: &RunSettings,
) -> Result<Client, RunError> {
    let c = state.connection(connection).map_err(|e| match e {
        crate::state::StateError::NotFound(_) => {
            RunError::Config(format!("connection \"{connection}\" was removed: add it again with `segsync connection add`, or point the export at another one"))
        }
        other => other.into(),
    })?;
    let secret: SecretString = home
        .master_key()?
        .open(&c.name, &c.sealed_secret)
        .map_err(anyhow::Error::from)?;
    let credential = if c.credential_kind == "oauth" {
        Credential::oauth_token(secret)?
    } else {
        Credential::api_key(secret)?
    };
    let mut config = ClientConfig::new(credential);
    config.base_url = url::Url::parse(&c.base_url)
        .map_err(|e| RunError::Config(format!("connection {connection}: bad base URL: {e}")))?;
    config.max_in_flight = settings.max_in_flight;
    config.timeout = settings.timeout;
    config.retry = settings.retry.clone();
    Ok(Client::new(config)?)
}

/// What is wrong with mapping the merge tags `tags` onto an audience (named `audience`) that
/// has `merge_fields`: a tag it lacks (unless the export creates missing fields), a required
/// field left unmapped. One message per problem; none when the mapping fits. Checked when an
/// export is saved, when a file is applied, and again before every run (the audience may
/// have changed in Mailchimp meanwhile).
pub fn mapping_problems(
    audience: &str,
    tags: &[&str],
    create_missing: bool,
    merge_fields: &[mailchimp::MergeFieldInfo],
) -> Vec<String> {
    let mut problems = Vec::new();
    if !create_missing {
        for t in tags {
            if !merge_fields.iter().any(|m| m.tag == *t) {
                let have: Vec<&str> = merge_fields.iter().map(|m| m.tag.as_str()).collect();
                problems.push(format!(
                    "audience \"{audience}\" has no merge field {t} (it has {}): add it in Mailchimp, or let the export create missing merge fields (create_merge_fields; on the command line --create-merge-fields)",
                    have.join(", ")
                ));
            }
        }
    }
    for m in merge_fields
        .iter()
        .filter(|m| m.required && !tags.contains(&m.tag.as_str()))
    {
        problems.push(format!(
            "audience \"{audience}\" requires merge field {} ({}): map it to a profile column (on the command line: --merge {}=COLUMN)",
            m.tag, m.name, m.tag
        ));
    }
    problems
}

/// Reads, normalises, learns the audience, diffs and plans. Sends no write.
pub async fn prepare(
    home: &Home,
    state: &mut StateStore,
    export_name: &str,
    settings: &RunSettings,
) -> Result<Prepared, RunError> {
    let t = Instant::now();
    let export = state.export(export_name)?;
    let client = client_for(state, home, &export.connection, settings)?;
    let list = client.list(&export.audience_id).await?;

    // The mapping, checked against the audience's merge fields before anything is read.
    let fields = client.merge_fields(&export.audience_id).await?;
    let tags: Vec<&str> = export.fields.iter().map(|m| m.tag.as_str()).collect();
    if let Some(problem) = mapping_problems(&list.name, &tags, export.create_merge_fields, &fields)
        .into_iter()
        .next()
    {
        return Err(RunError::Config(problem));
    }
    let mut specs = Vec::new();
    let mut to_create = Vec::new();
    for m in &export.fields {
        specs.push(match fields.iter().find(|f| f.tag == m.tag) {
            Some(f) => FieldSpec {
                tag: f.tag.clone(),
                kind: merge_kind(&f.r#type),
                required: f.required,
                date_format: f.date_format.clone().unwrap_or_default(),
                choices: f.choices.clone(),
            },
            // Created as a text field before the first write (the mapping allows it).
            None => {
                to_create.push(m.tag.clone());
                FieldSpec {
                    tag: m.tag.clone(),
                    kind: MergeKind::Text,
                    required: false,
                    date_format: String::new(),
                    choices: vec![],
                }
            }
        });
    }

    // One pass over the profiles evaluates every chosen segment. Accepted rows go to the
    // run's stage on disk (duplicate addresses merged there); memory stays flat.
    let tag_names: Vec<String> = export.segments.iter().map(|s| s.tag.clone()).collect();
    let tag_bits = state.tag_bits(&export.name, &tag_names)?;
    let mut predicates = Vec::new();
    // Where the profiles are: the source of the export's segments (one for all of them).
    let mut source: Option<String> = None;
    for s in &export.segments {
        let segment = state.segment(&s.segment)?;
        source = segment.source;
        predicates.push(segment.predicate);
    }
    let mut columns = vec![export.email_field.clone()];
    columns.extend(export.fields.iter().map(|f| f.column.clone()));
    if let Some(u) = &export.updated_at_field {
        columns.push(u.clone());
    }
    let profiles = home.profiles_of(source.as_deref())?;
    let mut collector = Collector::new(specs.clone());
    let n_fields = export.fields.len();
    let has_updated = export.updated_at_field.is_some();
    state.stage_begin()?;
    let mut batch: Vec<(Normalized, String, String, u64)> = Vec::with_capacity(STAGE_BATCH);
    let mut accepted: u64 = 0;
    {
        let state = &mut *state;
        let collector = &mut collector;
        profiles
            .select(
                &columns,
                &predicates,
                |row| -> Result<(), crate::state::StateError> {
                    let mut tags = TagSet::default();
                    for (i, inside) in row.in_segment.iter().enumerate() {
                        if *inside {
                            tags = tags.with(tag_bits[i]);
                        }
                    }
                    let field_refs: Vec<&Value> = row.values[1..1 + n_fields].iter().collect();
                    let updated_at = if has_updated {
                        row.values.get(1 + n_fields)
                    } else {
                        None
                    };
                    let normalized = collector.normalize(Row {
                        profile_key: &row.key,
                        email: &row.values[0],
                        fields: &field_refs,
                        tags,
                        updated_at,
                    });
                    match normalized {
                        Ok(n) => {
                            let merge = serde_json::to_string(&n.desired.merge)
                                .expect("merge values serialise");
                            let fp = fingerprint(&n.desired.merge);
                            batch.push((n, merge, row.key, fp));
                            accepted += 1;
                            if batch.len() >= STAGE_BATCH {
                                state.stage_rows(&batch)?;
                                batch.clear();
                            }
                        }
                        Err(e) => collector.refused.push(e),
                    }
                    Ok(())
                },
            )
            .map_err(|e| match e {
                SelectError::Callback(e) => RunError::Other(e.into()),
                other => RunError::Config(format!("reading the profiles: {other}")),
            })?;
        state.stage_rows(&batch)?;
        drop(batch);
        state.stage_end()?;
    }
    let rows = collector.rows;
    let members = state.staged_count()?;
    let duplicates = accepted - members;
    let refused = std::mem::take(&mut collector.refused);
    tracing::debug!(rows, members, elapsed = ?t.elapsed(), "profiles read");
    if members > export.max_profiles {
        return Err(RunError::Limit(format!(
            "export \"{}\" selects {} members, more than its limit of {}: nothing was sent (raise --max-profiles or narrow the segments)",
            export.name, members, export.max_profiles
        )));
    }

    // What the audience says now: everything on the first run, the changes since the last
    // read afterwards. Only each member's status is kept (compact, whatever the audience's
    // size).
    let first_run = !state.has_snapshot(&export.name)?;
    let since = match state.audience_read_at(&export.name)? {
        Some(t) if !first_run => chrono::DateTime::parse_from_rfc3339(&t)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc)),
        _ => None,
    };
    let local_start = chrono::Utc::now();
    let mut audience: HashMap<MemberKey, Status> = HashMap::new();
    let server_time = client
        .members_each(&export.audience_id, since, |m| {
            if let Some(k) = MemberKey::from_hex(&m.hash) {
                audience.insert(k, to_status(&m.status));
            }
        })
        .await?;
    // The next run reads what changed after this read began, by Mailchimp's own clock when
    // it tells it (a few seconds of margin for its one-second resolution), else by ours with
    // a margin for clock skew.
    let read_at = match server_time {
        Some(t) => t - chrono::Duration::seconds(AUDIENCE_MARGIN_SECS),
        None => local_start - chrono::Duration::minutes(10),
    };
    tracing::debug!(changed = audience.len(), ?since, elapsed = ?t.elapsed(), "audience read");

    // What the audience said is true now: keep it, so that a member who unsubscribed in
    // Mailchimp is never sent back as subscribed by a later run, even one that does not read
    // that change again. Members a run created without living to checkpoint them (killed
    // between Mailchimp's write and the answer) show in the audience now, and their intent
    // says they are this export's own; their content is sent again (fingerprint unknown).
    let intents = state.create_intents(&export.name)?;
    let intent_keys: Vec<MemberKey> = intents.iter().map(|(k, _)| *k).collect();
    let known = state.snapshot_entries(&export.name, &intent_keys)?;
    let mut learned: Vec<(MemberKey, SnapshotEntry)> = Vec::new();
    for (k, email) in intents {
        if let (None, Some(status)) = (known.get(&k), audience.get(&k)) {
            learned.push((
                k,
                SnapshotEntry {
                    email,
                    fingerprint: None,
                    tags: TagSet::default(),
                    status: *status,
                    owned: true,
                },
            ));
        }
    }
    drop(known);
    // Statuses that changed, compared in chunks (an audience read back whole stays cheap).
    if !first_run {
        let keys: Vec<MemberKey> = audience.keys().copied().collect();
        for chunk in keys.chunks(LEARN_CHUNK) {
            for (k, mut e) in state.snapshot_entries(&export.name, chunk)? {
                let s = audience[&k];
                if e.status != s {
                    e.status = s;
                    learned.push((k, e));
                }
            }
        }
    }
    state.save_snapshot(&export.name, &learned)?;
    drop(learned);

    // The diff: a merge-join of the stage and the snapshot, in key order, written to the
    // run's plan on disk.
    let opts = DiffOptions {
        status_if_new: export.status_if_new,
        removal: export.removal,
    };
    let mut acc = PlanCounts::default();
    state.diff_stage(&export.name, |key, want, entry, writer| {
        let want = want.map(|w| Want {
            email: &w.email,
            fingerprint: w.fingerprint,
            tags: w.tags,
        });
        let mut sink = StageSink {
            writer,
            acc: &mut acc,
            error: None,
        };
        decide(
            key,
            want.as_ref(),
            entry,
            audience.get(&key).copied(),
            opts,
            &mut sink,
        );
        match sink.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })?;
    drop(audience);
    let plan = acc.plan();
    tracing::debug!(requests = plan.summary.requests, elapsed = ?t.elapsed(), "planned");
    let counts = RunCounts {
        profiles: rows,
        members,
        duplicates,
        refused: refused.len() as u64,
        unchanged: acc.unchanged,
        skipped: acc.skipped.len() as u64,
        ..Default::default()
    };
    Ok(Prepared {
        export,
        client,
        tag_names,
        tag_bits,
        fields_to_create: to_create,
        specs,
        plan,
        refused,
        skipped: std::mem::take(&mut acc.skipped),
        counts,
        audience_read_at: read_at,
        audience_name: list.name,
    })
}

/// Snapshot entries compared at once with the statuses the audience reported.
const LEARN_CHUNK: usize = 10_000;

/// Rows staged per transaction while reading the profiles.
const STAGE_BATCH: usize = 10_000;

/// Seconds subtracted from Mailchimp's clock at the audience read, for the next run's
/// `since_last_changed` (its timestamps have a one-second resolution).
const AUDIENCE_MARGIN_SECS: i64 = 5;

/// What the diff wrote, counted.
#[derive(Default)]
struct PlanCounts {
    creates: usize,
    updates: usize,
    unsubscribes: usize,
    archives: usize,
    /// Adds and removes per tag bit.
    per_tag: Vec<(usize, usize)>,
    unchanged: u64,
    skipped: Vec<segsync_core::Skip>,
}

impl PlanCounts {
    fn plan(&self) -> StagedPlan {
        let bits: Vec<usize> = (0..self.per_tag.len())
            .filter(|b| self.per_tag[*b] != (0, 0))
            .collect();
        let per_tag: Vec<(usize, usize)> = bits.iter().map(|b| self.per_tag[*b]).collect();
        StagedPlan {
            summary: PlanSummary::from_counts(
                self.creates,
                self.updates,
                self.unsubscribes,
                &per_tag,
                self.archives,
            ),
            tag_bits: bits,
        }
    }

    fn tag(&mut self, bit: usize, adding: bool) {
        if self.per_tag.len() <= bit {
            self.per_tag.resize(bit + 1, (0, 0));
        }
        if adding {
            self.per_tag[bit].0 += 1;
        } else {
            self.per_tag[bit].1 += 1;
        }
    }
}

/// Writes the diff's decisions to the run's plan on disk.
struct StageSink<'s, 'w, 'a> {
    writer: &'w mut PlanWriter<'a>,
    acc: &'s mut PlanCounts,
    error: Option<crate::state::StateError>,
}

impl StageSink<'_, '_, '_> {
    fn keep(&mut self, r: Result<(), crate::state::StateError>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

impl DiffSink for StageSink<'_, '_, '_> {
    fn upsert(&mut self, key: MemberKey, want: &Want<'_>, status: Status, create: bool) {
        let phase = if create {
            self.acc.creates += 1;
            UpsertPhase::Create
        } else {
            self.acc.updates += 1;
            UpsertPhase::Update
        };
        let r = self
            .writer
            .upsert(phase, key, want.email, status, Some(want.fingerprint));
        self.keep(r);
    }
    fn unsubscribe(&mut self, key: MemberKey, email: &str) {
        self.acc.unsubscribes += 1;
        let r = self.writer.upsert(
            UpsertPhase::Unsubscribe,
            key,
            email,
            Status::Unsubscribed,
            None,
        );
        self.keep(r);
    }
    fn tags(&mut self, key: MemberKey, email: &str, add: TagSet, remove: TagSet) {
        for bit in add.iter() {
            self.acc.tag(bit, true);
            let r = self.writer.tag(bit, true, key, email);
            self.keep(r);
        }
        for bit in remove.iter() {
            self.acc.tag(bit, false);
            let r = self.writer.tag(bit, false, key, email);
            self.keep(r);
        }
    }
    fn archive(&mut self, key: MemberKey, email: &str) {
        self.acc.archives += 1;
        let r = self.writer.archive(key, email);
        self.keep(r);
    }
    fn skip(&mut self, key: MemberKey, email: &str, reason: String) {
        self.acc.skipped.push(segsync_core::Skip {
            key,
            email: email.to_string(),
            reason,
        });
    }
    fn unchanged(&mut self, _: MemberKey) {
        self.acc.unchanged += 1;
    }
}

/// Where a phase's requests come from: the plan on disk, or requests kept in memory (sent
/// again after a transient failure, or updates of members met again).
enum Source {
    Stored(StoredParts),
    Memory(std::collections::VecDeque<Op>),
}

#[derive(Clone, Copy)]
enum Part {
    Upserts(UpsertPhase),
    Tag(usize),
    Archives,
}

/// Pages through parts of the plan on disk, one request at a time.
struct StoredParts {
    parts: std::collections::VecDeque<Part>,
    after: i64,
    after_remove: i64,
}

impl StoredParts {
    fn new(parts: impl IntoIterator<Item = Part>) -> StoredParts {
        StoredParts {
            parts: parts.into_iter().collect(),
            after: 0,
            after_remove: 0,
        }
    }
}

impl Source {
    /// The next request, or `None` when the phase has no more. Tag additions for members
    /// whose upsert failed are left out (they are not in the audience).
    fn next_op(
        &mut self,
        state: &StateStore,
        failed: &HashSet<String>,
    ) -> Result<Option<Op>, RunError> {
        let s = match self {
            Source::Memory(ops) => return Ok(ops.pop_front()),
            Source::Stored(s) => s,
        };
        loop {
            let Some(part) = s.parts.front().copied() else {
                return Ok(None);
            };
            match part {
                Part::Upserts(phase) => {
                    let rows = state.planned_upserts(phase, s.after, BATCH)?;
                    if let Some(last) = rows.last() {
                        s.after = last.seq;
                        let mut items = Vec::with_capacity(rows.len());
                        for r in rows {
                            let merge = match r.merge_json {
                                Some(j) => Some(serde_json::from_str(&j).map_err(|e| {
                                    RunError::Other(anyhow::anyhow!(
                                        "a staged member's merge values: {e}"
                                    ))
                                })?),
                                None => None,
                            };
                            items.push(Upsert {
                                key: r.key,
                                email: r.email,
                                status: r.status,
                                merge,
                                fingerprint: r.fingerprint,
                            });
                        }
                        return Ok(Some(Op::Upsert {
                            update_existing: phase != UpsertPhase::Create,
                            items,
                        }));
                    }
                }
                Part::Tag(bit) => {
                    let add = state.planned_tags(bit, true, s.after, BATCH)?;
                    let remove = state.planned_tags(bit, false, s.after_remove, BATCH)?;
                    if !add.is_empty() || !remove.is_empty() {
                        if let Some((seq, _, _)) = add.last() {
                            s.after = *seq;
                        }
                        if let Some((seq, _, _)) = remove.last() {
                            s.after_remove = *seq;
                        }
                        let add: Vec<(MemberKey, String)> = add
                            .into_iter()
                            .filter(|(_, _, e)| !failed.contains(e))
                            .map(|(_, k, e)| (k, e))
                            .collect();
                        let remove: Vec<(MemberKey, String)> =
                            remove.into_iter().map(|(_, k, e)| (k, e)).collect();
                        if add.is_empty() && remove.is_empty() {
                            continue;
                        }
                        return Ok(Some(Op::Tag {
                            tag: bit,
                            add,
                            remove,
                        }));
                    }
                }
                Part::Archives => {
                    if let Some((seq, key, email)) =
                        state.planned_archives(s.after, 1)?.into_iter().next()
                    {
                        s.after = seq;
                        return Ok(Some(Op::Archive { key, email }));
                    }
                }
            }
            s.parts.pop_front();
            s.after = 0;
            s.after_remove = 0;
        }
    }
}

/// The profile key of the profile that gave `email`, for error reports ("" if unknown).
fn profile_key(state: &StateStore, email: &str) -> String {
    state
        .staged_profile_key(&MemberKey::of(email))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The answer to one request, handled by the run loop.
enum Done {
    Upsert {
        items: Vec<Upsert>,
        creates: bool,
        result: Result<mailchimp::BatchOutcome, mailchimp::Error>,
    },
    Tag {
        tag: usize,
        add: Vec<(MemberKey, String)>,
        remove: Vec<(MemberKey, String)>,
        result: Result<mailchimp::TagOutcome, mailchimp::Error>,
    },
    Archive {
        key: MemberKey,
        email: String,
        result: Result<mailchimp::Archived, mailchimp::Error>,
    },
}

/// The triggers of runs that carry on an unfinished one (after a shutdown, or a dead worker's).
pub const RESUME_TRIGGERS: [&str; 2] = ["resume", "takeover"];

/// A run that has begun: its export's lock is held and its row recorded as running.
pub struct StartedRun {
    pub run_id: i64,
    pub export: String,
    lock: crate::home::ExportLock,
    state: StateStore,
    started: Instant,
}

/// Begins a run of export `name`: takes its lock (another run of it, in this process or
/// another, makes this [`RunError::Busy`]), marks runs a dead process left running as
/// interrupted, and records the new run. [`StartedRun::finish`] does the work.
pub fn start(home: &Home, name: &str, trigger: &str) -> Result<StartedRun, RunError> {
    let lock = home
        .lock_export(name)?
        .ok_or_else(|| RunError::Busy(name.to_string()))?;
    let state = home.state()?;
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
        home: &Home,
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
            progress.phase("reading profiles and the audience", 0);
            let prepared = prepare(home, state, &name, settings).await?;
            progress.attach(prepared.client.stats());
            let checkpoint_store = home.state()?;
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
    home: &Home,
    name: &str,
    settings: &RunSettings,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, RunError> {
    start(home, name, &settings.trigger)?
        .finish(home, settings, progress)
        .await
}

/// Sends a prepared plan, phase by phase, handing every acknowledged request's facts to the
/// checkpoint thread, which writes them through `checkpoint_store` (a second connection to
/// the same store); each phase ends once they are all written.
pub async fn execute(
    state: &mut StateStore,
    checkpoint_store: StateStore,
    run_id: i64,
    mut p: Prepared,
    progress: Arc<dyn Progress>,
    stop: &StopSignal,
) -> Result<RunReport, RunError> {
    let export = p.export.clone();
    let list_id = export.audience_id.clone();
    let client = p.client.clone();
    let mut counts = p.counts.clone();
    let mut errors: Vec<RecordError> = std::mem::take(&mut p.refused);
    state.add_run_errors(run_id, &errors)?;
    let mut checkpoints = Checkpoints::start(checkpoint_store, export.name.clone(), run_id)
        .map_err(|e| anyhow::anyhow!("starting the checkpoint thread: {e}"))?;
    let mut fatal: Option<String> = None;
    let summary = p.plan.summary.clone();
    let tagging = summary.tag_adds + summary.tag_removes > 0;

    if !p.fields_to_create.is_empty() || tagging {
        progress.phase("preparing the audience's merge fields and tags", 0);
    }
    for tag in &p.fields_to_create {
        client
            .create_merge_field(&list_id, tag, tag, mailchimp::MergeFieldType::Text)
            .await?;
    }
    // Tag ids in the audience, created when missing (only if this plan tags anyone).
    let mut tag_ids: HashMap<usize, u64> = HashMap::new();
    if tagging {
        let existing = client.tags(&list_id).await?;
        let created = futures_util::future::join_all(p.tag_names.iter().zip(&p.tag_bits).map(
            |(name, bit)| {
                let (client, list_id, existing) = (&client, &list_id, &existing);
                async move {
                    let id = match existing.iter().find(|(_, n)| n == name) {
                        Some((id, _)) => *id,
                        None => client.create_tag(list_id, name).await?,
                    };
                    Ok::<_, mailchimp::Error>((*bit, id))
                }
            },
        ))
        .await;
        for r in created {
            let (bit, id) = r?;
            tag_ids.insert(bit, id);
        }
        // Tags named in the snapshot but no longer chosen still need removing.
        let names = state.tag_names(&export.name)?;
        for (bit, name) in names {
            if let std::collections::hash_map::Entry::Vacant(v) = tag_ids.entry(bit) {
                if let Some((id, _)) = existing.iter().find(|(_, n)| *n == name) {
                    v.insert(*id);
                }
            }
        }
    }

    let mut failed_emails: HashSet<String> = HashSet::new();
    // Each phase with its round: requests that failed transiently after all their retries
    // (Mailchimp having a bad minute) go again in a later round, up to REQUEUE_ROUNDS times,
    // before their members are reported as not sent.
    let mut queue: Vec<(Source, u32, u64)> = Vec::new();
    if summary.creates + summary.updates > 0 {
        queue.push((
            Source::Stored(StoredParts::new([
                Part::Upserts(UpsertPhase::Create),
                Part::Upserts(UpsertPhase::Update),
            ])),
            0,
            (summary.creates + summary.updates) as u64,
        ));
    }
    if tagging {
        queue.push((
            Source::Stored(StoredParts::new(
                p.plan.tag_bits.iter().map(|b| Part::Tag(*b)),
            )),
            0,
            (summary.tag_adds + summary.tag_removes) as u64,
        ));
    }
    if summary.unsubscribes + summary.archives > 0 {
        queue.push((
            Source::Stored(StoredParts::new([
                Part::Upserts(UpsertPhase::Unsubscribe),
                Part::Archives,
            ])),
            0,
            (summary.unsubscribes + summary.archives) as u64,
        ));
    }
    let mut phase_index = 0;
    // Members of re-queued creates: an earlier attempt may have created them.
    let mut maybe_applied: HashSet<MemberKey> = HashSet::new();
    let crash_after_ack = crash_after_ack();
    // Every member this run creates changed after this (prepare's read, minus a margin).
    let changed_since = p.audience_read_at;
    let mut answered: u64 = 0;
    // Members a replayed create made (its first attempt was applied, its answer lost): they
    // count as created, and the update that follows (sent to be safe) not as an update.
    let mut created_by_replay: HashSet<MemberKey> = HashSet::new();
    let max_in_flight = export_in_flight(&client);
    while phase_index < queue.len() {
        if let Some(reason) = stop.reason() {
            checkpoints.flush().await?;
            return stopped(state, run_id, &export.name, &client, counts, errors, reason);
        }
        let (mut source, round, total) = std::mem::replace(
            &mut queue[phase_index],
            (Source::Memory(Default::default()), 0, 0),
        );
        let mut exists_again: Vec<Upsert> = Vec::new();
        let mut requeue: Vec<Op> = Vec::new();
        let mut phase_named = false;
        let mut exhausted = false;
        // Each request is a task of its own, so that encoding it and decoding its answer run
        // on any of the runtime's threads, beside this loop; dropped, the set cancels them.
        let mut in_flight = tokio::task::JoinSet::new();
        let send = |op: Op| {
            let client = client.clone();
            let list_id = list_id.clone();
            let tag_ids = tag_ids.clone();
            async move {
                match op {
                    Op::Upsert {
                        update_existing,
                        items,
                    } => {
                        let wire: Vec<UpsertItem> = items
                            .iter()
                            .map(|u| UpsertItem {
                                email: u.email.clone(),
                                status: to_member_status(u.status),
                                merge_fields: u
                                    .merge
                                    .clone()
                                    .map(|m| m.into_iter().collect())
                                    .unwrap_or_default(),
                            })
                            .collect();
                        let result = client.batch_upsert(&list_id, &wire, update_existing).await;
                        Done::Upsert {
                            items,
                            creates: !update_existing,
                            result,
                        }
                    }
                    Op::Tag { tag, add, remove } => {
                        let id = tag_ids.get(&tag).copied();
                        let adds: Vec<String> = add.iter().map(|(_, e)| e.clone()).collect();
                        let removes: Vec<String> = remove.iter().map(|(_, e)| e.clone()).collect();
                        let result = match id {
                            Some(id) => {
                                client
                                    .update_tag_members(&list_id, id, &adds, &removes)
                                    .await
                            }
                            // The tag is gone from the audience: nothing to remove.
                            None => Ok(mailchimp::TagOutcome::default()),
                        };
                        Done::Tag {
                            tag,
                            add,
                            remove,
                            result,
                        }
                    }
                    Op::Archive { key, email } => {
                        let result = client.archive(&list_id, &email).await;
                        Done::Archive { key, email, result }
                    }
                }
            }
        };
        // Keeps the requests in flight at the limit; a stop request sends no new one (what is
        // not sent stays for the next run).
        macro_rules! fill {
            () => {
                while !exhausted && in_flight.len() < max_in_flight && stop.reason().is_none() {
                    match source.next_op(state, &failed_emails)? {
                        None => exhausted = true,
                        Some(op) => {
                            if !phase_named {
                                let name = match &op {
                                    Op::Upsert { .. } => "sending members",
                                    Op::Tag { .. } => "tagging",
                                    Op::Archive { .. } => "removing",
                                };
                                let total = match &source {
                                    Source::Memory(ops) => {
                                        (ops.iter().map(|o| o.size()).sum::<usize>() + op.size())
                                            as u64
                                    }
                                    Source::Stored(_) => total,
                                };
                                progress.phase(name, total);
                                phase_named = true;
                            }
                            if let Op::Upsert {
                                update_existing: false,
                                items,
                            } = &op
                            {
                                let creating: Vec<(MemberKey, &str)> =
                                    items.iter().map(|u| (u.key, u.email.as_str())).collect();
                                state.record_create_intents(&export.name, &creating)?;
                            }
                            in_flight.spawn(send(op));
                        }
                    }
                }
            };
        }
        loop {
            fill!();
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            let done = done.map_err(|e| anyhow::anyhow!("a request's task failed: {e}"))?;
            answered += 1;
            if crash_after_ack == Some(answered) {
                crash_now();
            }
            // The next request leaves before this answer is handled.
            fill!();
            let mut answer = checkpoint::Answer::default();
            let mut new_errors: Vec<RecordError> = Vec::new();
            let advanced: u64;
            match done {
                Done::Upsert {
                    items,
                    creates,
                    result,
                } => {
                    advanced = items.len() as u64;
                    match result {
                        Ok(outcome) => {
                            let by_email: HashMap<String, &Upsert> =
                                items.iter().map(|u| (u.email.clone(), u)).collect();
                            for a in &outcome.accepted {
                                if let Some(u) = by_email.get(&a.email.to_lowercase()) {
                                    answer.facts.push(Fact::Upserted {
                                        key: u.key,
                                        email: u.email.clone(),
                                        status: to_status(&a.status),
                                        created: a.created,
                                        fingerprint: u.fingerprint,
                                    });
                                    if a.created {
                                        counts.created += 1;
                                    } else if created_by_replay.remove(&u.key) {
                                        // Counted when its create was found applied.
                                    } else if u.merge.is_none() {
                                        counts.unsubscribed += 1;
                                    } else {
                                        counts.updated += 1;
                                    }
                                }
                            }
                            for f in &outcome.failed {
                                let email = f.email.to_lowercase();
                                match by_email.get(&email) {
                                    Some(u) if creates && f.contact_exists => {
                                        let replayed =
                                            outcome.replayed || maybe_applied.contains(&u.key);
                                        // On the audience after all (added meanwhile, or by
                                        // a request of ours whose answer was lost): update it
                                        // with its own status.
                                        let u = (*u).clone();
                                        if !replayed {
                                            answer.not_ours.push(u.key);
                                        } else {
                                            counts.created += 1;
                                            created_by_replay.insert(u.key);
                                            answer.facts.push(Fact::Replayed {
                                                key: u.key,
                                                email: u.email.clone(),
                                            });
                                        }
                                        exists_again.push(u);
                                    }
                                    _ => {
                                        failed_emails.insert(email.clone());
                                        if let Some(u) = by_email.get(&email) {
                                            if forgotten(&f.message) {
                                                // Permanently deleted in Mailchimp: remember
                                                // it, so that no later run asks again.
                                                answer.facts.push(Fact::Forgotten {
                                                    key: u.key,
                                                    email: u.email.clone(),
                                                });
                                            }
                                        }
                                        let reason = match &f.field {
                                            Some(field) if !field.is_empty() => format!(
                                                "Mailchimp: {} ({field}: {})",
                                                f.message,
                                                f.field_message.clone().unwrap_or_default()
                                            ),
                                            _ => format!("Mailchimp: {}", f.message),
                                        };
                                        new_errors.push(RecordError {
                                            profile_key: profile_key(state, &email),
                                            email,
                                            reason,
                                        });
                                    }
                                }
                            }
                            for email in &outcome.unanswered {
                                failed_emails.insert(email.to_lowercase());
                                new_errors.push(RecordError {
                                    profile_key: profile_key(state, email),
                                    email: email.clone(),
                                    reason: "Mailchimp's answer did not mention this member; it will be sent again on the next run".into(),
                                });
                            }
                        }
                        Err(e) if e.is_retryable() && round < REQUEUE_ROUNDS => {
                            tracing::debug!(error = %e, round, "batch upsert re-queued");
                            if creates {
                                maybe_applied.extend(items.iter().map(|u| u.key));
                            }
                            requeue.push(Op::Upsert {
                                update_existing: !creates,
                                items,
                            });
                        }
                        Err(e) => {
                            if matches!(e, mailchimp::Error::CredentialRejected) {
                                return Err(e.into());
                            }
                            for u in &items {
                                failed_emails.insert(u.email.clone());
                                new_errors.push(RecordError {
                                    profile_key: profile_key(state, &u.email),
                                    email: u.email.clone(),
                                    reason: format!("not sent: {e}"),
                                });
                            }
                            fatal.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                Done::Tag {
                    tag,
                    add,
                    remove,
                    result,
                } => {
                    advanced = (add.len() + remove.len()) as u64;
                    match result {
                        Ok(outcome) => {
                            let missing: HashSet<String> = outcome
                                .not_members
                                .iter()
                                .map(|e| e.to_lowercase())
                                .collect();
                            for (key, email) in &add {
                                if missing.contains(email) {
                                    new_errors.push(RecordError {
                                        profile_key: profile_key(state, email),
                                        email: email.clone(),
                                        reason: "not tagged: the address is not a member of the audience".into(),
                                    });
                                    continue;
                                }
                                answer.facts.push(Fact::Tagged {
                                    key: *key,
                                    email: email.clone(),
                                    bit: tag,
                                    added: true,
                                });
                                counts.tagged += 1;
                            }
                            for (key, email) in &remove {
                                answer.facts.push(Fact::Tagged {
                                    key: *key,
                                    email: email.clone(),
                                    bit: tag,
                                    added: false,
                                });
                                counts.untagged += 1;
                            }
                        }
                        Err(e) if e.is_retryable() && round < REQUEUE_ROUNDS => {
                            tracing::debug!(error = %e, round, "tag update re-queued");
                            requeue.push(Op::Tag { tag, add, remove });
                        }
                        Err(e) => {
                            if matches!(e, mailchimp::Error::CredentialRejected) {
                                return Err(e.into());
                            }
                            for (_, email) in add.iter().chain(&remove) {
                                new_errors.push(RecordError {
                                    profile_key: profile_key(state, email),
                                    email: email.clone(),
                                    reason: format!("tag not changed: {e}"),
                                });
                            }
                            fatal.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                Done::Archive { key, email, result } => {
                    advanced = 1;
                    match result {
                        Ok(_) => {
                            answer.facts.push(Fact::Archived { key });
                            counts.archived += 1;
                        }
                        Err(e)
                            if e.is_permanent()
                                && !matches!(e, mailchimp::Error::CredentialRejected) =>
                        {
                            new_errors.push(RecordError {
                                profile_key: profile_key(state, &email),
                                email,
                                reason: format!("not archived: {e}"),
                            });
                        }
                        Err(e) => {
                            if matches!(e, mailchimp::Error::CredentialRejected) {
                                return Err(e.into());
                            }
                            new_errors.push(RecordError {
                                profile_key: profile_key(state, &email),
                                email,
                                reason: format!("not archived: {e}"),
                            });
                            fatal.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
            }
            // The checkpoint: this answer's acknowledged members, written by the checkpoint
            // thread (with the answers that arrive while it writes, if any).
            counts.failed += new_errors.len() as u64;
            answer.errors = new_errors.clone();
            errors.extend(new_errors);
            checkpoints.record(answer).await?;
            progress.advance(advanced);
        }
        // The phase's answers are all written before anything reads the store again.
        checkpoints.flush().await?;

        if let Some(reason) = stop.reason() {
            state.update_run_counts(run_id, &counts)?;
            return stopped(state, run_id, &export.name, &client, counts, errors, reason);
        }
        if !requeue.is_empty() {
            let size: usize = requeue.iter().map(Op::size).sum();
            queue.insert(
                phase_index + 1,
                (Source::Memory(requeue.into()), round + 1, size as u64),
            );
        }

        // Members that turned out to exist: learn each one's status, then update it. Many
        // of them (batches replayed after a lost answer) are learned from one read of the
        // audience's changes since this run began; the others one by one.
        let mut retry = Vec::new();
        let mut learned: Vec<(Upsert, Option<Status>)> = Vec::new();
        if exists_again.len() > MANY_TO_LOOK_UP {
            let wanted: HashSet<MemberKey> = exists_again.iter().map(|u| u.key).collect();
            let mut now: HashMap<MemberKey, Status> = HashMap::new();
            match client
                .members_each(&list_id, Some(changed_since), |m| {
                    if let Some(k) = MemberKey::from_hex(&m.hash).filter(|k| wanted.contains(k)) {
                        now.insert(k, to_status(&m.status));
                    }
                })
                .await
            {
                Ok(_) => {
                    let (found, rest): (Vec<Upsert>, Vec<Upsert>) =
                        std::mem::take(&mut exists_again)
                            .into_iter()
                            .partition(|u| now.contains_key(&u.key));
                    learned.extend(found.into_iter().map(|u| {
                        let status = now[&u.key];
                        (u, Some(status))
                    }));
                    exists_again = rest;
                    tracing::debug!(
                        learned = learned.len(),
                        left = exists_again.len(),
                        "statuses of members met again, from the audience's recent changes"
                    );
                }
                Err(mailchimp::Error::CredentialRejected) => {
                    return Err(mailchimp::Error::CredentialRejected.into())
                }
                // Asked one by one instead.
                Err(e) => {
                    tracing::debug!(error = %e, "reading the audience's recent changes failed")
                }
            }
        }
        let mut lookup_round = 0;
        while !exists_again.is_empty() {
            let last = lookup_round == REQUEUE_ROUNDS;
            lookup_round += 1;
            let statuses = stream::iter(std::mem::take(&mut exists_again).into_iter().map(|u| {
                let client = client.clone();
                let list_id = list_id.clone();
                async move {
                    let m = client.member(&list_id, &u.email).await;
                    (u, m)
                }
            }))
            .buffer_unordered(max_in_flight);
            tokio::pin!(statuses);
            while let Some((u, m)) = statuses.next().await {
                match m {
                    Err(mailchimp::Error::CredentialRejected) => {
                        return Err(mailchimp::Error::CredentialRejected.into())
                    }
                    // Asked again in the next round.
                    Err(e) if e.is_retryable() && !last => exists_again.push(u),
                    Ok(Some(m)) => learned.push((u, Some(to_status(&m.status)))),
                    Ok(None) | Err(_) => learned.push((u, None)),
                }
            }
        }
        for (mut u, status) in learned {
            match status {
                Some(Status::Archived) => {
                    failed_emails.insert(u.email.clone());
                    let e = RecordError {
                        profile_key: profile_key(state, &u.email),
                        email: u.email.clone(),
                        reason: "archived in Mailchimp: not brought back".into(),
                    };
                    state.add_run_errors(run_id, std::slice::from_ref(&e))?;
                    counts.skipped += 1;
                }
                Some(status) => {
                    u.status = status;
                    retry.push(u);
                }
                None => {
                    failed_emails.insert(u.email.clone());
                    let e = RecordError {
                        profile_key: profile_key(state, &u.email),
                        email: u.email.clone(),
                        reason: "Mailchimp said the member exists but could not return it".into(),
                    };
                    state.add_run_errors(run_id, std::slice::from_ref(&e))?;
                    counts.failed += 1;
                    errors.push(e);
                }
            }
        }
        if !retry.is_empty() {
            let ops: std::collections::VecDeque<Op> = retry
                .chunks(BATCH)
                .map(|c| Op::Upsert {
                    update_existing: true,
                    items: c.to_vec(),
                })
                .collect();
            queue.insert(
                phase_index + 1,
                (Source::Memory(ops), 0, retry.len() as u64),
            );
        }
        state.update_run_counts(run_id, &counts)?;
        phase_index += 1;
    }

    // Every create was answered (acknowledged, or refused): the intents are spent.
    state.clear_create_intents(&export.name)?;
    let stats = client.stats().snapshot();
    counts.requests = stats.requests_sent;
    counts.retries = stats.retries.total();
    let outcome = if fatal.is_some() {
        Outcome::Failed
    } else if errors.is_empty() {
        Outcome::Succeeded
    } else {
        Outcome::SucceededWithErrors
    };
    if fatal.is_none() {
        state.set_audience_read_at(
            &export.name,
            &p.audience_read_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )?;
    }
    state.finish_run(run_id, outcome, &counts, fatal.as_deref())?;
    Ok(RunReport {
        run_id,
        export: export.name.clone(),
        outcome,
        counts,
        seconds: 0.0,
        error: fatal,
        errors_sample: errors.into_iter().take(10).collect(),
    })
}

/// Ends a run that was asked to stop: every answer received is checkpointed already; the
/// next run diffs from that snapshot and sends what is left. The audience mark is not moved,
/// so the next run reads everything that changed since the last complete run.
fn stopped(
    state: &StateStore,
    run_id: i64,
    export: &str,
    client: &Client,
    mut counts: RunCounts,
    errors: Vec<RecordError>,
    reason: StopReason,
) -> Result<RunReport, RunError> {
    let stats = client.stats().snapshot();
    counts.requests = stats.requests_sent;
    counts.retries = stats.retries.total();
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
    state.finish_run(run_id, outcome, &counts, Some(msg))?;
    Ok(RunReport {
        run_id,
        export: export.to_string(),
        outcome,
        counts,
        seconds: 0.0,
        error: Some(msg.to_string()),
        errors_sample: errors.into_iter().take(10).collect(),
    })
}

/// Whether a refused upsert says the address was permanently deleted from the audience
/// (Mailchimp: "x was permanently deleted and cannot be re-imported. The contact must
/// re-subscribe to get back on the list.").
fn forgotten(message: &str) -> bool {
    message.contains("permanently deleted")
}

/// The test hook `SEGSYNC_CRASH_AFTER_ACK=N`: inert unless the variable is set. When it is,
/// the process kills itself (SIGKILL; abort elsewhere) right after the Nth answered request of
/// the run's send phases, before that answer is checkpointed: the one moment a crash is most
/// likely to lose or duplicate work. Used by the crash torture (`tests/cli_e2e/torture.rs`,
/// `examples/torture.rs`); no user has a reason to set it.
pub const CRASH_AFTER_ACK_ENV: &str = "SEGSYNC_CRASH_AFTER_ACK";

fn crash_after_ack() -> Option<u64> {
    std::env::var(CRASH_AFTER_ACK_ENV).ok()?.trim().parse().ok()
}

fn crash_now() -> ! {
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid; it does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Above this many members met again ("exists") in a phase, their statuses are read from
/// the audience's recent changes (a few pages) rather than asked one by one.
const MANY_TO_LOOK_UP: usize = 10;

/// How many more times a request that failed transiently after all its retries is sent
/// (after the other requests of its phase) before its members are reported as not sent.
const REQUEUE_ROUNDS: u32 = 2;

fn export_in_flight(client: &Client) -> usize {
    client.max_in_flight().max(1)
}
