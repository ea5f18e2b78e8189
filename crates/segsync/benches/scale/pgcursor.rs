//! Part `pgsource`'s re-runs past a cursor column (issue 17): the source is added with
//! `--cursor updated_at`; after its first run, a re-run with nothing written, then one after
//! 1% of the rows were written (their city and `updated_at` changed), each beside the first
//! run's wall time.

use std::path::Path;

use serde_json::{json, Value};

use crate::bench::{Bench, RunFigures};
use mailchimp_sim::RunningSim;

/// One measured re-run.
pub struct CursorRun {
    pub wall: f64,
    pub rss: f64,
    pub requests: u64,
    pub writes: u64,
    pub mode: String,
    pub changed: u64,
    pub evaluated: u64,
}

impl CursorRun {
    fn of(r: &RunFigures) -> CursorRun {
        let e = &r.report["counts"]["evaluation"];
        CursorRun {
            wall: r.proc.wall,
            rss: r.proc.rss_mb,
            requests: r.seen.requests,
            writes: r.seen.writes,
            mode: e["mode"].as_str().unwrap_or("?").to_string(),
            changed: e["changed_profiles"].as_u64().unwrap_or(0),
            evaluated: e["evaluated_profiles"].as_u64().unwrap_or(0),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "wall_seconds": self.wall, "peak_rss_mb": self.rss, "requests": self.requests,
            "writes": self.writes, "mode": self.mode, "changed_profiles": self.changed,
            "evaluated_profiles": self.evaluated,
        })
    }
}

/// The re-runs of a PostgreSQL source past its cursor.
pub struct CursorFigures {
    /// Rows written between the first and the third run.
    pub written: u64,
    pub unchanged: CursorRun,
    pub one_percent: CursorRun,
}

impl Bench {
    /// The two re-runs after the first run of `home`'s export, whose profiles are in the
    /// database at `url`.
    pub fn pg_cursor_reruns(&mut self, sim: &RunningSim, home: &Path, url: &str) -> CursorFigures {
        // Every run a full pass when the bench compares with them (SEGSYNC_BENCH_FULL_PASSES).
        let full = std::env::var_os("SEGSYNC_BENCH_FULL_PASSES").is_some();
        let label = "re-run past the cursor, nothing written";
        let unchanged = CursorRun::of(&self.measure_run(sim, home, label));
        self.check(
            unchanged.writes == 0 && (full || unchanged.mode == "incremental"),
            format!(
                "{label}: {} writes, {} pass",
                unchanged.writes, unchanged.mode
            ),
        );
        let written = write_one_percent(url);
        let label = "re-run past the cursor, 1% of the rows written";
        let one_percent = CursorRun::of(&self.measure_run(sim, home, label));
        self.check(
            full || (one_percent.mode == "incremental" && one_percent.changed >= written),
            format!(
                "{label}: {} pass, {} changed profiles for {written} rows written",
                one_percent.mode, one_percent.changed
            ),
        );
        CursorFigures {
            written,
            unchanged,
            one_percent,
        }
    }
}

/// Writes 1% of the rows (picked by their key's hash): a new city, and an `updated_at` past
/// every other (as a trigger setting it on write would).
fn write_one_percent(url: &str) -> u64 {
    let mut pg = postgres::Client::connect(url, postgres::NoTls).expect("connect for the write");
    pg.execute(
        "UPDATE crm.customers SET city = city || ' Nord',
           updated_at = (SELECT max(updated_at) FROM crm.customers) + interval '1 hour'
         WHERE abs(hashtext(customer_id)) % 100 = 0",
        &[],
    )
    .expect("write 1% of the rows")
}
