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
