//! A large run sends while its diff goes on (issue 17, item 4): from 1,000 staged members,
//! each batch of creates or updates leaves as soon as the diff has planned it, and the tag
//! and removal phases follow from the whole plan. What such a run sends is what the whole
//! plan says: `segsync plan` counts the same creates, updates, tag changes and archives the
//! run then makes, the audience ends as the profiles say, and the next run sends nothing,
//! whether or not Mailchimp applies the tags batch items carry.

use mailchimp_sim::config::BatchItemTags;
use mailchimp_sim::Status;
use serde_json::Value;

use crate::common::*;

fn plan(s: &Session) -> Value {
    serde_json::from_str(&s.ok(&["plan", EXPORT, "--json"]).stdout).expect("plan --json")
}

/// The plan's count `name` against the runs' (summed over a settled run's runs).
fn same(plan: &Value, name: &str, settled: &Settled, count: &str, what: &str) {
    assert_eq!(
        plan["summary"][name].as_u64().expect(name),
        settled.sum(count),
        "{what}: the plan's {name} and the run's {count}\nplan: {plan}\nruns: {:?}",
        settled.runs
    );
}

#[test]
fn a_run_that_sends_while_it_diffs_sends_what_the_plan_says() {
    for tags in [BatchItemTags::Applied, BatchItemTags::Ignored] {
        let sim = Sim::start();
        sim.settings(|s| s.variants.batch_item_tags = tags);
        let list = sim.new_list("Newsletter");
        let s = Session::new(&sim);
        let mut profiles = people(3_000);
        s.setup(&list, &profiles, &["--removal", "archive"]);
        let what = format!("{tags:?}, first run");
        let first = plan(&s);
        let members = expected(&profiles, Status::Subscribed);
        assert!(members.len() >= 1_000, "{} members", members.len());
        assert_eq!(first["summary"]["creates"], members.len() as u64, "{first}");
        let settled = s.run_settled(&sim, 0, &[]);
        same(&first, "creates", &settled, "created", &what);
        assert_eq!(holding(&sim.view(&list), FIELDS), members, "{what}");

        // A re-run with every kind of change: new members, changed ones, members gaining
        // and losing a tag, members leaving every segment (archived).
        let before = expected(&profiles, Status::Subscribed);
        for (i, p) in profiles.iter_mut().enumerate() {
            match i % 10 {
                0 => p.city = format!("Oraș {i}"),
                1 if p.high_value() => p.ltv = 10.0,
                2 if !p.high_value() => p.ltv = 900.0,
                3 => p.first = format!("Ana-{i}"),
                _ => {}
            }
        }
        let profiles: Vec<Profile> = (profiles.into_iter().enumerate())
            .filter(|(i, _)| i % 10 != 7)
            .map(|(_, p)| p)
            .chain(people(3_600).into_iter().skip(3_000))
            .collect();
        s.import(&profiles);
        let what = format!("{tags:?}, re-run");
        let second = plan(&s);
        for name in ["creates", "updates", "archives", "tag_removes"] {
            assert!(
                second["summary"][name].as_u64() > Some(0),
                "{name}: {second}"
            );
        }
        let settled = s.run_settled(&sim, 0, &[]);
        for (name, count) in [
            ("creates", "created"),
            ("updates", "updated"),
            ("archives", "archived"),
            ("tag_removes", "untagged"),
        ] {
            same(&second, name, &settled, count, &what);
        }
        let now = expected(&profiles, Status::Subscribed);
        let view = sim.view(&list);
        let held = holding(&view, FIELDS);
        for (email, want) in &now {
            assert_eq!(held.get(email), Some(want), "{what}: {email}");
        }
        let left: Vec<&String> = before.keys().filter(|e| !now.contains_key(*e)).collect();
        assert!(!left.is_empty(), "{what}: some members left every segment");
        for email in left {
            assert_eq!(
                member(&view, email).status,
                Status::Archived,
                "{what}: {email}"
            );
        }

        // Delivered: the next run has nothing to send.
        let writes = sim.counters().writes;
        s.run_export(0);
        assert_eq!(sim.counters().writes, writes, "{what}: a third run");
    }
}
