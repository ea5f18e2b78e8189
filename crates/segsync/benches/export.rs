//! A full export of N profiles (default 100,000; `SEGSYNC_BENCH_PROFILES`) to the simulator
//! with a latency model, then a re-run without change and one after changing 1% of the
//! profiles. Prints wall time against the bound of design.md section 7 (at most 10 requests in
//! flight: bound = sum of the requests' modelled latencies / 10), and segsync's peak RSS.
//!
//! The latency model is Mailchimp's plausible 300 ms + 2 ms per member, scaled by
//! `SEGSYNC_BENCH_SCALE` (default 0.1) so the run takes seconds; both estimates are printed.
//!
//! Run: `cargo bench -p segsync --bench export`

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mailchimp_sim::{RunningSim, SimConfig};

const KEY_ENV: &str = "SEGSYNC_BENCH_KEY";

fn write_profiles(path: &Path, n: usize, changed_every: Option<usize>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        f,
        "customer_id,email,first_name,last_name,country,lifetime_value"
    )
    .unwrap();
    let countries = ["RO", "IT", "FR", "DE", "ES"];
    for i in 0..n {
        let last = match changed_every {
            Some(k) if i % k == 0 => "Schimbat",
            _ => "Popescu",
        };
        writeln!(
            f,
            "C{i:07},client.{i}@posta-bench.ro,Ana,{last},{},{}",
            countries[i % 5],
            (i * 37) % 1000
        )
        .unwrap();
    }
}

struct Measured {
    wall: Duration,
    peak_rss_mb: u64,
    status: std::process::ExitStatus,
}

/// Runs segsync with `args`, sampling its peak RSS while it runs.
fn segsync(home: &Path, args: &[&str], key: &str) -> Measured {
    let t = Instant::now();
    // SEGSYNC_BENCH_BIN runs another binary or a wrapper (perf record, for a profile).
    let bin = std::env::var("SEGSYNC_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_segsync").to_string());
    let mut child = std::process::Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(args)
        .env(KEY_ENV, key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("segsync starts");
    let pid = child.id();
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(v) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
            {
                peak_kb = peak_kb.max(v.parse().unwrap_or(0));
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Measured {
        wall: t.elapsed(),
        peak_rss_mb: peak_kb / 1024,
        status,
    }
}

fn main() {
    let n: usize = std::env::var("SEGSYNC_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let scale: f64 = std::env::var("SEGSYNC_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.1);
    let (base_ms, per_item_ms) = (300.0 * scale, 2.0 * scale);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = SimConfig::default();
    config.settings.latency.base_ms = base_ms;
    config.settings.latency.per_item_ms = per_item_ms;
    let sim = rt
        .block_on(RunningSim::start(config, "127.0.0.1:0"))
        .unwrap();
    let key = sim.add_account();
    let list = sim.create_list(&key, "Bench", false);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let csv = dir.path().join("profiles.csv");
    write_profiles(&csv, n, None);

    let ok = |m: &Measured, what: &str| {
        assert!(
            m.status.code().is_some_and(|c| c == 0),
            "{what} failed: {:?}",
            m.status
        )
    };
    let import = segsync(
        &home,
        &[
            "profiles",
            "import",
            csv.to_str().unwrap(),
            "--key",
            "customer_id",
        ],
        &key,
    );
    ok(&import, "import");
    for (name, pred) in [
        ("all-customers", "1 = 1"),
        ("big-spenders", "lifetime_value >= 500"),
        ("romania", "country = 'RO'"),
    ] {
        ok(
            &segsync(&home, &["segments", "add", name, "--where", pred], &key),
            "segments add",
        );
    }
    let api = sim.api_url();
    ok(
        &segsync(
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
            &key,
        ),
        "connection add",
    );
    ok(
        &segsync(
            &home,
            &[
                "export",
                "add",
                "bench",
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
                "all-customers",
                "--segment",
                "big-spenders",
                "--segment",
                "romania",
            ],
            &key,
        ),
        "export add",
    );

    println!("segsync export benchmark: {n} profiles, 3 overlapping segments, latency model {base_ms:.0} ms + {per_item_ms:.2} ms/member (300 ms + 2 ms/member x {scale})");
    println!("| run | wall s | requests (writes) | bound s | wall / bound | unscaled bound s | peak RSS MB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut previous = sim.counters();
    let mut first_writes = 0u64;
    let mut first_wall = 0.0;
    for (label, change) in [
        ("full export", None),
        ("re-run, 0% changed", Some(0usize)),
        ("re-run, 1% changed", Some(100usize)),
    ] {
        if let Some(k) = change.filter(|k| *k > 0) {
            write_profiles(&csv, n, Some(k));
            ok(
                &segsync(
                    &home,
                    &[
                        "profiles",
                        "import",
                        csv.to_str().unwrap(),
                        "--key",
                        "customer_id",
                    ],
                    &key,
                ),
                "re-import",
            );
        }
        let m = segsync(&home, &["run", "bench", "--quiet"], &key);
        ok(&m, label);
        let now = sim.counters();
        let writes = now.writes - previous.writes;
        // The modelled time of every request this run made, spread over 10 in flight.
        let requests = now.requests - previous.requests;
        let items = now.items - previous.items;
        let bound_ms = (requests as f64 * base_ms + items as f64 * per_item_ms) / 10.0;
        let wall = m.wall.as_secs_f64();
        if change.is_none() {
            first_writes = writes;
            first_wall = wall;
        }
        println!(
            "| {label} | {wall:.2} | {requests} ({writes}) | {:.2} | {:.2} | {:.1} | {} |",
            bound_ms / 1000.0,
            if bound_ms > 0.0 {
                wall / (bound_ms / 1000.0)
            } else {
                0.0
            },
            bound_ms / 1000.0 / scale,
            m.peak_rss_mb
        );
        if change.is_some() {
            println!(
                "|   vs full export | {:.1}% of time | {:.1}% of requests | | | | |",
                wall / first_wall * 100.0,
                writes as f64 / first_writes.max(1) as f64 * 100.0
            );
        }
        previous = now;
    }
    println!(
        "import of {n} profiles: {:.2} s, peak RSS {} MB",
        import.wall.as_secs_f64(),
        import.peak_rss_mb
    );
    rt.block_on(sim.shutdown());
}
