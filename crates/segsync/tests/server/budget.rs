//! One Mailchimp account, one connection budget (issue 16): every run on an account takes its
//! requests' slots from one budget, whichever connection (key) it uses, in one `segsync serve`
//! and across workers sharing a PostgreSQL state store. The simulator (which counts an
//! account's requests in flight, whatever key they carry) never sees more than the budget, a
//! killed worker's slots come back within its lease, and every audience ends as a single run
//! would leave it: nobody lost, nobody created twice.

use std::time::Duration;

use serde_json::{json, Value};

use mailchimp_sim::Status;

use crate::common::*;
use crate::harness::*;

/// The simulator account's id, as Mailchimp's API root gives it.
fn account_id(sim: &Sim) -> String {
    let (code, root) = sim.api("GET", "", None);
    assert_eq!(code, 200, "{root}");
    root["account_id"]
        .as_str()
        .expect("an account id")
        .to_string()
}

/// A second connection `name` to the simulator's account, with a key of its own.
fn connect_second_key(s: &Session, sim: &Sim, name: &str) {
    let (code, made) = sim.admin(
        "POST",
        &format!("/_sim/accounts/{}/keys", account_id(sim)),
        Some(json!({})),
    );
    assert_eq!(code, 200, "{made}");
    let key = made["api_key"].as_str().expect("a key").to_string();
    let args = [
        "connection",
        "add",
        name,
        "--api-key-env",
        KEY_ENV,
        "--base-url",
        &sim.api_url(),
        "--accept-privacy-terms",
    ];
    let mut c = s.command(&args);
    c.env(KEY_ENV, &key);
    let out = s.run_command(&args, c);
    assert_eq!(out.code, 0, "connection add {name}: {}", out.text());
}

/// `segsync export add NAME` of the standard export on `list` through `connection`.
fn add_export(s: &Session, name: &str, connection: &str, list: &str) {
    let mut args = s.export_args(list, &[]);
    args[2] = name.to_string();
    let at = args.iter().position(|a| a == "--connection").unwrap() + 1;
    args[at] = connection.to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.ok(&args);
}

/// Every audience holds exactly what one run of the standard export leaves, each member once.
fn assert_as_single_runs_leave_them(sim: &Sim, lists: &[&str], profiles: &[Profile]) {
    let want = expected(profiles, Status::Subscribed);
    for list in lists {
        let view = sim.view(list);
        assert_eq!(
            holding(&view, &["FNAME", "LNAME", "CITY"]),
            want,
            "audience {list}"
        );
        assert_eq!(view.members.len(), want.len(), "audience {list}: members");
    }
    assert_eq!(
        sim.counters().members_created,
        (want.len() * lists.len()) as u64,
        "every member created once"
    );
}

fn metrics(server: &Server) -> String {
    reqwest::blocking::get(format!("{}/metrics", server.url))
        .and_then(|r| r.text())
        .expect("/metrics answers")
}

#[test]
fn two_runs_in_one_server_share_their_accounts_budget_over_two_connections() {
    let sim = Sim::start();
    let profiles = people(2400);
    let s = Session::new(&sim);
    s.import(&profiles);
    s.segments();
    add_users(&s);
    s.connect();
    connect_second_key(&s, &sim, "mc-second-key");
    // Both connections learned the same account; the smaller budget of the two is the
    // account's.
    let listed = s.ok(&["connection", "list"]).stdout;
    let account = account_id(&sim);
    assert_eq!(
        listed
            .matches(&format!("account: {account}; slot budget: 8"))
            .count(),
        2,
        "{listed}"
    );
    let edited = s.ok(&["connection", "edit", CONNECTION, "--slot-budget", "3"]);
    assert!(edited.stdout.contains("slot budget 3"), "{}", edited.text());
    let bad = s.expect(
        2,
        &["connection", "edit", CONNECTION, "--slot-budget", "11"],
    );
    assert!(
        bad.stderr
            .contains("the slot budget must be between 1 and 10"),
        "{}",
        bad.text()
    );
    let (a, b) = (sim.new_list("a"), sim.new_list("b"));
    add_export(&s, "export-a", CONNECTION, &a);
    add_export(&s, "export-b", "mc-second-key", &b);
    sim.settings(|st| {
        st.latency.base_ms = 40.0;
        st.latency.per_item_ms = 0.5;
        // No address refused "for now" (the pessimistic profile's 1%): each run ends
        // succeeded, and its audience as one run leaves it (deferrals are tested elsewhere).
        st.variants.recent_signups_rate = 0.0;
    });
    sim.admin("DELETE", "/_sim/counters", None);

    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let started: Vec<i64> = ["export-a", "export-b"]
        .iter()
        .map(|e| {
            let (code, body) = ada.post(&format!("/api/exports/{e}/runs"), json!({}));
            assert_eq!(code, 202, "{body}");
            body["run_id"].as_i64().expect("a run id")
        })
        .collect();
    let runs: Vec<Value> = started.iter().map(|id| ada.wait_run(*id)).collect();
    for r in &runs {
        assert_eq!(r["outcome"], "succeeded", "{r:#}");
        assert_eq!(r["counts"]["throttled"], 0, "{r:#}");
    }

    let c = sim.counters();
    assert!(
        c.max_in_flight <= 3,
        "the simulator saw {} requests of the account in flight at once, over its budget of 3",
        c.max_in_flight
    );
    assert_eq!(c.too_many_requests, 0);
    assert_as_single_runs_leave_them(&sim, &[&a, &b], &profiles);

    // Each run says how many slots it held on average and how many 429s it met.
    for id in &started {
        let shown = s.ok(&["runs", "show", &id.to_string()]).stdout;
        let line = shown
            .lines()
            .find(|l| l.contains("connection slots held on average"))
            .unwrap_or_else(|| panic!("no slots line: {shown}"));
        let avg: f64 = line
            .split("on average ")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no average in {line:?}"));
        assert!(avg > 0.0 && avg <= 3.0, "{line}");
        assert!(
            line.ends_with("refused for too many connections (429) 0 times"),
            "{line}"
        );
        let page = ada.send(ada.request("GET", &format!("/runs/{id}"))).text;
        assert!(
            page.contains("held on average")
                && page.contains("refused for too many connections (429)"),
            "the run page shows the slots"
        );
    }
    // `/metrics`: the account's budget and its throttle rate.
    let m = metrics(&server);
    for want in [
        format!("segsync_mailchimp_slot_cap{{account=\"{account}\"}} 3"),
        format!("segsync_mailchimp_slot_budget{{account=\"{account}\"}} 3"),
        format!("segsync_mailchimp_throttled_total{{account=\"{account}\"}} 0"),
        format!("segsync_mailchimp_throttle_ratio{{account=\"{account}\"}} 0.0"),
    ] {
        assert!(m.contains(&want), "{want} not in /metrics:\n{m}");
    }
    // The API shows the account and budget of each connection.
    let (code, conns) = ada.get("/api/connections");
    assert_eq!(code, 200);
    let budgets: Vec<(Value, Value)> = conns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["account_id"].clone(), c["slot_budget"].clone()))
        .collect();
    assert_eq!(
        budgets,
        [(json!(account), json!(3)), (json!(account), json!(8))]
    );
}

/// Rows of `account_slots` held, unexpired, by the process `pid`.
fn live_slots_of(db: &TestDb, pid: u32) -> i64 {
    db.client()
        .query_one(
            "SELECT count(*) FROM account_slots WHERE holder LIKE $1 AND expires_at > now()",
            &[&format!("%:{pid}:%")],
        )
        .expect("account_slots reads")
        .get(0)
}

#[test]
fn two_workers_on_postgres_share_the_budget_and_a_killed_ones_slots_come_back_within_its_lease() {
    const LEASE: u64 = 6;
    let db = TestDb::create("budget");
    let sim = Sim::start();
    let profiles = people(2400);
    let s = Session::new(&sim);
    s.set_env("SEGSYNC_STATE", &db.url);
    s.set_env("SEGSYNC_LEASE_SECONDS", "3");
    s.import(&profiles);
    s.segments();
    add_users(&s);
    s.connect();
    s.ok(&["connection", "edit", CONNECTION, "--slot-budget", "3"]);
    let (a, b) = (sim.new_list("a"), sim.new_list("b"));
    add_export(&s, "export-a", CONNECTION, &a);
    add_export(&s, "export-b", CONNECTION, &b);
    // Slow enough that the kill lands while the first worker holds slots.
    sim.settings(|st| {
        st.latency.base_ms = 150.0;
        st.latency.per_item_ms = 2.0;
        st.variants.recent_signups_rate = 0.0;
    });
    sim.admin("DELETE", "/_sim/counters", None);

    let lease = LEASE.to_string();
    let args = ["--scheduler-tick", "0.2", "--slot-lease", lease.as_str()];
    let mut first = Server::start(&s, &args);
    let second = Server::start(&s, &args);
    let (c1, c2) = (first.login(ADMIN), second.login(ADMIN));
    let (code, on_first) = c1.post("/api/exports/export-a/runs", json!({}));
    assert_eq!(code, 202, "{on_first}");
    let (code, on_second) = c2.post("/api/exports/export-b/runs", json!({}));
    assert_eq!(code, 202, "{on_second}");

    // Kill the first worker while it holds slots, as a crash would.
    let pid = first.pid();
    wait_for(60, "the first worker to hold slots", || {
        (live_slots_of(&db, pid) > 0).then_some(())
    });
    first.kill();
    // Its slots expire at most one lease after their last renewal, which was before the kill.
    let latest: bool = db
        .client()
        .query_one(
            "SELECT coalesce(max(expires_at) <= now() + make_interval(secs => $2), true)
             FROM account_slots WHERE holder LIKE $1",
            &[&format!("%:{pid}:%"), &(LEASE as f64)],
        )
        .unwrap()
        .get(0);
    assert!(latest, "a slot of the killed worker outlives its lease");
    wait_for(LEASE + 10, "the killed worker's slots to come back", || {
        (live_slots_of(&db, pid) == 0).then_some(())
    });

    // The second worker finishes its run and takes the killed one's over.
    let runs = wait_for(180, "both exports to succeed", || {
        let all: Vec<Vec<Value>> = ["export-a", "export-b"]
            .iter()
            .map(|e| crate::schedule::runs_of(&c2, e))
            .collect();
        all.iter()
            .all(|r| r.last().is_some_and(|l| l["outcome"] == "succeeded"))
            .then_some(all)
    });
    assert!(
        runs[0].iter().any(|r| r["trigger"] == "takeover"),
        "export-a was taken over: {runs:#?}"
    );
    let c = sim.counters();
    assert!(
        c.max_in_flight <= 3,
        "the simulator saw {} requests of the account in flight at once, over its budget of 3",
        c.max_in_flight
    );
    assert_eq!(c.too_many_requests, 0);
    let want = expected(&profiles, Status::Subscribed);
    for list in [&a, &b] {
        let view = sim.view(list);
        assert_eq!(holding(&view, &["FNAME", "LNAME", "CITY"]), want, "{list}");
        assert_eq!(view.members.len(), want.len(), "{list}: members");
    }
    // Nothing is left held once the runs are over.
    std::thread::sleep(Duration::from_millis(200));
    let held: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM account_slots WHERE holder IS NOT NULL AND expires_at > now()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "slots still held after the runs");
}
