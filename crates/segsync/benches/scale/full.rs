//! Parts `full` and `reruns`: the full export of the generated profiles against the latency
//! model, then re-runs after changing 0%, 0.1%, 1% and 10% of them.

use std::path::PathBuf;

use mailchimp_sim::RunningSim;
use serde_json::{json, Value};

use crate::bench::{Bench, FullFigures, Home, RunFigures};
use crate::generate::{mix, SEGMENTS};
use crate::report::{opt, pct, thousands};
use crate::sim::{start_sim, Latency};

/// The full export's simulator, profiles and home, which the re-runs go on from.
struct FullRun {
    sim: RunningSim,
    csv: PathBuf,
    revs: Vec<u8>,
    home: Home,
    figures: RunFigures,
}

impl Bench {
    pub fn full_and_reruns(&mut self, reruns: bool) {
        let mut full = self.full_export();
        if reruns {
            self.reruns(&mut full);
        }
        self.rt.block_on(full.sim.shutdown());
    }

    fn full_export(&mut self) -> FullRun {
        let n = self.n;
        println!(
            "\n## Full export of {} profiles (latency model {:.1} ms + {:.2} ms/member: 300 ms + 2 ms/member x {})\n",
            thousands(n as u64),
            self.lat.base_ms,
            self.lat.per_item_ms,
            self.scale
        );
        let sim = start_sim(&self.rt, &self.lat, &self.runner.key);
        let csv = self.dir.join("full.csv");
        let revs = vec![0u8; n];
        let expect = self.generate(&csv, n, &revs);
        println!(
            "profiles: {} ({} invalid addresses, {} duplicate addresses); in a segment: {}; members expected: {}; tags expected: {}",
            thousands(expect.profiles),
            thousands(expect.invalid),
            thousands(expect.duplicate_profiles),
            thousands(expect.selected),
            thousands(expect.members),
            SEGMENTS
                .iter()
                .zip(expect.tag_members)
                .map(|((s, _), c)| format!("{s} {}", thousands(c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let home = self.home("full", &csv, &sim, &expect);
        let full = self.measure_run(&sim, &home.path, "full export");
        self.check_counts(&full, &expect, "");
        self.check_audience(&sim, &home.list, &expect, "after the full export");
        full.print_full(&self.lat, self.scale, n);
        self.full = Some(FullFigures {
            members: expect.members,
            wall: full.proc.wall,
            requests: full.seen.requests,
            sim_cpu: full.sim_cpu,
        });
        self.report.insert(
            "full".into(),
            json!({
                "profiles": n,
                "members": expect.members,
                "import_seconds": home.import.wall,
                "import_peak_rss_mb": home.import.rss_mb,
                "run": full.json(&self.lat, self.scale),
            }),
        );
        FullRun {
            sim,
            csv,
            revs,
            home,
            figures: full,
        }
    }

    fn reruns(&mut self, full: &mut FullRun) {
        println!("\n## Re-runs after changing some profiles (each a new order: value, last order, updated_at)\n");
        println!("| run | changed profiles | wall s | requests (writes) | bound s | wall / bound | requests vs full | writes vs full | time vs full | peak RSS MB | CPU s |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut rows = Vec::new();
        let mut endpoint_lines = Vec::new();
        for (k, share) in [(1u64, 0.0), (2, 0.001), (3, 0.01), (4, 0.1)] {
            let (row, line) = self.rerun(full, k, share);
            rows.push(row);
            endpoint_lines.push(line);
        }
        println!();
        for l in endpoint_lines {
            println!("- {l}");
        }
        self.report.insert("reruns".into(), Value::Array(rows));
    }

    /// Re-run `k`: changes `share` of the profiles once more, re-imports them, runs the export
    /// and prints its row; returns its JSON and its line of details.
    fn rerun(&mut self, full: &mut FullRun, k: u64, share: f64) -> (Value, String) {
        let n = self.n;
        let FullRun {
            sim,
            csv,
            revs,
            home,
            figures: full,
        } = full;
        let threshold = (share * 1_000_000.0) as u64;
        let mut changed = 0u64;
        for (i, r) in revs.iter_mut().enumerate() {
            if mix(i as u64 * 31 + k) % 1_000_000 < threshold {
                *r = r.saturating_add(1);
                changed += 1;
            }
        }
        let expect = self.generate(csv, n, revs);
        let import = self.runner.import(&home.path, csv);
        let label = format!("re-run, {}% changed", share * 100.0);
        let r = self.measure_run(sim, &home.path, &label);
        self.check_audience(sim, &home.list, &expect, &label);
        if share == 0.0 {
            self.check(
                r.seen.writes == 0,
                format!("{label}: {} write requests (expected none)", r.seen.writes),
            );
        }
        let bound = r.seen.bound_s(&self.lat);
        println!(
            "| {label} | {} | {:.2} | {} ({}) | {:.2} | {} | {} | {} | {} | {:.0} | {:.2} |",
            thousands(changed),
            r.proc.wall,
            thousands(r.seen.requests),
            thousands(r.seen.writes),
            bound,
            if bound > 0.0 {
                format!("{:.2}", r.proc.wall / bound)
            } else {
                "n/a".into()
            },
            pct(r.seen.requests as f64, full.seen.requests as f64),
            pct(r.seen.writes as f64, full.seen.writes as f64),
            pct(r.proc.wall, full.proc.wall),
            r.proc.rss_mb,
            r.proc.cpu,
        );
        let line = format!(
            "{label}: {}; {}; stages: read+evaluate {} s, audience read {} s, diff+plan {} s; re-import {:.2} s",
            r.seen.endpoints(),
            r.report["counts"]["evaluation"],
            opt(r.stages.read_s(), 2),
            opt(r.stages.audience_s(), 2),
            opt(r.stages.diff_plan_s(), 2),
            import.wall
        );
        let mut j = r.json(&self.lat, self.scale);
        j["changed_profiles"] = json!(changed);
        j["share"] = json!(share);
        j["requests_vs_full"] = json!(r.seen.requests as f64 / full.seen.requests as f64);
        j["writes_vs_full"] = json!(r.seen.writes as f64 / full.seen.writes.max(1) as f64);
        j["time_vs_full"] = json!(r.proc.wall / full.proc.wall);
        j["reimport_seconds"] = json!(import.wall);
        (j, line)
    }
}

impl RunFigures {
    fn print_full(&self, lat: &Latency, scale: f64, n: usize) {
        let bound = self.seen.bound_s(lat);
        let wall = self.proc.wall;
        // Unscaled: the network part scales with the model, the local part does not.
        let local = self.local_s().unwrap_or(0.0);
        let unscaled_wall = local + (wall - local) / scale;
        println!("| profiles | wall s | bound s | wall / bound | in flight avg (while sending) | requests (writes) | peak RSS MB | CPU s | unscaled wall s (est.) | unscaled bound s |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        println!(
            "| {} | {wall:.2} | {bound:.2} | {:.2} | {:.1} ({}) | {} ({}) | {:.0} | {:.2} | {unscaled_wall:.0} | {:.0} |",
            thousands(n as u64),
            wall / bound,
            self.seen.in_flight_s / wall,
            opt(self.in_flight_sending(), 1),
            thousands(self.seen.requests),
            thousands(self.seen.writes),
            self.proc.rss_mb,
            self.proc.cpu,
            bound / scale
        );
        println!();
        println!("- requests by endpoint: {}", self.seen.endpoints());
        println!(
            "- {}: stages before the first write: read+evaluate {} s, audience read {} s, diff+plan {} s; 429 answers: {}; simulator CPU {:.2} s; requests held their slots {:.1}% longer than the model (the simulator's own handling)",
            self.label,
            opt(self.stages.read_s(), 2),
            opt(self.stages.audience_s(), 2),
            opt(self.stages.diff_plan_s(), 2),
            self.seen.too_many,
            self.sim_cpu,
            self.seen.overhead_share(lat) * 100.0
        );
        let c = &self.report["counts"];
        println!(
            "- segsync's report: outcome {}, created {}, updated {}, tagged {}, refused {}, duplicates merged {}, requests {}, retries {}",
            self.report["outcome"], c["created"], c["updated"], c["tagged"], c["refused"], c["duplicates"], c["requests"], c["retries"]
        );
    }
}
