//! The plan: a diff grouped into Mailchimp requests, and how each acknowledged request moves
//! the snapshot forward. Pure: the executor sends the requests and calls back here.
//!
//! Phases run in order, each after the previous one finished: member upserts (creates with
//! `update_existing: false`, so a member that appeared meanwhile is reported instead of
//! overwritten, then updates carrying each member's own status), then tag membership, then
//! removals (archives and unsubscribes).

use std::collections::HashMap;

use serde::Serialize;

use crate::diff::{Diff, Upsert};
use crate::model::{MemberKey, SnapshotEntry, Status, TagSet};

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
}

impl Op {
    pub fn endpoint(&self) -> &'static str {
        match self {
            Op::Upsert { .. } => "POST /lists/{list_id}",
            Op::Tag { .. } => "POST /lists/{list_id}/segments/{segment_id}",
            Op::Archive { .. } => "DELETE /lists/{list_id}/members/{subscriber_hash}",
        }
    }

    /// Members this request carries.
    pub fn size(&self) -> usize {
        match self {
            Op::Upsert { items, .. } => items.len(),
            Op::Tag { add, remove, .. } => add.len() + remove.len(),
            Op::Archive { .. } => 1,
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
                } => s.creates += items.len(),
                Op::Upsert { items, .. } => {
                    for i in items {
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
    /// removes.
    pub fn from_counts(
        creates: usize,
        updates: usize,
        unsubscribes: usize,
        per_tag: &[(usize, usize)],
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
            tag_adds: per_tag.iter().map(|(a, _)| a).sum(),
            tag_removes: per_tag.iter().map(|(_, r)| r).sum(),
            archives,
            unsubscribes,
            requests: upserts + tags + archives,
            requests_by_endpoint: by,
        }
    }
}

fn upserts(items: Vec<Upsert>, update_existing: bool) -> Vec<Op> {
    let mut ops = Vec::with_capacity(items.len().div_ceil(BATCH));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        ops.push(Op::Upsert {
            update_existing,
            items: items.by_ref().take(BATCH).collect(),
        });
    }
    ops
}

/// Groups a diff into requests, consuming it (members are moved, not copied).
pub fn plan(diff: Diff) -> Plan {
    let mut first = upserts(diff.creates, false);
    first.extend(upserts(diff.updates, true));

    let mut tags = Vec::new();
    let all: TagSet = diff
        .tag_changes
        .iter()
        .fold(TagSet::default(), |acc, c| acc.union(c.add).union(c.remove));
    for tag in all.iter() {
        let add: Vec<(MemberKey, String)> = diff
            .tag_changes
            .iter()
            .filter(|c| c.add.contains(tag))
            .map(|c| (c.key, c.email.clone()))
            .collect();
        let remove: Vec<(MemberKey, String)> = diff
            .tag_changes
            .iter()
            .filter(|c| c.remove.contains(tag))
            .map(|c| (c.key, c.email.clone()))
            .collect();
        let chunks = add.len().max(remove.len()).div_ceil(BATCH);
        let (mut add, mut remove) = (add.into_iter(), remove.into_iter());
        for _ in 0..chunks {
            tags.push(Op::Tag {
                tag,
                add: add.by_ref().take(BATCH).collect(),
                remove: remove.by_ref().take(BATCH).collect(),
            });
        }
    }

    let mut last = upserts(diff.unsubscribes, true);
    last.extend(
        diff.archives
            .into_iter()
            .map(|(key, email)| Op::Archive { key, email }),
    );

    Plan {
        phases: vec![first, tags, last]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect(),
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
    });
    e.status = status;
    if item.fingerprint.is_some() {
        e.fingerprint = item.fingerprint;
    }
    e.owned |= created;
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
    });
    e.status = Status::Archived;
    e.fingerprint = None;
    e.tags = TagSet::default();
}
