//! Members joining and leaving segments: tags follow, the removal policy applies to members
//! that leave every segment, and contacts the export did not bring are never touched.

use mailchimp_sim::{MemberView, Status};
use serde_json::json;

use crate::common::*;

struct Cast {
    profiles: Vec<Profile>,
}

const A: &str = "ana.popescu@gmail.com"; // both segments; leaves "High value"
const B: &str = "helene.rousseau@orange.fr"; // "High value" only; leaves every segment
const C: &str = "stefan.gheorghiu@yahoo.ro"; // "romania" only; joins "High value"
const D: &str = "matteo.bianchi@libero.it"; // no segment; joins "romania" (moved to Romania)
const E: &str = "jurgen.muller@web.de"; // "High value", no change
/// In the audience before segsync, in no segment: never touched.
const X: &str = "giulia.rossi@libero.it";
/// In the audience before segsync (transactional, tag "Partner"), in the "romania" segment.
const Y: &str = "bogdan.nowak@gmail.com";
/// In the audience before segsync, tagged "romania" by someone else (the tag of the export's
/// segment), with no profile at all: never touched either.
const Z: &str = "lea.schafer@proton.me";

impl Cast {
    fn before() -> Cast {
        Cast {
            profiles: vec![
                Profile::new("C001", A, "Ana", "Popescu", "Cluj-Napoca", "RO", 820.0),
                Profile::new("C002", B, "Hélène", "Rousseau", "Lyon", "FR", 700.0),
                Profile::new("C003", C, "Ștefan", "Gheorghiu", "Iași", "RO", 10.0),
                Profile::new("C004", D, "Matteo", "Bianchi", "Milano", "IT", 20.0),
                Profile::new("C005", E, "Jürgen", "Müller", "München", "DE", 600.0),
                Profile::new("C006", X, "Giulia", "Rossi", "Torino", "IT", 15.0),
                Profile::new("C007", Y, "Bogdan", "Nowak", "Brașov", "RO", 30.0),
            ],
        }
    }

    fn set(&mut self, email: &str, change: impl FnOnce(&mut Profile)) {
        change(
            self.profiles
                .iter_mut()
                .find(|p| p.email == email)
                .expect("in the cast"),
        );
    }

    /// A leaves "High value", B every segment, C joins "High value", D joins "romania".
    fn after(y_leaves: bool) -> Cast {
        let mut c = Cast::before();
        c.set(A, |p| p.ltv = 100.0);
        c.set(B, |p| p.ltv = 50.0);
        c.set(C, |p| p.ltv = 900.0);
        c.set(D, |p| {
            p.country = "RO".into();
            p.city = "Sibiu".into()
        });
        if y_leaves {
            c.set(Y, |p| {
                p.country = "PL".into();
                p.city = "Kraków".into()
            });
        }
        c
    }
}

/// X and Y, put in the audience through the Mailchimp API before segsync ever runs.
fn contacts_from_elsewhere(sim: &Sim, list: &str) {
    sim.add_member(
        list,
        X,
        "subscribed",
        json!({"FNAME": "Giulia", "LNAME": "Rossi"}),
        &["Partner"],
    );
    sim.add_member(
        list,
        Y,
        "transactional",
        json!({"FNAME": "Bogdan"}),
        &["Partner"],
    );
    sim.add_member(list, Z, "subscribed", json!({"FNAME": "Léa"}), &["romania"]);
}

/// Contacts the export never brought, untouched since `before`.
fn untouched(view: &mailchimp_sim::ListView, before: &[MemberView]) {
    for b in before {
        assert_untouched(member(view, &b.email_address), b);
    }
}

/// The same contact, untouched: status, tags, when it last changed, and every value it
/// holds (a merge field created since shows empty on it).
fn assert_untouched(now: &MemberView, before: &MemberView) {
    let values = |m: &MemberView| {
        m.merge_fields
            .iter()
            .filter(|(_, v)| **v != json!(""))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (
            &now.email_address,
            now.status,
            &now.tags,
            &now.last_changed,
            values(now)
        ),
        (
            &before.email_address,
            before.status,
            &before.tags,
            &before.last_changed,
            values(before)
        ),
        "{} was not touched",
        before.email_address
    );
}

fn tags(view: &mailchimp_sim::ListView, email: &str) -> Vec<String> {
    member(view, email).tags.clone()
}

fn first_run(sim: &Sim, s: &Session, list: &str, removal: &str) -> Vec<MemberView> {
    contacts_from_elsewhere(sim, list);
    let others = sim.view(list);
    let from_elsewhere = vec![member(&others, X).clone(), member(&others, Z).clone()];
    let created = sim.counters().members_created;
    s.setup(list, &Cast::before().profiles, &["--removal", removal]);
    s.run_export(0);

    let v = sim.view(list);
    assert_eq!(tags(&v, A), [HIGH_VALUE_TAG, "romania"]);
    assert_eq!(tags(&v, B), [HIGH_VALUE_TAG]);
    assert_eq!(tags(&v, C), ["romania"]);
    assert!(find(&v, D).is_none());
    // Y is in a segment: it gets the export's tag and its mapped fields, keeps its own tag
    // and its status.
    let y = member(&v, Y);
    assert_eq!(y.tags, ["Partner", "romania"]);
    assert_eq!(
        y.status,
        Status::Transactional,
        "an existing member keeps its status"
    );
    assert_eq!(
        (merge(y, "LNAME"), merge(y, "CITY")),
        ("Nowak".into(), "Brașov".into())
    );
    untouched(&v, &from_elsewhere);
    assert_eq!(
        sim.counters().members_created - created,
        4,
        "A, B, C, E; X and Y were there"
    );
    from_elsewhere
}

#[test]
fn leaving_and_joining_segments_moves_tags_and_untag_removes_only_the_exports_tag() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let from_elsewhere = first_run(&sim, &s, &list, "untag");

    s.import(&Cast::after(true).profiles);
    let out = s.run_export(0);
    assert!(
        out.stdout.contains("created 1,"),
        "D joined: {}",
        out.stdout
    );

    let v = sim.view(&list);
    assert_eq!(tags(&v, A), ["romania"], "A left \"High value\" only");
    let b = member(&v, B);
    assert!(b.tags.is_empty(), "B left every segment: untagged");
    assert_eq!(
        b.status,
        Status::Subscribed,
        "--removal untag leaves B in the audience, subscribed"
    );
    assert_eq!(
        tags(&v, C),
        [HIGH_VALUE_TAG, "romania"],
        "C joined \"High value\""
    );
    let d = member(&v, D);
    assert_eq!(
        (d.status, d.tags.clone(), merge(d, "CITY")),
        (
            Status::Subscribed,
            vec!["romania".to_string()],
            "Sibiu".to_string()
        )
    );
    assert_eq!(tags(&v, E), [HIGH_VALUE_TAG]);
    let y = member(&v, Y);
    assert_eq!(
        y.tags,
        ["Partner"],
        "Y left the segment: only the export's tag is removed"
    );
    assert_eq!(y.status, Status::Transactional);
    untouched(&v, &from_elsewhere);
    assert_eq!(v.members.len(), 8);

    let run = s.show_json(2);
    assert_eq!(
        (
            count(&run, "created"),
            count(&run, "tagged"),
            count(&run, "untagged"),
            count(&run, "archived")
        ),
        (1, 2, 3, 0)
    );

    // Settled: nothing more to send.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
    untouched(&sim.view(&list), &from_elsewhere);
}

#[test]
fn removal_archive_archives_members_that_left_every_segment_and_nobody_else() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let from_elsewhere = first_run(&sim, &s, &list, "archive");
    let y_before = member(&sim.view(&list), Y).clone();

    s.import(&Cast::after(false).profiles);
    s.run_export(0);

    let v = sim.view(&list);
    assert_eq!(
        member(&v, B).status,
        Status::Archived,
        "B left every segment: archived"
    );
    let a = member(&v, A);
    assert_eq!(
        (a.status, a.tags.clone()),
        (Status::Subscribed, vec!["romania".to_string()]),
        "A is still in a segment: untagged, not archived"
    );
    assert_eq!(tags(&v, C), [HIGH_VALUE_TAG, "romania"]);
    assert_eq!(member(&v, D).status, Status::Subscribed);
    assert_eq!(member(&v, E).status, Status::Subscribed);
    assert_eq!(member(&v, Y), &y_before, "Y did not change");
    untouched(&v, &from_elsewhere);
    let run = s.show_json(2);
    assert_eq!(count(&run, "archived"), 1);

    // An archived member stays archived, and nothing is sent again.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
    assert_eq!(member(&sim.view(&list), B).status, Status::Archived);
}

#[test]
fn removal_unsubscribe_unsubscribes_members_that_left_every_segment_and_nobody_else() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let from_elsewhere = first_run(&sim, &s, &list, "unsubscribe");

    s.import(&Cast::after(true).profiles);
    s.run_export(0);

    let v = sim.view(&list);
    let b = member(&v, B);
    assert_eq!(
        (b.status, b.tags.is_empty()),
        (Status::Unsubscribed, true),
        "B left every segment: untagged and unsubscribed"
    );
    assert_eq!(merge(b, "FNAME"), "Hélène", "its fields stay");
    let a = member(&v, A);
    assert_eq!(
        (a.status, a.tags.clone()),
        (Status::Subscribed, vec!["romania".to_string()])
    );
    let y = member(&v, Y);
    assert_eq!(
        (y.status, y.tags.clone()),
        (Status::Transactional, vec!["Partner".to_string()]),
        "a transactional contact has no subscription to end"
    );
    untouched(&v, &from_elsewhere);
    assert_eq!(count(&s.show_json(2), "unsubscribed"), 1);
    assert_eq!(sim.counters().compliance_refusals, 0);

    // B comes back into a segment: tagged again, but not resubscribed (B is unsubscribed now).
    let mut back = Cast::after(true);
    back.set(B, |p| p.ltv = 800.0);
    s.import(&back.profiles);
    s.run_export(0);
    let b = member(&sim.view(&list), B).clone();
    assert_eq!(
        (b.status, b.tags),
        (Status::Unsubscribed, vec![HIGH_VALUE_TAG.to_string()])
    );
    assert_eq!(sim.counters().compliance_refusals, 0);
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
}

/// A contact that joined from elsewhere (a signup form), was in a segment (so the export
/// tagged it) and then left every segment: under `--removal archive` or `unsubscribe` it only
/// loses the export's tag. The export did not add it, so it never archives or unsubscribes it.
#[test]
fn a_contact_the_export_only_tagged_is_never_archived_or_unsubscribed() {
    const W: &str = "mara.signup@proton.me"; // from the signup form, in "romania"
    for removal in ["archive", "unsubscribe"] {
        let sim = Sim::start();
        let list = sim.new_list("Newsletter");
        let s = Session::new(&sim);
        sim.add_member(
            &list,
            W,
            "subscribed",
            json!({"FNAME": "Mara"}),
            &["Website"],
        );
        let mut cast = Cast::before();
        cast.profiles
            .push(Profile::new("C008", W, "Mara", "Dinu", "Sibiu", "RO", 40.0));
        s.setup(&list, &cast.profiles, &["--removal", removal]);
        s.run_export(0);
        assert_eq!(tags(&sim.view(&list), W), ["Website", "romania"]);

        // W moves abroad (leaves "romania"), and so does B, whom the export added.
        cast.set(W, |p| p.country = "AT".into());
        cast.set(B, |p| p.ltv = 50.0);
        s.import(&cast.profiles);
        s.run_export(0);
        let v = sim.view(&list);
        let w = member(&v, W);
        assert_eq!(
            (w.status, w.tags.clone()),
            (Status::Subscribed, vec!["Website".to_string()]),
            "--removal {removal}: only the export's tag is taken back"
        );
        let b = member(&v, B).status;
        let want = if removal == "archive" {
            Status::Archived
        } else {
            Status::Unsubscribed
        };
        assert_eq!(
            b, want,
            "--removal {removal} applies to B, whom the export added"
        );
        let run = s.show_json(2);
        assert_eq!(count(&run, "archived") + count(&run, "unsubscribed"), 1);
        assert_eq!(sim.counters().compliance_refusals, 0);
    }
}
