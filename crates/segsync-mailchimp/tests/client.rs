//! The Mailchimp client against the in-process simulator: every call, per-member errors,
//! the in-flight cap, faults (5xx, 429 bursts, dropped connections, slow answers), a revoked
//! credential, and secrets kept out of Debug, errors and logs. Assertions read what the
//! simulator holds (`list_view`) and counted (`counters`), not only what the client says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::future::join_all;
use mailchimp_sim::config::{Faults, Latency};
use mailchimp_sim::{ListView, RunningSim, Settings, SimConfig, Status};
use segsync_mailchimp::*;
use serde_json::{json, Map};

/// Retries in tests wait a few milliseconds, not seconds.
fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

struct Env {
    sim: RunningSim,
    key: String,
    list: String,
    client: Client,
}

impl Env {
    async fn new() -> Env {
        Env::with(|_| {}).await
    }

    async fn with(tune: impl FnOnce(&mut ClientConfig)) -> Env {
        let sim = RunningSim::start(SimConfig::default(), "127.0.0.1:0")
            .await
            .expect("the simulator starts");
        let key = sim.add_account();
        let list = sim.create_list(&key, "Newsletter", false);
        let mut config = ClientConfig::new(Credential::api_key(key.clone()).unwrap());
        config.base_url = sim.api_url().parse().unwrap();
        // The simulator listens on 127.0.0.1.
        config.allow_private_targets = true;
        config.retry = fast_retry(20);
        tune(&mut config);
        let client = Client::new(config).expect("a valid config");
        Env {
            sim,
            key,
            list,
            client,
        }
    }

    fn view(&self) -> ListView {
        self.sim.list_view(&self.list).expect("the audience exists")
    }

    fn member(&self, email: &str) -> mailchimp_sim::MemberView {
        let view = self.view();
        view.members
            .into_iter()
            .find(|m| m.email_address.eq_ignore_ascii_case(email))
            .unwrap_or_else(|| panic!("{email} is in the audience"))
    }

    fn faults(&self, faults: Faults) {
        self.sim
            .set_settings(Settings {
                faults,
                ..Settings::default()
            })
            .unwrap();
    }

    fn endpoint_count(&self, endpoint: &str) -> u64 {
        self.sim
            .counters()
            .by_endpoint
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }
}

fn item(email: &str, status: MemberStatus, fname: &str) -> UpsertItem {
    let mut merge_fields = Map::new();
    if !fname.is_empty() {
        merge_fields.insert("FNAME".into(), json!(fname));
    }
    UpsertItem {
        email: email.to_string(),
        status,
        merge_fields,
        tags: Vec::new(),
    }
}

fn people(range: std::ops::Range<usize>) -> Vec<UpsertItem> {
    range
        .map(|i| {
            item(
                &format!("person{i}@segsync-test.dev"),
                MemberStatus::Subscribed,
                &format!("P{i}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn ping_and_audience() {
    let env = Env::new().await;
    env.client.ping().await.unwrap();
    let info = env.client.list(&env.list).await.unwrap();
    assert_eq!(info.id, env.list);
    assert_eq!(info.name, "Newsletter");
    assert!(!info.double_optin);
    assert_eq!(info.member_count, 0);

    let err = env.client.list("0000000000").await.unwrap_err();
    assert!(matches!(err, Error::AudienceNotFound { .. }), "{err:?}");
    assert!(err.is_permanent());
    assert!(
        err.to_string()
            .starts_with("Mailchimp has no audience with id 0000000000 (it may have been deleted)"),
        "{err}"
    );
    // A permanent error is not retried.
    assert_eq!(env.endpoint_count("GET /3.0/lists/{list_id}"), 2);

    let opt_in = env.sim.create_list(&env.key, "Double", true);
    assert!(env.client.list(&opt_in).await.unwrap().double_optin);
}

#[tokio::test]
async fn merge_fields_read_and_create() {
    let env = Env::new().await;
    let fields = env.client.merge_fields(&env.list).await.unwrap();
    let tags: Vec<&str> = fields.iter().map(|f| f.tag.as_str()).collect();
    for t in ["FNAME", "LNAME", "ADDRESS", "PHONE"] {
        assert!(tags.contains(&t), "{tags:?}");
    }
    let fname = fields.iter().find(|f| f.tag == "FNAME").unwrap();
    assert_eq!(fname.r#type, MergeFieldType::Text);

    let ltv = env
        .client
        .create_merge_field(&env.list, "Lifetime value", "LTV", MergeFieldType::Number)
        .await
        .unwrap();
    assert_eq!(
        (ltv.tag.as_str(), ltv.r#type.clone()),
        ("LTV", MergeFieldType::Number)
    );
    // Asking again (a replay, another run) gives the same field, not an error.
    let again = env
        .client
        .create_merge_field(&env.list, "Lifetime value", "LTV", MergeFieldType::Number)
        .await
        .unwrap();
    assert_eq!(again.merge_id, ltv.merge_id);

    let tier = env
        .client
        .create_merge_field_with(
            &env.list,
            &NewMergeField {
                name: "Tier".into(),
                tag: Some("TIER".into()),
                r#type: Some(MergeFieldType::Dropdown),
                choices: vec!["gold".into(), "silver".into()],
                ..NewMergeField::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tier.choices, ["gold", "silver"]);
    let birthday = env
        .client
        .create_merge_field(&env.list, "Birthday", "BDAY", MergeFieldType::Birthday)
        .await
        .unwrap();
    assert_eq!(birthday.date_format.as_deref(), Some("MM/DD"));

    let view = env.view();
    let in_sim: Vec<&str> = view
        .merge_fields
        .iter()
        .filter_map(|f| f["tag"].as_str())
        .collect();
    for t in ["LTV", "TIER", "BDAY"] {
        assert!(in_sim.contains(&t), "{in_sim:?}");
    }
    assert_eq!(
        env.client.merge_fields(&env.list).await.unwrap().len(),
        fields.len() + 3
    );

    // A refused field carries Mailchimp's title and field errors.
    let err = env
        .client
        .create_merge_field(
            &env.list,
            "Way too long",
            "WAYTOOLONGTAG",
            MergeFieldType::Text,
        )
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    let problem = err.problem().expect("a problem document");
    assert_eq!(problem.title, "Invalid Resource");
    assert_eq!(problem.errors[0].field, "tag");
    assert!(err.to_string().contains("10 characters"), "{err}");
}

#[tokio::test]
async fn batch_upsert_reports_each_member() {
    let env = Env::new().await;
    let mut items = people(0..3);
    items.push(item(
        "someone@example.com",
        MemberStatus::Subscribed,
        "Fake",
    ));
    items.push(item(
        "ops@segsync-test.dev",
        MemberStatus::Transactional,
        "",
    ));
    let out = env
        .client
        .batch_upsert(&env.list, &items, true)
        .await
        .unwrap();
    assert_eq!(out.accepted.len(), 4, "{out:?}");
    assert!(out.accepted.iter().all(|a| a.created));
    assert!(out.unanswered.is_empty() && !out.replayed);
    assert_eq!(out.failed.len(), 1);
    let fake = &out.failed[0];
    assert_eq!(fake.email, "someone@example.com");
    assert_eq!(fake.kind, FailureKind::Invalid);
    assert!(fake.message.contains("looks fake or invalid"), "{fake:?}");
    let ops = out
        .accepted
        .iter()
        .find(|a| a.email == "ops@segsync-test.dev")
        .unwrap();
    assert_eq!(ops.status, MemberStatus::Transactional);
    assert_eq!(ops.hash, subscriber_hash("OPS@segsync-test.dev"));

    let view = env.view();
    assert_eq!(view.members.len(), 4);
    let p1 = env.member("person1@segsync-test.dev");
    assert_eq!(p1.status, Status::Subscribed);
    assert_eq!(p1.merge_fields["FNAME"], json!("P1"));

    // Mailchimp unsubscribes person1; sending "subscribed" back is a compliance error and
    // the member stays unsubscribed.
    assert!(mailchimp_sim::http::admin::force_member_status(
        env.sim.sim(),
        &env.list,
        "person1@segsync-test.dev",
        Status::Unsubscribed,
    ));
    let again = vec![
        item(
            "person1@segsync-test.dev",
            MemberStatus::Subscribed,
            "P1 again",
        ),
        item(
            "person2@segsync-test.dev",
            MemberStatus::Subscribed,
            "P2 new name",
        ),
    ];
    let out = env
        .client
        .batch_upsert(&env.list, &again, true)
        .await
        .unwrap();
    assert_eq!(out.accepted.len(), 1);
    assert!(!out.accepted[0].created);
    assert_eq!(out.failed.len(), 1);
    assert!(
        out.failed[0].message.contains("compliance state"),
        "{:?}",
        out.failed
    );
    assert_eq!(
        env.member("person1@segsync-test.dev").status,
        Status::Unsubscribed
    );
    assert_eq!(
        env.member("person2@segsync-test.dev").merge_fields["FNAME"],
        json!("P2 new name")
    );

    // Without update_existing, existing members are ERROR_CONTACT_EXISTS.
    let out = env
        .client
        .batch_upsert(
            &env.list,
            &[item(
                "person0@segsync-test.dev",
                MemberStatus::Subscribed,
                "X",
            )],
            false,
        )
        .await
        .unwrap();
    assert!(out.accepted.is_empty());
    assert_eq!(out.failed[0].kind, FailureKind::Exists, "{:?}", out.failed);
    assert!(out.failed[0].message.contains("update_existing"));
    assert_eq!(
        env.member("person0@segsync-test.dev").merge_fields["FNAME"],
        json!("P0")
    );

    // A merge field error names the field.
    let mut bad = item("addr@segsync-test.dev", MemberStatus::Subscribed, "");
    bad.merge_fields
        .insert("ADDRESS".into(), json!({"addr1": "1 Main St"}));
    let out = env
        .client
        .batch_upsert(&env.list, &[bad], true)
        .await
        .unwrap();
    assert_eq!(
        out.failed[0].field.as_deref(),
        Some("ADDRESS"),
        "{:?}",
        out.failed
    );

    // More than 500 is refused before anything is sent.
    let before = env.sim.counters().requests;
    let err = env
        .client
        .batch_upsert(&env.list, &people(0..501), true)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::TooManyItems {
            max: 500,
            got: 501,
            ..
        }
    ));
    assert_eq!(env.sim.counters().requests, before);
}

#[tokio::test]
async fn members_are_read_in_concurrent_pages() {
    let env = Env::new().await;
    let all = people(0..2300);
    let outcomes = join_all(
        all.chunks(500)
            .map(|c| env.client.batch_upsert(&env.list, c, true)),
    )
    .await;
    let accepted: usize = outcomes
        .into_iter()
        .map(|o| o.unwrap().accepted.len())
        .sum();
    assert_eq!(accepted, 2300);
    assert_eq!(env.view().members.len(), 2300);
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);

    let members = env.client.members(&env.list, None).await.unwrap();
    assert_eq!(members.len(), 2300);
    let p7 = members
        .iter()
        .find(|m| m.email == "person7@segsync-test.dev")
        .unwrap();
    assert_eq!(p7.hash, subscriber_hash("person7@segsync-test.dev"));
    assert_eq!(p7.status, MemberStatus::Subscribed);
    assert!(p7.last_changed.unwrap() >= started);
    assert_eq!(env.endpoint_count("GET /3.0/lists/{list_id}/members"), 3);

    // Only what changed since a moment.
    assert!(mailchimp_sim::http::admin::force_member_status(
        env.sim.sim(),
        &env.list,
        "person42@segsync-test.dev",
        Status::Unsubscribed,
    ));
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(env
        .client
        .members(&env.list, Some(later))
        .await
        .unwrap()
        .is_empty());
    let recent = env.client.members(&env.list, Some(started)).await.unwrap();
    assert_eq!(recent.len(), 2300);

    let one = env
        .client
        .member(&env.list, "Person42@Segsync-Test.dev")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.status, MemberStatus::Unsubscribed);
    assert!(env
        .client
        .member(&env.list, "nobody@segsync-test.dev")
        .await
        .unwrap()
        .is_none());
    let err = env.client.members("0000000000", None).await.unwrap_err();
    assert!(matches!(err, Error::AudienceNotFound { .. }));
}

#[tokio::test]
async fn tags_created_and_applied() {
    let env = Env::new().await;
    env.client
        .batch_upsert(&env.list, &people(0..3), true)
        .await
        .unwrap();
    assert!(env.client.tags(&env.list).await.unwrap().is_empty());
    let vip = env.client.create_tag(&env.list, "VIP").await.unwrap();
    let churn = env
        .client
        .create_tag(&env.list, "Churn risk")
        .await
        .unwrap();
    assert_ne!(vip, churn);
    // Creating it again gives the same tag.
    assert_eq!(env.client.create_tag(&env.list, "VIP").await.unwrap(), vip);
    let tags = env.client.tags(&env.list).await.unwrap();
    assert_eq!(
        tags,
        vec![(vip, "VIP".to_string()), (churn, "Churn risk".to_string())]
    );

    let add: Vec<String> = vec![
        "person0@segsync-test.dev".into(),
        "person1@segsync-test.dev".into(),
        "stranger@segsync-test.dev".into(),
    ];
    let out = env
        .client
        .update_tag_members(&env.list, vip, &add, &[])
        .await
        .unwrap();
    assert_eq!((out.added, out.removed), (2, 0));
    assert_eq!(out.not_members, ["stranger@segsync-test.dev"]);
    assert_eq!(env.member("person0@segsync-test.dev").tags, ["VIP"]);

    let out = env
        .client
        .update_tag_members(&env.list, vip, &[], &["person0@segsync-test.dev".into()])
        .await
        .unwrap();
    assert_eq!((out.added, out.removed), (0, 1));
    assert!(env.member("person0@segsync-test.dev").tags.is_empty());
    let view = env.view();
    let vip_view = view.tags.iter().find(|t| t.name == "VIP").unwrap();
    assert_eq!(vip_view.member_count, 1);

    let too_many: Vec<String> = (0..501).map(|i| format!("p{i}@segsync-test.dev")).collect();
    let err = env
        .client
        .update_tag_members(&env.list, vip, &too_many, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManyItems { max: 500, .. }));
    let err = env
        .client
        .update_tag_members(&env.list, 999_999, &add, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn archive_and_unsubscribe() {
    let env = Env::new().await;
    let mut items = people(0..3);
    items.push(item("waiting@segsync-test.dev", MemberStatus::Pending, ""));
    env.client
        .batch_upsert(&env.list, &items, true)
        .await
        .unwrap();

    let r = env
        .client
        .archive(&env.list, "person0@segsync-test.dev")
        .await
        .unwrap();
    assert_eq!(r, Archived::Archived);
    assert_eq!(
        env.member("person0@segsync-test.dev").status,
        Status::Archived
    );
    assert_eq!(
        env.client
            .archive(&env.list, "never-here@segsync-test.dev")
            .await
            .unwrap(),
        Archived::AlreadyGone
    );

    // Mailchimp cannot archive a pending contact: 405 with its detail, sent once.
    let before = env.endpoint_count("DELETE /3.0/lists/{list_id}/members/{subscriber_hash}");
    let err = env
        .client
        .archive(&env.list, "waiting@segsync-test.dev")
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(err.status(), Some(405));
    assert!(
        err.to_string()
            .contains("Can not archive a contact that is bounced, pending or archived"),
        "{err}"
    );
    assert_eq!(
        env.endpoint_count("DELETE /3.0/lists/{list_id}/members/{subscriber_hash}"),
        before + 1
    );

    let m = env
        .client
        .set_status(
            &env.list,
            "person1@segsync-test.dev",
            MemberStatus::Unsubscribed,
        )
        .await
        .unwrap();
    assert_eq!(m.status, MemberStatus::Unsubscribed);
    assert_eq!(
        env.member("person1@segsync-test.dev").status,
        Status::Unsubscribed
    );
    let err = env
        .client
        .set_status(
            &env.list,
            "nobody@segsync-test.dev",
            MemberStatus::Unsubscribed,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn ten_in_flight_and_never_more() {
    let env = Env::new().await;
    env.sim
        .set_settings(Settings {
            latency: Latency {
                base_ms: 50.0,
                per_item_ms: 0.0,
            },
            ..Settings::default()
        })
        .unwrap();
    let calls = (0..40).map(|i| {
        let c = env.client.clone();
        let list = env.list.clone();
        async move {
            if i % 2 == 0 {
                c.ping().await
            } else {
                c.list(&list).await.map(|_| ())
            }
        }
    });
    for r in join_all(calls).await {
        r.unwrap();
    }
    let counters = env.sim.counters();
    assert_eq!(counters.max_in_flight, 10);
    assert_eq!(counters.too_many_requests, 0);
    assert_eq!(counters.requests, 40);
    let stats = env.client.stats();
    assert_eq!(stats.max_in_flight(), 10);
    assert_eq!(stats.requests_sent(), 40);
    assert_eq!(
        (stats.in_flight(), stats.waiting(), stats.total_retries()),
        (0, 0, 0)
    );

    // A lower cap is honoured too.
    let env = Env::with(|c| c.max_in_flight = 3).await;
    env.sim
        .set_settings(Settings {
            latency: Latency {
                base_ms: 20.0,
                per_item_ms: 0.0,
            },
            ..Settings::default()
        })
        .unwrap();
    for r in join_all((0..12).map(|_| env.client.ping())).await {
        r.unwrap();
    }
    assert_eq!(env.sim.counters().max_in_flight, 3);
}

#[tokio::test]
async fn faults_are_absorbed() {
    let env = Env::new().await;
    env.faults(Faults {
        error_5xx_rate: 0.3,
        burst_429_rate: 0.05,
        burst_429_len: 3,
        bodyless_429: true,
        drop_rate: 0.1,
        seed: 7,
        ..Faults::default()
    });
    let all = people(0..1200);
    let tag = env.client.create_tag(&env.list, "Segment A").await.unwrap();
    let upserts = join_all(
        all.chunks(100)
            .map(|c| env.client.batch_upsert(&env.list, c, true)),
    )
    .await;
    let mut replayed = 0;
    for o in upserts {
        let o = o.unwrap();
        assert!(o.failed.is_empty() && o.unanswered.is_empty(), "{o:?}");
        replayed += o.replayed as usize;
    }
    let emails: Vec<String> = all.iter().map(|i| i.email.clone()).collect();
    for r in join_all(
        emails
            .chunks(500)
            .map(|c| env.client.update_tag_members(&env.list, tag, c, &[])),
    )
    .await
    {
        r.unwrap();
    }
    for _ in 0..10 {
        env.client.ping().await.unwrap();
    }
    assert_eq!(
        env.client.members(&env.list, None).await.unwrap().len(),
        1200
    );
    env.client.merge_fields(&env.list).await.unwrap();
    env.client.list(&env.list).await.unwrap();

    let view = env.view();
    assert_eq!(view.members.len(), 1200);
    assert!(view
        .members
        .iter()
        .all(|m| m.status == Status::Subscribed && m.tags == ["Segment A"]));
    assert_eq!(view.tags.len(), 1);

    let counters = env.sim.counters();
    let stats = env.client.stats().snapshot();
    assert!(counters.injected_5xx > 0 && counters.injected_429 > 0 && counters.dropped > 0);
    // Every injected fault cost exactly one retry, and nothing more.
    assert_eq!(stats.retries.server_error, counters.injected_5xx);
    assert_eq!(
        stats.retries.too_many_requests,
        counters.injected_429 + counters.too_many_requests
    );
    assert_eq!(stats.retries.connection, counters.dropped);
    assert_eq!(stats.retries.timeout, 0);
    // No call failed, but for a tag creation that met its own dropped first attempt
    // ("already exists") and was resolved by reading the tags.
    for e in &stats.by_endpoint {
        if e.endpoint != Endpoint::CreateTag {
            assert_eq!(e.failures, 0, "{e:?}");
        }
    }
    assert_eq!(stats.requests_sent, counters.requests);
    assert!(replayed > 0 || counters.dropped == 0);
    let upsert = stats
        .by_endpoint
        .iter()
        .find(|e| e.endpoint == Endpoint::BatchUpsert)
        .unwrap();
    assert_eq!(upsert.calls, 12);
    assert!(upsert.retries > 0);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let env = Env::with(|c| c.timeout = Duration::from_millis(150)).await;
    env.faults(Faults {
        slow_rate: 0.4,
        slow_ms: 600,
        seed: 3,
        ..Faults::default()
    });
    for r in join_all((0..10).map(|_| env.client.ping())).await {
        r.unwrap();
    }
    let stats = env.client.stats();
    let slowed = env.sim.counters().slowed;
    assert!(slowed > 0);
    // Every slow answer was given up on and retried (an overloaded machine may add more).
    assert!(stats.retries(RetryCause::Timeout) >= slowed);

    // Always slow: a timeout error after max_attempts, each one sent.
    let env = Env::with(|c| {
        c.timeout = Duration::from_millis(100);
        c.retry = fast_retry(3);
    })
    .await;
    env.faults(Faults {
        slow_rate: 1.0,
        slow_ms: 400,
        ..Faults::default()
    });
    let err = env.client.ping().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { attempts: 3, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert_eq!(env.endpoint_count("GET /3.0/ping"), 3);
    assert_eq!(env.client.stats().retries(RetryCause::Timeout), 2);
}

#[tokio::test]
async fn revoked_credential_stops_at_once() {
    let env = Env::new().await;
    env.client.ping().await.unwrap();
    assert!(env.sim.sim().revoke(&env.key));
    env.sim.sim().counters.reset();

    let err = env.client.list(&env.list).await.unwrap_err();
    assert!(matches!(err, Error::CredentialRejected), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Mailchimp refused the connection's credential (the API key or token is invalid or was revoked): re-authenticate"
    );
    assert!(err.is_permanent());
    assert_eq!(env.sim.counters().requests, 1);

    let err = env
        .client
        .batch_upsert(&env.list, &people(0..10), true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CredentialRejected));
    assert_eq!(env.sim.counters().requests, 2);
    assert_eq!(env.client.stats().total_retries(), 0);
}

#[tokio::test]
async fn oauth_tokens_are_sent_as_bearer() {
    let env = Env::new().await;
    let account = env.sim.sim().account_for(&env.key).unwrap();
    let token = "oauth-token-4f1d2a9b8c7e6d5f";
    env.sim.sim().add_credential(token.to_string(), &account.id);
    let mut config = ClientConfig::new(Credential::oauth_token(token).unwrap());
    config.base_url = env.sim.api_url().parse().unwrap();
    config.allow_private_targets = true;
    let client = Client::new(config).unwrap();
    client.ping().await.unwrap();
    assert_eq!(client.list(&env.list).await.unwrap().name, "Newsletter");
    assert!(env.sim.sim().revoke(token));
    assert!(matches!(
        client.ping().await.unwrap_err(),
        Error::CredentialRejected
    ));
}

#[tokio::test]
async fn unreachable_mailchimp_is_a_connection_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config =
        ClientConfig::new(Credential::api_key("0123456789abcdef0123456789abcdef-us6").unwrap());
    config.base_url = format!("http://127.0.0.1:{port}/3.0").parse().unwrap();
    config.allow_private_targets = true;
    config.retry = fast_retry(3);
    let client = Client::new(config).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(err, Error::Connection { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(client.stats().retries(RetryCause::Connection), 2);
    assert!(!err.to_string().contains("0123456789abcdef"));
}

/// Collects everything logged, at every level, from this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The key never shows: not in Debug, not in any error's Display, not in trace-level logs
/// of a whole session (reqwest's and hyper's included), neither as itself nor as the Basic
/// header's base64.
#[tokio::test(flavor = "current_thread")]
async fn secrets_never_shown() {
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();

    let env = Env::with(|c| {
        c.timeout = Duration::from_millis(100);
        c.retry = fast_retry(3);
    })
    .await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("segsync:{}", env.key));
    let secrets = [env.key.clone(), env.key[..32].to_string(), basic];
    let shown = |text: &str, what: &str| {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{what} shows a secret: {text}");
        }
    };

    shown(&format!("{:?}", env.client), "Debug of the client");
    let config = ClientConfig::new(Credential::api_key(env.key.clone()).unwrap());
    shown(
        &format!("{config:?} {:?}", config.credential),
        "Debug of the config",
    );
    assert!(format!("{:?}", env.client).contains("<redacted>"));
    assert!(format!("{config:?}").contains("<redacted>"));

    let mut errors = Vec::new();
    env.client
        .batch_upsert(&env.list, &people(0..5), true)
        .await
        .unwrap();
    errors.push(env.client.list("0000000000").await.unwrap_err());
    errors.push(
        env.client
            .create_merge_field(&env.list, "x", "WAYTOOLONGTAG", MergeFieldType::Text)
            .await
            .unwrap_err(),
    );
    env.faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });
    errors.push(env.client.ping().await.unwrap_err());
    env.faults(Faults {
        slow_rate: 1.0,
        slow_ms: 300,
        ..Faults::default()
    });
    errors.push(env.client.ping().await.unwrap_err());
    env.faults(Faults::default());
    errors.push(Credential::api_key(format!("{}-", &env.key[..32])).unwrap_err());
    errors.push(Credential::api_key(env.key.to_uppercase()).unwrap_err());
    env.sim.sim().revoke(&env.key);
    errors.push(env.client.ping().await.unwrap_err());
    for e in &errors {
        shown(&e.to_string(), "an error's Display");
        shown(&format!("{e:?}"), "an error's Debug");
    }
    assert!(matches!(errors.last(), Some(Error::CredentialRejected)));

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Mailchimp request"), "the capture works");
    assert!(logs.contains("retrying"), "retries are logged");
    shown(&logs, "the logs");
}

/// Waits until the simulator has seen `n` requests to `endpoint`.
async fn seen(env: &Env, endpoint: &str, n: u64) {
    for _ in 0..500 {
        if env.endpoint_count(endpoint) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{endpoint} never reached {n} requests");
}

/// A write applied by Mailchimp whose answer never came (here: answered after the client's
/// timeout) is sent again; the client recognises its own earlier effect.
#[tokio::test]
async fn replayed_writes_are_recognised() {
    let env = Env::with(|c| c.timeout = Duration::from_millis(300)).await;
    env.client
        .batch_upsert(&env.list, &people(0..3), true)
        .await
        .unwrap();
    let slow = Faults {
        slow_rate: 1.0,
        slow_ms: 2000,
        ..Faults::default()
    };

    // Archive: the first DELETE is applied and answered too late; the retry meets 405
    // ("cannot archive ... archived"), and a read shows the member archived: success.
    env.faults(slow.clone());
    let archive = tokio::spawn({
        let client = env.client.clone();
        let list = env.list.clone();
        async move { client.archive(&list, "person0@segsync-test.dev").await }
    });
    seen(
        &env,
        "DELETE /3.0/lists/{list_id}/members/{subscriber_hash}",
        1,
    )
    .await;
    env.faults(Faults::default());
    assert_eq!(archive.await.unwrap().unwrap(), Archived::Archived);
    assert_eq!(
        env.member("person0@segsync-test.dev").status,
        Status::Archived
    );
    assert_eq!(
        env.endpoint_count("DELETE /3.0/lists/{list_id}/members/{subscriber_hash}"),
        2
    );
    assert_eq!(
        env.endpoint_count("GET /3.0/lists/{list_id}/members/{subscriber_hash}"),
        1
    );

    // Batch upsert: the replay finds the members it created a moment before, and says so.
    env.faults(slow);
    let upsert = tokio::spawn({
        let client = env.client.clone();
        let list = env.list.clone();
        async move { client.batch_upsert(&list, &people(10..13), true).await }
    });
    seen(&env, "POST /3.0/lists/{list_id}", 2).await;
    env.faults(Faults::default());
    let out = upsert.await.unwrap().unwrap();
    assert!(out.replayed);
    assert_eq!(out.accepted.len(), 3);
    assert!(out.accepted.iter().all(|a| !a.created));
    assert_eq!(env.view().members.len(), 6);
    assert_eq!(env.client.stats().retries(RetryCause::Timeout), 2);
}
