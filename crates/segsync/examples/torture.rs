//! The full crash torture (RELIABILITY.md): an export of 100,000 profiles against the
//! simulator, killed with SIGKILL 22 times at seeded random moments (during `profiles import`,
//! during the read and diff, during the upserts, during the tagging) and 4 more times by the
//! engine's hook right after an acknowledged request and before its checkpoint; resumed each
//! time; then checked against one uninterrupted run. The CI form of the same code is the test
//! `torture::kill_9_at_seeded_random_moments_loses_and_duplicates_nothing` (cli_e2e).
//!
//! ```text
//! cargo run --release -p segsync --example torture
//! cargo run --release -p segsync --example torture -- --profiles 20000 --kills 30 --hook-kills 6 --seed 7 --in-flight 10
//! ```
//!
//! Prints a line per interruption and the figures; exits non-zero (a panic) on the first
//! broken promise.

#[path = "../tests/cli_e2e/common/mod.rs"]
mod common;
mod support;
#[path = "../tests/cli_e2e/torture.rs"]
mod torture;

fn main() {
    common::set_bin(support::segsync_binary());
    let mut cfg = torture::Config::full();
    if let Some(n) = support::option("--profiles") {
        cfg.profiles = n;
    }
    if let Some(n) = support::option("--kills") {
        cfg.kills = n;
    }
    if let Some(n) = support::option("--hook-kills") {
        cfg.hook_kills = n;
    }
    if let Some(n) = support::option("--seed") {
        cfg.seed = n;
    }
    if let Some(n) = support::option("--in-flight") {
        cfg.in_flight = n;
    }
    eprintln!(
        "crash torture: {} profiles, {} SIGKILLs + {} hook kills, seed {}, {} in flight, latency {} ms + {} ms/member",
        cfg.profiles, cfg.kills, cfg.hook_kills, cfg.seed, cfg.in_flight, cfg.latency.0, cfg.latency.1
    );
    let report = torture::run(&cfg);
    println!("{}", report.summary());
    println!("nothing lost: the audience and the snapshot equal one uninterrupted run's, every member created once, every planted bad record reported, both SQLite files pass integrity_check after every kill");
}
