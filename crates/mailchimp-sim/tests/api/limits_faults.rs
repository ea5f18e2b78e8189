//! The in-flight limit, the latency model and injected faults. Times are only asserted as
//! lower bounds (a sleep never ends early), never as upper bounds, which flake.

use std::time::{Duration, Instant};

use crate::common;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_eleventh_request_in_flight_gets_429() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.latency.base_ms = 1000.0;
    env.sim.set_settings(s).unwrap();
    let calls = (0..15).map(|_| env.get("/ping"));
    let answers = futures_util::future::join_all(calls).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!((ok, refused.len()), (10, 5));
    assert_eq!(refused[0].body["title"], "Too Many Requests");
    assert_eq!(
        refused[0].body["detail"],
        "You have exceeded the limit of 10 simultaneous connections."
    );
    let c = env.sim.counters();
    assert_eq!((c.max_in_flight, c.too_many_requests), (10, 5));
    // The limit is per account: another account is not slowed by this one.
    let other = env.sim.add_account();
    let mine = (0..10).map(|_| env.get("/ping"));
    let (mine, theirs) = tokio::join!(
        futures_util::future::join_all(mine),
        env.call_as(&other, Method::GET, "/ping", None)
    );
    assert!(mine.iter().all(|a| a.status == 200));
    assert_eq!(theirs.status, 200);
}

#[tokio::test]
async fn latency_is_base_plus_per_item() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.latency.base_ms = 100.0;
    s.latency.per_item_ms = 2.0;
    env.sim.set_settings(s).unwrap();
    let members: Vec<_> = (0..500)
        .map(|i| json!({"email_address": format!("m{i}@posta.ro"), "status": "subscribed"}))
        .collect();
    let t = Instant::now();
    let r = env
        .post(
            &format!("/lists/{}", env.list_id),
            json!({"members": members}),
        )
        .await;
    assert_eq!(r.body["total_created"], 500);
    assert!(
        t.elapsed() >= Duration::from_millis(1100),
        "500 members cost 100 + 500 x 2 ms, took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    env.get("/ping").await;
    assert!(t.elapsed() >= Duration::from_millis(102));
}

#[tokio::test]
async fn in_flight_time_is_summed_over_requests() {
    let env = common::start().await;
    let mut s = env.sim.settings();
    s.latency.base_ms = 100.0;
    env.sim.set_settings(s).unwrap();
    let t = Instant::now();
    let answers = futures_util::future::join_all((0..5).map(|_| env.get("/ping"))).await;
    let wall = t.elapsed();
    assert!(answers.iter().all(|a| a.status == 200));
    let c = env.sim.counters();
    // Each of the 5 held its slot at least its 100 ms of latency, and no longer than the wall.
    assert!(
        c.in_flight_micros >= 500_000,
        "5 x 100 ms in flight, counted {} us",
        c.in_flight_micros
    );
    assert!(c.in_flight_micros <= 5 * wall.as_micros() as u64);
    // A request refused for going over the limit holds no slot: with a limit of 1, two at
    // once add the time of one, which is at most the wall time.
    let mut s = env.sim.settings();
    s.max_in_flight = 1;
    env.sim.set_settings(s).unwrap();
    let t = Instant::now();
    let (a, b) = tokio::join!(env.get("/ping"), env.get("/ping"));
    let wall = t.elapsed();
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    let added = env.sim.counters().in_flight_micros - c.in_flight_micros;
    assert!(
        added >= 100_000 && added <= wall.as_micros() as u64,
        "{added} us"
    );
    env.sim.sim().counters.reset();
    assert_eq!(env.sim.counters().in_flight_micros, 0);
}

#[tokio::test]
async fn injected_5xx_and_429_bursts() {
    let env = common::start().await;
    let r = env
        .admin(
            Method::PATCH,
            "/settings",
            Some(json!({"faults": {"error_5xx_rate": 1.0}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = env
        .put(
            &format!("{}/ana@posta.ro", env.members_path()),
            json!({"email_address": "ana@posta.ro", "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(
        (a.status, a.body["title"].as_str()),
        (500, Some("Internal Server Error"))
    );
    assert_eq!(
        env.sim.list_view(&env.list_id).unwrap().member_count,
        0,
        "a 500 is answered before the write"
    );

    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"faults": {"error_5xx_rate": 0.0, "burst_429_rate": 1.0, "burst_429_len": 3}})),
    )
    .await;
    assert_eq!(env.get("/ping").await.status, 429);
    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"faults": {"burst_429_rate": 0.0}})),
    )
    .await;
    let statuses: Vec<u16> = [
        env.get("/ping").await.status,
        env.get("/ping").await.status,
        env.get("/ping").await.status,
    ]
    .to_vec();
    assert_eq!(
        statuses,
        vec![429, 429, 200],
        "a burst refuses burst_429_len requests in a row"
    );
    let c = env.sim.counters();
    assert_eq!((c.injected_5xx, c.injected_429), (1, 3));
    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"faults": {"burst_429_rate": 1.0, "bodyless_429": true}})),
    )
    .await;
    let bare = env.get("/ping").await;
    assert_eq!(
        (bare.status, bare.body.is_null()),
        (429, true),
        "a bodyless 429 under load"
    );

    let bad = env
        .admin(
            Method::PATCH,
            "/settings",
            Some(json!({"faults": {"drop_rate": 2.0}})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["error"],
        "faults.drop_rate must be between 0 and 1, got 2"
    );
}

#[tokio::test]
async fn slow_answers_and_dropped_connections() {
    let env = common::start().await;
    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"faults": {"slow_rate": 1.0, "slow_ms": 300}})),
    )
    .await;
    let t = Instant::now();
    assert_eq!(env.get("/ping").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    env.admin(
        Method::PATCH,
        "/settings",
        Some(json!({"faults": {"slow_rate": 0.0, "drop_rate": 1.0}})),
    )
    .await;
    let sent = env
        .http
        .put(env.url(&format!("{}/ana@posta.ro", env.members_path())))
        .basic_auth("u", Some(&env.key))
        .json(&json!({"email_address": "ana@posta.ro", "status_if_new": "subscribed"}))
        .send()
        .await;
    let outcome = match sent {
        Err(e) => Err(e),
        Ok(resp) => resp.bytes().await.map(|_| ()),
    };
    assert!(outcome.is_err(), "the client never gets the answer");
    let view = env.sim.list_view(&env.list_id).unwrap();
    assert_eq!(view.member_count, 1, "but the write was applied");
    assert_eq!(env.sim.counters().dropped, 1);
}

#[tokio::test]
async fn admin_counters_and_reset() {
    let env = common::start().await;
    env.add_member("ana@posta.ro", "subscribed").await;
    env.get(&env.members_path()).await;
    let c = env.admin(Method::GET, "/counters", None).await;
    assert_eq!(
        c.body["by_endpoint"]["PUT /3.0/lists/{list_id}/members/{subscriber_hash}"],
        1
    );
    assert_eq!(c.body["by_endpoint"]["GET /3.0/lists/{list_id}/members"], 1);
    assert_eq!(
        (
            c.body["requests"].as_u64(),
            c.body["writes"].as_u64(),
            c.body["members_created"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let state = env
        .admin(Method::GET, &format!("/lists/{}", env.list_id), None)
        .await;
    assert_eq!(state.body["members"][0]["email_address"], "ana@posta.ro");
    assert_eq!(state.body["members"][0]["status"], "subscribed");

    let acct = env.admin(Method::POST, "/accounts", Some(json!({}))).await;
    let new_key = acct.body["api_key"].as_str().unwrap().to_string();
    let list = env
        .admin(
            Method::POST,
            &format!(
                "/accounts/{}/lists",
                acct.body["account_id"].as_str().unwrap()
            ),
            Some(json!({"name": "Second", "double_optin": true})),
        )
        .await;
    assert_eq!(list.body["double_optin"], true);
    assert_eq!(
        env.call_as(&new_key, Method::GET, "/lists", None)
            .await
            .body["total_items"],
        1
    );

    assert_eq!(env.admin(Method::POST, "/reset", None).await.status, 204);
    assert_eq!(env.get("/lists").await.body["total_items"], 0);
    assert_eq!(
        env.sim.counters().requests,
        1,
        "counters start again from zero"
    );
}
