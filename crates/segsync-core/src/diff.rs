//! The diff: what the export wants, against what it delivered before and what the audience
//! says now. Pure: no I/O, no clock.
//!
//! Rules (design.md section 3): new members get the export's `status_if_new`; existing
//! members keep their status (so unsubscribed, cleaned and archived contacts are never
//! resubscribed); unchanged members cost nothing; a member that leaves every segment loses
//! the tags this export put on it, and is archived or unsubscribed (by the removal policy)
//! only if this export added it: a contact that came from elsewhere (a signup form, another
//! tool) and was merely tagged is never removed.

use std::collections::HashMap;

use crate::model::{
    fingerprint, Desired, MemberKey, MergeValues, NewStatus, RemovalPolicy, SnapshotEntry, Status,
    TagSet,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DiffOptions {
    pub status_if_new: NewStatus,
    pub removal: RemovalPolicy,
}

/// One member to write through a batch upsert.
#[derive(Clone, Debug, PartialEq)]
pub struct Upsert {
    pub key: MemberKey,
    pub email: String,
    /// The status the item carries: `status_if_new` for a new member, the member's own
    /// status otherwise (unsubscribed for the "unsubscribe" removal).
    pub status: Status,
    /// The merge values to send; `None` for a status-only write.
    pub merge: Option<MergeValues>,
    pub fingerprint: Option<u64>,
    /// The keys of the member's profiles ([`SnapshotEntry::profiles`]), when known.
    pub profiles: Option<String>,
    /// The export's tags the item carries: a new member's tags, in its create; an existing
    /// member's tags it gains, in its update (Mailchimp adds an item's tags and leaves the
    /// member's others alone: `sync_tags` is never sent). The answer says whether they took;
    /// those that did not are added by tag batches. Removals always go by tag batches.
    pub tags: TagSet,
}

/// A member moved to a new address (`PATCH` of the old member with the new
/// `email_address`): it keeps its status, tags and history.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub from: MemberKey,
    pub from_email: String,
    /// The member at its new address: its content, and the status it keeps.
    pub to: Upsert,
}

/// The export's tags to add to and remove from one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagChange {
    pub key: MemberKey,
    pub email: String,
    pub add: TagSet,
    pub remove: TagSet,
}

/// A member left alone, and why (reported, not an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub key: MemberKey,
    pub email: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Members not in the audience: created with `status_if_new`.
    pub creates: Vec<Upsert>,
    /// Members in the audience whose content changed (or was never sent by this export).
    pub updates: Vec<Upsert>,
    /// Members moved to their profile's new address.
    pub moves: Vec<Move>,
    pub tag_changes: Vec<TagChange>,
    /// Members this export added that left every segment, to archive.
    pub archives: Vec<(MemberKey, String)>,
    /// Members this export added that left every segment, to unsubscribe (status-only
    /// upserts).
    pub unsubscribes: Vec<Upsert>,
    pub skipped: Vec<Skip>,
    /// Desired members that need no write at all.
    pub unchanged: u64,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.updates.is_empty()
            && self.moves.is_empty()
            && self.tag_changes.is_empty()
            && self.archives.is_empty()
            && self.unsubscribes.is_empty()
    }
}

/// What the export wants for one member, as the diff needs it (the merge values themselves
/// stay with the caller: a streaming caller keeps them on disk).
#[derive(Clone, Copy, Debug)]
pub struct Want<'a> {
    pub email: &'a str,
    /// [`fingerprint`] of the member's merge values.
    pub fingerprint: u64,
    pub tags: TagSet,
}

/// Receives the diff's decisions, one member at a time, in key order.
pub trait DiffSink {
    /// Write the member's content (`create`: a new member with `status`; otherwise an
    /// existing one keeping `status`), carrying the tags `tags` ([`Upsert::tags`]).
    fn upsert(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        status: Status,
        create: bool,
        tags: TagSet,
    );
    /// Moves the member `from` (as the export knew it) to `key`, the new address `want`
    /// describes, keeping its status.
    fn move_member(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        from: MemberKey,
        entry: &SnapshotEntry,
    );
    /// A status-only write that unsubscribes a member this export added.
    fn unsubscribe(&mut self, key: MemberKey, email: &str);
    fn tags(&mut self, key: MemberKey, email: &str, add: TagSet, remove: TagSet);
    fn archive(&mut self, key: MemberKey, email: &str);
    fn skip(&mut self, key: MemberKey, email: &str, reason: String);
    /// A desired member that needs no write.
    fn unchanged(&mut self, key: MemberKey);
}

/// Decides the writes for one member: what the export wants (`None`: it left every
/// segment), what the export delivered before, and the status the audience reported (which
/// wins over the snapshot's). Every rule of the diff lives here.
pub fn decide(
    key: MemberKey,
    want: Option<&Want<'_>>,
    entry: Option<&SnapshotEntry>,
    audience: Option<Status>,
    opts: DiffOptions,
    sink: &mut impl DiffSink,
) {
    let status = audience.or_else(|| entry.map(|e| e.status));
    let had_tags = entry.map_or(TagSet::default(), |e| e.tags);
    if let Some(want) = want {
        match status {
            // A new member carries its tags in the create ([`Upsert::tags`]).
            None => sink.upsert(key, want, opts.status_if_new.status(), true, want.tags),
            Some(Status::Archived) => sink.skip(
                key,
                want.email,
                "archived in Mailchimp: segsync does not bring archived contacts back (unarchive them in Mailchimp to include them)".into(),
            ),
            Some(status) => {
                let content_changed = entry.and_then(|e| e.fingerprint) != Some(want.fingerprint);
                let (add, remove) = (want.tags.minus(had_tags), had_tags.minus(want.tags));
                if content_changed {
                    // The update carries the tags gained; removals go by tag batches.
                    sink.upsert(key, want, status, false, add);
                    if !remove.is_empty() {
                        sink.tags(key, want.email, TagSet::default(), remove);
                    }
                } else if !add.is_empty() || !remove.is_empty() {
                    sink.tags(key, want.email, add, remove);
                } else {
                    sink.unchanged(key);
                }
            }
        }
        return;
    }
    let Some(entry) = entry else { return };
    if !entry.owned && entry.tags.is_empty() {
        return;
    }
    let status = status.unwrap_or(entry.status);
    if !entry.tags.is_empty() {
        sink.tags(key, &entry.email, TagSet::default(), entry.tags);
    }
    // Only a member this export added is ever removed from the audience.
    let removal = if entry.owned {
        opts.removal
    } else {
        RemovalPolicy::Untag
    };
    match removal {
        RemovalPolicy::Untag => {}
        RemovalPolicy::Archive => match status {
            Status::Subscribed | Status::Unsubscribed | Status::Transactional => {
                sink.archive(key, &entry.email)
            }
            Status::Archived => {}
            Status::Pending | Status::Cleaned => {
                if !entry.tags.is_empty() {
                    sink.skip(
                        key,
                        &entry.email,
                        format!("left every segment but Mailchimp cannot archive a {status} contact: untagged only"),
                    );
                }
            }
        },
        RemovalPolicy::Unsubscribe => {
            if matches!(status, Status::Subscribed | Status::Pending) {
                sink.unsubscribe(key, &entry.email);
            }
        }
    }
}

/// The writes for a new address `key` that takes over the member `from` (see
/// [`moves`](crate::moves)): the move, then the tags its profiles want now, from the tags
/// the member carried.
pub fn decide_move(
    key: MemberKey,
    want: &Want<'_>,
    from: MemberKey,
    entry: &SnapshotEntry,
    sink: &mut impl DiffSink,
) {
    sink.move_member(key, want, from, entry);
    let (add, remove) = (want.tags.minus(entry.tags), entry.tags.minus(want.tags));
    if !add.is_empty() || !remove.is_empty() {
        sink.tags(key, want.email, add, remove);
    }
}

/// Builds a [`Diff`] in memory.
struct Collect<'a> {
    desired: &'a HashMap<MemberKey, Desired>,
    d: Diff,
}

impl DiffSink for Collect<'_> {
    fn upsert(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        status: Status,
        create: bool,
        tags: TagSet,
    ) {
        let u = Upsert {
            key,
            email: want.email.to_string(),
            status,
            merge: Some(self.desired[&key].merge.clone()),
            fingerprint: Some(want.fingerprint),
            profiles: None,
            tags,
        };
        if create {
            self.d.creates.push(u)
        } else {
            self.d.updates.push(u)
        }
    }
    fn unsubscribe(&mut self, key: MemberKey, email: &str) {
        self.d.unsubscribes.push(Upsert {
            key,
            email: email.to_string(),
            status: Status::Unsubscribed,
            merge: None,
            fingerprint: None,
            profiles: None,
            tags: TagSet::default(),
        });
    }
    fn move_member(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        from: MemberKey,
        entry: &SnapshotEntry,
    ) {
        self.d.moves.push(Move {
            from,
            from_email: entry.email.clone(),
            to: Upsert {
                key,
                email: want.email.to_string(),
                status: entry.status,
                merge: Some(self.desired[&key].merge.clone()),
                fingerprint: Some(want.fingerprint),
                profiles: None,
                tags: TagSet::default(),
            },
        });
    }
    fn tags(&mut self, key: MemberKey, email: &str, add: TagSet, remove: TagSet) {
        self.d.tag_changes.push(TagChange {
            key,
            email: email.to_string(),
            add,
            remove,
        });
    }
    fn archive(&mut self, key: MemberKey, email: &str) {
        self.d.archives.push((key, email.to_string()));
    }
    fn skip(&mut self, key: MemberKey, email: &str, reason: String) {
        self.d.skipped.push(Skip {
            key,
            email: email.to_string(),
            reason,
        });
    }
    fn unchanged(&mut self, _: MemberKey) {
        self.d.unchanged += 1;
    }
}

/// Computes the writes that bring the audience to `desired`, in memory: [`decide`] for every
/// member the export wants or delivered, in key order (so plans are the same from run to
/// run). A streaming caller calls [`decide`] itself over sorted sources.
///
/// `audience` holds statuses Mailchimp reported for members the snapshot may not know, or
/// knows with an older status; it wins over the snapshot's status.
pub fn diff(
    desired: &HashMap<MemberKey, Desired>,
    snapshot: &HashMap<MemberKey, SnapshotEntry>,
    audience: &HashMap<MemberKey, Status>,
    opts: DiffOptions,
) -> Diff {
    let mut keys: Vec<MemberKey> = desired
        .keys()
        .chain(snapshot.keys().filter(|k| !desired.contains_key(k)))
        .copied()
        .collect();
    keys.sort_unstable();
    let mut sink = Collect {
        desired,
        d: Diff::default(),
    };
    for key in keys {
        let want = desired.get(&key).map(|w| Want {
            email: &w.email,
            fingerprint: fingerprint(&w.merge),
            tags: w.tags,
        });
        decide(
            key,
            want.as_ref(),
            snapshot.get(&key),
            audience.get(&key).copied(),
            opts,
            &mut sink,
        );
    }
    sink.d
}
