//! Members: create, upsert, update, archive, permanent deletion, paging and filters, and the
//! compliance rules that protect a contact's consent.

use crate::common;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn post_creates_and_refuses_an_existing_member() {
    let env = common::start().await;
    let path = env.members_path();
    let a = env.post(&path, json!({"email_address": "Ana.Pop@Posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Ana"}})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["id"],
        mailchimp_sim::subscriber_hash("ana.pop@posta.ro")
    );
    assert_eq!(a.body["status"], "subscribed");
    assert_eq!(a.body["merge_fields"]["FNAME"], "Ana");

    let again = env
        .post(
            &path,
            json!({"email_address": "ana.pop@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["title"], "Member Exists");
    assert_eq!(
        again.body["detail"],
        "ana.pop@posta.ro is already a list member. Use PUT to insert or update list members."
    );

    let no_status = env
        .post(&path, json!({"email_address": "ion@posta.ro"}))
        .await;
    assert_eq!(
        (
            no_status.status,
            no_status.body["errors"][0]["field"].as_str()
        ),
        (400, Some("status"))
    );
}

#[tokio::test]
async fn put_upserts_with_status_if_new_and_keeps_existing_status() {
    let env = common::start().await;
    let hash = mailchimp_sim::subscriber_hash("ion@posta.ro");
    let path = format!("{}/{hash}", env.members_path());
    let created = env
        .put(
            &path,
            json!({"email_address": "ion@posta.ro", "status_if_new": "pending"}),
        )
        .await;
    assert_eq!(
        (created.status, created.body["status"].as_str()),
        (200, Some("pending"))
    );
    // status_if_new does not touch an existing member.
    let again = env.put(&path, json!({"email_address": "ion@posta.ro", "status_if_new": "subscribed", "merge_fields": {"LNAME": "Ionescu"}})).await;
    assert_eq!(
        (
            again.body["status"].as_str(),
            again.body["merge_fields"]["LNAME"].as_str()
        ),
        (Some("pending"), Some("Ionescu"))
    );
    // Creating needs status_if_new.
    let other = mailchimp_sim::subscriber_hash("eva@posta.ro");
    let refused = env
        .put(
            &format!("{}/{other}", env.members_path()),
            json!({"email_address": "eva@posta.ro"}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.body["errors"][0]["field"].as_str()),
        (400, Some("status_if_new"))
    );
    // The path segment also takes the address itself.
    let by_email = env
        .get(&format!("{}/ION@posta.ro", env.members_path()))
        .await;
    assert_eq!(
        (by_email.status, by_email.body["id"].as_str()),
        (200, Some(hash.as_str()))
    );
}

#[tokio::test]
async fn patch_updates_and_unknown_members_are_404() {
    let env = common::start().await;
    let hash = env.add_member("dan@posta.ro", "subscribed").await;
    let path = format!("{}/{hash}", env.members_path());
    let a = env
        .patch(
            &path,
            json!({"merge_fields": {"FNAME": "Dan"}, "vip": true}),
        )
        .await;
    assert_eq!(
        (
            a.body["merge_fields"]["FNAME"].as_str(),
            a.body["vip"].as_bool()
        ),
        (Some("Dan"), Some(true))
    );
    let transactional = env.patch(&path, json!({"status": "transactional"})).await;
    assert_eq!(
        transactional.status, 400,
        "PATCH takes no transactional status"
    );
    let missing = env
        .patch(
            &format!(
                "{}/{}",
                env.members_path(),
                mailchimp_sim::subscriber_hash("nobody@posta.ro")
            ),
            json!({"vip": true}),
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn unsubscribed_and_cleaned_members_are_never_resubscribed() {
    let env = common::start().await;
    let path = env.members_path();
    let unsub = env.add_member("eva@posta.ro", "subscribed").await;
    let a = env
        .patch(
            &format!("{path}/{unsub}"),
            json!({"status": "unsubscribed"}),
        )
        .await;
    assert_eq!(a.body["status"], "unsubscribed");
    for body in [
        json!({"status": "subscribed"}),
        json!({"email_address": "eva@posta.ro", "status": "subscribed", "status_if_new": "subscribed"}),
    ] {
        let method = if body.get("email_address").is_some() {
            Method::PUT
        } else {
            Method::PATCH
        };
        let r = env
            .call(method, &format!("{path}/{unsub}"), Some(body))
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["title"], "Member In Compliance State");
        assert_eq!(r.body["detail"], "eva@posta.ro is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.");
    }
    // A re-opt-in through pending is allowed, as on Mailchimp.
    let pending = env
        .patch(&format!("{path}/{unsub}"), json!({"status": "pending"}))
        .await;
    assert_eq!(pending.body["status"], "pending");

    // A bounce, which only Mailchimp can cause, through the admin API.
    let cleaned = env.add_member("bounce@posta.ro", "subscribed").await;
    assert_eq!(
        env.admin(
            Method::POST,
            &format!("/lists/{}/members/{cleaned}/status", env.list_id),
            Some(json!({"status": "cleaned"}))
        )
        .await
        .status,
        204
    );
    let r = env
        .patch(
            &format!("{path}/{cleaned}"),
            json!({"status": "subscribed"}),
        )
        .await;
    assert_eq!(r.body["title"], "Member In Compliance State");

    // Archiving does not launder an unsubscribe.
    let gone = env.add_member("gone@posta.ro", "subscribed").await;
    env.patch(&format!("{path}/{gone}"), json!({"status": "unsubscribed"}))
        .await;
    assert_eq!(env.delete(&format!("{path}/{gone}")).await.status, 204);
    let r = env
        .put(
            &format!("{path}/{gone}"),
            json!({"email_address": "gone@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(r.body["title"], "Member In Compliance State");

    let view = env.sim.list_view(&env.list_id).unwrap();
    let status = |e: &str| {
        view.members
            .iter()
            .find(|m| m.email_address == e)
            .unwrap()
            .status
    };
    assert_eq!(status("eva@posta.ro"), mailchimp_sim::Status::Pending);
    assert_eq!(status("bounce@posta.ro"), mailchimp_sim::Status::Cleaned);
    assert_eq!(status("gone@posta.ro"), mailchimp_sim::Status::Archived);
    assert!(env.sim.counters().compliance_refusals >= 4);
}

#[tokio::test]
async fn archive_rules_and_unarchiving() {
    let env = common::start().await;
    let path = env.members_path();
    let sub = env.add_member("sub@posta.ro", "subscribed").await;
    let pend = env.add_member("pend@posta.ro", "pending").await;
    assert_eq!(env.delete(&format!("{path}/{sub}")).await.status, 204);
    for (hash, what) in [(&sub, "archived"), (&pend, "pending")] {
        let r = env.delete(&format!("{path}/{hash}")).await;
        assert_eq!(r.status, 405, "archiving a {what} member");
        assert_eq!(r.body["title"], "Method Not Allowed");
        assert_eq!(r.body["detail"], "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived");
        assert_eq!(r.headers["allow"], "GET, PUT");
    }
    // PUT with only status_if_new leaves an archived member archived; `status` brings it back.
    let stays = env
        .put(
            &format!("{path}/{sub}"),
            json!({"email_address": "sub@posta.ro", "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(stays.body["status"], "archived");
    let back = env
        .put(
            &format!("{path}/{sub}"),
            json!({"email_address": "sub@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(back.body["status"], "subscribed");
}

#[tokio::test]
async fn permanently_deleted_contacts_cannot_come_back() {
    let env = common::start().await;
    let path = env.members_path();
    let hash = env.add_member("forget.me@posta.ro", "subscribed").await;
    let r = env
        .post(
            &format!("{path}/{hash}/actions/delete-permanent"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(env.get(&format!("{path}/{hash}")).await.status, 404);
    for status in ["subscribed", "pending"] {
        let r = env
            .put(
                &format!("{path}/{hash}"),
                json!({"email_address": "forget.me@posta.ro", "status_if_new": status}),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["title"], "Forgotten Email Not Subscribed");
        assert_eq!(r.body["detail"], "forget.me@posta.ro was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.");
    }
    let r = env
        .post(
            &path,
            json!({"email_address": "Forget.Me@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(r.body["title"], "Forgotten Email Not Subscribed");
    assert_eq!(
        env.sim.list_view(&env.list_id).unwrap().forgotten,
        vec![hash]
    );
}

#[tokio::test]
async fn fake_looking_and_invalid_addresses_are_refused() {
    let env = common::start().await;
    let path = env.members_path();
    let fake = env
        .post(
            &path,
            json!({"email_address": "someone@example.com", "status": "subscribed"}),
        )
        .await;
    assert_eq!(fake.status, 400);
    assert_eq!(fake.body["title"], "Invalid Resource");
    assert_eq!(
        fake.body["detail"],
        "someone@example.com looks fake or invalid, please enter a real email address."
    );
    let invalid = env
        .post(
            &path,
            json!({"email_address": "no-at-sign.posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(
        invalid.body["detail"],
        "Please provide a valid email address."
    );
    // The refused domains are a setting.
    let mut s = env.sim.settings();
    s.refused_domains = vec!["posta.ro".into()];
    env.sim.set_settings(s).unwrap();
    let now_refused = env
        .post(
            &path,
            json!({"email_address": "ana@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(now_refused.status, 400);
    let now_fine = env
        .post(
            &path,
            json!({"email_address": "someone@example.com", "status": "subscribed"}),
        )
        .await;
    assert_eq!(now_fine.status, 200);
}

#[tokio::test]
async fn the_account_contact_limit_is_enforced() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.contact_limit = Some(2);
    env.sim.set_settings(s).unwrap();
    env.add_member("a@posta.ro", "subscribed").await;
    let b = env.add_member("b@posta.ro", "subscribed").await;
    let path = env.members_path();
    let r = env
        .post(
            &path,
            json!({"email_address": "c@posta.ro", "status": "subscribed"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["detail"], "c@posta.ro could not be added: the account has reached its limit of 2 contacts. Upgrade your plan or archive contacts to add more.");
    // Archived contacts do not count.
    env.delete(&format!("{path}/{b}")).await;
    assert_eq!(
        env.post(
            &path,
            json!({"email_address": "c@posta.ro", "status": "subscribed"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn paging_filters_and_field_selection() {
    let env = common::start().await;
    let members: Vec<_> = (0..1200).map(|i| json!({"email_address": format!("client{i:04}@posta.ro"), "status": if i % 4 == 0 { "unsubscribed" } else { "subscribed" }})).collect();
    for chunk in members.chunks(500) {
        let r = env
            .post(
                &format!("/lists/{}", env.list_id),
                json!({"members": chunk}),
            )
            .await;
        assert_eq!(r.body["error_count"], 0, "{}", r.body["errors"]);
    }
    let path = env.members_path();
    let big = env.get(&format!("{path}?count=3000")).await;
    assert_eq!(
        big.body["members"].as_array().unwrap().len(),
        1000,
        "count is capped at 1000"
    );
    assert_eq!(big.body["total_items"], 1200);
    let default = env.get(&path).await;
    assert_eq!(default.body["members"].as_array().unwrap().len(), 10);
    let tail = env.get(&format!("{path}?count=1000&offset=1000")).await;
    assert_eq!(tail.body["members"].as_array().unwrap().len(), 200);
    let unsub = env
        .get(&format!("{path}?status=unsubscribed&count=1000"))
        .await;
    assert_eq!(unsub.body["total_items"], 300);
    assert!(unsub.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["status"] == "unsubscribed"));

    let slim = env
        .get(&format!(
            "{path}?count=2&fields=members.id,members.status,total_items"
        ))
        .await;
    assert_eq!(
        slim.body.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["members", "total_items"]
    );
    assert_eq!(slim.body["members"][0].as_object().unwrap().len(), 2);
    let no_links = env
        .get(&format!(
            "{path}?count=1&exclude_fields=_links,members._links"
        ))
        .await;
    assert!(
        no_links.body.get("_links").is_none()
            && no_links.body["members"][0].get("_links").is_none()
    );

    // since_last_changed returns exactly what changed at or after the given time. The PATCH
    // comes more than a second after the batch writes, so its (second-resolution) time is a
    // cut-off between them.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let changed = mailchimp_sim::subscriber_hash("client0007@posta.ro");
    let patched = env
        .patch(
            &format!("{path}/{changed}"),
            json!({"status": "unsubscribed"}),
        )
        .await;
    let cutoff = patched.body["last_changed"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let since = env
        .get(&format!("{path}?since_last_changed={cutoff}&count=1000"))
        .await;
    assert_eq!(since.body["total_items"], 1, "{}", since.body);
    assert_eq!(since.body["members"][0]["id"], changed);
    let before = env
        .get(&format!("{path}?before_last_changed={cutoff}&count=1"))
        .await;
    assert_eq!(before.body["total_items"], 1199);
    // Paging by change: offsets cut the range in change order, and DESC starts at the latest.
    let from = "2000-01-01T00:00:00%2B00:00";
    let last_page = env
        .get(&format!(
            "{path}?since_last_changed={from}&count=150&offset=1100"
        ))
        .await;
    assert_eq!(last_page.body["total_items"], 1200);
    let ids = last_page.body["members"].as_array().unwrap();
    assert_eq!(ids.len(), 100);
    assert_eq!(ids[99]["id"], changed, "the latest change comes last");
    let latest = env
        .get(&format!(
            "{path}?since_last_changed={from}&sort_field=last_changed&sort_dir=DESC&count=1"
        ))
        .await;
    assert_eq!(latest.body["members"][0]["id"], changed);
    // A change after a page was served moves its member to the end of the next pages.
    let other = mailchimp_sim::subscriber_hash("client0008@posta.ro");
    let r = env
        .patch(
            &format!("{path}/{other}"),
            json!({"merge_fields": {"FNAME": "Ioana"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let again = env
        .get(&format!(
            "{path}?since_last_changed={from}&count=150&offset=1100"
        ))
        .await;
    assert_eq!(again.body["total_items"], 1200);
    let ids = again.body["members"].as_array().unwrap();
    assert_eq!(
        (&ids[98]["id"], &ids[99]["id"]),
        (&json!(changed), &json!(other))
    );
    // With a status filter, the same members as without the time filter.
    let subscribed = |q: String| {
        let env = &env;
        async move { env.get(&q).await.body["total_items"].clone() }
    };
    assert_eq!(
        subscribed(format!(
            "{path}?since_last_changed={from}&status=subscribed&count=1"
        ))
        .await,
        subscribed(format!("{path}?status=subscribed&count=1")).await
    );
    let bad = env
        .get(&format!("{path}?since_last_changed=yesterday"))
        .await;
    assert_eq!(bad.status, 400);
}

/// The ids and statuses of a member read, in its order.
fn ids_and_statuses(body: &serde_json::Value) -> Vec<(String, String)> {
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |f: &str| m[f].as_str().unwrap().to_string();
            (s("id"), s("status"))
        })
        .collect()
}

#[tokio::test]
async fn status_filtered_reads_and_counts_agree_with_the_unfiltered_reads() {
    let env = common::start().await;
    let path = env.members_path();
    let email = |i: usize| format!("reader{i:03}@posta.ro");
    let initial = |i: usize| match i % 10 {
        1 => "unsubscribed",
        2 => "pending",
        3 => "transactional",
        _ => "subscribed",
    };
    let members: Vec<_> = (0..80)
        .map(|i| json!({"email_address": email(i), "status": initial(i)}))
        .collect();
    let r = env
        .post(
            &format!("/lists/{}", env.list_id),
            json!({"members": members}),
        )
        .await;
    assert_eq!(r.body["error_count"], 0, "{}", r.body["errors"]);
    let hash = |i: usize| mailchimp_sim::subscriber_hash(&email(i));
    // Every way a status or a key changes: Mailchimp's own changes, archiving and coming
    // back, updates, new addresses, permanent deletion.
    for (i, status) in [(5, "cleaned"), (6, "archived"), (7, "unsubscribed")] {
        let r = env
            .admin(
                Method::POST,
                &format!("/lists/{}/members/{}/status", env.list_id, hash(i)),
                Some(json!({ "status": status })),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    for i in [8, 9] {
        assert_eq!(env.delete(&format!("{path}/{}", hash(i))).await.status, 204);
    }
    let writes = [
        (
            8,
            json!({"email_address": email(8), "status": "subscribed"}),
        ),
        (0, json!({"status": "unsubscribed"})),
        (12, json!({"status": "subscribed"})),
        (10, json!({"email_address": "moved010@posta.ro"})),
        (11, json!({"email_address": "moved011@posta.ro"})),
        (14, json!({"merge_fields": {"FNAME": "Ana"}})),
    ];
    for (i, body) in writes {
        let r = env.patch(&format!("{path}/{}", hash(i)), body).await;
        assert_eq!(r.status, 200, "member {i}: {}", r.body);
    }
    let r = env
        .post(
            &format!("{path}/{}/actions/delete-permanent", hash(20)),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);

    let from = "2000-01-01T00:00:00%2B00:00";
    let by_change = ids_and_statuses(
        &env.get(&format!(
            "{path}?since_last_changed={from}&sort_field=last_changed&count=1000"
        ))
        .await
        .body,
    );
    let in_order = ids_and_statuses(&env.get(&format!("{path}?count=1000")).await.body);
    assert_eq!(in_order.len(), 79);
    let stats = env.get(&format!("/lists/{}", env.list_id)).await.body["stats"].clone();
    let mut seen = 0;
    for status in [
        "subscribed",
        "unsubscribed",
        "cleaned",
        "pending",
        "transactional",
        "archived",
    ] {
        let at = |all: &[(String, String)]| -> Vec<(String, String)> {
            all.iter().filter(|(_, s)| s == status).cloned().collect()
        };
        let read = |q: String| {
            let env = &env;
            async move { ids_and_statuses(&env.get(&q).await.body) }
        };
        let since = read(format!(
            "{path}?status={status}&since_last_changed={from}&count=1000"
        ))
        .await;
        assert_eq!(since, at(&by_change), "{status} since a time");
        let latest = read(format!(
            "{path}?status={status}&since_last_changed={from}&sort_dir=DESC&count=1"
        ))
        .await;
        assert_eq!(
            latest,
            at(&by_change).into_iter().rev().take(1).collect::<Vec<_>>()
        );
        let all = read(format!("{path}?status={status}&count=1000")).await;
        assert_eq!(all, at(&in_order), "{status} in the audience's order");
        let page = read(format!("{path}?status={status}&count=2&offset=1")).await;
        let expected: Vec<_> = at(&in_order).into_iter().skip(1).take(2).collect();
        assert_eq!(page, expected, "{status}, a page");
        seen += all.len();
        let counted = match status {
            "subscribed" => Some("member_count"),
            "unsubscribed" => Some("unsubscribe_count"),
            "cleaned" => Some("cleaned_count"),
            _ => None,
        };
        if let Some(field) = counted {
            assert_eq!(stats[field], all.len(), "{field}");
        }
        if status == "archived" {
            assert_eq!(stats["total_contacts"], 79 - all.len(), "{}", stats);
        }
    }
    assert_eq!(seen, 79);
}
