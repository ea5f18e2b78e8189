//! Credentials (Basic, Bearer, OAuth), account isolation, and the problem+json error form.

use crate::common::{self, answer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_credential_scheme_reaches_the_account() {
    let env = common::start().await;
    let url = env.url("/");
    let basic = env
        .http
        .get(&url)
        .basic_auth("any-name-at-all", Some(&env.key))
        .send()
        .await
        .unwrap();
    let bearer = env
        .http
        .get(&url)
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    let oauth = env
        .http
        .get(&url)
        .header("Authorization", format!("OAuth {}", env.key))
        .send()
        .await
        .unwrap();
    for resp in [basic, bearer, oauth] {
        let a = answer(resp).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body["account_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let ping = env.get("/ping").await;
    assert_eq!(ping.body, json!({"health_status": "Everything's Chimpy!"}));
    // With and without the trailing slash, as clients joining a base URL send both.
    assert_eq!(env.get("/lists/").await.status, 200);
}

#[tokio::test]
async fn missing_and_invalid_keys_are_refused_with_mailchimps_words() {
    let env = common::start().await;
    let missing = answer(env.http.get(env.url("/ping")).send().await.unwrap()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["title"], "API Key Missing");

    for bad in [
        "0123456789abcdef0123456789abcdef-us6", // well formed, unknown
        "not-a-key",
    ] {
        let a = env.call_as(bad, Method::GET, "/ping", None).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body["title"], "API Key Invalid");
        assert_eq!(
            a.body["detail"],
            "Your API key may be invalid, or you've attempted to access the wrong datacenter."
        );
    }
}

#[tokio::test]
async fn errors_are_problem_documents_with_a_request_id() {
    let env = common::start().await;
    let a = env.get("/lists/nosuchlist").await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.headers["content-type"],
        "application/problem+json; charset=utf-8"
    );
    assert_eq!(
        a.body["type"],
        "https://mailchimp.com/developer/marketing/docs/errors/"
    );
    assert_eq!(a.body["title"], "Resource Not Found");
    assert_eq!(a.body["status"], 404);
    assert_eq!(
        a.body["detail"],
        "The requested resource could not be found."
    );
    let id = a.headers["x-request-id"].to_str().unwrap();
    assert_eq!(a.body["instance"], id);

    let unknown_route = env.get("/no/such/thing").await;
    assert_eq!(unknown_route.status, 404);
    assert_eq!(unknown_route.body["title"], "Resource Not Found");

    let garbage = answer(
        env.http
            .post(env.url("/lists"))
            .basic_auth("u", Some(&env.key))
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.body["title"], "JSON Parse Exception");
}

#[tokio::test]
async fn x_trigger_error_forces_the_named_error() {
    let env = common::start().await;
    for (name, status, title) in [
        ("APIKeyInvalid", 401, "API Key Invalid"),
        ("Forbidden", 403, "Forbidden"),
        ("TooManyRequests", 429, "Too Many Requests"),
        ("InternalServerError", 500, "Internal Server Error"),
        ("ResourceNotFound", 404, "Resource Not Found"),
    ] {
        let resp = env
            .http
            .get(env.url("/ping"))
            .basic_auth("u", Some(&env.key))
            .header("X-Trigger-Error", name)
            .send()
            .await
            .unwrap();
        let a = answer(resp).await;
        assert_eq!(
            (a.status, a.body["title"].as_str().unwrap()),
            (status, title),
            "{name}"
        );
    }
}

#[tokio::test]
async fn accounts_never_see_each_other() {
    let env = common::start().await;
    let other = env.sim.add_account();
    env.add_member("ana@posta.ro", "subscribed").await;
    let theirs = env
        .call_as(
            &other,
            Method::GET,
            &format!("/lists/{}", env.list_id),
            None,
        )
        .await;
    assert_eq!(theirs.status, 404);
    let theirs = env
        .call_as(&other, Method::GET, &env.members_path(), None)
        .await;
    assert_eq!(theirs.status, 404);
    let lists = env.call_as(&other, Method::GET, "/lists", None).await;
    assert_eq!(lists.body["total_items"], 0);
    // A revoked key stops working at once.
    assert_eq!(
        env.admin(Method::POST, "/revoke", Some(json!({"credential": other})))
            .await
            .status,
        204
    );
    assert_eq!(
        env.call_as(&other, Method::GET, "/ping", None).await.status,
        401
    );
}
