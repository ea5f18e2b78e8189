//! Mailchimp having a bad day: 429 bursts, 5xx answers, connections dropped after the write
//! was applied. The run rides them out: the audience ends right, the exit code is 0, and
//! `runs show` counts the retries.

use std::time::Duration;

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

/// The export of 1,500 profiles under `faults`: run until Mailchimp took every record it
/// deferred, if any (the faults stay on for the runs that send those, as on a bad day).
fn run_with_faults(faults: Faults) -> (Sim, Session, String, Vec<Profile>, Settled) {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(1500);
    s.setup(&list, &profiles, &[]);
    sim.settings(|st| st.faults = faults);
    let settled = s.run_settled(&sim, 0, &[]);
    sim.settings(|st| st.faults = Faults::default());
    (sim, s, list, profiles, settled)
}

/// The audience and the counts are what an undisturbed run makes; returns the first run.
fn delivered_exactly(
    sim: &Sim,
    s: &Session,
    list: &str,
    profiles: &[Profile],
    settled: &Settled,
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
    // Only a record Mailchimp refused for now (deferred, sent by a later run) keeps the
    // first run from succeeding outright.
    assert_eq!(s.listed_outcome(1), settled.first_outcome("succeeded"));
    assert_eq!(s.listed_outcome(settled.last_id()), "succeeded");
    let run = s.show_json(1);
    assert_eq!(settled.first(), &run);
    assert_eq!(settled.sum("failed"), 0, "{:?}", settled.runs);
    // A batch whose answer was lost is sent again and meets its own members ("exists"):
    // they are updated to be safe, but counted as what they are, created by this run.
    assert_eq!(
        (
            count(&run, "created") + settled.deferred(),
            count(&run, "updated")
        ),
        (want.len() as u64, 0),
        "the run's counts are the simulator's: {run}"
    );
    assert_eq!(
        (settled.sum("created"), settled.sum("updated")),
        (want.len() as u64, 0),
        "the deferred records are created by the next run: {:?}",
        settled.runs
    );
    assert_eq!(settled.sum("created"), c.members_created);
    if !replays {
        assert_eq!(c.members_updated, 0);
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
    let (sim, s, list, profiles, settled) = run_with_faults(faults);
    assert!(
        sim.counters().injected_429 >= 3,
        "a burst was sent: {:?}",
        sim.counters()
    );
    let run = delivered_exactly(&sim, &s, &list, &profiles, &settled, false);
    assert!(
        count(&run, "retries") >= 3,
        "runs show counts the retries: {run}"
    );
    let shown = s.show(1);
    let retries = count(&run, "retries");
    assert!(shown.contains(&format!(" {retries} retries")), "{shown}");
    crate::truth::retries_counted_where_they_happened(&run, &shown, "too_many_requests");
}

#[test]
fn server_errors_are_retried() {
    let faults = Faults {
        error_5xx_rate: 0.15,
        seed: seed_faulting_first_request(0.15),
        ..Faults::default()
    };
    let (sim, s, list, profiles, settled) = run_with_faults(faults);
    assert!(sim.counters().injected_5xx >= 1, "{:?}", sim.counters());
    let run = delivered_exactly(&sim, &s, &list, &profiles, &settled, false);
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
    let (sim, s, list, profiles, settled) = run_with_faults(faults);
    let run = delivered_exactly(&sim, &s, &list, &profiles, &settled, false);
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
    let (sim, s, list, profiles, settled) = run_with_faults(faults);
    assert!(sim.counters().dropped >= 1, "{:?}", sim.counters());
    delivered_exactly(&sim, &s, &list, &profiles, &settled, true);
}

/// Whether, under `seed`, the simulator's first `before` requests pass, the next `hits` are
/// faulted and the `after` ones that follow pass again, for a fault kind that draws once per
/// request (only that kind's rate set).
fn faults_exactly(seed: u64, rate: f64, before: usize, hits: usize, after: usize) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..before + hits + after).all(|i| {
        let faulted = rng.gen::<f64>() < rate;
        faulted == (before..before + hits).contains(&i)
    })
}

/// A batch whose attempts all fail transiently (here: connections dropped after Mailchimp
/// applied it, so every member exists by the time the batch goes again) is not reported as
/// "not sent": it is sent again after the rest of its phase, meets its own members, and they
/// count as created, once. The retry policy is cut to 2 attempts (through the library, as
/// the CLI keeps Mailchimp's defaults) so that one batch exhausts it.
#[test]
fn a_batch_that_exhausts_its_retries_is_sent_again_later_in_the_run() {
    use segsync::engine::{self, RunSettings, Silent};
    use segsync::mailchimp::RetryPolicy;
    use std::sync::Arc;

    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(600);
    let want = expected(&profiles, Status::Subscribed);
    s.setup(&list, &profiles, &[]);
    assert!(want.len() <= 500, "one batch: {}", want.len());
    // With one request in flight, a first run makes 8 requests before its batch upsert
    // (audience, merge fields, members, archived members, the CITY field, tags, two new
    // tags): the 9th and 10th (the batch and its one retry) are dropped, none of the next 500
    // is. (Found by trying seeds from 1 with `faults_exactly`; checked here, as searching
    // takes long in a debug build.)
    let seed = 1_711_852;
    assert!(faults_exactly(seed, 0.002, 8, 2, 500));
    sim.settings(|st| {
        st.faults = Faults {
            drop_rate: 0.002,
            seed,
            ..Faults::default()
        }
    });
    let settings = RunSettings {
        trigger: "test".into(),
        max_in_flight: 1,
        timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        },
        ..Default::default()
    };
    // The simulator listens on 127.0.0.1.
    let home = segsync::app::App::at(s.home().to_path_buf())
        .unwrap()
        .with_private_targets(true);
    let report = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(engine::run(&home, EXPORT, &settings, Arc::new(Silent)))
        .expect("the run completes");
    let c = sim.counters();
    assert_eq!(c.dropped, 2, "{c:?}");
    assert_eq!(
        report.outcome,
        segsync::state::Outcome::Succeeded,
        "nothing reported: {:?}",
        report.errors_sample
    );
    assert_eq!(holding(&sim.view(&list), FIELDS), want);
    assert_eq!(c.members_created, want.len() as u64, "each created once");
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.failed
        ),
        (want.len() as u64, 0, 0),
        "the members the lost attempts created count as created"
    );
    // Their statuses came from one read of the audience's recent changes, not from one
    // request per member (the other two reads: the audience, and its archived contacts).
    let get = |e: &str| c.by_endpoint.get(e).copied().unwrap_or(0);
    assert_eq!(get("GET /3.0/lists/{list_id}/members/{subscriber_hash}"), 0);
    assert_eq!(get("GET /3.0/lists/{list_id}/members"), 3, "{c:?}");
}

const REJECTED: &str = "Mailchimp refused the connection's credential (the API key or token is invalid or was revoked): re-authenticate";

fn unauthorized(sim: &Sim) -> u64 {
    sim.counters().by_status.get(&401).copied().unwrap_or(0)
}

fn revoke(sim: &Sim) {
    let (code, body) = sim.admin(
        "POST",
        "/_sim/revoke",
        Some(serde_json::json!({ "credential": sim.key })),
    );
    assert!((200..300).contains(&code), "{code} {body}");
}

/// The run, `runs` and `runs show` all say the credential was rejected.
fn failed_for_the_credential(s: &Session, out: &Out, run: i64) {
    assert_eq!(out.code, 1, "{}", out.text());
    assert!(
        out.stderr.contains(&format!("segsync: {REJECTED}")),
        "{}",
        out.text()
    );
    assert_eq!(s.listed_outcome(run), "failed");
    let shown = s.show_json(run);
    assert_eq!(shown["error"], REJECTED, "{shown}");
}

/// A key revoked before the run: the very first request is refused, and nothing more is
/// tried.
#[test]
fn a_credential_revoked_before_the_run_stops_it_at_the_first_request() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &people(200), &[]);
    revoke(&sim);
    let before = sim.counters();
    let out = s.sh(&["run", EXPORT]);
    failed_for_the_credential(&s, &out, 1);
    let after = sim.counters();
    assert_eq!(after.requests - before.requests, 1, "one request, no retry");
    assert_eq!(unauthorized(&sim), 1);
    assert_eq!(after.writes, before.writes, "nothing written");
}

/// A key revoked while ten requests are in flight: the run stops at the first refusal; the
/// only 401s are those of requests already on their way (at most the ten in flight), none
/// retried, and what was acknowledged before stays checkpointed: the next run, with a
/// working key, sends only what is left.
#[test]
fn a_credential_revoked_mid_run_stops_it_without_a_storm_of_retries() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(12_000);
    let total = expected(&profiles, Status::Subscribed).len() as u64;
    s.setup(&list, &profiles, &[]);
    // Each batch takes about two seconds: the run is caught with all ten slots busy, and
    // a loaded machine still revokes the key before the eleventh batch leaves (with half a
    // second, a machine busy with other builds sometimes did not, and every member was
    // created before the revocation).
    sim.settings(|st| {
        st.latency.base_ms = 40.0;
        st.latency.per_item_ms = 4.0;
    });
    let args = ["run", EXPORT, "--quiet"];
    let mut child = s.spawn(&args);
    let upserts = |sim: &Sim| {
        sim.counters()
            .by_endpoint
            .get("POST /3.0/lists/{list_id}")
            .copied()
            .unwrap_or(0)
    };
    wait_until(
        "ten batches are in flight",
        Duration::from_secs(120),
        || {
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            upserts(&sim) >= 10
        },
    );
    revoke(&sim);
    let out = s.wait(&args, child);
    failed_for_the_credential(&s, &out, 1);
    let refused = unauthorized(&sim);
    assert!(
        (1..=10).contains(&refused),
        "only requests already in flight were refused, none retried: {refused} 401s"
    );
    let created = sim.counters().members_created;
    assert!(created < total, "stopped mid-run: {created} of {total}");
}
