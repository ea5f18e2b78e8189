//! Merge fields: CRUD, types, tag rules, the per-audience limit, required fields and values.

use crate::common;
use serde_json::json;

#[tokio::test]
async fn merge_field_crud_and_rules() {
    let env = common::start().await;
    let path = format!("/lists/{}/merge-fields", env.list_id);
    let defaults = env.get(&path).await;
    let tags: Vec<&str> = defaults.body["merge_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["FNAME", "LNAME", "ADDRESS", "PHONE"]);

    let tier = env.post(&path, json!({"name": "Tier", "tag": "tier", "type": "dropdown", "options": {"choices": ["Gold", "Silver"]}})).await;
    assert_eq!(tier.status, 200, "{}", tier.body);
    assert_eq!(tier.body["tag"], "TIER");
    let id = tier.body["merge_id"].as_u64().unwrap();
    let auto = env
        .post(&path, json!({"name": "Lifetime value", "type": "number"}))
        .await;
    assert_eq!(auto.body["tag"], format!("MMERGE{}", id + 1));

    let long = env
        .post(
            &path,
            json!({"name": "Too long", "tag": "ELEVENCHARS", "type": "text"}),
        )
        .await;
    assert_eq!(
        (long.status, long.body["errors"][0]["field"].as_str()),
        (400, Some("tag"))
    );
    let bad_type = env
        .post(&path, json!({"name": "Colour", "type": "colour"}))
        .await;
    assert_eq!(bad_type.status, 400);
    let dup = env
        .post(
            &path,
            json!({"name": "Again", "tag": "FNAME", "type": "text"}),
        )
        .await;
    assert_eq!(dup.status, 400);

    let patched = env
        .patch(
            &format!("{path}/{id}"),
            json!({"name": "Loyalty tier", "required": true}),
        )
        .await;
    assert_eq!(
        (
            patched.body["name"].as_str(),
            patched.body["required"].as_bool()
        ),
        (Some("Loyalty tier"), Some(true))
    );
    assert_eq!(
        env.get(&format!("{path}?required=true")).await.body["total_items"],
        1
    );
    assert_eq!(
        env.get(&format!("{path}?type=number")).await.body["total_items"],
        1
    );
    assert_eq!(
        env.patch(&format!("{path}/{id}"), json!({"type": "text"}))
            .await
            .status,
        400,
        "the type is read-only"
    );

    // Values are checked by type, and required fields must be there.
    let members = env.members_path();
    let missing = env
        .post(
            &members,
            json!({"email_address": "ana@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["detail"], "Your merge fields were invalid.");
    assert_eq!(
        missing.body["errors"],
        json!([{"field": "TIER", "message": "Please enter a value"}])
    );
    let wrong = env.post(&members, json!({"email_address": "ana@posta.ro", "status": "subscribed", "merge_fields": {"TIER": "Bronze", "MMERGE6": "a lot"}})).await;
    let fields: Vec<&str> = wrong.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["MMERGE6", "TIER"]);
    let ok = env.post(&members, json!({"email_address": "ana@posta.ro", "status": "subscribed", "merge_fields": {"TIER": "Gold", "MMERGE6": "1250.5", "FNAME": "Ana"}})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["merge_fields"]["MMERGE6"], 1250.5);
    let addr = env
        .patch(
            &format!("{members}/ana@posta.ro"),
            json!({"merge_fields": {"ADDRESS": {"addr1": "Str. Lunga 3", "city": "Brasov"}}}),
        )
        .await;
    assert_eq!(
        (addr.status, addr.body["errors"][0]["message"].as_str()),
        (400, Some("Please enter a complete address"))
    );

    assert_eq!(env.delete(&format!("{path}/{id}")).await.status, 204);
    assert_eq!(env.get(&format!("{path}/{id}")).await.status, 404);
    let after = env.get(&format!("{members}/ana@posta.ro")).await;
    assert!(after.body["merge_fields"].get("TIER").is_none());
}

#[tokio::test]
async fn an_audience_holds_at_most_30_merge_fields() {
    let env = common::start().await;
    let path = format!("/lists/{}/merge-fields", env.list_id);
    for i in 0..26 {
        let r = env
            .post(&path, json!({"name": format!("Field {i}"), "type": "text"}))
            .await;
        assert_eq!(r.status, 200, "field {i}: {}", r.body);
    }
    let r = env
        .post(&path, json!({"name": "One too many", "type": "text"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["detail"],
        "You cannot create more merge fields than 30."
    );
    let stats = env.get(&format!("/lists/{}", env.list_id)).await;
    assert_eq!(stats.body["stats"]["merge_field_count"], 30);
}
