//! Configuration as code: `segsync apply FILE.toml` and `segsync dump`, driven with the
//! repository's own example (`examples/segsync.toml`) over the demo's profiles, against the
//! simulator. What a user relies on: the objects the file declares exist and deliver, a second
//! apply and the apply of a dump change nothing (not even the audit log), a changed file
//! changes only what changed, a bad file is refused with its place and changes nothing, and
//! no secret ever shows.

use std::path::Path;

use mailchimp_sim::Status;
use serde_json::Value;

use crate::common::*;

/// The repository's example file, as committed.
const EXAMPLE: &str = include_str!("../../../../examples/segsync.toml");

/// The demo's sample profiles, whose columns the example maps.
const DEMO_PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo-profiles.csv");

/// The variable the example names as its connection's secret source.
const KEY_VAR: &str = "MAILCHIMP_API_KEY";

/// `text` with `from` replaced by `to`; `from` must occur exactly once (so that a change to
/// the example cannot make a test silently test something else).
fn subst(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} occurs once in:\n{text}"
    );
    text.replace(from, to)
}

/// The example pointed at the simulator: its two audience ids become the simulator's, and its
/// commented-out API root becomes the simulator's. Nothing else changes.
fn example_for(sim: &Sim, newsletter: &str, win_back: &str) -> String {
    let t = subst(
        EXAMPLE,
        "audience = \"a1b2c3d4e5\"",
        &format!("audience = \"{newsletter}\""),
    );
    let t = subst(
        &t,
        "audience = \"f6e5d4c3b2\"",
        &format!("audience = \"{win_back}\""),
    );
    subst(
        &t,
        "# base_url = \"https://us6.api.mailchimp.com/3.0\"",
        &format!("base_url = \"{}\"", sim.api_url()),
    )
}

/// `segsync ARGS` with the API key in `MAILCHIMP_API_KEY` (`Some`), or that variable surely
/// absent (`None`).
fn with_key(s: &Session, key: Option<&str>, args: &[&str]) -> Out {
    let mut c = s.command(args);
    match key {
        Some(k) => c.env(KEY_VAR, k),
        None => c.env_remove(KEY_VAR),
    };
    s.run_command(args, c)
}

fn write(s: &Session, name: &str, text: &str) -> String {
    let path = s.path(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The audit log, oldest first: (action, target).
fn audit(home: &Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open_with_flags(
        home.join("state.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut st = db
        .prepare("SELECT action, target FROM audit ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The lines of `text` that describe objects (`+`, `~`, `=`, `-`, `?`, `!`).
fn object_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.len() > 2 && "+~=-?!".contains(&l[..1]) && l.as_bytes()[1] == b' ')
        .collect()
}

fn assert_has(text: &str, want: &str) {
    assert!(text.contains(want), "missing {want:?} in:\n{text}");
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn place(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} in:\n{text}"));
    let line = text[..at].matches('\n').count() + 1;
    let start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[start..at].chars().count() + 1)
}

/// A fresh home with the demo's profiles, and two audiences in the simulator.
struct Setup {
    sim: Sim,
    s: Session,
    newsletter: String,
    win_back: String,
    text: String,
    file: String,
}

fn setup() -> Setup {
    let sim = Sim::start();
    let newsletter = sim.new_list("Newsletter");
    let win_back = sim.new_list("Win-back");
    let s = Session::new(&sim);
    s.ok(&["profiles", "import", DEMO_PROFILES, "--key", "customer_id"]);
    let text = example_for(&sim, &newsletter, &win_back);
    let file = write(&s, "segsync.toml", &text);
    Setup {
        sim,
        s,
        newsletter,
        win_back,
        text,
        file,
    }
}

/// [`setup`], and the example applied.
fn applied() -> Setup {
    let t = setup();
    with_key(&t.s, Some(&t.sim.key), &["apply", &t.file]);
    assert_eq!(t.s.ok(&["export", "list"]).stdout.lines().count(), 2);
    t
}

const ALL_UNCHANGED: &[&str] = &[
    "= connection mailchimp (unchanged; secret kept: --rotate-secrets replaces it from api_key_env MAILCHIMP_API_KEY)",
    "= segment high-value (unchanged)",
    "= segment romania (unchanged)",
    "= segment recent-buyers (unchanged)",
    "= segment lapsed (unchanged)",
    "= export newsletter (unchanged)",
    "= export win-back (unchanged)",
];

#[test]
fn the_example_applies_delivers_and_applies_again_as_unchanged_and_dumps_round_trip() {
    let t = setup();
    let s = &t.s;

    // A dry run says what would happen and does nothing.
    let out = with_key(s, Some(&t.sim.key), &["apply", &t.file, "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(
        object_lines(&out.stdout),
        [
            "+ connection mailchimp (create; secret from api_key_env MAILCHIMP_API_KEY)",
            "+ segment high-value (create)",
            "+ segment romania (create)",
            "+ segment recent-buyers (create)",
            "+ segment lapsed (create)",
            "+ export newsletter (create)",
            "+ export win-back (create)",
        ]
    );
    assert_has(
        &out.stdout,
        "dry run: 7 to create, 0 to update, 0 unchanged, 0 to remove, 0 not in the file",
    );
    assert_eq!(s.ok(&["connection", "list"]).stdout, "");
    assert_eq!(s.ok(&["segments", "list"]).stdout, "");
    assert_eq!(s.ok(&["export", "list"]).stdout, "");
    assert!(audit(s.home()).is_empty(), "a dry run audits nothing");

    // The apply.
    let out = with_key(s, Some(&t.sim.key), &["apply", &t.file]);
    assert_eq!(out.code, 0, "{}", out.text());
    let lines = object_lines(&out.stdout);
    assert_eq!(lines.len(), 7, "{}", out.stdout);
    assert_eq!(
        lines[0],
        "+ connection mailchimp (created; secret from api_key_env MAILCHIMP_API_KEY)"
    );
    let high_value = s.ok(&["segments", "preview", "high-value", "--sample", "0"]);
    let count = high_value
        .stdout
        .split_whitespace()
        .nth(2)
        .expect("segment \"high-value\": N profiles")
        .to_string();
    assert_eq!(
        lines[1],
        format!("+ segment high-value (created; {count} profiles match)")
    );
    assert!(
        lines[2].starts_with("+ segment romania (created; "),
        "{}",
        lines[2]
    );
    assert_eq!(lines[5], "+ export newsletter (created)");
    assert_eq!(lines[6], "+ export win-back (created)");
    assert_has(
        &out.stdout,
        &format!(
            "applied {}: 7 created, 0 updated, 0 unchanged, 0 removed, 0 not in the file",
            t.file
        ),
    );

    // What the file declares is there, as declared.
    let connections = s.ok(&["connection", "list"]).stdout;
    assert_has(&connections, "Mailchimp (marketing)");
    assert_has(&connections, "used by: admins and contributors");
    let segments = s.ok(&["segments", "list"]).stdout;
    assert_has(&segments, "lapsed");
    assert_has(&segments, "last_order_date < '2026-03-01' AND orders >= 2");
    let show = |name: &str| -> Value {
        serde_json::from_str(&s.ok(&["export", "show", name]).stdout).unwrap()
    };
    let newsletter = show("newsletter");
    assert_eq!(newsletter["audience_id"], t.newsletter.as_str());
    assert_eq!(
        newsletter["schedule"],
        serde_json::json!({"kind": "cron", "cron": "0 6 * * *", "timezone": "Europe/Bucharest"})
    );
    assert_eq!(newsletter["updated_at_field"], "updated_at");
    assert_eq!(newsletter["create_merge_fields"], true);
    let tags: Vec<(String, String)> = newsletter["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["segment"].as_str().unwrap().to_string(),
                x["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        [
            ("high-value".to_string(), "High value".to_string()),
            ("recent-buyers".to_string(), "Recent buyers".to_string()),
            ("romania".to_string(), "romania".to_string()),
        ]
    );
    let win_back = show("win-back");
    assert_eq!(win_back["status_if_new"], "pending");
    assert_eq!(win_back["removal"], "archive");
    assert_eq!(
        win_back["schedule"],
        serde_json::json!({"kind": "after_refresh"})
    );

    // And it delivers (the sample holds a few deliberately invalid addresses: exit 3).
    s.expect(3, &["run", "newsletter", "--quiet"]);
    let view = t.sim.view(&t.newsletter);
    assert!(view.member_count > 100, "members: {}", view.member_count);
    let tag_names: Vec<&str> = view.tags.iter().map(|t| t.name.as_str()).collect();
    for tag in ["High value", "Recent buyers", "romania"] {
        assert!(tag_names.contains(&tag), "tag {tag} in {tag_names:?}");
    }
    assert!(
        view.merge_fields.iter().any(|f| f["tag"] == "LTV"),
        "create_merge_fields = true created LTV"
    );
    let code = s.sh(&["run", "win-back", "--quiet"]).code;
    assert!(code == 0 || code == 3, "win-back run exited {code}");
    let view = t.sim.view(&t.win_back);
    assert!(!view.members.is_empty(), "the lapsed customers were sent");
    assert!(
        view.members
            .iter()
            .all(|m| m.status == Status::Pending && m.tags == ["Win-back"]),
        "status_if_new = \"pending\", tag \"Win-back\""
    );

    // Applying the same file again changes nothing, audits nothing, and needs no secret.
    let before = audit(s.home());
    let out = with_key(s, None, &["apply", &t.file]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(object_lines(&out.stdout), ALL_UNCHANGED);
    assert_has(
        &out.stdout,
        &format!(
            "{}: nothing to change (7 unchanged, 0 not in the file)",
            t.file
        ),
    );
    assert_eq!(audit(s.home()), before, "an unchanged apply audits nothing");

    // The dump: sorted by name, every setting, no secret; applying it changes nothing.
    let dump = s.ok(&["dump"]).stdout;
    assert!(!dump.contains(&t.sim.key), "the key is not in the dump");
    for want in [
        "name = \"mailchimp\"\ndisplay_name = \"Mailchimp (marketing)\"",
        &format!("base_url = \"{}\"", t.sim.api_url()),
        "share_with_contributors = true\nexport_user = \"ana\"\n# api_key_env = \"...\"",
        "# accept_privacy_terms = true",
        "merge = { CITY = \"city\", LTV = \"lifetime_value\" }",
        "schedule = { cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }",
        "segments = [{ segment = \"lapsed\", tag = \"Win-back\" }]",
        "schedule = \"after_refresh\"",
    ] {
        assert_has(&dump, want);
    }
    let order: Vec<usize> = [
        "name = \"high-value\"",
        "name = \"lapsed\"",
        "name = \"recent-buyers\"",
        "name = \"romania\"",
        "name = \"newsletter\"",
        "name = \"win-back\"",
    ]
    .iter()
    .map(|n| dump.find(n).unwrap_or_else(|| panic!("{n} in\n{dump}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "sorted:\n{dump}");
    let dumped = write(s, "dump.toml", &dump);
    let out = with_key(s, None, &["apply", &dumped]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(
        object_lines(&out.stdout),
        [
            "= connection mailchimp (unchanged; secret kept)",
            "= segment high-value (unchanged)",
            "= segment lapsed (unchanged)",
            "= segment recent-buyers (unchanged)",
            "= segment romania (unchanged)",
            "= export newsletter (unchanged)",
            "= export win-back (unchanged)",
        ]
    );
    assert_eq!(audit(s.home()), before, "applying a dump audits nothing");
    assert_eq!(s.ok(&["dump"]).stdout, dump, "a dump is stable");
    let to_file = s.path("out.toml");
    let out = s.ok(&["dump", "--output", to_file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&to_file).unwrap(), dump);
    assert_has(
        &out.stderr,
        "wrote 1 connection(s), 4 segment(s), 2 export(s)",
    );

    // --json, for scripts.
    let out = with_key(s, None, &["apply", &t.file, "--json"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "unchanged");
    assert_eq!(report["summary"]["unchanged"], 7);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7);
    assert!(steps
        .iter()
        .all(|st| st["action"] == "unchanged" && st["applied"] == false));
    assert_eq!(steps[5]["kind"], "export");
    assert_eq!(steps[5]["name"], "newsletter");

    // On another installation the dump does not create a connection by itself: consent and
    // a secret source are the admin's to give.
    let other = Session::new(&t.sim);
    other.ok(&["profiles", "import", DEMO_PROFILES, "--key", "customer_id"]);
    let copy = write(&other, "dump.toml", &dump);
    let out = with_key(&other, Some(&t.sim.key), &["apply", &copy]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert_has(
        &out.stderr,
        "connection \"mailchimp\" is new: creating it needs accept_privacy_terms = true",
    );
    assert_has(
        &out.stderr,
        "connection \"mailchimp\" is new: name where its secret comes from",
    );
    assert_eq!(
        other.ok(&["segments", "list"]).stdout,
        "",
        "nothing applied"
    );

    assert!(
        !s.transcript().contains(&t.sim.key) && !other.transcript().contains(&t.sim.key),
        "the key never shows"
    );
}

#[test]
fn a_changed_file_changes_only_what_changed_and_prune_removes_what_it_dropped() {
    let t = applied();
    let s = &t.s;
    // Until Mailchimp took what it refused only for now, if anything: then the export has
    // nothing left to send.
    s.run_settled(&t.sim, 3, &[]);

    // A new display name and a new schedule: two changes, two audit entries, and the export
    // keeps its snapshot (its next run sends nothing).
    let changed = subst(
        &t.text,
        "display_name = \"Mailchimp (marketing)\"",
        "display_name = \"Mailchimp (shop)\"",
    );
    let changed = subst(
        &changed,
        "schedule = { cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }",
        "schedule = { cron = \"30 7 * * 1\", timezone = \"Europe/Bucharest\" }",
    );
    let file = write(s, "segsync.toml", &changed);
    let before = audit(s.home());
    let out = with_key(s, None, &["apply", &file]);
    assert_eq!(out.code, 0, "{}", out.text());
    let mut want: Vec<String> = ALL_UNCHANGED.iter().map(|l| l.to_string()).collect();
    want[0] = "~ connection mailchimp (updated: display_name; secret kept: --rotate-secrets replaces it from api_key_env MAILCHIMP_API_KEY)".into();
    want[5] = "~ export newsletter (updated: schedule)".into();
    assert_eq!(object_lines(&out.stdout), want);
    assert_has(
        &out.stdout,
        &format!("applied {file}: 0 created, 2 updated, 5 unchanged, 0 removed, 0 not in the file"),
    );
    let after = audit(s.home());
    assert_eq!(
        after[before.len()..],
        [
            ("connection.update".to_string(), "mailchimp".to_string()),
            ("export.update".to_string(), "newsletter".to_string()),
        ]
    );
    assert_has(&s.ok(&["connection", "list"]).stdout, "Mailchimp (shop)");
    let writes = t.sim.counters().writes;
    s.expect(3, &["run", "newsletter", "--quiet"]);
    assert_eq!(
        t.sim.counters().writes,
        writes,
        "a schedule change keeps the export's snapshot: nothing to send"
    );

    // Drop the win-back export and its segment, change a predicate: the dropped objects are
    // listed and left alone...
    let cut = |text: &str, from: &str, to: Option<&str>| -> String {
        let a = text.find(from).unwrap();
        let b = to
            .map(|t| a + text[a..].find(t).unwrap())
            .unwrap_or(text.len());
        format!("{}{}", &text[..a], &text[b..])
    };
    let smaller = cut(&changed, "# Win-back campaign", None);
    let smaller = cut(
        &smaller,
        "[[segment]]\nname = \"lapsed\"",
        Some("# --- What goes where"),
    );
    let smaller = subst(
        &smaller,
        "where = \"country = 'RO'\"",
        "where = \"country IN ('RO', 'MD')\"",
    );
    let file = write(s, "segsync.toml", &smaller);
    let out = with_key(s, None, &["apply", &file]);
    assert_eq!(out.code, 0, "{}", out.text());
    let lines = object_lines(&out.stdout);
    assert!(
        lines.contains(&"? export win-back (not in the file: left alone; --prune removes it)"),
        "{}",
        out.stdout
    );
    assert!(
        lines.contains(&"? segment lapsed (not in the file: left alone; --prune removes it)"),
        "{}",
        out.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("~ segment romania (updated: where; ")),
        "{}",
        out.stdout
    );
    assert_has(&s.ok(&["export", "list"]).stdout, "win-back");
    assert_has(
        &s.ok(&["segments", "show", "romania"]).stdout,
        "country IN ('RO', 'MD')",
    );

    // ... until --prune, which removes them (exports first), never the connection.
    let out = with_key(s, None, &["apply", &file, "--prune"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let lines = object_lines(&out.stdout);
    assert_eq!(
        lines[lines.len() - 2..],
        ["- export win-back (removed)", "- segment lapsed (removed)"]
    );
    assert!(!s.ok(&["export", "list"]).stdout.contains("win-back"));
    assert!(!s.ok(&["segments", "list"]).stdout.contains("lapsed"));
    assert_has(&s.ok(&["connection", "list"]).stdout, "mailchimp");

    // A file that declares only the connection would prune everything: refused.
    let only_connection = cut(&smaller, "# --- Who:", None);
    let file = write(s, "connection-only.toml", &only_connection);
    let out = with_key(s, None, &["apply", &file, "--prune"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert_has(
        &out.stderr,
        "would remove every export and segment: refused",
    );
    assert_eq!(s.ok(&["export", "list"]).stdout.lines().count(), 1);
}

/// A file with one mistake (`from` → `to` in the applied example) is refused with exit 2 and
/// `message`, and nothing changes. Returns the output.
fn refused(t: &Setup, from: &str, to: &str, key: Option<&str>, message: &str) -> Out {
    let s = &t.s;
    let before = (audit(s.home()), s.ok(&["dump"]).stdout);
    let bad = subst(&t.text, from, to);
    let file = write(s, "bad.toml", &bad);
    let out = with_key(s, key, &["apply", &file]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert_has(&out.stderr, message);
    assert_has(&out.stderr, "bad.toml refused");
    assert_has(&out.stderr, "nothing was changed");
    assert!(object_lines(&out.stdout).is_empty(), "{}", out.stdout);
    assert_eq!(
        (audit(s.home()), s.ok(&["dump"]).stdout),
        before,
        "a refused file changes nothing"
    );
    out
}

#[test]
fn a_bad_file_is_refused_with_the_place_of_every_problem_and_changes_nothing() {
    let t = applied();
    let path = t.s.path("bad.toml").to_str().unwrap().to_string();
    // Where `point` is once `from` is replaced by `to`: PATH:LINE:COLUMN.
    let at = |from: &str, to: &str, point: &str| {
        let (l, c) = place(&subst(&t.text, from, to), point);
        format!("{path}:{l}:{c}")
    };

    // An unknown key (a typo), at its place.
    let typo = "wher = \"lifetime_value > 500\"";
    refused(
        &t,
        "where = \"lifetime_value > 500\"",
        typo,
        None,
        &format!(
            "{}: segment \"high-value\": unknown field `wher`, expected one of `name`, `where`, `rule`, `source`",
            at("where = \"lifetime_value > 500\"", typo, typo)
        ),
    );

    // A cron expression that cannot be.
    let cron = "{ cron = \"0 25 * * *\", timezone = \"Europe/Bucharest\" }";
    refused(
        &t,
        "{ cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }",
        cron,
        None,
        &format!(
            "{}: export \"newsletter\": schedule: cron schedule \"0 25 * * *\"",
            at(
                "{ cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }",
                cron,
                cron
            )
        ),
    );

    // A segment the export names but nobody declares.
    refused(
        &t,
        "{ segment = \"romania\" }",
        "{ segment = \"romnia\" }",
        None,
        &format!(
            "{}: export \"newsletter\": segment \"romnia\" is neither in the file nor in the installation",
            at(
                "{ segment = \"romania\" }",
                "{ segment = \"romnia\" }",
                "\"romnia\""
            )
        ),
    );

    // A new connection whose secret file cannot be read; the valid change next to it (a new
    // predicate) is not applied either.
    let backup = "[[connection]]\nname = \"backup\"\napi_key_file = \"secrets/backup-key\"\naccept_privacy_terms = true\n\n[[segment]]\nname = \"high-value\"\nwhere = \"lifetime_value > 900\"";
    let segment = "[[segment]]\nname = \"high-value\"\nwhere = \"lifetime_value > 500\"";
    let (l, c) = place(&subst(&t.text, segment, backup), "\"secrets/backup-key\"");
    refused(
        &t,
        segment,
        backup,
        None,
        &format!(
            "{path}:{l}:{c}: connection \"backup\": api_key_file secrets/backup-key ({}): cannot read it",
            t.s.path("secrets/backup-key").display()
        ),
    );

    // Several problems at once: every one is listed, in file order.
    let many = subst(
        &subst(
            &t.text,
            "{ cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }",
            "{ cron = \"0 6 * * *\", timezone = \"Europe/Bucuresti\" }",
        ),
        "{ segment = \"romania\" }",
        "{ segment = \"romnia\" }",
    );
    let many = subst(
        &many,
        "email_field = \"email\"\nfirst_name = \"first_name\"\nsegments",
        "email_field = \"e_mail\"\nfirst_name = \"first_name\"\nsegments",
    );
    let file = write(&t.s, "bad.toml", &many);
    let out = with_key(&t.s, None, &["apply", &file]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert_has(
        &out.stderr,
        "bad.toml refused (3 problems); nothing was changed:",
    );
    let problems: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("  {path}:")))
        .collect();
    assert_eq!(problems.len(), 3, "{}", out.stderr);
    assert!(
        problems[0].contains("segment \"romnia\" is neither"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("unknown time zone \"Europe/Bucuresti\""),
        "{problems:?}"
    );
    assert!(
        problems[2].contains("export \"win-back\": no profile column \"e_mail\""),
        "{problems:?}"
    );

    // TOML that does not parse.
    let out = refused(
        &t,
        "[[export]]\nname = \"win-back\"",
        "[[export]\nname = \"win-back\"",
        None,
        &format!("{path}:"),
    );
    let (l, _) = place(
        &subst(
            &t.text,
            "[[export]]\nname = \"win-back\"",
            "[[export]\nname = \"win-back\"",
        ),
        "[[export]\nname = \"win-back\"",
    );
    assert_has(&out.stderr, &format!("{path}:{l}:"));

    // What only Mailchimp knows is asked before anything changes: an audience that does not
    // exist refuses the file, and the predicate changed beside it stays as it was.
    let typo_audience = subst(
        &subst(
            &t.text,
            &format!("audience = \"{}\"", t.newsletter),
            "audience = \"0000000000\"",
        ),
        "where = \"lifetime_value > 500\"",
        "where = \"lifetime_value > 800\"",
    );
    let file = write(&t.s, "bad.toml", &typo_audience);
    let before = t.s.ok(&["dump"]).stdout;
    let out = with_key(&t.s, None, &["apply", &file]);
    assert_eq!(out.code, 2, "{}", out.text());
    let (l, c) = place(&typo_audience, "\"0000000000\"");
    assert_has(
        &out.stderr,
        &format!("{path}:{l}:{c}: export \"newsletter\": Mailchimp has no audience with id 0000000000 (it may have been deleted)"),
    );
    assert_eq!(t.s.ok(&["dump"]).stdout, before);
    assert_has(
        &t.s.ok(&["segments", "show", "high-value"]).stdout,
        "lifetime_value > 500",
    );

    // --json: the problems, structured.
    let out = with_key(&t.s, None, &["apply", &file, "--json"]);
    assert_eq!(out.code, 2, "{}", out.text());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "refused");
    assert_eq!(report["problems"][0]["line"], l);
    assert_eq!(report["problems"][0]["column"], c);
    assert_eq!(report["problems"].as_array().unwrap().len(), 1);
}

#[test]
fn secrets_are_kept_unless_rotated_and_never_show() {
    let t = applied();
    let s = &t.s;
    let before = audit(s.home());

    // Rotating to the same key changes nothing.
    let out = with_key(s, Some(&t.sim.key), &["apply", &t.file, "--rotate-secrets"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(
        object_lines(&out.stdout)[0],
        "= connection mailchimp (unchanged; secret from api_key_env MAILCHIMP_API_KEY is the one stored)"
    );
    assert_eq!(audit(s.home()), before);

    // Rotating needs the secret; without it, refused.
    let out = with_key(s, None, &["apply", &t.file, "--rotate-secrets"]);
    assert_eq!(out.code, 2, "{}", out.text());
    let (l, c) = place(&t.text, "\"MAILCHIMP_API_KEY\"");
    assert_has(
        &out.stderr,
        &format!(
            "{}:{l}:{c}: connection \"mailchimp\": api_key_env MAILCHIMP_API_KEY: the variable is not set",
            t.file
        ),
    );

    // A malformed key is refused before anything is sent, and never echoed.
    let malformed = "sk-live-0123456789-not-a-mailchimp-key";
    let out = with_key(s, Some(malformed), &["apply", &t.file, "--rotate-secrets"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert_has(&out.stderr, "invalid Mailchimp credential");
    assert!(!out.text().contains(malformed));

    // A well-formed key Mailchimp does not know: refused after asking Mailchimp (exit 1,
    // Mailchimp said no), and the stored credential still works.
    let unknown = "0123456789abcdef0123456789abcdef-us6";
    let out = with_key(s, Some(unknown), &["apply", &t.file, "--rotate-secrets"]);
    assert_eq!(out.code, 1, "{}", out.text());
    assert_has(&out.stderr, "connection \"mailchimp\": checking the credential with Mailchimp: Mailchimp refused the connection's credential");
    assert!(!out.text().contains(unknown));
    assert_eq!(audit(s.home()), before, "nothing changed");
    s.ok(&["connection", "test", "mailchimp"]);

    let all = s.transcript();
    assert!(!all.contains(&t.sim.key), "the key never shows");
    for f in ["state.sqlite", "profiles.sqlite"] {
        let bytes = std::fs::read(s.path(f)).unwrap_or_default();
        assert!(
            !bytes
                .windows(t.sim.key.len())
                .any(|w| w == t.sim.key.as_bytes()),
            "{f} does not hold the key in clear"
        );
    }
}
