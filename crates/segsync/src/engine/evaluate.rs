//! Which profiles a run evaluates: every one (a full pass), or, on a re-run, only those an
//! import changed since the last run, the profiles sharing an address with them, and those
//! behind addresses whose status changed in Mailchimp. Every other address is left as the
//! last run delivered it, which is what a full pass would decide for it too: the same
//! profiles, the same content, the same segments give the same member.
//!
//! The embedded store numbers its imports and records what each changed; a PostgreSQL
//! source with a cursor column tells the rows written since the last run's mark, and its
//! keys tell the rows that left.
//!
//! A full pass whenever that could be wrong: asked for (`--full`), a first run, a database
//! source without a cursor column (read whole), a predicate that reads the clock, a
//! segment, the mapping, the export or the profile columns changed, or the last run failed,
//! was interrupted, or left members to send again (failed, deferred or skipped).

use std::collections::{BTreeSet, HashSet};

use segsync_core::incremental::print;
use segsync_core::{
    config_change, fingerprint, reads_clock, Collector, ConfigPrints, FieldSpec, MemberKey,
    RecordError, Row, TagSet,
};
use serde_json::Value;

use super::RunError;
use crate::app::App;
use crate::profiles::{ProfileStore, SelectError};
use crate::sources::Profiles;
use crate::state::{
    Evaluation, EvaluationMode, ExportConfig, KnownHolders, Outcome, RunRecord, StageRow,
    StateError, StateStore, SuppressionKind,
};

/// The segments' predicates and the profiles they run over.
pub(super) struct Source {
    pub predicates: Vec<String>,
    pub profiles: Profiles,
    pub prints: ConfigPrints,
}

/// What the export's segments read, and the prints of what its result depends on.
pub(super) fn source(
    app: &App,
    state: &StateStore,
    export: &ExportConfig,
    specs: &[FieldSpec],
    tag_bits: &[usize],
) -> Result<Source, RunError> {
    let mut predicates = Vec::new();
    let mut prints = ConfigPrints::new();
    let mut source: Option<String> = None;
    for (i, s) in export.segments.iter().enumerate() {
        let segment = state.segment(&s.segment)?;
        let text = format!(
            "{}\u{1f}{:?}\u{1f}{}\u{1f}{}",
            segment.predicate, segment.source, s.tag, tag_bits[i]
        );
        prints.insert(format!("segment:{}", s.segment), print(&text));
        source = segment.source;
        predicates.push(segment.predicate);
    }
    let mapping = format!(
        "{}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}",
        export.email_field, export.fields, export.updated_at_field, specs
    );
    prints.insert("mapping".into(), print(&mapping));
    let settings = format!(
        "{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}\u{1f}{}",
        export.connection,
        export.audience_id,
        export.status_if_new,
        export.removal,
        export.create_merge_fields
    );
    prints.insert("export".into(), print(&settings));
    let where_from = match &source {
        None => "embedded".to_string(),
        Some(name) => {
            let r = state.profile_source(name)?;
            format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
                r.name, r.kind, r.relation, r.key_column, r.created_at, r.cursor_column
            )
        }
    };
    prints.insert("source".into(), print(&where_from));
    // A member held back, or let go, is only reconsidered when it is compared again: a
    // change to the lists or the refusals takes a full pass.
    let holds = format!(
        "{:?}\u{1f}{:?}\u{1f}{:?}",
        state.suppressions(None)?,
        state.suppressions(Some(&export.name))?,
        state.refusals(&export.name)?
    );
    prints.insert("holds".into(), print(&holds));
    let profiles = app
        .profiles_of(source.as_deref())
        .map_err(|e| RunError::Config(format!("{e:#}")))?;
    Ok(Source {
        predicates,
        profiles,
        prints,
    })
}

/// How this run evaluates the segments.
pub(super) enum Decision {
    Full(String),
    /// Only what changed after `since` (now at the run's [`Position`]).
    Incremental {
        since: Since,
        previous_members: u64,
        /// The run it goes on from: its refused rows stand for the profiles not read again.
        last_run: i64,
    },
}

/// Where the last run left the profiles.
pub(super) enum Since {
    /// The embedded store's import generation.
    Generation(u64),
    /// A database source's cursor mark.
    Cursor(String),
}

/// Where the profiles stand as a run begins: what its evaluation records, for the next run
/// to go on from.
#[derive(Clone, Default)]
pub(super) struct Position {
    pub generation: Option<u64>,
    pub cursor: Option<String>,
}

/// Where the profiles stand now, and the embedded store's column generation (`None`
/// for a database source read whole: nothing to go on from).
fn position(profiles: &Profiles) -> Result<Option<(Position, u64)>, RunError> {
    let other = |e: anyhow::Error| RunError::Other(e);
    match profiles {
        Profiles::Embedded(store) => {
            let now = store.changes(None).map_err(|e| other(e.into()))?;
            let generation = (now.generation > 0).then_some(now.generation);
            let at = Position {
                generation,
                cursor: None,
            };
            Ok(Some((at, now.schema_generation)))
        }
        Profiles::Postgres(pg) if pg.cursor_column().is_some() => {
            let now = pg.changes(None).map_err(|e| other(e.into()))?;
            let at = Position {
                generation: None,
                cursor: now.mark,
            };
            Ok(Some((at, 0)))
        }
        Profiles::Postgres(_) => Ok(None),
        Profiles::MySql(_) => Ok(None),
    }
}

/// Whether the run may go on from the last one, and why not.
pub(super) fn decide(
    state: &StateStore,
    export: &ExportConfig,
    source: &Source,
    full: bool,
) -> Result<(Decision, Position), RunError> {
    let Some((at, schema_generation)) = position(&source.profiles)? else {
        let why = match source.profiles {
            Profiles::MySql(_) => "MySQL sources are read whole",
            _ => "PostgreSQL sources without a cursor column are read whole",
        };
        return Ok((Decision::Full(why.into()), Position::default()));
    };
    let full_pass = |why: String| Ok((Decision::Full(why), at.clone()));
    if full {
        return full_pass("asked for (--full)".into());
    }
    if let Some(s) = export
        .segments
        .iter()
        .zip(&source.predicates)
        .find(|(_, p)| reads_clock(p))
    {
        return full_pass(format!("segment '{}' reads the clock", s.0.segment));
    }
    let Some(last) = last_run(state, &export.name)? else {
        return full_pass("first run".into());
    };
    if let Some(why) = unusable(&last) {
        return full_pass(why);
    }
    let e = last
        .counts
        .evaluation
        .as_ref()
        .expect("checked by unusable");
    if let Some(why) = config_change(&e.config, &source.prints) {
        return full_pass(why);
    }
    let since = match go_on_from(e, &at, schema_generation, &source.profiles)? {
        Ok(since) => since,
        Err(why) => return full_pass(why),
    };
    if !state.has_snapshot(&export.name)? {
        return full_pass("nothing delivered yet".into());
    }
    let previous_members = last.counts.members;
    Ok((
        Decision::Incremental {
            since,
            previous_members,
            last_run: last.id,
        },
        at,
    ))
}

/// Where the last run (its evaluation `e`) left the profiles, now at `at`, or why a full
/// pass is needed instead: the embedded store replaced, its columns changed, or too much of
/// it changed; no position recorded to go on from.
fn go_on_from(
    e: &Evaluation,
    at: &Position,
    schema_generation: u64,
    profiles: &Profiles,
) -> Result<Result<Since, String>, RunError> {
    let since = match (&e.cursor, e.generation) {
        (Some(mark), _) if at.cursor.is_some() => return Ok(Ok(Since::Cursor(mark.clone()))),
        (_, Some(since)) if at.cursor.is_none() => since,
        _ => return Ok(Err("the last run recorded no position to go on from".into())),
    };
    let now = at.generation.unwrap_or(0);
    if now == 0 || now < since {
        return Ok(Err("the profile store was replaced".into()));
    }
    if schema_generation > since {
        return Ok(Err("the profile columns changed".into()));
    }
    if let Profiles::Embedded(store) = profiles {
        if let Some(why) = much_changed(store, since)? {
            return Ok(Err(why));
        }
    }
    Ok(Ok(Since::Generation(since)))
}

/// The share of the profiles changed above which a full pass is taken: an incremental pass
/// costs about three times as much per changed profile as a full pass per profile (it reads
/// them by key, and compares their addresses one by one), so from about 30% on it is the
/// slower one (BENCHMARKS.md, issue 17).
const FULL_PASS_SHARE: f64 = 0.3;

/// Why so many profiles changed after generation `since` that a full pass is faster, if so.
fn much_changed(store: &ProfileStore, since: u64) -> Result<Option<String>, RunError> {
    let (changed, total) = store
        .changed_count(since)
        .map_err(|e| RunError::Other(e.into()))?;
    if total == 0 || changed as f64 <= FULL_PASS_SHARE * total as f64 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{}% of the profiles changed ({changed} of {total}): a full pass reads them faster",
        changed * 100 / total
    )))
}

/// Whether profiles are known to have changed since the export's last run before anything
/// of them is read: there is no last run (a first run tags whomever it sends), or an import
/// into the embedded store changed a profile after the generation the last run read. A
/// database source's re-run answers no (its changes are known only once they are read),
/// and so does a question that fails here: the run's own reads meet the failure and report
/// it.
pub(super) fn imported_since_last_run(
    app: &App,
    state: &StateStore,
    export: &ExportConfig,
) -> bool {
    let Ok(last) = last_run(state, &export.name) else {
        return false;
    };
    let Some(last) = last else {
        return true;
    };
    let embedded = export.segments.iter().all(|s| {
        let segment = state.segment(&s.segment);
        segment.is_ok_and(|segment| segment.source.is_none())
    });
    let Some(read) = last.counts.evaluation.and_then(|e| e.generation) else {
        return false;
    };
    let changed = || app.profiles().ok()?.changed_after(read).ok();
    embedded && changed().unwrap_or(false)
}

/// The export's last run before this one (which may be recorded as running already).
fn last_run(state: &StateStore, export: &str) -> Result<Option<RunRecord>, StateError> {
    let runs = state.runs(Some(export), 2)?;
    Ok(runs
        .into_iter()
        .find(|r| !matches!(r.outcome, Outcome::Running)))
}

/// Why the run `last` is no base to go on from, if it is not.
fn unusable(last: &RunRecord) -> Option<String> {
    if !matches!(
        last.outcome,
        Outcome::Succeeded | Outcome::SucceededWithErrors
    ) {
        return Some(format!(
            "the last run {}",
            last.outcome.as_str().replace('_', " ")
        ));
    }
    let c = &last.counts;
    let retry = c.failed + c.deferred + c.skipped;
    if retry > 0 {
        return Some(format!(
            "the last run left {retry} member(s) to send again (failed, deferred or skipped)"
        ));
    }
    match &c.evaluation {
        Some(e) if e.generation.is_some() || e.cursor.is_some() => None,
        _ => Some("the last run recorded no position to go on from".into()),
    }
}

/// The profiles read into the run's stage.
pub(super) struct Staged {
    /// Profile rows read (in at least one segment).
    pub rows: u64,
    /// Rows accepted (before duplicate addresses merged).
    pub accepted: u64,
    /// Distinct members staged.
    pub members: u64,
    pub refused: Vec<RecordError>,
    /// The delivered members holding a changed profile (incremental), for the moves.
    pub holders: Option<KnownHolders>,
}

/// Reads profile rows into the run's stage (between `stage_begin` and `stage_end`), one
/// pass or several.
pub(super) struct Stager<'a> {
    columns: Vec<String>,
    predicates: &'a [String],
    tag_bits: &'a [usize],
    n_fields: usize,
    has_updated: bool,
    collector: Collector,
    accepted: u64,
    /// The addresses staged, when asked to keep them.
    pub keys: Option<HashSet<MemberKey>>,
    /// Rows read and not yet written to the stage.
    rows: Vec<StageRow>,
    /// The rows are written to the stage as they come ([`STAGE_BATCH`] at a time), and
    /// sorted there at the end (a full pass, or more than [`IN_MEMORY`] profiles), rather
    /// than held to the end and sorted in memory.
    streaming: bool,
}

/// Rows staged per transaction while reading the profiles, once they are streamed.
const STAGE_BATCH: usize = 10_000;

/// Profiles a pass over chosen keys (a re-run's) holds in memory, to sort them there rather
/// than through SQLite's temporary table and sort: a few hundred bytes each. The 10% re-run
/// of the scale bench (101,645 rows) staged 0.09 s sooner this way, and peaked at 113 to
/// 116 MB against 87 to 90 MB streamed (issue 17's bound: 150 MB). A full pass, or one over
/// more keys, streams its rows to the stage instead, so a run's peak does not grow with its
/// profiles.
const IN_MEMORY: usize = 120_000;

impl<'a> Stager<'a> {
    pub fn new(
        export: &ExportConfig,
        specs: &[FieldSpec],
        predicates: &'a [String],
        tag_bits: &'a [usize],
        keep_keys: bool,
    ) -> Stager<'a> {
        let mut columns = vec![export.email_field.clone()];
        columns.extend(export.fields.iter().map(|f| f.column.clone()));
        if let Some(u) = &export.updated_at_field {
            columns.push(u.clone());
        }
        Stager {
            columns,
            predicates,
            tag_bits,
            n_fields: export.fields.len(),
            has_updated: export.updated_at_field.is_some(),
            collector: Collector::new(specs.to_vec()),
            accepted: 0,
            keys: keep_keys.then(HashSet::new),
            rows: Vec::new(),
            streaming: false,
        }
    }

    /// One pass: every profile, or those keyed `only` (the embedded store still at the
    /// generation given).
    pub fn pass(
        &mut self,
        state: &mut StateStore,
        profiles: &Profiles,
        only: Option<(&[String], Option<u64>)>,
    ) -> Result<(), RunError> {
        if only.is_none_or(|(keys, _)| keys.len() > IN_MEMORY) {
            self.streaming = true;
        }
        let columns = self.columns.clone();
        let predicates = self.predicates;
        let each =
            |row: crate::profiles::ProfileRow| -> Result<(), StateError> { self.row(state, row) };
        let result = match only {
            None => profiles.select(&columns, predicates, each),
            Some((keys, generation)) => {
                profiles.select_keys(&columns, predicates, keys, generation, each)
            }
        };
        result.map_err(|e| match e {
            SelectError::Callback(e) => RunError::Other(e.into()),
            other => RunError::Config(format!("reading the profiles: {other}")),
        })?;
        if self.streaming {
            state.stage_rows(&self.rows)?;
            self.rows.clear();
        }
        Ok(())
    }

    fn row(
        &mut self,
        state: &mut StateStore,
        row: crate::profiles::ProfileRow,
    ) -> Result<(), StateError> {
        let mut tags = TagSet::default();
        for (i, inside) in row.in_segment.iter().enumerate() {
            if *inside {
                tags = tags.with(self.tag_bits[i]);
            }
        }
        let n = self.n_fields;
        let field_refs: Vec<&Value> = row.values[1..1 + n].iter().collect();
        let updated_at = if self.has_updated {
            row.values.get(1 + n)
        } else {
            None
        };
        let normalized = self.collector.normalize(Row {
            profile_key: &row.key,
            email: &row.values[0],
            fields: &field_refs,
            tags,
            updated_at,
        });
        match normalized {
            Ok(n) => {
                if let Some(keys) = &mut self.keys {
                    keys.insert(n.key);
                }
                self.rows.push(StageRow {
                    key: n.key,
                    merge_json: serde_json::to_string(&n.desired.merge)
                        .expect("merge values serialise"),
                    fingerprint: fingerprint(&n.desired.merge),
                    email: n.desired.email,
                    tags: n.desired.tags,
                    updated_at: n.updated_at,
                    profile_key: row.key,
                    // A source without an order of its own: the order rows came in.
                    position: row.position.unwrap_or(self.collector.rows as i64),
                });
                self.accepted += 1;
                self.stream_when_due(state)?;
            }
            Err(e) => self.collector.refused.push(e),
        }
        Ok(())
    }

    /// Writes the rows held to the stage once a batch is full, when the pass streams (or
    /// once more came than [`IN_MEMORY`]: then it streams from there on).
    fn stream_when_due(&mut self, state: &mut StateStore) -> Result<(), StateError> {
        let due = if self.streaming {
            STAGE_BATCH
        } else {
            IN_MEMORY + 1
        };
        if self.rows.len() >= due {
            for batch in self.rows.chunks(STAGE_BATCH) {
                state.stage_rows(batch)?;
            }
            self.rows = Vec::with_capacity(STAGE_BATCH);
            self.streaming = true;
        }
        Ok(())
    }

    /// Ends the stage: duplicates merged, counted.
    pub fn finish(
        mut self,
        state: &mut StateStore,
    ) -> Result<(Staged, Option<HashSet<MemberKey>>), RunError> {
        if self.streaming {
            state.stage_rows(&self.rows)?;
            state.stage_end()?;
        } else {
            state.stage_sorted(std::mem::take(&mut self.rows))?;
        }
        let staged = Staged {
            rows: self.collector.rows,
            accepted: self.accepted,
            members: state.staged_count()?,
            refused: std::mem::take(&mut self.collector.refused),
            holders: None,
        };
        Ok((staged, self.keys))
    }
}

/// What reading the profiles into the stage needs.
pub(super) struct Reading<'a> {
    pub export: &'a ExportConfig,
    pub specs: &'a [FieldSpec],
    pub tag_bits: &'a [usize],
    pub source: &'a Source,
}

impl Reading<'_> {
    fn stager(&self, keep_keys: bool) -> Stager<'_> {
        Stager::new(
            self.export,
            self.specs,
            &self.source.predicates,
            self.tag_bits,
            keep_keys,
        )
    }
}

/// A full pass: every profile staged.
pub(super) fn stage_all(state: &mut StateStore, r: &Reading<'_>) -> Result<Staged, RunError> {
    state.stage_begin()?;
    let mut stager = r.stager(false);
    stager.pass(state, &r.source.profiles, None)?;
    Ok(stager.finish(state)?.0)
}

/// The addresses an incremental run compares, and the profiles it evaluates.
#[derive(Default)]
struct Touched {
    members: HashSet<MemberKey>,
    profiles: BTreeSet<String>,
}

impl Touched {
    /// Adds delivered members and every profile behind them.
    fn add_held(&mut self, held: Vec<(MemberKey, String)>) {
        for (k, profiles) in held {
            self.members.insert(k);
            self.profiles
                .extend(segsync_core::profile_keys(&profiles).map(str::to_string));
        }
    }
}

/// The members the last run held back (suppressed, or refused for good before) are compared
/// again, so that an incremental run holds and counts them as a full pass does: suppressed
/// profile keys, refused profiles, and the profiles behind suppressed addresses, delivered or
/// not (those never delivered are found by one read of the address column).
fn add_held_back(
    state: &StateStore,
    r: &Reading<'_>,
    touched: &mut Touched,
) -> Result<(), RunError> {
    let export = &r.export.name;
    let mut addresses = HashSet::new();
    let lists = [state.suppressions(None)?, state.suppressions(Some(export))?];
    for s in lists.into_iter().flatten() {
        match s.kind {
            SuppressionKind::Key => {
                touched.profiles.insert(s.value);
            }
            SuppressionKind::Email => {
                addresses.insert(MemberKey::of(&s.value));
            }
        }
    }
    // A refusal names its profiles: no need to look for them.
    for f in state.refusals(export)? {
        let profiles = segsync_core::profile_keys(&f.profile_key).map(str::to_string);
        touched.profiles.extend(profiles);
        touched.members.insert(MemberKey::of(&f.email));
    }
    let keys: Vec<MemberKey> = addresses.iter().copied().collect();
    let delivered = state.member_profiles(export, &keys)?;
    let undelivered = delivered.len() < keys.len();
    touched.add_held(delivered);
    touched.members.extend(keys);
    if undelivered {
        each_address(r, None, |key, address| {
            let hit = address
                .as_str()
                .is_some_and(|e| addresses.contains(&MemberKey::of(e)));
            if hit {
                touched.profiles.insert(key);
            }
        })?;
    }
    Ok(())
}

/// Calls `each` with the key and the address column's value of every profile, or of those
/// keyed `only` (the embedded store still at the generation given), in a segment or not.
fn each_address(
    r: &Reading<'_>,
    only: Option<(&[String], Option<u64>)>,
    mut each: impl FnMut(String, &Value),
) -> Result<(), RunError> {
    let email = [r.export.email_field.clone()];
    let all = ["true".to_string()];
    let row = |row: crate::profiles::ProfileRow| -> Result<(), RunError> {
        each(row.key, &row.values[0]);
        Ok(())
    };
    let read = match only {
        None => r.source.profiles.select(&email, &all, row),
        Some((keys, generation)) => r
            .source
            .profiles
            .select_keys(&email, &all, keys, generation, row),
    };
    read.map_err(|e| match e {
        SelectError::Callback(e) => e,
        other => RunError::Config(format!("reading the profiles' addresses: {other}")),
    })?;
    Ok(())
}

/// What changed since the last run: the keys of the profiles new, changed or removed, and
/// where the profiles stand now.
struct Changed {
    keys: Vec<String>,
    at: Position,
}

/// What changed in the profiles after `since`: the embedded store's change record, or a
/// database source's rows past the cursor mark and its keys (a delivered profile whose key
/// is no longer there left).
fn changed_since(
    state: &mut StateStore,
    r: &Reading<'_>,
    since: Since,
) -> Result<Changed, RunError> {
    let other = |e: anyhow::Error| RunError::Other(e);
    match (&r.source.profiles, since) {
        (Profiles::Embedded(store), Since::Generation(g)) => {
            let changes = store.changes(Some(g)).map_err(|e| other(e.into()))?;
            let at = Position {
                generation: Some(changes.generation),
                cursor: None,
            };
            Ok(Changed {
                keys: changes.keys,
                at,
            })
        }
        (Profiles::Postgres(pg), Since::Cursor(mark)) => {
            let t = std::time::Instant::now();
            let now = pg.changes(Some(&mark)).map_err(|e| other(e.into()))?;
            let mut keys = now.changed;
            let written = keys.len();
            keys.extend(state.delivered_profiles_absent(&r.export.name, |k| now.keys.contains(k))?);
            tracing::debug!(written, left = keys.len() - written, keys = now.keys.len(), elapsed = ?t.elapsed(), "source changes read");
            let at = Position {
                generation: None,
                cursor: now.mark.or(Some(mark)),
            };
            Ok(Changed { keys, at })
        }
        _ => Err(RunError::Other(anyhow::anyhow!(
            "the profiles' source changed kind since the last run"
        ))),
    }
}

/// What an incremental read starts from: the profiles changed after the last run, and the
/// delivered members holding one of them (the snapshot knows the profiles behind each
/// delivered address). Found while the audience's reads are still under way.
pub(super) struct ChangedProfiles {
    changes: Changed,
    changed: HashSet<String>,
    holding: Vec<(MemberKey, String)>,
}

/// The profiles changed after `since`, and the delivered members holding them. `counted`
/// learns how many changed as soon as that is known, before the holders are looked for.
pub(super) fn changed_profiles(
    state: &mut StateStore,
    r: &Reading<'_>,
    since: Since,
    counted: impl FnOnce(usize),
) -> Result<ChangedProfiles, RunError> {
    let changes = changed_since(state, r, since)?;
    counted(changes.keys.len());
    let changed: HashSet<String> = changes.keys.iter().cloned().collect();
    let t = std::time::Instant::now();
    let holding = state.members_holding(&r.export.name, &changed)?;
    tracing::debug!(changed = changed.len(), holding = holding.len(), elapsed = ?t.elapsed(), "members holding a changed profile found");
    Ok(ChangedProfiles {
        changes,
        changed,
        holding,
    })
}

/// An incremental stage under way: the profiles changed and those of the delivered members
/// holding them read, while the audience's answer is still awaited.
pub(super) struct StagingChanged<'r> {
    stager: Stager<'r>,
    touched: Touched,
    found: ChangedProfiles,
}

/// The first pass of an incremental read, before the audience answers: the profiles
/// `found` changed, those of the delivered members holding one of them, and those held back
/// last time. [`StagingChanged::finish`] adds the rest once the audience's answer is in.
pub(super) fn stage_changed<'r>(
    state: &mut StateStore,
    r: &'r Reading<'_>,
    found: ChangedProfiles,
) -> Result<StagingChanged<'r>, RunError> {
    let mut touched = Touched::default();
    touched.profiles.extend(found.changed.iter().cloned());
    touched.add_held(found.holding.clone());
    add_held_back(state, r, &mut touched)?;
    state.stage_begin()?;
    let mut stager = r.stager(true);
    let first: Vec<String> = touched.profiles.iter().cloned().collect();
    stager.pass(
        state,
        &r.source.profiles,
        Some((&first, found.changes.at.generation)),
    )?;
    Ok(StagingChanged {
        stager,
        touched,
        found,
    })
}

impl StagingChanged<'_> {
    /// Ends the stage: the profiles behind the addresses in `reported` (their status changed
    /// in Mailchimp), and, where the profiles read now hold an address the snapshot gives to
    /// other profiles too, those others, in a second pass over them alone. Each row keeps
    /// its profile's position in a full pass, so that the rows of an address merge as a full
    /// pass would merge them, whichever pass read them. Returns the stage's counts and what
    /// was evaluated; the addresses to compare are left in the stage.
    pub fn finish(
        self,
        state: &mut StateStore,
        r: &Reading<'_>,
        reported: Vec<MemberKey>,
        last_run: i64,
    ) -> Result<(Staged, Evaluation), RunError> {
        let StagingChanged {
            mut stager,
            mut touched,
            found,
        } = self;
        let generation = found.changes.at.generation;
        let mut behind: Vec<MemberKey> = stager
            .keys
            .iter()
            .flatten()
            .filter(|k| !touched.members.contains(k))
            .copied()
            .collect();
        behind.extend(reported.iter().filter(|k| !touched.members.contains(k)));
        behind.sort_unstable();
        behind.dedup();
        touched.members.extend(reported);
        let held = state.member_profiles(&r.export.name, &behind)?;
        let others: BTreeSet<String> = held
            .iter()
            .flat_map(|(_, profiles)| segsync_core::profile_keys(profiles))
            .filter(|p| !touched.profiles.contains(*p))
            .map(str::to_string)
            .collect();
        touched.add_held(held);
        if !others.is_empty() {
            let others: Vec<String> = others.into_iter().collect();
            stager.pass(state, &r.source.profiles, Some((&others, generation)))?;
        }
        let (mut staged, keys) = stager.finish(state)?;
        let keys = keys.unwrap_or_default();
        let mut unstaged: Vec<MemberKey> = touched
            .members
            .iter()
            .filter(|k| !keys.contains(k))
            .copied()
            .collect();
        unstaged.sort_unstable();
        // The members touched: those left unstaged and every staged one (the two apart).
        let touched_members = (unstaged.len() + keys.len()) as u64;
        carry_refused(state, last_run, &touched.profiles, &mut staged)?;
        let ChangedProfiles {
            changes,
            changed,
            holding,
        } = found;
        staged.holders = Some(KnownHolders {
            profiles: changed,
            rows: holding,
        });
        state.set_touched(&unstaged)?;
        let evaluation = Evaluation {
            mode: EvaluationMode::Incremental,
            reason: String::new(),
            changed_profiles: changes.keys.len() as u64,
            evaluated_profiles: touched.profiles.len() as u64,
            touched_members,
            generation,
            cursor: changes.at.cursor,
            config: r.source.prints.clone(),
        };
        Ok((staged, evaluation))
    }
}

/// The last run left nothing to send again, so its records are rows it refused: those of
/// profiles not read again are refused again, as a full pass would.
fn carry_refused(
    state: &StateStore,
    last_run: i64,
    read: &BTreeSet<String>,
    staged: &mut Staged,
) -> Result<(), RunError> {
    let mut carried: Vec<RecordError> = state
        .run_errors(last_run)?
        .into_iter()
        .filter(|e| !e.profile_key.is_empty() && !read.contains(&e.profile_key))
        .collect();
    carried.append(&mut staged.refused);
    staged.refused = carried;
    Ok(())
}
