//! Mailchimp having a bad day: 429 bursts, 5xx answers, connections dropped after the write
//! was applied. The run rides them out: the audience ends right, the exit code is 0, and
//! `runs show` counts the retries.

use mailchimp_sim::config::Faults;
use mailchimp_sim::Status;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::common::*;

/// A fault seed whose first draw is below `rate`, so that the run's first request (the
/// simulator draws once per request and fault kind, in arrival order, from a generator
/// re-seeded when settings change) is certainly faulted: retries are then certain, not
/// likely.
fn seed_faulting_first_request(rate: f64) -> u64 {
    (1..10_000)
        .find(|&seed| StdRng::seed_from_u64(seed).gen::<f64>() < rate)
        .expect("a seed")
}

fn run_with_faults(faults: Faults) -> (Sim, Session, String, Vec<Profile>) {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(1500);
    s.setup(&list, &profiles, &[]);
    sim.settings(|st| st.faults = faults);
    s.run_export(0);
    sim.settings(|st| st.faults = Faults::default());
    (sim, s, list, profiles)
}

fn delivered_exactly(
    sim: &Sim,
    s: &Session,
    list: &str,
    profiles: &[Profile],
    replays: bool,
) -> serde_json::Value {
    let want = expected(profiles, Status::Subscribed);
    assert!(want.len() > 1000, "several batches: {}", want.len());
    assert_eq!(
        holding(&sim.view(list), FIELDS),
        want,
        "the audience is what an undisturbed run makes"
    );
    let c = sim.counters();
    assert_eq!(
        c.members_created,
        want.len() as u64,
        "each member created once"
    );
    assert_eq!(c.compliance_refusals, 0);
    assert!(
        c.max_in_flight <= 10,
        "never more than Mailchimp's 10 requests in flight: {}",
        c.max_in_flight
    );
    assert_eq!(
        c.too_many_requests, 0,
        "no 429 for going over the in-flight limit"
    );
    assert_eq!(s.listed_outcome(1), "succeeded");
    let run = s.show_json(1);
    assert_eq!(count(&run, "failed"), 0);
    if replays {
        // A batch whose answer was lost is sent again and meets its own members ("exists"):
        // they are then updated, and counted so.
        assert_eq!(
            count(&run, "created") + count(&run, "updated"),
            want.len() as u64
        );
    } else {
        assert_eq!(count(&run, "created"), want.len() as u64);
    }
    // Settled: a re-run has nothing to send.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
    run
}

#[test]
fn bursts_of_429_are_retried() {
    let faults = Faults {
        burst_429_rate: 0.1,
        burst_429_len: 3,
        seed: seed_faulting_first_request(0.1),
        ..Faults::default()
    };
    let (sim, s, list, profiles) = run_with_faults(faults);
    assert!(
        sim.counters().injected_429 >= 3,
        "a burst was sent: {:?}",
        sim.counters()
    );
    let run = delivered_exactly(&sim, &s, &list, &profiles, false);
    assert!(
        count(&run, "retries") >= 3,
        "runs show counts the retries: {run}"
    );
    let shown = s.show(1);
    let retries = count(&run, "retries");
    assert!(shown.contains(&format!(" {retries} retries")), "{shown}");
}

#[test]
fn server_errors_are_retried() {
    let faults = Faults {
        error_5xx_rate: 0.15,
        seed: seed_faulting_first_request(0.15),
        ..Faults::default()
    };
    let (sim, s, list, profiles) = run_with_faults(faults);
    assert!(sim.counters().injected_5xx >= 1, "{:?}", sim.counters());
    let run = delivered_exactly(&sim, &s, &list, &profiles, false);
    assert!(
        count(&run, "retries") >= 1,
        "runs show counts the retries: {run}"
    );
}

#[test]
fn bodyless_429_bursts_and_5xx_together_are_retried() {
    let faults = Faults {
        burst_429_rate: 0.08,
        burst_429_len: 4,
        bodyless_429: true,
        error_5xx_rate: 0.08,
        seed: seed_faulting_first_request(0.08),
        ..Faults::default()
    };
    let (sim, s, list, profiles) = run_with_faults(faults);
    let run = delivered_exactly(&sim, &s, &list, &profiles, false);
    assert!(
        count(&run, "retries") >= 4,
        "runs show counts the retries: {run}"
    );
}

/// A dropped connection after the write was applied: the retry meets its own effect (the
/// members exist already). Nobody is created twice and the audience still ends right.
#[test]
fn answers_lost_after_the_write_was_applied_do_not_duplicate_anything() {
    let faults = Faults {
        drop_rate: 0.15,
        seed: seed_faulting_first_request(0.15),
        ..Faults::default()
    };
    let (sim, s, list, profiles) = run_with_faults(faults);
    assert!(sim.counters().dropped >= 1, "{:?}", sim.counters());
    delivered_exactly(&sim, &s, &list, &profiles, true);
}
