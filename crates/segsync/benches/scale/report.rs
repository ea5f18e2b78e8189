//! How the figures read: numbers for a person (thousands separators, n/a for what was not
//! measured), the JSON shapes that several parts share, and the closing table of issue 6's
//! targets.

use std::ffi::OsStr;

use serde_json::{json, Value};

use crate::bench::Bench;
use crate::drive::Stages;

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

pub fn pct(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}%", a / b * 100.0)
    } else {
        "n/a".into()
    }
}

/// A `segsync plan` of the local pipeline and pgsource parts, as the JSON report has it.
pub fn plan_json(wall: f64, cpu: f64, rss: f64, requests: Option<u64>, stages: &Stages) -> Value {
    json!({
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mb": rss,
        "requests": requests,
        "read_evaluate_seconds": stages.read_s(),
        "audience_read_seconds": stages.audience_s(),
        "diff_plan_seconds": stages.diff_plan_s(),
    })
}

/// A `segsync run` at latency 0 of the same parts, as the JSON report has it.
pub fn run_json(
    wall: f64,
    cpu: f64,
    rss: f64,
    requests: u64,
    sim_cpu: f64,
    stages: &Stages,
) -> Value {
    json!({
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mb": rss,
        "requests": requests,
        "sim_cpu_seconds": sim_cpu,
        "read_evaluate_seconds": stages.read_s(),
        "diff_plan_seconds": stages.diff_plan_s(),
    })
}

impl Bench {
    pub fn targets(&self) {
        let get = |path: &[&str]| self.figure(path);
        let mut rows: Vec<(String, String)> = Vec::new();
        if self.report.contains_key("full") {
            rows.push((
                "full export within 1.1x the bound".into(),
                opt(get(&["full", "run", "wall_over_bound"]), 2),
            ));
            rows.push((
                "10 requests in flight on average".into(),
                format!(
                    "{} over the run, {} while sending",
                    opt(get(&["full", "run", "in_flight_avg"]), 1),
                    opt(get(&["full", "run", "in_flight_avg_sending"]), 1)
                ),
            ));
            rows.push((
                "peak RSS < 300 MB (full export)".into(),
                format!(
                    "{} MB at {} profiles",
                    opt(get(&["full", "run", "peak_rss_mb"]), 0),
                    thousands(self.n as u64)
                ),
            ));
        }
        if self.report.contains_key("reruns") {
            rows.push((
                "re-run, 0% changed: no write request".into(),
                format!("{} writes", opt(get(&["reruns", "0", "seen", "writes"]), 0)),
            ));
            rows.push((
                "re-run, 1% changed: < 2% of the full export's requests and time".into(),
                format!(
                    "{} of requests ({} of writes), {} of time",
                    opt(
                        get(&["reruns", "2", "requests_vs_full"]).map(|v| v * 100.0),
                        2
                    ) + "%",
                    opt(
                        get(&["reruns", "2", "writes_vs_full"]).map(|v| v * 100.0),
                        2
                    ) + "%",
                    opt(get(&["reruns", "2", "time_vs_full"]).map(|v| v * 100.0), 2) + "%"
                ),
            ));
        }
        if let Some(p) = self.pipelines.get(&self.n) {
            rows.push((
                "diff + plan >= 500,000 profiles/s on one core".into(),
                format!(
                    "{} profiles/s at {}",
                    p.stages
                        .diff_plan_s()
                        .map_or("n/a".into(), |s| thousands((p.size as f64 / s) as u64)),
                    thousands(p.size as u64)
                ),
            ));
            rows.push((
                "import + segment evaluation of 1M under 15 s".into(),
                format!(
                    "{} s at {}",
                    opt(p.stages.read_s().map(|r| r + p.import_s), 2),
                    thousands(p.size as u64)
                ),
            ));
        }
        if self.pipelines.len() > 1 {
            let v: Vec<String> = self
                .pipelines
                .values()
                .map(|p| format!("{:.0} MB at {}", p.run_rss, thousands(p.size as u64)))
                .collect();
            rows.push((
                "peak RSS < 300 MB at 1M, growing less than linearly (run at latency 0)".into(),
                v.join(", "),
            ));
        }
        if rows.is_empty() {
            return;
        }
        println!("\n## Issue 6's targets (measured, not asserted)\n");
        println!("| target | measured |");
        println!("| --- | --- |");
        for (t, m) in rows {
            println!("| {t} | {m} |");
        }
    }

    /// Adds `config` to the JSON report and writes it to `path`, if any; then ends the bench
    /// with status 1 when a check failed.
    pub fn finish(mut self, config: Value, path: Option<&OsStr>) {
        self.report.insert("config".into(), config);
        if let Some(path) = path {
            std::fs::write(
                path,
                serde_json::to_string_pretty(&Value::Object(self.report)).unwrap(),
            )
            .expect("writing SEGSYNC_BENCH_JSON");
        }
        if !self.failures.is_empty() {
            eprintln!("{} check(s) failed:", self.failures.len());
            for f in &self.failures {
                eprintln!("  {f}");
            }
            std::process::exit(1);
        }
    }
}
