//! Issue 16's benchmark: several exports of one Mailchimp account at once, in one process
//! (as `segsync serve` runs them), sharing the account's connection budget (8 of Mailchimp's
//! 10 by default), against the simulator with its 10-connection cap and a latency model
//! (30 ms + 0.2 ms per member). Two and four exports, each alone on its audience, without
//! and with an "outside load" holding 3 of the account's 10 slots the whole time (the
//! account's other apps).
//!
//! Printed for each: 429s as a share of the requests (goal under 1%); the wall time over the
//! bound of all their requests spread over the slots actually available (goal at most 1.15):
//! bound = (requests x 30 ms + members x 0.2 ms) / min(budget, 10 - outside load), for the
//! whole runs and for their sending (from the first write on: without each run's local
//! preparation, which competes for the CPU); and each export's share of the slot time.
//!
//! Run: `cargo bench -p segsync --bench budget` (`SEGSYNC_BENCH_MEMBERS`, default 20,000
//! members per export).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mailchimp_sim::{RunningSim, SimConfig};
use segsync::app::App;
use segsync::engine::{self, RunSettings, Silent};
use segsync::mailchimp::DEFAULT_SLOT_BUDGET;

const KEY_ENV: &str = "SEGSYNC_BENCH_KEY";
const BASE_MS: f64 = 30.0;
const PER_ITEM_MS: f64 = 0.2;
const MAILCHIMP_CAP: usize = 10;

fn write_profiles(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "customer_id,email,first_name,last_name,country").unwrap();
    for i in 0..n {
        writeln!(
            f,
            "C{i:07},client.{i}@posta-bench.ro,Ana,Popescu,{}",
            ["RO", "IT", "FR"][i % 3]
        )
        .unwrap();
    }
}

fn segsync(home: &Path, args: &[&str], key: &str) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_segsync"))
        .arg("--home")
        .arg(home)
        .arg("--allow-private-targets")
        .args(args)
        .env(KEY_ENV, key)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("segsync starts");
    assert!(status.success(), "segsync {args:?} failed");
}

/// One scenario's figures.
struct Figures {
    throttled_share: f64,
    wall_over_bound: f64,
    wall_s: f64,
    bound_s: f64,
    /// From the first write to the end: the sending, without each run's local preparation
    /// (reading and staging its profiles, diffing) and first reads.
    sending_s: f64,
    shares: Vec<f64>,
    requests: u64,
    /// Requests of the account in flight on average while sending, as the simulator saw
    /// them (the outside load not included).
    in_flight: f64,
    /// The simulator's time per request over its modelled latency: above 1 when its CPU
    /// (shared with segsync's) is short.
    slowdown: f64,
}

fn scenario(
    rt: &tokio::runtime::Runtime,
    sim: &RunningSim,
    key: &str,
    exports: usize,
    outside: usize,
    members: usize,
) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let csv = dir.path().join("profiles.csv");
    write_profiles(&csv, members);
    segsync(
        &home,
        &[
            "profiles",
            "import",
            csv.to_str().unwrap(),
            "--key",
            "customer_id",
        ],
        key,
    );
    segsync(&home, &["segments", "add", "all", "--where", "1 = 1"], key);
    let api = sim.api_url();
    segsync(
        &home,
        &[
            "connection",
            "add",
            "bench",
            "--api-key-env",
            KEY_ENV,
            "--base-url",
            &api,
            "--accept-privacy-terms",
        ],
        key,
    );
    let names: Vec<String> = (0..exports).map(|i| format!("export-{i}")).collect();
    for name in &names {
        let list = sim.create_list(key, name, false);
        segsync(
            &home,
            &[
                "export",
                "add",
                name,
                "--connection",
                "bench",
                "--audience",
                &list,
                "--email-field",
                "email",
                "--first-name",
                "first_name",
                "--last-name",
                "last_name",
                "--segment",
                "all",
            ],
            key,
        );
    }
    let account = rt.block_on(async {
        reqwest::Client::new()
            .get(api.clone())
            .basic_auth("bench", Some(key))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["account_id"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let outside_load = |slots: usize| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .put(format!(
                    "{}/_sim/accounts/{account}/outside-load",
                    api.trim_end_matches("/3.0")
                ))
                .json(&serde_json::json!({ "slots": slots }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "outside load: {}", r.status());
        })
    };
    outside_load(outside);
    sim.sim().counters.reset();

    let app = App::at(home).unwrap().with_private_targets(true);
    let settings = RunSettings::default();
    let t = Instant::now();
    let first_write = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let watch = {
        let (sim, first_write) = (sim.sim().clone(), first_write.clone());
        rt.spawn(async move {
            while sim
                .counters
                .writes
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
            {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            *first_write.lock().unwrap() = Some(Instant::now());
        })
    };
    let reports = rt.block_on(async {
        let runs = names.iter().map(|name| {
            let (app, settings) = (app.clone(), settings.clone());
            let name = name.clone();
            tokio::spawn(async move { engine::run(&app, &name, &settings, Arc::new(Silent)).await })
        });
        futures_util::future::join_all(runs).await
    });
    let wall = t.elapsed().as_secs_f64();
    let sending = first_write
        .lock()
        .unwrap()
        .map_or(wall, |f| f.elapsed().as_secs_f64());
    watch.abort();
    outside_load(0);
    let c = sim.counters();
    let mut slot_ms = Vec::new();
    for r in reports {
        let r = r.unwrap().expect("the run succeeds");
        assert_eq!(r.outcome.as_str(), "succeeded");
        slot_ms.push(r.counts.slot_ms as f64);
    }
    let total_slot: f64 = slot_ms.iter().sum();
    let available = DEFAULT_SLOT_BUDGET.min(MAILCHIMP_CAP - outside) as f64;
    let modelled_ms = c.requests as f64 * BASE_MS + c.items as f64 * PER_ITEM_MS;
    let bound = modelled_ms / 1000.0 / available;
    Figures {
        throttled_share: c.too_many_requests as f64 / c.requests.max(1) as f64,
        wall_over_bound: wall / bound,
        wall_s: wall,
        bound_s: bound,
        sending_s: sending,
        shares: slot_ms.iter().map(|s| s / total_slot.max(1.0)).collect(),
        requests: c.requests,
        in_flight: c.in_flight_micros as f64 / 1e6 / sending,
        slowdown: c.in_flight_micros as f64 / 1000.0 / modelled_ms,
    }
}

fn main() {
    let members: usize = std::env::var("SEGSYNC_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = SimConfig::default();
    config.settings.max_in_flight = MAILCHIMP_CAP;
    config.settings.latency.base_ms = BASE_MS;
    config.settings.latency.per_item_ms = PER_ITEM_MS;
    let sim = rt
        .block_on(RunningSim::start(config, "127.0.0.1:0"))
        .unwrap();
    println!(
        "segsync connection budget benchmark: exports of {members} members each on one account at once, one process, budget {DEFAULT_SLOT_BUDGET}; simulator cap {MAILCHIMP_CAP} in flight, latency {BASE_MS} ms + {PER_ITEM_MS} ms/member"
    );
    println!("| exports | outside load | requests | 429s / requests | bound s | wall s | wall / bound | sending s | sending / bound | in flight (avg) | request time / modelled | each export's share of the slots |");
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for (exports, outside) in [(2, 0), (4, 0), (2, 3), (4, 3)] {
        // A fresh account per scenario: its budget starts at the cap.
        let key = sim.add_account();
        let f = scenario(&rt, &sim, &key, exports, outside, members);
        let shares: Vec<String> = f
            .shares
            .iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect();
        println!(
            "| {exports} | {outside} slots | {} | {:.2}% | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {} |",
            f.requests,
            f.throttled_share * 100.0,
            f.bound_s,
            f.wall_s,
            f.wall_over_bound,
            f.sending_s,
            f.sending_s / f.bound_s,
            f.in_flight,
            f.slowdown,
            shares.join(" / ")
        );
    }
}
