//! Crash safety: `kill -9` in the middle of a run, then `segsync run` again, ends with the
//! audience an uninterrupted run makes, every member created exactly once.

use std::time::Duration;

use mailchimp_sim::Status;

use crate::common::*;

const PROFILES: usize = 3000;

/// Requests take 50 ms plus 1 ms per member they carry: a batch of 500 takes over half a
/// second, so a run with one request in flight is easily caught between two batches.
fn slow(sim: &Sim) {
    sim.settings(|st| {
        st.latency.base_ms = 50.0;
        st.latency.per_item_ms = 1.0;
        // Creates' tags ignored: every tag goes by a tag batch, so that a run can be caught
        // tagging.
        st.variants.batch_item_tags = mailchimp_sim::config::BatchItemTags::Ignored;
    });
}

/// What one uninterrupted run of the standard export of `profiles` leaves in a fresh
/// audience (a fresh simulator and home, the same latency), with the run that sends what it
/// deferred, if it deferred anything.
fn uninterrupted(profiles: &[Profile]) -> Holding {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, profiles, &[]);
    slow(&sim);
    s.run_settled(&sim, 0, &[]);
    assert_eq!(
        sim.counters().members_created,
        expected(profiles, Status::Subscribed).len() as u64
    );
    holding(&sim.view(&list), FIELDS)
}

const TAG_ENDPOINT: &str = "POST /3.0/lists/{list_id}/segments/{segment_id}";

#[test]
fn kill_9_while_tagging_then_resume_ends_as_an_uninterrupted_run() {
    let profiles = people(PROFILES);
    let want = expected(&profiles, Status::Subscribed);
    let total = want.len() as u64;
    let reference = uninterrupted(&profiles);
    assert_eq!(reference, want);

    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &profiles, &[]);
    slow(&sim);
    let args = ["run", EXPORT, "--quiet", "--max-in-flight", "1"];
    let mut child = s.spawn(&args);
    let tag_requests = |sim: &Sim| {
        sim.counters()
            .by_endpoint
            .get(TAG_ENDPOINT)
            .copied()
            .unwrap_or(0)
    };
    wait_until("the run is tagging", Duration::from_secs(120), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be interrupted"
        );
        tag_requests(&sim) > 0
    });
    child.kill().expect("kill -9");
    s.wait(&args, child);
    // Mailchimp refused some new addresses for now (none under the default profile).
    let refused_for_now = sim.recent_signups_refused();
    assert_eq!(
        sim.counters().members_created,
        total - refused_for_now,
        "every member was sent before the kill"
    );
    let tagged_before: usize = sim.view(&list).tags.iter().map(|t| t.member_count).sum();
    let tags_wanted: usize = want.values().map(|(_, _, t)| t.len()).sum();
    assert!(
        tagged_before < tags_wanted,
        "interrupted while tagging: {tagged_before} of {tags_wanted}"
    );

    let resumed = s.run_settled(&sim, 0, &[]);
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        reference,
        "the same audience as an uninterrupted run"
    );
    let c = sim.counters();
    assert_eq!(c.members_created, total);
    assert_eq!(c.compliance_refusals, 0);
    assert_eq!(s.listed_outcome(1), "interrupted");
    assert_eq!(s.listed_outcome(2), resumed.first_outcome("succeeded"));
    assert_eq!(s.listed_outcome(resumed.last_id()), "succeeded");
    let run = s.show_json(2);
    assert_eq!(
        (count(&run, "created"), count(&run, "updated")),
        (0, 0),
        "members were delivered and checkpointed before the kill: {run}"
    );
    assert_eq!(
        (
            resumed.deferred(),
            resumed.sum("created"),
            resumed.sum("updated")
        ),
        (refused_for_now, refused_for_now, 0),
        "only what Mailchimp refused for now is sent after the kill: {:?}",
        resumed.runs
    );

    sim.settings(|st| st.latency = Default::default());
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
}

#[test]
fn kill_9_mid_run_then_resume_ends_as_an_uninterrupted_run() {
    let profiles = people(PROFILES);
    let want = expected(&profiles, Status::Subscribed);
    let total = want.len() as u64;
    assert!(total > 1500, "several batches of 500: {total}");

    // The reference: a fresh simulator and home, one run, no interruption.
    let reference = uninterrupted(&profiles);
    assert_eq!(reference, want);

    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &profiles, &[]);
    slow(&sim);

    // One request in flight, so batches land one after the other.
    let args = ["run", EXPORT, "--quiet", "--max-in-flight", "1"];
    let mut child = s.spawn(&args);
    wait_until(
        "some members are created, not all",
        Duration::from_secs(120),
        || {
            let created = sim.counters().members_created;
            assert!(
                created < total,
                "the run finished before it could be interrupted"
            );
            created > 0
        },
    );
    child.kill().expect("kill -9"); // SIGKILL on Unix
    let killed = s.wait(&args, child);
    assert_ne!(killed.code, 0, "the run was killed");
    // Right after the crash, the history already tells the truth.
    assert_eq!(
        s.listed_outcome(1),
        "interrupted",
        "a dead run is not shown as running"
    );
    let created_before = sim.counters().members_created;
    assert!(
        created_before > 0 && created_before < total,
        "interrupted mid-run: {created_before} of {total}"
    );

    let resumed = s.run_settled(&sim, 0, &[]);
    let out = &resumed.outs[0];
    assert!(
        out.stdout.contains(&format!(
            "run 2 of export \"newsletter\": {}",
            resumed.first_outcome("succeeded").replace('_', " ")
        )),
        "{}",
        out.stdout
    );

    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        reference,
        "the same audience as an uninterrupted run"
    );
    let c = sim.counters();
    assert_eq!(
        c.members_created, total,
        "every member created exactly once over both runs"
    );
    assert_eq!(c.compliance_refusals, 0);
    assert_eq!(s.listed_outcome(1), "interrupted");
    assert_eq!(s.listed_outcome(2), resumed.first_outcome("succeeded"));
    assert_eq!(s.listed_outcome(resumed.last_id()), "succeeded");
    let first = s.show(1);
    assert!(first.contains("interrupted"), "{first}");

    // The checkpoint was true: nothing is left to send.
    sim.settings(|st| st.latency = Default::default());
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
}

/// A run that tried to create a contact which turned out to be there already, from
/// elsewhere, and was killed after updating it (through the engine's test hook, right after
/// that update's answer, before its checkpoint): the next run does not take that contact for
/// one the export created, so `--removal archive` never archives it when it leaves.
#[test]
fn a_contact_from_elsewhere_met_by_a_killed_run_is_not_taken_for_the_exports_own() {
    const X: &str = "mara.signup@proton.me";
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    sim.add_member(&list, X, "subscribed", serde_json::json!({}), &["Website"]);
    let mut profiles = people(20);
    s.setup(&list, &profiles, &["--removal", "archive"]);
    s.run_export(0);

    // X's profile arrives; the audience has not changed since the last read (as far as the
    // next run's `since_last_changed` tells), so the run believes X is new and tries to
    // create it: Mailchimp says it exists, segsync updates it, and dies right then.
    let read_at = |when: chrono::DateTime<chrono::Utc>| {
        let db = rusqlite::Connection::open(s.home().join("state.sqlite")).unwrap();
        db.execute(
            "UPDATE sync_marks SET audience_read_at = ?1",
            [when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)],
        )
        .unwrap();
    };
    read_at(chrono::Utc::now() + chrono::Duration::days(1));
    profiles.push(Profile::new("C9", X, "Mara", "Dinu", "Sibiu", "RO", 40.0));
    s.import(&profiles);
    let args = ["run", EXPORT, "--quiet"];
    let mut c = s.command(&args);
    c.env("SEGSYNC_CRASH_AFTER_ACK", "2"); // the create ("exists"), then the update
    let killed = s.run_command(&args, c);
    assert_ne!(killed.code, 0, "{}", killed.text());
    assert_eq!(
        merge(member(&sim.view(&list), X), "CITY"),
        "Sibiu",
        "updated"
    );

    // The next run sees X changed, and sends it its tag; X is still not the export's.
    read_at(chrono::Utc::now() - chrono::Duration::days(1));
    s.run_export(0);
    assert_eq!(tags(&sim.view(&list), X), ["Website", "romania"]);
    profiles.last_mut().unwrap().country = "AT".into();
    s.import(&profiles);
    s.run_export(0);
    let v = sim.view(&list);
    let x = member(&v, X);
    assert_eq!(
        (x.status, x.tags.clone()),
        (Status::Subscribed, vec!["Website".to_string()]),
        "untagged, never archived"
    );
    assert_eq!(sim.counters().compliance_refusals, 0);
}

fn tags(view: &mailchimp_sim::ListView, email: &str) -> Vec<String> {
    member(view, email).tags.clone()
}
