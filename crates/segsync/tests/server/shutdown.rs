//! Graceful shutdown with resume: SIGTERM in the middle of a long run lets it reach its
//! checkpoint, the process exits 0 with the run recorded as interrupted, and the next
//! server resumes it by itself, to the same audience as an uninterrupted run and without
//! creating any member twice.

use serde_json::json;

use mailchimp_sim::Status;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

#[test]
fn sigterm_stops_a_run_at_its_checkpoint_and_the_next_server_resumes_it() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(5000);
    let want = expected(&profiles, Status::Subscribed);
    let s = installation(&sim, &profiles);
    s.connect();
    s.add_export(&list, &[]);
    // A slow Mailchimp: a batch of 500 members takes seconds, so the run is still sending
    // when the signal comes.
    // Creates' tags ignored: tag batches follow the creates, so that the run is still
    // sending after the creates in flight are answered.
    sim.settings(|st| {
        st.latency.base_ms = 300.0;
        st.latency.per_item_ms = 6.0;
        st.variants.batch_item_tags = mailchimp_sim::config::BatchItemTags::Ignored;
    });
    let mut server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run_id = started["run_id"].as_i64().unwrap();
    wait_for(120, "the run to send members", || {
        let (code, run) = ada.get(&format!("/api/runs/{run_id}"));
        assert_eq!(code, 200, "{run}");
        assert_eq!(run["run"]["outcome"], "running", "{run}");
        (run["progress"]["phase"] == "sending members" || sim.counters().members_created > 0)
            .then_some(())
    });

    let code = server.terminate();
    assert_eq!(
        code,
        0,
        "segsync serve exits 0 on SIGTERM:\n{}",
        server.output()
    );
    assert!(
        server.output().contains("segsync serve: stopped"),
        "{}",
        server.output()
    );

    // The run stopped at a checkpoint: recorded as interrupted, with what Mailchimp
    // acknowledged counted, and not everything sent.
    let run = s.show_json(run_id);
    assert_eq!(run["outcome"], "interrupted", "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .contains("the server shut down"),
        "{run}"
    );
    let created = sim.counters().members_created;
    assert_eq!(
        count(&run, "created"),
        created,
        "every member Mailchimp created before the stop is in the run's record"
    );
    assert_ne!(
        holding(&sim.view(&list), FIELDS),
        want,
        "the run was cut short (the test stopped it mid-way)"
    );

    // The next server resumes it by itself, and faster: Mailchimp is quick again.
    sim.settings(|st| {
        st.latency.base_ms = 0.0;
        st.latency.per_item_ms = 0.0;
    });
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    let resumed = wait_for(30, "a run with trigger \"resume\"", || {
        let (code, runs) = ada.get(&format!("/api/runs?export={EXPORT}"));
        assert_eq!(code, 200, "{runs}");
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "resume")
            .map(|r| r["id"].as_i64().unwrap())
    });
    assert!(resumed > run_id);
    let run = ada.wait_run(resumed);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let (_, old) = ada.get(&format!("/api/runs/{run_id}"));
    assert_eq!(
        old["run"]["outcome"], "interrupted",
        "history keeps the stop: {old}"
    );

    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        want,
        "the audience is what one uninterrupted run leaves"
    );
    assert_eq!(
        sim.counters().members_created,
        want.len() as u64,
        "no member was created twice"
    );
    assert_eq!(
        count(&run, "created") + created,
        want.len() as u64,
        "the resumed run created only what the first one had not: {run}"
    );
}

/// A client that hangs in the middle of its request's header does not keep the server alive
/// after SIGTERM: once `--shutdown-grace` has passed, its connection is closed and the
/// server exits, as usual.
#[test]
fn sigterm_ends_the_server_within_the_grace_period_while_a_client_hangs() {
    use std::time::{Duration, Instant};
    let sim = Sim::start();
    let s = Session::new(&sim);
    crate::harness::add_users(&s);
    let mut server = Server::start(
        &s,
        &["--shutdown-grace", "1", "--header-read-timeout", "120"],
    );
    let mut hanging = hanging_client(
        &server.url,
        b"POST /api/login HTTP/1.1\r\nHost: segsync\r\n",
    );
    assert_eq!(server.anonymous().get("/healthz").0, 200);
    let start = Instant::now();
    let code = server.terminate_within(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(0),
        "segsync serve exits 0 after SIGTERM with a client hanging:\n{}",
        server.output()
    );
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "it took {:?}",
        start.elapsed()
    );
    assert!(
        server.output().contains("segsync serve: stopped"),
        "{}",
        server.output()
    );
    assert!(
        closed_within(&mut hanging, Duration::from_secs(5)).is_some(),
        "the hanging connection is closed"
    );
}
