//! What segsync refuses before sending anything, and what it shows without sending: the
//! profile limit, a required merge field the mapping lacks, `plan`, the privacy consent, and
//! a second run of an export that is running.

use std::time::Duration;

use mailchimp_sim::Status;
use serde_json::json;

use crate::common::*;

#[test]
fn more_members_than_max_profiles_fails_before_anything_is_sent() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(12);
    let members = expected(&profiles, Status::Subscribed).len();
    assert!(members > 3);
    s.setup(&list, &profiles, &["--max-profiles", "3"]);

    let writes = sim.counters().writes;
    let out = s.run_export(1);
    assert!(
        out.stderr.contains(&format!(
            "selects {members} members, more than its limit of 3: nothing was sent"
        )),
        "a clear message: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--max-profiles"),
        "says how to fix it: {}",
        out.stderr
    );
    assert_eq!(sim.counters().writes, writes, "nothing was written");
    assert_eq!(sim.view(&list).member_count, 0);
    assert!(
        !sim.view(&list)
            .merge_fields
            .iter()
            .any(|f| f["tag"] == "CITY"),
        "not even the merge field"
    );
    assert_eq!(s.listed_outcome(1), "failed");
    let run = s.show_json(1);
    assert!(
        run["error"]
            .as_str()
            .unwrap_or_default()
            .contains("limit of 3"),
        "{run}"
    );

    // `plan` refuses the same way.
    let plan = s.expect(1, &["plan", EXPORT]);
    assert!(
        plan.stderr.contains("more than its limit of 3"),
        "{}",
        plan.stderr
    );
}

#[test]
fn a_required_merge_field_the_mapping_lacks_is_refused_before_anything_is_sent() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let other = sim.new_list("Partners");
    let s = Session::new(&sim);
    let profiles = people(10);
    s.import(&profiles);
    s.segments();
    s.connect();

    let required = json!({"tag": "COMPANY", "name": "Company", "type": "text", "required": true});
    let (code, body) = sim.api(
        "POST",
        &format!("/lists/{list}/merge-fields"),
        Some(required.clone()),
    );
    assert_eq!(code, 200, "{body}");

    // `export add` checks the mapping against the audience.
    let writes = sim.counters().writes;
    let args = s.export_args(&list, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.expect(2, &args);
    assert!(
        out.stderr.contains("requires merge field COMPANY"),
        "names the field: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--merge COMPANY=COLUMN"),
        "says how to fix it: {}",
        out.stderr
    );
    assert!(
        s.ok(&["export", "list"]).stdout.trim().is_empty(),
        "no export was added"
    );
    assert_eq!(sim.counters().writes, writes, "nothing was written");

    // An export made before the field became required: `plan` and `run` refuse it.
    s.add_export(&other, &[]);
    let (code, body) = sim.api(
        "POST",
        &format!("/lists/{other}/merge-fields"),
        Some(required),
    );
    assert_eq!(code, 200, "{body}");
    let writes = sim.counters().writes;
    let plan = s.expect(2, &["plan", EXPORT]);
    assert!(
        plan.stderr.contains("requires merge field COMPANY"),
        "{}",
        plan.stderr
    );
    let run = s.run_export(2);
    assert!(
        run.stderr.contains("requires merge field COMPANY"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.counters().writes, writes, "nothing was written");
    let v = sim.view(&other);
    assert_eq!(v.member_count, 0);
    assert!(
        !v.merge_fields.iter().any(|f| f["tag"] == "CITY"),
        "not even the missing merge field was created"
    );
}

#[test]
fn plan_prints_the_counts_and_sends_nothing() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = vec![
        ana(),
        helene(),
        stefan(),
        Profile::new(
            "C004",
            "matteo.bianchi@libero.it",
            "Matteo",
            "Bianchi",
            "Milano",
            "IT",
            120.0,
        ),
        Profile::new(
            "C005",
            "chloe.moreau@orange",
            "Chloé",
            "Moreau",
            "Lyon",
            "FR",
            990.0,
        ),
    ];
    s.setup(&list, &profiles, &[]);
    let before = sim.counters();

    let out = s.ok(&["plan", EXPORT]);
    let line = |label: &str| -> String {
        out.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("a \"{label}\" line in:\n{}", out.stdout))
            .trim_start()[label.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(line("members to create"), "3");
    assert_eq!(line("members to update"), "0");
    assert_eq!(line("tags to add"), "4");
    assert_eq!(line("records refused"), "1");
    assert_eq!(
        line("Mailchimp requests"),
        "4",
        "the merge field and the two tags to create, one batch upsert whose creates carry their tags"
    );
    assert!(
        out.stdout.contains("tags to create: High value, romania"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("merge fields to create: CITY"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("refused chloe.moreau@orange (C005): invalid email address"),
        "{}",
        out.stdout
    );
    let after = sim.counters();
    assert_eq!(after.writes, before.writes, "plan sends no write");
    let v = sim.view(&list);
    assert_eq!(v.member_count, 0);
    assert!(
        !v.merge_fields.iter().any(|f| f["tag"] == "CITY"),
        "plan creates no merge field"
    );
    assert!(
        s.ok(&["runs"]).stdout.lines().count() <= 1,
        "a plan is not a run"
    );

    // The run does what the plan said.
    let run = s.run_export(3);
    assert!(
        run.stdout
            .contains("created 3, updated 0, unchanged 0, tagged 4"),
        "{}",
        run.stdout
    );

    // After a change, the plan shows the update, as JSON too.
    profiles[0].first = "Ana-Maria".into();
    s.import(&profiles);
    let writes = sim.counters().writes;
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["plan", EXPORT, "--json"]).stdout).expect("JSON");
    assert_eq!(json["summary"]["creates"], 0);
    assert_eq!(json["summary"]["updates"], 1);
    assert_eq!(json["summary"]["requests"], 1);
    assert_eq!(json["unchanged"], 2);
    assert_eq!(sim.counters().writes, writes);
    assert_eq!(
        merge(member(&sim.view(&list), "ana.popescu@gmail.com"), "FNAME"),
        "Ana"
    );
}

#[test]
fn a_connection_without_consent_is_refused_with_the_privacy_statement() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    let args = [
        "connection",
        "add",
        CONNECTION,
        "--api-key-env",
        KEY_ENV,
        "--base-url",
        &s.api_url,
    ];
    let mut c = s.command(&args);
    c.env(KEY_ENV, &sim.key);
    let out = s.run_command(&args, c);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        out.stderr.contains(segsync::PRIVACY_STATEMENT),
        "the statement, whole: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--accept-privacy-terms"),
        "says how to agree: {}",
        out.stderr
    );
    assert!(
        s.ok(&["connection", "list"]).stdout.trim().is_empty(),
        "no connection was stored"
    );
    assert_eq!(
        sim.counters().requests,
        0,
        "the key was not even sent to Mailchimp"
    );

    // With consent, it works, and the consent is recorded.
    s.connect();
    let list = s.ok(&["connection", "list"]).stdout;
    assert!(
        list.contains(CONNECTION) && list.contains("consent:"),
        "{list}"
    );
}

#[test]
fn a_second_run_of_a_running_export_is_refused() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = people(40);
    s.setup(&list, &profiles, &[]);
    // Every request takes 300 ms: the first run lasts seconds.
    sim.settings(|st| st.latency.base_ms = 300.0);

    let requests = sim.counters().requests;
    let args = ["run", EXPORT, "--quiet"];
    let first = s.spawn(&args);
    // Once the first run talks to Mailchimp, it holds the export's lock.
    wait_until(
        "the first run sends its first request",
        Duration::from_secs(60),
        || sim.counters().requests > requests,
    );
    let second = s.run_export(1);
    assert!(
        second
            .stderr
            .contains("export \"newsletter\" is already running"),
        "a clear message: {}",
        second.stderr
    );
    // The history shows the live run as running (or done, if it just finished): never as
    // interrupted while its process holds the lock.
    let listed = s.listed_outcome(1);
    assert!(listed == "running" || listed == "succeeded", "{listed}");

    let first = s.wait(&args, first);
    assert_eq!(
        first.code,
        0,
        "the first run is not disturbed: {}",
        first.text()
    );
    sim.settings(|st| st.latency.base_ms = 0.0);
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
    assert_eq!(s.listed_outcome(1), "succeeded");
    assert_eq!(
        s.ok(&["runs"]).stdout.lines().count(),
        2,
        "the refused run started nothing"
    );

    // Once it is over, the export runs again.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);
}

#[test]
fn removing_the_connection_stops_its_exports_and_bad_usage_exits_2() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &people(10), &[]);

    // Mistakes of usage or configuration: exit 2, a message, nothing done.
    let writes = sim.counters().writes;
    let unknown = s.expect(2, &["run", "no-such-export", "--quiet"]);
    assert!(
        unknown
            .stderr
            .contains("no export named \"no-such-export\""),
        "{}",
        unknown.stderr
    );
    let bad_run = s.expect(2, &["runs", "show", "first"]);
    assert!(
        bad_run.stderr.contains("a run is a number"),
        "{}",
        bad_run.stderr
    );
    let bad_segment = s.expect(
        2,
        &["segments", "add", "vip", "--where", "lifetime_valeu > 10"],
    );
    assert!(
        bad_segment.stderr.contains("lifetime_valeu"),
        "names the unknown column: {}",
        bad_segment.stderr
    );
    let bad_export = s.expect(
        2,
        &[
            "export",
            "add",
            "other",
            "--connection",
            CONNECTION,
            "--audience",
            &list,
            "--email-field",
            "mail",
            "--segment",
            "romania",
        ],
    );
    assert!(
        bad_export.stderr.contains("no profile column \"mail\""),
        "{}",
        bad_export.stderr
    );
    let no_list = s.expect(
        2,
        &[
            "export",
            "add",
            "other",
            "--connection",
            CONNECTION,
            "--audience",
            "0000000000",
            "--email-field",
            "email",
            "--segment",
            "romania",
        ],
    );
    assert!(!no_list.stderr.is_empty());
    assert_eq!(sim.counters().writes, writes);

    let removed = s.ok(&["connection", "remove", CONNECTION]);
    assert!(
        removed.stdout.contains(EXPORT),
        "names the exports that stop: {}",
        removed.stdout
    );
    let out = s.run_export(2);
    assert!(
        out.stderr.contains("connection \"mc\" was removed"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.counters().writes, writes, "nothing was sent");
    assert_eq!(sim.view(&list).member_count, 0);
}
