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
            && self.tag_changes.is_empty()
            && self.archives.is_empty()
            && self.unsubscribes.is_empty()
    }
}

/// Computes the writes that bring the audience to `desired`.
///
/// `audience` holds statuses Mailchimp reported for members the snapshot may not know, or
/// knows with an older status; it wins over the snapshot's status.
pub fn diff(
    desired: &HashMap<MemberKey, Desired>,
    snapshot: &HashMap<MemberKey, SnapshotEntry>,
    audience: &HashMap<MemberKey, Status>,
    opts: DiffOptions,
) -> Diff {
    let mut d = Diff::default();
    let status_of = |k: &MemberKey| {
        audience
            .get(k)
            .copied()
            .or_else(|| snapshot.get(k).map(|e| e.status))
    };

    // Sorted, so that plans (and their requests) are the same from run to run.
    let mut keys: Vec<&MemberKey> = desired.keys().collect();
    keys.sort();
    for key in keys {
        let want = &desired[key];
        let fp = fingerprint(&want.merge);
        let entry = snapshot.get(key);
        let had_tags = entry.map_or(TagSet::default(), |e| e.tags);
        match status_of(key) {
            None => {
                d.creates.push(Upsert {
                    key: *key,
                    email: want.email.clone(),
                    status: opts.status_if_new.status(),
                    merge: Some(want.merge.clone()),
                    fingerprint: Some(fp),
                });
                if !want.tags.is_empty() {
                    d.tag_changes.push(TagChange { key: *key, email: want.email.clone(), add: want.tags, remove: TagSet::default() });
                }
            }
            Some(Status::Archived) => d.skipped.push(Skip {
                key: *key,
                email: want.email.clone(),
                reason: "archived in Mailchimp: segsync does not bring archived contacts back (unarchive them in Mailchimp to include them)".into(),
            }),
            Some(status) => {
                let content_changed = entry.and_then(|e| e.fingerprint) != Some(fp);
                if content_changed {
                    d.updates.push(Upsert {
                        key: *key,
                        email: want.email.clone(),
                        status,
                        merge: Some(want.merge.clone()),
                        fingerprint: Some(fp),
                    });
                }
                let (add, remove) = (want.tags.minus(had_tags), had_tags.minus(want.tags));
                if !add.is_empty() || !remove.is_empty() {
                    d.tag_changes.push(TagChange { key: *key, email: want.email.clone(), add, remove });
                } else if !content_changed {
                    d.unchanged += 1;
                }
            }
        }
    }

    let mut gone: Vec<(&MemberKey, &SnapshotEntry)> = snapshot
        .iter()
        .filter(|(k, e)| (e.owned || !e.tags.is_empty()) && !desired.contains_key(k))
        .collect();
    gone.sort_by_key(|(k, _)| **k);
    for (key, entry) in gone {
        let status = status_of(key).unwrap_or(entry.status);
        if !entry.tags.is_empty() {
            d.tag_changes.push(TagChange {
                key: *key,
                email: entry.email.clone(),
                add: TagSet::default(),
                remove: entry.tags,
            });
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
                    d.archives.push((*key, entry.email.clone()))
                }
                Status::Archived => {}
                Status::Pending | Status::Cleaned => {
                    if !entry.tags.is_empty() {
                        d.skipped.push(Skip {
                            key: *key,
                            email: entry.email.clone(),
                            reason: format!("left every segment but Mailchimp cannot archive a {status} contact: untagged only"),
                        });
                    }
                }
            },
            RemovalPolicy::Unsubscribe => {
                if matches!(status, Status::Subscribed | Status::Pending) {
                    d.unsubscribes.push(Upsert {
                        key: *key,
                        email: entry.email.clone(),
                        status: Status::Unsubscribed,
                        merge: None,
                        fingerprint: None,
                    });
                }
            }
        }
    }
    d
}
