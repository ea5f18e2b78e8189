//! The REST API end to end: the seed's flow through HTTP, as an admin and a contributor.

use serde_json::json;

use mailchimp_sim::Status;

use crate::common::*;
use crate::harness::*;

/// Profiles, segments and users: what an installation has before anyone opens the API.
pub fn installation(sim: &Sim, profiles: &[Profile]) -> Session {
    let s = Session::new(sim);
    s.import(profiles);
    s.segments();
    add_users(&s);
    s
}

#[test]
fn admin_connects_contributor_exports_and_the_audience_gets_the_segments() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(120);
    let s = installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let admin = server.login(ADMIN);

    // Admin > Connections: add Mailchimp with an API key, shared with contributors.
    let (code, body) = admin.post(
        "/api/connections",
        json!({
            "name": CONNECTION, "display_name": "Mailchimp (simulator)", "api_key": sim.key,
            "base_url": sim.api_url(), "accept_privacy_terms": true,
            "share_with_contributors": true
        }),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["consent_by"], ADMIN.0);
    assert_eq!(body["export_user"], ADMIN.0);
    assert!(
        !body.to_string().contains(&sim.key),
        "the key never comes back: {body}"
    );

    // Data > Exports, as a contributor with an API token: audiences, then the export.
    let contributor = server.token_client(CONTRIBUTOR);
    let (code, audiences) = contributor.get(&format!("/api/connections/{CONNECTION}/audiences"));
    assert_eq!(code, 200, "{audiences}");
    assert_eq!(audiences[0]["id"], list.as_str());
    assert_eq!(audiences[0]["name"], "Newsletter");
    let (code, body) = contributor.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["can_edit"], true);

    let (code, started) = contributor.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = contributor.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(run["trigger"], format!("manual:{}", CONTRIBUTOR.0));

    let view = sim.view(&list);
    assert_eq!(
        holding(&view, &["FNAME", "LNAME", "CITY"]),
        expected(&profiles, Status::Subscribed)
    );

    // The audit log tells who did what.
    let (code, log) = admin.get("/api/audit");
    assert_eq!(code, 200);
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        (ADMIN.0, "connection.add", CONNECTION),
        (CONTRIBUTOR.0, "token.create", CONTRIBUTOR.0),
        (CONTRIBUTOR.0, "export.add", EXPORT),
        (CONTRIBUTOR.0, "export.run", EXPORT),
    ] {
        assert!(
            entries
                .iter()
                .any(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()) == want),
            "{want:?} in the audit log: {entries:?}"
        );
    }
    assert!(!log.to_string().contains(&sim.key));

    // Prometheus metrics count the run, its records and its Mailchimp requests.
    let metrics = admin.send(admin.request("GET", "/metrics"));
    assert_eq!(metrics.status, 200);
    let sent = expected(&profiles, Status::Subscribed).len();
    for line in [
        format!("segsync_runs_total{{export=\"{EXPORT}\",outcome=\"succeeded\"}} 1"),
        format!("segsync_records_total{{export=\"{EXPORT}\",result=\"sent\"}} {sent}"),
        format!("segsync_records_total{{export=\"{EXPORT}\",result=\"refused\"}} 0"),
        "segsync_runs_active 0".to_string(),
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "{line} in:\n{}",
            metrics.text
        );
    }
    let upserts = metrics
        .text
        .lines()
        .find(|l| {
            l.starts_with("segsync_mailchimp_requests_total{endpoint=\"POST /lists/{list_id}\"}")
        })
        .expect("batch upserts counted");
    assert!(upserts.ends_with(" 1"), "{upserts}");
    assert!(metrics.text.contains(
        "segsync_http_request_duration_seconds_count{method=\"POST\",route=\"/api/exports/{name}/runs\",status=\"202\"} 1"
    ));

    // A re-run goes on from the last one; `?full=true` asks for a full pass.
    let (code, started) = contributor.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = contributor.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["counts"]["evaluation"]["mode"], "incremental", "{run}");
    let (code, started) =
        contributor.post(&format!("/api/exports/{EXPORT}/runs?full=true"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = contributor.wait_run(started["run_id"].as_i64().unwrap());
    let e = &run["counts"]["evaluation"];
    assert_eq!(e["mode"], "full", "{run}");
    assert_eq!(e["reason"], "asked for (--full)", "{run}");
    assert_eq!(e["evaluated_profiles"], profiles.len() as u64, "{run}");
}

#[test]
fn the_first_user_is_an_admin_and_passwords_never_go_on_the_command_line() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    let add_carl = |var| {
        [
            "user",
            "add",
            "carl",
            "--role",
            "contributor",
            "--password-env",
            var,
        ]
    };
    let out = s.expect(2, &add_carl("NOPE"));
    assert!(
        out.stderr
            .contains("--password-env NOPE: the variable is not set"),
        "{}",
        out.stderr
    );
    s.set_env("PW", "short");
    let out = s.expect(2, &add_carl("PW"));
    assert!(
        out.stderr.contains("a password has at least 8 characters"),
        "{}",
        out.stderr
    );
    s.set_env("PW", "long-enough-password");
    let out = s.expect(2, &add_carl("PW"));
    assert!(
        out.stderr.contains("the first user must be an admin"),
        "{}",
        out.stderr
    );
    s.ok(&[
        "user",
        "add",
        "ada",
        "--role",
        "admin",
        "--password-env",
        "PW",
    ]);
    s.ok(&[
        "user",
        "add",
        "carl",
        "--role",
        "contributor",
        "--password-env",
        "PW",
    ]);
    let out = s.expect(2, &["user", "remove", "ada"]);
    assert!(
        out.stderr
            .contains("ada is the last admin and cannot be removed"),
        "{}",
        out.stderr
    );
    let listed = s.ok(&["user", "list"]).stdout;
    assert!(
        listed.contains("ada") && listed.contains("contributor"),
        "{listed}"
    );

    // A token from the command line works against the server; it is printed once.
    let token = s
        .ok(&["user", "token", "carl", "--label", "ci"])
        .stdout
        .trim()
        .to_string();
    assert!(token.starts_with("sst_"), "{token}");
    let server = Server::start(&s, &[]);
    let mut c = server.anonymous();
    c.token = Some(token);
    let (code, me) = c.get("/api/me");
    assert_eq!(code, 200);
    assert_eq!(me["name"], "carl");
    assert_eq!(me["role"], "contributor");
}

#[test]
fn cancel_stops_a_run_at_its_checkpoint_and_the_next_run_sends_the_rest() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(12_000);
    let s = installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let (code, body) = ada.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = ada.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");

    // Slow enough to be caught while sending.
    sim.settings(|st| {
        st.latency.base_ms = 200.0;
        st.latency.per_item_ms = 2.0;
    });
    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    wait_for(60, "the run to send members", || {
        let (_, r) = ada.get(&format!("/api/runs/{id}"));
        (r["progress"]["phase"] == "sending members" && sim.counters().members_created > 0)
            .then_some(())
    });
    // Running: a second start is refused, the progress shows.
    let (code, body) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{body}"
    );
    let (code, body) = ada.post(&format!("/api/runs/{id}/cancel"), json!({}));
    assert_eq!(code, 202, "{body}");
    let run = ada.wait_run(id);
    assert_eq!(run["outcome"], "cancelled", "{run}");
    let created = run["counts"]["created"].as_u64().unwrap();
    assert_eq!(
        created,
        sim.counters().members_created,
        "what Mailchimp created is what the run counted: it stopped at a checkpoint"
    );
    let wanted = expected(&profiles, Status::Subscribed).len() as u64;
    assert!(
        created < wanted,
        "cancelled before the end ({created} of {wanted})"
    );

    sim.settings(|st| {
        st.latency.base_ms = 0.0;
        st.latency.per_item_ms = 0.0;
    });
    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let run = ada.wait_run(started["run_id"].as_i64().unwrap());
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(run["counts"]["created"].as_u64().unwrap(), wanted - created);
    assert_eq!(
        sim.counters().members_created,
        wanted,
        "nobody created twice"
    );
    assert_eq!(
        holding(&sim.view(&list), &["FNAME", "LNAME", "CITY"]),
        expected(&profiles, Status::Subscribed)
    );
    // The history tells both.
    let (_, runs) = ada.get(&format!("/api/runs?export={EXPORT}"));
    let outcomes: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "cancelled"]);
}

#[test]
fn an_admin_uploads_profiles_and_a_broken_upload_changes_nothing() {
    let sim = Sim::start();
    let s = installation(&sim, &people(10));
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    let upload = |query: &str, body: &str| {
        ada.send(
            ada.request("POST", &format!("/api/profiles/import?{query}"))
                .body(body.to_string()),
        )
    };
    let csv = "customer_id,email,first_name,last_name,city,country,lifetime_value,updated_at\n\
               C1,ana@posta.ro,Ana,Pop,Cluj,RO,700,2026-01-01T00:00:00Z\n\
               C2,ion@posta.ro,Ion,Rus,Iasi,RO,100,2026-01-01T00:00:00Z\n";
    let a = upload("format=csv&key=customer_id", csv);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["rows"], 2);
    let (_, info) = ada.get("/api/profiles");
    assert_eq!(info["count"], 2);

    let a = upload("format=../../x&key=customer_id", csv);
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown format"),
        "{}",
        a.text
    );
    let a = upload(
        "format=csv&key=customer_id",
        "customer_id,email\nC1,a@b.ro,extra\n",
    );
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("the uploaded file"),
        "{}",
        a.text
    );
    let (_, info) = ada.get("/api/profiles");
    assert_eq!(info["count"], 2, "a refused file changes nothing");
    let left: Vec<_> = std::fs::read_dir(s.home().join("uploads"))
        .unwrap()
        .collect();
    assert!(
        left.is_empty(),
        "uploads are removed after the import: {left:?}"
    );

    let contributor = server.token_client(CONTRIBUTOR);
    let a = contributor.send(
        contributor
            .request("POST", "/api/profiles/import?format=csv&key=customer_id")
            .body(csv.to_string()),
    );
    assert_eq!(a.status, 403, "{}", a.text);
}

/// An Excel file of a European locale uploaded as it is: read with its formats (the answer
/// says which), its bad values listed with their lines, the options of `profiles import`
/// taken as query parameters; a segment comparing a text column with a number is saved
/// with a warning.
#[test]
fn an_excel_upload_is_read_with_its_formats_and_the_import_options() {
    let sim = Sim::start();
    let s = installation(&sim, &people(3));
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    let excel = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/excel-eu.csv"),
    )
    .unwrap();
    let upload = |query: &str| {
        ada.send(
            ada.request(
                "POST",
                &format!("/api/profiles/import?format=csv&key=Customer%20ID{query}"),
            )
            .body(excel.clone()),
        )
    };
    let a = upload("");
    assert_eq!(a.status, 200, "{}", a.text);
    let answer = a.json();
    assert_eq!(answer["rows"], 18);
    assert_eq!(
        answer["dialect"],
        json!({"delimiter": ";", "delimiter_detected": true, "bom": true, "line_ending": "crlf",
               "decimal_comma": true, "date_format": "dd/mm/yyyy"})
    );
    assert_eq!(answer["bad_value_count"], 2);
    assert_eq!(
        answer["bad_values"][0],
        json!({"line": 9, "column": "Lifetime value", "value": "x",
               "problem": "not a number (with a decimal comma, as 1.234,50)"})
    );
    let (code, seg) = ada.post(
        "/api/segments",
        json!({"name": "big", "predicate": "\"Lifetime value\" > 500"}),
    );
    assert_eq!(code, 201, "{seg}");
    assert_eq!(seg["count"], 8);
    assert!(
        seg["warnings"].is_null() || seg["warnings"] == json!([]),
        "{seg}"
    );

    let a = upload("&on_bad_value=refuse");
    assert_eq!(a.status, 422, "{}", a.text);
    let message = a.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(
            "the uploaded file: 2 values do not fit their column's type, so nothing was imported"
        ) && message.contains("\n  line 10: column \"Joined\": \"n/a\" is not a date"),
        "{message}"
    );
    let a = upload("&delimiter=%7C");
    assert_eq!(a.status, 422, "{}", a.text);
    let a = upload("&on_bad_value=later");
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.text.contains("expected empty, skip or refuse"),
        "{}",
        a.text
    );

    let a = upload("&on_bad_value=skip&text=Lifetime%20value&delimiter=%3B&decimal_comma=true&date_format=dd/mm/yyyy");
    assert_eq!(a.status, 200, "{}", a.text);
    let answer = a.json();
    assert_eq!(
        (answer["rows"].clone(), answer["skipped_rows"].clone()),
        (json!(17), json!(1))
    );
    assert_eq!(answer["dialect"]["delimiter_detected"], false);
    let (code, seg) = ada.post(
        "/api/segments",
        json!({"name": "big-text", "predicate": "\"Lifetime value\" > 500"}),
    );
    assert_eq!(code, 201, "{seg}");
    assert!(
        seg["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("column \"Lifetime value\" holds text, so \"Lifetime value\" > 500 compares text, not numbers"),
        "{seg}"
    );

    // A file on the server is refreshed with the options it was imported with.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/excel-eu.csv");
    let a = ada.send(ada.request(
        "POST",
        &format!(
            "/api/profiles/import?path={}&key=Customer%20ID&on_bad_value=skip",
            path.display()
        ),
    ));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["skipped_rows"], 2);
    let (_, info) = ada.get("/api/profiles");
    assert_eq!(
        info["source"]["options"],
        json!({"on_bad_value": "skip"}),
        "{info}"
    );
    let (code, refreshed) = ada.post("/api/profiles/refresh", json!({}));
    assert_eq!(code, 200, "{refreshed}");
    assert_eq!(
        (refreshed["rows"].clone(), refreshed["skipped_rows"].clone()),
        (json!(16), json!(2))
    );
}

/// A record Mailchimp refuses only for now ("signed up to a lot of lists very recently") is
/// counted as deferred, not failed, in the run's API answer and on its page; the next run,
/// once Mailchimp takes it, sends it and defers nothing.
#[test]
fn a_deferred_record_is_counted_in_the_runs_answer_and_on_its_page() {
    let sim = Sim::start();
    let refused = stefan().email;
    sim.settings(|st| st.variants.recent_signups = vec![refused]);
    let list = sim.new_list("Newsletter");
    let profiles = vec![ana(), helene(), stefan()];
    let s = installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let (code, body) = ada.post(
        "/api/connections",
        json!({"name": CONNECTION, "api_key": sim.key, "base_url": sim.api_url(),
               "accept_privacy_terms": true}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = ada.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{body}");

    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    let run = ada.wait_run(id);
    assert_eq!(run["outcome"], "succeeded_with_errors", "{run}");
    let (code, view) = ada.get(&format!("/api/runs/{id}"));
    assert_eq!(code, 200, "{view}");
    assert_eq!(
        (
            &view["run"]["counts"]["created"],
            &view["run"]["counts"]["deferred"],
            &view["run"]["counts"]["failed"],
            &view["errors"]
        ),
        (&json!(2), &json!(1), &json!(0), &json!(1)),
        "{view}"
    );
    let page = ada.send(ada.request("GET", &format!("/runs/{id}")));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains(
            "<div class=\"v\">1</div><div class=\"k\">deferred (sent by the next run)</div>"
        ),
        "{}",
        page.text
    );
    assert!(page.text.contains(&stefan().email), "{}", page.text);
    assert!(
        page.text
            .contains("<dt>deferred</dt><dd>refused by Mailchimp for now only"),
        "the word is defined where it appears: {}",
        page.text
    );

    // Mailchimp takes it now: the next run sends it, and its page shows no deferred count.
    sim.settings(|st| st.variants.recent_signups.clear());
    let (code, started) = ada.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    let run = ada.wait_run(id);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(
        (&run["counts"]["created"], &run["counts"]["deferred"]),
        (&json!(1), &json!(0)),
        "{run}"
    );
    let page = ada.send(ada.request("GET", &format!("/runs/{id}")));
    assert!(!page.text.contains("deferred"), "{}", page.text);
    assert_eq!(
        holding(&sim.view(&list), &["FNAME", "LNAME", "CITY"]),
        expected(&profiles, Status::Subscribed)
    );
}
