//! Re-runs evaluate only the profiles an import changed (and those sharing an address with
//! them), and give what a full pass gives; a full pass whenever that could differ.

use mailchimp_sim::Status;
use serde_json::Value;

use crate::common::*;

/// `runs show --json` of the newest run's evaluation.
fn evaluation(s: &Session) -> Value {
    s.show_json(s.last_run())["counts"]["evaluation"].clone()
}

fn mode(s: &Session) -> String {
    evaluation(s)["mode"].as_str().unwrap_or("none").to_string()
}

fn reason(s: &Session) -> String {
    evaluation(s)["reason"].as_str().unwrap_or("").to_string()
}

/// One exported, settled audience of `profiles`.
fn exported(profiles: &[Profile], extra: &[&str]) -> (Sim, String, Session) {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, profiles, extra);
    s.run_settled(&sim, 0, &[]);
    assert_eq!(mode(&s), "full");
    assert_eq!(reason(&s), "first run");
    (sim, list, s)
}

#[test]
fn a_rerun_after_one_change_evaluates_only_that_profile() {
    let mut profiles = people(60);
    let (sim, list, s) = exported(&profiles, &[]);
    let i = profiles.iter().position(|p| p.high_value()).unwrap();
    profiles[i].city = "Iasi".into();
    s.import(&profiles);
    let json = s.expect(0, &["run", EXPORT, "--json"]);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let e = &report["counts"]["evaluation"];
    assert_eq!(e["mode"], "incremental", "{report}");
    assert_eq!(e["changed_profiles"], 1, "{report}");
    assert_eq!(e["evaluated_profiles"], 1, "{report}");
    assert_eq!(e["touched_members"], 1, "{report}");
    assert_eq!(count(&report, "updated"), 1, "{report}");
    let members = expected(&profiles, Status::Subscribed);
    assert_eq!(count(&report, "members"), members.len() as u64);
    assert_eq!(count(&report, "unchanged"), members.len() as u64 - 1);
    assert_eq!(holding(&sim.view(&list), FIELDS), members);
    let shown = s.show(s.last_run());
    assert!(
        shown.contains("incremental: 1 profiles evaluated (1 changed), 1 addresses compared"),
        "{shown}"
    );
    // Nothing changed since: nothing evaluated, nothing written, the tags not even read.
    let tags_read = || {
        let c = sim.counters();
        let reads = c.by_endpoint.get("GET /3.0/lists/{list_id}/segments");
        reads.copied().unwrap_or(0)
    };
    let (writes, reads) = (sim.counters().writes, tags_read());
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(evaluation(&s)["evaluated_profiles"], 0);
    assert_eq!(sim.counters().writes, writes);
    assert_eq!(tags_read(), reads, "{:?}", sim.counters().by_endpoint);
    // --full evaluates everything and finds the same.
    s.ok(&["run", EXPORT, "--quiet", "--full"]);
    assert_eq!(reason(&s), "asked for (--full)");
    assert_eq!(evaluation(&s)["evaluated_profiles"], 60);
    assert_eq!(sim.counters().writes, writes);
}

#[test]
fn profiles_sharing_an_address_are_merged_as_a_full_pass_merges_them() {
    let mut profiles = people(40);
    // C00001 joins C00000's address; each is in a segment of its own.
    profiles[0].country = "RO".into();
    profiles[0].ltv = 10.0;
    profiles[1].email = profiles[0].email.to_uppercase();
    profiles[1].country = "FR".into();
    profiles[1].ltv = 900.0;
    let (sim, list, s) = exported(&profiles, &[]);
    let shared = profiles[0].email.to_lowercase();
    let tags = |sim: &Sim| member(&sim.view(&list), &shared).tags.clone();
    assert_eq!(tags(&sim).len(), 2);
    // C00000 leaves Romania: the address keeps C00001's tag only.
    profiles[0].country = "FR".into();
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(mode(&s), "incremental");
    assert_eq!(
        evaluation(&s)["evaluated_profiles"],
        2,
        "both profiles of the address"
    );
    assert_eq!(tags(&sim), vec![HIGH_VALUE_TAG.to_string()]);
    // C00001 leaves the address for one of its own: both members as a full pass has them.
    profiles[1].email = "someone.new@gmail.com".into();
    s.import(&profiles);
    s.run_settled(&sim, 0, &[]);
    assert_eq!(mode(&s), "incremental");
    // Its member follows it (C00000 is in no segment now): the audience a full pass makes.
    assert!(find(&sim.view(&list), &shared).is_none());
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
}

#[test]
fn a_removed_profile_leaves_its_segments() {
    let mut profiles = people(30);
    let (sim, list, s) = exported(&profiles, &[]);
    let gone = profiles.iter().position(|p| p.high_value()).unwrap();
    let email = profiles.remove(gone).email.to_lowercase();
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(mode(&s), "incremental");
    assert_eq!(evaluation(&s)["changed_profiles"], 1);
    assert!(member(&sim.view(&list), &email).tags.is_empty());
}

#[test]
fn a_change_to_more_than_30_percent_of_the_profiles_takes_a_full_pass() {
    let mut profiles = people(30);
    let (sim, list, s) = exported(&profiles, &[]);
    let rename = |profiles: &mut Vec<Profile>, n: usize, round: &str| {
        for p in profiles.iter_mut().take(n) {
            p.city = format!("Cluj {round}");
        }
    };
    // 9 of 30: incremental still.
    rename(&mut profiles, 9, "a");
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(mode(&s), "incremental");
    assert_eq!(evaluation(&s)["changed_profiles"], 9);
    // 10 of 30: a full pass, and why.
    rename(&mut profiles, 10, "b");
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(mode(&s), "full");
    assert_eq!(
        reason(&s),
        "33% of the profiles changed (10 of 30): a full pass reads them faster"
    );
    assert_eq!(evaluation(&s)["evaluated_profiles"], 30);
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
    // The next small change goes on from it.
    rename(&mut profiles, 1, "c");
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(mode(&s), "incremental");
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
}

#[test]
fn a_changed_segment_or_a_clock_predicate_takes_a_full_pass() {
    let profiles = people(30);
    let (_sim, _list, s) = exported(&profiles, &[]);
    let file = s.path("segments.toml");
    std::fs::write(
        &file,
        "[[segment]]\nname = \"romania\"\nwhere = \"country = 'RO' OR city = 'Chisinau'\"\n",
    )
    .unwrap();
    s.ok(&["apply", file.to_str().unwrap()]);
    s.run_export(0);
    assert_eq!(reason(&s), "segment 'romania' changed");
    s.run_export(0);
    assert_eq!(mode(&s), "incremental");
    std::fs::write(
        &file,
        "[[segment]]\nname = \"romania\"\nwhere = \"country = 'RO' AND date('now') > '2000-01-01'\"\n",
    )
    .unwrap();
    s.ok(&["apply", file.to_str().unwrap()]);
    s.run_export(0);
    s.run_export(0);
    assert_eq!(reason(&s), "segment 'romania' reads the clock");
    assert!(s
        .show(s.last_run())
        .contains("full pass: segment 'romania' reads the clock"));
}

#[test]
fn after_a_failed_run_the_next_takes_a_full_pass() {
    let profiles = people(30);
    let (_sim, _list, s) = exported(&profiles, &[]);
    // Profiles without the mapped columns: the run cannot read them and fails.
    let csv = s.path("broken.csv");
    std::fs::write(&csv, "customer_id,email\nC1,a@gmail.com\n").unwrap();
    s.ok(&[
        "profiles",
        "import",
        csv.to_str().unwrap(),
        "--key",
        "customer_id",
    ]);
    s.run_export(2);
    s.import(&profiles);
    s.run_export(0);
    assert_eq!(reason(&s), "the last run failed");
    s.run_export(0);
    assert_eq!(mode(&s), "incremental");
}

/// A small generator of change sets, the same for every run of the test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Changes a few profiles: attributes, segments, addresses (shared ones too), removals and
/// new profiles.
fn change(rng: &mut Rng, profiles: &mut Vec<Profile>, round: usize) {
    for _ in 0..1 + rng.below(6) {
        let i = rng.below(profiles.len());
        match rng.below(7) {
            0 => profiles[i].first = format!("Name{round}x{i}"),
            1 => {
                profiles[i].ltv = if profiles[i].high_value() {
                    20.0
                } else {
                    800.0
                }
            }
            2 => profiles[i].country = if profiles[i].romanian() { "FR" } else { "RO" }.into(),
            3 => {
                let j = rng.below(profiles.len());
                profiles[i].email = profiles[j].email.clone();
            }
            4 => profiles[i].email = format!("moved{round}.{i}@gmail.com"),
            5 if profiles.len() > 10 => {
                profiles.remove(i);
            }
            _ => {
                let mut p = people(1).remove(0);
                p.id = format!("N{round}x{i}");
                p.email = format!("new{round}.{i}@yahoo.ro");
                p.ltv = 700.0;
                profiles.push(p);
            }
        }
    }
}

/// What a run's plan did, counted.
fn plan_counts(run: &Value) -> Vec<u64> {
    [
        "created",
        "updated",
        "moved",
        "tagged",
        "untagged",
        "archived",
        "unsubscribed",
    ]
    .iter()
    .map(|n| count(run, n))
    .collect()
}

/// Random change sets, each run both ways: incrementally, and with `--full` into an audience
/// of its own. The plans and the audiences are the same.
fn both_ways(seed: u64, extra: &[&str]) {
    let sim = Sim::start();
    let mut rng = Rng(seed);
    let mut profiles = people(50);
    let (inc_list, full_list) = (sim.new_list("Incremental"), sim.new_list("Full"));
    let inc = Session::new(&sim);
    let full = Session::new(&sim);
    inc.setup(&inc_list, &profiles, extra);
    full.setup(&full_list, &profiles, extra);
    let mut incremental_runs = 0;
    for round in 0..6 {
        if round > 0 {
            change(&mut rng, &mut profiles, round);
            inc.import(&profiles);
            full.import(&profiles);
        }
        let a = inc.run_settled(&sim, 0, &[]);
        let b = full.run_settled(&sim, 0, &["--full"]);
        if a.runs.len() == 1 && b.runs.len() == 1 {
            assert_eq!(
                plan_counts(a.first()),
                plan_counts(b.first()),
                "round {round}"
            );
        }
        incremental_runs += usize::from(a.first()["counts"]["evaluation"]["mode"] == "incremental");
        assert_eq!(
            holding(&sim.view(&inc_list), FIELDS),
            holding(&sim.view(&full_list), FIELDS),
            "seed {seed}, round {round}: {:?}",
            a.first()["counts"]
        );
    }
    assert!(incremental_runs >= 3, "{incremental_runs} incremental runs");
}

#[test]
fn random_change_sets_give_what_a_full_pass_gives() {
    for seed in [7, 1234, 99_991] {
        both_ways(seed, &[]);
    }
}

#[test]
fn random_change_sets_with_archiving_give_what_a_full_pass_gives() {
    both_ways(4242, &["--removal", "archive"]);
}
