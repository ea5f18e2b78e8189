//! Profile uploads (`/api/profiles/uploads`): an Excel file of a European locale previewed
//! with its dialect, types, first rows and bad values while the profile store stays as it
//! was; imported on commit (atomic); discarded; for admins only, audited.

use serde_json::{json, Value};

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

fn excel() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/excel-eu.csv"),
    )
    .unwrap()
}

fn upload(c: &Client, query: &str, body: Vec<u8>) -> Answer {
    c.send(
        c.request("POST", &format!("/api/profiles/uploads?{query}"))
            .body(body),
    )
}

fn profile_count(c: &Client) -> Value {
    c.get("/api/profiles").1["count"].clone()
}

#[test]
fn an_upload_is_previewed_without_changing_the_profiles_then_imported() {
    let sim = Sim::start();
    let s = installation(&sim, &people(3));
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);

    let a = upload(&ada, "name=excel-eu.csv&key=Customer%20ID", excel());
    assert_eq!(a.status, 201, "{}", a.text);
    let up = a.json();
    let preview = &up["preview"];
    assert_eq!(
        preview["dialect"],
        json!({"delimiter": ";", "delimiter_detected": true, "bom": true, "line_ending": "crlf",
               "decimal_comma": true, "date_format": "dd/mm/yyyy"})
    );
    assert_eq!(preview["rows"], 18);
    let types: Vec<(String, String)> = preview["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        types.contains(&("Lifetime value".into(), "real".into())),
        "{types:?}"
    );
    assert!(
        types.contains(&("Joined".into(), "date".into())),
        "{types:?}"
    );
    assert_eq!(preview["first_rows"][0][0], "C001");
    assert_eq!(preview["first_rows"][0][4], "1234.5");
    assert_eq!(preview["bad_value_count"], 2);
    assert_eq!(preview["bad_values"][0]["line"], 9);
    assert_eq!(preview["refused"], false);
    // The store is as it was: 3 profiles.
    assert_eq!(profile_count(&ada), 3);

    let id = up["id"].as_str().unwrap();
    let (code, again) = ada.get(&format!("/api/profiles/uploads/{id}"));
    assert_eq!(
        (code, again["file_name"].clone()),
        (200, json!("excel-eu.csv"))
    );
    // Refusing bad values: the preview says the import would be refused.
    let (code, refused) = ada.call(
        "POST",
        &format!("/api/profiles/uploads/{id}/preview?key=Customer%20ID&on_bad_value=refuse"),
        None,
    );
    assert_eq!(
        (code, refused["preview"]["refused"].clone()),
        (200, json!(true)),
        "{refused}"
    );
    let (code, failed) = ada.call("POST", &format!("/api/profiles/uploads/{id}/commit"), None);
    assert_eq!(code, 422, "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("excel-eu.csv: 2 values"),
        "{failed}"
    );
    assert_eq!(profile_count(&ada), 3);

    ada.call(
        "POST",
        &format!("/api/profiles/uploads/{id}/preview?key=Customer%20ID"),
        None,
    );
    let (code, done) = ada.call("POST", &format!("/api/profiles/uploads/{id}/commit"), None);
    assert_eq!((code, done["rows"].clone()), (200, json!(18)), "{done}");
    assert_eq!(profile_count(&ada), 18);
    let (code, _) = ada.get(&format!("/api/profiles/uploads/{id}"));
    assert_eq!(code, 404);
    let (_, audit) = ada.get("/api/audit");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"profiles.upload"), "{actions:?}");
    assert!(actions.contains(&"profiles.import"), "{actions:?}");
}

#[test]
fn uploads_are_for_admins_and_can_be_discarded() {
    let sim = Sim::start();
    let s = installation(&sim, &people(3));
    let server = Server::start(&s, &[]);
    let ada = server.token_client(ADMIN);
    for who in [CONTRIBUTOR, VIEWER] {
        let c = server.token_client(who);
        let a = upload(&c, "name=a.csv&key=Customer%20ID", excel());
        assert_eq!(a.status, 403, "{}", a.text);
    }
    let up = upload(&ada, "name=a.csv&key=nope", excel()).json();
    let id = up["id"].as_str().unwrap().to_string();
    assert!(up["preview"].is_null(), "{up}");
    assert!(up["problem"].as_str().unwrap().contains("nope"), "{up}");
    let con = server.token_client(CONTRIBUTOR);
    assert_eq!(
        con.call("POST", &format!("/api/profiles/uploads/{id}/commit"), None)
            .0,
        403
    );
    assert_eq!(con.delete(&format!("/api/profiles/uploads/{id}")).0, 403);
    assert_eq!(ada.delete(&format!("/api/profiles/uploads/{id}")).0, 204);
    assert_eq!(ada.delete(&format!("/api/profiles/uploads/{id}")).0, 404);
    assert_eq!(ada.delete("/api/profiles/uploads/..%2F..%2Fstate").0, 404);
    // No name and no format: a clear refusal, nothing kept.
    let a = upload(&ada, "key=x", b"a,b\n1,2\n".to_vec());
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("csv, ndjson or parquet"), "{}", a.text);
    assert_eq!(profile_count(&ada), 3);
}
