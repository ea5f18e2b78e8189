//! The probe against the simulator: its idea of the simulator's defaults is the simulator's,
//! it reads the default profile as the same everywhere and the pessimistic one as different
//! everywhere it probes, and it leaves the audience as it found it.

use mailchimp_sim::config::{Profile, Variants};
use mailchimp_sim::{ListView, RunningSim, Settings, SimConfig};
use segsync_mailchimp::probe::{self, Options, Verdict, ASSUMPTIONS};
use segsync_mailchimp::{Client, ClientConfig, Credential};
use serde_json::Value;

/// The probe's "what the simulator assumes" is the default profile's value of each switch.
#[test]
fn the_probe_knows_the_simulators_defaults() {
    let v = serde_json::to_value(Variants::for_profile(Profile::Default)).unwrap();
    for (name, _, default) in ASSUMPTIONS {
        let actual = match &v[name] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(false) => "off".into(),
            Value::Bool(true) => "on".into(),
            Value::Null => "no cap".into(),
            Value::Array(a) if a.is_empty() => "none".into(),
            other => panic!("{name}: a value the probe does not read: {other}"),
        };
        assert_eq!(actual, default, "the default of {name}");
    }
}

async fn probe_under(profile: Profile) -> (probe::Report, ListView, ListView) {
    let mut settings = Settings::for_profile(profile);
    // New addresses refused at random cannot be told from a refused domain.
    settings.variants.recent_signups_rate = 0.0;
    // Eleven requests at once overlap only if each takes a while.
    settings.latency.base_ms = 150.0;
    let config = SimConfig {
        settings,
        ..SimConfig::for_profile(profile)
    };
    let sim = RunningSim::start(config, "127.0.0.1:0").await.unwrap();
    let key = sim.add_account();
    let list = sim.create_list(&key, "Probe test", false);
    // A contact of the audience's own, which the probe must leave alone.
    let answer = reqwest::Client::new()
        .post(format!("{}/lists/{list}/members", sim.api_url()))
        .basic_auth("probe", Some(&key))
        .json(&serde_json::json!({"email_address": "ana.popescu@gmail.com", "status": "subscribed", "tags": ["vip"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut config = ClientConfig::new(Credential::api_key(key).unwrap());
    config.base_url = sim.api_url().parse().unwrap();
    config.allow_private_targets = true;
    let client = Client::new(config).unwrap();
    let before = sim.list_view(&list).unwrap();
    let report = probe::run(&client, &list, "probe.segsync.dev", Options { load: true })
        .await
        .expect("the probe runs");
    let after = sim.list_view(&list).unwrap();
    sim.shutdown().await;
    (report, before, after)
}

#[tokio::test]
async fn the_default_profile_is_the_same_and_the_pessimistic_one_differs_everywhere_probed() {
    for (profile, expected) in [
        (Profile::Default, Verdict::Same),
        (Profile::Pessimistic, Verdict::Differs),
    ] {
        let (report, before, after) = probe_under(profile).await;
        assert_eq!(report.rows.len(), ASSUMPTIONS.len());
        for r in &report.rows {
            let want = match r.assumption {
                "recent_signups" | "oauth_redirect" => Verdict::NotProbed,
                _ => expected,
            };
            assert_eq!(r.verdict, want, "{profile:?}: {r:?}");
        }
        assert!(report.cleanup.left_over.is_empty(), "{:?}", report.cleanup);
        assert_eq!(after.members.len(), 1);
        assert_eq!(
            after.members, before.members,
            "{profile:?}: the members the audience held, and no other"
        );
        assert_eq!(after.tags.len(), before.tags.len(), "{:?}", after.tags);
        assert_eq!(after.merge_fields, before.merge_fields);
    }
}

#[tokio::test]
async fn a_domain_that_is_no_domain_is_refused_before_anything_is_sent() {
    let client = Client::new(ClientConfig::new(
        Credential::api_key("0123456789abcdef0123456789abcdef-us6".to_string()).unwrap(),
    ))
    .unwrap();
    for bad in ["", "localhost", "a@b.c", "two words.org"] {
        assert!(
            probe::run(&client, "abc", bad, Options::default())
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(client.stats().snapshot().requests_sent, 0);
}
