//! Incremental runs: nothing changed costs no write; a change costs requests for the change.

use mailchimp_sim::Status;

use crate::common::*;

#[test]
fn rerun_without_change_sends_no_write() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(60);
    let want = expected(&profiles, Status::Subscribed);
    s.setup(&list, &profiles, &[]);
    s.run_export(0);
    assert_eq!(holding(&sim.view(&list), FIELDS), want);

    let before = sim.counters();
    let out = s.run_export(0);
    let json = s.expect(0, &["run", EXPORT, "--json"]);
    let after = sim.counters();
    let report: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("run --json prints JSON on stdout");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["run_id"], 3);
    assert_eq!(count(&report, "unchanged"), want.len() as u64);
    assert!(
        json.stderr.is_empty(),
        "--json shows no progress: {}",
        json.stderr
    );
    assert_eq!(
        after.writes, before.writes,
        "a re-run without change sends no write request: {:?}",
        after.by_endpoint
    );
    assert!(
        after.requests > before.requests,
        "it does read the audience's changes"
    );
    assert_eq!(holding(&sim.view(&list), FIELDS), want);

    let members = want.len() as u64;
    assert!(
        out.stdout.contains(&format!(
            "created 0, updated 0, unchanged {members}, tagged 0, untagged 0"
        )),
        "{}",
        out.stdout
    );
    let run = s.show_json(2);
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(
        (
            count(&run, "members"),
            count(&run, "unchanged"),
            count(&run, "created"),
            count(&run, "updated")
        ),
        (members, members, 0, 0)
    );

    // And `plan` agrees: nothing to send.
    let plan = s.ok(&["plan", EXPORT]);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Mailchimp", "requests", "0"]),
        "{}",
        plan.stdout
    );
    assert_eq!(sim.counters().writes, before.writes);
}

#[test]
fn changed_attributes_update_only_the_changed_members() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = people(60);
    s.setup(&list, &profiles, &[]);
    s.run_export(0);
    let members = expected(&profiles, Status::Subscribed).len() as u64;

    // Three members change (a first name, a last name, a city); a profile in no chosen
    // segment changes too, which concerns no member.
    let sent: Vec<usize> = (0..profiles.len())
        .filter(|&i| profiles[i].high_value() || profiles[i].romanian())
        .collect();
    let unsent = (0..profiles.len())
        .find(|&i| !(profiles[i].high_value() || profiles[i].romanian()))
        .expect("a profile in no segment");
    profiles[sent[0]].first = "Ilinca".into();
    profiles[sent[5]].last = "Dumitrescu-Pop".into();
    profiles[sent[9]].city = "Brașov".into();
    profiles[unsent].city = "Napoli".into();
    s.import(&profiles);

    let before = sim.counters();
    let out = s.run_export(0);
    let after = sim.counters();
    assert_eq!(
        after.members_updated - before.members_updated,
        3,
        "only the three changed members are written"
    );
    assert_eq!(after.members_created, before.members_created);
    assert_eq!(
        after.writes - before.writes,
        1,
        "three changes fit in one batch upsert: {:?}",
        after.by_endpoint
    );
    assert!(
        out.stdout
            .contains(&format!("created 0, updated 3, unchanged {}", members - 3)),
        "{}",
        out.stdout
    );
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
    let m = sim.view(&list);
    assert_eq!(
        merge(member(&m, &profiles[sent[0]].email), "FNAME"),
        "Ilinca"
    );
    assert_eq!(
        merge(member(&m, &profiles[sent[9]].email), "CITY"),
        "Brașov"
    );

    // The change was delivered: the next run has nothing to send.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
}
