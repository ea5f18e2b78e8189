//! The server's secrets (the Mailchimp API key, users' passwords, API tokens, session ids,
//! the OAuth app's client secret) never show again once given: not in any answer, not in the
//! server's log at trace level, not on its command line, not in clear in any file of the home.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_in_answers_logs_command_line_or_files() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let client_secret = "oauth-app-secret-5f1e2d3c4b5a";
    sim.admin(
        "POST",
        "/_sim/oauth-clients",
        Some(json!({"client_id": "app", "client_secret": client_secret})),
    );
    let s = installation(&sim, &people(30));
    s.set_env("SEGSYNC_LOG", "trace");
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", client_secret);
    let login = format!("{}/", sim.api_url().trim_end_matches("/3.0"));
    let mut server = Server::start(
        &s,
        &["--oauth-client-id", "app", "--oauth-login-url", &login],
    );

    let mut answers = String::new();
    let mut keep = |(code, body): (u16, serde_json::Value)| {
        answers.push_str(&format!("{code} {body}\n"));
        (code, body)
    };
    let ada = server.login(ADMIN);
    let session_cookie_secret = ada.csrf.clone().unwrap();
    let (code, _) = keep(ada.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true, "share_with_contributors": true}),
    ));
    assert_eq!(code, 201);
    // A wrong key is refused without being repeated.
    let wrong_key = "ffffffffffffffffffffffffffffffff-us9";
    let (code, body) = keep(ada.post(
        "/api/connections",
        json!({"name": "wrong", "api_key": wrong_key, "base_url": sim.api_url(), "accept_privacy_terms": true}),
    ));
    assert_eq!(code, 502, "{body}");
    // Shown once, in the answer that creates it; never again.
    let (code, token) = ada.post("/api/tokens", json!({"label": "ci"}));
    assert_eq!(code, 201);
    let token = token["token"].as_str().unwrap().to_string();
    keep(ada.post(
        "/api/oauth/mailchimp",
        json!({"name": "oauth", "accept_privacy_terms": true}),
    ));
    keep(ada.post("/api/exports", export_body(EXPORT, &list)));
    let (_, started) = keep(ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({})));
    let run = ada.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["outcome"], "succeeded", "{run}");
    for path in [
        "/api/connections",
        &format!("/api/connections/{CONNECTION}"),
        "/api/exports",
        "/api/runs",
        "/api/audit",
        "/api/users",
        "/api/tokens",
        "/api/me",
    ] {
        keep(ada.get(path));
    }
    let metrics = ada.send(ada.request("GET", "/metrics")).text;
    let openapi = ada.send(ada.request("GET", "/api/openapi.json")).text;

    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert_eq!(server.terminate(), 0);
    let log = server.output();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is at trace level: {log}"
    );

    let secrets = [
        ("the API key", sim.key.as_str()),
        ("a refused API key", wrong_key),
        ("the OAuth client secret", client_secret),
        ("the API token", token.as_str()),
        ("the admin's password", ADMIN.1),
        ("the contributor's password", CONTRIBUTOR.1),
        ("the session's CSRF token", session_cookie_secret.as_str()),
    ];
    let mut home_files = Vec::new();
    files(s.home(), &mut home_files);
    assert!(home_files.iter().any(|f| f.ends_with("state.sqlite")));
    for (what, secret) in secrets {
        for (place, text) in [
            ("API answers", answers.as_str()),
            ("the server's log", log.as_str()),
            ("/metrics", metrics.as_str()),
            ("the OpenAPI document", openapi.as_str()),
            ("the CLI transcript", &s.transcript()),
        ] {
            assert!(!text.contains(secret), "{what} in {place}");
        }
        assert!(
            !contains(&cmdline, secret.as_bytes()),
            "{what} on the command line"
        );
        if what == "the session's CSRF token" {
            continue; // kept with its session, as a form token must be
        }
        for f in &home_files {
            let bytes = std::fs::read(f).unwrap();
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{what} in clear in {}",
                f.display()
            );
        }
    }
}
