//! The closing table of issue 17's goals: every figure this invocation measured, next to the
//! one the issue measured before its work ("today"), its goal, and whether it is met. Only
//! the figures whose parts ran are shown.

use crate::bench::Bench;
use crate::report::thousands;

/// A figure of the table: what, the value, this run's, the goal, met.
struct Row {
    figure: &'static str,
    today: &'static str,
    now: String,
    goal: &'static str,
    met: Option<bool>,
}

impl Bench {
    /// The value at `path` of this invocation's JSON report.
    pub fn figure(&self, path: &[&str]) -> Option<f64> {
        let mut v = self.report.get(path[0])?;
        for p in &path[1..] {
            v = match p.parse::<usize>() {
                Ok(i) => v.get(i)?,
                Err(_) => v.get(p)?,
            };
        }
        v.as_f64()
    }

    pub fn goals_17(&self) {
        let mut rows = Vec::new();
        self.first_export_rows(&mut rows);
        self.rerun_rows(&mut rows);
        self.pipeline_rows(&mut rows);
        if rows.is_empty() {
            return;
        }
        println!("\n## Issue 17's goals: this run next to the issue's measurement\n");
        println!("| figure | issue 17 (before) | this run | goal | met |");
        println!("| --- | ---: | ---: | --- | --- |");
        for r in rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            };
            println!(
                "| {} | {} | {} | {} | {met} |",
                r.figure, r.today, r.now, r.goal
            );
        }
    }

    fn first_export_rows(&self, rows: &mut Vec<Row>) {
        let run = ["full", "run"];
        let Some(requests) = self.figure(&[run[0], run[1], "seen", "requests"]) else {
            return;
        };
        rows.push(Row {
            figure: "first export: requests",
            today: "4,957",
            now: format!(
                "{} ({:.1}%)",
                thousands(requests as u64),
                requests / 4957.0 * 100.0
            ),
            goal: "at most 45% of 4,957",
            met: Some(requests <= 0.45 * 4957.0),
        });
        let over = self.figure(&[run[0], run[1], "wall_over_bound"]);
        rows.push(Row {
            figure: "first export: wall / its bound",
            today: "1.36 x",
            now: over.map_or("n/a".into(), |o| format!("{o:.2} x")),
            goal: "at most 1.10 x",
            met: over.map(|o| o <= 1.10),
        });
        let rss = self.figure(&[run[0], run[1], "peak_rss_mb"]);
        rows.push(Row {
            figure: "first export: peak RSS MB",
            today: "97",
            now: rss.map_or("n/a".into(), |r| format!("{r:.0}")),
            goal: "at most 150",
            met: rss.map(|r| r <= 150.0),
        });
    }

    fn rerun_rows(&self, rows: &mut Vec<Row>) {
        let at = |i: &'static str, key: &[&'static str]| {
            let mut path = vec!["reruns", i];
            path.extend_from_slice(key);
            self.figure(&path)
        };
        let Some(requests) = at("0", &["seen", "requests"]) else {
            return;
        };
        rows.push(Row {
            figure: "unchanged re-run: requests",
            today: "990",
            now: thousands(requests as u64),
            goal: "at most 10",
            met: Some(requests <= 10.0),
        });
        for (i, figure, today, goal, bound) in [
            (
                "0",
                "unchanged re-run: time vs the first export",
                "23.7%",
                "at most 3%",
                0.03,
            ),
            (
                "2",
                "1% re-run: time vs the first export",
                "12.1%",
                "at most 3%",
                0.03,
            ),
            (
                "3",
                "10% re-run: time vs the first export",
                "15.65% (BENCHMARKS.md)",
                "at most 12%",
                0.12,
            ),
        ] {
            let share = at(i, &["time_vs_full"]);
            rows.push(Row {
                figure,
                today,
                now: share.map_or("n/a".into(), |s| format!("{:.2}%", s * 100.0)),
                goal,
                met: share.map(|s| s <= bound),
            });
        }
        let rss: Vec<f64> = (0..4)
            .filter_map(|i| at(["0", "1", "2", "3"][i], &["peak_rss_mb"]))
            .collect();
        let max = rss.iter().copied().fold(0.0, f64::max);
        rows.push(Row {
            figure: "re-runs: peak RSS MB",
            today: "165 / 107",
            now: rss
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            goal: "at most 150",
            met: Some(max <= 150.0),
        });
    }

    fn pipeline_rows(&self, rows: &mut Vec<Row>) {
        if let Some(p) = self.pipelines.get(&1_000_000) {
            let local = p.stages.read_s().zip(p.stages.diff_plan_s());
            let rate = local.map(|(r, d)| p.size as f64 / (p.import_s + r + d));
            rows.push(Row {
                figure: "local pipeline at 1M (import, evaluate, diff, plan)",
                today: "about 100,000 profiles/s (import 4 to 5 s, evaluation about 5 s)",
                now: rate.map_or("n/a".into(), |r| {
                    format!("{} profiles/s", thousands(r as u64))
                }),
                goal: "at least 500,000 profiles/s",
                met: rate.map(|r| r >= 500_000.0),
            });
        }
        let (Some(one), Some(three)) = (
            self.pipelines.get(&1_000_000),
            self.pipelines.get(&3_000_000),
        ) else {
            return;
        };
        let ratio = three.run_rss / one.run_rss;
        rows.push(Row {
            figure: "peak RSS from 1M to 3M (run at latency 0)",
            today: "not measured",
            now: format!(
                "{:.0} -> {:.0} MB (x{ratio:.2})",
                one.run_rss, three.run_rss
            ),
            goal: "flat (at most x1.2), at most 150 MB",
            met: Some(ratio <= 1.2 && three.run_rss <= 150.0),
        });
    }
}
