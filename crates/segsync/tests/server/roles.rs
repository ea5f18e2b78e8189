//! Every endpoint of the API with every role: allowed roles get the answer, the others 403
//! with a message (401 without credentials). The list is checked against the OpenAPI
//! document, so an endpoint added without a case here fails this test.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

/// Who may call an endpoint, at least.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Min {
    Anyone,
    Viewer,
    Contributor,
    Admin,
}

struct Case {
    method: &'static str,
    /// The route as the OpenAPI document names it.
    route: &'static str,
    /// The concrete path called.
    path: String,
    body: Option<Value>,
    min: Min,
    /// The status an allowed caller gets.
    ok: u16,
}

fn case(
    method: &'static str,
    route: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    min: Min,
    ok: u16,
) -> Case {
    Case {
        method,
        route,
        path: path.into(),
        body,
        min,
        ok,
    }
}

/// The calls made as `who` (a short name used to keep created objects apart).
/// What the cases call besides the simulator: its audience, the profiles file, a token of
/// the admin's to revoke, a PostgreSQL profile source's URL.
struct Targets<'a> {
    list: &'a str,
    profiles_csv: &'a str,
    admin_token_id: i64,
    source_url: &'a str,
    /// Uploads of the profiles file: one to read, preview again and import, one to discard.
    uploads: (String, String),
}

fn cases(who: &str, sim: &Sim, t: &Targets<'_>) -> Vec<Case> {
    let (list, profiles_csv, admin_token_id) = (t.list, t.profiles_csv, t.admin_token_id);
    use Min::*;
    let key = sim.key.clone();
    let api = sim.api_url();
    vec![
        case("GET", "/api/me", "/api/me", None, Viewer, 200),
        case("GET", "/api/users", "/api/users", None, Admin, 200),
        case(
            "POST",
            "/api/users",
            "/api/users",
            Some(
                json!({"name": format!("new-{who}"), "role": "viewer", "password": "a-long-password"}),
            ),
            Admin,
            201,
        ),
        case(
            "PATCH",
            "/api/users/{name}",
            format!("/api/users/p-{who}"),
            Some(json!({"role": "contributor"})),
            Admin,
            200,
        ),
        case(
            "DELETE",
            "/api/users/{name}",
            format!("/api/users/d-{who}"),
            None,
            Admin,
            204,
        ),
        case("GET", "/api/tokens", "/api/tokens", None, Viewer, 200),
        case(
            "POST",
            "/api/tokens",
            "/api/tokens",
            Some(json!({"label": format!("t-{who}")})),
            Viewer,
            201,
        ),
        // The admin's own token: only an admin may revoke another user's token.
        case(
            "DELETE",
            "/api/tokens/{id}",
            format!("/api/tokens/{admin_token_id}"),
            None,
            Admin,
            204,
        ),
        case(
            "GET",
            "/api/connections",
            "/api/connections",
            None,
            Viewer,
            200,
        ),
        case(
            "POST",
            "/api/connections",
            "/api/connections",
            Some(
                json!({"name": format!("c-{who}"), "api_key": key, "base_url": api, "accept_privacy_terms": true}),
            ),
            Admin,
            201,
        ),
        case(
            "GET",
            "/api/connections/{name}",
            format!("/api/connections/{CONNECTION}"),
            None,
            Viewer,
            200,
        ),
        case(
            "PATCH",
            "/api/connections/{name}",
            format!("/api/connections/{CONNECTION}"),
            Some(json!({"display_name": format!("Mailchimp ({who})")})),
            Admin,
            200,
        ),
        case(
            "DELETE",
            "/api/connections/{name}",
            format!("/api/connections/del-{who}"),
            None,
            Admin,
            200,
        ),
        case(
            "POST",
            "/api/connections/{name}/test",
            format!("/api/connections/{CONNECTION}/test"),
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/connections/{name}/check",
            format!("/api/connections/{CONNECTION}/check"),
            None,
            Contributor,
            200,
        ),
        case(
            "GET",
            "/api/connections/{name}/audiences",
            format!("/api/connections/{CONNECTION}/audiences"),
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/oauth/mailchimp",
            "/api/oauth/mailchimp",
            Some(json!({"name": format!("o-{who}"), "accept_privacy_terms": true})),
            Admin,
            200,
        ),
        case("GET", "/api/segments", "/api/segments", None, Viewer, 200),
        case(
            "POST",
            "/api/segments",
            "/api/segments",
            Some(json!({"name": format!("s-{who}"), "predicate": "lifetime_value > 100"})),
            Contributor,
            201,
        ),
        case(
            "GET",
            "/api/segments/{name}",
            "/api/segments/high_value",
            None,
            Viewer,
            200,
        ),
        case(
            "PUT",
            "/api/segments/{name}",
            "/api/segments/editable",
            Some(json!({"predicate": format!("city <> '{who}'")})),
            Contributor,
            200,
        ),
        case(
            "DELETE",
            "/api/segments/{name}",
            format!("/api/segments/del-{who}"),
            None,
            Contributor,
            204,
        ),
        case("GET", "/api/sources", "/api/sources", None, Viewer, 200),
        case(
            "POST",
            "/api/sources",
            "/api/sources",
            Some(
                json!({"name": format!("src-{who}"), "kind": "postgres", "url": t.source_url,
                        "table": "customers", "key": "customer_id"}),
            ),
            Admin,
            201,
        ),
        case(
            "GET",
            "/api/sources/{name}",
            "/api/sources/crm",
            None,
            Viewer,
            200,
        ),
        case(
            "DELETE",
            "/api/sources/{name}",
            format!("/api/sources/del-{who}"),
            None,
            Admin,
            204,
        ),
        case(
            "POST",
            "/api/segment-preview",
            "/api/segment-preview",
            Some(json!({"rule": {"condition": {"column": "country", "op": "is", "value": "RO"}}})),
            Viewer,
            200,
        ),
        case(
            "GET",
            "/api/profiles/columns",
            "/api/profiles/columns",
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/export-sizes",
            "/api/export-sizes",
            Some(json!({"segments": ["high_value", "romania"], "email_field": "email"})),
            Viewer,
            200,
        ),
        case(
            "GET",
            "/api/profiles",
            "/api/profiles",
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/profiles/import",
            format!("/api/profiles/import?path={profiles_csv}&key=customer_id"),
            None,
            Admin,
            200,
        ),
        case(
            "POST",
            "/api/profiles/uploads",
            "/api/profiles/uploads?name=p.csv&key=customer_id",
            None,
            Admin,
            201,
        ),
        case(
            "GET",
            "/api/profiles/uploads/{id}",
            format!("/api/profiles/uploads/{}", t.uploads.0),
            None,
            Admin,
            200,
        ),
        case(
            "POST",
            "/api/profiles/uploads/{id}/preview",
            format!(
                "/api/profiles/uploads/{}/preview?key=customer_id",
                t.uploads.0
            ),
            None,
            Admin,
            200,
        ),
        case(
            "POST",
            "/api/profiles/uploads/{id}/commit",
            format!("/api/profiles/uploads/{}/commit", t.uploads.0),
            None,
            Admin,
            200,
        ),
        case(
            "DELETE",
            "/api/profiles/uploads/{id}",
            format!("/api/profiles/uploads/{}", t.uploads.1),
            None,
            Admin,
            204,
        ),
        case(
            "POST",
            "/api/profiles/refresh",
            "/api/profiles/refresh",
            None,
            Contributor,
            200,
        ),
        case("GET", "/api/exports", "/api/exports", None, Viewer, 200),
        case(
            "POST",
            "/api/exports",
            "/api/exports",
            Some(export_body(&format!("e-{who}"), list)),
            Contributor,
            201,
        ),
        case(
            "GET",
            "/api/exports/{name}",
            format!("/api/exports/{EXPORT}"),
            None,
            Viewer,
            200,
        ),
        case(
            "PUT",
            "/api/exports/{name}",
            format!("/api/exports/{EXPORT}"),
            Some(export_body(EXPORT, list)),
            Contributor,
            200,
        ),
        case(
            "DELETE",
            "/api/exports/{name}",
            format!("/api/exports/del-{who}"),
            None,
            Contributor,
            204,
        ),
        case(
            "POST",
            "/api/exports/{name}/pause",
            format!("/api/exports/{EXPORT}/pause"),
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/exports/{name}/resume",
            format!("/api/exports/{EXPORT}/resume"),
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/exports/{name}/plan",
            format!("/api/exports/{EXPORT}/plan"),
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/exports/{name}/runs",
            format!("/api/exports/{EXPORT}/runs"),
            None,
            Contributor,
            202,
        ),
        // Not running: an allowed caller learns that (409); the others are refused first.
        case(
            "POST",
            "/api/exports/{name}/cancel",
            format!("/api/exports/{EXPORT}/cancel"),
            None,
            Contributor,
            409,
        ),
        case("GET", "/api/runs", "/api/runs", None, Viewer, 200),
        case("GET", "/api/runs/{id}", "/api/runs/1", None, Viewer, 200),
        case(
            "GET",
            "/api/runs/{id}/errors",
            "/api/runs/1/errors",
            None,
            Contributor,
            200,
        ),
        case(
            "GET",
            "/api/runs/{id}/changes",
            "/api/runs/1/changes",
            None,
            Contributor,
            200,
        ),
        case(
            "POST",
            "/api/runs/{id}/cancel",
            "/api/runs/1/cancel",
            None,
            Contributor,
            409,
        ),
        case("GET", "/api/audit", "/api/audit", None, Admin, 200),
        case(
            "GET",
            "/api/suppressions",
            "/api/suppressions",
            None,
            Viewer,
            200,
        ),
        case(
            "POST",
            "/api/suppressions",
            "/api/suppressions",
            Some(json!({"kind": "email", "value": format!("s-{who}@posta.ro")})),
            Admin,
            201,
        ),
        case(
            "DELETE",
            "/api/suppressions/{kind}/{value}",
            format!("/api/suppressions/email/s-{who}@posta.ro"),
            None,
            Admin,
            204,
        ),
        case(
            "GET",
            "/api/exports/{name}/suppressions",
            format!("/api/exports/{EXPORT}/suppressions"),
            None,
            Viewer,
            200,
        ),
        case(
            "POST",
            "/api/exports/{name}/suppressions",
            format!("/api/exports/{EXPORT}/suppressions"),
            Some(json!({"kind": "key", "value": format!("k-{who}"), "note": "asked"})),
            Contributor,
            201,
        ),
        case(
            "DELETE",
            "/api/exports/{name}/suppressions/{kind}/{value}",
            format!("/api/exports/{EXPORT}/suppressions/key/k-{who}"),
            None,
            Contributor,
            204,
        ),
        case(
            "GET",
            "/api/exports/{name}/refusals",
            format!("/api/exports/{EXPORT}/refusals"),
            None,
            Viewer,
            200,
        ),
        // Nothing was refused here: allowed callers learn so (the role check comes first).
        case(
            "DELETE",
            "/api/exports/{name}/refusals/{email}",
            format!("/api/exports/{EXPORT}/refusals/nobody@posta.ro"),
            None,
            Contributor,
            404,
        ),
        case(
            "POST",
            "/api/exports/{name}/refusals/{email}/suppress",
            format!("/api/exports/{EXPORT}/refusals/nobody@posta.ro/suppress"),
            Some(json!({})),
            Contributor,
            404,
        ),
        case(
            "GET",
            "/api/settings/alerts",
            "/api/settings/alerts",
            None,
            Admin,
            200,
        ),
        case(
            "PUT",
            "/api/settings/alerts",
            "/api/settings/alerts",
            Some(json!({})),
            Admin,
            200,
        ),
        case(
            "POST",
            "/api/settings/alerts/test",
            "/api/settings/alerts/test",
            None,
            Admin,
            200,
        ),
        case("POST", "/api/logout", "/api/logout", None, Anyone, 204),
        // Last: it logs the client in.
        case(
            "POST",
            "/api/login",
            "/api/login",
            Some(json!({"name": ADMIN.0, "password": ADMIN.1})),
            Anyone,
            200,
        ),
    ]
}

/// A database with a `customers` table, and the URL of a role that can read only it.
fn pg_customers() -> (TestDb, String) {
    let db = TestDb::create("roles");
    db.client()
        .batch_execute(
            "CREATE TABLE customers (customer_id text PRIMARY KEY, email text); \
             INSERT INTO customers VALUES ('c1', 'c1@example.com')",
        )
        .unwrap();
    let url = db.reader("GRANT SELECT ON customers TO {role}");
    (db, url)
}

fn role_of(who: &str) -> Min {
    match who {
        "viewer" => Min::Viewer,
        "contributor" => Min::Contributor,
        "admin" => Min::Admin,
        _ => Min::Anyone,
    }
}

#[test]
fn every_endpoint_with_every_role() {
    let sim = Sim::start();
    sim.admin(
        "POST",
        "/_sim/oauth-clients",
        Some(json!({"client_id": "segsync-tests", "client_secret": "s3cret-of-the-app"})),
    );
    let list = sim.new_list("Newsletter");
    let profiles = people(40);
    let s = installation(&sim, &profiles);
    s.ok(&["segments", "add", "editable", "--where", "city <> ''"]);
    let csv = s.path("profiles.csv");
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", "s3cret-of-the-app");
    let login_url = format!("{}/", sim.api_url().trim_end_matches("/3.0"));
    let server = Server::start(
        &s,
        &[
            "--oauth-client-id",
            "segsync-tests",
            "--oauth-login-url",
            &login_url,
        ],
    );
    let admin = server.token_client(ADMIN);
    // A shared connection with the export, and targets each role may try to change.
    let (code, body) = admin.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true, "share_with_contributors": true}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = admin.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");
    let (code, body) = admin.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{body}");
    admin.wait_run(body["run_id"].as_i64().unwrap());
    let (code, body) = admin.post("/api/profiles/import?path=".to_string().as_str(), json!({}));
    assert_eq!(code, 422, "no key: {body}");
    let (code, body) = admin.post(
        &format!(
            "/api/profiles/import?path={}&key=customer_id",
            csv.display()
        ),
        json!({}),
    );
    assert_eq!(code, 200, "{body}");

    // A PostgreSQL profile source, and one to remove per role.
    let (_pg, source_url) = pg_customers();
    let source = |name: &str| {
        json!({"name": name, "kind": "postgres", "url": source_url, "table": "customers",
               "key": "customer_id"})
    };
    let (code, body) = admin.post("/api/sources", source("crm"));
    assert_eq!(code, 201, "{body}");

    let roles = ["anonymous", "viewer", "contributor", "admin"];
    for who in roles {
        let (code, body) = admin.post("/api/sources", source(&format!("del-{who}")));
        assert_eq!(code, 201, "{body}");
        let (code, body) = admin.post(
            "/api/users",
            json!({"name": format!("p-{who}"), "role": "viewer", "password": "a-long-password"}),
        );
        assert_eq!(code, 201, "{body}");
        let (code, body) = admin.post(
            "/api/users",
            json!({"name": format!("d-{who}"), "role": "viewer", "password": "a-long-password"}),
        );
        assert_eq!(code, 201, "{body}");
        let (code, body) = admin.post(
            "/api/connections",
            json!({"name": format!("del-{who}"), "api_key": sim.key, "base_url": sim.api_url(), "accept_privacy_terms": true}),
        );
        assert_eq!(code, 201, "{body}");
        let (code, body) = admin.post(
            "/api/segments",
            json!({"name": format!("del-{who}"), "predicate": "1 = 1"}),
        );
        assert_eq!(code, 201, "{body}");
        let (code, body) = admin.post("/api/exports", export_body(&format!("del-{who}"), &list));
        assert_eq!(code, 201, "{body}");
    }

    let mut exercised: BTreeSet<(String, String)> = BTreeSet::new();
    for who in roles {
        let client = match who {
            "viewer" => server.login(VIEWER),
            "contributor" => server.login(CONTRIBUTOR),
            "admin" => server.login(ADMIN),
            _ => server.anonymous(),
        };
        // A token of the admin's, for the revoke case.
        let (code, t) = admin.post("/api/tokens", json!({"label": format!("revoke-{who}")}));
        assert_eq!(code, 201, "{t}");
        let role = role_of(who);
        let targets = Targets {
            list: &list,
            profiles_csv: &csv.display().to_string(),
            admin_token_id: t["id"].as_i64().unwrap(),
            source_url: &source_url,
            uploads: (upload_profiles(&admin, &csv), upload_profiles(&admin, &csv)),
        };
        for c in cases(who, &sim, &targets) {
            exercised.insert((c.method.to_string(), c.route.to_string()));
            let (code, body) = client.call(c.method, &c.path, c.body.clone());
            let want = if role >= c.min {
                c.ok
            } else if role == Min::Anyone {
                401
            } else {
                403
            };
            assert_eq!(
                code, want,
                "{} {} as {who}: wanted {want}, got {code} {body}",
                c.method, c.path
            );
            if code == 403 || code == 401 {
                let message = body["message"].as_str().unwrap_or("");
                assert!(
                    !message.is_empty(),
                    "{} {} as {who}: a refusal says why: {body}",
                    c.method,
                    c.path
                );
            }
            if code == 403 {
                assert_eq!(
                    body["error"], "forbidden",
                    "{} {} as {who}: {body}",
                    c.method, c.path
                );
            }
            if c.path.ends_with("/runs") && code == 202 {
                client.wait_run(body["run_id"].as_i64().unwrap());
            }
            assert!(
                !body.to_string().contains(&sim.key),
                "{} {}: a secret in the answer",
                c.method,
                c.path
            );
        }
    }

    // Every documented operation was called, and nothing undocumented was.
    let (code, doc) = server.anonymous().get("/api/openapi.json");
    assert_eq!(code, 200);
    let mut documented: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let missing: Vec<_> = documented.difference(&exercised).collect();
    assert!(
        missing.is_empty(),
        "documented endpoints without a role case: {missing:?}"
    );
    let undocumented: Vec<_> = exercised.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "cases for endpoints not in the OpenAPI document: {undocumented:?}"
    );

    // Health and metrics need no credentials.
    let anon = server.anonymous();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = anon.send(anon.request("GET", path));
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
}

#[test]
fn contributors_never_use_a_connection_kept_for_admins() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = installation(&sim, &people(20));
    let server = Server::start(&s, &[]);
    let admin = server.login(ADMIN);
    let (code, body) = admin.post(
        "/api/connections",
        json!({"name": "private", "api_key": sim.key, "base_url": sim.api_url(), "accept_privacy_terms": true}),
    );
    assert_eq!(code, 201, "{body}");
    let mut private_export = export_body("private-export", &list);
    private_export["connection"] = json!("private");
    let (code, body) = admin.post("/api/exports", private_export.clone());
    assert_eq!(code, 201, "{body}");

    let carl = server.login(CONTRIBUTOR);
    // Not listed, not readable, not usable.
    let (_, listed) = carl.get("/api/connections");
    assert_eq!(listed, json!([]));
    let (code, body) = carl.get("/api/connections/private");
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert_eq!(body["message"], "connection \"private\" is for admins only");
    let mut mine = export_body("mine", &list);
    mine["connection"] = json!("private");
    let (code, body) = carl.post("/api/exports", mine);
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is for admins only"),
        "{body}"
    );
    // The admin's export on it: readable (viewers read exports), but not runnable or editable.
    let (code, view) = carl.get("/api/exports/private-export");
    assert_eq!(code, 200);
    assert_eq!(view["can_edit"], false);
    for (method, path) in [
        ("POST", "/api/exports/private-export/runs"),
        ("POST", "/api/exports/private-export/plan"),
        ("POST", "/api/exports/private-export/pause"),
        ("DELETE", "/api/exports/private-export"),
    ] {
        let (code, body) = carl.call(method, path, Some(json!({})));
        assert_eq!(code, 403, "{method} {path}: {body}");
    }
    let (code, body) = carl.put("/api/exports/private-export", private_export);
    assert_eq!(code, 403, "{body}");

    // Sharing the connection changes that at once.
    let (code, _) = admin.patch(
        "/api/connections/private",
        json!({"share_with_contributors": true}),
    );
    assert_eq!(code, 200);
    let (code, body) = carl.post("/api/exports/private-export/runs", json!({}));
    assert_eq!(code, 202, "{body}");
    carl.wait_run(body["run_id"].as_i64().unwrap());
}

#[test]
fn sessions_need_the_csrf_token_and_end_at_logout() {
    let sim = Sim::start();
    let s = installation(&sim, &people(5));
    let server = Server::start(&s, &[]);
    let mut ada = server.login(ADMIN);
    let csrf = ada.csrf.take();
    // A change without the token (what a forged cross-site form would send) is refused.
    let (code, body) = ada.post(
        "/api/segments",
        json!({"name": "forged", "predicate": "1 = 1"}),
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("csrf")),
        "{body}"
    );
    ada.csrf = Some("not-the-token".into());
    let (code, _) = ada.post(
        "/api/segments",
        json!({"name": "forged", "predicate": "1 = 1"}),
    );
    assert_eq!(code, 403);
    ada.csrf = csrf;
    let (code, body) = ada.post(
        "/api/segments",
        json!({"name": "real", "predicate": "1 = 1"}),
    );
    assert_eq!(code, 201, "{body}");

    // Wrong passwords and unknown users get the same answer.
    let anon = server.anonymous();
    let (c1, b1) = anon.post(
        "/api/login",
        json!({"name": ADMIN.0, "password": "wrong-password"}),
    );
    let (c2, b2) = anon.post(
        "/api/login",
        json!({"name": "nobody", "password": "wrong-password"}),
    );
    assert_eq!((c1, c2), (401, 401));
    assert_eq!(b1, b2);

    let a = ada.send(ada.request("POST", "/api/logout"));
    assert_eq!(a.status, 204);
    let (code, _) = ada.get("/api/me");
    assert_eq!(code, 401, "the session ended");

    // A revoked token stops working at once.
    let scripted = server.token_client(VIEWER);
    let (code, _) = scripted.get("/api/exports");
    assert_eq!(code, 200);
    let (_, tokens) = server.login(ADMIN).get("/api/tokens");
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == VIEWER.0)
        .expect("vera's token")["id"]
        .as_i64()
        .unwrap();
    let (code, _) = server.login(ADMIN).delete(&format!("/api/tokens/{id}"));
    assert_eq!(code, 204);
    let (code, body) = scripted.get("/api/exports");
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["message"], "the API token is unknown or revoked");
}

/// Uploads the profiles file (as the admin); its upload id.
fn upload_profiles(admin: &Client, csv: &std::path::Path) -> String {
    let a = admin.send(
        admin
            .request(
                "POST",
                "/api/profiles/uploads?name=profiles.csv&key=customer_id",
            )
            .body(std::fs::read(csv).unwrap()),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()["id"].as_str().unwrap().to_string()
}
