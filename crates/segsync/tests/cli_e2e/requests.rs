//! Requests in proportion to the change (issue 17): new members carry their tags in the
//! create and updated ones the tags they gain in the update, with tag batches only for those
//! whose tags did not take; re-runs read only what can differ from what segsync delivered.

use mailchimp_sim::config::BatchItemTags;
use mailchimp_sim::Status;

use crate::common::*;

const TAG_BATCH: &str = "POST /3.0/lists/{list_id}/segments/{segment_id}";

fn requests(sim: &Sim, endpoint: &str) -> u64 {
    sim.counters()
        .by_endpoint
        .get(endpoint)
        .copied()
        .unwrap_or(0)
}

/// Whether Mailchimp applies batch items' `tags` is not documented (the probe checks an
/// account): either way the audience ends with every tag, the run counts each, and a re-run
/// has nothing to send. When it applies them, a first export sends no tag batch at all.
#[test]
fn new_members_carry_their_tags_in_the_create_and_fall_back_to_tag_batches() {
    for tags in [BatchItemTags::Applied, BatchItemTags::Ignored] {
        let sim = Sim::start();
        sim.settings(|s| s.variants.batch_item_tags = tags);
        let list = sim.new_list("Newsletter");
        let s = Session::new(&sim);
        let profiles = people(700);
        let want = expected(&profiles, Status::Subscribed);
        s.setup(&list, &profiles, &[]);
        // The pessimistic profile defers a few new addresses for now: later runs send them.
        let settled = s.run_settled(&sim, 0, &[]);
        assert_eq!(
            holding(&sim.view(&list), FIELDS),
            want,
            "{tags:?}: every member with its tags"
        );
        let tagged = settled.sum("tagged");
        let tag_adds: u64 = want.values().map(|(_, _, tags)| tags.len() as u64).sum();
        assert_eq!(tagged, tag_adds, "{tags:?}: every tag counted once");
        let tag_batches = requests(&sim, TAG_BATCH);
        match tags {
            BatchItemTags::Applied => assert_eq!(
                tag_batches,
                0,
                "the creates carried the tags: {:?}",
                sim.counters().by_endpoint
            ),
            BatchItemTags::Ignored => assert!(
                tag_batches >= 2,
                "tags Mailchimp ignored went by tag batches in the same run: {:?}",
                sim.counters().by_endpoint
            ),
            BatchItemTags::NewMembersOnly => unreachable!("not a reading of this test"),
        }

        // Nothing changed: nothing to send, tags included.
        let writes = sim.counters().writes;
        s.run_export(0);
        assert_eq!(sim.counters().writes, writes, "{tags:?}");
    }
}

/// A re-run's updated members carry the tags they gain in the update itself: where Mailchimp
/// applies them, the re-run sends no tag batch; where it ignores them (on every item, or on
/// updates only), the answer shows it and tag batches add them in the same run. Either way
/// the audience ends with every tag, each counted once, and the next run sends nothing.
#[test]
fn updated_members_carry_the_tags_they_gain_and_fall_back_to_tag_batches() {
    for tags in [
        BatchItemTags::Applied,
        BatchItemTags::NewMembersOnly,
        BatchItemTags::Ignored,
    ] {
        let sim = Sim::start();
        sim.settings(|s| s.variants.batch_item_tags = tags);
        let list = sim.new_list("Newsletter");
        let s = Session::new(&sim);
        let mut profiles = people(400);
        s.setup(&list, &profiles, &[]);
        s.run_settled(&sim, 0, &[]);
        // Romanian members below the high-value line move house and spend more: each
        // update carries the tag it gains, and nothing else changes.
        let mut gaining = 0;
        for p in profiles
            .iter_mut()
            .filter(|p| p.romanian() && !p.high_value())
        {
            p.city = format!("{} (new)", p.city);
            p.ltv += 600.0;
            gaining += 1;
        }
        assert!(gaining >= 20, "{gaining} members gain a tag");
        s.import(&profiles);
        let before = sim.counters();
        let settled = s.run_settled(&sim, 0, &[]);
        assert_eq!(
            holding(&sim.view(&list), FIELDS),
            expected(&profiles, Status::Subscribed),
            "{tags:?}: every member with its new city and tags"
        );
        assert_eq!(
            settled.sum("tagged"),
            gaining,
            "{tags:?}: each tag counted once"
        );
        assert_eq!(settled.sum("updated"), gaining, "{tags:?}");
        let tag_batches =
            requests(&sim, TAG_BATCH) - before.by_endpoint.get(TAG_BATCH).copied().unwrap_or(0);
        match tags {
            BatchItemTags::Applied => assert_eq!(
                tag_batches,
                0,
                "the updates carried the tags: {:?}",
                sim.counters().by_endpoint
            ),
            _ => assert!(
                tag_batches >= 1,
                "{tags:?}: tags Mailchimp ignored went by tag batches in the same run: {:?}",
                sim.counters().by_endpoint
            ),
        }
        let writes = sim.counters().writes;
        s.run_export(0);
        assert_eq!(
            sim.counters().writes,
            writes,
            "{tags:?}: nothing left to send"
        );
    }
}

const MEMBERS_READ: &str = "GET /3.0/lists/{list_id}/members";

/// After a first export, a re-run without change reads only the members whose status left
/// what segsync delivered: a few empty pages, not the members it just wrote.
#[test]
fn an_unchanged_rerun_does_not_read_back_the_exports_own_writes() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(12000);
    let want = expected(&profiles, Status::Subscribed);
    assert!(
        want.len() > 6000,
        "more than six pages of members: {}",
        want.len()
    );
    s.setup(&list, &profiles, &[]);
    s.run_settled(&sim, 0, &[]);
    assert_eq!(holding(&sim.view(&list), FIELDS), want);

    let before = sim.counters();
    s.run_export(0);
    let after = sim.counters();
    assert_eq!(after.writes, before.writes);
    let reads =
        |c: &mailchimp_sim::CountersView| c.by_endpoint.get(MEMBERS_READ).copied().unwrap_or(0);
    assert!(
        reads(&after) - reads(&before) <= 5,
        "one page per status that can differ, none of the export's own: {:?}",
        after.by_endpoint
    );
    assert!(
        after.requests - before.requests <= 10,
        "{} requests",
        after.requests - before.requests
    );
}

/// One person of each kind of change only Mailchimp can make.
struct Changed {
    unsubscribed: String,
    bounced: String,
    archived: String,
    deleted: String,
}

impl Changed {
    fn pick(want: &Holding, skip: usize) -> Changed {
        let mut emails = want.keys().skip(skip).step_by(97).cloned();
        let mut next = || emails.next().expect("enough members");
        Changed {
            unsubscribed: next(),
            bounced: next(),
            archived: next(),
            deleted: next(),
        }
    }

    fn all(&self) -> [&str; 4] {
        [
            &self.unsubscribed,
            &self.bounced,
            &self.archived,
            &self.deleted,
        ]
    }

    /// Made in Mailchimp: an unsubscribe, a bounce, an archive, a permanent delete.
    fn make(&self, sim: &Sim, list: &str) {
        sim.force_status(list, &self.unsubscribed, "unsubscribed");
        sim.force_status(list, &self.bounced, "cleaned");
        let (code, body) = sim.api(
            "DELETE",
            &format!("/lists/{list}/members/{}", self.archived),
            None,
        );
        assert_eq!(code, 204, "{body}");
        let (code, body) = sim.api(
            "POST",
            &format!(
                "/lists/{list}/members/{}/actions/delete-permanent",
                self.deleted
            ),
            None,
        );
        assert_eq!(code, 204, "{body}");
    }

    /// The run that wanted to write all four (new cities) honoured every change.
    fn honoured(&self, sim: &Sim, list: &str, profiles: &[Profile]) {
        let v = sim.view(list);
        let city = |email: &str| {
            profiles
                .iter()
                .find(|p| p.email.to_lowercase() == email)
                .map(|p| p.city.clone())
                .unwrap()
        };
        let u = member(&v, &self.unsubscribed);
        assert_eq!(u.status, Status::Unsubscribed, "not resubscribed");
        assert_eq!(
            merge(u, "CITY"),
            city(&self.unsubscribed),
            "updated all the same"
        );
        assert_eq!(member(&v, &self.bounced).status, Status::Cleaned);
        let a = member(&v, &self.archived);
        assert_eq!(a.status, Status::Archived, "not unarchived");
        assert_ne!(merge(a, "CITY"), city(&self.archived), "not written at all");
        assert!(find(&v, &self.deleted).is_none(), "not re-added");
    }
}

fn moved(profiles: &mut [Profile], emails: &[&str]) {
    for p in profiles.iter_mut() {
        if emails.contains(&p.email.to_lowercase().as_str()) {
            p.city = format!("{} (nou)", p.city);
        }
    }
}

/// An unsubscribe, a bounce, an archive and a permanent delete made in Mailchimp after a run,
/// and four more made while the next run is sending, are all honoured by the run after
/// each: whatever the status-filtered reads leave out is only what segsync delivered itself.
#[test]
fn changes_made_in_mailchimp_during_and_after_a_run_are_honoured_by_the_next() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = people(1500);
    let want = expected(&profiles, Status::Subscribed);
    s.setup(&list, &profiles, &[]);
    s.run_settled(&sim, 0, &[]);

    // After run 1.
    let after = Changed::pick(&want, 0);
    after.make(&sim, &list);
    // Run 2 writes those four and many others (slowly), and four more change meanwhile.
    let during = Changed::pick(&want, 1);
    let others: Vec<String> = want
        .keys()
        .filter(|e| !during.all().contains(&e.as_str()))
        .cloned()
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    moved(&mut profiles, &others);
    s.import(&profiles);
    sim.settings(|st| {
        st.latency.base_ms = 50.0;
        st.latency.per_item_ms = 1.0;
    });
    let args = ["run", EXPORT, "--quiet", "--max-in-flight", "1"];
    let updated = sim.counters().members_updated;
    let mut child = s.spawn(&args);
    wait_until(
        "run 2 is sending",
        std::time::Duration::from_secs(120),
        || {
            assert!(child.try_wait().unwrap().is_none(), "run 2 ended too soon");
            sim.counters().members_updated > updated
        },
    );
    during.make(&sim, &list);
    let out = s.wait(&args, child);
    assert_eq!(
        out.code, 3,
        "the deleted member is refused once:\n{}",
        out.stdout
    );
    after.honoured(&sim, &list, &profiles);
    let errors = s.errors_csv(s.last_run());
    assert!(
        errors
            .iter()
            .any(|e| e.1 == after.deleted && e.2.contains("permanently deleted")),
        "{errors:?}"
    );

    // Run 3 writes the four changed during run 2.
    sim.settings(|st| {
        st.latency.base_ms = 0.0;
        st.latency.per_item_ms = 0.0;
    });
    moved(&mut profiles, &during.all());
    s.import(&profiles);
    s.run_export(3);
    during.honoured(&sim, &list, &profiles);
    after.honoured(&sim, &list, &profiles);
    assert_eq!(
        sim.counters().compliance_refusals,
        2,
        "only the two asks segsync could not avoid (a delete is listed nowhere)"
    );

    // And nothing is asked again.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
}
