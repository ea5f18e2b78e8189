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
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
