//! The batch upsert `POST /lists/{list_id}`: always 200, per-member errors, at most 500.

use crate::common;
use serde_json::json;

#[tokio::test]
async fn creates_updates_and_reports_each_failed_member() {
    let env = common::start().await;
    let path = format!("/lists/{}", env.list_id);
    env.add_member("existing@posta.ro", "subscribed").await;
    let r = env
        .post(&path, json!({"members": [
            {"email_address": "Nou@Posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Radu"}},
            {"email_address": "existing@posta.ro", "status": "subscribed", "merge_fields": {"LNAME": "Vechi"}},
            {"email_address": "fake@example.com", "status": "subscribed"},
            {"email_address": "not an address", "status": "subscribed"},
        ]}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["total_updated"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(1), Some(0), Some(3))
    );
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["email_address"], "existing@posta.ro");
    assert_eq!(errors[0]["error_code"], "ERROR_CONTACT_EXISTS");
    assert_eq!(errors[0]["error"], "existing@posta.ro is already a list member, do you want to update? please provide update_existing:true in the request body");
    assert_eq!(
        errors[1]["error"],
        "fake@example.com looks fake or invalid, please enter a real email address."
    );
    assert_eq!(
        (
            errors[1]["error_code"].as_str(),
            errors[1]["field"].as_str()
        ),
        (Some("ERROR_GENERIC"), Some("email_address"))
    );
    assert_eq!(errors[2]["error"], "Please provide a valid email address.");

    let r = env
        .post(&path, json!({"update_existing": true, "members": [
            {"email_address": "existing@posta.ro", "status": "subscribed", "merge_fields": {"LNAME": "Vechi"}},
        ]}))
        .await;
    assert_eq!(
        (
            r.body["total_updated"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        r.body["updated_members"][0]["merge_fields"]["LNAME"],
        "Vechi"
    );
}

#[tokio::test]
async fn more_than_500_members_are_refused_whole() {
    let env = common::start().await;
    let members: Vec<_> = (0..501)
        .map(|i| json!({"email_address": format!("m{i}@posta.ro"), "status": "subscribed"}))
        .collect();
    let r = env
        .post(
            &format!("/lists/{}", env.list_id),
            json!({"members": members}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["title"], "Invalid Resource");
    assert_eq!(r.body["errors"][0]["field"], "members");
    assert_eq!(
        env.sim.list_view(&env.list_id).unwrap().member_count,
        0,
        "nothing half-applied"
    );
}

#[tokio::test]
async fn tags_sync_tags_and_duplicates() {
    let env = common::start().await;
    let path = format!("/lists/{}", env.list_id);
    let r = env
        .post(&path, json!({"members": [
            {"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["VIP", "Brasov"]},
            {"email_address": "ANA@posta.ro", "status": "subscribed", "tags": ["Other"]},
        ]}))
        .await;
    assert_eq!(
        r.body["error_count"], 1,
        "a duplicate address is refused without skip_duplicate_check"
    );
    let r = env
        .post(
            &format!("{path}?skip_duplicate_check=true"),
            json!({"update_existing": true, "members": [
                {"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["Cluj"]},
                {"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["Ignored"]},
            ]}),
        )
        .await;
    assert_eq!(
        (
            r.body["error_count"].as_u64(),
            r.body["total_updated"].as_u64()
        ),
        (Some(0), Some(1)),
        "the first appearance wins"
    );
    let tags = |env: &common::Env| {
        env.sim.list_view(&env.list_id).unwrap().members[0]
            .tags
            .clone()
    };
    assert_eq!(
        tags(&env),
        vec!["Brasov", "Cluj", "VIP"],
        "without sync_tags, tags are added"
    );
    env.post(
        &path,
        json!({"update_existing": true, "sync_tags": true, "members": [
            {"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["Cluj"]},
        ]}),
    )
    .await;
    assert_eq!(tags(&env), vec!["Cluj"], "sync_tags replaces them");
}

#[tokio::test]
async fn compliance_and_required_fields_in_a_batch() {
    let env = common::start().await;
    let path = format!("/lists/{}", env.list_id);
    let required = env
        .post(
            &format!("/lists/{}/merge-fields", env.list_id),
            json!({"name": "City", "tag": "CITY", "type": "text", "required": true}),
        )
        .await;
    assert_eq!(required.status, 200, "{}", required.body);
    env.post(
        &format!("{path}/members?skip_merge_validation=true"),
        json!({"email_address": "left@posta.ro", "status": "unsubscribed"}),
    )
    .await;
    let r = env
        .post(&path, json!({"update_existing": true, "members": [
            {"email_address": "left@posta.ro", "status": "subscribed", "merge_fields": {"CITY": "Iasi"}},
            {"email_address": "nocity@posta.ro", "status": "subscribed"},
        ]}))
        .await;
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["error"], "left@posta.ro is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.");
    assert_eq!(errors[1]["error"], "Your merge fields were invalid.");
    assert_eq!(
        (
            errors[1]["field"].as_str(),
            errors[1]["field_message"].as_str()
        ),
        (Some("CITY"), Some("Please enter a value"))
    );
    let r = env
        .post(
            &format!("{path}?skip_merge_validation=true"),
            json!({"members": [{"email_address": "nocity@posta.ro", "status": "subscribed"}]}),
        )
        .await;
    assert_eq!(r.body["total_created"], 1);

    // The lenient mode some reports describe: the status stays, the rest is updated.
    let mut s = env.sim.settings();
    s.batch_compliance = mailchimp_sim::config::BatchCompliance::Ignore;
    env.sim.set_settings(s).unwrap();
    let r = env
        .post(&path, json!({"update_existing": true, "members": [
            {"email_address": "left@posta.ro", "status": "subscribed", "merge_fields": {"CITY": "Iasi"}},
        ]}))
        .await;
    assert_eq!(r.body["updated_members"][0]["status"], "unsubscribed");
    assert_eq!(r.body["updated_members"][0]["merge_fields"]["CITY"], "Iasi");
}

/// `fields=` shapes a batch answer exactly: the members carry only what it names, nested
/// paths included; naming the member list itself gives whole members.
#[tokio::test]
async fn fields_give_the_batch_answer_its_exact_shape() {
    let env = common::start().await;
    let path = format!("/lists/{}", env.list_id);
    env.add_member("existing@posta.ro", "subscribed").await;
    let body = json!({"update_existing": true, "members": [
        {"email_address": "nou@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Radu"}, "tags": ["vip"]},
        {"email_address": "existing@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Ana", "LNAME": "Vechi"}},
    ]});
    let fields = "new_members.email_address,new_members.tags.name,updated_members.merge_fields.FNAME,total_created";
    let r = env.post(&format!("{path}?fields={fields}"), body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({
            "new_members": [{"email_address": "nou@posta.ro", "tags": [{"name": "vip"}]}],
            "updated_members": [{"merge_fields": {"FNAME": "Ana"}}],
            "total_created": 1,
        })
    );

    let r = env
        .post(
            &format!("{path}?fields=updated_members,total_updated"),
            json!({"update_existing": true, "members": [{"email_address": "existing@posta.ro", "status": "subscribed"}]}),
        )
        .await;
    let member = &r.body["updated_members"][0];
    assert_eq!(
        (
            member["status"].as_str(),
            member["merge_fields"]["LNAME"].as_str()
        ),
        (Some("subscribed"), Some("Vechi"))
    );
    assert!(member["id"].is_string() && member["_links"].is_array());
}
