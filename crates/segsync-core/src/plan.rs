//! The plan: a diff grouped into Mailchimp requests, and how each acknowledged request moves
//! the snapshot forward. Pure: the executor sends the requests and calls back here.
//!
//! Phases run in order, each after the previous one finished: member upserts (creates with
//! `update_existing: false`, so a member that appeared meanwhile is reported instead of
//! overwritten, each carrying its tags; then updates carrying each member's own status and
//! the tags it gains), then tag membership of existing members (removals, additions to
//! members with no update, and additions an upsert did not apply), then removals (archives
//! and unsubscribes).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use serde::Serialize;

use crate::diff::{Diff, Move, Upsert};
use crate::model::{MemberKey, SnapshotEntry, Status, TagSet};
use crate::requests::{phases, Part, PlannedMember, PlannedRows, Requests};

/// Members per batch upsert, and emails per side of a tag request (Mailchimp's limits).
pub const BATCH: usize = 500;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `POST /lists/{id}` with at most 500 members.
    Upsert {
        update_existing: bool,
        items: Vec<Upsert>,
    },
    /// `POST /lists/{id}/segments/{tag}` with at most 500 adds and 500 removes.
    Tag {
        tag: usize,
        add: Vec<(MemberKey, String)>,
        remove: Vec<(MemberKey, String)>,
    },
    /// `DELETE /lists/{id}/members/{hash}`.
    Archive { key: MemberKey, email: String },
    /// `PATCH /lists/{id}/members/{old hash}` with the new `email_address` and content.
    Move(Move),
}

impl Op {
    pub fn endpoint(&self) -> &'static str {
        match self {
            Op::Upsert { .. } => "POST /lists/{list_id}",
            Op::Tag { .. } => "POST /lists/{list_id}/segments/{segment_id}",
            Op::Archive { .. } => "DELETE /lists/{list_id}/members/{subscriber_hash}",
            Op::Move(_) => "PATCH /lists/{list_id}/members/{subscriber_hash}",
        }
    }

    /// Members this request carries.
    pub fn size(&self) -> usize {
        match self {
            Op::Upsert { items, .. } => items.len(),
            Op::Tag { add, remove, .. } => add.len() + remove.len(),
            Op::Archive { .. } | Op::Move(_) => 1,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Upserts, then tags, then removals; each phase's requests may run concurrently.
    pub phases: Vec<Vec<Op>>,
}

/// Counts a plan is summarised with (`segsync plan`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub creates: usize,
    pub updates: usize,
    /// Members moved to their profile's new address.
    pub moves: usize,
    pub tag_adds: usize,
    pub tag_removes: usize,
    pub archives: usize,
    pub unsubscribes: usize,
    pub requests: usize,
    pub requests_by_endpoint: Vec<(String, usize)>,
}

impl Plan {
    pub fn requests(&self) -> usize {
        self.phases.iter().map(Vec::len).sum()
    }

    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.phases.iter().flatten()
    }

    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary {
            requests: self.requests(),
            ..Default::default()
        };
        let mut by: Vec<(String, usize)> = Vec::new();
        for op in self.ops() {
            match op {
                Op::Upsert {
                    update_existing: false,
                    items,
                } => {
                    s.creates += items.len();
                    s.tag_adds += items.iter().map(|u| u.tags.len()).sum::<usize>();
                }
                Op::Upsert { items, .. } => {
                    for i in items {
                        s.tag_adds += i.tags.len();
                        if i.merge.is_some() {
                            s.updates += 1;
                        } else {
                            s.unsubscribes += 1;
                        }
                    }
                }
                Op::Tag { add, remove, .. } => {
                    s.tag_adds += add.len();
                    s.tag_removes += remove.len();
                }
                Op::Archive { .. } => s.archives += 1,
                Op::Move(_) => s.moves += 1,
            }
            match by.iter_mut().find(|(e, _)| e == op.endpoint()) {
                Some((_, n)) => *n += 1,
                None => by.push((op.endpoint().to_string(), 1)),
            }
        }
        s.requests_by_endpoint = by;
        s
    }
}

impl PlanSummary {
    /// The summary of a plan known by its counts (a streaming plan kept on disk): the same
    /// requests [`plan`] would make, chunk for chunk. `per_tag` holds each tag's adds and
    /// removes by tag batches; `item_tags` counts the tags upserts carry (new members'
    /// tags, existing members' gained ones: no request of their own).
    pub fn from_counts(
        moves: usize,
        creates: usize,
        updates: usize,
        unsubscribes: usize,
        per_tag: &[(usize, usize)],
        item_tags: usize,
        archives: usize,
    ) -> PlanSummary {
        let upserts =
            creates.div_ceil(BATCH) + updates.div_ceil(BATCH) + unsubscribes.div_ceil(BATCH);
        let tags: usize = per_tag
            .iter()
            .map(|(a, r)| (*a).max(*r).div_ceil(BATCH))
            .sum();
        let mut by = Vec::new();
        // In the order the phases send them, as Plan::summary lists them.
        if moves > 0 {
            by.push((
                "PATCH /lists/{list_id}/members/{subscriber_hash}".to_string(),
                moves,
            ));
        }
        if creates + updates > 0 {
            by.push((
                "POST /lists/{list_id}".to_string(),
                creates.div_ceil(BATCH) + updates.div_ceil(BATCH),
            ));
        }
        if tags > 0 {
            by.push((
                "POST /lists/{list_id}/segments/{segment_id}".to_string(),
                tags,
            ));
        }
        if unsubscribes > 0 {
            match by.iter_mut().find(|(e, _)| e == "POST /lists/{list_id}") {
                Some((_, n)) => *n += unsubscribes.div_ceil(BATCH),
                None => by.push((
                    "POST /lists/{list_id}".to_string(),
                    unsubscribes.div_ceil(BATCH),
                )),
            }
        }
        if archives > 0 {
            by.push((
                "DELETE /lists/{list_id}/members/{subscriber_hash}".to_string(),
                archives,
            ));
        }
        PlanSummary {
            creates,
            updates,
            moves,
            tag_adds: per_tag.iter().map(|(a, _)| a).sum::<usize>() + item_tags,
            tag_removes: per_tag.iter().map(|(_, r)| r).sum(),
            archives,
            unsubscribes,
            requests: moves + upserts + tags + archives,
            requests_by_endpoint: by,
        }
    }
}

/// A diff's rows as the grouping reads them; sequence numbers are positions, from 1.
struct DiffRows<'a>(&'a Diff);

/// The page of `rows` after sequence number `after`, numbered by position.
fn page<'a, T: 'a>(
    rows: impl Iterator<Item = (usize, &'a T)>,
    after: i64,
    limit: usize,
) -> impl Iterator<Item = (i64, &'a T)> {
    rows.map(|(i, r)| (i as i64 + 1, r))
        .filter(move |(seq, _)| *seq > after)
        .take(limit)
}

impl PlannedRows for DiffRows<'_> {
    type Error = Infallible;

    fn upserts(
        &mut self,
        part: Part,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Upsert)>, Infallible> {
        let list = match part {
            Part::Creates => &self.0.creates,
            Part::Updates => &self.0.updates,
            Part::Unsubscribes => &self.0.unsubscribes,
            Part::Tag(_) | Part::Archives | Part::Moves => return Ok(Vec::new()),
        };
        Ok(page(list.iter().enumerate(), after, limit)
            .map(|(seq, u)| (seq, u.clone()))
            .collect())
    }

    fn tags(
        &mut self,
        bit: usize,
        adding: bool,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PlannedMember>, Infallible> {
        let changes = self.0.tag_changes.iter().enumerate().filter(|(_, c)| {
            if adding {
                c.add.contains(bit)
            } else {
                c.remove.contains(bit)
            }
        });
        Ok(page(changes, after, limit)
            .map(|(seq, c)| (seq, c.key, c.email.clone()))
            .collect())
    }

    fn moves(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, Move)>, Infallible> {
        Ok(page(self.0.moves.iter().enumerate(), after, limit)
            .map(|(seq, m)| (seq, m.clone()))
            .collect())
    }

    fn archives(&mut self, after: i64, limit: usize) -> Result<Vec<PlannedMember>, Infallible> {
        Ok(page(self.0.archives.iter().enumerate(), after, limit)
            .map(|(seq, (k, e))| (seq, *k, e.clone()))
            .collect())
    }
}

/// Groups a diff into requests, phase by phase, with the same grouping the engine uses
/// over its staged rows ([`Requests`]).
pub fn plan(diff: Diff) -> Plan {
    let bits: Vec<usize> = diff
        .tag_changes
        .iter()
        .fold(TagSet::default(), |acc, c| acc.union(c.add).union(c.remove))
        .iter()
        .collect();
    let mut rows = DiffRows(&diff);
    let none = HashSet::new();
    let phases = phases(&bits).map(|parts| {
        let mut requests = Requests::new(parts);
        let mut ops = Vec::new();
        while let Ok(Some(op)) = requests.next(&mut rows, &none) {
            ops.push(op);
        }
        ops
    });
    Plan {
        phases: phases.into_iter().filter(|p| !p.is_empty()).collect(),
    }
}

/// What Mailchimp acknowledged about one member: what a run's checkpoints move the snapshot
/// forward with.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// Written (created when `created`) with this status and, if it carried content, this
    /// fingerprint.
    Upserted {
        key: MemberKey,
        email: String,
        status: Status,
        created: bool,
        fingerprint: Option<u64>,
        profiles: Option<String>,
    },
    /// Moved from address `from` to this one, keeping its status (as Mailchimp answered),
    /// tags and ownership; its content now has this fingerprint.
    Moved {
        from: MemberKey,
        key: MemberKey,
        email: String,
        status: Status,
        fingerprint: Option<u64>,
        profiles: Option<String>,
    },
    /// A create of this run found the member already there, made by a request of its own
    /// whose answer was lost: the export's own, until the update that follows says more.
    Replayed {
        key: MemberKey,
        email: String,
    },
    Tagged {
        key: MemberKey,
        email: String,
        bit: usize,
        added: bool,
    },
    Archived {
        key: MemberKey,
    },
    /// Permanently deleted in Mailchimp: out of the audience for good, unless the person
    /// signs up again (the audience would then report them).
    Forgotten {
        key: MemberKey,
        email: String,
    },
}

impl Fact {
    pub fn key(&self) -> MemberKey {
        match self {
            Fact::Upserted { key, .. }
            | Fact::Replayed { key, .. }
            | Fact::Tagged { key, .. }
            | Fact::Archived { key }
            | Fact::Forgotten { key, .. }
            | Fact::Moved { key, .. } => *key,
        }
    }

    /// Every member the fact touches: a move's old address too.
    pub fn keys(&self) -> impl Iterator<Item = MemberKey> {
        let from = match self {
            Fact::Moved { from, .. } => Some(*from),
            _ => None,
        };
        std::iter::once(self.key()).chain(from)
    }
}

/// The snapshot moves forward only for what Mailchimp acknowledged.
pub fn acknowledge_upsert(
    snapshot: &mut HashMap<MemberKey, SnapshotEntry>,
    item: &Upsert,
    status: Status,
    created: bool,
) {
    let e = snapshot.entry(item.key).or_insert_with(|| SnapshotEntry {
        email: item.email.clone(),
        fingerprint: None,
        tags: TagSet::default(),
        status,
        owned: false,
        profiles: None,
    });
    e.status = status;
    if item.fingerprint.is_some() {
        e.fingerprint = item.fingerprint;
    }
    if item.profiles.is_some() {
        e.profiles.clone_from(&item.profiles);
    }
    e.owned |= created;
}

/// A member moved from `from` to the address of `item`: the entry moves with it (tags and
/// ownership kept), with the status Mailchimp answered and the content sent. The caller
/// deletes the old entry from the store.
pub fn acknowledge_move(
    snapshot: &mut HashMap<MemberKey, SnapshotEntry>,
    from: MemberKey,
    item: &Upsert,
) {
    let mut e = snapshot.remove(&from).unwrap_or(SnapshotEntry {
        email: item.email.clone(),
        fingerprint: None,
        tags: TagSet::default(),
        status: item.status,
        owned: false,
        profiles: None,
    });
    e.email.clone_from(&item.email);
    e.status = item.status;
    e.fingerprint = item.fingerprint;
    e.profiles.clone_from(&item.profiles);
    snapshot.insert(item.key, e);
}

/// A tag added to (or removed from) a member. Tagging does not make a member the export's
/// own: only a member it created is ever archived or unsubscribed by it.
pub fn acknowledge_tag(
    snapshot: &mut HashMap<MemberKey, SnapshotEntry>,
    key: MemberKey,
    email: &str,
    tag: usize,
    added: bool,
    status: Status,
) {
    let e = snapshot.entry(key).or_insert_with(|| SnapshotEntry {
        email: email.to_string(),
        fingerprint: None,
        tags: TagSet::default(),
        status,
        owned: false,
        profiles: None,
    });
    if added {
        e.tags = e.tags.with(tag);
    } else {
        e.tags = e.tags.minus(TagSet::default().with(tag));
    }
}

pub fn acknowledge_archive(snapshot: &mut HashMap<MemberKey, SnapshotEntry>, key: MemberKey) {
    if let Some(e) = snapshot.get_mut(&key) {
        e.status = Status::Archived;
    }
}

/// A contact Mailchimp says was permanently deleted: recorded as out of the audience
/// (archived, as Mailchimp lists it to no one), without tags or delivered content, so that
/// later runs skip it instead of asking again, and send it afresh if the audience ever reports
/// it back.
pub fn acknowledge_forgotten(
    snapshot: &mut HashMap<MemberKey, SnapshotEntry>,
    key: MemberKey,
    email: &str,
) {
    let e = snapshot.entry(key).or_insert_with(|| SnapshotEntry {
        email: email.to_string(),
        fingerprint: None,
        tags: TagSet::default(),
        status: Status::Archived,
        owned: false,
        profiles: None,
    });
    e.status = Status::Archived;
    e.fingerprint = None;
    e.tags = TagSet::default();
}
