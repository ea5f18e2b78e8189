//! The switches of `variants` (readings of Mailchimp's behaviour that the sources leave open),
//! each asserted through HTTP in both of its settings, and the profiles that gather them. The
//! default of every switch is the simulator as it was before the switch existed, which the
//! other test files keep asserting.

use std::time::{Duration, Instant};

use crate::common::{self, spec, Env};
use mailchimp_sim::config::{Profile, Variants};
use mailchimp_sim::{Settings, SimConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// Sets some `variants` through `PATCH /_sim/settings`.
async fn set_variants(env: &Env, variants: Value) {
    let r = env
        .admin(
            Method::PATCH,
            "/settings",
            Some(json!({ "variants": variants })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn batch_path(env: &Env) -> String {
    format!("/lists/{}", env.list_id)
}

#[tokio::test]
async fn the_default_profile_is_the_simulator_as_it_was() {
    assert_eq!(
        Settings::for_profile(Profile::Default).variants,
        Variants::default()
    );
    assert_eq!(
        SimConfig::pessimistic().settings.variants,
        Variants::pessimistic()
    );
    assert_eq!(Profile::from_env_value(None), Ok(Profile::Default));
    assert_eq!(Profile::from_env_value(Some("")), Ok(Profile::Default));
    assert_eq!(
        Profile::from_env_value(Some("pessimistic")),
        Ok(Profile::Pessimistic)
    );
    assert_eq!(
        Profile::from_env_value(Some("gloomy")),
        Err("gloomy".to_string())
    );
    let env = common::start_with(SimConfig::for_profile(Profile::Default)).await;
    let s = env.admin(Method::GET, "/settings", None).await;
    assert_eq!(s.body["profile"], "default");
    assert_eq!(
        s.body["variants"],
        json!({
            "archived_members": "included",
            "batch_schema_errors": "per_item",
            "updated_members": "all",
            "date_merge_values": "display_format",
            "throttle_status": 429,
            "abandoned_slot_ms": 0,
            "ascii_local_parts": false,
            "recent_signups": [],
            "recent_signups_rate": 0.0,
            "recent_signups_ms": 0,
            "tag_name_max": null,
            "oauth_redirect": "prefix",
            "malformed_since": "reject",
            "batch_item_tags": "applied",
        })
    );
}

#[tokio::test]
async fn a_profile_in_the_settings_sets_every_variant_and_fields_beside_it_override() {
    let env = common::start_with(SimConfig::for_profile(Profile::Default)).await;
    let r = env
        .admin(
            Method::PATCH,
            "/settings",
            Some(json!({"profile": "pessimistic", "variants": {"throttle_status": 429}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want = Variants::pessimistic();
    want.throttle_status = 429;
    assert_eq!(env.sim.settings().variants, want);
    assert_eq!(
        r.body["variants"]["archived_members"], "excluded",
        "{}",
        r.body
    );
    let p = Variants::pessimistic();
    assert_eq!(
        (
            p.abandoned_slot_ms,
            p.recent_signups_rate,
            p.recent_signups_ms,
            p.tag_name_max,
            p.throttle_status
        ),
        (2000, 0.01, 60_000, Some(50), 403)
    );
    // A PATCH without a profile changes only what it names.
    set_variants(&env, json!({"tag_name_max": 80})).await;
    assert_eq!(env.sim.settings().variants.tag_name_max, Some(80));
    assert_eq!(env.sim.settings().variants.throttle_status, 429);
    // A PUT starts from the defaults, or from the profile it names.
    let r = env
        .admin(
            Method::PUT,
            "/settings",
            Some(json!({"profile": "default"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.sim.settings().variants, Variants::default());
    let r = env
        .admin(
            Method::PUT,
            "/settings",
            Some(json!({"profile": "pessimistic", "max_in_flight": 4})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.sim.settings().variants, Variants::pessimistic());
    assert_eq!(env.sim.settings().max_in_flight, 4);
    for (bad, says) in [
        (
            json!({"variants": {"throttle_status": 500}}),
            "throttle_status must be 429 or 403",
        ),
        (
            json!({"variants": {"recent_signups_rate": 2.0}}),
            "recent_signups_rate must be between 0 and 1",
        ),
        (
            json!({"variants": {"tag_name_max": 0}}),
            "tag_name_max must be at least 1",
        ),
        (
            json!({"variants": {"archived_members": "hidden"}}),
            "unknown variant",
        ),
        (json!({"profile": "gloomy"}), "unknown variant"),
    ] {
        let r = env
            .admin(Method::PATCH, "/settings", Some(bad.clone()))
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.body["error"].as_str().unwrap().contains(says),
            "{bad}: {}",
            r.body
        );
    }
    // A reset goes back to the profile the simulator started with.
    env.admin(Method::POST, "/reset", None).await;
    assert_eq!(env.sim.settings().variants, Variants::default());
}

// a. Archived contacts in member lists.
#[tokio::test]
async fn archived_members_included_or_excluded() {
    let env = common::start().await;
    let members = env.members_path();
    env.add_member("ana@posta.ro", "subscribed").await;
    let gone = env.add_member("radu@posta.ro", "subscribed").await;
    assert_eq!(env.delete(&format!("{members}/{gone}")).await.status, 204);
    let since = "since_last_changed=2000-01-01T00:00:00%2B00:00";
    let read = |q: &'static str| format!("{members}?{q}");

    let plain = env.get(&read("count=10")).await;
    let changed = env.get(&format!("{members}?{since}")).await;
    assert_eq!(
        (
            plain.body["total_items"].as_u64(),
            changed.body["total_items"].as_u64()
        ),
        (Some(2), Some(2)),
        "included by default"
    );

    set_variants(&env, json!({"archived_members": "excluded"})).await;
    let plain = env.get(&read("count=10")).await;
    let changed = env.get(&format!("{members}?{since}")).await;
    let archived = env.get(&read("status=archived")).await;
    let desc = env
        .get(&format!(
            "{members}?{since}&sort_field=last_changed&sort_dir=DESC"
        ))
        .await;
    assert_eq!(
        (
            plain.body["total_items"].as_u64(),
            changed.body["total_items"].as_u64(),
            archived.body["total_items"].as_u64(),
            desc.body["total_items"].as_u64(),
        ),
        (Some(1), Some(1), Some(1), Some(1))
    );
    assert_eq!(plain.body["members"][0]["email_address"], "ana@posta.ro");
    assert_eq!(changed.body["members"][0]["email_address"], "ana@posta.ro");
    assert_eq!(
        archived.body["members"][0]["email_address"],
        "radu@posta.ro"
    );
    // The member itself is still there, by its hash.
    assert_eq!(
        env.get(&format!("{members}/{gone}")).await.body["status"],
        "archived"
    );
}

/// One good item, then one of each schema failure.
fn schema_bad_batch() -> Value {
    json!({"members": [
        {"email_address": "ok@posta.ro", "status": "subscribed"},
        {"email_address": "bogus@posta.ro", "status": "maybe"},
        {"status": "subscribed"},
        {"email_address": 5, "status": "subscribed"},
        {"email_address": "mf@posta.ro", "status": "subscribed", "merge_fields": "Ana"},
        {"email_address": "bool@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": true}},
        {"email_address": "arr@posta.ro", "status": "subscribed", "merge_fields": {"LNAME": ["x"]}},
        {"email_address": "pdf@posta.ro", "status": "subscribed", "email_type": "pdf"},
    ]})
}

// b. Batch schema errors.
#[tokio::test]
async fn batch_schema_errors_per_item_as_before() {
    let env = common::start().await;
    let r = env.post(&batch_path(&env), schema_bad_batch()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let errors = r.body["errors"].as_array().unwrap();
    let by_field: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["email_address"].as_str().unwrap(),
                e["field"].as_str().unwrap(),
            )
        })
        .collect();
    // A boolean merge value is taken as text and an unknown email_type is stored: the
    // default reading lets both pass, as the simulator always did.
    assert_eq!(
        by_field,
        vec![
            ("bogus@posta.ro", "status"),
            ("", "email_address"),
            ("", "email_address"),
            ("mf@posta.ro", "merge_fields"),
            ("arr@posta.ro", "LNAME"),
        ]
    );
    assert!(errors.iter().all(|e| e["error_code"] == "ERROR_GENERIC"));
    assert_eq!(r.body["total_created"], 3);
    let view = env.sim.list_view(&env.list_id).unwrap();
    let bool_member = view
        .members
        .iter()
        .find(|m| m.email_address == "bool@posta.ro")
        .unwrap();
    assert_eq!(bool_member.merge_fields["FNAME"], "true");
    // A single write takes a boolean merge value as text too.
    let r = env
        .put(
            &format!("{}/one@posta.ro", env.members_path()),
            json!({"email_address": "one@posta.ro", "status_if_new": "subscribed", "merge_fields": {"FNAME": false}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn batch_schema_errors_whole_request() {
    let env = common::start().await;
    set_variants(&env, json!({"batch_schema_errors": "whole_request"})).await;
    let r = env.post(&batch_path(&env), schema_bad_batch()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    spec::assert_answer_conforms("POST", "/lists/{listId}", &r);
    spec::assert_problem(&r);
    assert_eq!(r.body["title"], "Invalid Resource");
    assert_eq!(
        r.body["detail"],
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
    );
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "members.item:1.status",
            "members.item:2.email_address",
            "members.item:3.email_address",
            "members.item:4.merge_fields",
            "members.item:5.merge_fields.FNAME",
            "members.item:6.merge_fields.LNAME",
            "members.item:7.email_type",
        ]
    );
    assert_eq!(
        r.body["errors"][4]["message"],
        "Data did not match any of the schemas described in anyOf"
    );
    assert_eq!(
        env.sim.list_view(&env.list_id).unwrap().member_count,
        0,
        "nothing applied, not even the good item"
    );
    // Errors that are not the schema's stay per item.
    let r = env
        .post(
            &batch_path(&env),
            json!({"members": [
                {"email_address": "ok@posta.ro", "status": "subscribed", "email_type": "text",
                 "merge_fields": {"FNAME": "Ana", "ADDRESS": {"addr1": "Str. Lunga 1", "city": "Brasov", "state": "BV", "zip": "500000"}}},
                {"email_address": "fake@example.com", "status": "subscribed"},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // A single write refuses a boolean merge value as the same schema does.
    let r = env
        .put(
            &format!("{}/one@posta.ro", env.members_path()),
            json!({"email_address": "one@posta.ro", "status_if_new": "subscribed", "merge_fields": {"FNAME": false}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "merge_fields.FNAME");
}

// c. updated_members.
#[tokio::test]
async fn updated_members_all_or_changed_only() {
    let env = common::start().await;
    let path = batch_path(&env);
    let same = json!({"update_existing": true, "members": [
        {"email_address": "ana@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Ana"}},
        {"email_address": "radu@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Radu"}},
    ]});
    let r = env.post(&path, same.clone()).await;
    assert_eq!(r.body["total_created"], 2);
    let r = env.post(&path, same.clone()).await;
    assert_eq!(
        (
            r.body["total_updated"].as_u64(),
            r.body["updated_members"].as_array().map(Vec::len)
        ),
        (Some(2), Some(2)),
        "every member sent, by default"
    );

    set_variants(&env, json!({"updated_members": "changed_only"})).await;
    let before = env.sim.list_view(&env.list_id).unwrap();
    let r = env.post(&path, same).await;
    assert_eq!(
        (
            r.body["total_updated"].as_u64(),
            r.body["updated_members"].as_array().map(Vec::len),
            r.body["error_count"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{}",
        r.body
    );
    assert_eq!(
        env.sim.list_view(&env.list_id).unwrap(),
        before,
        "nothing changed, last_changed included"
    );
    let r = env
        .post(
            &path,
            json!({"update_existing": true, "members": [
                {"email_address": "ana@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Anca"}},
                {"email_address": "radu@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Radu"}},
                {"email_address": "Radu@posta.ro", "status": "subscribed", "tags": ["VIP"]},
            ]}),
        )
        .await;
    let updated: Vec<&str> = r.body["updated_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email_address"].as_str().unwrap())
        .collect();
    assert_eq!(r.body["total_updated"], 1);
    assert_eq!(updated, vec!["ana@posta.ro"]);
    let r = env
        .post(
            &format!("{path}?skip_duplicate_check=true"),
            json!({"update_existing": true, "members": [
                {"email_address": "radu@posta.ro", "status": "subscribed", "tags": ["VIP"]},
            ]}),
        )
        .await;
    assert_eq!(
        r.body["total_updated"], 1,
        "a new tag is a change: {}",
        r.body
    );
}

// d. Date merge values.
#[tokio::test]
async fn date_merge_values_display_format_or_documented_only() {
    let env = common::start().await;
    let mf = format!("/lists/{}/merge-fields", env.list_id);
    let r = env
        .post(&mf, json!({"name": "Joined", "tag": "JOINED", "type": "date", "options": {"date_format": "MM/DD/YYYY"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env
        .post(&mf, json!({"name": "Birthday", "tag": "BDAY", "type": "birthday", "options": {"date_format": "MM/DD"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let batch = json!({"members": [
        {"email_address": "a@posta.ro", "status": "subscribed", "merge_fields": {"JOINED": "12/31/2024"}},
        {"email_address": "b@posta.ro", "status": "subscribed", "merge_fields": {"JOINED": "2024-12-31", "BDAY": "03/07"}},
        {"email_address": "c@posta.ro", "status": "subscribed", "merge_fields": {"BDAY": "3/7"}},
    ]});
    let r = env.post(&batch_path(&env), batch.clone()).await;
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(3), Some(0)),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["new_members"][1]["merge_fields"]["JOINED"],
        "12/31/2024"
    );

    let env = common::start().await;
    set_variants(&env, json!({"date_merge_values": "documented_only"})).await;
    let mf = format!("/lists/{}/merge-fields", env.list_id);
    env.post(&mf, json!({"name": "Joined", "tag": "JOINED", "type": "date", "options": {"date_format": "MM/DD/YYYY"}}))
        .await;
    env.post(&mf, json!({"name": "Birthday", "tag": "BDAY", "type": "birthday", "options": {"date_format": "MM/DD"}}))
        .await;
    let r = env.post(&batch_path(&env), batch).await;
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(1), Some(2)),
        "{}",
        r.body
    );
    assert_eq!(r.body["new_members"][0]["email_address"], "b@posta.ro");
    assert_eq!(
        r.body["new_members"][0]["merge_fields"]["JOINED"], "12/31/2024",
        "stored in the field's format"
    );
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["error"], "Your merge fields were invalid.");
    assert_eq!(
        (
            errors[0]["field"].as_str(),
            errors[0]["field_message"].as_str()
        ),
        (
            Some("JOINED"),
            Some("Please enter the date in the format YYYY-MM-DD")
        )
    );
    assert_eq!(
        (
            errors[1]["field"].as_str(),
            errors[1]["field_message"].as_str()
        ),
        (
            Some("BDAY"),
            Some("Please enter the birthday in the format MM/DD")
        )
    );
    // A single write is refused the same way.
    let r = env
        .put(
            &format!("{}/d@posta.ro", env.members_path()),
            json!({"email_address": "d@posta.ro", "status_if_new": "subscribed", "merge_fields": {"JOINED": "2024/12/31"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "JOINED");
}

/// `n` pings at once through a fresh connection each; their statuses and bodies, in order.
async fn pings(env: &Env, keys: &[&str]) -> Vec<common::Answer> {
    futures_util::future::join_all(
        keys.iter()
            .map(|k| env.call_as(k, Method::GET, "/ping", None)),
    )
    .await
}

// e(1). The answer over the in-flight cap.
#[tokio::test]
async fn throttle_status_429_with_a_body_or_bare_403() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.max_in_flight = 1;
    s.latency.base_ms = 1000.0;
    env.sim.set_settings(s).unwrap();
    let key = env.key.clone();
    let answers = pings(&env, &[&key, &key]).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status != 200).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, 429);
    assert_eq!(refused[0].body["title"], "Too Many Requests");

    set_variants(&env, json!({"throttle_status": 403})).await;
    let answers = pings(&env, &[&key, &key]).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status != 200).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, 403);
    assert!(refused[0].body.is_null(), "no body: {}", refused[0].body);
    assert!(refused[0].headers.get("content-type").is_none());
    assert_eq!(env.sim.counters().too_many_requests, 2);
}

/// Sends a ping that gives up after `timeout`; true when it timed out.
async fn impatient_ping(env: &Env, timeout: Duration) -> bool {
    let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
    client
        .get(env.url("/ping"))
        .basic_auth("u", Some(&env.key))
        .send()
        .await
        .is_err_and(|e| e.is_timeout())
}

// e(2). A slot of a request the client gave up on.
#[tokio::test]
async fn an_abandoned_request_frees_its_slot_at_once_by_default() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.max_in_flight = 1;
    s.latency.base_ms = 3000.0;
    env.sim.set_settings(s).unwrap();
    let t = Instant::now();
    assert!(impatient_ping(&env, Duration::from_millis(300)).await);
    // The first request's handling would run until 3 s; its slot is free well before.
    let mut s = env.sim.settings();
    s.latency.base_ms = 0.0;
    env.sim.set_settings(s).unwrap();
    let mut status = 0;
    while t.elapsed() < Duration::from_millis(2000) {
        status = env.get("/ping").await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "the slot was freed when the client went away");
    assert!(t.elapsed() < Duration::from_millis(3000));
    assert_eq!(env.sim.counters().abandoned, 1);
}

#[tokio::test]
async fn an_abandoned_request_keeps_its_slot_past_its_handling() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.max_in_flight = 1;
    s.latency.base_ms = 1000.0;
    s.variants.abandoned_slot_ms = 1000;
    env.sim.set_settings(s).unwrap();
    let t = Instant::now();
    assert!(impatient_ping(&env, Duration::from_millis(300)).await);
    let mut s = env.sim.settings();
    s.latency.base_ms = 0.0;
    env.sim.set_settings(s).unwrap();
    // Until 1000 + 1000 ms after it started, the slot stays taken (asserted only when the
    // answer came within that time, so that a loaded machine cannot fail it).
    let refused = env.get("/ping").await;
    if t.elapsed() < Duration::from_millis(2000) {
        assert_eq!(refused.status, 429, "{}", refused.body);
    }
    tokio::time::sleep_until((t + Duration::from_millis(2000)).into()).await;
    let mut status = 0;
    for _ in 0..100 {
        status = env.get("/ping").await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "freed once the hold is over");
    assert_eq!(env.sim.counters().abandoned, 1);
}

// e(3). The cap is the account's, over all its keys.
#[tokio::test]
async fn a_second_key_of_an_account_shares_its_cap() {
    let env = common::start().await;
    let accounts = env.admin(Method::GET, "/accounts", None).await;
    let account_id = accounts.body["accounts"][0]["account_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env
        .admin(
            Method::POST,
            &format!("/accounts/{account_id}/keys"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.body["api_key"].as_str().unwrap().to_string();
    assert_ne!(second, env.key);
    // The same account: the same audiences.
    let lists = env.call_as(&second, Method::GET, "/lists", None).await;
    assert_eq!(lists.body["lists"][0]["id"], env.list_id);
    // A key of another data center, or one already taken, is refused.
    let r = env
        .admin(
            Method::POST,
            &format!("/accounts/{account_id}/keys"),
            Some(json!({"api_key": "0123456789abcdef0123456789abcdef-us6"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = env
        .admin(
            Method::POST,
            &format!("/accounts/{account_id}/keys"),
            Some(json!({"api_key": env.key})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = env
        .admin(Method::POST, "/accounts/nope/keys", Some(json!({})))
        .await;
    assert_eq!(r.status, 404);

    let mut s = env.sim.settings();
    s.max_in_flight = 2;
    s.latency.base_ms = 1000.0;
    env.sim.set_settings(s).unwrap();
    let other = env.sim.add_account();
    let first = env.key.clone();
    let answers = pings(&env, &[&first, &second, &first, &other]).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "three requests of one account over two keys, cap 2: {statuses:?}"
    );
    assert_eq!(statuses[3], 200, "another account has its own cap");
}

// f(1). Non-ASCII local parts.
#[tokio::test]
async fn ascii_local_parts_off_or_on() {
    let env = common::start().await;
    let members = env.members_path();
    let put = |email: &'static str| {
        let path = format!("{members}/{}", mailchimp_sim::subscriber_hash(email));
        (
            path,
            json!({"email_address": email, "status_if_new": "subscribed"}),
        )
    };
    let (path, body) = put("jörg@posta.de");
    assert_eq!(
        env.put(&path, body).await.status,
        200,
        "accepted by default"
    );

    set_variants(&env, json!({"ascii_local_parts": true})).await;
    let (path, body) = put("zoë@posta.de");
    let r = env.put(&path, body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["title"], "Invalid Resource");
    assert_eq!(
        r.body["detail"],
        "zoë@posta.de looks fake or invalid, please enter a real email address."
    );
    let (path, body) = put("zoe@pöstä.de");
    assert_eq!(
        env.put(&path, body).await.status,
        200,
        "international domains are fine"
    );
    let r = env
        .post(
            &batch_path(&env),
            json!({"members": [
                {"email_address": "andré@posta.fr", "status": "subscribed"},
                {"email_address": "andre@posta.fr", "status": "subscribed"},
            ]}),
        )
        .await;
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(r.body["errors"][0]["email_address"], "andré@posta.fr");
    assert_eq!(r.body["errors"][0]["field"], "email_address");
    assert_eq!(r.body["errors"][0]["error_code"], "ERROR_GENERIC");
}

const BUSY: &str =
    "has signed up to a lot of lists very recently; we're not allowing more signups for now";

// f(2). "has signed up to a lot of lists very recently".
#[tokio::test]
async fn recent_signups_listed_addresses_are_refused_as_new_members() {
    let env = common::start().await;
    env.add_member("known@posta.ro", "subscribed").await;
    let batch = json!({"update_existing": true, "members": [
        {"email_address": "busy@posta.ro", "status": "subscribed"},
        {"email_address": "known@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "K"}},
    ]});
    let r = env.post(&batch_path(&env), batch.clone()).await;
    assert_eq!(r.body["error_count"], 0, "none by default");
    let env = common::start().await;
    env.add_member("known@posta.ro", "subscribed").await;

    set_variants(
        &env,
        json!({"recent_signups": ["Busy@posta.ro", "known@posta.ro"]}),
    )
    .await;
    let r = env.post(&batch_path(&env), batch).await;
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["total_updated"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "an existing member is not a signup: {}",
        r.body
    );
    assert_eq!(
        r.body["errors"][0],
        json!({"email_address": "busy@posta.ro", "error": format!("busy@posta.ro {BUSY}"),
               "error_code": "ERROR_GENERIC", "field": "", "field_message": ""})
    );
    let r = env
        .put(
            &format!("{}/busy@posta.ro", env.members_path()),
            json!({"email_address": "busy@posta.ro", "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        (r.body["title"].as_str(), r.body["detail"].as_str()),
        (
            Some("Invalid Resource"),
            Some(format!("busy@posta.ro {BUSY}").as_str())
        )
    );
    set_variants(&env, json!({"recent_signups": []})).await;
    let r = env
        .put(
            &format!("{}/busy@posta.ro", env.members_path()),
            json!({"email_address": "busy@posta.ro", "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(r.status, 200, "taken off the list, it signs up");
}

#[tokio::test]
async fn recent_signups_rate_refuses_first_attempts_for_a_while() {
    let env = common::start().await;
    set_variants(
        &env,
        json!({"recent_signups_rate": 1.0, "recent_signups_ms": 1000}),
    )
    .await;
    let one = json!({"members": [{"email_address": "new@posta.ro", "status": "subscribed"}]});
    // The window opens while the first request is handled: after `sent`, before `answered`.
    let sent = Instant::now();
    let first = env.post(&batch_path(&env), one.clone()).await;
    let answered = Instant::now();
    assert_eq!(
        first.body["errors"][0]["error"],
        format!("new@posta.ro {BUSY}")
    );
    let again = env.post(&batch_path(&env), one.clone()).await;
    if sent.elapsed() < Duration::from_millis(1000) {
        assert_eq!(again.body["error_count"], 1, "refused within the window");
    }
    tokio::time::sleep_until((answered + Duration::from_millis(1000)).into()).await;
    let later = env.post(&batch_path(&env), one).await;
    assert_eq!(
        later.body["total_created"], 1,
        "accepted after it: {}",
        later.body
    );

    // The share is drawn by the address and the seed: the same addresses on every run.
    let refused = |rate: f64| async move {
        let env = common::start().await;
        set_variants(
            &env,
            json!({"recent_signups_rate": rate, "recent_signups_ms": 60000}),
        )
        .await;
        let members: Vec<Value> = (0..60)
            .map(|i| json!({"email_address": format!("m{i}@posta.ro"), "status": "subscribed"}))
            .collect();
        let r = env
            .post(&batch_path(&env), json!({"members": members}))
            .await;
        let mut out: Vec<String> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["email_address"].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    let a = refused(0.3).await;
    let b = refused(0.3).await;
    assert_eq!(a, b);
    assert!(!a.is_empty() && a.len() < 60, "{}", a.len());
}

// g. Tag (static segment) names.
#[tokio::test]
async fn tag_name_max_none_or_n() {
    let env = common::start().await;
    let segments = format!("/lists/{}/segments", env.list_id);
    let long = "x".repeat(51);
    let r = env
        .post(&segments, json!({"name": long, "static_segment": []}))
        .await;
    assert_eq!(r.status, 200, "no cap by default: {}", r.body);

    set_variants(&env, json!({"tag_name_max": 50})).await;
    let longer = "y".repeat(51);
    let r = env
        .post(&segments, json!({"name": longer, "static_segment": []}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    spec::assert_problem(&r);
    assert_eq!(r.body["title"], "Invalid Resource");
    let fifty = "z".repeat(50);
    let r = env
        .post(&segments, json!({"name": fifty, "static_segment": []}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tag_id = r.body["id"].as_u64().unwrap();
    let r = env
        .patch(
            &format!("{segments}/{tag_id}"),
            json!({"name": "w".repeat(51)}),
        )
        .await;
    assert_eq!(r.status, 400, "renaming to a long name: {}", r.body);
    let r = env
        .post(
            &segments,
            json!({"name": "s".repeat(60), "options": {"match": "any", "conditions": []}}),
        )
        .await;
    assert_eq!(r.status, 200, "saved segments are not tags: {}", r.body);
    // Tagging a member with a new long name, one by one or in a batch.
    let hash = env.add_member("ana@posta.ro", "subscribed").await;
    let r = env
        .post(
            &format!("{}/{hash}/tags", env.members_path()),
            json!({"tags": [{"name": "t".repeat(51), "status": "active"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = env
        .post(
            &batch_path(&env),
            json!({"update_existing": true, "members": [
                {"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["t".repeat(51)]},
                {"email_address": "new@posta.ro", "status": "subscribed", "tags": ["t".repeat(51)]},
                {"email_address": "old@posta.ro", "status": "subscribed", "tags": [long]},
            ]}),
        )
        .await;
    assert_eq!(
        (
            r.body["total_created"].as_u64(),
            r.body["error_count"].as_u64()
        ),
        (Some(1), Some(2)),
        "an existing long tag may still be used: {}",
        r.body
    );
    assert_eq!(r.body["errors"][0]["field"], "tags");
}

// h. OAuth redirect_uri.
#[tokio::test]
async fn oauth_redirect_prefix_or_exact() {
    let env = common::start().await;
    let base = env.sim.base_url();
    env.admin(
        Method::POST,
        "/oauth-clients",
        Some(json!({"client_id": "segsync", "client_secret": "s", "redirect_uri": "http://127.0.0.1:9999/cb"})),
    )
    .await;
    let authorize = |redirect: &'static str| {
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/oauth2/authorize"))
                .query(&[
                    ("response_type", "code"),
                    ("client_id", "segsync"),
                    ("redirect_uri", redirect),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(authorize("http://127.0.0.1:9999/cb/more?x=1").await, 200);
    set_variants(&env, json!({"oauth_redirect": "exact"})).await;
    assert_eq!(authorize("http://127.0.0.1:9999/cb/more?x=1").await, 400);
    assert_eq!(authorize("http://127.0.0.1:9999/cb").await, 200);
}

// i. A malformed since_last_changed.
#[tokio::test]
async fn malformed_since_reject_or_ignore() {
    let env = common::start().await;
    env.add_member("ana@posta.ro", "subscribed").await;
    let members = env.members_path();
    let future = "since_last_changed=2999-01-01T00:00:00.250%2B00:00";
    let garbage = "since_last_changed=yesterday";
    let r = env.get(&format!("{members}?{garbage}")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "since_last_changed");
    let r = env.get(&format!("{members}?{future}")).await;
    assert_eq!(
        (r.status, r.body["total_items"].as_u64()),
        (200, Some(0)),
        "fractional seconds are read by default"
    );

    set_variants(&env, json!({"malformed_since": "ignore"})).await;
    for q in [garbage, future, "before_last_changed=soon"] {
        let r = env.get(&format!("{members}?{q}")).await;
        assert_eq!(
            (r.status, r.body["total_items"].as_u64()),
            (200, Some(1)),
            "{q}: the filter is dropped"
        );
    }
    let r = env
        .get(&format!(
            "{members}?since_last_changed=2999-01-01T00:00:00%2B00:00"
        ))
        .await;
    assert_eq!(
        r.body["total_items"], 0,
        "a well-formed filter still applies"
    );
}

// j'. Tags of batch upsert items applied to created members only.
#[tokio::test]
async fn batch_item_tags_on_new_members_only() {
    let env = common::start().await;
    set_variants(&env, json!({"batch_item_tags": "new_members_only"})).await;
    let r = env
        .post(
            &batch_path(&env),
            json!({"members": [{"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["VIP"]}]}),
        )
        .await;
    assert_eq!(
        r.body["new_members"][0]["tags"][0]["name"], "VIP",
        "{}",
        r.body
    );
    let r = env
        .post(
            &format!("{}?fields=updated_members.email_address,updated_members.tags.name,new_members.tags.name", batch_path(&env)),
            json!({"update_existing": true, "members": [
                {"email_address": "ana@posta.ro", "status": "subscribed", "merge_fields": {"FNAME": "Ana"}, "tags": ["Cluj"]},
                {"email_address": "radu@posta.ro", "status": "subscribed", "tags": ["Cluj"]},
            ]}),
        )
        .await;
    assert_eq!(
        r.body["updated_members"][0]["email_address"], "ana@posta.ro",
        "{}",
        r.body
    );
    assert_eq!(
        r.body["updated_members"][0]["tags"],
        json!([{"name": "VIP"}]),
        "the update's tag is ignored, the member's own kept: {}",
        r.body
    );
    assert_eq!(
        r.body["new_members"][0]["tags"],
        json!([{"name": "Cluj"}]),
        "{}",
        r.body
    );
}

// j. Tags of batch upsert items.
#[tokio::test]
async fn batch_item_tags_applied_or_ignored() {
    let env = common::start().await;
    let r = env
        .post(
            &batch_path(&env),
            json!({"members": [{"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["VIP"]}]}),
        )
        .await;
    assert_eq!(r.body["new_members"][0]["tags"][0]["name"], "VIP");
    let r = env
        .post(
            &batch_path(&env),
            json!({"members": [{"email_address": "bad@posta.ro", "status": "subscribed", "tags": 5}]}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["field"], "tags");

    set_variants(&env, json!({"batch_item_tags": "ignored"})).await;
    let r = env
        .post(
            &batch_path(&env),
            json!({"update_existing": true, "sync_tags": true, "members": [
                {"email_address": "radu@posta.ro", "status": "subscribed", "tags": ["Cluj"]},
                {"email_address": "ana@posta.ro", "status": "subscribed", "tags": []},
                {"email_address": "bad@posta.ro", "status": "subscribed", "tags": 5},
            ]}),
        )
        .await;
    assert_eq!(r.body["error_count"], 0, "{}", r.body);
    assert_eq!(r.body["new_members"][0]["tags"], json!([]));
    let view = env.sim.list_view(&env.list_id).unwrap();
    assert_eq!(
        view.tags
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        vec!["VIP"],
        "no tag created, none removed"
    );
    let ana = view
        .members
        .iter()
        .find(|m| m.email_address == "ana@posta.ro")
        .unwrap();
    assert_eq!(ana.tags, vec!["VIP"]);
}

#[tokio::test]
async fn the_pessimistic_profile_in_process() {
    let env = common::start_with(SimConfig::pessimistic()).await;
    let s = env.admin(Method::GET, "/settings", None).await;
    assert_eq!(s.body["profile"], "pessimistic");
    // One switch of each kind, to show they are all on.
    let r = env.post(&batch_path(&env), schema_bad_batch()).await;
    assert_eq!(r.status, 400);
    let r = env
        .post(
            &batch_path(&env),
            json!({"members": [{"email_address": "ana@posta.ro", "status": "subscribed", "tags": ["VIP"]}]}),
        )
        .await;
    assert_eq!(r.body["new_members"][0]["tags"], json!([]), "{}", r.body);
}
