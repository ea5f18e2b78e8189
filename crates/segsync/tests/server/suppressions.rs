//! Suppression lists and remembered refusals over HTTP: the installation's list is the
//! admins', an export's list and refusals are its editors'; viewers see counts, never an
//! address or a key; runs hold back what the lists name and count it.

use serde_json::{json, Value};

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

const FAKE: &str = "jean.dupont@mailinator.com";

fn run(client: &Client) -> Value {
    let (code, body) = client.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{body}");
    client.wait_run(body["run_id"].as_i64().unwrap())
}

#[test]
fn lists_and_refusals_by_role_and_viewers_see_counts_only() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let fake = Profile::new("C003", FAKE, "Jean", "Dupont", "Paris", "RO", 900.0);
    let s = installation(&sim, &[ana(), helene(), fake]);
    let server = Server::start(&s, &[]);
    let admin = server.token_client(ADMIN);
    let carl = server.login(CONTRIBUTOR);
    let vera = server.login(VIEWER);
    let (code, body) = admin.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true, "share_with_contributors": true}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = carl.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");

    let first = run(&carl);
    assert_eq!(first["outcome"], "succeeded_with_errors", "{first}");
    let path = format!("/api/exports/{EXPORT}/refusals");
    let (code, seen) = carl.get(&path);
    assert_eq!((code, seen["count"].clone()), (200, json!(1)), "{seen}");
    assert_eq!(seen["entries"][0]["email"], FAKE, "{seen}");
    let (code, hidden) = vera.get(&path);
    assert_eq!(code, 200);
    assert_eq!(
        (hidden["count"].clone(), hidden["shown"].clone()),
        (json!(1), json!(false))
    );
    assert!(!hidden.to_string().contains("mailinator"), "{hidden}");

    // On the export's page: the refusal for its editors, counts for viewers.
    let page = |c: &Client, path: &str| c.send(c.request("GET", path));
    let export_page = format!("/exports/{EXPORT}");
    let seen = page(&carl, &export_page);
    assert_eq!(seen.status, 200);
    assert!(seen.text.contains("id=\"refusal-list\"") && seen.text.contains(FAKE));
    let hidden = page(&vera, &export_page);
    assert!(
        hidden.text.contains("id=\"suppression-counts\""),
        "{}",
        hidden.text
    );
    assert!(!hidden.text.contains("mailinator"));
    assert_eq!(page(&carl, "/admin/suppressions").status, 403);

    // The next run holds it back and is clean.
    let second = run(&carl);
    assert_eq!(second["outcome"], "succeeded", "{second}");
    assert_eq!(second["counts"]["remembered_refusals"], 1, "{second}");

    // The installation's list: admins only; anyone sees its size.
    let ana = json!({"kind": "email", "value": "Ana.Popescu@gmail.com", "note": "asked"});
    let (code, body) = carl.post("/api/suppressions", ana.clone());
    assert_eq!(code, 403, "{body}");
    let (code, body) = admin.post("/api/suppressions", ana.clone());
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["value"], "ana.popescu@gmail.com");
    assert_eq!(admin.post("/api/suppressions", ana).0, 409);
    let (code, body) = admin.post("/api/suppressions", json!({"kind": "email", "value": "no"}));
    assert_eq!(code, 422, "{body}");
    let (_, listed) = vera.get("/api/suppressions");
    assert_eq!(
        (listed["count"].clone(), listed["entries"].clone()),
        (json!(1), json!([]))
    );
    assert!(!listed.to_string().contains("popescu"), "{listed}");

    // The export's list: its editors; a refusal moved there is held for good.
    let own = format!("/api/exports/{EXPORT}/suppressions");
    let (code, body) = vera.post(&own, json!({"kind": "key", "value": "C002"}));
    assert_eq!(code, 403, "{body}");
    let (code, body) = carl.post(&own, json!({"kind": "key", "value": "C002"}));
    assert_eq!(code, 201, "{body}");
    let (code, body) = carl.post(&format!("{path}/{FAKE}/suppress"), json!({}));
    assert_eq!(code, 201, "{body}");
    assert!(body["note"].as_str().unwrap().contains("fake"), "{body}");
    assert_eq!(carl.get(&path).1["count"], 0);
    assert_eq!(carl.delete(&format!("{path}/{FAKE}")).0, 404);
    let (_, mine) = carl.get(&own);
    assert_eq!(mine["count"], 2, "{mine}");

    // Ana was created by the first run: suppressed now, she is left as she is.
    let third = run(&carl);
    assert_eq!(third["outcome"], "succeeded", "{third}");
    assert_eq!(third["counts"]["suppressed"], 3, "{third}");
    let (code, plan) = carl.post(&format!("/api/exports/{EXPORT}/plan"), json!({}));
    assert_eq!(
        (code, plan["suppressed"].clone()),
        (200, json!(3)),
        "{plan}"
    );
    assert!(find(&sim.view(&list), "ana.popescu@gmail.com").is_some());

    let admin_page = page(&server.login(ADMIN), "/admin/suppressions");
    assert_eq!(admin_page.status, 200);
    assert!(admin_page.text.contains("ana.popescu@gmail.com"));

    // Off the lists.
    assert_eq!(
        admin
            .delete("/api/suppressions/email/ANA.POPESCU@gmail.com")
            .0,
        204
    );
    assert_eq!(carl.delete(&format!("{own}/key/C002")).0, 204);
    assert_eq!(carl.delete(&format!("{own}/key/C002")).0, 404);
    assert_eq!(carl.delete(&format!("{own}/email/{FAKE}")).0, 204);
    let (code, body) = carl.get("/api/exports/nope/suppressions");
    assert_eq!(code, 404, "{body}");
}
