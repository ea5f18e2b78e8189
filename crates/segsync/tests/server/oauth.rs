//! "Authenticate with Mailchimp" over HTTP, with the simulator as Mailchimp's login server:
//! the admin is sent to the authorize page, approves, comes back with a code that segsync
//! exchanges for a token; the connection then works like one with an API key.

use std::collections::HashMap;

use mailchimp_sim::Status;
use serde_json::json;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

const CLIENT_ID: &str = "segsync-app";
const CLIENT_SECRET: &str = "app-secret-0123456789";

fn oauth_server(sim: &Sim, s: &Session) -> Server {
    let (code, body) = sim.admin(
        "POST",
        "/_sim/oauth-clients",
        Some(json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})),
    );
    assert!(code < 300, "{body}");
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", CLIENT_SECRET);
    let login = format!("{}/", sim.api_url().trim_end_matches("/3.0"));
    Server::start(
        s,
        &["--oauth-client-id", CLIENT_ID, "--oauth-login-url", &login],
    )
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

/// What the admin's browser does on Mailchimp's page: approve as the account's login. The
/// callback URL it is sent back to.
fn approve(browser: &Client, authorize_url: &str) -> String {
    let page = browser.send(browser.request_url("GET", authorize_url));
    assert_eq!(page.status, 200, "the authorize page: {}", page.text);
    assert!(page.text.contains("id=\"allow\""), "{}", page.text);
    let q = query(authorize_url);
    let login = page
        .text
        .split("id=\"username\" name=\"username\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the login prefilled")
        .to_string();
    let form = [
        ("client_id", q["client_id"].clone()),
        ("redirect_uri", q["redirect_uri"].clone()),
        ("state", q["state"].clone()),
        ("username", login),
    ];
    let base = authorize_url.split("/oauth2/").next().unwrap();
    let answer = browser.send(
        browser
            .request_url("POST", &format!("{base}/oauth2/authorize"))
            .form(&form),
    );
    assert!(
        (300..400).contains(&answer.status),
        "approval redirects back: {} {}",
        answer.status,
        answer.text
    );
    answer.headers["location"].to_str().unwrap().to_string()
}

#[test]
fn an_admin_connects_with_oauth_and_the_export_runs_on_the_token() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(60);
    let s = installation(&sim, &profiles);
    let server = oauth_server(&sim, &s);
    let ada = server.login(ADMIN);

    // Consent is required before anyone is sent to Mailchimp.
    let (code, body) = ada.post("/api/oauth/mailchimp", json!({"name": CONNECTION}));
    assert_eq!(code, 422, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Data privacy and compliance"));

    let (code, body) = ada.post(
        "/api/oauth/mailchimp",
        json!({"name": CONNECTION, "display_name": "Mailchimp (OAuth)", "accept_privacy_terms": true,
               "share_with_contributors": true}),
    );
    assert_eq!(code, 200, "{body}");
    let authorize = body["authorize_url"].as_str().unwrap().to_string();
    let q = query(&authorize);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        format!("{}/oauth/mailchimp/callback", server.url)
    );
    assert!(q["state"].len() >= 32, "an unguessable state");

    let callback = approve(&ada, &authorize);
    assert!(callback.starts_with(&q["redirect_uri"]), "{callback}");
    let back = ada.send(ada.request_url("GET", &callback));
    assert_eq!(back.status, 303, "{}", back.text);
    assert!(back.headers["location"]
        .to_str()
        .unwrap()
        .starts_with("/admin/connections?notice="));

    let (code, c) = ada.get(&format!("/api/connections/{CONNECTION}"));
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["credential_kind"], "oauth");
    assert_eq!(c["base_url"], sim.api_url());
    assert_eq!(c["consent_by"], ADMIN.0);
    assert_eq!(c["display_name"], "Mailchimp (OAuth)");

    // The same callback again (a replay) is refused: a flow is used once.
    let again = ada.send(ada.request_url("GET", &callback));
    assert_eq!(again.status, 400);
    assert!(
        again.text.contains("unknown or was used already"),
        "{}",
        again.text
    );

    // The token works: a contributor's export runs on it.
    let carl = server.login(CONTRIBUTOR);
    let (code, body) = carl.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");
    let (code, body) = carl.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{body}");
    let run = carl.wait_run(body["run_id"].as_i64().unwrap());
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(
        holding(&sim.view(&list), &["FNAME", "LNAME", "CITY"]),
        expected(&profiles, Status::Subscribed)
    );
}

#[test]
fn a_callback_that_was_not_begun_here_or_by_this_admin_is_refused() {
    let sim = Sim::start();
    let s = installation(&sim, &people(3));
    s.ok(&["segments", "list"]);
    let server = oauth_server(&sim, &s);
    let ada = server.login(ADMIN);

    // Made-up state: nothing is added.
    let forged = ada.send(ada.request("GET", "/oauth/mailchimp/callback?code=abc&state=made-up"));
    assert_eq!(forged.status, 400);
    assert!(
        forged.text.contains("unknown or was used already"),
        "{}",
        forged.text
    );

    // Begun by ada, completed in another admin's browser: refused, and the flow is spent.
    let (code, _) = ada.post(
        "/api/users",
        json!({"name": "otto", "role": "admin", "password": "otto-password-1"}),
    );
    assert_eq!(code, 201);
    let (_, body) = ada.post(
        "/api/oauth/mailchimp",
        json!({"name": "mc2", "accept_privacy_terms": true}),
    );
    let callback = approve(&ada, body["authorize_url"].as_str().unwrap());
    let otto = server.login(("otto", "otto-password-1"));
    let other = otto.send(otto.request_url("GET", &callback));
    assert_eq!(other.status, 403, "{}", other.text);
    assert!(other.text.contains("begun by another user"));

    // Mailchimp says the admin declined.
    let (_, body) = ada.post(
        "/api/oauth/mailchimp",
        json!({"name": "mc3", "accept_privacy_terms": true}),
    );
    let state = query(body["authorize_url"].as_str().unwrap())["state"].clone();
    let declined = ada.send(ada.request(
        "GET",
        &format!("/oauth/mailchimp/callback?error=access_denied&error_description=The+user+declined&state={state}"),
    ));
    assert_eq!(declined.status, 400);
    assert!(
        declined
            .text
            .contains("Mailchimp did not authorize segsync: The user declined"),
        "{}",
        declined.text
    );

    let (_, list) = ada.get("/api/connections");
    assert_eq!(list, json!([]), "no connection was added");
    // Contributors cannot begin the flow.
    let (code, body) = server.login(CONTRIBUTOR).post(
        "/api/oauth/mailchimp",
        json!({"name": "mc4", "accept_privacy_terms": true}),
    );
    assert_eq!(code, 403, "{body}");
}

#[test]
fn without_an_oauth_app_the_server_says_how_to_set_one_up() {
    let sim = Sim::start();
    let s = installation(&sim, &people(3));
    let server = Server::start(&s, &[]);
    let (code, body) = server.login(ADMIN).post(
        "/api/oauth/mailchimp",
        json!({"name": "mc", "accept_privacy_terms": true}),
    );
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--oauth-client-id"),
        "{body}"
    );
}
