//! The full fault soak (RELIABILITY.md): an export of 100,000 profiles against the simulator
//! answering 10% of requests with 5xx, 3% starting a burst of four 429s, 5% slower than the
//! client's timeout and 5% with the connection dropped after the write was applied, all at
//! once, for a first run and a second run after a tenth of the profiles changed. Checks the
//! audience, the run counts against the simulator's, and that only the planted bad records
//! are reported. The CI form of the same code is the test
//! `soak::a_run_under_every_fault_at_once_ends_right_and_reports_only_permanent_errors`.
//!
//! ```text
//! cargo run --release -p segsync --example soak
//! cargo run --release -p segsync --example soak -- --profiles 20000 --seed 7
//! ```

#[path = "../tests/cli_e2e/common/mod.rs"]
mod common;
#[path = "../tests/cli_e2e/soak.rs"]
mod soak;
mod support;
#[path = "../tests/cli_e2e/torture.rs"]
#[allow(dead_code)] // the soak uses its profile set only
mod torture;

fn main() {
    common::set_bin(support::segsync_binary());
    let mut cfg = soak::Config::full();
    if let Some(n) = support::option("--profiles") {
        cfg.profiles = n;
    }
    if let Some(n) = support::option("--seed") {
        cfg.seed = n;
    }
    let f = &cfg.faults;
    eprintln!(
        "fault soak: {} profiles; 5xx {:.0}%, 429 bursts {:.0}% x{}, slow {:.0}% (+{} ms, timeout {} s), dropped {:.0}%",
        cfg.profiles,
        f.error_5xx_rate * 100.0,
        f.burst_429_rate * 100.0,
        f.burst_429_len,
        f.slow_rate * 100.0,
        f.slow_ms,
        cfg.timeout,
        f.drop_rate * 100.0
    );
    let report = soak::run(&cfg);
    println!("{}", report.summary());
    println!("nothing lost: both runs ended with the audience exactly right, their counts the simulator's, and no transient fault reported as a record error");
}
