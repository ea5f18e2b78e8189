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
    let script = server.token_client(VIEWER);
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
