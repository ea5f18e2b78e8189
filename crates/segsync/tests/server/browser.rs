//! The web UI in a real browser: headless Chromium, driven by Playwright from Node
//! (`tests/browser/flow.mjs`), goes through the seed's flow as a new admin and a contributor
//! would, against `segsync serve` and the simulator (its OAuth login page included). Then
//! the audience in the simulator must hold exactly what the export sends.
//!
//! Needs Chromium and `tests/browser/node_modules`: `scripts/setup-browser.sh` installs both
//! (scripts/test.sh and CI run it first). Without them this test fails and says so; it never
//! skips.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailchimp_sim::Status;
use serde_json::json;

use crate::common::*;
use crate::harness::*;

const CLIENT_ID: &str = "segsync-browser-tests";
const CLIENT_SECRET: &str = "browser-tests-client-secret-5e1f";
const DISPLAY_NAME: &str = "Mailchimp (marketing)";
/// What the UI makes of the display name when no connection name is typed.
const CONNECTION_NAME: &str = "mailchimp-marketing";
/// The whole browser flow may take this long.
const FLOW_DEADLINE: Duration = Duration::from_secs(300);

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Chromium, Node and Playwright are there, or the test fails saying how to install them.
fn require_browser_setup() {
    let how =
        "run scripts/setup-browser.sh (it installs Chromium and the browser tests' node_modules)";
    assert!(
        chromium().exists(),
        "Chromium is not installed at {} (or set CHROMIUM): {how}",
        chromium().display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node does not run ({node:?}): {how}"
    );
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} is missing: {how}",
        playwright.display()
    );
}

/// Runs `node flow.mjs` with `env`, at most [`FLOW_DEADLINE`]; its exit status and output.
fn run_flow(env: &[(&str, String)]) -> (Option<i32>, String) {
    run_script("flow.mjs", env)
}

/// Runs `node SCRIPT` (of `tests/browser`) with `env`, at most [`FLOW_DEADLINE`]; its exit
/// status and output.
fn run_script(script: &str, env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut c = Command::new("node");
    c.arg(script)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("node starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for node") {
            break s.code();
        }
        if started.elapsed() > FLOW_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "--- stdout\n{}--- stderr\n{}",
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default()
    );
    (status, output)
}

#[test]
fn admin_connects_with_oauth_and_a_contributor_sees_the_export_in_the_browser() {
    require_browser_setup();

    // Mailchimp: an account with an audience, and this installation's OAuth app. Some
    // latency, so that a run lasts long enough for its progress to be seen.
    let sim = Sim::start();
    let (code, body) = sim.admin(
        "POST",
        "/_sim/oauth-clients",
        Some(json!({ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET })),
    );
    assert!(
        (200..300).contains(&code),
        "registering the OAuth app: {code} {body}"
    );
    let list = sim.new_list("Newsletter");
    sim.settings(|s| s.latency.base_ms = 250.0);

    // The installation: profiles, the two segments, an admin, a contributor, a viewer.
    let profiles = people(120);
    let s = Session::new(&sim);
    s.import(&profiles);
    s.segments();
    add_users(&s);
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", CLIENT_SECRET);
    let login_url = format!("{}/", sim.api_url().trim_end_matches("/3.0"));
    let server = Server::start(
        &s,
        &[
            "--oauth-client-id",
            CLIENT_ID,
            "--oauth-login-url",
            &login_url,
        ],
    );

    let want = expected(&profiles, Status::Subscribed);
    let high = profiles.iter().filter(|p| p.high_value()).count();
    let romania = profiles.iter().filter(|p| p.romanian()).count();
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&screenshots).expect("the screenshots folder");
    let failure_dir = s.path("browser-failure");

    let (status, output) = run_flow(&[
        ("SEGSYNC_URL", server.url.clone()),
        ("ADMIN_USER", ADMIN.0.into()),
        ("ADMIN_PASSWORD", ADMIN.1.into()),
        ("CONTRIBUTOR_USER", CONTRIBUTOR.0.into()),
        ("CONTRIBUTOR_PASSWORD", CONTRIBUTOR.1.into()),
        ("SCREENSHOTS", screenshots.display().to_string()),
        ("FAILURE_DIR", failure_dir.display().to_string()),
        ("LIST_ID", list.clone()),
        ("LIST_NAME", "Newsletter".into()),
        ("DISPLAY_NAME", DISPLAY_NAME.into()),
        ("CONNECTION_NAME", CONNECTION_NAME.into()),
        ("EXPORT_NAME", EXPORT.into()),
        (
            "PROFILES_FILE",
            s.path("profiles.csv").display().to_string(),
        ),
        ("PROFILE_COUNT", profiles.len().to_string()),
        (
            "SEGMENTS",
            json!([
                { "name": "high_value", "count": high, "tag": HIGH_VALUE_TAG },
                { "name": "romania", "count": romania, "tag": "romania" },
            ])
            .to_string(),
        ),
        ("EXPECTED_CREATED", want.len().to_string()),
        ("CHOSEN_MEMBERS", want.len().to_string()),
        (
            "SECRETS",
            json!([CLIENT_SECRET, ADMIN.1, CONTRIBUTOR.1]).to_string(),
        ),
        ("CHROMIUM", chromium().display().to_string()),
    ]);
    if status != Some(0) {
        // Keep the failure's screenshot: the temporary home is deleted with the session.
        let kept = std::env::temp_dir().join("segsync-browser-failure");
        let _ = std::fs::remove_dir_all(&kept);
        let _ = std::fs::create_dir_all(&kept);
        for f in ["failure.png", "failure.html"] {
            let _ = std::fs::copy(failure_dir.join(f), kept.join(f));
        }
        panic!(
            "the browser flow failed (exit {status:?}; the page at the failure is in {})\n{output}\n--- segsync serve\n{}",
            kept.display(),
            server.output()
        );
    }
    println!("{output}");

    // What the admin and the browser set up reached Mailchimp: every member of either
    // segment, subscribed, with FNAME, LNAME and CITY, tagged with its segments.
    let view = sim.view(&list);
    assert_eq!(holding(&view, FIELDS), want);

    // The connection is the OAuth one, shared with contributors, run as the admin.
    let admin = server.login(ADMIN);
    let (code, c) = admin.get(&format!("/api/connections/{CONNECTION_NAME}"));
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["credential_kind"], "oauth");
    assert_eq!(c["shared_with_contributors"], true);
    assert_eq!(c["consent_by"], ADMIN.0);
    assert_eq!(c["export_user"], ADMIN.0);
    assert!(
        !server.output().contains(CLIENT_SECRET),
        "the server never prints the OAuth app's secret"
    );
}

// --- the same pages over plain HTTP: what a browser test cannot see easily ---

/// The CSRF token in a page's forms.
fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("a form with a CSRF token in:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("the token ends")].to_string()
}

fn location(a: &Answer) -> String {
    a.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A browser-like client logged in through the login form; its CSRF token.
fn ui_login(server: &Server, (name, password): (&str, &str)) -> (Client, String) {
    let c = server.anonymous();
    let a = c.send(c.request("POST", "/login").form(&[
        ("name", name),
        ("password", password),
        ("next", "/segments"),
    ]));
    assert_eq!(a.status, 303, "login {name}: {}", a.text);
    assert_eq!(location(&a), "/segments");
    let page = c.send(c.request("GET", "/segments"));
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = csrf_in(&page.text);
    (c, csrf)
}

/// A page's text with maud's escapes undone, to look for messages with quotes in them.
fn unescaped(page: &str) -> String {
    page.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn post(c: &Client, path: &str, form: &[(&str, &str)]) -> Answer {
    c.send(c.request("POST", path).form(form))
}

fn get(c: &Client, path: &str) -> Answer {
    c.send(c.request("GET", path))
}

#[test]
fn ui_pages_check_sessions_csrf_roles_and_show_no_secret() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let mut profiles = people(40);
    // One profile Mailchimp cannot take: the run reports it, the page links its CSV.
    profiles.push(Profile::new(
        "X001",
        "chloe@orange",
        "Chloé",
        "Moreau",
        "Lyon",
        "FR",
        900.0,
    ));
    let s = Session::new(&sim);
    s.import(&profiles);
    s.segments();
    add_users(&s);
    let server = Server::start(&s, &[]);

    // Nobody logged in: to the login page, and back to the page asked for afterwards.
    let anon = server.anonymous();
    let a = get(&anon, "/exports/newsletter?tab=1");
    assert_eq!(a.status, 303);
    assert_eq!(
        location(&a),
        "/login?next=%2Fexports%2Fnewsletter%3Ftab%3D1"
    );
    assert_eq!(location(&get(&anon, "/")), "/login");
    let a = post(&anon, "/login", &[("name", ADMIN.0), ("password", "wrong")]);
    assert_eq!(a.status, 401);
    assert!(a.text.contains("Wrong user name or password"), "{}", a.text);
    let a = post(
        &anon,
        "/login",
        &[
            ("name", ADMIN.0),
            ("password", ADMIN.1),
            ("next", "//evil.example/"),
        ],
    );
    assert_eq!(location(&a), "/exports", "never sent to another site");
    let a = anon.send(
        anon.request("POST", "/login")
            .header("origin", "http://evil.example")
            .form(&[("name", ADMIN.0), ("password", ADMIN.1)]),
    );
    assert_eq!(a.status, 403, "a login form posted from another site");

    let (ada, ada_csrf) = ui_login(&server, ADMIN);
    let page = get(&ada, "/exports");
    for (header, want) in [
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(page.headers[header], want, "{header}");
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // A form without its CSRF token changes nothing.
    let a = post(
        &ada,
        "/segments",
        &[("name", "fr"), ("predicate", "country = 'FR'")],
    );
    assert_eq!(a.status, 403);
    assert!(a.text.contains("security token"), "{}", a.text);
    assert!(!get(&ada, "/segments").text.contains(">fr<"));

    // Add connection with an API key: refused without consent (the key is never sent back),
    // then added, admins only.
    let base_url = sim.api_url();
    let connect = |agree: bool| {
        let mut form = vec![
            ("csrf", ada_csrf.as_str()),
            ("display_name", "Main account"),
            ("name", ""),
            ("shared", "admins"),
            ("add_self", "yes"),
            ("api_key", sim.key.as_str()),
            ("connect", "api_key"),
            ("base_url", base_url.as_str()),
        ];
        if agree {
            form.push(("agree", "yes"));
        }
        post(&ada, "/admin/connections", &form)
    };
    let a = connect(false);
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("only once you agree"), "{}", a.text);
    // The statement is shown once, and the box to tick is marked.
    assert_eq!(a.text.matches("you allow data").count(), 1, "{}", a.text);
    assert!(a.text.contains("aria-invalid=\"true\""), "{}", a.text);
    assert!(!a.text.contains(&sim.key), "the key is never sent back");
    assert!(a.text.contains("Main account"), "the form is kept");
    let a = connect(true);
    assert_eq!(a.status, 303, "{}", a.text);
    assert!(location(&a).starts_with("/admin/connections?notice="));
    let page = get(&ada, "/admin/connections");
    assert!(page.text.contains("Main account") && page.text.contains("API key"));
    let connection = "main-account";
    for path in [
        "/admin/connections",
        &format!("/admin/connections/{connection}"),
    ] {
        assert!(!get(&ada, path).text.contains(&sim.key), "no key on {path}");
    }

    // Add destination: the two steps, then a save that ops refuses (unknown column, the input
    // kept), then one that works. Repeated fields: rows and checkboxes.
    let a = get(&ada, &format!("/exports/new?connection={connection}"));
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.text.contains(&list) && a.text.contains("Newsletter"),
        "{}",
        a.text
    );
    let mut form = vec![
        ("csrf", ada_csrf.as_str()),
        ("name", EXPORT),
        ("connection", connection),
        ("audience", list.as_str()),
        ("email_field", "email"),
        ("attr_tag", "FNAME"),
        ("attr_column", "first_name"),
        ("attr_tag", "LNAME"),
        ("attr_column", "last_name"),
        ("attr_tag", "CITY"),
        ("attr_column", "town"),
        ("create_merge_fields", "yes"),
        ("segment", "high_value"),
        ("tag:high_value", HIGH_VALUE_TAG),
        ("segment", "romania"),
        ("tag:romania", "romania"),
        ("status_if_new", "subscribed"),
        ("removal", "untag"),
        ("max_profiles", "1000000"),
        ("schedule", "manual"),
        ("save", "1"),
    ];
    let a = post(&ada, "/exports/new", &form);
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        unescaped(&a.text).contains("no profile column \"town\""),
        "{}",
        a.text
    );
    assert!(a.text.contains("value=\"High value\""), "the form is kept");
    // "Add attribute" re-renders with one more row and saves nothing.
    let mut more = form.clone();
    more.retain(|(k, _)| *k != "save");
    more.push(("add_attribute", "1"));
    let a = post(&ada, "/exports/new", &more);
    assert_eq!(a.status, 200);
    assert!(a.text.contains("aria-label=\"Merge tag 4\""), "{}", a.text);
    assert!(get(&ada, "/exports").text.contains("No export yet"));
    for v in form.iter_mut().filter(|(k, _)| *k == "attr_column") {
        if v.1 == "town" {
            v.1 = "city";
        }
    }
    let a = post(&ada, "/exports/new", &form);
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(
        location(&a).split('?').next(),
        Some(format!("/exports/{EXPORT}").as_str())
    );

    // A contributor: the connection is for admins only, so the export is visible but not
    // theirs to run; the admin pages are "Admins only".
    let (carl, carl_csrf) = ui_login(&server, CONTRIBUTOR);
    let page = get(&carl, &format!("/exports/{EXPORT}"));
    assert_eq!(page.status, 200);
    assert!(!page.text.contains("Run now"), "{}", page.text);
    let a = post(
        &carl,
        &format!("/exports/{EXPORT}/run"),
        &[("csrf", &carl_csrf)],
    );
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.text.contains("for admins only"), "{}", a.text);
    for path in [
        "/admin/connections",
        "/admin/users",
        "/admin/connections/new",
    ] {
        let a = get(&carl, path);
        assert_eq!(a.status, 403, "{path}");
        assert!(a.text.contains("Admins only"), "{path}");
    }
    let a = post(
        &carl,
        "/admin/users",
        &[
            ("csrf", &carl_csrf),
            ("name", "eve"),
            ("role", "admin"),
            ("password", "password-of-eve"),
        ],
    );
    assert_eq!(a.status, 403);

    // A viewer: a segment's count, never its profiles; no form to add an export.
    let (vera, _) = ui_login(&server, VIEWER);
    let page = get(&vera, "/segments/high_value").text;
    assert!(
        page.contains("member-count") && !page.contains("id=\"sample\""),
        "{page}"
    );
    assert!(!page.contains("@gmail.com"), "no personal data for viewers");
    assert_eq!(get(&vera, "/exports/new").status, 403);
    assert!(get(&ada, "/segments/high_value")
        .text
        .contains("id=\"sample\""));

    // Run now, follow it to the end; the history links the CSV of what was not sent, which
    // the session downloads.
    let a = post(
        &ada,
        &format!("/exports/{EXPORT}/run"),
        &[("csrf", &ada_csrf)],
    );
    assert_eq!(a.status, 303, "{}", a.text);
    let run = ada.wait_run(1);
    assert_eq!(run["outcome"], "succeeded_with_errors", "{run}");
    let page = get(&ada, &format!("/exports/{EXPORT}")).text;
    assert!(page.contains("/api/runs/1/errors"), "{page}");
    assert!(page.contains("records-chart"), "{page}");
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "no refresh once it ended"
    );
    let csv = get(&ada, "/api/runs/1/errors");
    assert_eq!(csv.status, 200);
    assert!(csv.text.starts_with("profile_key,email,reason") && csv.text.contains("chloe@orange"));
    assert!(get(&ada, "/runs/1").text.contains("chloe@orange"));
    assert_eq!(get(&ada, "/runs/abc").status, 404);
    // Cancelling an export that is not running is refused on its page.
    let a = post(
        &ada,
        &format!("/exports/{EXPORT}/cancel"),
        &[("csrf", &ada_csrf)],
    );
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.text.contains("is not running"), "{}", a.text);

    // Pause, edit (a bad cron schedule is refused with the input kept), remove.
    let a = post(
        &ada,
        &format!("/exports/{EXPORT}/pause"),
        &[("csrf", &ada_csrf)],
    );
    assert_eq!(a.status, 303);
    assert!(get(&ada, &format!("/exports/{EXPORT}"))
        .text
        .contains("Resume"));
    let edit = get(&ada, &format!("/exports/{EXPORT}/edit")).text;
    assert!(
        edit.contains("value=\"High value\"") && edit.contains("value=\"true\""),
        "{edit}"
    );
    let mut changed: Vec<(&str, &str)> = form
        .iter()
        .filter(|(k, _)| !matches!(*k, "schedule" | "name"))
        .cloned()
        .collect();
    changed.extend([
        ("schedule", "cron"),
        ("cron", "every day"),
        ("timezone", "Europe/Bucharest"),
        ("paused", "true"),
    ]);
    let a = post(&ada, &format!("/exports/{EXPORT}/edit"), &changed);
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        unescaped(&a.text).contains("cron schedule \"every day\""),
        "{}",
        a.text
    );
    assert!(a.text.contains("value=\"Europe/Bucharest\""));
    for v in changed.iter_mut().filter(|(k, _)| *k == "cron") {
        v.1 = "0 6 * * *";
    }
    let a = post(&ada, &format!("/exports/{EXPORT}/edit"), &changed);
    assert_eq!(a.status, 303, "{}", a.text);
    let page = get(&ada, &format!("/exports/{EXPORT}")).text;
    assert!(
        unescaped(&page).contains("cron \"0 6 * * *\" (Europe/Bucharest)")
            && page.contains("paused"),
        "{page}"
    );

    // Names are escaped on every page and travel as one path segment.
    let a = post(
        &ada,
        "/segments",
        &[
            ("csrf", &ada_csrf),
            ("name", "<b>fr/x</b>"),
            ("predicate", "country = 'FR'"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(
        location(&a).split('?').next(),
        Some("/segments/%3Cb%3Efr%2Fx%3C%2Fb%3E")
    );
    let page = get(&ada, "/segments").text;
    assert!(
        page.contains("&lt;b&gt;fr/x&lt;/b&gt;") && !page.contains("<b>fr"),
        "{page}"
    );
    assert_eq!(get(&ada, "/segments/%3Cb%3Efr%2Fx%3C%2Fb%3E").status, 200);

    // Remove the export, then the connection; log out ends the session.
    assert!(get(&ada, &format!("/exports/{EXPORT}/remove"))
        .text
        .contains("Remove export"));
    let a = post(
        &ada,
        &format!("/exports/{EXPORT}/remove"),
        &[("csrf", &ada_csrf)],
    );
    assert_eq!(location(&a).split('?').next(), Some("/exports"));
    let a = post(
        &ada,
        &format!("/admin/connections/{connection}/remove"),
        &[("csrf", &ada_csrf)],
    );
    assert_eq!(location(&a).split('?').next(), Some("/admin/connections"));
    assert!(get(&ada, "/admin/connections")
        .text
        .contains("No connection yet"));
    let a = post(&ada, "/logout", &[("csrf", &ada_csrf)]);
    assert_eq!(a.status, 303);
    assert_eq!(get(&ada, "/exports").status, 303, "the session is over");

    for page in [&s.transcript(), &server.output()] {
        assert!(!page.contains(&sim.key));
    }
}

/// Issue 18, items 1 and 2 in Chromium at 1280 and 390 px: the admin and the contributor
/// build a segment with the builder (no SQL typed), see its live count, SQL and sample, save
/// it, and see the export form's distinct members, overlap and limit check; the admin sees
/// who would gain or lose a tag; each then previews a run, runs it, and downloads its change
/// log (the first run creates what the preview said, the later ones nothing); the viewer sees
/// counts only and no change log. Counts are those the profiles must give.
#[test]
fn the_segment_builder_and_true_sizes_in_the_browser() {
    require_browser_setup();
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = crate::builder::profiles();
    let s = crate::api::installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let admin = server.login(ADMIN);
    let (code, c) = admin.post(
        "/api/connections",
        json!({
            "name": CONNECTION, "display_name": "Mailchimp (simulator)", "api_key": sim.key,
            "base_url": sim.api_url(), "accept_privacy_terms": true,
            "share_with_contributors": true
        }),
    );
    assert_eq!(code, 201, "{c}");
    let (code, e) = server
        .token_client(CONTRIBUTOR)
        .post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{e}");

    let high = |p: &Profile| p.ltv >= 500.0;
    let romanian = |p: &Profile| p.country == "RO";
    let french = |p: &Profile| p.country == "FR";
    let m = crate::builder::members(&profiles, &[&high, &romanian, &french]);
    let both: Vec<&Vec<bool>> = m.values().filter(|b| b[0] || b[1]).collect();
    let want = json!({
        "ro_high": profiles.iter().filter(|p| romanian(p) && high(p)).count(),
        "ro_top": profiles.iter().filter(|p| romanian(p)).count(),
        "members_both": both.len(),
        "members_high": m.values().filter(|b| b[0]).count(),
        "overlap": m.values().filter(|b| b[0] && b[1]).count(),
        "gain": m.values().filter(|b| !b[1] && b[2]).count(),
        "lose": m.values().filter(|b| b[1] && !b[2]).count(),
    });
    let users = json!({
        "admin": {"name": ADMIN.0, "password": ADMIN.1},
        "contributor": {"name": CONTRIBUTOR.0, "password": CONTRIBUTOR.1},
        "viewer": {"name": VIEWER.0, "password": VIEWER.1},
    });
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    let failure_dir = s.path("browser-failure");
    let (status, output) = run_script(
        "builder.mjs",
        &[
            ("SEGSYNC_URL", server.url.clone()),
            ("USERS", users.to_string()),
            ("SCREENSHOTS", screenshots.display().to_string()),
            ("FAILURE_DIR", failure_dir.display().to_string()),
            ("EXPORT_NAME", EXPORT.into()),
            ("WANT", want.to_string()),
            ("CHROMIUM", chromium().display().to_string()),
        ],
    );
    if status != Some(0) {
        let kept = std::env::temp_dir().join("segsync-builder-failure");
        let _ = std::fs::remove_dir_all(&kept);
        let _ = std::fs::create_dir_all(&kept);
        for f in ["failure.png", "failure.html"] {
            let _ = std::fs::copy(failure_dir.join(f), kept.join(f));
        }
        panic!(
            "the builder flow failed (exit {status:?}; the page at the failure is in {})\n{output}\n--- segsync serve\n{}",
            kept.display(),
            server.output()
        );
    }
    println!("{output}");
    // The segments saved in the browser hold their rule and count what the profiles give.
    let (_, saved) = admin.get("/api/segments/ro_high_contributor_390");
    assert_eq!(saved["count"], want["ro_high"], "{saved}");
    assert_eq!(
        saved["predicate"],
        "(\"country\" IN ('RO') AND \"lifetime_value\" >= 500)"
    );
    assert!(saved["rule"]["all"].is_array(), "{saved}");
}

/// Every page each role uses, on a phone (390 px wide): nothing wider than the screen.
#[test]
fn every_page_fits_a_phone_for_every_role() {
    require_browser_setup();
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let mut profiles = people(60);
    profiles.push(Profile::new(
        "X-a-rather-long-profile-key-000001",
        "someone.with.a.very.long.address.that.does.not.fit@example",
        "Chloé",
        "Martin",
        "Paris",
        "FR",
        900.0,
    ));
    let s = crate::api::installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    let (code, body) = ada.post(
        "/api/connections",
        json!({"name": CONNECTION, "display_name": "Mailchimp (marketing team)", "api_key": sim.key,
               "base_url": sim.api_url(), "accept_privacy_terms": true, "share_with_contributors": true}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = ada.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");
    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = ada.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["outcome"], "succeeded_with_errors", "{run}");
    let run = format!("/runs/{}", started["run_id"]);
    // A MySQL profile source with a long query, and a segment on it.
    let shop = MyTestDb::create("phone");
    shop.exec(
        "CREATE TABLE customers (customer_id VARCHAR(40) PRIMARY KEY, email VARCHAR(100), \
         lifetime_value DECIMAL(10,2)); \
         INSERT INTO customers VALUES ('X-a-rather-long-profile-key-000001', 'a@example.com', 12.5)",
    );
    let url = shop.reader("GRANT SELECT ON {db}.customers TO {user}", true);
    let (code, body) = ada.post(
        "/api/sources",
        json!({"name": "shop_customers_from_the_webshop", "kind": "mysql", "url": url,
               "query": "SELECT customer_id, email, lifetime_value FROM customers WHERE email IS NOT NULL",
               "key": "customer_id"}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = ada.post(
        "/api/segments",
        json!({"name": "shop_spenders", "predicate": "lifetime_value > 10",
               "source": "shop_customers_from_the_webshop"}),
    );
    assert_eq!(code, 201, "{body}");

    let export = format!("/exports/{EXPORT}");
    let everyone = vec![
        "/segments".to_string(),
        "/segments/high_value".into(),
        "/sources".into(),
        "/sources/shop_customers_from_the_webshop".into(),
        "/exports".into(),
        export.clone(),
        run.clone(),
        "/no/such/page".into(),
    ];
    let mut contributor = everyone.clone();
    contributor.extend([
        "/exports/new".to_string(),
        format!("{export}/edit"),
        format!("{export}/preview"),
    ]);
    let mut admin = contributor.clone();
    admin.extend([
        "/admin/connections".to_string(),
        "/admin/connections/new".into(),
        format!("/admin/connections/{CONNECTION}"),
        "/admin/users".into(),
        "/admin/alerts".into(),
        "/admin/audit".into(),
        "/admin/suppressions".into(),
        "/sources/shop_customers_from_the_webshop/remove".into(),
        "/profiles".into(),
        format!("/profiles/uploads/{}", phone_upload(&ada, &s)),
    ]);
    let visits = json!([
        {"user": ADMIN.0, "password": ADMIN.1, "paths": admin},
        {"user": CONTRIBUTOR.0, "password": CONTRIBUTOR.1, "paths": contributor},
        {"user": VIEWER.0, "password": VIEWER.1, "paths": everyone},
    ]);
    let shoot = json!({
        format!("{} {export}", ADMIN.0): "14-phone-export.png",
        format!("{} {run}", ADMIN.0): "15-phone-run.png",
    });
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    let (status, output) = run_script(
        "phone.mjs",
        &[
            ("SEGSYNC_URL", server.url.clone()),
            ("VISITS", visits.to_string()),
            ("SHOOT", shoot.to_string()),
            ("SCREENSHOTS", screenshots.display().to_string()),
            ("CHROMIUM", chromium().display().to_string()),
        ],
    );
    println!("{output}");
    assert_eq!(status, Some(0), "the pages on a phone:\n{output}");
}

/// The installation's profiles file uploaded (not imported) for its preview page.
fn phone_upload(ada: &Client, s: &Session) -> String {
    let a = ada.send(
        ada.request(
            "POST",
            "/api/profiles/uploads?name=profiles.csv&key=customer_id",
        )
        .body(std::fs::read(s.path("profiles.csv")).unwrap()),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()["id"].as_str().unwrap().to_string()
}
