//! Audiences: create, read, update, delete, and live stats.

use crate::common;
use serde_json::json;

fn new_list_body(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "contact": {"company": "Ceainaria Veche", "address1": "Str. Republicii 12", "city": "Brasov",
                    "state": "BV", "zip": "500030", "country": "RO"},
        "permission_reminder": "Ati cumparat de la noi.",
        "campaign_defaults": {"from_name": "Ceainaria", "from_email": "stiri@ceainaria.ro",
                              "subject": "Noutati", "language": "ro"},
        "email_type_option": false,
        "double_optin": true,
    })
}

#[tokio::test]
async fn audience_lifecycle_and_stats() {
    let env = common::start().await;
    let created = env.post("/lists", new_list_body("Clienti")).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 10);
    assert_eq!(created.body["double_optin"], true);
    assert_eq!(created.body["stats"]["merge_field_count"], 4);

    let missing = env.post("/lists", json!({"name": "No contact"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["title"], "Invalid Resource");
    let fields: Vec<&str> = missing.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"contact") && fields.contains(&"permission_reminder"),
        "{fields:?}"
    );

    let members = format!("/lists/{id}/members");
    for (email, status) in [
        ("ana@posta.ro", "subscribed"),
        ("ion@posta.ro", "subscribed"),
        ("eva@posta.ro", "unsubscribed"),
        ("dan@posta.ro", "cleaned"),
    ] {
        let a = env
            .post(&members, json!({"email_address": email, "status": status}))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let got = env.get(&format!("/lists/{id}")).await;
    let stats = &got.body["stats"];
    assert_eq!(
        (
            stats["member_count"].as_u64(),
            stats["unsubscribe_count"].as_u64(),
            stats["cleaned_count"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );

    let patched = env
        .patch(
            &format!("/lists/{id}"),
            json!({"name": "Clienti fideli", "double_optin": false}),
        )
        .await;
    assert_eq!(
        (
            patched.body["name"].as_str(),
            patched.body["double_optin"].as_bool()
        ),
        (Some("Clienti fideli"), Some(false))
    );

    let all = env.get("/lists").await;
    assert_eq!(all.body["total_items"], 2);

    assert_eq!(env.delete(&format!("/lists/{id}")).await.status, 204);
    assert_eq!(env.get(&format!("/lists/{id}")).await.status, 404);
}
