//! Several `segsync serve` workers on one PostgreSQL state store (issue 5): a dozen exports
//! scheduled for the same tick are shared among three workers, each run is claimed by exactly
//! one, and when a worker is killed in the middle of its runs, the others take them over from
//! their checkpoints once its leases run out. Every audience ends as the export wants it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use serde_json::Value;

use mailchimp_sim::Status;

use crate::common::*;
use crate::harness::*;
use crate::schedule::runs_of;

/// Runs recorded as running by each worker, from its metrics.
fn active_runs(server: &Server) -> u64 {
    let text = reqwest::blocking::get(format!("{}/metrics", server.url))
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("segsync_runs_active"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[test]
fn three_workers_share_a_dozen_scheduled_exports_and_take_over_a_killed_one() {
    const EXPORTS: usize = 12;
    let db = TestDb::create("workers");
    let sim = Sim::start();
    let profiles = people(150);
    let s = Session::new(&sim);
    s.set_env("SEGSYNC_STATE", &db.url);
    s.set_env("SEGSYNC_LEASE_SECONDS", "4");
    s.set_env("SEGSYNC_LOG", "segsync=info");
    s.import(&profiles);
    s.segments();
    add_users(&s);
    s.connect();

    // One tick for all of them, a few seconds from now: "S M H * * *" in UTC.
    let at = Utc::now() + chrono::Duration::seconds(20);
    let cron = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    let mut lists = BTreeMap::new();
    for i in 0..EXPORTS {
        let name = format!("list-{i:02}");
        let list = sim.new_list(&name);
        let mut args = s.export_args(&list, &["--cron", &cron, "--timezone", "UTC"]);
        args[2] = format!("export-{i:02}");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.ok(&args);
        lists.insert(format!("export-{i:02}"), list);
    }

    // Slow enough that every run lasts a few seconds: the kill lands in the middle of runs.
    sim.settings(|st| {
        st.latency.base_ms = 400.0;
        st.latency.per_item_ms = 2.0;
    });
    let mut workers: Vec<Server> = (0..3)
        // All at once (no staggering of one account's exports): the tick's runs are shared.
        .map(|_| {
            Server::start(
                &s,
                &[
                    "--scheduler-tick",
                    "0.2",
                    "--max-runs",
                    "4",
                    "--stagger",
                    "0",
                ],
            )
        })
        .collect();
    assert!(
        Utc::now() < at - chrono::Duration::seconds(2),
        "the setup took too long: the workers started after the tick"
    );

    // The tick fires: every worker takes some of the runs (at most 4 each, so all three must).
    let deadline = Instant::now() + Duration::from_secs(40);
    let per_worker = loop {
        let counts: Vec<u64> = workers.iter().map(active_runs).collect();
        if counts.iter().sum::<u64>() == EXPORTS as u64 {
            break counts;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = workers.iter().map(|w| w.output()).collect();
            panic!(
                "the tick's runs were not shared: {counts:?}\n{}",
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(per_worker, vec![4, 4, 4], "runs per worker");

    // Kill one worker in the middle of its runs, as a crash would.
    let mut dead = workers.remove(0);
    dead.kill();
    let client = workers[0].login(ADMIN);

    // The others finish their own runs, then take the dead worker's over once its leases run
    // out, and every export ends with a successful run.
    let runs: BTreeMap<String, Vec<Value>> = wait_for(120, "every export to succeed", || {
        let all: BTreeMap<String, Vec<Value>> = lists
            .keys()
            .map(|e| (e.clone(), runs_of(&client, e)))
            .collect();
        all.values()
            .all(|r| r.last().is_some_and(|last| last["outcome"] == "succeeded"))
            .then_some(all)
    });

    let mut taken_over = 0;
    for (export, runs) in &runs {
        let scheduled: Vec<&Value> = runs.iter().filter(|r| r["trigger"] == "schedule").collect();
        assert_eq!(
            scheduled.len(),
            1,
            "{export}: one run for the tick: {runs:#?}"
        );
        match scheduled[0]["outcome"].as_str() {
            // Nothing else, but for a takeover of a worker that stalled past its lease
            // right at the end of its run (the taker finds nothing left to send).
            Some("succeeded") => assert!(
                runs.iter().skip(1).all(|r| r["trigger"] == "takeover"),
                "{export}: {runs:#?}"
            ),
            Some("interrupted") => {
                // The killed worker's: taken over by another worker, which carried it to the
                // end (on a starved machine a takeover may itself be taken over: each one
                // but the last then ends interrupted).
                taken_over += 1;
                let rest: Vec<&Value> = runs.iter().skip(1).collect();
                assert!(!rest.is_empty(), "{export}: taken over: {runs:#?}");
                assert!(
                    rest.iter().all(|r| r["trigger"] == "takeover"),
                    "{export}: only takeovers after the tick's run: {runs:#?}"
                );
                let (last, before) = rest.split_last().unwrap();
                assert_eq!(last["outcome"], "succeeded", "{export}: {runs:#?}");
                assert!(
                    before.iter().all(|r| r["outcome"] == "interrupted"),
                    "{export}: {runs:#?}"
                );
            }
            other => panic!("{export}: scheduled run ended {other:?}: {runs:#?}"),
        }
    }
    // The killed worker's four at least (another worker starved past its lease would add
    // its own: its run then stops at its next checkpoint and the taker carries on).
    assert!(
        taken_over >= 4,
        "the killed worker's four runs were taken over: {taken_over}"
    );

    // The queue holds one row per export for the tick, all done.
    let mut pg = db.client();
    let rows = pg
        .query(
            "SELECT export, count(*), bool_and(state = 'done') FROM run_queue GROUP BY export ORDER BY export",
            &[],
        )
        .expect("read the run queue");
    assert_eq!(rows.len(), EXPORTS, "every export queued");
    for r in rows {
        let (export, n, done): (String, i64, bool) = (r.get(0), r.get(1), r.get(2));
        assert_eq!((n, done), (1, true), "{export}: queued once, done");
    }

    // Every audience holds exactly what the export wants.
    let want = expected(&profiles, Status::Subscribed);
    assert!(!want.is_empty());
    for (export, list) in &lists {
        let view = sim.view(list);
        assert_eq!(holding(&view, FIELDS), want, "{export}: the audience");
    }
}
