//! The API contract (issue 15): whoever refuses a request under `/api` (a handler, the
//! extractor of its body or parameters, the router), the answer is the one JSON error shape
//! `{error, message}` with the status the OpenAPI document lists; and the document lists 401
//! on every operation that needs credentials. (`scripts/api-contract.sh` checks every
//! operation against the document with generated requests.)

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;

/// `a` is the JSON error shape with `status` and the code `code`; its message.
fn problem(what: &str, a: &Answer, status: u16, code: &str) -> String {
    assert_eq!(a.status, status, "{what}: {}", a.text);
    let content_type = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(content_type, "application/json", "{what}: {}", a.text);
    let body = a.json();
    assert_eq!(body["error"], code, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or("").to_string();
    assert!(!message.is_empty(), "{what}: a refusal says why: {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "{what}: {{error, message}}: {body}"
    );
    message
}

#[test]
fn refusals_of_bodies_parameters_and_routes_answer_the_json_error_shape() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    let post_segment = |content_type: Option<&str>, body: &str| {
        let mut r = ada.request("POST", "/api/segments").body(body.to_string());
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        ada.send(r)
    };
    let json_type = Some("application/json");

    let m = problem(
        "bad JSON",
        &post_segment(json_type, "{\"name\": "),
        400,
        "invalid",
    );
    assert!(m.contains("JSON"), "{m}");
    problem("no body", &post_segment(json_type, ""), 400, "invalid");
    let m = problem(
        "no content type",
        &post_segment(None, ""),
        415,
        "unsupported_media_type",
    );
    assert!(m.contains("application/json"), "{m}");
    problem(
        "another content type",
        &post_segment(
            Some("text/plain"),
            "{\"name\": \"a\", \"predicate\": \"1 = 1\"}",
        ),
        415,
        "unsupported_media_type",
    );
    let m = problem(
        "a field of another type",
        &post_segment(json_type, "{\"name\": 1, \"predicate\": \"1 = 1\"}"),
        422,
        "invalid",
    );
    assert!(m.contains("name"), "the message names the field: {m}");
    problem(
        "a missing field",
        &post_segment(json_type, "{\"name\": \"a\"}"),
        422,
        "invalid",
    );
    // serde alone would read a struct from an array of its fields.
    let m = problem(
        "an array for an object",
        &post_segment(json_type, "[\"a\", \"1 = 1\"]"),
        422,
        "invalid",
    );
    assert!(m.contains("object"), "{m}");
    let big = format!(
        "{{\"name\": \"a\", \"predicate\": \"{}\"}}",
        "x".repeat(3 << 20)
    );
    let a = post_segment(json_type, &big);
    problem("over the body limit", &a, 413, "too_large");
    // The unread rest of the body leaves the connection unusable: the client is told so.
    assert_eq!(
        a.headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close"),
        "over the body limit"
    );

    let m = problem(
        "a non-numeric run id",
        &ada.send(ada.request("GET", "/api/runs/abc")),
        400,
        "invalid",
    );
    assert!(m.contains("abc"), "{m}");
    problem(
        "a non-numeric token id",
        &ada.send(ada.request("DELETE", "/api/tokens/x")),
        400,
        "invalid",
    );
    problem(
        "a query parameter of another type",
        &ada.send(ada.request("GET", "/api/runs?limit=many")),
        400,
        "invalid",
    );
    problem(
        "no such route",
        &ada.send(ada.request("GET", "/api/no-such-thing")),
        404,
        "not_found",
    );
    let a = ada.send(ada.request("DELETE", "/api/runs"));
    problem("another method", &a, 405, "method_not_allowed");
    let allow = a.headers.get("allow").and_then(|v| v.to_str().ok());
    assert!(allow.is_some_and(|v| v.contains("GET")), "{allow:?}");

    // Credentials are checked first: without them, 401 whatever else is wrong.
    let anon = server.anonymous();
    problem(
        "anonymous, bad JSON",
        &anon.send(
            anon.request("POST", "/api/segments")
                .header("content-type", "application/json")
                .body("{"),
        ),
        401,
        "unauthenticated",
    );
    problem(
        "anonymous, a non-numeric run id",
        &anon.send(anon.request("GET", "/api/runs/abc")),
        401,
        "unauthenticated",
    );

    // A whole number written as JSON writes it (1000.0 is 1000) is taken as an integer.
    let (code, body) = ada.put(
        "/api/settings/alerts",
        json!({"email_to": ["ops@segsync.dev"],
               "smtp": {"host": "localhost", "from": "alerts@segsync.dev", "port": 2525.0, "starttls": false}}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["smtp"]["port"], 2525);
    let (code, body) = ada.put(
        "/api/settings/alerts",
        json!({"smtp": {"host": "localhost", "from": "alerts@segsync.dev", "port": 25.5}}),
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (422, Some("invalid")),
        "{body}"
    );
}

/// Every operation of the document that needs credentials lists 401, every refusal it lists
/// has the error shape as its JSON body, and only logging in and out need no credentials.
#[test]
fn the_document_lists_401_on_every_operation_that_needs_credentials() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let (code, doc) = server.anonymous().get("/api/openapi.json");
    assert_eq!(code, 200);
    assert_eq!(doc["security"], json!([{"token": []}, {"session": []}]));
    let mut public = BTreeSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            operations += 1;
            let what = format!("{} {path}", method.to_uppercase());
            let responses = op["responses"].as_object().expect("responses");
            if op.get("security") == Some(&json!([])) {
                public.insert(what.clone());
                assert!(
                    !responses.contains_key("401") || what == "POST /api/login",
                    "{what}"
                );
            } else {
                assert!(op.get("security").is_none(), "{what}: {}", op["security"]);
                assert!(responses.contains_key("401"), "{what} lists 401");
            }
            assert!(responses.contains_key("500"), "{what} lists 500");
            if path.contains('{') {
                assert!(
                    responses.contains_key("400"),
                    "{what}: a parameter of the wrong type"
                );
                assert!(
                    responses.contains_key("404"),
                    "{what}: nothing by that name"
                );
            }
            let json_body = op["requestBody"]["content"]
                .get("application/json")
                .is_some();
            for status in ["400", "413", "415", "422"] {
                assert!(
                    !json_body || responses.contains_key(status),
                    "{what} takes JSON: lists {status}"
                );
            }
            for (status, response) in responses {
                assert!(
                    !response["description"].as_str().unwrap_or("").is_empty(),
                    "{what} {status}: described"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        Value::from("#/components/schemas/ErrorBody"),
                        "{what} {status}"
                    );
                }
            }
        }
    }
    assert!(operations > 40, "{operations} operations");
    assert_eq!(
        public,
        BTreeSet::from([
            "POST /api/login".to_string(),
            "POST /api/logout".to_string()
        ])
    );

    // And they do: anonymous, every operation without parameters that needs credentials
    // answers 401 in the error shape.
    let anon = server.anonymous();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.contains('{') {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if op.get("security") == Some(&json!([])) {
                continue;
            }
            let a = anon.send(anon.request(&method.to_uppercase(), path));
            problem(
                &format!("anonymous {method} {path}"),
                &a,
                401,
                "unauthenticated",
            );
        }
    }
}
