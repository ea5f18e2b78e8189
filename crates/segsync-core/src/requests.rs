//! The grouping of planned changes into Mailchimp requests: one function for the plan that is
//! tested ([`plan`](crate::plan::plan), over a diff in memory) and the plan that ships (the
//! engine, over the rows it staged on disk). Pure: the rows come through [`PlannedRows`].
//!
//! A plan is sent in three phases, each after the previous one finished:
//! 1. upserts: moves (one `PATCH` each), creates (`update_existing: false`, each new member
//!    with its tags), then updates (each with the tags its member gains), 500 members a
//!    request;
//! 2. tags: for each tag, requests of at most 500 additions and 500 removals, side by side,
//!    for existing members: removals, additions to members with no update, and additions an
//!    upsert did not apply (the executor adds those rows when the answers say so);
//! 3. removals: unsubscribes (status-only upserts, 500 a request), then archives (one
//!    request each).
//!
//! Tag additions for members whose upsert was not delivered are left out: they are not in
//! the audience, and Mailchimp would ignore them.

use std::collections::{HashSet, VecDeque};

use crate::diff::{Move, Upsert};
use crate::model::MemberKey;
use crate::plan::{Op, BATCH};

/// One kind of planned row, in the order a phase sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Members moved to their profile's new address.
    Moves,
    /// New members.
    Creates,
    /// Content of existing members, each with its own status.
    Updates,
    /// Status-only writes that unsubscribe members this export added.
    Unsubscribes,
    /// Additions and removals of one tag (its bit).
    Tag(usize),
    Archives,
}

/// A planned tag change or archive: its sequence number, the member and its address.
pub type PlannedMember = (i64, MemberKey, String);

/// Where the grouping reads a plan's rows: each kind in its order, a page at a time, after
/// the sequence number last read.
pub trait PlannedRows {
    type Error;
    /// Upserts of `part` (creates, updates or unsubscribes), with their sequence numbers.
    fn upserts(
        &mut self,
        part: Part,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Upsert)>, Self::Error>;
    /// Additions (`adding`) or removals of tag `bit`.
    fn tags(
        &mut self,
        bit: usize,
        adding: bool,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PlannedMember>, Self::Error>;
    fn archives(&mut self, after: i64, limit: usize) -> Result<Vec<PlannedMember>, Self::Error>;
    /// Moves, with their sequence numbers.
    fn moves(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, Move)>, Self::Error>;
}

/// The parts of each phase of a plan that changes the tags `tag_bits`, in sending order;
/// phases without rows send nothing.
pub fn phases(tag_bits: &[usize]) -> [Vec<Part>; 3] {
    [
        vec![Part::Moves, Part::Creates, Part::Updates],
        tag_bits.iter().map(|b| Part::Tag(*b)).collect(),
        vec![Part::Unsubscribes, Part::Archives],
    ]
}

/// The requests of one phase, produced one at a time from its planned rows.
#[derive(Clone, Debug)]
pub struct Requests {
    parts: VecDeque<Part>,
    after: i64,
    after_remove: i64,
}

impl Requests {
    pub fn new(parts: impl IntoIterator<Item = Part>) -> Requests {
        Requests {
            parts: parts.into_iter().collect(),
            after: 0,
            after_remove: 0,
        }
    }

    /// The next request, or `None` when the phase has no more. `undelivered` holds the
    /// addresses whose upsert failed: their tag additions are left out.
    pub fn next<R: PlannedRows>(
        &mut self,
        rows: &mut R,
        undelivered: &HashSet<String>,
    ) -> Result<Option<Op>, R::Error> {
        while let Some(part) = self.parts.front().copied() {
            let op = match part {
                Part::Tag(bit) => self.next_tag(rows, bit, undelivered)?,
                Part::Archives => self.next_archive(rows)?,
                Part::Moves => self.next_move(rows)?,
                upserts => self.next_upserts(rows, upserts)?,
            };
            match op {
                Some(Some(op)) => return Ok(Some(op)),
                // A page whose every addition was left out: read on.
                Some(None) => continue,
                None => {
                    self.parts.pop_front();
                    self.after = 0;
                    self.after_remove = 0;
                }
            }
        }
        Ok(None)
    }

    /// `None` when the part is done.
    fn next_upserts<R: PlannedRows>(
        &mut self,
        rows: &mut R,
        part: Part,
    ) -> Result<Option<Option<Op>>, R::Error> {
        let page = rows.upserts(part, self.after, BATCH)?;
        let Some((last, _)) = page.last() else {
            return Ok(None);
        };
        self.after = *last;
        Ok(Some(Some(Op::Upsert {
            update_existing: part != Part::Creates,
            items: page.into_iter().map(|(_, u)| u).collect(),
        })))
    }

    fn next_tag<R: PlannedRows>(
        &mut self,
        rows: &mut R,
        bit: usize,
        undelivered: &HashSet<String>,
    ) -> Result<Option<Option<Op>>, R::Error> {
        let add = rows.tags(bit, true, self.after, BATCH)?;
        let remove = rows.tags(bit, false, self.after_remove, BATCH)?;
        if add.is_empty() && remove.is_empty() {
            return Ok(None);
        }
        if let Some((seq, _, _)) = add.last() {
            self.after = *seq;
        }
        if let Some((seq, _, _)) = remove.last() {
            self.after_remove = *seq;
        }
        let add: Vec<(MemberKey, String)> = add
            .into_iter()
            .filter(|(_, _, e)| !undelivered.contains(e))
            .map(|(_, k, e)| (k, e))
            .collect();
        let remove: Vec<(MemberKey, String)> = remove.into_iter().map(|(_, k, e)| (k, e)).collect();
        if add.is_empty() && remove.is_empty() {
            return Ok(Some(None));
        }
        Ok(Some(Some(Op::Tag {
            tag: bit,
            add,
            remove,
        })))
    }

    fn next_move<R: PlannedRows>(&mut self, rows: &mut R) -> Result<Option<Option<Op>>, R::Error> {
        let Some((seq, m)) = rows.moves(self.after, 1)?.into_iter().next() else {
            return Ok(None);
        };
        self.after = seq;
        Ok(Some(Some(Op::Move(m))))
    }

    fn next_archive<R: PlannedRows>(
        &mut self,
        rows: &mut R,
    ) -> Result<Option<Option<Op>>, R::Error> {
        let Some((seq, key, email)) = rows.archives(self.after, 1)?.into_iter().next() else {
            return Ok(None);
        };
        self.after = seq;
        Ok(Some(Some(Op::Archive { key, email })))
    }
}
