//! Part `mysqlsource` (issue 19): the profiles in a MySQL / MariaDB table, the segments
//! evaluated by the server, the same export; per size a plan and a run with no latency,
//! beside the PostgreSQL source's and the embedded store's figures at the same sizes.

use std::path::Path;

use serde_json::{json, Value};

use crate::bench::Bench;
use crate::drive::{Proc, Stages};
use crate::mysql::{my_alone, my_load, MyDatabase, MY_COLUMN_TYPES, MY_PREDICATES};
use crate::pgsource::PgFigures;
use crate::pipeline::Pipeline;
use crate::report::{opt, thousands};
use crate::sim::{start_sim, Latency};

impl Bench {
    /// The profiles of `size` loaded into a new database on `server`, a profile source on
    /// them, the export's segments as MySQL SQL; a plan and a run at latency 0.
    fn my_source(&mut self, server: &str, size: usize) -> PgFigures {
        eprintln!(
            "[bench] profiles from MySQL at {} profiles...",
            thousands(size as u64)
        );
        let name = format!("mysqlsource-{size}");
        let csv = self.dir.join(format!("{name}.csv"));
        let expect = self.generate(&csv, size, &[]);
        let db = MyDatabase::create(
            server,
            &format!("segsync_bench_{}_{size}", std::process::id()),
        );
        let load = my_load(&db.url, &csv, size);
        let _ = std::fs::remove_file(&csv);
        eprintln!(
            "[bench] INSERT of {} profiles into {}: {:.1}s",
            thousands(size as u64),
            db.name,
            load.copy_s
        );
        let home = self.dir.join(&name);
        let _ = std::fs::remove_dir_all(&home);
        let source = self.my_source_add(&home, &db.url);
        let segments = self.segments(&home, &MY_PREDICATES, Some("shop"), &expect);
        let alone = my_alone(&db.url);
        self.check(
            alone.count == expect.selected
                && alone.select_rows == expect.selected
                && alone.select_per_segment == expect.segment_profiles,
            format!(
                "MySQL alone: {} profiles in a segment counted, {} streamed, {:?} per segment (expected {}, {:?})",
                alone.count, alone.select_rows, alone.select_per_segment, expect.selected, expect.segment_profiles
            ),
        );
        let sim = start_sim(&self.rt, &Latency::ZERO, &self.runner.key);
        let list = self.export(&home, &sim, &expect);
        let plan = self.runner.must(&home, &["plan", "bench", "--json"], &[0]);
        let plan_stages = Stages::of(&plan.stderr);
        let plan_json = plan.json();
        let r = self.measure_run(&sim, &home, "run at latency 0, profiles from MySQL");
        self.check_counts(&r, &expect, &format!("profiles from MySQL, {size}: "));
        self.check_audience(
            &sim,
            &list,
            &expect,
            &format!("run at latency 0, profiles from MySQL, {size}"),
        );
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
            cursor: None,
        }
    }

    /// `profiles source add` of the table in the database at `url` to the home at `home`;
    /// checks the column types it reports.
    fn my_source_add(&mut self, home: &Path, url: &str) -> Proc {
        let source = self.runner.must(
            home,
            &[
                "profiles",
                "source",
                "add",
                "shop",
                "--mysql",
                url,
                "--table",
                "customers",
                "--allow-superuser",
                "--key",
                "customer_id",
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
        let want: Vec<(String, String)> = MY_COLUMN_TYPES
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect();
        self.check(
            types == want,
            format!("profile source columns {types:?} (expected {want:?})"),
        );
        source
    }

    pub fn mysqlsource_part(&mut self, server: &str, sizes: &[usize]) {
        let mut rows = Vec::new();
        for &s in sizes {
            rows.push(self.my_source(server, s));
        }
        println!(
            "\n## Profiles from MySQL / MariaDB (table customers, segments evaluated by the server, rows streamed from one prepared statement; simulator with no latency)\n"
        );
        println!("| profiles | load (INSERT) s | plan s | read+evaluate s | diff+plan s | plan RSS MB | run (latency 0) s | run CPU s | run RSS MB |");
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
        // The PostgreSQL source at the same sizes, when this invocation ran `pgsource`.
        let pg: Vec<&Value> = self
            .report
            .get("pgsource")
            .and_then(|v| v["sizes"].as_array())
            .map(|a| {
                a.iter()
                    .filter(|v| {
                        rows.iter()
                            .any(|r| v["profiles"].as_u64() == Some(r.size as u64))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !pg.is_empty() {
            println!(
                "\nThe PostgreSQL source at the same sizes (this invocation's `pgsource` part):\n"
            );
            println!("| profiles | plan s | read+evaluate s | plan RSS MB | run (latency 0) s | run RSS MB |");
            println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
            for v in &pg {
                let f = |a: &str, b: &str| v[a][b].as_f64();
                println!(
                    "| {} | {} | {} | {} | {} | {} |",
                    thousands(v["profiles"].as_u64().unwrap_or(0)),
                    opt(f("plan", "wall_seconds"), 2),
                    opt(f("plan", "read_evaluate_seconds"), 2),
                    opt(f("plan", "peak_rss_mb"), 0),
                    opt(f("run_latency_0", "wall_seconds"), 2),
                    opt(f("run_latency_0", "peak_rss_mb"), 0),
                );
            }
        }
        println!();
        for p in &rows {
            println!(
                "- {} profiles ({} members): table {:.0} MB with its key, ANALYZE TABLE after the INSERTs {:.2} s; `profiles source add` {:.2} s, `segments add` x4 {:.2} s (the server counts each); `plan`: CPU {:.2} s of {:.2} s wall, {} requests planned",
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
                "  - read+evaluate {} s in `plan`, of which: the server evaluating the four predicates alone (`COUNT(*)` of their union) {:.2} s; the same one query streamed through the source and decoded, nothing staged, {:.2} s (CPU {:.2} s on this side); the rest is segsync's (addresses checked, duplicates merged, rows staged in SQLite)",
                opt(p.stages.read_s(), 2),
                p.alone.count_s,
                p.alone.select_s,
                p.alone.select_cpu,
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
            "mysqlsource".into(),
            json!({
                "server": segsync::pg::redact(server),
                "table": "customers",
                "predicates": MY_PREDICATES,
                "sizes": rows.iter().map(PgFigures::json).collect::<Vec<_>>(),
                "embedded_same_sizes": embedded.iter().map(Pipeline::json).collect::<Vec<_>>(),
            }),
        );
    }
}
