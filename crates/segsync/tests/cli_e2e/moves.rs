//! A member follows its profile (issue 14): when a profile's address changes, its member is
//! moved to the new address, keeping status, tags and history; never archived and created
//! again. Also the rule for profiles that merge onto one address or split from one (README,
//! "A member follows its profile").

use mailchimp_sim::Status;
use serde_json::Value;

use crate::common::*;

/// Mailchimp's own identity of a member, which a move keeps and a re-creation would not.
fn web_id(sim: &Sim, list: &str, email: &str) -> Value {
    let (code, body) = sim.api("GET", &format!("/lists/{list}/members/{email}"), None);
    assert_eq!(code, 200, "{email} in the audience: {body}");
    body["web_id"].clone()
}

fn plan_moves(s: &Session) -> u64 {
    let plan: Value =
        serde_json::from_str(&s.ok(&["plan", EXPORT, "--json"]).stdout).expect("plan --json");
    plan["summary"]["moves"]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.moves in {plan}"))
}

/// The standard export, archiving members that leave it (so that a move that went wrong
/// would show as an archived member).
fn start(sim: &Sim, profiles: &[Profile]) -> (String, Session) {
    start_with(sim, profiles, None)
}

/// [`start`], with the state in `state` (a PostgreSQL URL) instead of the home's SQLite.
fn start_with(sim: &Sim, profiles: &[Profile], state: Option<&str>) -> (String, Session) {
    let list = sim.new_list("Newsletter");
    let s = Session::new(sim);
    if let Some(url) = state {
        s.set_env("SEGSYNC_STATE", url);
    }
    s.setup(&list, profiles, &["--removal", "archive"]);
    s.run_export(0);
    (list, s)
}

#[test]
fn a_member_follows_its_profile_to_a_new_address() {
    let sim = Sim::start();
    let mut profiles = vec![ana(), helene(), stefan()];
    let (list, s) = start(&sim, &profiles);
    let old = ana().email;
    let id = web_id(&sim, &list, &old);
    let (code, body) = sim.api(
        "POST",
        &format!(
            "/lists/{list}/members/{}/tags",
            segsync_core::MemberKey::of(&old).hex()
        ),
        Some(serde_json::json!({"tags": [{"name": "VIP desk", "status": "active"}]})),
    );
    assert_eq!(code, 204, "a tag set in Mailchimp: {body}");

    profiles[0].email = "ana.popescu@proton.me".into();
    profiles[0].city = "Brașov".into();
    s.import(&profiles);
    assert_eq!(plan_moves(&s), 1, "the plan counts the move");
    s.run_export(0);

    let v = sim.view(&list);
    assert!(find(&v, &old).is_none(), "no member at the old address");
    let m = member(&v, "ana.popescu@proton.me");
    assert_eq!(m.status, Status::Subscribed);
    assert_eq!(
        merge(m, "CITY"),
        "Brașov",
        "its content written at the new address"
    );
    let mut tags = profiles[0].tags();
    tags.push("VIP desk".into());
    tags.sort();
    assert_eq!(m.tags, tags, "the tags it had, Mailchimp's own included");
    assert_eq!(
        web_id(&sim, &list, &m.email_address),
        id,
        "the same contact"
    );
    assert_eq!(v.members.len(), 3, "nothing archived, nothing created");
    let run = s.show_json(2);
    assert_eq!(
        (
            count(&run, "moved"),
            count(&run, "created"),
            count(&run, "archived")
        ),
        (1, 0, 0),
        "{run}"
    );

    // Nothing left to do afterwards.
    s.run_export(0);
    let run = s.show_json(3);
    assert_eq!(
        (count(&run, "moved"), count(&run, "unchanged")),
        (0, 3),
        "{run}"
    );
}

/// The same with the state in PostgreSQL, where a run diffs a copy of the snapshot.
#[test]
fn a_member_follows_its_profile_with_the_state_in_postgres() {
    let sim = Sim::start();
    let db = TestDb::create("moves");
    let mut profiles = vec![ana(), helene()];
    let (list, s) = start_with(&sim, &profiles, Some(&db.url));
    let id = web_id(&sim, &list, &ana().email);
    profiles[0].email = "ana.p@proton.me".into();
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    assert_eq!(emails(&v), ["ana.p@proton.me", "helene.rousseau@orange.fr"]);
    assert_eq!(web_id(&sim, &list, "ana.p@proton.me"), id);
    assert_eq!(count(&s.show_json(2), "moved"), 1);
}

#[test]
fn an_unsubscribed_member_moves_and_stays_unsubscribed() {
    let sim = Sim::start();
    let mut profiles = vec![ana(), helene()];
    let (list, s) = start(&sim, &profiles);
    sim.force_status(&list, &ana().email, "unsubscribed");

    profiles[0].email = "ana.p@proton.me".into();
    s.import(&profiles);
    s.run_export(0);

    let v = sim.view(&list);
    assert!(find(&v, &ana().email).is_none(), "{}", s.show(2));
    assert_eq!(
        member(&v, "ana.p@proton.me").status,
        Status::Unsubscribed,
        "never subscribed under its new address"
    );
    assert_eq!(count(&s.show_json(2), "moved"), 1);
}

#[test]
fn a_cleaned_contacts_new_address_is_not_subscribed() {
    let sim = Sim::start();
    let mut profiles = vec![ana(), helene()];
    let (list, s) = start(&sim, &profiles);
    sim.force_status(&list, &ana().email, "cleaned");

    profiles[0].email = "ana.p@proton.me".into();
    s.import(&profiles);
    s.run_export(0);

    let v = sim.view(&list);
    assert!(find(&v, "ana.p@proton.me").is_none(), "not added");
    assert_eq!(member(&v, &ana().email).status, Status::Cleaned);
    let run = s.show_json(2);
    // The new address, and the old contact, which left every segment but cannot be archived.
    assert_eq!(
        (count(&run, "moved"), count(&run, "skipped")),
        (0, 2),
        "{run}"
    );
    let plan: Value =
        serde_json::from_str(&s.ok(&["plan", EXPORT, "--json"]).stdout).expect("plan --json");
    let skipped = plan["skipped"].as_array().expect("skipped records");
    assert!(
        skipped.iter().any(|r| r["email"] == "ana.p@proton.me"
            && r["reason"].as_str().unwrap_or_default().starts_with(
                "ana.p@proton.me is the new address of a profile whose contact ana.popescu@gmail.com is cleaned in Mailchimp"
            )),
        "{plan}"
    );
}

/// The new address is already a contact of the audience: it is updated with its own status,
/// and the old member goes by the removal policy.
#[test]
fn a_new_address_already_in_the_audience_is_updated_not_moved() {
    let sim = Sim::start();
    let mut profiles = vec![ana(), helene()];
    let (list, s) = start(&sim, &profiles);
    sim.add_member(
        &list,
        "ana.work@firma.ro",
        "unsubscribed",
        serde_json::json!({}),
        &[],
    );

    profiles[0].email = "ana.work@firma.ro".into();
    s.import(&profiles);
    s.run_export(0);

    let v = sim.view(&list);
    let m = member(&v, "ana.work@firma.ro");
    assert_eq!(m.status, Status::Unsubscribed, "its status unchanged");
    assert_eq!(merge(m, "CITY"), ana().city, "its content written");
    assert_eq!(m.tags, profiles[0].tags());
    assert_eq!(
        member(&v, &ana().email).status,
        Status::Archived,
        "the old member left to the removal policy"
    );
    let run = s.show_json(2);
    assert_eq!(
        (count(&run, "moved"), count(&run, "archived")),
        (0, 1),
        "{run}"
    );
}

/// Two profiles come to one new address: one member moves there (the more cautious status,
/// here the unsubscribed one), the other is left to the removal policy.
#[test]
fn profiles_merging_onto_a_new_address_move_one_member() {
    let sim = Sim::start();
    let mut profiles = vec![ana(), helene(), stefan()];
    let (list, s) = start(&sim, &profiles);
    sim.force_status(&list, &helene().email, "unsubscribed");
    let id = web_id(&sim, &list, &helene().email);

    for p in &mut profiles[..2] {
        p.email = "famille@laposte.net".into();
    }
    s.import(&profiles);
    let out = s.sh(&["run", EXPORT]);
    assert_eq!(out.code, 0, "{}", out.text());

    let v = sim.view(&list);
    let m = member(&v, "famille@laposte.net");
    assert_eq!(
        m.status,
        Status::Unsubscribed,
        "the unsubscribed member moved"
    );
    assert_eq!(web_id(&sim, &list, "famille@laposte.net"), id);
    assert!(find(&v, &helene().email).is_none());
    assert_eq!(member(&v, &ana().email).status, Status::Archived);
    let run = s.show_json(2);
    assert_eq!(
        (count(&run, "moved"), count(&run, "archived")),
        (1, 1),
        "{run}"
    );
}

/// A profile that shared an address with another takes one of its own: the shared member
/// stays; the new address is a new member, unless the shared one is unsubscribed (then
/// nobody is subscribed under the new address).
#[test]
fn a_profile_split_from_a_shared_address() {
    let sim = Sim::start();
    let mut marc = helene();
    marc.id = "C009".into();
    marc.first = "Marc".into();
    marc.email = ana().email;
    let mut profiles = vec![ana(), marc, stefan()];
    let (list, s) = start(&sim, &profiles);
    assert_eq!(
        sim.view(&list).members.len(),
        2,
        "one member for the shared address"
    );

    profiles[1].email = "marc@orange.fr".into();
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    assert_eq!(member(&v, &ana().email).status, Status::Subscribed, "stays");
    assert_eq!(
        member(&v, "marc@orange.fr").status,
        Status::Subscribed,
        "new"
    );
    let run = s.show_json(2);
    assert_eq!(
        (count(&run, "moved"), count(&run, "created")),
        (0, 1),
        "{run}"
    );

    // Split again, from an unsubscribed shared member this time.
    sim.force_status(&list, &ana().email, "unsubscribed");
    profiles[2].email = ana().email;
    s.import(&profiles);
    s.run_export(0);
    profiles[2].email = "stefan.g@yahoo.ro".into();
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    assert!(
        find(&v, "stefan.g@yahoo.ro").is_none(),
        "not subscribed under a new address: {:?}",
        emails(&v)
    );
    assert_eq!(count(&s.show_json(4), "skipped"), 1);
}
