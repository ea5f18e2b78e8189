//! The official Mailchimp client libraries work against the simulator unchanged except for their
//! address: `clients/python/session.py` (PyPI `mailchimp-marketing`) and `clients/node/session.js`
//! (npm `@mailchimp/mailchimp_marketing`) each drive a realistic session and check every answer.
//!
//! Each test starts a simulator in-process, runs one script against it, and then checks in the
//! simulator's own state that the script's requests reached it and did what the script says.
//!
//! The clients are installed by `scripts/setup-clients.sh` (a venv in `clients/python/.venv`,
//! `npm ci` in `clients/node`); without them these tests fail, they never skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mailchimp_sim::config::Profile;
use mailchimp_sim::{RunningSim, SimConfig, Status};
use tokio::process::Command;

const SETUP_HINT: &str = "run scripts/setup-clients.sh first";

/// How long one session may take (it takes about a second).
const SESSION_TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/mailchimp-sim is two levels below the repository root")
        .to_path_buf()
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): {SETUP_HINT}",
        path.display()
    );
}

/// Runs `program script` against `sim` with the account of `key`; asserts that it succeeds and
/// prints its summary line, and returns the audience id it reports.
async fn run_session(
    sim: &RunningSim,
    key: &str,
    name: &str,
    program: &Path,
    script: &Path,
) -> String {
    let output = Command::new(program)
        .arg(script)
        .current_dir(repo_root())
        .env("MAILCHIMP_SIM_API_URL", sim.api_url())
        .env("MAILCHIMP_SIM_API_KEY", key)
        // The simulator is on loopback: never through a proxy the environment may name.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SESSION_TIMEOUT, output)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {SESSION_TIMEOUT:?}"))
        .unwrap_or_else(|e| {
            panic!(
                "could not start {} {}: {e} (is it installed? {SETUP_HINT})",
                program.display(),
                script.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{shown}",
        output.status
    );
    let summary = format!("{name}: OK (");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&summary)),
        "{name} did not end with its summary line:\n{shown}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("audience: "))
        .unwrap_or_else(|| panic!("{name} did not report its audience:\n{shown}"))
        .trim()
        .to_string()
}

/// What both sessions leave behind, read from the simulator itself.
fn check_state(sim: &RunningSim, list_id: &str) {
    let view = sim
        .list_view(list_id)
        .unwrap_or_else(|| panic!("the simulator has no audience {list_id}"));
    assert_eq!(view.name, "Riverside Bikes Newsletter");
    // 500 upserted (5 one by one, then all 500 in one batch) and 1 by a /batches operation.
    assert_eq!(view.member_count, 501);
    assert_eq!(view.members.len(), 501);
    let with = |status: Status| view.members.iter().filter(|m| m.status == status).count();
    assert_eq!(with(Status::Subscribed), 499);
    assert_eq!(with(Status::Archived), 1);
    assert_eq!(with(Status::Unsubscribed), 1);
    let status_of = |email: &str| {
        view.members
            .iter()
            .find(|m| m.email_address == email)
            .unwrap_or_else(|| panic!("{email} is not in the audience"))
            .status
    };
    assert_eq!(status_of("lucas.smith7@gmx.de"), Status::Archived);
    assert_eq!(status_of("mateo.smith9@comcast.net"), Status::Unsubscribed);

    let field = |tag: &str| {
        view.merge_fields
            .iter()
            .find(|f| f["tag"] == tag)
            .unwrap_or_else(|| panic!("no merge field {tag} in {:?}", view.merge_fields))
    };
    assert_eq!(field("ORDERS")["type"], "number");
    assert_eq!(field("PLAN")["type"], "dropdown");
    assert_eq!(
        field("PLAN")["options"]["choices"],
        serde_json::json!(["Free", "Pro", "Enterprise"])
    );

    let tag_count = |name: &str| {
        view.tags
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tag {name} in {:?}", view.tags))
            .member_count
    };
    assert_eq!(tag_count("VIP"), 2);
    assert_eq!(tag_count("Beta"), 1);
    assert_eq!(tag_count("Spring Promo"), 100);

    // The script's own requests reached this simulator, through the routes it meant.
    let counters = sim.counters();
    let calls = |endpoint: &str| counters.by_endpoint.get(endpoint).copied().unwrap_or(0);
    for (endpoint, at_least) in [
        ("GET /3.0/ping", 1),
        ("POST /3.0/lists", 1),
        ("POST /3.0/lists/{list_id}/merge-fields", 2),
        ("PUT /3.0/lists/{list_id}/members/{subscriber_hash}", 7),
        ("POST /3.0/lists/{list_id}", 2),
        (
            "POST /3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            3,
        ),
        ("POST /3.0/lists/{list_id}/segments", 1),
        ("POST /3.0/lists/{list_id}/segments/{segment_id}", 1),
        ("GET /3.0/lists/{list_id}/members", 5),
        ("DELETE /3.0/lists/{list_id}/members/{subscriber_hash}", 1),
        ("PATCH /3.0/lists/{list_id}/members/{subscriber_hash}", 1),
        ("POST /3.0/batches", 1),
        ("GET /3.0/batches/{batch_id}", 1),
    ] {
        assert!(
            calls(endpoint) >= at_least,
            "expected at least {at_least} × {endpoint}, got {}: {:?}",
            calls(endpoint),
            counters.by_endpoint
        );
    }
    assert!(
        counters.by_status.get(&400).copied().unwrap_or(0) >= 1,
        "{:?}",
        counters.by_status
    );
    assert!(
        counters.by_status.get(&204).copied().unwrap_or(0) >= 4,
        "{:?}",
        counters.by_status
    );
    assert!(counters.compliance_refusals >= 1, "{counters:?}");
}

#[tokio::test]
async fn python_client_session() {
    let root = repo_root();
    let python = root.join("clients/python/.venv/bin/python");
    require(&python, "the Python client's venv");
    require(
        &root.join("clients/python/.venv/.installed-requirements.txt"),
        "the installed mailchimp-marketing package",
    );
    let sim = RunningSim::start(SimConfig::for_profile(Profile::Default), "127.0.0.1:0")
        .await
        .expect("simulator starts");
    let key = sim.add_account();
    let script = root.join("clients/python/session.py");
    let list_id = run_session(&sim, &key, "python client session", &python, &script).await;
    check_state(&sim, &list_id);
    sim.shutdown().await;
}

#[tokio::test]
async fn node_client_session() {
    let root = repo_root();
    require(
        &root.join("clients/node/node_modules/@mailchimp/mailchimp_marketing/package.json"),
        "the Node client in clients/node/node_modules",
    );
    let sim = RunningSim::start(SimConfig::for_profile(Profile::Default), "127.0.0.1:0")
        .await
        .expect("simulator starts");
    let key = sim.add_account();
    let script = root.join("clients/node/session.js");
    let list_id = run_session(
        &sim,
        &key,
        "node client session",
        Path::new("node"),
        &script,
    )
    .await;
    check_state(&sim, &list_id);
    sim.shutdown().await;
}
