//! The scheduler of `segsync serve`, end to end: cron exports run by themselves on time,
//! pausing and removing stop them, after-refresh exports follow the profiles, and a tick
//! that finds its export still running is skipped instead of starting it twice. Nothing
//! here asserts a duration: every wait polls with a generous deadline, and the "nothing
//! happens" checks watch over many ticks of the schedule.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use mailchimp_sim::Status;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

/// Every recorded run of `export`, oldest first.
pub fn runs_of(client: &Client, export: &str) -> Vec<Value> {
    let (code, body) = client.get(&format!("/api/runs?export={export}&limit=1000"));
    assert_eq!(code, 200, "{body}");
    let mut runs = body.as_array().expect("a list of runs").clone();
    runs.sort_by_key(|r| r["id"].as_i64());
    runs
}

fn finished(runs: &[Value]) -> Vec<&Value> {
    runs.iter().filter(|r| r["outcome"] != "running").collect()
}

/// Watches `export` for `secs` seconds (many ticks of its schedule): the runs it has at the
/// end, checking at every look that no two of them run at once.
fn watch(client: &Client, export: &str, secs: u64) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let runs = runs_of(client, export);
        let running = runs.iter().filter(|r| r["outcome"] == "running").count();
        assert!(running <= 1, "two runs of {export} at once: {runs:#?}");
        if Instant::now() >= until {
            return runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cron export with the standard mapping, and a server that looks at the clock often.
fn cron_installation(sim: &Sim, list: &str, profiles: &[Profile], cron: &str) -> Session {
    let s = installation(sim, profiles);
    s.connect();
    s.add_export(list, &["--cron", cron, "--timezone", "UTC"]);
    s
}

#[test]
fn a_cron_export_runs_by_itself_until_it_is_paused_or_removed() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(60);
    let s = cron_installation(&sim, &list, &profiles, "*/2 * * * * *");
    let server = Server::start(&s, &["--scheduler-tick", "0.1"]);
    // The connection added on the command line is for admins only.
    let ada = server.token_client(ADMIN);

    // Nobody asks: the schedule starts it, again and again.
    let (code, view) = ada.get(&format!("/api/exports/{EXPORT}"));
    assert_eq!(code, 200, "{view}");
    assert!(view["next_run_at"].is_string(), "{view}");
    let runs = wait_for(60, "two scheduled runs", || {
        let runs = runs_of(&ada, EXPORT);
        (finished(&runs).len() >= 2).then_some(runs)
    });
    for r in finished(&runs) {
        assert_eq!(r["trigger"], "schedule", "{r}");
        assert_eq!(r["outcome"], "succeeded", "{r}");
    }
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed),
        "the scheduled runs delivered the segments"
    );
    // Only the first run had something to send.
    let created: u64 = finished(&runs)
        .iter()
        .map(|r| r["counts"]["created"].as_u64().unwrap())
        .sum();
    assert_eq!(
        created,
        expected(&profiles, Status::Subscribed).len() as u64
    );

    // Paused: it does not run while paused, over several ticks of its schedule.
    let (code, view) = ada.post(&format!("/api/exports/{EXPORT}/pause"), json!({}));
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["config"]["paused"], true, "{view}");
    assert!(
        view["next_run_at"].is_null(),
        "no next tick while paused: {view}"
    );
    // A run that began just before the pause may end; nothing begins after it.
    let before = wait_for(30, "the run in progress to end", || {
        let runs = runs_of(&ada, EXPORT);
        runs.iter()
            .all(|r| r["outcome"] != "running")
            .then_some(runs)
    });
    let during = watch(&ada, EXPORT, 7);
    assert_eq!(
        during.len(),
        before.len(),
        "a paused export ran: {:#?}",
        &during[before.len()..]
    );

    // Resumed: the schedule picks up again (so the quiet above was the pause's doing).
    let (code, view) = ada.post(&format!("/api/exports/{EXPORT}/resume"), json!({}));
    assert_eq!(code, 200, "{view}");
    assert!(view["next_run_at"].is_string(), "{view}");
    wait_for(30, "a scheduled run after resuming", || {
        (runs_of(&ada, EXPORT).len() > during.len()).then_some(())
    });

    // Removed: it stops at once; its history stays, and nothing is added to it.
    let (code, body) = ada.delete(&format!("/api/exports/{EXPORT}"));
    assert_eq!(code, 204, "{body}");
    let at_removal = runs_of(&ada, EXPORT);
    assert!(
        at_removal.iter().all(|r| r["outcome"] != "running"),
        "the removal waited for its run to stop: {at_removal:#?}"
    );
    let after = watch(&ada, EXPORT, 7);
    assert_eq!(
        after.len(),
        at_removal.len(),
        "a removed export ran: {:#?}",
        &after[at_removal.len()..]
    );
    for r in &after {
        assert!(
            r["outcome"] == "succeeded" || r["outcome"] == "cancelled",
            "no run failed because of the pause or the removal: {r}"
        );
    }
    let (code, _) = ada.get(&format!("/api/exports/{EXPORT}"));
    assert_eq!(code, 404);
}

#[test]
fn an_after_refresh_export_runs_after_each_refresh_with_the_new_profiles() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(40);
    let s = installation(&sim, &profiles);
    s.connect();
    s.add_export(&list, &["--after-refresh"]);
    let server = Server::start(&s, &["--scheduler-tick", "0.1"]);
    let ada = server.token_client(ADMIN);
    let carl = server.token_client(CONTRIBUTOR);

    // An admin imports the file the refreshes read: the export follows.
    let csv = s.path("profiles.csv");
    let (code, answer) = ada.post(
        &format!(
            "/api/profiles/import?path={}&key=customer_id",
            csv.to_str().unwrap()
        ),
        json!({}),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["started"], json!([EXPORT]), "{answer}");
    let first = wait_for(60, "the after-refresh run", || {
        let runs = runs_of(&carl, EXPORT);
        (finished(&runs).len() == 1).then_some(runs)
    });
    assert_eq!(first[0]["trigger"], "after-refresh", "{}", first[0]);
    assert_eq!(first[0]["outcome"], "succeeded", "{}", first[0]);
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );

    // The profiles change at the source; a contributor refreshes; the change arrives.
    let mut changed = profiles.clone();
    for p in changed.iter_mut().take(6) {
        p.city = "Brașov".into();
        p.country = "RO".into();
    }
    for i in 0..4 {
        let mut p = people(100)[60 + i].clone();
        p.ltv = 900.0;
        changed.push(p);
    }
    write_csv(&csv, &changed);
    let (code, answer) = carl.post("/api/profiles/refresh", json!({}));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["rows"], changed.len(), "{answer}");
    assert_eq!(answer["started"], json!([EXPORT]), "{answer}");
    let runs = wait_for(60, "the second after-refresh run", || {
        let runs = runs_of(&carl, EXPORT);
        (finished(&runs).len() == 2).then_some(runs)
    });
    let second = &runs[1];
    assert_eq!(second["trigger"], "after-refresh", "{second}");
    assert_eq!(second["outcome"], "succeeded", "{second}");
    // The four new customers, and those of the six movers who were in no segment before.
    let newcomers = expected(&changed, Status::Subscribed).len()
        - expected(&profiles, Status::Subscribed).len();
    assert!(newcomers >= 4);
    assert_eq!(second["counts"]["created"], newcomers, "{second}");
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&changed, Status::Subscribed),
        "the audience follows the refreshed profiles"
    );

    // Paused, it lets a refresh go by.
    let (code, _) = ada.post(&format!("/api/exports/{EXPORT}/pause"), json!({}));
    assert_eq!(code, 200);
    let (code, answer) = carl.post("/api/profiles/refresh", json!({}));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["started"], json!([]), "{answer}");
    assert_eq!(watch(&carl, EXPORT, 2).len(), 2);
}

#[test]
fn a_tick_that_finds_the_export_running_is_skipped_not_started_twice() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(200);
    let s = cron_installation(&sim, &list, &profiles, "* * * * * *");
    s.set_env("SEGSYNC_LOG", "segsync=info");
    // Every request takes most of a second: a run (several requests one after the other)
    // outlasts several ticks of its every-second schedule.
    sim.settings(|st| st.latency.base_ms = 700.0);
    let server = Server::start(&s, &["--scheduler-tick", "0.1"]);
    let carl = server.token_client(CONTRIBUTOR);

    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let runs = watch(&carl, EXPORT, 1);
        if finished(&runs).len() >= 3 {
            break runs;
        }
        assert!(Instant::now() < deadline, "three scheduled runs: {runs:#?}");
    };
    let done = finished(&runs);
    for pair in done.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            b["started_at"].as_str().unwrap() >= a["finished_at"].as_str().unwrap(),
            "run {} began before run {} ended: {a} {b}",
            b["id"],
            a["id"]
        );
    }
    for r in &done {
        assert_eq!(r["trigger"], "schedule", "{r}");
        assert_eq!(r["outcome"], "succeeded", "{r}");
    }
    let log = server.output();
    assert!(
        log.contains("scheduled tick skipped: the export is still running"),
        "the ticks met a run in progress and skipped it:\n{log}"
    );
    assert_eq!(
        sim.counters().members_created,
        expected(&profiles, Status::Subscribed).len() as u64,
        "no member was created twice"
    );
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
}
