//! Running segsync as a user would, through its binary: one process at a time, measured
//! (wall time, peak RSS, CPU time), with its local stages read from its debug log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::sample::{wait_cpu, PeakRss};

pub const KEY_ENV: &str = "SEGSYNC_BENCH_KEY";

/// One segsync process: exit code, wall time, and its rusage.
pub struct Proc {
    pub code: i32,
    pub wall: f64,
    /// Peak resident set size, MB (VmHWM).
    pub rss_mb: f64,
    /// User + system CPU seconds.
    pub cpu: f64,
    pub stdout: String,
    pub stderr: String,
}

impl Proc {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }
}

pub struct Runner {
    pub bin: String,
    pub key: String,
    pub scratch: PathBuf,
}

impl Runner {
    /// Runs `segsync --home HOME ARGS` with the debug log on, and waits for it.
    pub fn run(&self, home: &Path, args: &[&str]) -> Proc {
        let out = self.scratch.join("segsync.out");
        let err = self.scratch.join("segsync.err");
        let t = Instant::now();
        let child = Command::new(&self.bin)
            .arg("--home")
            .arg(home)
            .args(args)
            .env(KEY_ENV, &self.key)
            .env("SEGSYNC_LOG", "segsync=debug")
            // The simulator listens on 127.0.0.1.
            .env("SEGSYNC_ALLOW_PRIVATE_TARGETS", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("segsync starts");
        let peak = PeakRss::watch(child.id());
        let (code, cpu) = wait_cpu(child);
        let rss_mb = peak.finish();
        let wall = t.elapsed().as_secs_f64();
        Proc {
            code,
            wall,
            rss_mb,
            cpu,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }

    /// `profiles import` of `csv`, keyed by customer_id, into the home at `home`.
    pub fn import(&self, home: &Path, csv: &Path) -> Proc {
        self.must(
            home,
            &[
                "profiles",
                "import",
                csv.to_str().unwrap(),
                "--key",
                "customer_id",
            ],
            &[0],
        )
    }

    /// Like [`Runner::run`], and stops the bench unless segsync exits with one of `codes`.
    pub fn must(&self, home: &Path, args: &[&str], codes: &[i32]) -> Proc {
        let p = self.run(home, args);
        if !codes.contains(&p.code) {
            panic!(
                "segsync {} exited with {}:\n{}\n{}",
                args.join(" "),
                p.code,
                tail(&p.stdout),
                tail(&p.stderr)
            );
        }
        p
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Cumulative seconds since the run's preparation started, from segsync's debug log.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stages {
    /// Profiles read, segments evaluated, addresses normalised, duplicates merged.
    pub read: Option<f64>,
    /// The audience's (changes) read.
    pub audience: Option<f64>,
    /// Diffed and planned.
    pub planned: Option<f64>,
}

impl Stages {
    pub fn of(log: &str) -> Stages {
        let at = |what: &str| {
            log.lines()
                .find(|l| l.contains(what))
                .and_then(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("elapsed="))
                })
                .and_then(parse_duration)
        };
        Stages {
            read: at(" profiles read"),
            audience: at(" audience read"),
            planned: at(" planned"),
        }
    }

    /// Each stage's own seconds: a full pass reads the profiles, then the audience; an
    /// incremental one the audience first (its status changes choose profiles to read too).
    pub fn read_s(&self) -> Option<f64> {
        let (read, audience) = (self.read?, self.audience?);
        Some(if read > audience {
            read - audience
        } else {
            read
        })
    }

    pub fn audience_s(&self) -> Option<f64> {
        let (read, audience) = (self.read?, self.audience?);
        Some(if audience > read {
            audience - read
        } else {
            audience
        })
    }

    pub fn diff_plan_s(&self) -> Option<f64> {
        Some(self.planned? - self.audience?.max(self.read?))
    }
}

/// A `Duration`'s Debug form (`1.5s`, `12.3ms`, `4µs`, `80ns`) in seconds.
fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim_end_matches(',');
    for (suffix, f) in [
        ("ns", 1e-9),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
    ] {
        if let Some(v) = s.strip_suffix(suffix) {
            return v.parse::<f64>().ok().map(|v| v * f);
        }
    }
    None
}
