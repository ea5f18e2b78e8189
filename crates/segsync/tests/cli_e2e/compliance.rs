//! Mailchimp's compliance rules: whoever unsubscribed (before segsync came, or between two
//! runs) or bounced stays so, and segsync never even asks Mailchimp to resubscribe them.

use mailchimp_sim::Status;
use serde_json::json;

use crate::common::*;

const GONE_BEFORE: &str = "ioana.dubois@gmail.com"; // unsubscribed before the first run
const BOUNCED: &str = "mihai.nowak@yahoo.ro"; // cleaned before the first run
const GONE_BETWEEN: &str = "zoe.muller@web.de"; // added by segsync, unsubscribes after run 1

#[test]
fn unsubscribed_members_stay_unsubscribed_and_segsync_never_asks_otherwise() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = vec![
        ana(),
        Profile::new("C002", GONE_BEFORE, "Ioana", "Dubois", "Iași", "RO", 40.0),
        Profile::new("C003", BOUNCED, "Mihai", "Nowak", "Lyon", "FR", 760.0),
        Profile::new(
            "C004",
            GONE_BETWEEN,
            "Zoë",
            "Müller",
            "München",
            "DE",
            610.0,
        ),
        Profile::new(
            "C005",
            "raul.lopez@outlook.com",
            "Raúl",
            "López",
            "Sevilla",
            "ES",
            990.0,
        ),
    ];
    // Before segsync: one person unsubscribed, one address bounced.
    sim.add_member(
        &list,
        GONE_BEFORE,
        "unsubscribed",
        json!({"FNAME": "Ioana"}),
        &[],
    );
    sim.add_member(&list, BOUNCED, "subscribed", json!({"FNAME": "Mihai"}), &[]);
    sim.force_status(&list, BOUNCED, "cleaned");
    s.setup(&list, &profiles, &[]);

    s.run_export(0);
    let v = sim.view(&list);
    let gone = member(&v, GONE_BEFORE);
    assert_eq!(
        gone.status,
        Status::Unsubscribed,
        "unsubscribed before the first run: still unsubscribed"
    );
    assert_eq!(
        (gone.tags.clone(), merge(gone, "CITY")),
        (vec!["romania".to_string()], "Iași".to_string()),
        "tagged and updated all the same"
    );
    assert_eq!(
        member(&v, BOUNCED).status,
        Status::Cleaned,
        "a bounced address is not resubscribed"
    );
    assert_eq!(member(&v, GONE_BETWEEN).status, Status::Subscribed);
    assert_eq!(
        sim.counters().compliance_refusals,
        0,
        "segsync never asked to resubscribe anyone"
    );

    // Between runs, someone unsubscribes in Mailchimp; then profiles change, the three
    // people above included, so the next run has to write them.
    sim.force_status(&list, GONE_BETWEEN, "unsubscribed");
    for p in &mut profiles {
        p.city = format!("{} (nou)", p.city);
    }
    profiles[1].ltv = 990.0; // GONE_BEFORE joins "High value"
    s.import(&profiles);

    let out = s.run_export(0);
    assert!(out.stdout.contains("updated 5"), "{}", out.stdout);
    let v = sim.view(&list);
    for p in &profiles {
        assert_eq!(
            merge(member(&v, &p.email), "CITY"),
            p.city,
            "{} updated",
            p.email
        );
    }
    assert_eq!(
        member(&v, GONE_BETWEEN).status,
        Status::Unsubscribed,
        "unsubscribed in Mailchimp between runs: still unsubscribed"
    );
    assert_eq!(member(&v, GONE_BEFORE).status, Status::Unsubscribed);
    assert_eq!(member(&v, GONE_BEFORE).tags, [HIGH_VALUE_TAG, "romania"]);
    assert_eq!(member(&v, BOUNCED).status, Status::Cleaned);
    assert_eq!(
        member(&v, "ana.popescu@gmail.com").status,
        Status::Subscribed
    );
    assert_eq!(
        sim.counters().compliance_refusals,
        0,
        "segsync never asked to resubscribe anyone"
    );

    // And the next run, with nothing changed, writes nothing.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
    assert_eq!(sim.counters().compliance_refusals, 0);
}

/// A contact archived in Mailchimp is not brought back; one permanently deleted there cannot
/// be (Mailchimp refuses). segsync cannot know of a deletion before it asks once (Mailchimp
/// lists no deleted contacts), reports Mailchimp's refusal, and never asks again.
#[test]
fn contacts_archived_or_deleted_in_mailchimp_are_not_brought_back() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let archived = "ana.popescu@gmail.com";
    let deleted = "helene.rousseau@orange.fr";
    let mut profiles = vec![
        Profile::new(
            "C001",
            archived,
            "Ana",
            "Popescu",
            "Cluj-Napoca",
            "RO",
            820.0,
        ),
        Profile::new("C002", deleted, "Hélène", "Rousseau", "Lyon", "FR", 640.0),
        stefan(),
    ];
    s.setup(&list, &profiles, &[]);
    s.run_export(0);

    let (code, body) = sim.api("DELETE", &format!("/lists/{list}/members/{archived}"), None);
    assert_eq!(code, 204, "{body}");
    let (code, body) = sim.api(
        "POST",
        &format!("/lists/{list}/members/{deleted}/actions/delete-permanent"),
        None,
    );
    assert_eq!(code, 204, "{body}");
    for p in &mut profiles {
        p.city = format!("{} (nou)", p.city);
    }
    s.import(&profiles);

    s.run_export(3);
    let v = sim.view(&list);
    assert_eq!(
        member(&v, archived).status,
        Status::Archived,
        "not unarchived"
    );
    assert_eq!(
        merge(member(&v, archived), "CITY"),
        "Cluj-Napoca",
        "not written at all"
    );
    assert!(find(&v, deleted).is_none(), "not re-imported");
    assert_eq!(
        merge(member(&v, "stefan.gheorghiu@yahoo.ro"), "CITY"),
        "Iași (nou)"
    );
    let errors = s.errors_csv(2);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].0.as_str(), errors[0].1.as_str()),
        ("C002", deleted)
    );
    assert!(
        errors[0].2.contains("permanently deleted"),
        "Mailchimp's reason: {}",
        errors[0].2
    );
    let run = s.show_json(2);
    assert_eq!(
        (
            count(&run, "skipped"),
            count(&run, "failed"),
            count(&run, "updated")
        ),
        (1, 1, 1)
    );
    assert_eq!(
        sim.counters().compliance_refusals,
        1,
        "the one ask segsync could not avoid"
    );

    // From now on, segsync knows: it asks no more, and has nothing to send.
    let writes = sim.counters().writes;
    let out = s.run_export(0);
    assert_eq!(sim.counters().writes, writes, "{}", out.stdout);
    assert_eq!(sim.counters().compliance_refusals, 1, "never asks again");
    assert!(find(&sim.view(&list), deleted).is_none());
    assert_eq!(count(&s.show_json(3), "skipped"), 2);
}

/// An unsubscribe that one run learns is remembered: a later run that does not read that
/// change again (it happened before the last read) still never sends the member back as
/// subscribed.
#[test]
fn a_learned_unsubscribe_is_remembered_by_later_runs() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = people(6);
    s.setup(&list, &profiles, &[]);
    s.run_export(0);
    let leaving = profiles[0].email.clone();
    sim.force_status(&list, &leaving, "unsubscribed");

    // Nothing changed in the profiles: the run only learns the unsubscribe.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(
        sim.counters().writes,
        writes,
        "learning writes nothing to Mailchimp"
    );

    // A day later: the audience has not changed since the last read, so the next run reads
    // nothing, while the profile of the person who left changes.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let db = rusqlite::Connection::open(s.home().join("state.sqlite")).unwrap();
    db.execute("UPDATE sync_marks SET audience_read_at = ?1", [&tomorrow])
        .unwrap();
    drop(db);
    profiles[0].city = "Sibiu".into();
    s.import(&profiles);
    s.run_export(0);

    let v = sim.view(&list);
    assert_eq!(
        merge(member(&v, &leaving), "CITY"),
        "Sibiu",
        "the change was sent"
    );
    assert_eq!(member(&v, &leaving).status, Status::Unsubscribed);
    assert_eq!(
        sim.counters().compliance_refusals,
        0,
        "segsync never asked to resubscribe"
    );
}

/// The statuses of the listed addresses, in order.
fn statuses(sim: &Sim, list: &str, emails: &[&str]) -> Vec<Status> {
    let v = sim.view(list);
    emails.iter().map(|e| member(&v, e).status).collect()
}

fn in_romania(id: &str, email: &str, first: &str, city: &str) -> Profile {
    Profile::new(id, email, first, "Popa", city, "RO", 50.0)
}

/// Double opt-in: `--status-if-new pending` sends only new members to pending; contacts
/// already in the audience keep their status whatever it is, through updates; a pending
/// member who confirms is never sent back to pending.
#[test]
fn pending_for_new_members_never_touches_the_status_of_existing_ones() {
    let sim = Sim::start();
    let list = sim.new_list("Double opt-in");
    let s = Session::new(&sim);
    let (subscribed, unsubscribed, transactional, cleaned) = (
        "ana.subscribed@gmail.com",
        "ion.unsubscribed@yahoo.ro",
        "eva.transactional@outlook.com",
        "dan.cleaned@web.de",
    );
    let (new1, new2) = ("mara.new@proton.me", "radu.new@libero.it");
    let all = [subscribed, unsubscribed, transactional, cleaned, new1, new2];
    sim.add_member(&list, subscribed, "subscribed", json!({}), &[]);
    sim.add_member(&list, unsubscribed, "unsubscribed", json!({}), &[]);
    sim.add_member(&list, transactional, "transactional", json!({}), &[]);
    sim.add_member(&list, cleaned, "subscribed", json!({}), &[]);
    sim.force_status(&list, cleaned, "cleaned");
    let mut profiles: Vec<Profile> = all
        .iter()
        .enumerate()
        .map(|(i, e)| in_romania(&format!("C{i}"), e, "Ana", "Cluj-Napoca"))
        .collect();
    s.setup(&list, &profiles, &["--status-if-new", "pending"]);

    s.run_export(0);
    use Status::*;
    assert_eq!(
        statuses(&sim, &list, &all),
        [
            Subscribed,
            Unsubscribed,
            Transactional,
            Cleaned,
            Pending,
            Pending
        ]
    );
    assert!(all
        .iter()
        .all(|e| member(&sim.view(&list), e).tags == ["romania"]));

    // One new member confirms; then every profile changes, so every member is written.
    sim.force_status(&list, new1, "subscribed");
    for p in &mut profiles {
        p.city = "Brașov".into();
    }
    s.import(&profiles);
    let out = s.run_export(0);
    assert!(out.stdout.contains("updated 6"), "{}", out.stdout);
    assert_eq!(
        statuses(&sim, &list, &all),
        [
            Subscribed,
            Unsubscribed,
            Transactional,
            Cleaned,
            Subscribed,
            Pending
        ],
        "nobody's status changed: existing members keep theirs, the confirmed one stays subscribed"
    );
    let v = sim.view(&list);
    assert!(all.iter().all(|e| merge(member(&v, e), "CITY") == "Brașov"));
    assert_eq!(sim.counters().compliance_refusals, 0);
}

/// `--status-if-new transactional` (profiles without marketing consent): new members are
/// transactional and stay so through updates, and leaving every segment under
/// `--removal unsubscribe` does not turn a transactional contact into an unsubscribed one.
#[test]
fn transactional_members_stay_transactional() {
    let sim = Sim::start();
    let list = sim.new_list("Receipts");
    let s = Session::new(&sim);
    let (stays, leaves) = ("ana.receipts@gmail.com", "ion.receipts@yahoo.ro");
    let mut profiles = vec![
        in_romania("C1", stays, "Ana", "Iași"),
        in_romania("C2", leaves, "Ion", "Iași"),
    ];
    s.setup(
        &list,
        &profiles,
        &[
            "--status-if-new",
            "transactional",
            "--removal",
            "unsubscribe",
        ],
    );
    s.run_export(0);
    assert_eq!(
        statuses(&sim, &list, &[stays, leaves]),
        [Status::Transactional, Status::Transactional]
    );

    profiles[0].city = "Sibiu".into();
    profiles[1].country = "PL".into(); // leaves the only segment
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    let (a, b) = (member(&v, stays), member(&v, leaves));
    assert_eq!(
        (a.status, merge(a, "CITY")),
        (Status::Transactional, "Sibiu".to_string())
    );
    assert_eq!(
        (b.status, b.tags.is_empty()),
        (Status::Transactional, true),
        "untagged, still transactional"
    );
    assert_eq!(sim.counters().compliance_refusals, 0);
}

/// A member segsync added that bounces (cleaned) stays cleaned through later updates and is
/// not archived when it leaves (Mailchimp cannot archive a cleaned contact: it is only
/// untagged); an address permanently deleted before segsync ever ran is refused once by
/// Mailchimp and never asked for again.
#[test]
fn cleaned_and_permanently_deleted_contacts_are_never_re_added() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let (bounces, deleted, other) = (
        "mihai.bounces@yahoo.ro",
        "lea.forgotten@orange.fr",
        "ana.stays@gmail.com",
    );
    sim.add_member(&list, deleted, "subscribed", json!({}), &[]);
    let (code, body) = sim.api(
        "POST",
        &format!("/lists/{list}/members/{deleted}/actions/delete-permanent"),
        None,
    );
    assert_eq!(code, 204, "{body}");
    let mut profiles = vec![
        in_romania("C1", bounces, "Mihai", "Iași"),
        in_romania("C2", deleted, "Léa", "Iași"),
        in_romania("C3", other, "Ana", "Iași"),
    ];
    s.setup(&list, &profiles, &["--removal", "archive"]);

    s.run_export(3);
    assert!(find(&sim.view(&list), deleted).is_none(), "not re-added");
    assert_eq!(
        sim.counters().compliance_refusals,
        1,
        "Mailchimp refused once"
    );
    let errors = s.errors_csv(1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].2.contains("permanently deleted"), "{errors:?}");

    // The address bounces; its profile changes: it is updated, and stays cleaned.
    sim.force_status(&list, bounces, "cleaned");
    for p in &mut profiles {
        p.city = "Sibiu".into();
    }
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    assert_eq!(member(&v, bounces).status, Status::Cleaned);
    assert_eq!(merge(member(&v, bounces), "CITY"), "Sibiu");
    assert!(find(&v, deleted).is_none(), "still not re-added");

    // It leaves the segment: untagged only, never archived nor resubscribed.
    profiles[0].country = "FR".into();
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    let b = member(&v, bounces);
    assert_eq!((b.status, b.tags.is_empty()), (Status::Cleaned, true));
    assert!(find(&v, deleted).is_none());
    assert_eq!(
        sim.counters().compliance_refusals,
        1,
        "segsync never asked again for the deleted address"
    );
}
