//! The OAuth2 authorization-code flow as Mailchimp's login server runs it.

use crate::common::{self, answer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn authorize_exchange_metadata_and_call_the_api() {
    let env = common::start().await;
    let base = env.sim.base_url();
    let r = env
        .admin(Method::POST, "/oauth-clients", Some(json!({"client_id": "segsync", "client_secret": "s3cret", "redirect_uri": "http://127.0.0.1:9999/oauth/callback"})))
        .await;
    assert_eq!(r.status, 204);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:9999/oauth/callback";

    let page = no_redirects
        .get(format!("{base}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "segsync"),
            ("redirect_uri", redirect),
            ("state", "xyz"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"allow\"") && html.contains("sim_user_1"),
        "{html}"
    );

    let approve = no_redirects
        .post(format!("{base}/oauth2/authorize"))
        .form(&[
            ("client_id", "segsync"),
            ("redirect_uri", redirect),
            ("state", "xyz"),
            ("username", "sim_user_1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 303);
    let location = url::Url::parse(approve.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    let code = q["code"].clone();

    let token_form = |secret: &'static str, code: String| {
        no_redirects.post(format!("{base}/oauth2/token")).form(&[
            ("grant_type", "authorization_code".to_string()),
            ("client_id", "segsync".to_string()),
            ("client_secret", secret.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("code", code),
        ])
    };
    let wrong_secret = answer(token_form("nope", code.clone()).send().await.unwrap()).await;
    assert_eq!(
        (wrong_secret.status, wrong_secret.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let token = answer(token_form("s3cret", code.clone()).send().await.unwrap()).await;
    assert_eq!(token.status, 200, "{}", token.body);
    let access = token.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        token.body["expires_in"], 0,
        "Mailchimp tokens do not expire"
    );
    let reused = answer(token_form("s3cret", code).send().await.unwrap()).await;
    assert_eq!(reused.body["error"], "invalid_grant", "a code is used once");

    let meta = answer(
        no_redirects
            .get(format!("{base}/oauth2/metadata"))
            .header("Authorization", format!("OAuth {access}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(meta.body["dc"], "us1");
    assert_eq!(meta.body["api_endpoint"], base);
    assert_eq!(meta.body["login"]["login_name"], "sim_user_1");
    let bad = answer(
        no_redirects
            .get(format!("{base}/oauth2/metadata"))
            .header("Authorization", "OAuth nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (bad.status, bad.body["error"].as_str()),
        (200, Some("invalid_token"))
    );

    // The token works on the API like the account's key.
    let with_token = env.call_as(&access, Method::GET, "/", None).await;
    let with_key = env.get("/").await;
    assert_eq!(with_token.body["account_id"], with_key.body["account_id"]);
    assert_eq!(
        env.call_as(
            &access,
            Method::GET,
            &format!("/lists/{}", env.list_id),
            None
        )
        .await
        .status,
        200
    );
    // Revoked, it stops at once.
    env.admin(Method::POST, "/revoke", Some(json!({"credential": access})))
        .await;
    assert_eq!(
        env.call_as(&access, Method::GET, "/", None).await.status,
        401
    );
}

#[tokio::test]
async fn authorize_refuses_unknown_apps_and_foreign_redirects() {
    let env = common::start().await;
    let base = env.sim.base_url();
    env.admin(Method::POST, "/oauth-clients", Some(json!({"client_id": "segsync", "client_secret": "s", "redirect_uri": "http://127.0.0.1:9999/cb"}))).await;
    for (client, redirect, says) in [
        ("other", "http://127.0.0.1:9999/cb", "Invalid client_id"),
        ("segsync", "http://evil.test/cb", "does not match"),
    ] {
        let r = reqwest::Client::new()
            .get(format!("{base}/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(says));
    }
}
