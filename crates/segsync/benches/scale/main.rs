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
//!   `full,reruns,pipeline,memory,naive,sim,pgsource,mysqlsource` (`reruns` runs `full`
//!   first, which it needs).
//! - `SEGSYNC_BENCH_MEMORY_SIZES` (default `100000,1000000,3000000`): the sizes of `memory`.
//! - `SEGSYNC_BENCH_PG_SIZES` (default `100000,1000000`): the sizes of `pgsource`.
//! - `SEGSYNC_BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`): the
//!   maintenance database of the PostgreSQL server `pgsource` uses; its role must be able to
//!   create databases without a password (trust). Unreachable, the bench fails: it never
//!   skips the part.
//! - `SEGSYNC_BENCH_MYSQL_SIZES` (default `100000,1000000`): the sizes of `mysqlsource`.
//! - `SEGSYNC_BENCH_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/mysql`): a MySQL or
//!   MariaDB server `mysqlsource` uses; its user must be able to create databases. Unreachable,
//!   the bench fails: it never skips the part.
//! - `SEGSYNC_BENCH_NAIVE_SAMPLE` (default 5,000): members sent the naive ways; the figures
//!   are extrapolated linearly to the full export's members.
//! - `SEGSYNC_BENCH_BATCH_OPS_PER_S` (default 16, as Mailchimp was seen to run `/batches`
//!   operations): the unscaled speed of `/batches` jobs in the naive baseline.
//! - `SEGSYNC_BENCH_FULL_PASSES` (set: on): every run evaluates every profile (`run --full`),
//!   as re-runs did before they evaluated only what changed; for comparing the two.
//! - `SEGSYNC_BENCH_JSON=path`: every figure as JSON too.
//! - `SEGSYNC_BENCH_DIR`: where the profiles and homes go (default: a temporary folder).
//! - `SEGSYNC_BENCH_BIN`: another `segsync` binary, or a wrapper (perf record, for a profile).
//!
//! segsync is driven through its binary (`run --json`, `plan --json`), as a user would; its
//! peak RSS is sampled from /proc (VmHWM), its CPU time is what reaping it adds to this
//! process's children's totals (`getrusage`), its local stages come from its debug log
//! (`SEGSYNC_LOG=segsync=debug`: "profiles read", "audience read", "planned"). The simulator
//! runs in this process; its counters give the requests by endpoint, their items (for the
//! bound) and the time requests held an in-flight slot (for the average in flight).
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
//! `mysqlsource` (issue 19) does the same with the profiles in a MySQL / MariaDB table
//! `customers` (loaded with multi-row INSERTs), the segments in MySQL's SQL, and a source
//! added with `--mysql`; its figures are printed beside `pgsource`'s and the embedded store's
//! at the same sizes when those parts ran too.
//!
//! Nothing is asserted about times: the figures are printed (BENCHMARKS.md explains them).
//! Correctness is checked (audience size, tag sizes, segment sizes, no write on an unchanged
//! re-run); a failed check is printed and makes the bench exit with status 1.

/// The simulator runs in this process: it gets the allocator of its own binary (and of
/// segsync's). Under glibc's malloc it took 26.3 s of CPU for a first export of 1M, 19.1 s
/// under this one, on the two cores segsync shares with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod drive;
mod full;
mod generate;
mod goals;
mod mysql;
mod mysqlsource;
mod naive;
mod pg;
mod pgcursor;
mod pgsource;
mod pipeline;
mod report;
mod sample;
mod sim;
mod throughput;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use bench::Bench;
use report::thousands;

const PARTS: [&str; 8] = [
    "full",
    "reruns",
    "pipeline",
    "memory",
    "naive",
    "sim",
    "pgsource",
    "mysqlsource",
];

/// What the environment asks of this run (the module's doc lists the variables).
struct Knobs {
    n: usize,
    scale: f64,
    parts: BTreeSet<String>,
    memory_sizes: Vec<usize>,
    pg_sizes: Vec<usize>,
    pg_url: String,
    mysql_sizes: Vec<usize>,
    mysql_url: String,
    naive_sample: usize,
    batch_ops_per_s: f64,
    dir: Option<PathBuf>,
    bin: String,
    json: Option<OsString>,
}

impl Knobs {
    /// Reads the knobs; exits with status 2 on an unknown part, panics on a value that does
    /// not parse.
    fn from_env() -> Knobs {
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
        Knobs {
            n,
            scale,
            parts,
            memory_sizes: env_sizes("SEGSYNC_BENCH_MEMORY_SIZES", "100000,1000000,3000000"),
            pg_sizes: env_sizes("SEGSYNC_BENCH_PG_SIZES", "100000,1000000"),
            pg_url: std::env::var("SEGSYNC_BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            mysql_sizes: env_sizes("SEGSYNC_BENCH_MYSQL_SIZES", "100000,1000000"),
            mysql_url: std::env::var("SEGSYNC_BENCH_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into()),
            naive_sample: env_or("SEGSYNC_BENCH_NAIVE_SAMPLE", 5_000),
            batch_ops_per_s: env_or("SEGSYNC_BENCH_BATCH_OPS_PER_S", 16.0),
            dir: std::env::var_os("SEGSYNC_BENCH_DIR").map(PathBuf::from),
            bin: std::env::var("SEGSYNC_BENCH_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_segsync").to_string()),
            json: std::env::var_os("SEGSYNC_BENCH_JSON"),
        }
    }

    fn has(&self, part: &str) -> bool {
        self.parts.contains(part)
    }

    /// The `config` of the JSON report.
    fn json(&self, bench: &Bench) -> Value {
        json!({"profiles": self.n, "scale": self.scale, "parts": self.parts,
            "memory_sizes": self.memory_sizes,
            "pg_sizes": self.pg_sizes,
            "mysql_sizes": self.mysql_sizes,
            "naive_sample": self.naive_sample, "batch_ops_per_s": self.batch_ops_per_s,
            "base_ms": bench.lat.base_ms, "per_item_ms": bench.lat.per_item_ms,
            "failures": bench.failures})
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not valid")),
        Err(_) => default,
    }
}

/// A comma list of sizes (`_` allowed as a digit separator).
fn env_sizes(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|e| panic!("{name}: a comma list of sizes: {e:?}"))
        })
        .collect()
}

fn main() {
    let knobs = Knobs::from_env();
    let tmp = tempfile::tempdir().unwrap();
    let dir = match &knobs.dir {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let mut bench = Bench::new(knobs.n, knobs.scale, dir, knobs.bin.clone());
    println!(
        "# segsync scale benchmark: {} profiles, latency model 300 ms + 2 ms/member x {}, parts {}",
        thousands(knobs.n as u64),
        knobs.scale,
        knobs.parts.iter().cloned().collect::<Vec<_>>().join(",")
    );
    let t = Instant::now();
    if knobs.has("full") || knobs.has("reruns") {
        bench.full_and_reruns(knobs.has("reruns"));
    }
    if knobs.has("pipeline") {
        bench.pipeline_part();
    }
    if knobs.has("memory") {
        bench.memory_part(&knobs.memory_sizes);
    }
    if knobs.has("sim") {
        bench.sim_part();
    }
    // After `pipeline` and `memory`: their figures at the same sizes are shown for comparison.
    if knobs.has("pgsource") {
        bench.pgsource_part(&knobs.pg_url, &knobs.pg_sizes);
    }
    if knobs.has("mysqlsource") {
        bench.mysqlsource_part(&knobs.mysql_url, &knobs.mysql_sizes);
    }
    if knobs.has("naive") {
        bench.naive_part(knobs.naive_sample, knobs.batch_ops_per_s);
    }
    bench.targets();
    bench.goals_17();
    println!("\n(bench took {:.0} s)", t.elapsed().as_secs_f64());
    let config = knobs.json(&bench);
    bench.finish(config, knobs.json.as_deref());
}
