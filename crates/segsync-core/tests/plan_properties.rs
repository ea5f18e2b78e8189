//! Applying a plan to a faithful model of the audience yields the desired state, never
//! resubscribes anyone, never removes a member the export did not add (at most it takes back
//! its own tags), and a second diff after it is empty.

use std::collections::HashMap;

use proptest::prelude::*;
use segsync_core::plan::{
    acknowledge_archive, acknowledge_move, acknowledge_tag, acknowledge_upsert,
};
use segsync_core::*;
use serde_json::json;

#[derive(Clone, Debug, PartialEq)]
struct Member {
    status: Status,
    merge: MergeValues,
    tags: TagSet,
}

type Audience = HashMap<MemberKey, Member>;

fn email(i: usize) -> String {
    format!("client{i}@posta.ro")
}

/// Runs a plan against the model as Mailchimp and segsync's executor would, updating the
/// snapshot for every acknowledged write.
fn execute(plan: &Plan, audience: &mut Audience, snapshot: &mut HashMap<MemberKey, SnapshotEntry>) {
    for op in plan.ops() {
        match op {
            Op::Upsert {
                update_existing,
                items,
            } => {
                for item in items {
                    let existing = audience.get(&item.key).cloned();
                    match existing {
                        None => {
                            audience.insert(
                                item.key,
                                Member {
                                    status: item.status,
                                    merge: item.merge.clone().unwrap_or_default(),
                                    tags: item.tags,
                                },
                            );
                            acknowledge_upsert(snapshot, item, item.status, true);
                            // The create carried its tags, and the answer listed them.
                            for bit in item.tags.iter() {
                                acknowledge_tag(
                                    snapshot,
                                    item.key,
                                    &item.email,
                                    bit,
                                    true,
                                    item.status,
                                );
                            }
                        }
                        Some(m) => {
                            // A create that meets an existing member: the executor learns its
                            // status and sends the update with it.
                            let status = if *update_existing {
                                item.status
                            } else {
                                m.status
                            };
                            if matches!(m.status, Status::Unsubscribed | Status::Cleaned)
                                && status == Status::Subscribed
                            {
                                continue; // Mailchimp refuses: Member In Compliance State.
                            }
                            let e = audience.get_mut(&item.key).unwrap();
                            e.status = status;
                            if let Some(merge) = &item.merge {
                                e.merge.extend(merge.clone());
                            }
                            // An update's item tags are added; a create's go by tag batches
                            // to a member it met.
                            e.tags = e.tags.union(item.tags);
                            acknowledge_upsert(snapshot, item, status, false);
                            for bit in item.tags.iter() {
                                acknowledge_tag(snapshot, item.key, &item.email, bit, true, status);
                            }
                        }
                    }
                }
            }
            Op::Tag { tag, add, remove } => {
                for (key, mail) in add {
                    if let Some(m) = audience.get_mut(key) {
                        m.tags = m.tags.with(*tag);
                        acknowledge_tag(snapshot, *key, mail, *tag, true, m.status);
                    }
                }
                for (key, mail) in remove {
                    if let Some(m) = audience.get_mut(key) {
                        m.tags = m.tags.minus(TagSet::default().with(*tag));
                        acknowledge_tag(snapshot, *key, mail, *tag, false, m.status);
                    }
                }
            }
            Op::Archive { key, .. } => {
                let m = audience.get_mut(key).unwrap();
                assert!(
                    !matches!(
                        m.status,
                        Status::Pending | Status::Cleaned | Status::Archived
                    ),
                    "planned a refused archive"
                );
                m.status = Status::Archived;
                acknowledge_archive(snapshot, *key);
            }
            Op::Move(mv) => {
                let m = audience.remove(&mv.from).expect("a move's member is there");
                audience.insert(mv.to.key, m);
                acknowledge_move(snapshot, mv.from, &mv.to);
            }
        }
    }
}

fn status_strategy() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Subscribed),
        Just(Status::Unsubscribed),
        Just(Status::Cleaned),
        Just(Status::Pending),
        Just(Status::Transactional),
        Just(Status::Archived),
    ]
}

/// A desired state over a pool of 40 addresses: (address, first name, tags).
fn desired_strategy() -> impl Strategy<Value = HashMap<MemberKey, Desired>> {
    proptest::collection::hash_map(0usize..40, (0usize..3, 0u64..8), 0..30).prop_map(|m| {
        m.into_iter()
            .map(|(i, (name, tags))| {
                let mut merge = MergeValues::new();
                merge.insert("FNAME".into(), json!(["Ana", "Ion", ""][name]));
                (
                    MemberKey::of(&email(i)),
                    Desired {
                        email: email(i),
                        merge,
                        tags: TagSet(tags),
                    },
                )
            })
            .collect()
    })
}

fn audience_strategy() -> impl Strategy<Value = Audience> {
    proptest::collection::hash_map(0usize..40, status_strategy(), 0..15).prop_map(|m| {
        m.into_iter()
            .map(|(i, status)| {
                (
                    MemberKey::of(&email(i)),
                    Member {
                        status,
                        merge: MergeValues::new(),
                        tags: TagSet::default(),
                    },
                )
            })
            .collect()
    })
}

fn statuses(a: &Audience) -> HashMap<MemberKey, Status> {
    a.iter().map(|(k, m)| (*k, m.status)).collect()
}

fn check(
    desired: &HashMap<MemberKey, Desired>,
    before: &Audience,
    after: &Audience,
    snapshot: &HashMap<MemberKey, SnapshotEntry>,
) {
    for (k, d) in desired {
        let was = before.get(k).map(|m| m.status);
        if was == Some(Status::Archived) {
            assert_eq!(
                after[k].status,
                Status::Archived,
                "archived contacts stay archived"
            );
            continue;
        }
        let m = &after[k];
        assert_eq!(m.merge, d.merge, "{}: merge fields as desired", d.email);
        assert_eq!(m.tags, d.tags, "{}: tags as desired", d.email);
    }
    for (k, b) in before {
        let a = &after[k];
        if matches!(
            b.status,
            Status::Unsubscribed | Status::Cleaned | Status::Archived
        ) {
            assert_ne!(a.status, Status::Subscribed, "never resubscribed");
        }
        let owned = snapshot.get(k).is_some_and(|e| e.owned);
        if !desired.contains_key(k) && !owned {
            assert_eq!(
                (a.status, &a.merge),
                (b.status, &b.merge),
                "a member the export did not add is never archived, unsubscribed or rewritten"
            );
        }
        if !desired.contains_key(k) {
            assert!(
                a.tags.is_empty(),
                "a member that left every segment has none of the export's tags"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plans_reach_the_desired_state(
        start in audience_strategy(),
        first in desired_strategy(),
        second in desired_strategy(),
        user_unsubscribes in proptest::collection::vec(0usize..40, 0..5),
        removal in prop_oneof![Just(RemovalPolicy::Untag), Just(RemovalPolicy::Archive), Just(RemovalPolicy::Unsubscribe)],
        status_if_new in prop_oneof![Just(NewStatus::Subscribed), Just(NewStatus::Pending), Just(NewStatus::Transactional)],
    ) {
        let opts = DiffOptions { status_if_new, removal };
        let mut audience = start.clone();
        let mut snapshot = HashMap::new();

        // First run: the audience is read whole.
        let p = plan(diff(&first, &snapshot, &statuses(&audience), opts));
        let before = audience.clone();
        execute(&p, &mut audience, &mut snapshot);
        check(&first, &before, &audience, &snapshot);

        // People unsubscribe in Mailchimp between runs; the run learns it.
        for i in user_unsubscribes {
            if let Some(m) = audience.get_mut(&MemberKey::of(&email(i))) {
                if m.status == Status::Subscribed {
                    m.status = Status::Unsubscribed;
                }
            }
        }
        let d = diff(&second, &snapshot, &statuses(&audience), opts);
        // A plan known only by its counts (streamed from disk) is summarised the same.
        let per_tag: Vec<(usize, usize)> = (0..64)
            .map(|t| {
                let adds = d.tag_changes.iter().filter(|c| c.add.contains(t)).count();
                let removes = d.tag_changes.iter().filter(|c| c.remove.contains(t)).count();
                (adds, removes)
            })
            .filter(|(a, r)| a + r > 0)
            .collect();
        let counted = PlanSummary::from_counts(
            d.moves.len(),
            d.creates.len(),
            d.updates.len(),
            d.unsubscribes.len(),
            &per_tag,
            d.creates
                .iter()
                .chain(&d.updates)
                .map(|u| u.tags.len())
                .sum(),
            d.archives.len(),
        );
        let p = plan(d);
        prop_assert_eq!(counted, p.summary());
        let before = audience.clone();
        execute(&p, &mut audience, &mut snapshot);
        check(&second, &before, &audience, &snapshot);
        for k in start.keys() {
            prop_assert!(
                !snapshot.get(k).is_some_and(|e| e.owned),
                "a contact that was in the audience before the export is never its own"
            );
        }

        // Nothing changed: nothing to send.
        let again = diff(&second, &snapshot, &statuses(&audience), opts);
        prop_assert!(again.is_empty(), "a re-run without change sends nothing: {again:?}");
        prop_assert_eq!(plan(again).requests(), 0);
    }
}

#[test]
fn requests_are_grouped_by_mailchimps_limits() {
    let desired: HashMap<MemberKey, Desired> = (0..1201)
        .map(|i| {
            (
                MemberKey::of(&email(i)),
                Desired {
                    email: email(i),
                    merge: MergeValues::new(),
                    tags: TagSet(0b11),
                },
            )
        })
        .collect();
    let p = plan(diff(
        &desired,
        &HashMap::new(),
        &HashMap::new(),
        DiffOptions::default(),
    ));
    let s = p.summary();
    // New members carry their tags in the creates: no tag request of their own.
    assert_eq!((s.creates, s.tag_adds, s.requests), (1201, 2402, 3));
    assert!(p.ops().all(|op| match op {
        Op::Upsert { items, .. } => items.len() <= BATCH,
        Op::Tag { add, remove, .. } => add.len() <= BATCH && remove.len() <= BATCH,
        Op::Archive { .. } | Op::Move(_) => true,
    }));
}
