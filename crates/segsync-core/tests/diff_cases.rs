//! Case tables for the diff. The property test shows that applying a plan reaches the desired
//! state; these tables pin each rule of [`decide`] down to the exact decisions it makes, one
//! named row per rule, so a change of rule shows as the rows it breaks (all of them at once).
//!
//! - `decide_cases`: one member at a time (want, snapshot entry, audience status, options),
//!   the decisions logged through a [`DiffSink`] as readable values.
//! - `diff_cases`: [`diff`] in memory over several members: every list in subscriber-hash
//!   order, whatever order the maps hold them in, and `unchanged` counting exactly the desired
//!   members that need no write.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use segsync_core::*;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Tags, by name.

/// The export's tag list: bit `i` of a [`TagSet`] is `TAG_NAMES[i]`.
const TAG_NAMES: [&str; 3] = ["vip", "churn-risk", "newsletter"];

/// A [`TagSet`] that prints as the names of its tags.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tags(u64);

const NO_TAGS: Tags = Tags(0);
const VIP: Tags = Tags(1 << 0);
const CHURN: Tags = Tags(1 << 1);
const NEWS: Tags = Tags(1 << 2);

impl Tags {
    const fn and(self, other: Tags) -> Tags {
        Tags(self.0 | other.0)
    }
    fn set(self) -> TagSet {
        TagSet(self.0)
    }
}

impl From<TagSet> for Tags {
    fn from(t: TagSet) -> Tags {
        Tags(t.0)
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = TagSet(self.0)
            .iter()
            .map(|i| TAG_NAMES.get(i).copied().unwrap_or("?"))
            .collect();
        write!(f, "{{{}}}", names.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Options.

const fn opts(status_if_new: NewStatus, removal: RemovalPolicy) -> DiffOptions {
    DiffOptions {
        status_if_new,
        removal,
    }
}

/// Subscribed if new, untag on removal (the defaults).
const UNTAG: DiffOptions = opts(NewStatus::Subscribed, RemovalPolicy::Untag);
const ARCHIVE: DiffOptions = opts(NewStatus::Subscribed, RemovalPolicy::Archive);
const UNSUBSCRIBE: DiffOptions = opts(NewStatus::Subscribed, RemovalPolicy::Unsubscribe);

// ---------------------------------------------------------------------------------------------
// decide, one member at a time.

/// The member of every `decide` row. The want and the snapshot entry spell its address
/// differently (same subscriber hash), so the log shows which of the two each call used.
const WANT_EMAIL: &str = "ana@posta.ro";
const ENTRY_EMAIL: &str = "Ana@Posta.ro";

/// Fingerprints of merge values: what was delivered before, and something else.
const FP_OLD: u64 = 0x01d0_0000_0000_0001;
const FP_NEW: u64 = 0x0e30_0000_0000_0002;

const ARCHIVED_REASON: &str = "archived in Mailchimp: segsync does not bring archived contacts back (unarchive them in Mailchimp to include them)";
const PENDING_REASON: &str =
    "left every segment but Mailchimp cannot archive a pending contact: untagged only";
const CLEANED_REASON: &str =
    "left every segment but Mailchimp cannot archive a cleaned contact: untagged only";

/// One decision, as a [`DiffSink`] receives it (without the key and address, checked apart).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    /// `upsert(.., create: true)`: a new member with this status, created with its tags.
    Create {
        status: Status,
        fingerprint: u64,
        tags: Tags,
    },
    /// `upsert(.., create: false)`: an existing member's content, keeping this status,
    /// with the tags it gains.
    Update {
        status: Status,
        fingerprint: u64,
        tags: Tags,
    },
    Tags {
        add: Tags,
        remove: Tags,
    },
    Archive,
    Unsubscribe,
    Skip(Cow<'static, str>),
    Unchanged,
}

const fn create(status: Status, tags: Tags) -> Call {
    Call::Create {
        status,
        fingerprint: FP_NEW,
        tags,
    }
}
const fn update(status: Status) -> Call {
    update_adding(status, NO_TAGS)
}
const fn update_adding(status: Status, tags: Tags) -> Call {
    Call::Update {
        status,
        fingerprint: FP_NEW,
        tags,
    }
}
const fn add(tags: Tags) -> Call {
    Call::Tags {
        add: tags,
        remove: NO_TAGS,
    }
}
const fn remove(tags: Tags) -> Call {
    Call::Tags {
        add: NO_TAGS,
        remove: tags,
    }
}
const fn skip(reason: &'static str) -> Call {
    Call::Skip(Cow::Borrowed(reason))
}

/// What the export wants for the member.
#[derive(Clone, Copy)]
struct W {
    tags: Tags,
    fingerprint: u64,
}

const fn want(tags: Tags, fingerprint: u64) -> Option<W> {
    Some(W { tags, fingerprint })
}

/// What the snapshot says the export delivered.
#[derive(Clone, Copy)]
struct E {
    status: Status,
    tags: Tags,
    fingerprint: Option<u64>,
    owned: bool,
}

/// An entry this export created (`owned`).
const fn owned(status: Status, tags: Tags, fingerprint: Option<u64>) -> Option<E> {
    Some(E {
        status,
        tags,
        fingerprint,
        owned: true,
    })
}

/// An entry for a member that came from elsewhere and that this export only tagged or updated.
const fn foreign(status: Status, tags: Tags, fingerprint: Option<u64>) -> Option<E> {
    Some(E {
        status,
        tags,
        fingerprint,
        owned: false,
    })
}

struct Case {
    name: &'static str,
    want: Option<W>,
    entry: Option<E>,
    audience: Option<Status>,
    opts: DiffOptions,
    expect: &'static [Call],
}

use Status::{Archived, Cleaned, Pending, Subscribed, Transactional, Unsubscribed};

const CASES: &[Case] = &[
    // --- A new member: status_if_new and its tags. -------------------------------------------
    Case {
        name: "new member: created subscribed (status_if_new), its tags in the create",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: None,
        audience: None,
        opts: UNTAG,
        expect: &[create(Subscribed, VIP.and(NEWS))],
    },
    Case {
        name: "new member: created pending when status_if_new is pending",
        want: want(VIP, FP_NEW),
        entry: None,
        audience: None,
        opts: opts(NewStatus::Pending, RemovalPolicy::Untag),
        expect: &[create(Pending, VIP)],
    },
    Case {
        name: "new member: created transactional when status_if_new is transactional",
        want: want(VIP, FP_NEW),
        entry: None,
        audience: None,
        opts: opts(NewStatus::Transactional, RemovalPolicy::Untag),
        expect: &[create(Transactional, VIP)],
    },
    Case {
        name: "new member without tags: created, no tag call",
        want: want(NO_TAGS, FP_NEW),
        entry: None,
        audience: None,
        opts: UNTAG,
        expect: &[create(Subscribed, NO_TAGS)],
    },
    Case {
        name: "new member: the removal policy plays no part",
        want: want(CHURN, FP_NEW),
        entry: None,
        audience: None,
        opts: opts(NewStatus::Pending, RemovalPolicy::Archive),
        expect: &[create(Pending, CHURN)],
    },
    // --- Archived in Mailchimp: skipped with its reason. -------------------------------------
    Case {
        name: "archived in Mailchimp (audience): skipped with its reason, nothing written",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Archived),
        opts: UNTAG,
        expect: &[skip(ARCHIVED_REASON)],
    },
    Case {
        name: "archived per the snapshot, audience silent: skipped",
        want: want(VIP, FP_NEW),
        entry: owned(Archived, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[skip(ARCHIVED_REASON)],
    },
    Case {
        name: "archived in Mailchimp, unknown to the snapshot: skipped, not created",
        want: want(VIP, FP_NEW),
        entry: None,
        audience: Some(Archived),
        opts: UNTAG,
        expect: &[skip(ARCHIVED_REASON)],
    },
    Case {
        name: "archived with content and tags unchanged: skipped, not counted unchanged",
        want: want(VIP, FP_NEW),
        entry: owned(Archived, VIP, Some(FP_NEW)),
        audience: None,
        opts: UNTAG,
        expect: &[skip(ARCHIVED_REASON)],
    },
    // --- An existing member keeps its status: never resubscribed. ----------------------------
    Case {
        name: "subscribed, content changed: updated, stays subscribed",
        want: want(VIP, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[update(Subscribed)],
    },
    Case {
        name: "unsubscribed in Mailchimp, content changed: updated as unsubscribed, not resubscribed",
        want: want(VIP, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Unsubscribed),
        opts: UNTAG,
        expect: &[update(Unsubscribed)],
    },
    Case {
        name: "cleaned in Mailchimp, content changed: updated as cleaned, not resubscribed",
        want: want(VIP, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Cleaned),
        opts: UNTAG,
        expect: &[update(Cleaned)],
    },
    Case {
        name: "unsubscribed per the snapshot, audience silent: updated as unsubscribed",
        want: want(VIP, FP_NEW),
        entry: owned(Unsubscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[update(Unsubscribed)],
    },
    Case {
        name: "pending, content changed: updated as pending",
        want: want(VIP, FP_NEW),
        entry: owned(Pending, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[update(Pending)],
    },
    Case {
        name: "transactional, content changed: updated as transactional",
        want: want(VIP, FP_NEW),
        entry: owned(Transactional, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[update(Transactional)],
    },
    Case {
        name: "existing member: status_if_new does not apply",
        want: want(VIP, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: opts(NewStatus::Pending, RemovalPolicy::Untag),
        expect: &[update(Subscribed)],
    },
    Case {
        name: "audience wins: resubscribed in Mailchimp since the snapshot said unsubscribed",
        want: want(VIP, FP_NEW),
        entry: owned(Unsubscribed, VIP, Some(FP_OLD)),
        audience: Some(Subscribed),
        opts: UNTAG,
        expect: &[update(Subscribed)],
    },
    Case {
        name: "audience wins: unarchived in Mailchimp since the snapshot said archived",
        want: want(VIP, FP_NEW),
        entry: owned(Archived, VIP, Some(FP_OLD)),
        audience: Some(Subscribed),
        opts: UNTAG,
        expect: &[update(Subscribed)],
    },
    Case {
        name: "in the audience, unknown to the snapshot: updated with its status, carrying all tags",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: None,
        audience: Some(Pending),
        opts: UNTAG,
        expect: &[update_adding(Pending, VIP.and(NEWS))],
    },
    Case {
        name: "unsubscribed in the audience, unknown to the snapshot, no tags: update only",
        want: want(NO_TAGS, FP_NEW),
        entry: None,
        audience: Some(Unsubscribed),
        opts: UNTAG,
        expect: &[update(Unsubscribed)],
    },
    Case {
        name: "content never sent by this export (only tagged): updated",
        want: want(VIP, FP_NEW),
        entry: foreign(Subscribed, VIP, None),
        audience: None,
        opts: UNTAG,
        expect: &[update(Subscribed)],
    },
    // --- Unchanged, and tag changes. --------------------------------------------------------
    Case {
        name: "content and tags unchanged: unchanged, nothing written",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: owned(Subscribed, VIP.and(NEWS), Some(FP_NEW)),
        audience: Some(Subscribed),
        opts: UNTAG,
        expect: &[Call::Unchanged],
    },
    Case {
        name: "content unchanged, no tags either side: unchanged",
        want: want(NO_TAGS, FP_NEW),
        entry: foreign(Subscribed, NO_TAGS, Some(FP_NEW)),
        audience: None,
        opts: UNTAG,
        expect: &[Call::Unchanged],
    },
    Case {
        name: "unsubscribed and unchanged: unchanged (no write to keep it unsubscribed)",
        want: want(VIP, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_NEW)),
        audience: Some(Unsubscribed),
        opts: UNTAG,
        expect: &[Call::Unchanged],
    },
    Case {
        name: "cleaned and unchanged: unchanged",
        want: want(VIP, FP_NEW),
        entry: owned(Cleaned, VIP, Some(FP_NEW)),
        audience: None,
        opts: UNTAG,
        expect: &[Call::Unchanged],
    },
    Case {
        name: "tag added, content unchanged: tags only, not counted unchanged",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_NEW)),
        audience: None,
        opts: UNTAG,
        expect: &[add(NEWS)],
    },
    Case {
        name: "tag removed, content unchanged: tags only",
        want: want(VIP, FP_NEW),
        entry: owned(Subscribed, VIP.and(CHURN), Some(FP_NEW)),
        audience: None,
        opts: UNTAG,
        expect: &[remove(CHURN)],
    },
    Case {
        name: "tags added and removed in one call",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: owned(Subscribed, VIP.and(CHURN), Some(FP_NEW)),
        audience: None,
        opts: UNTAG,
        expect: &[Call::Tags {
            add: NEWS,
            remove: CHURN,
        }],
    },
    Case {
        name: "content and tags changed: the update carries the tag gained, the removal by tag batch",
        want: want(NEWS, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[update_adding(Subscribed, NEWS), remove(VIP)],
    },
    Case {
        name: "unsubscribed, content and tags changed: update keeps unsubscribed, carries the tag gained",
        want: want(VIP.and(NEWS), FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Unsubscribed),
        opts: UNTAG,
        expect: &[update_adding(Unsubscribed, NEWS)],
    },
    Case {
        name: "still wanted with no tags left: untagged, the removal policy plays no part",
        want: want(NO_TAGS, FP_NEW),
        entry: owned(Subscribed, VIP, Some(FP_NEW)),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP)],
    },
    // --- Left every segment: nothing known, or not owned. -----------------------------------
    Case {
        name: "left, nothing known: nothing",
        want: None,
        entry: None,
        audience: None,
        opts: ARCHIVE,
        expect: &[],
    },
    Case {
        name: "left, known only to the audience: nothing",
        want: None,
        entry: None,
        audience: Some(Subscribed),
        opts: ARCHIVE,
        expect: &[],
    },
    Case {
        name: "left, not owned, no tags, archive policy: nothing",
        want: None,
        entry: foreign(Subscribed, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[],
    },
    Case {
        name: "left, not owned, no tags, unsubscribe policy: nothing",
        want: None,
        entry: foreign(Subscribed, NO_TAGS, Some(FP_OLD)),
        audience: Some(Subscribed),
        opts: UNSUBSCRIBE,
        expect: &[],
    },
    Case {
        name: "left, not owned, tagged, archive policy: untagged only, never archived",
        want: None,
        entry: foreign(Subscribed, VIP.and(NEWS), None),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP.and(NEWS))],
    },
    Case {
        name: "left, not owned, tagged, unsubscribe policy: untagged only, never unsubscribed",
        want: None,
        entry: foreign(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Subscribed),
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, not owned, pending and tagged, archive policy: untagged, no skip reason",
        want: None,
        entry: foreign(Pending, VIP, None),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP)],
    },
    // --- Left every segment: untag policy. --------------------------------------------------
    Case {
        name: "left, owned, untag policy: untagged, stays in the audience",
        want: None,
        entry: owned(Subscribed, VIP.and(CHURN), Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[remove(VIP.and(CHURN))],
    },
    Case {
        name: "left, owned, untag policy, no tags: nothing",
        want: None,
        entry: owned(Subscribed, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: UNTAG,
        expect: &[],
    },
    // --- Left every segment: archive policy, owned. -----------------------------------------
    Case {
        name: "left, owned subscribed, archive policy: untagged, then archived",
        want: None,
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP), Call::Archive],
    },
    Case {
        name: "left, owned subscribed without tags, archive policy: archived",
        want: None,
        entry: owned(Subscribed, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[Call::Archive],
    },
    Case {
        name: "left, owned unsubscribed, archive policy: untagged, then archived",
        want: None,
        entry: owned(Unsubscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP), Call::Archive],
    },
    Case {
        name: "left, owned transactional, archive policy: untagged, then archived",
        want: None,
        entry: owned(Transactional, VIP, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP), Call::Archive],
    },
    Case {
        name: "left, owned, already archived, archive policy: untagged only, not archived again",
        want: None,
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Archived),
        opts: ARCHIVE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, owned, already archived without tags, archive policy: nothing",
        want: None,
        entry: owned(Archived, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[],
    },
    Case {
        name: "left, owned pending, archive policy: untagged, archive skipped with its reason",
        want: None,
        entry: owned(Pending, VIP, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[remove(VIP), skip(PENDING_REASON)],
    },
    Case {
        name: "left, owned cleaned, archive policy: untagged, archive skipped with its reason",
        want: None,
        entry: owned(Subscribed, NEWS, Some(FP_OLD)),
        audience: Some(Cleaned),
        opts: ARCHIVE,
        expect: &[remove(NEWS), skip(CLEANED_REASON)],
    },
    Case {
        name: "left, owned pending without tags, archive policy: nothing, no reason",
        want: None,
        entry: owned(Pending, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: ARCHIVE,
        expect: &[],
    },
    Case {
        name: "left, owned cleaned without tags, archive policy: nothing, no reason",
        want: None,
        entry: owned(Cleaned, NO_TAGS, Some(FP_OLD)),
        audience: Some(Cleaned),
        opts: ARCHIVE,
        expect: &[],
    },
    // --- Left every segment: unsubscribe policy, owned. -------------------------------------
    Case {
        name: "left, owned subscribed, unsubscribe policy: untagged, then unsubscribed",
        want: None,
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP), Call::Unsubscribe],
    },
    Case {
        name: "left, owned pending, unsubscribe policy: untagged, then unsubscribed",
        want: None,
        entry: owned(Pending, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP), Call::Unsubscribe],
    },
    Case {
        name: "left, owned pending without tags, unsubscribe policy: unsubscribed",
        want: None,
        entry: owned(Pending, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[Call::Unsubscribe],
    },
    Case {
        name: "left, owned unsubscribed, unsubscribe policy: untagged only",
        want: None,
        entry: owned(Unsubscribed, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, owned cleaned, unsubscribe policy: untagged only",
        want: None,
        entry: owned(Cleaned, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, owned transactional, unsubscribe policy: untagged only",
        want: None,
        entry: owned(Transactional, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, owned archived, unsubscribe policy: untagged only",
        want: None,
        entry: owned(Archived, VIP, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, owned unsubscribed without tags, unsubscribe policy: nothing",
        want: None,
        entry: owned(Unsubscribed, NO_TAGS, Some(FP_OLD)),
        audience: None,
        opts: UNSUBSCRIBE,
        expect: &[],
    },
    // --- Left every segment: the audience's status wins over the snapshot's. ----------------
    Case {
        name: "left, audience pending over snapshot subscribed, archive policy: archive skipped",
        want: None,
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Pending),
        opts: ARCHIVE,
        expect: &[remove(VIP), skip(PENDING_REASON)],
    },
    Case {
        name: "left, audience subscribed over snapshot cleaned, archive policy: archived",
        want: None,
        entry: owned(Cleaned, VIP, Some(FP_OLD)),
        audience: Some(Subscribed),
        opts: ARCHIVE,
        expect: &[remove(VIP), Call::Archive],
    },
    Case {
        name: "left, audience unsubscribed over snapshot subscribed, unsubscribe policy: untagged only",
        want: None,
        entry: owned(Subscribed, VIP, Some(FP_OLD)),
        audience: Some(Unsubscribed),
        opts: UNSUBSCRIBE,
        expect: &[remove(VIP)],
    },
    Case {
        name: "left, audience subscribed over snapshot unsubscribed, unsubscribe policy: unsubscribed",
        want: None,
        entry: owned(Unsubscribed, NO_TAGS, Some(FP_OLD)),
        audience: Some(Subscribed),
        opts: UNSUBSCRIBE,
        expect: &[Call::Unsubscribe],
    },
];

/// One logged call: the key and address it named (`None` for `unchanged`, which has none),
/// and the decision.
struct Logged {
    key: MemberKey,
    email: Option<String>,
    call: Call,
}

#[derive(Default)]
struct Log(Vec<Logged>);

impl Log {
    fn push(&mut self, key: MemberKey, email: Option<&str>, call: Call) {
        self.0.push(Logged {
            key,
            email: email.map(str::to_string),
            call,
        });
    }
}

impl DiffSink for Log {
    fn upsert(
        &mut self,
        key: MemberKey,
        want: &Want<'_>,
        status: Status,
        create: bool,
        tags: TagSet,
    ) {
        let fingerprint = want.fingerprint;
        let call = if create {
            assert_eq!(tags, want.tags, "a create carries every tag it wants");
            Call::Create {
                status,
                fingerprint,
                tags: tags.into(),
            }
        } else {
            Call::Update {
                status,
                fingerprint,
                tags: tags.into(),
            }
        };
        self.push(key, Some(want.email), call);
    }
    fn unsubscribe(&mut self, key: MemberKey, email: &str) {
        self.push(key, Some(email), Call::Unsubscribe);
    }
    fn move_member(&mut self, _: MemberKey, _: &Want<'_>, _: MemberKey, _: &SnapshotEntry) {
        unreachable!("decide never moves a member: moves are decided before it")
    }
    fn tags(&mut self, key: MemberKey, email: &str, add: TagSet, remove: TagSet) {
        let call = Call::Tags {
            add: add.into(),
            remove: remove.into(),
        };
        self.push(key, Some(email), call);
    }
    fn archive(&mut self, key: MemberKey, email: &str) {
        self.push(key, Some(email), Call::Archive);
    }
    fn skip(&mut self, key: MemberKey, email: &str, reason: String) {
        self.push(key, Some(email), Call::Skip(Cow::Owned(reason)));
    }
    fn unchanged(&mut self, key: MemberKey) {
        self.push(key, None, Call::Unchanged);
    }
}

/// Runs one row; returns what is wrong with it (empty: the row holds).
fn check_case(case: &Case) -> Vec<String> {
    let key = MemberKey::of(WANT_EMAIL);
    let want = case.want.map(|w| Want {
        email: WANT_EMAIL,
        fingerprint: w.fingerprint,
        tags: w.tags.set(),
    });
    let entry = case.entry.map(|e| SnapshotEntry {
        email: ENTRY_EMAIL.to_string(),
        fingerprint: e.fingerprint,
        tags: e.tags.set(),
        status: e.status,
        owned: e.owned,
        profiles: None,
    });
    let mut log = Log::default();
    decide(
        key,
        want.as_ref(),
        entry.as_ref(),
        case.audience,
        case.opts,
        &mut log,
    );

    let mut problems = Vec::new();
    // A member the export wants is addressed as the export spells it now; one that left, as
    // the snapshot last delivered it.
    let address = if want.is_some() {
        WANT_EMAIL
    } else {
        ENTRY_EMAIL
    };
    for l in &log.0 {
        if l.key != key {
            problems.push(format!("{:?} named key {}, not {key}", l.call, l.key));
        }
        if let Some(email) = &l.email {
            if email != address {
                problems.push(format!("{:?} addressed {email:?}, not {address:?}", l.call));
            }
        }
    }
    let calls: Vec<Call> = log.0.into_iter().map(|l| l.call).collect();
    if calls != case.expect {
        problems.push(format!(
            "decided {calls:?}\n      expected {:?}",
            case.expect
        ));
    }
    problems
}

#[test]
fn decide_cases() {
    assert_eq!(
        MemberKey::of(ENTRY_EMAIL),
        MemberKey::of(WANT_EMAIL),
        "the want and the entry must be the same member"
    );
    let mut failures = Vec::new();
    let mut names = HashSet::new();
    for case in CASES {
        if !names.insert(case.name) {
            failures.push(format!("[{}] the table names two rows so", case.name));
        }
        let problems = check_case(case);
        if !problems.is_empty() {
            failures.push(format!("[{}]\n    {}", case.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the {} decide row(s) failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// diff, in memory, over several members.
//
// Members by subscriber hash (the MD5 of the address), the order every list must follow:
//   11dd gabriela  16d1 jean    3b0b petra   552f ana     61ab dan     6208 sorin
//   6b44 tudor     81c1 horia   8b95 bogdan  a38e florin  a65a radu    aee5 nora
//   b6f3 ioana     bc6f elena   d442 ovidiu  e2f8 cristina e6fa ligia  f83e mihai

/// What the snapshot says was delivered to one member.
#[derive(Clone, Copy)]
struct Sent {
    /// The FNAME value last sent; `None` if this export never sent the member's content.
    fname: Option<&'static str>,
    tags: Tags,
    status: Status,
    owned: bool,
}

const fn sent(
    fname: Option<&'static str>,
    tags: Tags,
    status: Status,
    owned: bool,
) -> Option<Sent> {
    Some(Sent {
        fname,
        tags,
        status,
        owned,
    })
}

struct Member {
    email: &'static str,
    /// The FNAME value and tags the export wants; `None`: the member left every segment.
    want: Option<(&'static str, Tags)>,
    entry: Option<Sent>,
    audience: Option<Status>,
}

const fn member(
    email: &'static str,
    want: Option<(&'static str, Tags)>,
    entry: Option<Sent>,
    audience: Option<Status>,
) -> Member {
    Member {
        email,
        want,
        entry,
        audience,
    }
}

struct DiffCase {
    name: &'static str,
    members: &'static [Member],
    opts: DiffOptions,
    creates: &'static [&'static str],
    updates: &'static [&'static str],
    tag_changes: &'static [&'static str],
    archives: &'static [&'static str],
    unsubscribes: &'static [&'static str],
    skipped: &'static [&'static str],
    unchanged: u64,
}

const DIFF_CASES: &[DiffCase] = &[
    DiffCase {
        name: "nothing wanted, nothing delivered: an empty diff",
        members: &[],
        opts: ARCHIVE,
        creates: &[],
        updates: &[],
        tag_changes: &[],
        archives: &[],
        unsubscribes: &[],
        skipped: &[],
        unchanged: 0,
    },
    DiffCase {
        name: "new members are created in subscriber-hash order, not alphabetical",
        members: &[
            member("ana@posta.ro", Some(("Ana", VIP)), None, None),
            member("bogdan@posta.ro", Some(("Bogdan", VIP)), None, None),
            member("cristina@posta.ro", Some(("Cristina", NO_TAGS)), None, None),
            member("dan@posta.ro", Some(("Dan", NEWS)), None, None),
            member("elena@posta.ro", Some(("Elena", VIP)), None, None),
            member("florin@posta.ro", Some(("Florin", VIP)), None, None),
        ],
        opts: UNTAG,
        creates: &[
            "ana@posta.ro subscribed",
            "dan@posta.ro subscribed",
            "bogdan@posta.ro subscribed",
            "florin@posta.ro subscribed",
            "elena@posta.ro subscribed",
            "cristina@posta.ro subscribed",
        ],
        updates: &[],
        // Their tags go with the creates.
        tag_changes: &[],
        archives: &[],
        unsubscribes: &[],
        skipped: &[],
        unchanged: 0,
    },
    DiffCase {
        name: "unchanged counts exactly the desired members that need no write",
        members: &[
            // Unchanged: content and tags as delivered (whatever their status).
            member(
                "gabriela@posta.ro",
                Some(("Gabriela", VIP)),
                sent(Some("Gabriela"), VIP, Subscribed, true),
                None,
            ),
            member(
                "jean@posta.ro",
                Some(("Jean", NO_TAGS)),
                sent(Some("Jean"), NO_TAGS, Subscribed, false),
                Some(Subscribed),
            ),
            member(
                "petra@posta.ro",
                Some(("Petra", NEWS)),
                sent(Some("Petra"), NEWS, Subscribed, true),
                Some(Unsubscribed),
            ),
            // Not counted: a tag added, content changed, archived, new, never sent.
            member(
                "ana@posta.ro",
                Some(("Ana", VIP.and(NEWS))),
                sent(Some("Ana"), VIP, Subscribed, true),
                None,
            ),
            member(
                "dan@posta.ro",
                Some(("Dan Ionescu", VIP)),
                sent(Some("Dan"), VIP, Subscribed, true),
                None,
            ),
            member(
                "sorin@posta.ro",
                Some(("Sorin", VIP)),
                sent(Some("Sorin"), VIP, Subscribed, true),
                Some(Archived),
            ),
            member("tudor@posta.ro", Some(("Tudor", CHURN)), None, None),
            member(
                "horia@posta.ro",
                Some(("Horia", VIP)),
                sent(None, VIP, Subscribed, false),
                None,
            ),
        ],
        opts: UNTAG,
        creates: &["tudor@posta.ro subscribed"],
        updates: &["dan@posta.ro subscribed", "horia@posta.ro subscribed"],
        tag_changes: &["ana@posta.ro"],
        archives: &[],
        unsubscribes: &[],
        skipped: &["sorin@posta.ro"],
        unchanged: 3,
    },
    DiffCase {
        name: "members that left interleave with wanted ones in key order (archive policy)",
        members: &[
            member("mihai@posta.ro", Some(("Mihai", VIP)), None, None),
            // Left, owned, subscribed, tagged: untagged and archived.
            member(
                "gabriela@posta.ro",
                None,
                sent(Some("Gabriela"), VIP, Subscribed, true),
                None,
            ),
            member(
                "horia@posta.ro",
                Some(("Horia Pop", VIP)),
                sent(Some("Horia"), VIP, Subscribed, true),
                None,
            ),
            // Left, owned, cleaned, tagged: untagged, archive skipped.
            member(
                "jean@posta.ro",
                None,
                sent(Some("Jean"), NEWS, Subscribed, true),
                Some(Cleaned),
            ),
            // Left, not owned, tagged: untagged only.
            member(
                "cristina@posta.ro",
                None,
                sent(None, VIP, Subscribed, false),
                None,
            ),
            // Left, owned, no tags: archived.
            member(
                "ana@posta.ro",
                None,
                sent(Some("Ana"), NO_TAGS, Subscribed, true),
                None,
            ),
            // Known only to the audience: nothing.
            member("radu@posta.ro", None, None, Some(Subscribed)),
            // Left, not owned, no tags: nothing.
            member(
                "petra@posta.ro",
                None,
                sent(Some("Petra"), NO_TAGS, Subscribed, false),
                None,
            ),
        ],
        opts: ARCHIVE,
        creates: &["mihai@posta.ro subscribed"],
        updates: &["horia@posta.ro subscribed"],
        tag_changes: &["gabriela@posta.ro", "jean@posta.ro", "cristina@posta.ro"],
        archives: &["gabriela@posta.ro", "ana@posta.ro"],
        unsubscribes: &[],
        skipped: &["jean@posta.ro"],
        unchanged: 0,
    },
    DiffCase {
        name: "unsubscribes in key order, unchanged members still counted (unsubscribe policy)",
        members: &[
            member(
                "florin@posta.ro",
                None,
                sent(Some("Florin"), VIP, Subscribed, true),
                None,
            ),
            member(
                "bogdan@posta.ro",
                None,
                sent(Some("Bogdan"), NO_TAGS, Pending, true),
                None,
            ),
            member(
                "elena@posta.ro",
                None,
                sent(Some("Elena"), VIP, Subscribed, true),
                Some(Unsubscribed),
            ),
            member(
                "nora@posta.ro",
                Some(("Nora", VIP)),
                sent(Some("Nora"), VIP, Subscribed, true),
                None,
            ),
            member(
                "ioana@posta.ro",
                Some(("Ioana", NO_TAGS)),
                sent(Some("Ioana"), NO_TAGS, Pending, true),
                None,
            ),
        ],
        opts: UNSUBSCRIBE,
        creates: &[],
        updates: &[],
        tag_changes: &["florin@posta.ro", "elena@posta.ro"],
        archives: &[],
        unsubscribes: &[
            "bogdan@posta.ro unsubscribed",
            "florin@posta.ro unsubscribed",
        ],
        skipped: &[],
        unchanged: 2,
    },
    DiffCase {
        name: "the audience map's statuses reach every member, known to the snapshot or not",
        members: &[
            member(
                "ligia@posta.ro",
                Some(("Ligia M.", VIP)),
                sent(Some("Ligia"), VIP, Subscribed, true),
                Some(Unsubscribed),
            ),
            member("mihai@posta.ro", Some(("Mihai", NEWS)), None, Some(Cleaned)),
            member(
                "ovidiu@posta.ro",
                Some(("Ovidiu", VIP)),
                None,
                Some(Archived),
            ),
            member("nora@posta.ro", Some(("Nora", VIP)), None, None),
        ],
        opts: opts(NewStatus::Pending, RemovalPolicy::Archive),
        creates: &["nora@posta.ro pending"],
        updates: &["ligia@posta.ro unsubscribed", "mihai@posta.ro cleaned"],
        // Mihai's tag goes in his update.
        tag_changes: &[],
        archives: &[],
        unsubscribes: &[],
        skipped: &["ovidiu@posta.ro"],
        unchanged: 0,
    },
];

fn merge_of(fname: &str) -> MergeValues {
    MergeValues::from([("FNAME".to_string(), json!(fname))])
}

/// Runs one row; returns what is wrong with it (empty: the row holds).
fn check_diff_case(case: &DiffCase) -> Vec<String> {
    let mut desired = HashMap::new();
    let mut snapshot = HashMap::new();
    let mut audience = HashMap::new();
    for m in case.members {
        let key = MemberKey::of(m.email);
        if let Some((fname, tags)) = m.want {
            desired.insert(
                key,
                Desired {
                    email: m.email.to_string(),
                    merge: merge_of(fname),
                    tags: tags.set(),
                },
            );
        }
        if let Some(e) = m.entry {
            snapshot.insert(
                key,
                SnapshotEntry {
                    email: m.email.to_string(),
                    fingerprint: e.fname.map(|f| fingerprint(&merge_of(f))),
                    tags: e.tags.set(),
                    status: e.status,
                    owned: e.owned,
                    profiles: None,
                },
            );
        }
        if let Some(s) = m.audience {
            audience.insert(key, s);
        }
    }
    let d = diff(&desired, &snapshot, &audience, case.opts);

    let mut problems = Vec::new();
    // What each item carries besides its address.
    for u in d.creates.iter().chain(&d.updates) {
        let want = &desired[&MemberKey::of(&u.email)];
        if u.key != MemberKey::of(&u.email) {
            problems.push(format!("upsert of {} under key {}", u.email, u.key));
        }
        if u.merge.as_ref() != Some(&want.merge) || u.fingerprint != Some(fingerprint(&want.merge))
        {
            problems.push(format!(
                "upsert of {} carries {:?} (fingerprint {:?}), not the desired merge values",
                u.email, u.merge, u.fingerprint
            ));
        }
    }
    for u in &d.unsubscribes {
        if u.key != MemberKey::of(&u.email) || u.merge.is_some() || u.fingerprint.is_some() {
            problems.push(format!(
                "unsubscribe of {} is not status-only: {u:?}",
                u.email
            ));
        }
    }
    for c in &d.tag_changes {
        if c.key != MemberKey::of(&c.email) {
            problems.push(format!("tag change of {} under key {}", c.email, c.key));
        }
    }
    for (key, email) in &d.archives {
        if *key != MemberKey::of(email) {
            problems.push(format!("archive of {email} under key {key}"));
        }
    }
    for s in &d.skipped {
        if s.key != MemberKey::of(&s.email) {
            problems.push(format!("skip of {} under key {}", s.email, s.key));
        }
    }

    let writes = !(case.creates.is_empty()
        && case.updates.is_empty()
        && case.tag_changes.is_empty()
        && case.archives.is_empty()
        && case.unsubscribes.is_empty());
    if d.is_empty() == writes {
        problems.push(format!("is_empty() says {}", d.is_empty()));
    }

    // Every list of the diff by address (upserts with the status they carry), in order.
    let upsert = |u: &Upsert| format!("{} {}", u.email, u.status);
    let lists: [(&str, Vec<String>, &[&str]); 6] = [
        (
            "creates",
            d.creates.iter().map(upsert).collect(),
            case.creates,
        ),
        (
            "updates",
            d.updates.iter().map(upsert).collect(),
            case.updates,
        ),
        (
            "tag_changes",
            d.tag_changes.iter().map(|c| c.email.clone()).collect(),
            case.tag_changes,
        ),
        (
            "archives",
            d.archives.iter().map(|(_, e)| e.clone()).collect(),
            case.archives,
        ),
        (
            "unsubscribes",
            d.unsubscribes.iter().map(upsert).collect(),
            case.unsubscribes,
        ),
        (
            "skipped",
            d.skipped.iter().map(|s| s.email.clone()).collect(),
            case.skipped,
        ),
    ];
    for (list, got, expected) in lists {
        if got != expected {
            problems.push(format!("{list}: got {got:?}\n      expected {expected:?}"));
        }
    }
    if d.unchanged != case.unchanged {
        problems.push(format!(
            "unchanged: got {}, expected {}",
            d.unchanged, case.unchanged
        ));
    }
    problems
}

#[test]
fn diff_cases() {
    let mut failures = Vec::new();
    let mut names = HashSet::new();
    for case in DIFF_CASES {
        if !names.insert(case.name) {
            failures.push(format!("[{}] the table names two rows so", case.name));
        }
        let problems = check_diff_case(case);
        if !problems.is_empty() {
            failures.push(format!("[{}]\n    {}", case.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the {} diff row(s) failed:\n{}",
        failures.len(),
        DIFF_CASES.len(),
        failures.join("\n")
    );
}
