//! The bench's state across its parts, and the steps the parts share: a home with the
//! profiles imported, the segments and the export; one measured `segsync run`; the checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mailchimp_sim::RunningSim;
use serde_json::{json, Value};

use crate::drive::{Proc, Runner, Stages, KEY_ENV};
use crate::generate::{order_dates, write_profiles, Expect, SEGMENTS};
use crate::pipeline::Pipeline;
use crate::report::thousands;
use crate::sample::self_cpu;
use crate::sim::{seen, Latency, Seen};

pub struct Bench {
    pub n: usize,
    pub scale: f64,
    pub lat: Latency,
    pub rt: tokio::runtime::Runtime,
    pub runner: Runner,
    pub dir: PathBuf,
    pub dates: Vec<String>,
    pub report: serde_json::Map<String, Value>,
    pub failures: Vec<String>,
    /// The full export, once measured.
    pub full: Option<FullFigures>,
    /// Pipeline measurements by size.
    pub pipelines: BTreeMap<usize, Pipeline>,
}

#[derive(Clone)]
pub struct FullFigures {
    pub members: u64,
    pub wall: f64,
    pub requests: u64,
    pub sim_cpu: f64,
}

/// A home with profiles imported, the segments defined, a connection and an export.
pub struct Home {
    pub path: PathBuf,
    pub list: String,
    pub import: Proc,
    pub segments: Vec<Proc>,
}

impl Bench {
    /// A bench of `n` profiles at latency `scale`, its files in `dir`, running segsync `bin`.
    pub fn new(n: usize, scale: f64, dir: PathBuf, bin: String) -> Bench {
        Bench {
            n,
            scale,
            lat: Latency::scaled(scale),
            rt: tokio::runtime::Runtime::new().unwrap(),
            runner: Runner {
                bin,
                // One API key for every simulator: each simulator gets the same account key.
                key: mailchimp_sim::store::new_api_key("us6"),
                scratch: dir.clone(),
            },
            dir,
            dates: order_dates(),
            report: serde_json::Map::new(),
            failures: Vec::new(),
            full: None,
            pipelines: BTreeMap::new(),
        }
    }

    pub fn check(&mut self, ok: bool, what: String) {
        if ok {
            println!("  ok: {what}");
        } else {
            println!("  CHECK FAILED: {what}");
            self.failures.push(what);
        }
    }

    /// Imports `csv` into a new home, defines the segments, adds a connection to `sim` and the
    /// export `bench` to a new audience.
    pub fn home(&mut self, name: &str, csv: &Path, sim: &RunningSim, expect: &Expect) -> Home {
        let path = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let import = self.runner.import(&path, csv);
        let predicates = SEGMENTS.map(|(_, p)| p);
        let segments = self.segments(&path, &predicates, None, expect);
        let list = self.export(&path, sim, expect);
        Home {
            path,
            list,
            import,
            segments,
        }
    }

    /// Adds [`SEGMENTS`]' names with `predicates` (over the imported profiles, or over the
    /// profile source `source`) to the home at `path`, and checks the sizes `segments add`
    /// reports against `expect`.
    pub fn segments(
        &mut self,
        path: &Path,
        predicates: &[&str; 4],
        source: Option<&str>,
        expect: &Expect,
    ) -> Vec<Proc> {
        let mut segments = Vec::new();
        let mut counts = Vec::new();
        for ((name, _), pred) in SEGMENTS.iter().zip(predicates) {
            let mut args = vec!["segments", "add", *name, "--where", *pred];
            if let Some(source) = source {
                args.extend(["--source", source]);
            }
            let p = self.runner.must(path, &args, &[0]);
            counts.push(
                p.stdout
                    .split("added: ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.parse::<u64>().ok()),
            );
            segments.push(p);
        }
        let got: Vec<String> = counts
            .iter()
            .map(|c| c.map_or("?".into(), |c| c.to_string()))
            .collect();
        let ok = counts
            .iter()
            .zip(expect.segment_profiles)
            .all(|(c, e)| *c == Some(e));
        self.check(
            ok,
            format!(
                "segment sizes {} (expected {:?}){}",
                got.join("/"),
                expect.segment_profiles,
                source.map_or(String::new(), |s| format!(", profile source {s}"))
            ),
        );
        segments
    }

    /// Adds a connection to `sim` and the export `bench` of the four segments to a new
    /// audience; returns the audience's id.
    pub fn export(&self, path: &Path, sim: &RunningSim, expect: &Expect) -> String {
        let r = &self.runner;
        let list = sim.create_list(&r.key, "Bench", false);
        let api = sim.api_url();
        r.must(
            path,
            &[
                "connection",
                "add",
                "bench",
                "--api-key-env",
                KEY_ENV,
                "--base-url",
                &api,
                "--accept-privacy-terms",
                // The bench's account has no other app: all of Mailchimp's 10 connections
                // are segsync's, as design.md section 7's bound counts them (the default
                // budget, 8, leaves 2 to an account's signup forms and integrations).
                "--slot-budget",
                "10",
            ],
            &[0],
        );
        let max = (expect.profiles * 2).max(1_000_000).to_string();
        let mut args = vec![
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
            "--merge",
            "CITY=city",
            "--merge",
            "COUNTRY=country",
            "--merge",
            "LTV=lifetime_value",
            "--create-merge-fields",
            "--updated-at-field",
            "updated_at",
            "--max-profiles",
            &max,
        ];
        for (name, _) in SEGMENTS {
            args.push("--segment");
            args.push(name);
        }
        r.must(path, &args, &[0]);
        list
    }

    /// Checks the members, refused records and merged duplicates that run `r` reports;
    /// `what` starts the check's line.
    pub fn check_counts(&mut self, r: &RunFigures, expect: &Expect, what: &str) {
        let c = &r.report["counts"];
        self.check(
            c["members"].as_u64() == Some(expect.members)
                && c["refused"].as_u64() == Some(expect.refused)
                && c["duplicates"].as_u64() == Some(expect.duplicates),
            format!(
                "{what}the run counts {} members, {} refused, {} duplicates (expected {}, {}, {})",
                c["members"],
                c["refused"],
                c["duplicates"],
                expect.members,
                expect.refused,
                expect.duplicates
            ),
        );
    }

    /// Checks the audience against what the profiles should give.
    pub fn check_audience(&mut self, sim: &RunningSim, list: &str, expect: &Expect, what: &str) {
        let view = mailchimp_sim::http::admin::list_view(sim.sim(), list, false)
            .expect("the audience exists");
        self.check(
            view.member_count as u64 == expect.members,
            format!(
                "{what}: the audience holds {} members (expected {})",
                thousands(view.member_count as u64),
                thousands(expect.members)
            ),
        );
        let tags: BTreeMap<&str, u64> = view
            .tags
            .iter()
            .map(|t| (t.name.as_str(), t.member_count as u64))
            .collect();
        let ok = SEGMENTS
            .iter()
            .zip(expect.tag_members)
            .all(|((name, _), e)| tags.get(name).copied().unwrap_or(0) == e);
        self.check(
            ok,
            format!(
                "{what}: tag sizes {:?} (expected {:?})",
                tags, expect.tag_members
            ),
        );
    }

    pub fn generate(&self, path: &Path, n: usize, revs: &[u8]) -> Expect {
        let t = Instant::now();
        let e = write_profiles(Some(path), n, revs, &self.dates);
        eprintln!(
            "[bench] wrote {} profiles in {:.1}s",
            thousands(n as u64),
            t.elapsed().as_secs_f64()
        );
        e
    }

    /// Runs the export and measures it against the simulator's counters.
    pub fn measure_run(&self, sim: &RunningSim, home: &Path, label: &str) -> RunFigures {
        eprintln!("[bench] {label}...");
        let before = sim.counters();
        let cpu0 = self_cpu();
        let mut args = vec!["run", "bench", "--json", "--quiet"];
        // Every run a full pass, as before re-runs evaluated only what changed (issue 17).
        if std::env::var_os("SEGSYNC_BENCH_FULL_PASSES").is_some() {
            args.push("--full");
        }
        let p = self.runner.must(home, &args, &[0, 3]);
        let sim_cpu = self_cpu() - cpu0;
        let seen = seen(&before, &sim.counters());
        let stages = Stages::of(&p.stderr);
        RunFigures {
            label: label.to_string(),
            report: p.json(),
            stages,
            seen,
            sim_cpu,
            proc: p,
        }
    }
}

/// One measured `segsync run`.
pub struct RunFigures {
    pub label: String,
    pub report: Value,
    pub stages: Stages,
    pub seen: Seen,
    pub sim_cpu: f64,
    pub proc: Proc,
}

impl RunFigures {
    /// Seconds before the first request of the plan could go: the local stages.
    pub fn local_s(&self) -> Option<f64> {
        self.stages.planned
    }

    pub fn in_flight_sending(&self) -> Option<f64> {
        let sending = self.proc.wall - self.local_s()?;
        (sending > 0.0).then(|| self.seen.in_flight_s / sending)
    }

    pub fn json(&self, lat: &Latency, scale: f64) -> Value {
        let bound = self.seen.bound_s(lat);
        json!({
            "label": self.label,
            "wall_seconds": self.proc.wall,
            "bound_seconds": bound,
            "unscaled_bound_seconds": bound / scale,
            "wall_over_bound": if bound > 0.0 { self.proc.wall / bound } else { 0.0 },
            "in_flight_avg": self.seen.in_flight_s / self.proc.wall,
            "in_flight_avg_sending": self.in_flight_sending(),
            "peak_rss_mb": self.proc.rss_mb,
            "cpu_seconds": self.proc.cpu,
            "sim_cpu_seconds": self.sim_cpu,
            "sim_overhead_share": self.seen.overhead_share(lat),
            "stages": {
                "read_evaluate_seconds": self.stages.read_s(),
                "audience_read_seconds": self.stages.audience_s(),
                "diff_plan_seconds": self.stages.diff_plan_s(),
            },
            "seen": self.seen.json(),
            "report": self.report,
        })
    }
}
