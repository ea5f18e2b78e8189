//! The upserts of a large run sent while its diff goes on: the diff is written a part at a
//! time, and each request takes a full batch of creates or updates as soon as the parts
//! before it planned one, so that the first write leaves once the stage is sorted rather
//! than once the whole plan is written.
//!
//! What is sent is what the whole plan sends: the same diff, the same rows in the same
//! order within creates and within updates, the same batches but for where the creates'
//! and the updates' batches fall between each other (independent requests). The tag and
//! removal phases are built from the whole plan, after the upserts (`execute`). A run that
//! stops before the diff is done is a run that did not succeed: the next one compares
//! every profile again (see `evaluate::decide`).

use segsync_core::{Op, BATCH};

use super::prepare::Diffing;
use super::RunError;
use crate::state::{StateStore, UpsertPhase};

/// Staged members diffed between two looks for a full batch: a few milliseconds of work,
/// done while the requests in flight wait for their answers.
const PART: usize = 2_000;

/// The creates and the updates of a plan, batch by batch, while its diff goes on.
pub(super) struct Streamed {
    diffing: Diffing,
    /// Creates, then updates: the last sequence number taken, and how many were taken.
    after: [i64; 2],
    taken: [usize; 2],
    /// The refused addresses sent again whose refusals were forgotten so far.
    forgotten: usize,
}

const PHASES: [UpsertPhase; 2] = [UpsertPhase::Create, UpsertPhase::Update];

impl Streamed {
    pub(super) fn new(diffing: Diffing) -> Streamed {
        Streamed {
            diffing,
            after: [0; 2],
            taken: [0; 2],
            forgotten: 0,
        }
    }

    /// The diff, if every key was diffed (a phase that ran out of requests took every upsert).
    pub(super) fn into_done(self) -> Option<Diffing> {
        self.diffing.differ.done().then_some(self.diffing)
    }

    /// The next request: a full batch of creates or of updates, diffing on until one is
    /// planned; once the diff is done, what is left, creates first.
    pub(super) fn next(
        &mut self,
        state: &mut StateStore,
        export: &str,
    ) -> Result<Option<Op>, RunError> {
        loop {
            let done = self.diffing.differ.done();
            for (i, phase) in PHASES.into_iter().enumerate() {
                let ready = self.planned(i) - self.taken[i];
                if ready >= BATCH || (done && ready > 0) {
                    return self.take(state, i, phase).map(Some);
                }
            }
            if done {
                return Ok(None);
            }
            self.diffing.differ.step(state, Some(PART), &mut || {})?;
            self.forget_retried(state, export)?;
        }
    }

    /// Diffs one part ahead, if no full batch is planned yet: called while requests are in
    /// flight, so that the next one leaves without waiting for the diff.
    pub(super) fn plan_ahead(
        &mut self,
        state: &mut StateStore,
        export: &str,
    ) -> Result<(), RunError> {
        let ready = |i: usize| self.planned(i) - self.taken[i] >= BATCH;
        if self.diffing.differ.done() || ready(0) || ready(1) {
            return Ok(());
        }
        self.diffing.differ.step(state, Some(PART), &mut || {})?;
        self.forget_retried(state, export)
    }

    fn planned(&self, i: usize) -> usize {
        let acc = &self.diffing.differ.acc;
        [acc.creates, acc.updates][i]
    }

    fn take(&mut self, state: &StateStore, i: usize, phase: UpsertPhase) -> Result<Op, RunError> {
        let rows = state.planned_upserts(phase, self.after[i], BATCH)?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            let e = anyhow::anyhow!("the plan holds fewer upserts than its diff counted");
            return Err(RunError::Other(e));
        };
        self.after[i] = last;
        self.taken[i] += rows.len();
        let items = rows
            .into_iter()
            .map(super::execute::upsert_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Op::Upsert {
            update_existing: phase != UpsertPhase::Create,
            items,
        })
    }

    /// Refused addresses whose content changed are sent again: their refusals are forgotten
    /// before they go (the whole plan's are, when the run starts sending).
    fn forget_retried(&mut self, state: &StateStore, export: &str) -> Result<(), RunError> {
        let retrying = &self.diffing.differ.acc.held.retrying;
        if retrying.len() > self.forgotten {
            state.forget_refusals(export, &retrying[self.forgotten..])?;
            self.forgotten = retrying.len();
        }
        Ok(())
    }
}
