//! Issue 6's benchmark: segsync at a million profiles, against the bound of design.md
//! section 7, in one run.
//!
//! ```text
//! cargo bench -p segsync --bench scale
//! ```
//!
//! Knobs (environment):
//! - `SEGSYNC_BENCH_PROFILES` (default 1,000,000): profiles of the full export, the re-runs,
//!   the pipeline and the simulator parts.
//! - `SEGSYNC_BENCH_SCALE` (default 0.1): the latency model is Mailchimp's plausible 300 ms per
//!   request + 2 ms per member, times this; both the scaled and the unscaled figures are shown.
//! - `SEGSYNC_BENCH_PARTS` (default all): a comma list of
//!   `full,reruns,pipeline,memory,naive,sim,pgsource` (`reruns` runs `full` first, which it
//!   needs).
//! - `SEGSYNC_BENCH_MEMORY_SIZES` (default `100000,1000000,3000000`): the sizes of `memory`.
//! - `SEGSYNC_BENCH_PG_SIZES` (default `100000,1000000`): the sizes of `pgsource`.
//! - `SEGSYNC_BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`): the
//!   maintenance database of the PostgreSQL server `pgsource` uses; its role must be able to
//!   create databases without a password (trust). Unreachable, the bench fails: it never
//!   skips the part.
//! - `SEGSYNC_BENCH_NAIVE_SAMPLE` (default 5,000): members sent the naive ways; the figures
//!   are extrapolated linearly to the full export's members.
//! - `SEGSYNC_BENCH_BATCH_OPS_PER_S` (default 16, as Mailchimp was seen to run `/batches`
//!   operations): the unscaled speed of `/batches` jobs in the naive baseline.
//! - `SEGSYNC_BENCH_JSON=path`: every figure as JSON too.
//! - `SEGSYNC_BENCH_DIR`: where the profiles and homes go (default: a temporary folder).
//! - `SEGSYNC_BENCH_BIN`: another `segsync` binary, or a wrapper (perf record, for a profile).
//!
//! segsync is driven through its binary (`run --json`, `plan --json`), as a user would; its
//! peak RSS is sampled from /proc (VmHWM), its CPU time comes from `wait4`, its local stages from its
//! debug log (`SEGSYNC_LOG=segsync=debug`: "profiles read", "audience read", "planned"). The
//! simulator runs in this process; its counters give the requests by endpoint, their items
//! (for the bound) and the time requests held an in-flight slot (for the average in flight).
//!
//! `pgsource` (issue 5) keeps the profiles in PostgreSQL: for each size, a new database
//! (dropped at the end, also on a panic), the same generated profiles loaded into a typed
//! table `crm.customers` with `COPY ... FROM STDIN (FORMAT csv)`, a profile source on it
//! (`profiles source add`), the same four segments as PostgreSQL SQL (`segments add
//! --source`), the same export; then `plan --json` and one `run` at latency 0, measured like
//! the `memory` part, and PostgreSQL's share of the profile pass measured apart: the union of
//! the predicates counted by PostgreSQL, and the run's one query streamed through segsync's
//! cursor without staging.
//!
//! Nothing is asserted about times: the figures are printed (BENCHMARKS.md explains them).
//! Correctness is checked (audience size, tag sizes, segment sizes, no write on an unchanged
//! re-run); a failed check is printed and makes the bench exit with status 1.

mod bench;
mod drive;
mod full;
mod generate;
mod naive;
mod pg;
mod pgsource;
mod pipeline;
mod report;
mod sample;
mod sim;
mod throughput;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use bench::Bench;
use drive::Runner;
use generate::order_dates;
use report::thousands;
use sim::{Latency, BASE_MS, PER_ITEM_MS};

const PARTS: [&str; 7] = [
    "full", "reruns", "pipeline", "memory", "naive", "sim", "pgsource",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not valid")),
        Err(_) => default,
    }
}

fn main() {
    let n: usize = env_or("SEGSYNC_BENCH_PROFILES", 1_000_000);
    let scale: f64 = env_or("SEGSYNC_BENCH_SCALE", 0.1);
    let parts: BTreeSet<String> = match std::env::var("SEGSYNC_BENCH_PARTS") {
        Ok(v) => v
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Err(_) => PARTS.iter().map(|p| p.to_string()).collect(),
    };
    if let Some(p) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        eprintln!(
            "SEGSYNC_BENCH_PARTS: unknown part {p:?}; the parts are {}",
            PARTS.join(",")
        );
        std::process::exit(2);
    }
    let memory_sizes: Vec<usize> = std::env::var("SEGSYNC_BENCH_MEMORY_SIZES")
        .unwrap_or_else(|_| "100000,1000000,3000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .expect("SEGSYNC_BENCH_MEMORY_SIZES: a comma list of sizes")
        })
        .collect();
    let pg_sizes: Vec<usize> = std::env::var("SEGSYNC_BENCH_PG_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .expect("SEGSYNC_BENCH_PG_SIZES: a comma list of sizes")
        })
        .collect();
    let pg_url = std::env::var("SEGSYNC_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let naive_sample: usize = env_or("SEGSYNC_BENCH_NAIVE_SAMPLE", 5_000);
    let batch_ops_per_s: f64 = env_or("SEGSYNC_BENCH_BATCH_OPS_PER_S", 16.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("SEGSYNC_BENCH_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.path().to_path_buf(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The account every segsync home talks to is made per simulator; the key is set below.
    let bin = std::env::var("SEGSYNC_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_segsync").to_string());
    let mut bench = Bench {
        n,
        scale,
        lat: Latency {
            base_ms: BASE_MS * scale,
            per_item_ms: PER_ITEM_MS * scale,
        },
        rt,
        runner: Runner {
            bin,
            key: String::new(),
            scratch: dir.clone(),
        },
        dir,
        dates: order_dates(),
        report: serde_json::Map::new(),
        failures: Vec::new(),
        full: None,
        pipelines: BTreeMap::new(),
    };
    // One API key for every simulator: each simulator gets the same account key.
    bench.runner.key = mailchimp_sim::store::new_api_key("us6");
    println!(
        "# segsync scale benchmark: {} profiles, latency model 300 ms + 2 ms/member x {scale}, parts {}",
        thousands(n as u64),
        parts.iter().cloned().collect::<Vec<_>>().join(",")
    );
    let t = Instant::now();
    let has = |p: &str| parts.contains(p);
    if has("full") || has("reruns") {
        bench.full_and_reruns(has("reruns"));
    }
    if has("pipeline") {
        bench.pipeline_part();
    }
    if has("memory") {
        bench.memory_part(&memory_sizes);
    }
    if has("sim") {
        bench.sim_part();
    }
    // After `pipeline` and `memory`: their figures at the same sizes are shown for comparison.
    if has("pgsource") {
        bench.pgsource_part(&pg_url, &pg_sizes);
    }
    if has("naive") {
        bench.naive_part(naive_sample, batch_ops_per_s);
    }
    bench.targets();
    println!("\n(bench took {:.0} s)", t.elapsed().as_secs_f64());
    bench.report.insert(
        "config".into(),
        json!({"profiles": n, "scale": scale, "parts": parts, "memory_sizes": memory_sizes,
            "pg_sizes": pg_sizes,
            "naive_sample": naive_sample, "batch_ops_per_s": batch_ops_per_s,
            "base_ms": bench.lat.base_ms, "per_item_ms": bench.lat.per_item_ms,
            "failures": bench.failures}),
    );
    if let Some(path) = std::env::var_os("SEGSYNC_BENCH_JSON") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&Value::Object(bench.report)).unwrap(),
        )
        .expect("writing SEGSYNC_BENCH_JSON");
    }
    if !bench.failures.is_empty() {
        eprintln!("{} check(s) failed:", bench.failures.len());
        for f in &bench.failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
