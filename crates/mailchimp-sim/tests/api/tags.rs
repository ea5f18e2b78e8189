//! Tags and segments: a tag is a static segment; batch add and remove of at most 500 each.

use crate::common;
use serde_json::json;

#[tokio::test]
async fn tags_are_static_segments() {
    let env = common::start().await;
    let segs = format!("/lists/{}/segments", env.list_id);
    for e in ["ana@posta.ro", "ion@posta.ro", "eva@posta.ro"] {
        env.add_member(e, "subscribed").await;
    }
    let tag = env
        .post(
            &segs,
            json!({"name": "Clienti VIP", "static_segment": ["ana@posta.ro", "stranger@posta.ro"]}),
        )
        .await;
    assert_eq!(tag.status, 200, "{}", tag.body);
    assert_eq!(
        (tag.body["type"].as_str(), tag.body["member_count"].as_u64()),
        (Some("static"), Some(1)),
        "addresses not in the audience are ignored"
    );
    let id = tag.body["id"].as_u64().unwrap();
    let saved = env
        .post(
            &segs,
            json!({"name": "Recent", "options": {"match": "any", "conditions": []}}),
        )
        .await;
    assert_eq!(saved.body["type"], "saved");
    assert_eq!(
        env.post(
            &segs,
            json!({"name": "Both", "static_segment": [], "options": {}})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        env.post(&segs, json!({"name": "clienti vip", "static_segment": []}))
            .await
            .status,
        400,
        "names are unique"
    );

    assert_eq!(
        env.get(&format!("{segs}?type=static")).await.body["total_items"],
        1
    );
    assert_eq!(
        env.get(&format!("{segs}?type=saved")).await.body["total_items"],
        1
    );
    assert_eq!(env.get(&segs).await.body["total_items"], 2);

    let batch = env.post(&format!("{segs}/{id}"), json!({"members_to_add": ["ion@posta.ro", "eva@posta.ro"], "members_to_remove": ["ana@posta.ro", "nobody@posta.ro"]})).await;
    assert_eq!(batch.status, 200);
    assert_eq!(
        (
            batch.body["total_added"].as_u64(),
            batch.body["total_removed"].as_u64(),
            batch.body["error_count"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        batch.body["errors"][0]["email_addresses"],
        json!(["nobody@posta.ro"])
    );
    let members = env.get(&format!("{segs}/{id}/members")).await;
    let mut emails: Vec<&str> = members.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email_address"].as_str().unwrap())
        .collect();
    emails.sort();
    assert_eq!(emails, vec!["eva@posta.ro", "ion@posta.ro"]);

    let too_many: Vec<String> = (0..501).map(|i| format!("m{i}@posta.ro")).collect();
    let r = env
        .post(&format!("{segs}/{id}"), json!({"members_to_add": too_many}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["title"], "Invalid Resource");
    assert_eq!(r.body["detail"], "Maximum allowed member items exceeded, please provide at most 500 items in members_to_add field or members_to_remove field");

    let renamed = env
        .patch(&format!("{segs}/{id}"), json!({"name": "VIP"}))
        .await;
    assert_eq!(renamed.body["name"], "VIP");
    let reset = env
        .patch(&format!("{segs}/{id}"), json!({"static_segment": []}))
        .await;
    assert_eq!(
        reset.body["member_count"], 0,
        "an empty static_segment removes everyone"
    );

    let one = env
        .post(
            &format!("{segs}/{id}/members"),
            json!({"email_address": "ana@posta.ro"}),
        )
        .await;
    assert_eq!(one.status, 200);
    let hash = mailchimp_sim::subscriber_hash("ana@posta.ro");
    assert_eq!(
        env.delete(&format!("{segs}/{id}/members/{hash}"))
            .await
            .status,
        204
    );
    assert_eq!(
        env.delete(&format!("{segs}/{id}/members/{hash}"))
            .await
            .status,
        404
    );

    assert_eq!(env.delete(&format!("{segs}/{id}")).await.status, 204);
    assert_eq!(env.get(&format!("{segs}/{id}")).await.status, 404);
}

#[tokio::test]
async fn member_tags_and_tag_search() {
    let env = common::start().await;
    let hash = env.add_member("ana@posta.ro", "subscribed").await;
    let tags_path = format!("{}/{hash}/tags", env.members_path());
    let r = env.post(&tags_path, json!({"tags": [{"name": "Newsletter RO", "status": "active"}, {"name": "Newsletter EN", "status": "active"}]})).await;
    assert_eq!((r.status, r.body.is_null()), (204, true));
    let r = env
        .post(
            &tags_path,
            json!({"tags": [{"name": "Newsletter EN", "status": "inactive"}], "is_syncing": true}),
        )
        .await;
    assert_eq!(r.status, 204);
    let got = env.get(&tags_path).await;
    assert_eq!(got.body["total_items"], 1);
    assert_eq!(got.body["tags"][0]["name"], "Newsletter RO");
    assert!(got.body["tags"][0]["date_added"]
        .as_str()
        .is_some_and(|d| d.ends_with("+00:00")));
    let member = env.get(&format!("{}/{hash}", env.members_path())).await;
    assert_eq!(member.body["tags_count"], 1);

    let unknown = format!(
        "{}/{}/tags",
        env.members_path(),
        mailchimp_sim::subscriber_hash("nobody@posta.ro")
    );
    assert_eq!(
        env.post(
            &unknown,
            json!({"tags": [{"name": "X", "status": "active"}]})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        env.post(&tags_path, json!({"tags": [{"name": "X", "status": "on"}]}))
            .await
            .status,
        400
    );

    let search = env
        .get(&format!(
            "/lists/{}/tag-search?name=newsletter",
            env.list_id
        ))
        .await;
    assert_eq!(
        search.body["total_items"], 2,
        "both tags exist even if one is no longer on the member"
    );
    let none = env
        .get(&format!("/lists/{}/tag-search?name=zzz", env.list_id))
        .await;
    assert_eq!(none.body["total_items"], 0);
}
