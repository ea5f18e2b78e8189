//! The diff of a run: a merge-join of its stage and the export's snapshot, in key order,
//! each key's decision written to the run's plan on disk and counted. At once (`segsync
//! plan`, and runs that move members), or a part at a time while the run sends what the
//! parts before planned (see `stream`).

use segsync_core::{
    decide, decide_move, DiffOptions, DiffSink, Holds, MemberKey, Moves, PlanSummary, Route,
    SnapshotEntry, Status, TagSet, Want,
};

use super::audience::Statuses;
use super::holds::HeldCounts;
use super::prepare::StagedPlan;
use super::RunError;
use crate::state::{DiffCursor, ExportConfig, PlanWriter, StateStore, UpsertPhase};

/// A run's diff, and how far it went. Members that follow their profile to a new address
/// are moved (`moves`); members held back (`holds`) are left alone; every other member gets
/// the diff's usual rules (`segsync_core::decide`).
pub(super) struct Differ {
    export: String,
    opts: DiffOptions,
    /// What the audience said of the members whose status can differ from the snapshot's.
    audience: Statuses,
    moves: Moves,
    holds: Holds,
    /// Only the touched addresses are compared (an incremental run).
    restrict: bool,
    cursor: DiffCursor,
    /// Whether `first_tag` was called.
    told: bool,
    pub(super) acc: PlanCounts,
}

impl Differ {
    pub(super) fn new(
        export: &ExportConfig,
        audience: Statuses,
        (moves, holds): (Moves, Holds),
        restrict: bool,
    ) -> Differ {
        Differ {
            export: export.name.clone(),
            opts: DiffOptions {
                status_if_new: export.status_if_new,
                removal: export.removal,
            },
            audience,
            moves,
            holds,
            restrict,
            cursor: DiffCursor::default(),
            told: false,
            acc: PlanCounts::default(),
        }
    }

    /// Whether every key was diffed.
    pub(super) fn done(&self) -> bool {
        self.cursor.done()
    }

    /// Whether the diff may go a part at a time while the run sends: moves go before any
    /// other upsert, so a diff with moves is written whole first.
    pub(super) fn streams(&self) -> bool {
        self.moves.is_empty()
    }

    /// Diffs the next `limit` staged members (all that are left with `None`). `first_tag`
    /// is called once, when a decision first tags anyone.
    pub(super) fn step(
        &mut self,
        state: &mut StateStore,
        limit: Option<usize>,
        first_tag: &mut dyn FnMut(),
    ) -> Result<(), RunError> {
        let Differ {
            export,
            opts,
            audience,
            moves,
            holds,
            restrict,
            cursor,
            told,
            acc,
        } = self;
        state.diff_stage_part(
            export,
            *restrict,
            cursor,
            limit,
            |key, staged, entry, writer| {
                if entry.is_some_and(|e| !e.tags.is_empty()) {
                    acc.touched_tagged += 1;
                }
                if acc.held.holds(holds, key, staged, entry) {
                    return Ok(());
                }
                if let (Some(w), Some(e)) = (staged, entry) {
                    if e.profiles.as_deref() != Some(w.profiles.as_str()) {
                        writer.profiles(key, &w.profiles)?;
                    }
                }
                let want = staged.map(|w| Want {
                    email: &w.email,
                    fingerprint: w.fingerprint,
                    tags: w.tags,
                });
                let mut sink = StageSink {
                    writer,
                    acc,
                    error: None,
                };
                match (moves.route(key, want.is_some(), entry.is_some()), &want) {
                    (Route::MoveFrom(h), Some(want)) => {
                        decide_move(key, want, h.key, &h.entry, &mut sink)
                    }
                    (Route::Skip(reason), Some(want)) => {
                        sink.skip(key, want.email, reason.to_string())
                    }
                    (Route::MovedAway, _) => {}
                    _ => decide(
                        key,
                        want.as_ref(),
                        entry,
                        audience.get(&key).copied(),
                        *opts,
                        &mut sink,
                    ),
                }
                let error = sink.error;
                if !*told && acc.tagging() {
                    *told = true;
                    first_tag();
                }
                match error {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            },
        )?;
        Ok(())
    }
}

/// What the diff wrote, counted.
#[derive(Default)]
pub(super) struct PlanCounts {
    moves: usize,
    pub(super) creates: usize,
    pub(super) updates: usize,
    unsubscribes: usize,
    archives: usize,
    /// Adds and removes per tag bit, by tag batches.
    per_tag: Vec<(usize, usize)>,
    /// Tags carried by upserts (creates' own, updates' gained), per tag bit.
    item_tags: Vec<usize>,
    pub(super) unchanged: u64,
    pub(super) skipped: Vec<segsync_core::Skip>,
    pub(super) held: HeldCounts,
    /// Members compared that the snapshot holds with tags (in a segment at the last run,
    /// near enough: an incremental run's member count is estimated with them).
    pub(super) touched_tagged: u64,
}

impl PlanCounts {
    pub(super) fn plan(&self) -> StagedPlan {
        // The tags the upserts carry count too: their ids are found before sending, and
        // members whose upsert did not apply them are tagged by tag batches.
        let bits: Vec<usize> = (0..self.per_tag.len().max(self.item_tags.len()))
            .filter(|b| {
                self.per_tag.get(*b).is_some_and(|t| *t != (0, 0))
                    || self.item_tags.get(*b).is_some_and(|n| *n > 0)
            })
            .collect();
        let per_tag: Vec<(usize, usize)> = bits
            .iter()
            .map(|b| self.per_tag.get(*b).copied().unwrap_or_default())
            .collect();
        StagedPlan {
            summary: PlanSummary::from_counts(
                self.moves,
                self.creates,
                self.updates,
                self.unsubscribes,
                &per_tag,
                self.item_tags.iter().sum(),
                self.archives,
            ),
            tag_bits: bits,
        }
    }

    /// Some decision tags a member (by its upsert or by a tag batch): a tag was counted.
    fn tagging(&self) -> bool {
        !self.item_tags.is_empty() || !self.per_tag.is_empty()
    }

    fn item_tags(&mut self, tags: TagSet) {
        for bit in tags.iter() {
            if self.item_tags.len() <= bit {
                self.item_tags.resize(bit + 1, 0);
            }
            self.item_tags[bit] += 1;
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
    fn upsert(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        status: Status,
        create: bool,
        tags: TagSet,
    ) {
        self.acc.item_tags(tags);
        let phase = if create {
            self.acc.creates += 1;
            UpsertPhase::Create
        } else {
            self.acc.updates += 1;
            UpsertPhase::Update
        };
        let r = self
            .writer
            .upsert(phase, key, want.email, status, Some(want.fingerprint), tags);
        self.keep(r);
    }
    fn move_member(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        from: MemberKey,
        entry: &SnapshotEntry,
    ) {
        self.acc.moves += 1;
        let r = self.writer.move_member(
            (from, &entry.email),
            key,
            want.email,
            entry.status,
            want.fingerprint,
        );
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
            TagSet::default(),
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
