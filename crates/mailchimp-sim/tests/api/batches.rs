//! `/batches`: asynchronous operations, one batch at a time per account, results as a
//! gzipped tar of JSON files at a short-lived URL.

use std::io::Read;
use std::time::Duration;

use crate::common;
use reqwest::Method;
use serde_json::{json, Value};

async fn wait_finished(env: &common::Env, id: &str) -> Value {
    for _ in 0..200 {
        let b = env.get(&format!("/batches/{id}")).await;
        if b.body["status"] == "finished" {
            return b.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("batch {id} did not finish");
}

fn untar(bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .extension()
            .is_some_and(|e| e == "json")
        {
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            out.extend(serde_json::from_str::<Vec<Value>>(&s).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn a_batch_runs_and_its_results_download_as_tar_gz() {
    let env = common::start().await;
    let list = &env.list_id;
    let ops = json!({"operations": [
        {"method": "POST", "path": format!("/lists/{list}/members"), "operation_id": "add-ana",
         "body": json!({"email_address": "ana@posta.ro", "status": "subscribed"}).to_string()},
        {"method": "PUT", "path": format!("/lists/{list}/members/ion@posta.ro"), "operation_id": "upsert-ion",
         "body": json!({"email_address": "ion@posta.ro", "status_if_new": "pending"}).to_string()},
        {"method": "GET", "path": format!("/lists/{list}/members"), "operation_id": "page", "params": {"count": 5}},
        {"method": "POST", "path": format!("/lists/{list}/members"), "operation_id": "fake",
         "body": json!({"email_address": "x@example.com", "status": "subscribed"}).to_string()},
    ]});
    let created = env.post("/batches", ops).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["total_operations"], 4);
    let id = created.body["id"].as_str().unwrap().to_string();
    let done = wait_finished(&env, &id).await;
    assert_eq!(
        (
            done["finished_operations"].as_u64(),
            done["errored_operations"].as_u64()
        ),
        (Some(4), Some(1))
    );
    assert!(done["completed_at"].as_str().is_some_and(|t| !t.is_empty()));

    let url = done["response_body_url"].as_str().unwrap();
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let mut results = untar(&bytes);
    results.sort_by_key(|r| r["operation_id"].as_str().unwrap().to_string());
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["operation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["add-ana", "fake", "page", "upsert-ion"]);
    let codes: Vec<u64> = results
        .iter()
        .map(|r| r["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 400, 200, 200]);
    let page: Value = serde_json::from_str(results[2]["response"].as_str().unwrap()).unwrap();
    assert_eq!(page["total_items"], 2);
    let view = env.sim.list_view(list).unwrap();
    assert_eq!(view.member_count, 2);
    // Batch operations hold no connection: they are not counted as API requests.
    assert!(!env
        .sim
        .counters()
        .by_endpoint
        .contains_key("POST /3.0/lists/{list_id}/members"));

    let listed = env.get("/batches").await;
    assert_eq!(listed.body["total_items"], 1);
    assert_eq!(env.delete(&format!("/batches/{id}")).await.status, 204);
    assert_eq!(env.get(&format!("/batches/{id}")).await.status, 404);
}

#[tokio::test]
async fn one_batch_at_a_time_and_urls_expire() {
    let env = common::start().await;
    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"batches": {"state_ms": 150}})),
    )
    .await;
    let op = |n: u32| json!({"operations": [{"method": "GET", "path": "/ping", "operation_id": format!("op{n}")}]});
    let first = env.post("/batches", op(1)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = env.post("/batches", op(2)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = env.get(&format!("/batches/{first}")).await.body["status"].clone();
    let b = env.get(&format!("/batches/{second}")).await.body["status"].clone();
    assert_ne!(a, "pending", "the first batch has started");
    assert_eq!(b, "pending", "the second waits for the first");
    wait_finished(&env, &second).await;

    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"batches": {"url_ttl_secs": 0}})),
    )
    .await;
    let done = env.get(&format!("/batches/{first}")).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let expired = reqwest::get(done.body["response_body_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(expired.status(), 403);

    let bad = env
        .post(
            "/batches",
            json!({"operations": [{"method": "FETCH", "path": "/ping"}]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["errors"][0]["field"].as_str()),
        (400, Some("operations.0.method"))
    );
}
