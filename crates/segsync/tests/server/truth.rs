//! Runs and connections that tell the truth (issue 18, items 6 and 8): a run's change log
//! downloaded by role, and a connection's health.

use serde_json::json;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

#[test]
fn contributors_download_a_runs_change_log_and_viewers_do_not() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let mut profiles = people(30);
    profiles.push(Profile::new(
        "X1",
        "chloe@orange",
        "Chloé",
        "Martin",
        "Paris",
        "FR",
        900.0,
    ));
    let s = installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let admin = server.login(ADMIN);
    let (code, body) = admin.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true, "share_with_contributors": true}),
    );
    assert_eq!(code, 201, "{body}");
    let contributor = server.token_client(CONTRIBUTOR);
    let (code, body) = contributor.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");
    let (code, started) = contributor.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    let run = contributor.wait_run(id);

    let url = format!("/api/runs/{id}/changes");
    let csv = contributor.send(contributor.request("GET", &url));
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(
        csv.headers["content-disposition"],
        format!("attachment; filename=\"run-{id}-changes.csv\"").as_str()
    );
    let mut lines = csv.text.lines();
    assert_eq!(lines.next(), Some("action,email,detail,profile_key"));
    let rows: Vec<&str> = lines.collect();
    let count = |action: &str| {
        rows.iter()
            .filter(|l| l.starts_with(&format!("{action},")))
            .count()
    };
    assert_eq!(
        count("created") as u64,
        run["counts"]["created"].as_u64().unwrap(),
        "{run}"
    );
    assert_eq!(
        count("tagged") as u64,
        run["counts"]["tagged"].as_u64().unwrap(),
        "{run}"
    );
    assert_eq!(count("refused"), 1, "{}", csv.text);
    assert!(rows
        .iter()
        .any(|l| l.starts_with("refused,chloe@orange,") && l.ends_with(",X1")));
    let view = sim.view(&list);
    for l in rows.iter().filter(|l| l.starts_with("created,")) {
        let email = l.split(',').nth(1).unwrap();
        assert!(find(&view, email).is_some(), "{email} is in the audience");
    }

    let jsonl = contributor.send(contributor.request("GET", &format!("{url}?format=jsonl")));
    assert_eq!(jsonl.status, 200);
    assert_eq!(jsonl.text.lines().count(), rows.len());
    let first: serde_json::Value =
        serde_json::from_str(jsonl.text.lines().next().unwrap()).unwrap();
    assert!(
        first["action"].is_string() && first["email"].is_string(),
        "{first}"
    );
    let bad = contributor.send(contributor.request("GET", &format!("{url}?format=xml")));
    assert_eq!(bad.status, 400, "{}", bad.text);
    let (code, _) = contributor.get("/api/runs/999/changes");
    assert_eq!(code, 404);

    // Viewers: neither the file nor the link (it names people).
    let (code, body) = server.token_client(VIEWER).get(&url);
    assert_eq!(code, 403, "{body}");
    let page = format!("/runs/{id}");
    let vera = server.login(VIEWER);
    let seen = vera.send(vera.request("GET", &page));
    assert!(!seen.text.contains("download-changes"), "{}", seen.text);
    let browser = server.login(CONTRIBUTOR);
    let seen = browser.send(browser.request("GET", &page));
    assert!(seen.text.contains("Download change log"), "{}", seen.text);
    assert!(
        seen.text.contains(&format!("href=\"{url}\"")),
        "{}",
        seen.text
    );
}

#[test]
fn a_revoked_key_shows_as_revoked_with_the_way_back() {
    let sim = Sim::start();
    let s = installation(&sim, &people(10));
    let server = Server::start(&s, &[]);
    let admin = server.token_client(ADMIN);
    let (code, body) = admin.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true, "share_with_contributors": true}),
    );
    assert_eq!(code, 201, "{body}");
    // Checked when added: healthy, with the account's name.
    assert_eq!(body["health"]["status"], "ok", "{body}");
    let (_, account) = sim.api("GET", "/", None);
    let name = account["account_name"].as_str().unwrap().to_string();
    assert!(!name.is_empty(), "{account}");
    assert_eq!(body["health"]["account_name"], name.as_str(), "{body}");

    // Revoked in Mailchimp: a check says so, and so do the list and the page.
    let (code, body) = sim.admin(
        "POST",
        "/_sim/revoke",
        Some(json!({ "credential": sim.key })),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let contributor = server.token_client(CONTRIBUTOR);
    let (code, h) = contributor.post(&format!("/api/connections/{CONNECTION}/check"), json!({}));
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "revoked", "{h}");
    assert_eq!(
        h["account_name"],
        name.as_str(),
        "the name learned before is kept: {h}"
    );
    assert!(
        h["checked_at"].as_str().is_some_and(|t| !t.is_empty()),
        "{h}"
    );
    let (code, listed) = admin.get("/api/connections");
    assert_eq!(code, 200);
    assert_eq!(listed[0]["health"]["status"], "revoked", "{listed}");
    let (code, body) = server
        .token_client(VIEWER)
        .post(&format!("/api/connections/{CONNECTION}/check"), json!({}));
    assert_eq!(code, 403, "{body}");
    let (code, _) = admin.post("/api/connections/nope/check", json!({}));
    assert_eq!(code, 404);

    let browser = server.login(ADMIN);
    let page = browser.send(browser.request("GET", "/admin/connections"));
    assert!(
        page.text.contains("data-health=\"revoked\""),
        "{}",
        page.text
    );
    let page = browser.send(browser.request("GET", &format!("/admin/connections/{CONNECTION}")));
    assert!(page.text.contains(&name), "{}", page.text);
    assert!(page.text.contains("Check now"), "{}", page.text);
    assert!(
        page.text.contains("Re-authenticate: replace the API key"),
        "{}",
        page.text
    );
    assert!(page.text.contains("id=\"credential\""), "{}", page.text);

    // A new key makes the connection healthy again.
    let (code, made) = sim.admin(
        "POST",
        &format!(
            "/_sim/accounts/{}/keys",
            account["account_id"].as_str().unwrap()
        ),
        Some(json!({})),
    );
    assert_eq!(code, 200, "{made}");
    let key = made["api_key"].as_str().unwrap();
    let (code, body) = admin.patch(
        &format!("/api/connections/{CONNECTION}"),
        json!({"api_key": key}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["health"]["status"], "ok", "{body}");
}
