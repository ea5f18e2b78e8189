//! Requests in proportion to the change (issue 17): new members carry their tags in the
//! create, with tag batches only for those whose tags did not take; re-runs read only what
//! can differ from what segsync delivered.

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
        s.run_export(0);
        sim.lapse_recent_signups();
        // The pessimistic profile defers a few new addresses for now: the next run sends them.
        s.run_export(0);
        assert_eq!(
            holding(&sim.view(&list), FIELDS),
            want,
            "{tags:?}: every member with its tags"
        );
        let tagged: u64 = (1..=2).map(|r| count(&s.show_json(r), "tagged")).sum();
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
        }

        // Nothing changed: nothing to send, tags included.
        let writes = sim.counters().writes;
        s.run_export(0);
        assert_eq!(sim.counters().writes, writes, "{tags:?}");
    }
}
