//! The rule a member follows its profile by (`moves.rs`), case by case: which new address
//! takes which member, which is skipped and why.

use segsync_core::{
    pair_moves, Holder, MemberKey, NewAddress, Route, SnapshotEntry, Status, TagSet,
};

fn new(email: &str, profiles: &[&str]) -> NewAddress {
    NewAddress {
        key: MemberKey::of(email),
        email: email.into(),
        profiles: profiles.join("\u{1f}"),
    }
}

fn holder(email: &str, profiles: &[&str], status: Status, wanted: bool) -> Holder {
    Holder {
        key: MemberKey::of(email),
        entry: SnapshotEntry {
            email: email.into(),
            fingerprint: Some(1),
            tags: TagSet::default().with(0),
            status,
            owned: true,
            profiles: Some(profiles.join("\u{1f}")),
        },
        wanted,
    }
}

/// What happens to new address `to`: the address of the member it takes over, "skip", or
/// "new".
fn fate(moves: &segsync_core::Moves, to: &str) -> String {
    match moves.route(MemberKey::of(to), true, false) {
        Route::MoveFrom(h) => h.entry.email.clone(),
        Route::Skip(_) => "skip".into(),
        _ => "new".into(),
    }
}

#[test]
fn an_address_change_moves_the_member() {
    let m = pair_moves(
        &[new("b@x.ro", &["P1"])],
        vec![holder("a@x.ro", &["P1"], Status::Subscribed, false)],
    );
    assert_eq!(fate(&m, "b@x.ro"), "a@x.ro");
    assert_eq!(
        m.route(MemberKey::of("a@x.ro"), false, true),
        Route::MovedAway,
        "nothing is removed from a member that moved"
    );
    assert_eq!(m.len(), 1);
}

#[test]
fn statuses_decide_who_moves_and_who_is_skipped() {
    let cases = [
        (Status::Subscribed, "a@x.ro"),
        (Status::Pending, "a@x.ro"),
        (Status::Transactional, "a@x.ro"),
        (Status::Unsubscribed, "a@x.ro"),
        (Status::Cleaned, "skip"),
        (Status::Archived, "skip"),
    ];
    for (status, expected) in cases {
        let m = pair_moves(
            &[new("b@x.ro", &["P1"])],
            vec![holder("a@x.ro", &["P1"], status, false)],
        );
        assert_eq!(fate(&m, "b@x.ro"), expected, "{status}");
        let reason = match m.route(MemberKey::of("b@x.ro"), true, false) {
            Route::Skip(r) => r.to_string(),
            _ => String::new(),
        };
        if expected == "skip" {
            assert!(
                reason
                    .starts_with("b@x.ro is the new address of a profile whose contact a@x.ro is"),
                "{reason}"
            );
        }
    }
}

#[test]
fn profiles_merging_onto_a_new_address_move_the_most_cautious_member() {
    let m = pair_moves(
        &[new("c@x.ro", &["P1", "P2"])],
        vec![
            holder("a@x.ro", &["P1"], Status::Subscribed, false),
            holder("b@x.ro", &["P2"], Status::Unsubscribed, false),
        ],
    );
    assert_eq!(fate(&m, "c@x.ro"), "b@x.ro");
    assert_eq!(
        m.route(MemberKey::of("a@x.ro"), false, true),
        Route::Usual,
        "left to the removal policy"
    );

    let m = pair_moves(
        &[new("c@x.ro", &["P1", "P2"])],
        vec![
            holder("a@x.ro", &["P1"], Status::Subscribed, false),
            holder("b@x.ro", &["P2"], Status::Cleaned, false),
        ],
    );
    assert_eq!(fate(&m, "c@x.ro"), "skip", "a cleaned contact among them");
}

#[test]
fn a_split_is_a_new_member_unless_the_shared_one_is_unsubscribed() {
    for (status, expected) in [
        (Status::Subscribed, "new"),
        (Status::Pending, "new"),
        (Status::Unsubscribed, "skip"),
        (Status::Cleaned, "skip"),
    ] {
        let m = pair_moves(
            &[new("b@x.ro", &["P2"])],
            vec![holder("a@x.ro", &["P1", "P2"], status, true)],
        );
        assert_eq!(fate(&m, "b@x.ro"), expected, "{status}");
    }
}

#[test]
fn a_member_moves_once() {
    let m = pair_moves(
        &[new("b@x.ro", &["P1"]), new("c@x.ro", &["P2"])],
        vec![holder("a@x.ro", &["P1", "P2"], Status::Subscribed, false)],
    );
    let fates = [fate(&m, "b@x.ro"), fate(&m, "c@x.ro")];
    assert_eq!(
        fates.iter().filter(|f| *f == "a@x.ro").count(),
        1,
        "{fates:?}"
    );
    assert!(fates.contains(&"new".to_string()), "{fates:?}");
}

#[test]
fn an_address_of_no_known_profile_is_new() {
    let m = pair_moves(
        &[new("b@x.ro", &["P9"])],
        vec![holder("a@x.ro", &["P1"], Status::Subscribed, false)],
    );
    assert_eq!(fate(&m, "b@x.ro"), "new");
    assert!(m.is_empty());
}
