//! Parts `pipeline` and `memory`: segsync's local stages (import, the profile pass, diff and
//! plan) and a whole run against a simulator with no latency, at one size and as the
//! profiles grow.

use serde_json::{json, Value};

use crate::bench::Bench;
use crate::drive::Stages;
use crate::report::{opt, plan_json, run_json, thousands};
use crate::sim::{start_sim, Latency};

impl Bench {
    /// Import, segments, plan and a run against a simulator with no latency, at `size`.
    pub fn pipeline(&mut self, size: usize) -> Pipeline {
        if let Some(p) = self.pipelines.get(&size) {
            return p.clone();
        }
        eprintln!(
            "[bench] local pipeline at {} profiles...",
            thousands(size as u64)
        );
        let sim = start_sim(&self.rt, &Latency::ZERO, &self.runner.key);
        let name = format!("pipeline-{size}");
        let csv = self.dir.join(format!("{name}.csv"));
        let expect = self.generate(&csv, size, &[]);
        let home = self.home(&name, &csv, &sim, &expect);
        let plan = self
            .runner
            .must(&home.path, &["plan", "bench", "--json"], &[0]);
        let plan_stages = Stages::of(&plan.stderr);
        let plan_json = plan.json();
        let r = self.measure_run(&sim, &home.path, "run at latency 0");
        self.check_audience(
            &sim,
            &home.list,
            &expect,
            &format!("run at latency 0, {size} profiles"),
        );
        let p = Pipeline {
            size,
            members: expect.members,
            import_s: home.import.wall,
            import_rss: home.import.rss_mb,
            segments_s: home.segments.iter().map(|s| s.wall).sum(),
            plan_wall: plan.wall,
            plan_rss: plan.rss_mb,
            plan_cpu: plan.cpu,
            plan_requests: plan_json["summary"]["requests"].as_u64(),
            stages: plan_stages,
            run_wall: r.proc.wall,
            run_rss: r.proc.rss_mb,
            run_cpu: r.proc.cpu,
            run_stages: r.stages,
            run_requests: r.seen.requests,
            run_items: r.seen.items,
            run_sim_cpu: r.sim_cpu,
        };
        self.rt.block_on(sim.shutdown());
        let _ = std::fs::remove_file(&csv);
        let _ = std::fs::remove_dir_all(&home.path);
        self.pipelines.insert(size, p.clone());
        p
    }

    pub fn pipeline_part(&mut self) {
        let p = self.pipeline(self.n);
        println!(
            "\n## Local pipeline at {} profiles (no network but one audience read from a simulator with no latency)\n",
            thousands(p.size as u64)
        );
        let rate = |s: Option<f64>| s.map(|s| p.size as f64 / s);
        let rows = [
            ("import (CSV into the profile store)", Some(p.import_s)),
            (
                "segment evaluation: the run's read (one pass, 4 predicates, addresses normalised, duplicates merged)",
                p.stages.read_s(),
            ),
            ("diff + plan", p.stages.diff_plan_s()),
            (
                "import + segment evaluation",
                p.stages.read_s().map(|r| r + p.import_s),
            ),
            (
                "local pipeline: import + read + diff + plan",
                p.stages
                    .read_s()
                    .zip(p.stages.diff_plan_s())
                    .map(|(r, d)| r + d + p.import_s),
            ),
            (
                "whole run at latency 0, segsync CPU (read, diff, plan, encoding, decoding, checkpoints)",
                Some(p.run_cpu),
            ),
        ];
        println!("| stage | seconds | profiles/s |");
        println!("| --- | ---: | ---: |");
        for (what, s) in rows {
            println!(
                "| {what} | {} | {} |",
                opt(s, 2),
                rate(s).map_or("n/a".into(), |r| thousands(r as u64))
            );
        }
        println!();
        println!(
            "- `segments add` x4 (each counts its segment once): {:.2} s; `plan` process: wall {:.2} s, CPU {:.2} s, peak RSS {:.0} MB, {} requests planned; audience read {} s",
            p.segments_s,
            p.plan_wall,
            p.plan_cpu,
            p.plan_rss,
            p.plan_requests.map_or("?".into(), thousands),
            opt(p.stages.audience_s(), 3)
        );
        println!(
            "- run at latency 0: wall {:.2} s, {} requests, segsync CPU {:.2} s, simulator CPU {:.2} s, peak RSS {:.0} MB",
            p.run_wall,
            thousands(p.run_requests),
            p.run_cpu,
            p.run_sim_cpu,
            p.run_rss
        );
        self.report.insert("pipeline".into(), p.json());
    }

    pub fn memory_part(&mut self, sizes: &[usize]) {
        let mut rows = Vec::new();
        for &s in sizes {
            rows.push(self.pipeline(s));
        }
        println!("\n## Memory as profiles grow (peak RSS of each segsync process, MB)\n");
        println!("| profiles | members | import s | import RSS | plan s | plan RSS | run (latency 0) s | run RSS | run CPU s | run RSS per 1,000 members |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for p in &rows {
            println!(
                "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.3} |",
                thousands(p.size as u64),
                thousands(p.members),
                p.import_s,
                p.import_rss,
                p.plan_wall,
                p.plan_rss,
                p.run_wall,
                p.run_rss,
                p.run_cpu,
                p.run_rss / p.members.max(1) as f64 * 1000.0
            );
        }
        for w in rows.windows(2) {
            println!(
                "- {} -> {} profiles (x{:.1}): plan RSS x{:.2}, run RSS x{:.2}",
                thousands(w[0].size as u64),
                thousands(w[1].size as u64),
                w[1].size as f64 / w[0].size as f64,
                w[1].plan_rss / w[0].plan_rss,
                w[1].run_rss / w[0].run_rss
            );
        }
        self.report.insert(
            "memory".into(),
            Value::Array(rows.iter().map(Pipeline::json).collect()),
        );
    }
}

#[derive(Clone)]
pub struct Pipeline {
    pub size: usize,
    pub members: u64,
    pub import_s: f64,
    pub import_rss: f64,
    pub segments_s: f64,
    pub plan_wall: f64,
    pub plan_rss: f64,
    pub plan_cpu: f64,
    pub plan_requests: Option<u64>,
    pub stages: Stages,
    pub run_wall: f64,
    pub run_rss: f64,
    pub run_cpu: f64,
    pub run_stages: Stages,
    pub run_requests: u64,
    pub run_items: u64,
    pub run_sim_cpu: f64,
}

impl Pipeline {
    pub fn json(&self) -> Value {
        let mut run = run_json(
            self.run_wall,
            self.run_cpu,
            self.run_rss,
            self.run_requests,
            self.run_sim_cpu,
            &self.run_stages,
        );
        run["items"] = json!(self.run_items);
        json!({
            "profiles": self.size,
            "members": self.members,
            "import_seconds": self.import_s,
            "import_peak_rss_mb": self.import_rss,
            "segments_add_seconds": self.segments_s,
            "plan": plan_json(self.plan_wall, self.plan_cpu, self.plan_rss, self.plan_requests, &self.stages),
            "run_latency_0": run,
        })
    }
}
