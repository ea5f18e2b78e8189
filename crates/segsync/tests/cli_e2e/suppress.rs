//! Known bad records held back (issue 18, item 7): suppression lists (per export and for the
//! installation; addresses or profile keys never sent) and refusals for good remembered, so
//! that runs after the first are clean. Under the pessimistic profile, the addresses
//! Mailchimp refuses for now only are deferred and sent again, never remembered.

use serde_json::Value;

use crate::common::*;

const FAKE: &str = "jean.dupont@mailinator.com";

fn fake() -> Profile {
    Profile::new("C003", FAKE, "Jean", "Dupont", "Paris", "RO", 900.0)
}

/// The standard export's members plus enough others that the pessimistic profile defers a
/// few of them.
fn crowd(special: Vec<Profile>) -> Vec<Profile> {
    let mut all = special;
    all.extend(people(150).into_iter().map(|mut p| {
        p.id = format!("P{}", &p.id[1..]);
        p
    }));
    all
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The last run after the deferred records were sent: the counts of the first run, and
/// those of every run summed for what happened across them.
fn settled_counts(settled: &Settled, name: &str) -> u64 {
    settled.runs.iter().map(|r| count(r, name)).sum()
}

#[test]
fn suppressed_addresses_and_keys_are_never_sent_and_their_scope_holds() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let other_list = sim.new_list("Other");
    let s = Session::new(&sim);
    let profiles = crowd(vec![ana(), helene(), stefan()]);
    s.setup(&list, &profiles, &[]);
    let mut other = s.export_args(&other_list, &[]);
    other[2] = "other".into();
    s.ok(&other.iter().map(String::as_str).collect::<Vec<_>>());

    // Ana for every export (written as a person would type it), Hélène's key for one.
    s.ok(&[
        "suppressions",
        "add",
        "--email",
        " Ana.Popescu@Gmail.com ",
        "--note",
        "asked",
    ]);
    s.ok(&["suppressions", "add", "--export", EXPORT, "--key", "C002"]);
    let bad = s.expect(2, &["suppressions", "add", "--email", "not-an-address"]);
    assert!(
        bad.stderr.contains("invalid email address"),
        "{}",
        bad.text()
    );
    let listed = json(&s.ok(&["suppressions", "list", "--json"]));
    assert_eq!(listed[0]["value"], "ana.popescu@gmail.com", "{listed}");

    let plan = json(&s.ok(&["plan", EXPORT, "--json"]));
    assert_eq!(plan["suppressed"], 2, "{plan}");
    let run = s.run_settled(&sim, 0, &[]);
    assert_eq!(count(run.first(), "suppressed"), 2, "{:?}", run.runs);
    assert_eq!(settled_counts(&run, "failed"), 0);
    let v = sim.view(&list);
    assert!(find(&v, "ana.popescu@gmail.com").is_none());
    assert!(find(&v, "helene.rousseau@orange.fr").is_none());
    assert!(find(&v, "stefan.gheorghiu@yahoo.ro").is_some());
    let shown = s.show(s.last_run());
    assert!(shown.contains("suppressed 2"), "{shown}");

    // The other export: the installation's list holds, the newsletter's does not.
    run_until_settled(&sim, &s, "other");
    let v = sim.view(&other_list);
    assert!(find(&v, "ana.popescu@gmail.com").is_none());
    assert!(find(&v, "helene.rousseau@orange.fr").is_some());

    // A member already there that becomes suppressed is left as it is.
    s.ok(&[
        "suppressions",
        "add",
        "--export",
        EXPORT,
        "--email",
        "stefan.gheorghiu@yahoo.ro",
    ]);
    let mut changed = profiles.clone();
    changed[2].city = "Brașov".into();
    changed[2].country = "FR".into();
    s.import(&changed);
    let run = s.run_settled(&sim, 0, &[]);
    assert_eq!(count(run.first(), "suppressed"), 3);
    let v = sim.view(&list);
    let stefan = member(&v, "stefan.gheorghiu@yahoo.ro");
    assert_eq!(merge(stefan, "CITY"), "Iași", "not updated");
    assert_eq!(stefan.tags, vec!["romania".to_string()], "not untagged");

    // Off the list: sent again.
    s.ok(&["suppressions", "remove", "--email", "ANA.POPESCU@gmail.com"]);
    s.run_settled(&sim, 0, &[]);
    assert!(find(&sim.view(&list), "ana.popescu@gmail.com").is_some());
    let gone = s.expect(
        2,
        &["suppressions", "remove", "--email", "ana.popescu@gmail.com"],
    );
    assert!(
        gone.stderr.contains("not on the installation's"),
        "{}",
        gone.text()
    );

    // Many at once: a CSV with an email column; a bad line is reported with its number.
    let csv = s.path("bounced.csv");
    std::fs::write(&csv, "customer,email\nC9,Zoe@Web.de\nC8,not-an-address\n").unwrap();
    let imported = s.expect(
        2,
        &[
            "suppressions",
            "import",
            csv.to_str().unwrap(),
            "--export",
            EXPORT,
        ],
    );
    assert!(imported.stdout.contains("1 added"), "{}", imported.text());
    assert!(imported.stderr.contains("line 3"), "{}", imported.text());
    let listed = json(&s.ok(&["suppressions", "list", "--export", EXPORT, "--json"]));
    assert!(listed.to_string().contains("zoe@web.de"), "{listed}");

    // Removing an export removes its list.
    s.ok(&["export", "remove", EXPORT]);
    let missing = s.expect(2, &["suppressions", "list", "--export", EXPORT]);
    assert!(missing.stderr.contains("no export"), "{}", missing.text());
}

#[test]
fn a_refusal_for_good_is_remembered_until_the_profile_changes() {
    let sim = Sim::start();
    // Some new addresses refused for now, whatever the profile: those are not remembered.
    sim.settings(|st| st.variants.recent_signups_rate = 0.05);
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = crowd(vec![ana(), helene(), fake()]);
    s.setup(&list, &profiles, &[]);

    let first = s.run_export(3);
    assert!(
        first.stdout.contains("succeeded with errors"),
        "{}",
        first.text()
    );
    let refusals = json(&s.ok(&["refusals", "list", "--export", EXPORT, "--json"]));
    let remembered: Vec<&str> = refusals
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        remembered,
        [FAKE],
        "only the refusal for good, none deferred"
    );
    assert!(count_deferred(&s, 1) > 0, "some were refused for now only");
    assert_eq!(refusals[0]["profile_key"], "C003");
    assert!(refusals[0].get("fingerprint").is_none(), "{refusals}");

    // The next run does not send it, and is clean.
    sim.lapse_recent_signups();
    let plan = json(&s.ok(&["plan", EXPORT, "--json"]));
    assert_eq!(plan["remembered_refusals"], 1, "{plan}");
    assert_eq!(plan["summary"]["creates"], count_deferred(&s, 1), "{plan}");
    let clean = s.run_settled(&sim, 0, &[]);
    let run = clean.first();
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(
        (count(run, "failed"), count(run, "remembered_refusals")),
        (0, 1)
    );
    assert!(s.show(clean.first_id()).contains("remembered refusals 1"));

    // Its profile changes: tried again, once.
    profiles[2].city = "Lyon".into();
    s.import(&profiles);
    let again = s.run_export(3);
    assert!(
        again.stdout.contains("succeeded with errors"),
        "{}",
        again.text()
    );
    let run = s.show_json(s.last_run());
    assert_eq!(
        (count(&run, "failed"), count(&run, "remembered_refusals")),
        (1, 0)
    );
    s.run_settled(&sim, 0, &[]);

    // Forgotten: tried again; moved to the suppression list: held for good.
    s.ok(&["refusals", "forget", "--export", EXPORT, "--email", FAKE]);
    s.run_export(3);
    s.ok(&["refusals", "suppress", "--export", EXPORT, "--email", FAKE]);
    assert_eq!(
        json(&s.ok(&["refusals", "list", "--export", EXPORT, "--json"])),
        serde_json::json!([])
    );
    let entries = json(&s.ok(&["suppressions", "list", "--export", EXPORT, "--json"]));
    assert_eq!(entries[0]["value"], FAKE, "{entries}");
    assert!(
        entries[0]["note"].as_str().unwrap().contains("fake"),
        "{entries}"
    );
    let held = s.run_settled(&sim, 0, &[]);
    assert_eq!(count(held.first(), "suppressed"), 1);
    assert!(find(&sim.view(&list), FAKE).is_none());
}

/// How many records run `run` deferred (sent by the next run).
fn count_deferred(s: &Session, run: i64) -> u64 {
    count(&s.show_json(run), "deferred")
}

/// Runs export `name` until nothing is deferred (the pessimistic profile refuses a few new
/// addresses for now), as [`Session::run_settled`] does for the standard export.
fn run_until_settled(sim: &Sim, s: &Session, name: &str) {
    for _ in 0..3 {
        let out = s.sh(&["run", name, "--quiet"]);
        if out.code == 0 {
            return;
        }
        assert_eq!(out.code, 3, "{}", out.text());
        assert!(count_deferred(s, s.last_run()) > 0, "{}", out.text());
        sim.lapse_recent_signups();
    }
    panic!("export {name} still deferring records after three runs");
}
