//! `segsync connection probe` (issue 14): against the simulator in its default readings every
//! probed assumption is "same"; with one reading turned, exactly that row "differs"; the
//! audience holds afterwards what it held before; and it refuses a big audience, and a run
//! nobody confirmed.

use mailchimp_sim::config::{
    ArchivedMembers, BatchItemTags, BatchSchemaErrors, DateMergeValues, MalformedSince,
    UpdatedMembers, Variants,
};
use mailchimp_sim::Settings;
use serde_json::{json, Value};

use crate::common::*;

const DOMAIN: &str = "probe.segsync.dev";

/// Rows the probe cannot check without --load, or at all.
const NOT_PROBED: &[&str] = &["throttle_status", "recent_signups", "oauth_redirect"];

/// An audience with contacts of its own, which the probe must leave as they are.
fn audience(sim: &Sim) -> String {
    let list = sim.new_list("Probe test");
    sim.add_member(
        &list,
        &ana().email,
        "subscribed",
        json!({"FNAME": "Ana"}),
        &["vip"],
    );
    sim.add_member(&list, &helene().email, "unsubscribed", json!({}), &[]);
    list
}

fn probe(s: &Session, list: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "connection",
        "probe",
        CONNECTION,
        "--audience",
        list,
        "--domain",
        DOMAIN,
        "--yes",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = s.ok(&args);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.text()))
}

/// Verdict per assumption.
fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["assumption"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What the audience holds, the forgotten hashes aside (the probe's contacts are
/// permanently deleted, which Mailchimp remembers).
fn state(sim: &Sim, list: &str) -> Value {
    let v = sim.view(list);
    json!({"members": v.members, "tags": v.tags, "merge_fields": v.merge_fields, "segments": v.saved_segments})
}

fn expect_only(report: &Value, differing: Option<&str>) {
    let rows = verdicts(report);
    assert_eq!(rows.len(), 11, "{report:#}");
    for (a, v) in rows {
        let want = if NOT_PROBED.contains(&a.as_str()) {
            "not probed"
        } else if Some(a.as_str()) == differing {
            "differs"
        } else {
            "same"
        };
        assert_eq!(v, want, "{a} with {differing:?} turned: {report:#}");
    }
    assert_eq!(report["cleanup"]["left_over"], json!([]), "{report:#}");
}

#[test]
fn against_the_default_readings_everything_probed_is_the_same_and_nothing_is_left() {
    let sim = Sim::start();
    // The default readings, whatever profile the suite runs under.
    sim.settings(|st| st.variants = Variants::default());
    let list = audience(&sim);
    let s = Session::new(&sim);
    s.connect();
    let before = state(&sim, &list);

    let report = probe(&s, &list, &[]);
    expect_only(&report, None);
    assert_eq!(state(&sim, &list), before, "{report:#}");
    assert!(
        !report["cleanup"]["members_deleted"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{report:#}"
    );

    // The human table says the same.
    let out = s.ok(&[
        "connection",
        "probe",
        CONNECTION,
        "--audience",
        &list,
        "--domain",
        DOMAIN,
        "--yes",
    ]);
    let archived = out
        .stdout
        .lines()
        .find(|l| l.starts_with("archived_members "))
        .unwrap_or_else(|| panic!("{}", out.text()));
    assert!(archived.ends_with("same"), "{}", out.text());
    assert!(out.stdout.contains("not probed"), "{}", out.text());
    assert_eq!(state(&sim, &list), before);
}

/// Against every pessimistic reading, each probed row differs and names the pessimistic
/// value, and the audience is left as it was.
#[test]
fn against_the_pessimistic_readings_every_probed_row_differs() {
    let sim = Sim::start();
    // The probe's fresh addresses are random: the share of new addresses the pessimistic
    // profile refuses for now (which the probe does not probe) would make a row
    // unpredictable here. fidelity.rs covers those refusals.
    sim.settings(|st| {
        st.variants = Variants {
            recent_signups_rate: 0.0,
            ..Variants::pessimistic()
        }
    });
    let list = audience(&sim);
    let s = Session::new(&sim);
    s.connect();
    let before = state(&sim, &list);

    let report = probe(&s, &list, &[]);
    let found: Vec<(String, String, String)> = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("assumption"), text("verdict"), text("mailchimp"))
        })
        .filter(|(a, _, _)| !NOT_PROBED.contains(&a.as_str()))
        .collect();
    let want: Vec<(String, String, String)> = [
        ("archived_members", "excluded"),
        ("batch_schema_errors", "whole_request"),
        ("updated_members", "changed_only"),
        ("date_merge_values", "documented_only"),
        ("ascii_local_parts", "on"),
        ("tag_name_max", "capped"),
        ("malformed_since", "ignore"),
        ("batch_item_tags", "ignored"),
    ]
    .into_iter()
    .map(|(a, m)| (a.to_string(), "differs".to_string(), m.to_string()))
    .collect();
    let sorted = |mut v: Vec<(String, String, String)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(found), sorted(want), "{report:#}");
    assert_eq!(verdicts(&report).len(), 11, "{report:#}");
    assert_eq!(report["cleanup"]["left_over"], json!([]), "{report:#}");
    assert_eq!(state(&sim, &list), before, "{report:#}");
}

/// A change of one reading.
type Turn = Box<dyn Fn(&mut Variants)>;

#[test]
fn each_reading_turned_alone_is_the_one_row_that_differs() {
    let sim = Sim::start();
    let list = audience(&sim);
    let s = Session::new(&sim);
    s.connect();
    let before = state(&sim, &list);

    let turns: Vec<(&str, Turn)> = vec![
        (
            "archived_members",
            Box::new(|v| v.archived_members = ArchivedMembers::Excluded),
        ),
        (
            "batch_schema_errors",
            Box::new(|v| v.batch_schema_errors = BatchSchemaErrors::WholeRequest),
        ),
        (
            "updated_members",
            Box::new(|v| v.updated_members = UpdatedMembers::ChangedOnly),
        ),
        (
            "date_merge_values",
            Box::new(|v| v.date_merge_values = DateMergeValues::DocumentedOnly),
        ),
        (
            "ascii_local_parts",
            Box::new(|v| v.ascii_local_parts = true),
        ),
        ("tag_name_max", Box::new(|v| v.tag_name_max = Some(50))),
        (
            "malformed_since",
            Box::new(|v| v.malformed_since = MalformedSince::Ignore),
        ),
        (
            "batch_item_tags",
            Box::new(|v| v.batch_item_tags = BatchItemTags::Ignored),
        ),
        (
            "batch_item_tags",
            Box::new(|v| v.batch_item_tags = BatchItemTags::NewMembersOnly),
        ),
    ];
    for (name, turn) in turns {
        sim.settings(|st: &mut Settings| {
            st.variants = Variants::default();
            turn(&mut st.variants);
        });
        let report = probe(&s, &list, &[]);
        expect_only(&report, Some(name));
        assert_eq!(state(&sim, &list), before, "{name}: {report:#}");
    }
}

#[test]
fn with_load_the_throttling_answer_is_probed_too() {
    let sim = Sim::start();
    let list = audience(&sim);
    let s = Session::new(&sim);
    s.connect();
    // Eleven requests at once overlap only if each takes a while.
    sim.settings(|st| {
        st.variants = Variants::default();
        st.latency.base_ms = 150.0;
    });
    let report = probe(&s, &list, &["--load"]);
    let row = |r: &Value| {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["assumption"] == "throttle_status")
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&report)["verdict"], "same", "{report:#}");

    sim.settings(|st| st.variants.throttle_status = 403);
    let report = probe(&s, &list, &["--load"]);
    assert_eq!(row(&report)["verdict"], "differs", "{report:#}");
    assert_eq!(row(&report)["mailchimp"], "403", "{report:#}");
    assert_eq!(report["cleanup"]["left_over"], json!([]), "{report:#}");
}

#[test]
fn a_big_audience_and_an_unconfirmed_run_are_refused_before_anything_is_written() {
    let sim = Sim::start();
    let list = audience(&sim);
    let s = Session::new(&sim);
    s.connect();
    let before = state(&sim, &list);
    let w0 = sim.counters().writes;
    let out = s.expect(
        2,
        &[
            "connection",
            "probe",
            CONNECTION,
            "--audience",
            &list,
            "--domain",
            DOMAIN,
            "--yes",
            "--max-members",
            "1",
        ],
    );
    assert!(out.stderr.contains("holds 2 contacts"), "{}", out.text());
    assert!(out.stderr.contains("--max-members"), "{}", out.text());

    // Not on a terminal (stdin is not one here) and no --yes: nobody could confirm.
    let out = s.expect(
        2,
        &[
            "connection",
            "probe",
            CONNECTION,
            "--audience",
            &list,
            "--domain",
            DOMAIN,
        ],
    );
    assert!(out.stderr.contains("--yes"), "{}", out.text());

    // No domain, no probe.
    let out = s.expect(
        2,
        &[
            "connection",
            "probe",
            CONNECTION,
            "--audience",
            &list,
            "--yes",
        ],
    );
    assert!(out.stderr.contains("--domain"), "{}", out.text());

    assert_eq!(state(&sim, &list), before);
    assert_eq!(sim.counters().writes, w0, "nothing was written");
}
