//! What a run will do and did: a run's plan before "Run now" (`POST
//! /api/exports/{name}/plan`, the export page's "Preview run") sends nothing and the run then
//! does just that; a run's page tells the truth about it, and names nobody to viewers.

use serde_json::json;

use mailchimp_sim::Status;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

#[test]
fn a_previewed_run_sends_nothing_and_the_run_does_what_it_said() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let mut profiles = people(90);
    let mut refused = Profile::new(
        "X00001",
        "chloe@orange",
        "Chloé",
        "Martin",
        "Paris",
        "FR",
        900.0,
    );
    refused.updated_at = "2026-02-01T00:00:00Z".into();
    profiles.push(refused);
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

    let want = expected(&profiles[..90], Status::Subscribed);
    let writes = sim.counters().writes;
    let (code, plan) = contributor.post(&format!("/api/exports/{EXPORT}/plan"), json!({}));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["export"], EXPORT);
    assert_eq!(plan["audience"], format!("Newsletter ({list})"));
    assert_eq!(plan["creates"], want.len(), "{plan}");
    assert_eq!(plan["updates"], 0);
    let tags: usize = want.values().map(|(_, _, t)| t.len()).sum();
    assert_eq!(plan["tag_adds"], tags, "{plan}");
    assert_eq!(plan["refused_total"], 1, "{plan}");
    assert_eq!(plan["refused"][0]["email"], "chloe@orange");
    assert_eq!(plan["refused"][0]["profile_key"], "X00001");
    let reason = plan["refused"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("invalid email address"), "{reason}");
    let by_endpoint: usize = plan["requests_by_endpoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["requests"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(plan["requests"], by_endpoint, "{plan}");
    assert_eq!(sim.counters().writes, writes, "a preview writes nothing");
    assert_eq!(sim.view(&list).member_count, 0, "a preview adds nobody");

    // The page shows the same plan, with Run now at hand; the export page links to it.
    let browser = server.login(CONTRIBUTOR);
    let page = browser.send(browser.request("GET", &format!("/exports/{EXPORT}")));
    assert!(page.text.contains("Preview run"), "{}", page.text);
    let page = browser.send(browser.request("GET", &format!("/exports/{EXPORT}/preview")));
    assert_eq!(page.status, 200, "{}", page.text);
    let creates = format!(
        "<tr data-count=\"creates\"><td>members to create</td><td class=\"num\">{}</td></tr>",
        want.len()
    );
    assert!(page.text.contains(&creates), "{}", page.text);
    assert!(page.text.contains("chloe@orange"), "{}", page.text);
    assert!(page.text.contains("Run now"));

    // Viewers read exports but do not preview them: a plan lists people's addresses.
    let viewer = server.token_client(VIEWER);
    let (code, body) = viewer.post(&format!("/api/exports/{EXPORT}/plan"), json!({}));
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    let (code, body) = contributor.post("/api/exports/nope/plan", json!({}));
    assert_eq!(code, 404, "{body}");

    // The run does what the plan said.
    let (code, started) = contributor.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = contributor.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["counts"]["created"], plan["creates"], "{run}");
    assert_eq!(run["counts"]["refused"], 1, "{run}");
    assert_eq!(holding(&sim.view(&list), FIELDS), want);

    // Its page names the refused record to contributors; viewers see how many, not who.
    let run_page = format!("/runs/{}", started["run_id"]);
    let page = browser.send(browser.request("GET", &run_page));
    assert!(page.text.contains("chloe@orange"), "{}", page.text);
    assert!(
        page.text.contains("<title>Run 1 of newsletter"),
        "{}",
        page.text
    );
    assert_eq!(run["number"], 1, "{run}");
    // The words that may be taken for one another are defined where they appear.
    // ("deferred" only when the run has some.)
    for word in ["refused", "failed", "skipped"] {
        assert!(
            page.text.contains(&format!("<dt>{word}</dt><dd>")),
            "{word}: {}",
            page.text
        );
    }
    let history = browser.send(browser.request("GET", &format!("/exports/{EXPORT}")));
    assert!(
        history.text.contains("data-count=\"removed\">0</td>"),
        "{}",
        history.text
    );
    assert!(
        history.text.contains("removed (archived or unsubscribed)"),
        "{}",
        history.text
    );
    let vera = server.login(VIEWER);
    let page = vera.send(vera.request("GET", &run_page));
    assert_eq!(page.status, 200);
    assert!(!page.text.contains("chloe@orange"), "{}", page.text);
    assert!(!page.text.contains("X00001"), "{}", page.text);
    assert!(
        page.text.contains("1 record was not sent."),
        "{}",
        page.text
    );
    let page = vera.send(vera.request("GET", &format!("/exports/{EXPORT}")));
    assert!(!page.text.contains("/errors"), "{}", page.text);
    let errors = format!("/api/runs/{}/errors", started["run_id"]);
    let (code, body) = viewer.get(&errors);
    assert_eq!(code, 403, "{body}");
    let (code, _) = contributor.get(&errors);
    assert_eq!(code, 200);

    // Planned again: nothing left to do.
    let (code, again) = contributor.post(&format!("/api/exports/{EXPORT}/plan"), json!({}));
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["creates"], 0, "{again}");
    assert_eq!(again["unchanged"], want.len(), "{again}");
    assert_eq!(again["requests"], 0, "{again}");
}

#[test]
fn a_failed_run_never_says_every_record_was_delivered() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = installation(&sim, &people(40));
    s.connect();
    s.ok(&s
        .export_args(&list, &[])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let server = Server::start(&s, &[]);
    let (code, body) = sim.admin(
        "POST",
        "/_sim/revoke",
        Some(json!({ "credential": sim.key })),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    let ada = server.token_client(ADMIN);
    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = ada.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["outcome"], "failed", "{run}");
    let browser = server.login(ADMIN);
    let page = browser.send(browser.request("GET", &format!("/runs/{}", started["run_id"])));
    assert!(
        !page.text.contains("every record was delivered"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("the run failed before it had sent everything"),
        "{}",
        page.text
    );
}

#[test]
fn pages_and_answers_that_find_nothing_say_so_without_command_line_hints() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    for (path, says) in [
        ("/exports/nope", "no export named &quot;nope&quot;"),
        ("/segments/nope", "no segment named &quot;nope&quot;"),
        ("/runs/99", "no run 99<"),
        ("/no/such/page", "There is no page at this address."),
    ] {
        let page = ada.send(ada.request("GET", path));
        assert_eq!(page.status, 404, "{path}: {}", page.text);
        assert!(
            page.text.contains("<!DOCTYPE html>"),
            "{path}: {}",
            page.text
        );
        assert!(page.text.contains(says), "{path}: {}", page.text);
        assert!(!page.text.contains("(see "), "{path}: {}", page.text);
        assert!(
            page.text.contains("href=\"/exports\""),
            "{path}: {}",
            page.text
        );
    }
    let api = server.token_client(ADMIN);
    for (path, says) in [
        ("/api/exports/nope", "no export named \"nope\""),
        ("/api/segments/nope", "no segment named \"nope\""),
        ("/api/runs/99", "no run 99"),
    ] {
        let (code, body) = api.get(path);
        assert_eq!(code, 404, "{path}: {body}");
        assert_eq!(body["message"], says, "{path}: {body}");
    }
}
