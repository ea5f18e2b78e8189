//! Runs that tell the truth (issue 18, items 6, 8 and 10): the change log of a run against
//! what the audience holds, the phases a run reports, retries counted where they happened,
//! and errors in a user's words.

use std::collections::BTreeSet;

use mailchimp_sim::Status;
use serde_json::Value;

use crate::common::*;

/// One line of `segsync runs changes RUN`: action, email, detail, profile key.
type Line = (String, String, String, String);

/// `segsync runs changes RUN` (CSV), parsed; the JSON-lines form must say the same.
fn changes(s: &Session, run: i64) -> Vec<Line> {
    let out = s.ok(&["runs", "changes", &run.to_string()]);
    let mut r = csv::Reader::from_reader(out.stdout.as_bytes());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["action", "email", "detail", "profile_key"]
    );
    let lines: Vec<Line> = r
        .records()
        .map(|rec| rec.unwrap())
        .map(|rec| (rec[0].into(), rec[1].into(), rec[2].into(), rec[3].into()))
        .collect();
    let jsonl = s.ok(&["runs", "changes", &run.to_string(), "--format", "jsonl"]);
    let same: Vec<Line> = jsonl
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|v| {
            let f = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {v}"))
                    .to_string()
            };
            (f("action"), f("email"), f("detail"), f("profile_key"))
        })
        .collect();
    assert_eq!(same, lines, "the JSON lines say what the CSV says");
    lines
}

/// The lines of `action`, as (email, detail), sorted.
fn of(lines: &[Line], action: &str) -> BTreeSet<(String, String)> {
    lines
        .iter()
        .filter(|l| l.0 == action)
        .map(|l| (l.1.clone(), l.2.clone()))
        .collect()
}

fn pair(email: &str, detail: &str) -> (String, String) {
    (email.to_string(), detail.to_string())
}

fn dan() -> Profile {
    Profile::new(
        "C004",
        "dan.ionescu@gmail.com",
        "Dan",
        "Ionescu",
        "Brașov",
        "RO",
        90.0,
    )
}

fn nobody() -> Profile {
    Profile::new(
        "C009",
        "not an address",
        "No",
        "Body",
        "Cluj-Napoca",
        "RO",
        900.0,
    )
}

#[test]
fn the_change_log_says_what_the_run_did_to_each_member() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(
        &list,
        &[ana(), helene(), stefan(), nobody()],
        &["--removal", "archive"],
    );
    let first = s.run_settled(&sim, 3, &[]);
    // Over the runs it took (some new addresses may be refused for now), every member was
    // created once, with its tags, and the bad address refused each time.
    let mut created = BTreeSet::new();
    let mut tagged = BTreeSet::new();
    for run in &first.runs {
        let lines = changes(&s, run["id"].as_i64().unwrap());
        created.extend(of(&lines, "created"));
        tagged.extend(of(&lines, "tagged"));
        let refused = of(&lines, "refused");
        assert!(
            refused
                .iter()
                .any(|(e, why)| e == "not an address" && !why.is_empty()),
            "the bad address is refused with its reason: {lines:?}"
        );
    }
    let subscribed = |p: &Profile| pair(&p.email, "subscribed");
    assert_eq!(
        created,
        [
            subscribed(&ana()),
            subscribed(&helene()),
            subscribed(&stefan())
        ]
        .into()
    );
    assert_eq!(
        tagged,
        [
            pair(&ana().email, HIGH_VALUE_TAG),
            pair(&ana().email, "romania"),
            pair(&helene().email, HIGH_VALUE_TAG),
            pair(&stefan().email, "romania"),
        ]
        .into()
    );

    // Ana moves and leaves the big spenders, Hélène moves to Paris, Ștefan leaves, Dan comes.
    let mut moved = ana();
    moved.email = "ana.popescu@outlook.com".into();
    moved.ltv = 120.0;
    let mut paris = helene();
    paris.city = "Paris".into();
    s.import(&[moved.clone(), paris.clone(), dan(), nobody()]);
    let second = s.run_settled(&sim, 3, &[]);
    let lines: Vec<Line> = second
        .runs
        .iter()
        .flat_map(|r| changes(&s, r["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        of(&lines, "moved"),
        [pair(&moved.email, &ana().email)].into(),
        "{lines:?}"
    );
    // A member who leaves every segment loses its tags before it is archived.
    assert_eq!(
        of(&lines, "untagged"),
        [
            pair(&moved.email, HIGH_VALUE_TAG),
            pair(&stefan().email, "romania")
        ]
        .into(),
        "{lines:?}"
    );
    assert_eq!(
        of(&lines, "updated"),
        [pair(&paris.email, "subscribed")].into(),
        "{lines:?}"
    );
    assert_eq!(
        of(&lines, "archived"),
        [pair(&stefan().email, "")].into(),
        "{lines:?}"
    );
    assert_eq!(
        of(&lines, "created"),
        [subscribed(&dan())].into(),
        "{lines:?}"
    );
    assert_eq!(
        of(&lines, "tagged"),
        [pair(&dan().email, "romania")].into(),
        "{lines:?}"
    );
    let keyed = |email: &str| lines.iter().find(|l| l.1 == email).map(|l| l.3.clone());
    assert_eq!(keyed(&moved.email).as_deref(), Some("C001"), "{lines:?}");
    assert_eq!(
        keyed("not an address").as_deref(),
        Some("C009"),
        "{lines:?}"
    );

    // What the log says is what the audience holds.
    let view = sim.view(&list);
    assert!(find(&view, &ana().email).is_none());
    assert_eq!(member(&view, &moved.email).tags, ["romania"]);
    assert_eq!(merge(member(&view, &paris.email), "CITY"), "Paris");
    assert_eq!(member(&view, &stefan().email).status, Status::Archived);
    assert_eq!(member(&view, &dan().email).tags, ["romania"]);
}

/// `segsync connection add NAME --api-key-env VAR --base-url URL` with `key`.
fn add_connection(s: &Session, key: &str, base_url: &str) -> Out {
    let args = [
        "connection",
        "add",
        "other",
        "--api-key-env",
        KEY_ENV,
        "--base-url",
        base_url,
        "--accept-privacy-terms",
    ];
    let mut c = s.command(&args);
    c.env(KEY_ENV, key);
    s.run_command(&args, c)
}

#[test]
fn errors_are_in_a_users_words() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &[ana(), helene()], &[]);

    // A key Mailchimp does not know, and a server that is not there: plain words, no
    // request names, no attempt counts.
    let out = add_connection(&s, "0123456789abcdef0123456789abcdef-us6", &sim.api_url());
    assert_eq!(out.code, 1, "{}", out.text());
    assert_eq!(
        out.stderr.trim(),
        "segsync: Mailchimp refused the API key: copy it again from Account > Extras > API keys in Mailchimp (it may have been revoked)",
    );
    let out = add_connection(&s, &sim.key, "http://127.0.0.1:9/3.0");
    assert_ne!(out.code, 0, "{}", out.text());
    assert_eq!(
        out.stderr.trim(),
        "segsync: could not reach Mailchimp at http://127.0.0.1:9/3.0: check the network and the base URL",
    );

    // An audience deleted in Mailchimp.
    let (code, body) = sim.api("DELETE", &format!("/lists/{list}"), None);
    assert_eq!(code, 204, "{body}");
    let out = s.run_export(1);
    let said = format!("Mailchimp has no audience with id {list} (it may have been deleted)");
    assert!(out.stderr.contains(&said), "{}", out.text());
    let shown = s.show(s.last_run());
    assert!(shown.contains(&said), "{shown}");
    for text in [out.text(), shown] {
        assert!(
            !text.contains("{list_id}") && !text.contains("attempts"),
            "{text}"
        );
    }
}

/// Every retry of `run` (`runs show --json`) is counted in the phase it happened in, those
/// for `cause` among them, and `runs show` (`shown`) says so in words.
pub fn retries_counted_where_they_happened(run: &Value, shown: &str, cause: &str) {
    let phases = run["counts"]["retries_by_phase"]
        .as_array()
        .unwrap_or_else(|| panic!("counts.retries_by_phase in {run}"));
    let causes = ["too_many_requests", "server_error", "timeout", "connection"];
    let sum = |p: &Value| causes.iter().map(|c| p[c].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        phases.iter().map(sum).sum::<u64>(),
        count(run, "retries"),
        "every retry in a phase: {run}"
    );
    assert!(
        phases.iter().any(|p| p[cause].as_u64().unwrap() > 0),
        "{run}"
    );
    for p in phases {
        let phase = p["phase"].as_str().unwrap();
        assert!(
            ["reading", "preparing", "sending", "tagging", "removing"].contains(&phase),
            "{run}"
        );
        let total = sum(p);
        let words = if total == 1 {
            "1 retry after"
        } else {
            "retries after"
        };
        let line = shown
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{phase}: ")))
            .unwrap_or_else(|| panic!("a line for {phase} in {shown}"));
        assert!(line.contains(words), "{line}");
    }
    assert!(!shown.contains("{list_id}"), "{shown}");
}

#[test]
fn a_run_names_its_phases_and_counts_members_as_they_are_answered() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &people(1200), &[]);
    // Lines on a pipe: each phase by name, its members counted one by one.
    let out = s.sh(&["run", EXPORT]);
    assert!([0, 3].contains(&out.code), "{}", out.text());
    let settled_first = s.show_json(s.last_run());
    let members = count(&settled_first, "members");
    assert!(
        out.stderr.contains("reading profiles and the audience ..."),
        "{}",
        out.stderr
    );
    let sending = format!("sending members: {members}/{members} members");
    assert!(out.stderr.contains(&sending), "{sending} in {}", out.stderr);
    let c = &settled_first["counts"];
    assert!(
        ["sending", "tagging"].contains(&c["phase"].as_str().unwrap()),
        "the phase it ended in: {c}"
    );
    assert_eq!(c["members_done"], c["members_total"], "{c}");
    assert!(c["members_total"].as_u64().unwrap() > 0, "{c}");
}
