//! Part `pgsource` (issue 5): the profiles in a PostgreSQL table, the segments evaluated by
//! PostgreSQL, the same export; per size a plan and a run with no latency, beside the
//! embedded store's figures at the same sizes.

use std::path::Path;

use serde_json::{json, Value};

use crate::bench::Bench;
use crate::drive::{Proc, Stages};
use crate::pg::{pg_alone, pg_load, PgAlone, PgDatabase, PgLoad, PG_COLUMN_TYPES, PG_PREDICATES};
use crate::pgcursor::CursorFigures;
use crate::pipeline::Pipeline;
use crate::report::{opt, plan_json, run_json, thousands};
use crate::sim::{start_sim, Latency};

impl Bench {
    /// The profiles of `size` loaded into a new database on `server`, a profile source on
    /// them, the export's segments as PostgreSQL SQL; a plan and a run at latency 0.
    fn pg_source(&mut self, server: &str, size: usize) -> PgFigures {
        eprintln!(
            "[bench] profiles from PostgreSQL at {} profiles...",
            thousands(size as u64)
        );
        let name = format!("pgsource-{size}");
        let csv = self.dir.join(format!("{name}.csv"));
        let expect = self.generate(&csv, size, &[]);
        let db = PgDatabase::create(
            server,
            &format!("segsync_bench_{}_{size}", std::process::id()),
        );
        let load = pg_load(&db.url, &csv, size);
        let _ = std::fs::remove_file(&csv);
        eprintln!(
            "[bench] COPY of {} profiles into {}: {:.1}s",
            thousands(size as u64),
            db.name,
            load.copy_s
        );
        let home = self.dir.join(&name);
        let _ = std::fs::remove_dir_all(&home);
        let source = self.pg_source_add(&home, &db.url);
        let segments = self.segments(&home, &PG_PREDICATES, Some("crm"), &expect);
        let alone = pg_alone(&db.url);
        self.check(
            alone.count == expect.selected
                && alone.select_rows == expect.selected
                && alone.select_per_segment == expect.segment_profiles,
            format!(
                "PostgreSQL alone: {} profiles in a segment counted, {} streamed, {:?} per segment (expected {}, {:?})",
                alone.count, alone.select_rows, alone.select_per_segment, expect.selected, expect.segment_profiles
            ),
        );
        let sim = start_sim(&self.rt, &Latency::ZERO, &self.runner.key);
        let list = self.export(&home, &sim, &expect);
        let plan = self.runner.must(&home, &["plan", "bench", "--json"], &[0]);
        let plan_stages = Stages::of(&plan.stderr);
        let plan_json = plan.json();
        let r = self.measure_run(&sim, &home, "run at latency 0, profiles from PostgreSQL");
        self.check_counts(&r, &expect, &format!("profiles from PostgreSQL, {size}: "));
        self.check_audience(
            &sim,
            &list,
            &expect,
            &format!("run at latency 0, profiles from PostgreSQL, {size}"),
        );
        let cursor = self.pg_cursor_reruns(&sim, &home, &db.url);
        self.rt.block_on(sim.shutdown());
        let _ = std::fs::remove_dir_all(&home);
        drop(db);
        PgFigures {
            size,
            members: expect.members,
            load,
            alone,
            source_add_s: source.wall,
            segments_s: segments.iter().map(|s| s.wall).sum(),
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
            run_sim_cpu: r.sim_cpu,
            cursor: Some(cursor),
        }
    }

    /// `profiles source add` of the table in the database at `url` to the home at `home`;
    /// checks the column types it reports.
    fn pg_source_add(&mut self, home: &Path, url: &str) -> Proc {
        let source = self.runner.must(
            home,
            &[
                "profiles",
                "source",
                "add",
                "crm",
                "--postgres",
                url,
                "--table",
                "crm.customers",
                "--key",
                "customer_id",
                "--cursor",
                "updated_at",
                // The bench's role creates its databases: a superuser.
                "--allow-superuser",
            ],
            &[0],
        );
        // "  name   type" lines under the first.
        let types: Vec<(String, String)> = source
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.to_string()))
            })
            .collect();
        let want: Vec<(String, String)> = PG_COLUMN_TYPES
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect();
        self.check(
            types == want,
            format!("profile source columns {types:?} (expected {want:?})"),
        );
        source
    }

    pub fn pgsource_part(&mut self, server: &str, sizes: &[usize]) {
        let mut rows = Vec::new();
        for &s in sizes {
            rows.push(self.pg_source(server, s));
        }
        println!(
            "\n## Profiles from PostgreSQL (table crm.customers, segments evaluated by PostgreSQL, streamed through a cursor; simulator with no latency)\n"
        );
        println!("| profiles | load (COPY) s | plan s | read+evaluate s | diff+plan s | plan RSS MB | run (latency 0) s | run CPU s | run RSS MB |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for p in &rows {
            println!(
                "| {} | {:.2} | {:.2} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
                thousands(p.size as u64),
                p.load.copy_s,
                p.plan_wall,
                opt(p.stages.read_s(), 2),
                opt(p.stages.diff_plan_s(), 2),
                p.plan_rss,
                p.run_wall,
                p.run_cpu,
                p.run_rss
            );
        }
        let embedded: Vec<Pipeline> = rows
            .iter()
            .filter_map(|p| self.pipelines.get(&p.size).cloned())
            .collect();
        if !embedded.is_empty() {
            println!("\nThe embedded profile store at the same sizes (this invocation's `pipeline`/`memory` parts):\n");
            println!("| profiles | import s | plan s | read+evaluate s | diff+plan s | plan RSS MB | run (latency 0) s | run CPU s | run RSS MB |");
            println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for p in &embedded {
                println!(
                    "| {} | {:.2} | {:.2} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
                    thousands(p.size as u64),
                    p.import_s,
                    p.plan_wall,
                    opt(p.stages.read_s(), 2),
                    opt(p.stages.diff_plan_s(), 2),
                    p.plan_rss,
                    p.run_wall,
                    p.run_cpu,
                    p.run_rss
                );
            }
        }
        println!();
        for p in &rows {
            println!(
                "- {} profiles ({} members): table {:.0} MB with its key, VACUUM (ANALYZE) after the COPY {:.2} s; `profiles source add` {:.2} s, `segments add` x4 {:.2} s (PostgreSQL counts each); `plan`: CPU {:.2} s of {:.2} s wall, {} requests planned",
                thousands(p.size as u64),
                thousands(p.members),
                p.load.table_mb,
                p.load.vacuum_s,
                p.source_add_s,
                p.segments_s,
                p.plan_cpu,
                p.plan_wall,
                p.plan_requests.map_or("?".into(), thousands),
            );
            println!(
                "  - read+evaluate {} s in `plan`, of which: PostgreSQL evaluating the four predicates alone (`count(*)` of their union) {:.2} s; the same one query streamed through the source's cursor and decoded, nothing staged, {:.2} s (CPU {:.2} s on this side); the rest is segsync's (addresses checked, duplicates merged, rows staged in SQLite)",
                opt(p.stages.read_s(), 2),
                p.alone.count_s,
                p.alone.select_s,
                p.alone.select_cpu,
            );
        }
        println!("\nRe-runs past the cursor column (`--cursor updated_at`), against the first run (latency 0):\n");
        println!("| profiles | first run s | re-run, nothing written: s (share), evaluated, requests | rows written | re-run after them: s (share), changed, evaluated, requests (writes) | re-runs' RSS MB |");
        println!("| ---: | ---: | --- | ---: | --- | ---: |");
        for (p, c) in rows.iter().filter_map(|p| Some((p, p.cursor.as_ref()?))) {
            let (u, o) = (&c.unchanged, &c.one_percent);
            println!(
                "| {} | {:.2} | {:.2} ({:.1}%), {}, {} | {} | {:.2} ({:.1}%), {}, {}, {} ({}) | {:.0} / {:.0} |",
                thousands(p.size as u64),
                p.run_wall,
                u.wall,
                100.0 * u.wall / p.run_wall,
                thousands(u.evaluated),
                u.requests,
                thousands(c.written),
                o.wall,
                100.0 * o.wall / p.run_wall,
                thousands(o.changed),
                thousands(o.evaluated),
                o.requests,
                o.writes,
                u.rss,
                o.rss,
            );
        }
        for w in rows.windows(2) {
            println!(
                "- {} -> {} profiles (x{:.1}): plan RSS x{:.2}, run RSS x{:.2}, read+evaluate x{}",
                thousands(w[0].size as u64),
                thousands(w[1].size as u64),
                w[1].size as f64 / w[0].size as f64,
                w[1].plan_rss / w[0].plan_rss,
                w[1].run_rss / w[0].run_rss,
                opt(
                    w[1].stages
                        .read_s()
                        .zip(w[0].stages.read_s())
                        .map(|(b, a)| b / a),
                    2
                ),
            );
        }
        self.report.insert(
            "pgsource".into(),
            json!({
                "server": segsync::pg::redact(server),
                "table": "crm.customers",
                "predicates": PG_PREDICATES,
                "sizes": rows.iter().map(PgFigures::json).collect::<Vec<_>>(),
                "embedded_same_sizes": embedded.iter().map(Pipeline::json).collect::<Vec<_>>(),
            }),
        );
    }
}

/// One size of `pgsource` (and of `mysqlsource`): the profiles in the database, the segments
/// evaluated there.
pub struct PgFigures {
    pub size: usize,
    pub members: u64,
    pub load: PgLoad,
    pub alone: PgAlone,
    /// `profiles source add` (connects, describes the table).
    pub source_add_s: f64,
    /// `segments add` x4, each counted by PostgreSQL.
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
    pub run_sim_cpu: f64,
    /// Re-runs past a cursor column (PostgreSQL only).
    pub cursor: Option<CursorFigures>,
}

impl PgFigures {
    pub fn json(&self) -> Value {
        json!({
            "profiles": self.size,
            "members": self.members,
            "load": {
                "copy_seconds": self.load.copy_s,
                "vacuum_analyze_seconds": self.load.vacuum_s,
                "table_mb": self.load.table_mb,
            },
            "source_add_seconds": self.source_add_s,
            "segments_add_seconds": self.segments_s,
            "postgres_alone": {
                "count_seconds": self.alone.count_s,
                "count": self.alone.count,
                "select_seconds": self.alone.select_s,
                "select_bench_cpu_seconds": self.alone.select_cpu,
                "select_rows": self.alone.select_rows,
            },
            "plan": plan_json(self.plan_wall, self.plan_cpu, self.plan_rss, self.plan_requests, &self.stages),
            "run_latency_0": run_json(
                self.run_wall,
                self.run_cpu,
                self.run_rss,
                self.run_requests,
                self.run_sim_cpu,
                &self.run_stages,
            ),
            "cursor_reruns": self.cursor.as_ref().map(|c| json!({
                "rows_written": c.written,
                "unchanged": c.unchanged.json(),
                "one_percent": c.one_percent.json(),
            })),
        })
    }
}
