//! The first stage of a run: everything up to the plan, sending no write. Reads the
//! profiles (every chosen segment in one pass) into the run's stage on disk, learns what
//! changed in the audience, and diffs the stage against the snapshot into the plan, also on
//! disk (`diff`). `segsync plan` prints what this returns; `segsync run` sends it, and may
//! send while a large diff goes on (`stream`).

use std::collections::HashMap;
use std::time::Instant;

use segsync_core::{pair_moves, FieldSpec, MergeKind, PlanSummary, RecordError};
use serde::Serialize;

use super::audience::{read_tags_ahead, AudienceRead, Statuses, TagsAhead};
use super::diff::{Differ, PlanCounts};
use super::evaluate::{self, Decision, Staged};
use super::holds::{self, HeldCounts};
use super::{RunError, RunSettings};
use crate::app::App;
use crate::mailchimp::{self, Client};
use crate::merge_type::{suggest, MergeType};
use crate::sources::Profiles;
use crate::state::{Evaluation, EvaluationMode, ExportConfig, RunCounts, StateStore};

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
    /// Members held back (suppressed, or refused for good with the same content), and the
    /// refused addresses sent again because their content changed.
    pub held: HeldCounts,
    /// When the audience was read (minus a safety margin), for the next run's
    /// `since_last_changed`.
    pub audience_read_at: chrono::DateTime<chrono::Utc>,
    pub audience_name: String,
    /// The audience's tags, read while the run diffed and planned (when it compared any
    /// member), or from the moment a large change was counted: the tag writes name them.
    tags_ahead: Option<TagsAhead>,
    /// The diff, when it goes on while the run sends ([`prepare_to_send`]).
    pub(super) diffing: Option<Diffing>,
}

/// What `segsync plan` prints. Its request counts include those that ready the audience:
/// one per merge field and one per tag the run creates.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub export: String,
    pub audience: String,
    pub profiles: u64,
    pub members: u64,
    pub duplicates: u64,
    pub unchanged: u64,
    /// Members on a suppression list: never sent, left as they are in Mailchimp.
    pub suppressed: u64,
    /// Members Mailchimp refused for good with the content they have now: not sent again
    /// until it changes.
    pub remembered_refusals: u64,
    pub merge_fields_to_create: Vec<String>,
    /// Tags the run creates in the audience (those it adds that the audience lacks).
    pub tags_to_create: Vec<String>,
    pub summary: PlanSummary,
    pub refused: Vec<RecordError>,
    pub skipped: Vec<RecordError>,
}

/// The endpoints of the requests that ready an audience, as the plan's counts name them.
const CREATE_MERGE_FIELD: &str = "POST /lists/{list_id}/merge-fields";
const CREATE_TAG: &str = "POST /lists/{list_id}/segments";

impl Prepared {
    /// The plan as `segsync plan` shows it, with the tags the run would create (read from
    /// the audience when the plan tags anyone: the run does the same before sending).
    pub async fn plan_report(&mut self) -> Result<PlanReport, RunError> {
        let summary = &self.plan.summary;
        let tags_to_create = if summary.tag_adds + summary.tag_removes > 0 {
            let existing = self.tags().await?;
            self.tag_names
                .iter()
                .filter(|name| !existing.iter().any(|(_, n)| n == *name))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Ok(self.report(tags_to_create))
    }

    /// The audience's tags (id, name): read ahead if the run did, else now.
    pub async fn tags(&mut self) -> Result<Vec<(u64, String)>, RunError> {
        match self.tags_ahead.take() {
            Some(ahead) => ahead.answer().await,
            None => Ok(self.client.tags(&self.export.audience_id).await?),
        }
    }

    /// The plan, given the tags the run would create.
    pub fn report(&self, tags_to_create: Vec<String>) -> PlanReport {
        let mut summary = self.plan.summary.clone();
        let mut setup = Vec::new();
        for (endpoint, n) in [
            (CREATE_MERGE_FIELD, self.fields_to_create.len()),
            (CREATE_TAG, tags_to_create.len()),
        ] {
            if n > 0 {
                setup.push((endpoint.to_string(), n));
                summary.requests += n;
            }
        }
        // In the order the run sends them: the audience is readied first.
        setup.append(&mut summary.requests_by_endpoint);
        summary.requests_by_endpoint = setup;
        PlanReport {
            export: self.export.name.clone(),
            audience: format!("{} ({})", self.audience_name, self.export.audience_id),
            profiles: self.counts.profiles,
            members: self.counts.members,
            duplicates: self.counts.duplicates,
            unchanged: self.counts.unchanged,
            suppressed: self.counts.suppressed,
            remembered_refusals: self.counts.remembered_refusals,
            merge_fields_to_create: self.fields_to_create.clone(),
            tags_to_create,
            summary,
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
/// Everything up to the whole plan, as `segsync plan` and the preview show it.
pub async fn prepare(
    app: &App,
    state: &mut StateStore,
    export_name: &str,
    settings: &RunSettings,
) -> Result<Prepared, RunError> {
    prepare_with(app, state, export_name, settings, false).await
}

/// Everything up to the plan, for a run that sends it: a large diff without moves goes on
/// while the run sends what it planned so far (`Prepared::diffing`, see `stream`).
pub(super) async fn prepare_to_send(
    app: &App,
    state: &mut StateStore,
    export_name: &str,
    settings: &RunSettings,
) -> Result<Prepared, RunError> {
    prepare_with(app, state, export_name, settings, true).await
}

async fn prepare_with(
    app: &App,
    state: &mut StateStore,
    export_name: &str,
    settings: &RunSettings,
    send_while_diffing: bool,
) -> Result<Prepared, RunError> {
    let t = Instant::now();
    let export = state.export(export_name)?;
    let client = super::run_client(state, app, &export.connection, settings).await?;
    // The first request goes alone: a refused credential or a missing audience stops the
    // run there, with nothing else on its way.
    let list = client.list(&export.audience_id).await?;
    remember_audience_name(state, &export, &list.name);
    let audience = AudienceRead::start(&client, state, &export)?;
    let tag_names: Vec<String> = export.segments.iter().map(|s| s.tag.clone()).collect();
    let tag_bits = state.tag_bits(&export.name, &tag_names)?;
    // Profiles imported since the last run are likely to move someone's tags: their read
    // goes beside the merge fields', not after the diff.
    let tags_early = (send_while_diffing
        && !tag_bits.is_empty()
        && evaluate::imported_since_last_run(app, state, &export))
    .then(|| read_tags_ahead(&client, &export.audience_id));
    let fields = client.merge_fields(&export.audience_id).await?;
    let types = new_field_types(app, state, &export, &fields);
    let (specs, to_create) = field_specs(&export, &list.name, &fields, &types)?;

    let source = evaluate::source(app, state, &export, &specs, &tag_bits)?;
    let (decision, at) = evaluate::decide(state, &export, &source, settings.full)?;
    let ctx = ReadContext {
        export: &export,
        specs: &specs,
        tag_bits: &tag_bits,
        source: &source,
        at,
        t,
        tags_client: (send_while_diffing && tags_early.is_none()).then_some(&client),
    };
    let mut read = match decision {
        Decision::Full(reason) => read_all(state, &ctx, audience, reason).await?,
        Decision::Incremental {
            since,
            previous_members,
            last_run,
        } => read_changed(state, &ctx, audience, (since, last_run), previous_members).await?,
    };
    let (mut differ, base) = differ_of(state, &export, &mut read)?;
    let streams = send_while_diffing && differ.streams() && base.members >= STREAM_FROM;
    // The audience's tags are read as soon as the diff tags anyone, while it goes on (if
    // the run's start or the read of a large change did not start them already).
    let mut tags_ahead = read.tags_ahead.take().or(tags_early);
    if streams {
        tracing::debug!(elapsed = ?t.elapsed(), "planned (the diff goes on while the run sends)");
    } else {
        let mut tagging = || {
            tags_ahead.get_or_insert_with(|| read_tags_ahead(&client, &export.audience_id));
        };
        differ.step(state, None, &mut tagging)?;
        state.refresh_snapshot_profiles(&export.name)?;
    }
    let mut prepared = Prepared {
        export,
        client,
        tag_names,
        tag_bits,
        fields_to_create: to_create,
        specs,
        plan: differ.acc.plan(),
        refused: std::mem::take(&mut read.staged.refused),
        skipped: Vec::new(),
        counts: base.counts(&differ.acc),
        held: HeldCounts::default(),
        audience_read_at: read.read_at,
        audience_name: list.name,
        tags_ahead,
        diffing: None,
    };
    if streams {
        prepared.diffing = Some(Diffing { differ, base });
    } else {
        prepared.diffed(differ, &base);
        tracing::debug!(requests = prepared.plan.summary.requests, elapsed = ?t.elapsed(), "planned");
    }
    Ok(prepared)
}

/// The diff of what a run read (the members that follow their profile to a new address
/// paired, the holds loaded), and what its counts take from the reading.
fn differ_of(
    state: &mut StateStore,
    export: &ExportConfig,
    read: &mut Read,
) -> Result<(Differ, Base), RunError> {
    let audience = std::mem::take(&mut read.audience);
    let known = read.staged.holders.take();
    let (new, holders) =
        state.move_candidates(&export.name, |k| audience.contains_key(k), known.as_ref())?;
    drop(known);
    let moves = pair_moves(&new, holders);
    drop(new);
    let holds = holds::load(state, &export.name)?;
    let staged = &read.staged;
    let base = Base {
        rows: staged.rows,
        accepted: staged.accepted,
        members: staged.members,
        refused: staged.refused.len() as u64,
        previous_members: read.previous_members,
        evaluation: std::mem::take(&mut read.evaluation),
    };
    let differ = Differ::new(export, audience, (moves, holds), read.restrict);
    Ok((differ, base))
}

/// Runs whose stage holds at least this many members send while their diff goes on; smaller
/// ones have too little to overlap, and keep the plan whole before the first request.
const STREAM_FROM: u64 = 1_000;

/// A diff still going on while the run sends its upserts.
pub(super) struct Diffing {
    pub differ: Differ,
    base: Base,
}

impl Diffing {
    /// The members staged: at most the upserts the diff plans.
    pub fn staged_members(&self) -> u64 {
        self.base.members
    }
}

/// What a run's counts take from its reading, besides the diff's.
struct Base {
    rows: u64,
    accepted: u64,
    members: u64,
    refused: u64,
    previous_members: Option<u64>,
    evaluation: Evaluation,
}

impl Base {
    /// The run's counts given what the diff counted.
    fn counts(&self, acc: &PlanCounts) -> RunCounts {
        let members = match self.previous_members {
            Some(previous) => (previous + self.members).saturating_sub(acc.touched_tagged),
            None => self.members,
        };
        RunCounts {
            profiles: self.rows,
            members,
            duplicates: self.accepted - self.members,
            refused: self.refused,
            // The members an incremental run left as they were are unchanged too.
            unchanged: acc.unchanged + (members - self.members.min(members)),
            skipped: acc.skipped.len() as u64,
            suppressed: acc.held.suppressed,
            remembered_refusals: acc.held.remembered,
            evaluation: Some(self.evaluation.clone()),
            ..Default::default()
        }
    }
}

impl Prepared {
    /// The diff is done: its plan and counts become the run's.
    fn diffed(&mut self, mut differ: Differ, base: &Base) {
        self.plan = differ.acc.plan();
        self.counts = base.counts(&differ.acc);
        self.skipped = std::mem::take(&mut differ.acc.skipped);
        self.held = std::mem::take(&mut differ.acc.held);
    }

    /// Ends a diff that went on while the run sent (`diffing` taken from it): the plan and
    /// the counts as a whole diff gives them, and the snapshot's profile lists refreshed.
    /// Called once the upserts' answers are all checkpointed, so that nothing else writes the
    /// snapshot meanwhile.
    pub(super) fn end_diffing(
        &mut self,
        state: &mut StateStore,
        diffing: Diffing,
    ) -> Result<(), RunError> {
        debug_assert!(diffing.differ.done());
        self.diffed(diffing.differ, &diffing.base);
        state.refresh_snapshot_profiles(&self.export.name)?;
        tracing::debug!(requests = self.plan.summary.requests, "diffed");
        Ok(())
    }
}

fn merge_kind(t: &mailchimp::MergeFieldType) -> MergeKind {
    MergeKind::parse(t.as_str()).unwrap_or(MergeKind::Text)
}

/// The mapping, checked against the audience's merge fields before anything is read: how
/// each mapped field's values are formatted, and the fields to create (as text, before the
/// first write; the mapping allows it).
fn field_specs(
    export: &ExportConfig,
    audience: &str,
    fields: &[mailchimp::MergeFieldInfo],
    types: &HashMap<String, MergeType>,
) -> Result<(Vec<FieldSpec>, Vec<String>), RunError> {
    let tags: Vec<&str> = export.fields.iter().map(|m| m.tag.as_str()).collect();
    if let Some(problem) = mapping_problems(audience, &tags, export.create_merge_fields, fields)
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
            None => {
                to_create.push(m.tag.clone());
                let t = types.get(&m.tag).copied().unwrap_or(MergeType::Text);
                FieldSpec {
                    tag: m.tag.clone(),
                    kind: merge_kind(&t.mailchimp()),
                    required: false,
                    date_format: t.date_format().to_string(),
                    choices: vec![],
                }
            }
        });
    }
    Ok((specs, to_create))
}

/// Keeps the audience's name with the export when it changed in Mailchimp, so that pages
/// and lists show it by name (a failure only leaves the old name shown).
fn remember_audience_name(state: &mut StateStore, export: &ExportConfig, name: &str) {
    if export.audience_name.as_deref() == Some(name) {
        return;
    }
    let result = state.export(&export.name).and_then(|mut e| {
        e.audience_name = Some(name.to_string());
        state.replace_export(&e)
    });
    if let Err(e) = result {
        tracing::warn!(export = %export.name, error = %e, "remembering the audience's name failed");
    }
}

/// The type of each merge field the run creates: the export's, else the one that fits its
/// column (read from the profiles' columns only when a field is missing).
fn new_field_types(
    app: &App,
    state: &StateStore,
    export: &ExportConfig,
    fields: &[mailchimp::MergeFieldInfo],
) -> HashMap<String, MergeType> {
    let missing: Vec<&crate::state::FieldMap> = export
        .fields
        .iter()
        .filter(|m| !fields.iter().any(|f| f.tag == m.tag))
        .collect();
    if missing.is_empty() || !export.create_merge_fields {
        return HashMap::new();
    }
    let source = export
        .segments
        .first()
        .and_then(|s| state.segment(&s.segment).ok())
        .and_then(|s| s.source);
    let columns = app
        .profiles_of(source.as_deref())
        .and_then(|p| p.columns())
        .unwrap_or_default();
    missing
        .into_iter()
        .map(|m| {
            let kind = columns.iter().find(|c| c.name == m.column).map(|c| c.kind);
            let t = m.kind.unwrap_or_else(|| suggest(&m.column, kind));
            (m.tag.clone(), t)
        })
        .collect()
}

/// What reading the profiles and the audience needs.
struct ReadContext<'a> {
    export: &'a ExportConfig,
    specs: &'a [FieldSpec],
    tag_bits: &'a [usize],
    source: &'a evaluate::Source,
    /// Where the profiles stood when the run began.
    at: evaluate::Position,
    /// When the run began preparing, for the debug log's stages.
    t: Instant,
    /// The client of a run that sends: a large change reads the audience's tags with it
    /// while the profiles are read (see [`ReadContext::tags_ahead`]).
    tags_client: Option<&'a Client>,
}

impl ReadContext<'_> {
    fn reading(&self) -> evaluate::Reading<'_> {
        evaluate::Reading {
            export: self.export,
            specs: self.specs,
            tag_bits: self.tag_bits,
            source: self.source,
        }
    }

    /// The audience's tags, read from now on when the run sends and `changed` profiles are
    /// enough for it to send while it diffs: it asks for them before its first write
    /// (`execute`), and would otherwise wait there for one more answer.
    fn tags_ahead(&self, changed: usize) -> Option<TagsAhead> {
        let client = self.tags_client?;
        let large = changed as u64 >= STREAM_FROM && !self.tag_bits.is_empty();
        large.then(|| read_tags_ahead(client, &self.export.audience_id))
    }
}

/// The profiles staged and the audience learned.
struct Read {
    staged: Staged,
    audience: Statuses,
    read_at: chrono::DateTime<chrono::Utc>,
    evaluation: Evaluation,
    /// The diff compares the touched addresses only.
    restrict: bool,
    /// The members of the run this one went on from (incremental).
    previous_members: Option<u64>,
    /// The audience's tags, when the read started reading them.
    tags_ahead: Option<TagsAhead>,
}

/// A full pass: every profile staged (the member limit checked before the audience's
/// answer is taken: over it, the read stops), and the audience.
async fn read_all(
    state: &mut StateStore,
    ctx: &ReadContext<'_>,
    audience: AudienceRead,
    reason: String,
) -> Result<Read, RunError> {
    let staged = evaluate::stage_all(state, &ctx.reading())?;
    tracing::debug!(rows = staged.rows, members = staged.members, elapsed = ?ctx.t.elapsed(), "profiles read");
    check_limit(ctx.export, staged.members)?;
    let audience = audience.finish(state, ctx.export, ctx.t).await?;
    Ok(full_read(ctx, staged, audience, reason))
}

/// A full pass's reading: every profile evaluated, every staged address compared.
fn full_read(
    ctx: &ReadContext<'_>,
    staged: Staged,
    (audience, read_at): (Statuses, chrono::DateTime<chrono::Utc>),
    reason: String,
) -> Read {
    let evaluated = match &ctx.source.profiles {
        Profiles::Embedded(s) => s.row_count().unwrap_or(staged.rows),
        _ => staged.rows,
    };
    let evaluation = Evaluation {
        mode: EvaluationMode::Full,
        reason,
        evaluated_profiles: evaluated,
        touched_members: staged.members,
        generation: ctx.at.generation,
        cursor: ctx.at.cursor.clone(),
        config: ctx.source.prints.clone(),
        ..Default::default()
    };
    Read {
        staged,
        audience,
        read_at,
        evaluation,
        restrict: false,
        previous_members: None,
        tags_ahead: None,
    }
}

/// An incremental read: the profiles that changed after `since` and the delivered members
/// holding them, staged with those members' other profiles while the audience is still
/// read; then the audience's answer (the addresses whose status changed are evaluated too),
/// and the profiles sharing an address with those read. A full pass instead when the export
/// could reach its member limit.
async fn read_changed(
    state: &mut StateStore,
    ctx: &ReadContext<'_>,
    audience: AudienceRead,
    (since, last_run): (evaluate::Since, i64),
    previous_members: u64,
) -> Result<Read, RunError> {
    let reading = ctx.reading();
    let mut tags_ahead = None;
    let found = evaluate::changed_profiles(state, &reading, since, |changed| {
        tags_ahead = ctx.tags_ahead(changed);
    })?;
    let staging = evaluate::stage_changed(state, &reading, found)?;
    let (audience, read_at) = audience.finish(state, ctx.export, ctx.t).await?;
    let reported = state.status_changes(&ctx.export.name, &audience)?;
    let (staged, evaluation) = staging.finish(state, &reading, reported, last_run)?;
    tracing::debug!(rows = staged.rows, members = staged.members, elapsed = ?ctx.t.elapsed(), "changed profiles read");
    if previous_members + staged.members <= ctx.export.max_profiles {
        return Ok(Read {
            staged,
            audience,
            read_at,
            evaluation,
            restrict: true,
            previous_members: Some(previous_members),
            tags_ahead,
        });
    }
    let reason = "the export is near its member limit".to_string();
    let staged = evaluate::stage_all(state, &ctx.reading())?;
    check_limit(ctx.export, staged.members)?;
    let read = full_read(ctx, staged, (audience, read_at), reason);
    Ok(Read { tags_ahead, ..read })
}

/// Refuses an export that selects more members than its limit, before anything is sent.
fn check_limit(export: &ExportConfig, members: u64) -> Result<(), RunError> {
    if members > export.max_profiles {
        return Err(RunError::Limit(format!(
            "export \"{}\" selects {} members, more than its limit of {}: nothing was sent (raise --max-profiles or narrow the segments)",
            export.name, members, export.max_profiles
        )));
    }
    Ok(())
}
