//! What a security review asked of the server's answers: CSV downloads safe to open in a
//! spreadsheet, bounded metrics, and the headers and checks that keep browsers from misusing
//! answers.

use crate::common::*;
use crate::harness::*;

/// The CSV of a run's errors, downloaded from the API (the UI links the same URL), never
/// holds a cell a spreadsheet would evaluate as a formula.
#[test]
fn the_errors_csv_download_neutralises_cells_that_start_like_formulas() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = vec![ana()];
    profiles.extend(formula_profiles());
    s.setup(&list, &profiles, &[]);
    s.run_export(3);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let csv = ada.send(ada.request("GET", "/api/runs/1/errors"));
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(
        csv.text.starts_with("profile_key,email,reason\n"),
        "{}",
        csv.text
    );
    assert_spreadsheet_safe(&csv.text);
}

/// The series of `segsync_http_request_duration_seconds` in a `/metrics` answer.
fn http_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("segsync_http_request_duration_seconds_count{"))
        .collect()
}

/// Anybody can send a request with any method to any path: `/metrics` labels only known
/// methods and matched route templates, so such requests cannot grow it (nor the memory it
/// lives in) without bound.
#[test]
fn metrics_stay_bounded_whatever_methods_and_paths_requests_have() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let anon = server.anonymous();
    let scrape = || {
        let m = anon.send(anon.request("GET", "/metrics"));
        assert_eq!(m.status, 200);
        m.text
    };
    // Every kind of request once, so that what follows adds no series of its own.
    for (method, path) in [
        ("GET", "/healthz"),
        ("BREW", "/healthz"),
        ("BREW", "/no/such/page"),
        ("GET", "/no/such/page"),
    ] {
        anon.send(anon.request(method, path));
    }
    let before = scrape();
    let (size, series) = (before.len(), http_series(&before).len());

    // 100 requests, each with a new long method, half of them on a new path no route matches.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut word = |len: usize| {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'A' + (x % 26) as u8)
            })
            .collect::<String>()
    };
    let mut sent = Vec::new();
    for i in 0..100 {
        let method = word(200);
        let path = if i % 2 == 0 {
            format!("/{}/{}", word(100), word(100))
        } else {
            "/healthz".to_string()
        };
        let a = anon.send(anon.request(&method, &path));
        assert!(a.status >= 400, "{method} {path}: {}", a.status);
        sent.push((method, path));
    }

    let after = scrape();
    for (method, path) in &sent {
        assert!(
            !after.contains(method.as_str()),
            "a method as a label: {method}"
        );
        if path != "/healthz" {
            assert!(!after.contains(path.as_str()), "a path as a label: {path}");
        }
    }
    assert!(
        http_series(&after).len() <= series + 2,
        "{} series, then {}:\n{}",
        series,
        http_series(&after).len(),
        http_series(&after).join("\n")
    );
    assert!(
        after.len() < size + 8 * 1024,
        "/metrics grew from {size} to {} bytes",
        after.len()
    );
    assert!(
        after.contains("method=\"other\",route=\"other\",status=\"404\""),
        "{after}"
    );
}

/// Logging out ends a session, so a cross-site form must not be able to do it: without the
/// session's CSRF token it is refused and the session lives on.
#[test]
fn logout_needs_the_session_csrf_token() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let mut ada = server.login(ADMIN);
    let csrf = ada.csrf.take();
    let a = ada.send(ada.request("POST", "/api/logout"));
    assert_eq!(a.status, 403, "no token: {}", a.text);
    assert_eq!(a.json()["error"], "csrf", "{}", a.text);
    ada.csrf = Some("not-the-token".into());
    let a = ada.send(ada.request("POST", "/api/logout"));
    assert_eq!(a.status, 403, "a wrong token: {}", a.text);
    assert_eq!(ada.get("/api/me").0, 200, "the session lives on");

    ada.csrf = csrf;
    let a = ada.send(ada.request("POST", "/api/logout"));
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(ada.get("/api/me").0, 401, "the session ended");
    // Without a session there is nothing to end.
    let anon = server.anonymous();
    assert_eq!(anon.send(anon.request("POST", "/api/logout")).status, 204);
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Every answer under `/api/` (JSON, the errors CSV, refusals, unknown paths) tells browsers
/// not to guess its type and not to keep it.
#[test]
fn api_answers_are_never_sniffed_nor_cached() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &[ana(), formula_profiles()[0].clone()], &[]);
    s.run_export(3);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    // A contributor's script: it may download the records a run could not send.
    let script = server.token_client(CONTRIBUTOR);
    let anon = server.anonymous();
    let answers = [
        (
            "session GET /api/me",
            ada.send(ada.request("GET", "/api/me")),
            200,
        ),
        (
            "token GET /api/exports",
            script.send(script.request("GET", "/api/exports")),
            200,
        ),
        (
            "CSV",
            ada.send(ada.request("GET", "/api/runs/1/errors")),
            200,
        ),
        (
            "CSV, by token",
            script.send(script.request("GET", "/api/runs/1/errors")),
            200,
        ),
        (
            "the OpenAPI document",
            anon.send(anon.request("GET", "/api/openapi.json")),
            200,
        ),
        (
            "unauthenticated",
            anon.send(anon.request("GET", "/api/exports")),
            401,
        ),
        (
            "refused",
            script.send(script.request("GET", "/api/audit")),
            403,
        ),
        (
            "not found",
            ada.send(ada.request("GET", "/api/runs/99")),
            404,
        ),
        (
            "no such route",
            ada.send(ada.request("GET", "/api/no-such-thing")),
            404,
        ),
        (
            "login",
            anon.send(
                anon.request("POST", "/api/login")
                    .json(&serde_json::json!({"name": ADMIN.0, "password": ADMIN.1})),
            ),
            200,
        ),
    ];
    for (what, a, status) in &answers {
        assert_eq!(a.status, *status, "{what}: {}", a.text);
        assert_eq!(header(a, "x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header(a, "cache-control"), "no-store", "{what}");
    }
    assert!(header(&answers[2].1, "content-type").starts_with("text/csv"));
    // The OpenAPI document says so.
    let doc = &answers[4].1.text;
    assert!(doc.contains("Cache-Control: no-store"), "{doc}");
}

/// `/healthz`, `/readyz` and `/metrics` are plain text that nobody should take for a page
/// nor keep: they carry the same headers as the API's answers.
#[test]
fn health_and_metrics_answers_are_never_sniffed_nor_cached() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let anon = server.anonymous();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = anon.send(anon.request("GET", path));
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert_eq!(header(&a, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&a, "cache-control"), "no-store", "{path}");
    }
}

/// The OAuth callback's page cannot be framed (clickjacking) and runs nothing.
#[test]
fn the_oauth_callback_page_has_a_content_security_policy_and_cannot_be_framed() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", "app-secret-0123456789");
    let server = Server::start(
        &s,
        &[
            "--oauth-client-id",
            "segsync-app",
            "--oauth-login-url",
            &format!("{}/", sim.api_url().trim_end_matches("/3.0")),
        ],
    );
    let ada = server.login(ADMIN);
    let page = ada.send(ada.request("GET", "/oauth/mailchimp/callback?code=abc&state=made-up"));
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(
        page.text.contains("unknown or was used already"),
        "{}",
        page.text
    );
    let csp = header(&page, "content-security-policy");
    for directive in ["default-src 'none'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{directive} in {csp:?}");
    }
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "cache-control"), "no-store");
}

/// A login server that answers every token request with a redirect (307: the body, with the
/// app's secret and the code, would go along) to a path of its own, and notes every request.
fn redirecting_login_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (base, log) = (url.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap_or_default();
            let mut length = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = r.read_exact(&mut body);
            log.lock().unwrap().push(line.trim().to_string());
            let answer = if line.contains("/elsewhere") {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 25\r\nconnection: close\r\n\r\n{\"access_token\":\"stolen\"}".to_string()
            } else {
                format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {base}/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, seen)
}

/// The OAuth client sends the app's secret and the code to the login server only: it follows
/// no redirect, and says why the authorization failed.
#[test]
fn the_oauth_client_follows_no_redirect() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let (login, seen) = redirecting_login_server();
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", "app-secret-0123456789");
    let server = Server::start(
        &s,
        &[
            "--oauth-client-id",
            "segsync-app",
            "--oauth-login-url",
            &format!("{login}/"),
        ],
    );
    let ada = server.login(ADMIN);
    let (code, body) = ada.post(
        "/api/oauth/mailchimp",
        serde_json::json!({"name": "mc", "accept_privacy_terms": true}),
    );
    assert_eq!(code, 200, "{body}");
    let authorize = url::Url::parse(body["authorize_url"].as_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let page = ada.send(ada.request(
        "GET",
        &format!("/oauth/mailchimp/callback?code=the-code&state={state}"),
    ));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|l| l.starts_with("POST /oauth2/token")),
        "the token request: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("/elsewhere")),
        "the redirect was followed: {seen:?}"
    );
    assert_eq!(page.status, 502, "{}", page.text);
    assert!(page.text.contains("redirect"), "{}", page.text);
    let (_, list) = ada.get("/api/connections");
    assert_eq!(list, serde_json::json!([]), "no connection was added");
}

/// A table the profile source's role can also read: what a predicate must not reach.
const SECRET: &str = "TOP-SECRET-ROW-7f3a";

/// A PostgreSQL source `crm` over `crm.customers` holding `profiles`, added by the admin on
/// the command line, whose role can also read `hidden.secrets` (a role granted more than the
/// profiles: the audit's setting).
fn pg_source_with_a_secret_beside(s: &Session, profiles: &[Profile]) -> TestDb {
    let db = TestDb::create("hardening");
    write_pg_table(&db, profiles);
    db.client()
        .batch_execute(&format!(
            "CREATE SCHEMA hidden; CREATE TABLE hidden.secrets (secret text);
             INSERT INTO hidden.secrets VALUES ('{SECRET}')"
        ))
        .unwrap();
    let url = db.reader(
        "GRANT USAGE ON SCHEMA crm, hidden TO {role};
         GRANT SELECT ON crm.customers, hidden.secrets TO {role}",
    );
    s.set_env("CRM_URL", &url);
    s.ok(&[
        "profiles",
        "source",
        "add",
        "crm",
        "--postgres",
        "env:CRM_URL",
        "--table",
        "crm.customers",
        "--key",
        "customer_id",
    ]);
    db
}

/// The audit's finding 2: a predicate turned `standard_conforming_strings` off with
/// `set_config()` while its count ran, so that the sample query, read under the changed
/// setting, ended a string elsewhere and let a `UNION` over another table in: a contributor's
/// preview showed a row of `hidden.secrets`. Such a predicate is refused, saying why, and no
/// answer ever shows the other table's row.
#[test]
fn a_postgres_predicate_cannot_change_how_the_next_query_is_read() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    let _db = pg_source_with_a_secret_beside(&s, &[ana(), helene()]);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let carl = server.login(CONTRIBUTOR);
    // Read with standard strings (as the scanner does), 'x\'' ) UNION … -- ' is one string;
    // with them off, the string ends at the second quote and the UNION is part of the query.
    let attack = "set_config('standard_conforming_strings', 'off', true) IS NOT NULL \
         AND email = 'x\\'' ) UNION SELECT secret, secret, secret, secret, secret, secret, NULL, NULL \
         FROM hidden.secrets WHERE (true -- '";
    let mut seen = String::new();
    let (code, body) = carl.post(
        "/api/segments",
        serde_json::json!({"name": "leak", "predicate": attack, "source": "crm"}),
    );
    seen.push_str(&body.to_string());
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"], "invalid", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("set_config()"), "{message}");
    assert!(message.contains("segment \"leak\" refused"), "{message}");
    let (code, body) = carl.get("/api/segments/leak?sample=5");
    seen.push_str(&body.to_string());
    assert_eq!(code, 404, "nothing was saved: {body}");
    // The same through the change of an existing segment.
    let (code, body) = carl.post(
        "/api/segments",
        serde_json::json!({"name": "fr", "predicate": "country = 'FR'", "source": "crm"}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = carl.put("/api/segments/fr", serde_json::json!({"predicate": attack}));
    seen.push_str(&body.to_string());
    assert_eq!(code, 422, "{body}");
    let (code, body) = carl.get("/api/segments/fr?sample=5");
    seen.push_str(&body.to_string());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["predicate"], "country = 'FR'", "{body}");
    assert!(
        !seen.contains(SECRET),
        "another table's row was shown: {seen}"
    );
}

/// Peak resident memory of process `pid`, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

/// The audit's finding 3, memory: a recursive query built values of 128 MiB, and a few of
/// them at once took the server to nearly 1 GB. A predicate may make values of twice the
/// longest row of the profiles (at least 4 MiB): one that builds more is stopped with a clear
/// error, and the server's memory stays small.
#[test]
fn a_predicate_that_builds_a_huge_value_is_stopped_before_it_takes_the_memory() {
    use serde_json::json;
    let sim = Sim::start();
    let s = crate::api::installation(&sim, &people(20));
    let server = Server::start(&s, &[]);
    let carl = server.login(CONTRIBUTOR);
    let before = peak_rss_mib(server.pid());
    // Doubles a string until it is 100 MB long (it would end at 128 MiB).
    let huge = "(WITH RECURSIVE r(x) AS (SELECT 'x' UNION ALL SELECT x || x FROM r \
                WHERE length(x) < 100000000) SELECT max(length(x)) FROM r) > 0";
    for _ in 0..3 {
        let (code, body) = carl.post("/api/segments", json!({"name": "huge", "predicate": huge}));
        assert_eq!(code, 422, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("made a value longer than 4 MiB"),
            "{message}"
        );
    }
    let after = peak_rss_mib(server.pid());
    assert!(
        after < before + 64.0,
        "the server's peak memory went from {before:.0} to {after:.0} MiB"
    );
    // Ordinary predicates work as before.
    let (code, body) = carl.post(
        "/api/segments",
        json!({"name": "long_names", "predicate": "length(first_name || ' ' || last_name) > 3"}),
    );
    assert_eq!(code, 201, "{body}");
}

/// The audit's finding 3, threads: the API ran predicates on the threads that serve every
/// request, so two slow ones made `/healthz` wait seconds. Predicates run on threads of their
/// own: while more slow predicates than the server has worker threads run, `/healthz`
/// answers at once.
#[test]
fn health_answers_while_slow_predicates_run() {
    use serde_json::json;
    let sim = Sim::start();
    let s = crate::api::installation(&sim, &people(20));
    let server = Server::start(&s, &[]);
    // Runs until the check's time limit (5 s) stops it.
    let slow = "(WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) \
                SELECT count(*) FROM c WHERE n < 0) = 0";
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let slow_requests: Vec<_> = (0..workers)
        .map(|i| {
            let carl = server.login(CONTRIBUTOR);
            std::thread::spawn(move || {
                carl.post(
                    "/api/segments",
                    json!({"name": format!("slow{i}"), "predicate": slow}),
                )
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let anon = server.anonymous();
    let started = std::time::Instant::now();
    let health = anon.send(anon.request("GET", "/healthz"));
    let took = started.elapsed();
    assert_eq!(health.status, 200, "{}", health.text);
    assert!(
        took < std::time::Duration::from_secs(2),
        "/healthz took {took:?} while predicates ran"
    );
    for r in slow_requests {
        let (code, body) = r.join().unwrap();
        // Stopped by the time limit, or told to come back when every slot was taken.
        assert!(code == 422 || code == 503, "{body}");
        if code == 422 {
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("longer than 5s"), "{message}");
        }
    }
}

/// Whether another session can take advisory lock `key` on `db` at once (and gives it back).
fn lock_is_free(db: &TestDb, key: i64) -> bool {
    let mut c = db.client();
    let taken: bool = c
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .unwrap()
        .get(0);
    if taken {
        c.execute("SELECT pg_advisory_unlock($1)", &[&key]).unwrap();
    }
    taken
}

/// The audit's finding 12: a predicate's `pg_advisory_lock()` stayed held by an idle pooled
/// connection after the rollback, blocking other work. Predicates that take locks or reach
/// outside the profiles are refused, saying which function, and nothing stays held; the
/// answer that adds a segment says what else the source's role can read.
#[test]
fn a_postgres_predicate_leaves_no_lock_behind() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    let db = pg_source_with_a_secret_beside(&s, &[ana(), helene()]);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let carl = server.login(CONTRIBUTOR);
    for (i, (predicate, function)) in [
        (
            "pg_advisory_lock(4242) IS NULL OR true",
            "pg_advisory_lock()",
        ),
        ("pg_try_advisory_lock(4242)", "pg_try_advisory_lock()"),
        (
            "pg_catalog.pg_advisory_lock_shared(4242) IS NOT NULL",
            "pg_advisory_lock_shared()",
        ),
        ("length(pg_read_file('/etc/passwd')) > 0", "pg_read_file()"),
        (
            "EXISTS (SELECT 1 FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int))",
            "dblink()",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, body) = carl.post(
            "/api/segments",
            serde_json::json!({"name": format!("lock{i}"), "predicate": predicate, "source": "crm"}),
        );
        assert_eq!(code, 422, "{predicate}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(function), "{predicate}: {message}");
        assert!(lock_is_free(&db, 4242), "{predicate}: the lock is held");
    }
    // A segment that reads only the profiles is added; the answer names what else the
    // source's role can read.
    let (code, body) = carl.post(
        "/api/segments",
        serde_json::json!({"name": "ro", "predicate": "country = 'RO'", "source": "crm"}),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["count"], 1, "{body}");
    let warnings = body["warnings"].to_string();
    assert!(warnings.contains("hidden.secrets"), "{body}");
    assert!(lock_is_free(&db, 4242));
}

/// The audit's finding 6: a contributor changed the members of an export on a connection
/// kept for admins by changing (or removing) a segment it uses. Changing or removing a
/// segment needs access to every export that uses it; the refusal names those exports, in
/// the API and in the web UI, and nothing changes.
#[test]
fn contributors_cannot_change_segments_of_exports_kept_for_admins() {
    use serde_json::json;
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = crate::api::installation(&sim, &people(20));
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let (code, body) = ada.post(
        "/api/connections",
        json!({"name": "private", "api_key": sim.key, "base_url": sim.api_url(), "accept_privacy_terms": true}),
    );
    assert_eq!(code, 201, "{body}");
    let mut export = export_body("private-export", &list);
    export["connection"] = json!("private");
    let (code, body) = ada.post("/api/exports", export);
    assert_eq!(code, 201, "{body}");

    let carl = server.login(CONTRIBUTOR);
    let refused = |code: u16, body: &serde_json::Value| {
        assert_eq!(code, 403, "{body}");
        assert_eq!(body["error"], "forbidden", "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("\"private-export\""), "{message}");
        assert!(message.contains("romania"), "{message}");
    };
    let (code, body) = carl.put(
        "/api/segments/romania",
        json!({"predicate": "country = 'FR'"}),
    );
    refused(code, &body);
    let (code, body) = carl.delete("/api/segments/romania");
    refused(code, &body);
    // The web UI says the same.
    let csrf = carl.csrf.clone().unwrap_or_default();
    for (path, form) in [
        (
            "/segments/romania",
            vec![("csrf", csrf.as_str()), ("predicate", "country = 'FR'")],
        ),
        ("/segments/romania/remove", vec![("csrf", csrf.as_str())]),
    ] {
        let page = carl.send(carl.request("POST", path).form(&form));
        assert_eq!(page.status, 403, "{path}: {}", page.text);
        assert!(
            page.text
                .replace("&quot;", "\"")
                .contains("\"private-export\""),
            "{path}: {}",
            page.text
        );
    }
    let (code, body) = carl.get("/api/segments/romania");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["predicate"], "country = 'RO'", "unchanged: {body}");

    // A segment no admin-only export uses stays the contributor's to change; an admin may
    // change any (the export then sends the new members).
    let (code, body) = carl.post(
        "/api/segments",
        json!({"name": "fr", "predicate": "country = 'FR'"}),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = carl.put("/api/segments/fr", json!({"predicate": "country = 'DE'"}));
    assert_eq!(code, 200, "{body}");
    let (code, body) = ada.put(
        "/api/segments/romania",
        json!({"predicate": "country = 'FR'"}),
    );
    assert_eq!(code, 200, "{body}");
}

/// A server on 127.0.0.1 that answers every request with `status` and `body` (JSON); its
/// URL.
fn answering_server(status: &'static str, body: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

/// What an internal service might say; never to be repeated by segsync.
const INTERNAL: &str = "internal-db-password-hunter2";

/// The audit's finding 10, where requests go: the alert webhook accepted link-local and
/// private addresses (`169.254.169.254`, `10.x`) and a connection's base URL any loopback
/// port, where the API key was then sent. An installation sends requests to public
/// addresses only, unless it allows private ones (`--allow-private-targets`, which the
/// tests use to reach the simulator); the refusal says which address and how to allow it.
#[test]
fn requests_go_to_public_addresses_unless_the_installation_allows_private_ones() {
    use serde_json::json;
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    s.forbid_private_targets();
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let mut webhooks = vec![
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.7/hook", "private"),
        ("https://[fd00::7]/hook", "private"),
        ("https://[::ffff:169.254.169.254]/hook", "link-local"),
        ("http://localhost:9/hook", "loopback"),
    ];
    // A name (not an address) that resolves to a loopback or private address, if this
    // machine's name does.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim().to_string();
    let by_name = format!("http://{host}:9/hook");
    let resolves_privately = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 9))
        .map(|mut a| {
            a.all(|a| {
                a.ip().is_loopback() || matches!(a.ip(), std::net::IpAddr::V4(v) if v.is_private())
            })
        })
        .unwrap_or(false);
    if resolves_privately && host != "localhost" {
        webhooks.push((by_name.as_str(), "resolves to"));
    }
    for (url, what) in &webhooks {
        let (code, body) = ada.put("/api/settings/alerts", json!({ "webhook_url": url }));
        assert_eq!(code, 422, "{url}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(what), "{url}: {message}");
        assert!(
            message.contains("--allow-private-targets"),
            "{url}: {message}"
        );
    }
    let (_, settings) = ada.get("/api/settings/alerts");
    assert!(
        settings["webhook_url"].is_null(),
        "nothing saved: {settings}"
    );

    // A connection whose base URL is the simulator on 127.0.0.1, or the cloud's metadata
    // address: refused before the key is sent anywhere.
    for (base, what) in [
        (sim.api_url(), "loopback"),
        ("https://169.254.169.254/3.0".to_string(), "link-local"),
    ] {
        let (code, body) = ada.post(
            "/api/connections",
            json!({"name": "mc", "api_key": sim.key, "base_url": base, "accept_privacy_terms": true}),
        );
        assert_eq!(code, 422, "{base}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(what), "{base}: {message}");
        assert!(
            message.contains("--allow-private-targets"),
            "{base}: {message}"
        );
    }
    assert_eq!(sim.counters().requests, 0, "nothing reached the simulator");
    // The command line says the same.
    let args = [
        "connection",
        "add",
        "mc",
        "--api-key-env",
        KEY_ENV,
        "--base-url",
        &s.api_url,
        "--accept-privacy-terms",
    ];
    let mut c = s.command(&args);
    c.env(KEY_ENV, &sim.key);
    let out = s.run_command(&args, c);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        out.stderr.contains("--allow-private-targets"),
        "{}",
        out.text()
    );
    assert_eq!(sim.counters().requests, 0, "nothing reached the simulator");
}

/// The audit's finding 10, what comes back: the test alert repeated 200 characters of the
/// webhook's answer, and a connection's check what its base URL answered. Neither repeats an
/// answer's body: they say the status and that the body is not shown.
#[test]
fn answers_of_other_servers_are_never_repeated() {
    use serde_json::json;
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    // Private targets allowed (the tests' setting): the servers below are on 127.0.0.1.
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let body = r#"{"title":"Internal","detail":"internal-db-password-hunter2","secret":"internal-db-password-hunter2"}"#;
    let webhook = answering_server("500 Internal Server Error", body);
    let (code, settings) = ada.put(
        "/api/settings/alerts",
        json!({ "webhook_url": format!("{webhook}/hook") }),
    );
    assert_eq!(code, 200, "{settings}");
    let (code, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["webhook"]["status"], "failed", "{report}");
    let message = report["webhook"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("500"), "{message}");
    assert!(message.contains("not shown"), "{message}");

    let fake = answering_server("400 Bad Request", body);
    let (code, answer) = ada.post(
        "/api/connections",
        json!({"name": "mc", "api_key": sim.key, "base_url": format!("{fake}/3.0"), "accept_privacy_terms": true}),
    );
    assert_eq!(code, 502, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("400"), "{message}");
    assert!(message.contains("not shown"), "{message}");
    for text in [report.to_string(), answer.to_string(), server.output()] {
        assert!(!text.contains(INTERNAL), "an answer was repeated: {text}");
    }
}

/// `POST /api/login` as a script would send it.
fn try_login(c: &Client, name: &str, password: &str) -> Answer {
    c.send(
        c.request("POST", "/api/login")
            .json(&serde_json::json!({"name": name, "password": password})),
    )
}

/// `Retry-After` in whole seconds.
fn retry_after(a: &Answer) -> u64 {
    header(a, "retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After: {:?}", a.headers))
}

/// Password guessing is slowed down per account: after 5 wrong passwords, even the right
/// one is refused for a while (429 with Retry-After), in the API and in the login form;
/// other accounts are not held up.
#[test]
fn after_five_wrong_passwords_even_the_right_one_is_refused_for_a_while() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let anon = server.anonymous();
    for i in 0..5 {
        let a = try_login(&anon, ADMIN.0, &format!("wrong-password-{i}"));
        assert_eq!(a.status, 401, "attempt {i}: {}", a.text);
        assert_eq!(a.json()["message"], "wrong user name or password");
    }
    let a = try_login(&anon, ADMIN.0, ADMIN.1);
    assert_eq!(a.status, 429, "the right password while locked: {}", a.text);
    let wait = retry_after(&a);
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert_eq!(a.json()["error"], "too_many_attempts", "{}", a.text);
    assert_eq!(
        a.json()["message"],
        format!("too many failed logins for \"ada\": try again in {wait} seconds"),
    );

    // The web UI's login form says the same, with the same status.
    let page = anon.send(
        anon.request("POST", "/login")
            .form(&[("name", ADMIN.0), ("password", ADMIN.1)]),
    );
    assert_eq!(page.status, 429, "{}", page.text);
    assert!(retry_after(&page) >= 1);
    assert!(
        page.text
            .contains("Too many failed logins for &quot;ada&quot;: try again in"),
        "{}",
        page.text
    );
    assert!(header(&page, "set-cookie").is_empty(), "no session");

    // Another account from the same address is not held up.
    let carl = server.login(CONTRIBUTOR);
    assert_eq!(carl.get("/api/me").0, 200);
}

/// Many names guessed from one address: past 20 failures, that address waits, whatever
/// name it tries next.
#[test]
fn twenty_failed_logins_from_one_address_make_it_wait() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let anon = server.anonymous();
    for i in 0..20 {
        let a = try_login(&anon, &format!("guess-{i}"), "password-guess");
        assert_eq!(a.status, 401, "attempt {i}: {}", a.text);
    }
    let a = try_login(&anon, CONTRIBUTOR.0, CONTRIBUTOR.1);
    assert_eq!(a.status, 429, "{}", a.text);
    let wait = retry_after(&a);
    assert_eq!(
        a.json()["message"],
        format!("too many failed logins from this address: try again in {wait} seconds"),
    );
}

/// An unknown user name and a known one with a wrong password get the same answer, and are
/// counted alike: nothing in the answers tells which names exist.
#[test]
fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let anon = server.anonymous();
    let same = |known: &Answer, unknown: &Answer, what: &str| {
        assert_eq!(known.status, unknown.status, "{what}");
        let names = |a: &Answer| {
            let mut h: Vec<String> = a
                .headers
                .iter()
                // The body's length differs past the limit: its message names the user.
                .filter(|(k, _)| !["date", "retry-after", "content-length"].contains(&k.as_str()))
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
                .collect();
            h.sort();
            h
        };
        assert_eq!(names(known), names(unknown), "{what}");
    };
    for i in 0..5 {
        let known = try_login(&anon, ADMIN.0, "not-the-password");
        let unknown = try_login(&anon, "nobody-at-all", "not-the-password");
        same(&known, &unknown, &format!("attempt {i}"));
        assert_eq!(known.status, 401);
        assert_eq!(known.text, unknown.text, "attempt {i}");
    }
    let known = try_login(&anon, ADMIN.0, "not-the-password");
    let unknown = try_login(&anon, "nobody-at-all", "not-the-password");
    same(&known, &unknown, "past the limit");
    assert_eq!(known.status, 429, "{}", known.text);
    // The same words; only the name and the seconds left (the two began apart) differ.
    let words = |a: &Answer, name: &str| {
        a.json()["message"]
            .as_str()
            .unwrap()
            .replace(&format!("\"{name}\""), "NAME")
            .replace(&retry_after(a).to_string(), "N")
    };
    assert_eq!(words(&known, ADMIN.0), words(&unknown, "nobody-at-all"));
    assert_eq!(
        words(&known, ADMIN.0),
        "too many failed logins for NAME: try again in N seconds"
    );
}

/// A client that sends half a request's header, or nothing at all, then hangs, is
/// disconnected once `--header-read-timeout` has passed, and holds nothing up meanwhile.
#[test]
fn a_client_that_sends_half_a_header_is_disconnected_within_the_timeout() {
    use std::time::Duration;
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &["--header-read-timeout", "1"]);
    let mut half = hanging_client(
        &server.url,
        b"GET /healthz HTTP/1.1\r\nHost: segsync\r\nAcc",
    );
    let mut silent = hanging_client(&server.url, b"");
    let anon = server.anonymous();
    assert_eq!(anon.get("/api/me").0, 401, "others are served meanwhile");
    for (what, stream) in [("half a header", &mut half), ("nothing", &mut silent)] {
        let (after, sent) = closed_within(stream, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{what}: still connected after 10 s"));
        assert!(
            after < Duration::from_secs(8),
            "{what}: closed after {after:?}"
        );
        assert!(
            sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
            "{what}: {sent:?}"
        );
    }
}

/// Past `--max-connections`, a further connection waits until one of them closes.
#[test]
fn connections_past_the_cap_wait_for_a_free_slot() {
    use std::time::Duration;
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(
        &s,
        &["--max-connections", "2", "--header-read-timeout", "60"],
    );
    let idle: Vec<_> = (0..2)
        .map(|_| hanging_client(&server.url, b"GET /healthz HTTP/1.1\r\n"))
        .collect();
    // Let the server take both before the next one comes.
    std::thread::sleep(Duration::from_millis(500));
    let mut third = hanging_client(
        &server.url,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).is_none(),
        "a third connection was served beside two"
    );
    drop(idle);
    let (_, answer) =
        closed_within(&mut third, Duration::from_secs(20)).expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Changing one's own password needs the current one (a stolen session alone cannot lock
/// its owner out), and whatever the old password let in goes with it: API tokens and other
/// sessions. An admin setting another user's password needs only to be an admin.
#[test]
fn changing_ones_own_password_needs_the_current_one_and_revokes_tokens_and_sessions() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let carl = server.login(CONTRIBUTOR);
    let other_session = server.login(CONTRIBUTOR);
    let script = server.token_client(CONTRIBUTOR);
    let path = format!("/api/users/{}", CONTRIBUTOR.0);
    const NEW: &str = "a-brand-new-password";

    let (code, body) = carl.patch(&path, serde_json::json!({ "password": NEW }));
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "invalid");
    assert_eq!(
        body["message"],
        "current_password is missing: changing your own password needs the one you log in with now"
    );
    let (code, body) = carl.patch(
        &path,
        serde_json::json!({ "password": NEW, "current_password": "not-my-password" }),
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        body["message"],
        "current_password is wrong: give the password you log in with now"
    );
    assert_eq!(script.get("/api/me").0, 200, "nothing changed yet");
    assert_eq!(
        try_login(&server.anonymous(), CONTRIBUTOR.0, NEW).status,
        401
    );

    let (code, body) = carl.patch(
        &path,
        serde_json::json!({ "password": NEW, "current_password": CONTRIBUTOR.1 }),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = script.get("/api/me");
    assert_eq!(code, 401, "the API token is revoked: {body}");
    assert_eq!(body["message"], "the API token is unknown or revoked");
    assert_eq!(
        other_session.get("/api/me").0,
        401,
        "the other session ended"
    );
    assert_eq!(carl.get("/api/me").0, 401, "this session ended too");
    assert_eq!(
        try_login(&server.anonymous(), CONTRIBUTOR.0, CONTRIBUTOR.1).status,
        401
    );
    let carl = server.login((CONTRIBUTOR.0, NEW));
    assert_eq!(carl.get("/api/me").0, 200);

    // An admin resets another user's password without theirs; that user's tokens go too.
    let vera_script = server.token_client(VIEWER);
    let ada = server.login(ADMIN);
    let (code, body) = ada.patch(
        &format!("/api/users/{}", VIEWER.0),
        serde_json::json!({ "password": "reset-by-the-admin" }),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(vera_script.get("/api/me").0, 401);
    // An admin changing their own password gives theirs like everybody, in the API and in
    // Admin > Users (whose form asks for it on the admin's own row only).
    let (code, body) = ada.patch(
        &format!("/api/users/{}", ADMIN.0),
        serde_json::json!({ "password": NEW }),
    );
    assert_eq!(code, 400, "{body}");
    let page = ada.send(ada.request("GET", "/admin/users"));
    assert_eq!(
        page.text.matches("name=\"current_password\"").count(),
        1,
        "{}",
        page.text
    );
    let (_, audit) = ada.get("/api/audit");
    assert!(
        audit.to_string().contains("1 API token(s) revoked"),
        "{audit}"
    );
}
