//! The `mailchimp-sim` binary: flags, the address on the first line, a clean refusal of a bad key.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KEY: &str = "0123456789abcdef0123456789abcdef-us6";

#[tokio::test]
async fn prints_its_address_first_and_serves_the_given_key() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailchimp-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            KEY,
            "--latency-base-ms",
            "1",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first
        .strip_prefix("mailchimp-sim listening on ")
        .expect(&first)
        .to_string();
    let second = lines.next_line().await.unwrap().unwrap();
    assert!(second.ends_with(&format!("api key {KEY}")), "{second}");
    let ping = reqwest::Client::new()
        .get(format!("{url}/3.0/ping"))
        .basic_auth("user", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let settings: serde_json::Value = reqwest::get(format!("{url}/_sim/settings"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["latency"]["base_ms"], 1.0);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn refuses_a_malformed_key_and_documents_its_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_mailchimp-sim"))
        .args(["--api-key", "abc-us6"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("32 lower-case hex characters"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_mailchimp-sim"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--api-key",
        "--latency-base-ms",
        "--latency-per-item-ms",
        "--error-5xx-rate",
        "--burst-429-rate",
        "--slow-rate",
        "--drop-rate",
        "--max-in-flight",
        "--contact-limit",
        "--oauth-client",
        "--profile",
        "--archived-members",
        "--batch-schema-errors",
        "--updated-members",
        "--date-merge-values",
        "--throttle-status",
        "--abandoned-slot-ms",
        "--ascii-local-parts",
        "--recent-signups",
        "--recent-signups-rate",
        "--recent-signups-ms",
        "--tag-name-max",
        "--oauth-redirect",
        "--malformed-since",
        "--batch-item-tags",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

/// Starts the binary with `args` (and `MAILCHIMP_SIM_PROFILE` as `profile_env` says) and
/// answers the settings it serves.
async fn settings_of(args: &[&str], profile_env: Option<&str>) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailchimp-sim"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("MAILCHIMP_SIM_PROFILE")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(p) = profile_env {
        cmd.env("MAILCHIMP_SIM_PROFILE", p);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first
        .strip_prefix("mailchimp-sim listening on ")
        .expect(&first)
        .to_string();
    let settings = reqwest::get(format!("{url}/_sim/settings"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().await.unwrap();
    settings
}

#[tokio::test]
async fn a_profile_and_the_flags_that_override_it() {
    let plain = settings_of(&[], None).await;
    assert_eq!(plain["profile"], "default");
    assert_eq!(plain["variants"]["archived_members"], "included");
    assert_eq!(plain["variants"]["throttle_status"], 429);

    let s = settings_of(
        &[
            "--tag-name-max",
            "0",
            "--profile",
            "pessimistic",
            "--throttle-status",
            "429",
            "--ascii-local-parts=false",
        ],
        None,
    )
    .await;
    let v = &s["variants"];
    assert_eq!(s["profile"], "pessimistic");
    assert_eq!(
        (
            v["archived_members"].as_str(),
            v["batch_schema_errors"].as_str(),
            v["updated_members"].as_str(),
            v["date_merge_values"].as_str(),
            v["abandoned_slot_ms"].as_u64(),
            v["recent_signups_rate"].as_f64(),
            v["recent_signups_ms"].as_u64(),
            v["oauth_redirect"].as_str(),
            v["malformed_since"].as_str(),
            v["batch_item_tags"].as_str(),
        ),
        (
            Some("excluded"),
            Some("whole_request"),
            Some("changed_only"),
            Some("documented_only"),
            Some(2000),
            Some(0.01),
            Some(60000),
            Some("exact"),
            Some("ignore"),
            Some("ignored"),
        )
    );
    // Each flag given overrides the profile, before or after it.
    assert_eq!(v["throttle_status"], 429);
    assert_eq!(v["tag_name_max"], serde_json::Value::Null);
    assert_eq!(v["ascii_local_parts"], false);

    let s = settings_of(
        &[
            "--ascii-local-parts",
            "--recent-signups",
            "a@posta.ro,b@posta.ro",
        ],
        Some("pessimistic"),
    )
    .await;
    assert_eq!(
        s["profile"], "pessimistic",
        "MAILCHIMP_SIM_PROFILE chooses it"
    );
    assert_eq!(s["variants"]["tag_name_max"], 50);
    assert_eq!(
        s["variants"]["recent_signups"],
        serde_json::json!(["a@posta.ro", "b@posta.ro"])
    );
    let s = settings_of(&["--profile", "default"], Some("pessimistic")).await;
    assert_eq!(s["profile"], "default", "the flag beats the environment");

    let bad = Command::new(env!("CARGO_BIN_EXE_mailchimp-sim"))
        .args(["--profile", "gloomy"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
