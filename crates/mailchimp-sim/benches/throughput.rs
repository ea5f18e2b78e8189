//! How fast the simulator answers, so that a benchmark of a client measures the client.
//!
//! Starts the release `mailchimp-sim` binary in its own process with the latency model at 0,
//! fills one audience with N members (default 1,000,000; `SIM_BENCH_MEMBERS`) through
//! 500-member batch upserts with 10 requests in flight (Mailchimp's limits), then re-sends
//! them all as updates, tags them through segment batches, and pages through them 1,000 at a
//! time. Prints throughput per phase and the simulator's peak RSS and CPU time.
//!
//! Run: `cargo bench -p mailchimp-sim --bench throughput`

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

const KEY: &str = "0123456789abcdef0123456789abcdef-us6";
const IN_FLIGHT: usize = 10;

fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of a process.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // utime and stime are fields 14 and 15 of stat: the 12th and 13th after the name.
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

struct Phase {
    name: &'static str,
    requests: usize,
    items: usize,
    wall: Duration,
    sim_cpu: f64,
}

/// Sends every body to `url` with at most 10 in flight; panics on any non-200.
async fn drive(http: &reqwest::Client, url: &str, bodies: Vec<Vec<u8>>) {
    let sem = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let req = http
            .post(url)
            .basic_auth("bench", Some(KEY))
            .header("content-type", "application/json")
            .body(body);
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.expect("request");
            let status = resp.status();
            let bytes = resp.bytes().await.expect("body");
            drop(permit);
            assert_eq!(
                status,
                200,
                "{}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
            let v: Value = serde_json::from_slice(&bytes).expect("JSON");
            assert_eq!(
                v.get("error_count").and_then(Value::as_u64).unwrap_or(0),
                0,
                "{v}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SIM_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut child = tokio::process::Command::new(
        std::env::var("SIM_BENCH_BIN").unwrap_or(env!("CARGO_BIN_EXE_mailchimp-sim").into()),
    )
    .args(["--listen", "127.0.0.1:0", "--api-key", KEY])
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("the simulator starts");
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first
        .trim_start_matches("mailchimp-sim listening on ")
        .to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();
    let list: Value = http
        .post(format!("{base}/_sim/accounts/{}/lists", {
            let a: Value = http
                .get(format!("{base}/_sim/accounts"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            a["accounts"][0]["account_id"].as_str().unwrap().to_string()
        }))
        .json(&json!({"name": "Bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list_id = list["id"].as_str().unwrap().to_string();
    let api = format!("{base}/3.0");
    let email = |i: usize| format!("customer.{i:07}@posta-bench.ro");
    let mut phases = Vec::new();

    for (name, update, query) in [
        ("batch upsert, create, full answer", false, ""),
        (
            "batch upsert, update, slim answer",
            true,
            "?fields=total_created,total_updated,error_count,errors",
        ),
    ] {
        let bodies: Vec<Vec<u8>> = (0..n)
            .collect::<Vec<_>>()
            .chunks(500)
            .map(|c| {
                let members: Vec<Value> = c
                    .iter()
                    .map(|&i| json!({"email_address": email(i), "status": "subscribed",
                                     "merge_fields": {"FNAME": "Ana", "LNAME": format!("Pop{}", i % 977 + usize::from(update))}}))
                    .collect();
                serde_json::to_vec(&json!({"members": members, "update_existing": update})).unwrap()
            })
            .collect();
        let requests = bodies.len();
        let cpu0 = cpu_secs(pid);
        let t = Instant::now();
        drive(&http, &format!("{api}/lists/{list_id}{query}"), bodies).await;
        phases.push(Phase {
            name,
            requests,
            items: n,
            wall: t.elapsed(),
            sim_cpu: cpu_secs(pid) - cpu0,
        });
    }

    let tag: Value = http
        .post(format!("{api}/lists/{list_id}/segments"))
        .basic_auth("bench", Some(KEY))
        .json(&json!({"name": "Bench tag", "static_segment": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tag_id = tag["id"].as_u64().unwrap();
    let bodies: Vec<Vec<u8>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(500)
        .map(|c| {
            serde_json::to_vec(
                &json!({"members_to_add": c.iter().map(|&i| email(i)).collect::<Vec<_>>()}),
            )
            .unwrap()
        })
        .collect();
    let requests = bodies.len();
    let cpu0 = cpu_secs(pid);
    let t = Instant::now();
    drive(
        &http,
        &format!("{api}/lists/{list_id}/segments/{tag_id}?fields=total_added,error_count"),
        bodies,
    )
    .await;
    phases.push(Phase {
        name: "segment batch add (tag)",
        requests,
        items: n,
        wall: t.elapsed(),
        sim_cpu: cpu_secs(pid) - cpu0,
    });

    let cpu0 = cpu_secs(pid);
    let t = Instant::now();
    let sem = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    for offset in (0..n).step_by(1000) {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let req = http
            .get(format!("{api}/lists/{list_id}/members?count=1000&offset={offset}&fields=members.id,members.status,members.last_changed"))
            .basic_auth("bench", Some(KEY));
        tasks.push(tokio::spawn(async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            drop(permit);
            v["members"].as_array().map_or(0, Vec::len)
        }));
    }
    let mut seen = 0;
    for t in tasks {
        seen += t.await.unwrap();
    }
    assert_eq!(seen, n);
    phases.push(Phase {
        name: "page members (1000 per GET)",
        requests: n.div_ceil(1000),
        items: n,
        wall: t.elapsed(),
        sim_cpu: cpu_secs(pid) - cpu0,
    });

    println!(
        "mailchimp-sim throughput, {n} members, {IN_FLIGHT} requests in flight, latency model 0"
    );
    println!("| phase | requests | wall s | requests/s | members/s | sim CPU s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for p in &phases {
        let s = p.wall.as_secs_f64();
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.0} | {:.2} |",
            p.name,
            p.requests,
            s,
            p.requests as f64 / s,
            p.items as f64 / s,
            p.sim_cpu
        );
    }
    println!(
        "simulator peak RSS: {} MB",
        proc_status(pid, "VmHWM:") / 1024
    );
    let upsert = &phases[1];
    let per_request_ms =
        upsert.wall.as_secs_f64() * 1000.0 * IN_FLIGHT as f64 / upsert.requests as f64;
    println!(
        "a 500-member upsert costs the simulator about {per_request_ms:.1} ms of wall time at {IN_FLIGHT} in flight; \
         against a latency model of 300 ms + 2 ms/member (1300 ms) that is {:.1}% overhead",
        per_request_ms / 1300.0 * 100.0
    );
    child.kill().await.ok();
}
