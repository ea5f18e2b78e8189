//! Part `sim`: the simulator with the latency model at 0, driven directly with the requests
//! segsync makes most, beside a whole segsync run; and its CPU time during the full export.

use std::time::Instant;

use mailchimp_sim::RunningSim;
use serde_json::{json, Value};

use crate::bench::Bench;
use crate::pipeline::Pipeline;
use crate::report::thousands;
use crate::sample::self_cpu;
use crate::sim::{post_all, seen, start_sim, Latency, Seen};

/// The simulator driven directly by one kind of request: what, what it saw, wall seconds,
/// CPU seconds of this process (the simulator's, mostly), members sent.
type Direct = (&'static str, Seen, f64, f64, usize);

impl Bench {
    pub fn sim_part(&mut self) {
        let n = self.n;
        let seg = self.pipeline(n);
        eprintln!("[bench] simulator alone...");
        let sim = start_sim(&self.rt, &Latency::ZERO, &self.runner.key);
        let key = sim.add_account();
        let list = sim.create_list(&key, "Throughput", false);
        let api = sim.api_url();
        let http = reqwest::Client::new();
        let members = seg.members as usize;
        let mut rows = Vec::new();
        // Batch upserts of 500 new members, answers slim as segsync asks them.
        let url = format!("{api}/lists/{list}?fields=new_members.email_address,new_members.status,updated_members.email_address,updated_members.status,errors,total_created,total_updated,error_count");
        // Bodies serialised beforehand: the client, in this process, should cost little.
        let batches: Vec<bytes::Bytes> = (0..members)
            .step_by(500)
            .map(|start| {
                let items: Vec<Value> = (start..(start + 500).min(members))
                    .map(|i| {
                        json!({"email_address": format!("sim.member{i}@posta.ro"), "status": "subscribed",
                            "merge_fields": {"FNAME": "Ana", "LNAME": "Popescu"}})
                    })
                    .collect();
                bytes::Bytes::from(
                    serde_json::to_vec(&json!({"members": items, "update_existing": false}))
                        .unwrap(),
                )
            })
            .collect();
        let (seen, wall, cpu, statuses) = self.post_measured(&sim, &http, &url, &key, &batches);
        drop(batches);
        rows.push((
            "mailchimp-sim alone: batch upserts (500 new members, slim answer)",
            seen,
            wall,
            cpu,
            members,
        ));
        self.check(
            statuses.iter().all(|s| *s == 200),
            "every direct batch upsert answered 200".into(),
        );
        // Segment batches of 500 additions to one tag.
        let tag: Value = self.rt.block_on(async {
            http.post(format!("{api}/lists/{list}/segments"))
                .basic_auth("bench", Some(&key))
                .json(&json!({"name": "throughput", "static_segment": []}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        let seg_url = format!(
            "{api}/lists/{list}/segments/{}?fields=total_added,total_removed,error_count,errors",
            tag["id"]
        );
        let adds: Vec<bytes::Bytes> = (0..members)
            .step_by(500)
            .map(|start| {
                let emails: Vec<String> = (start..(start + 500).min(members))
                    .map(|i| format!("sim.member{i}@posta.ro"))
                    .collect();
                bytes::Bytes::from(serde_json::to_vec(&json!({"members_to_add": emails})).unwrap())
            })
            .collect();
        let (seen, wall, cpu, statuses) = self.post_measured(&sim, &http, &seg_url, &key, &adds);
        rows.push((
            "mailchimp-sim alone: segment batches (500 additions)",
            seen,
            wall,
            cpu,
            members,
        ));
        self.check(
            statuses.iter().all(|s| *s == 200),
            "every direct segment batch answered 200".into(),
        );
        self.rt.block_on(sim.shutdown());
        self.print_throughput(&rows, &seg, members);
    }

    /// Posts `bodies` to `url` as the account `key`, 10 in flight: what the simulator saw, the
    /// wall time, this process's CPU time meanwhile, and each answer's status.
    fn post_measured(
        &self,
        sim: &RunningSim,
        http: &reqwest::Client,
        url: &str,
        key: &str,
        bodies: &[bytes::Bytes],
    ) -> (Seen, f64, f64, Vec<u16>) {
        let before = sim.counters();
        let cpu0 = self_cpu();
        let t = Instant::now();
        let statuses = post_all(&self.rt, http, url, key, bodies);
        let wall = t.elapsed().as_secs_f64();
        (
            seen(&before, &sim.counters()),
            wall,
            self_cpu() - cpu0,
            statuses,
        )
    }

    fn print_throughput(&mut self, rows: &[Direct], seg: &Pipeline, members: usize) {
        println!(
            "\n## The simulator is not the bottleneck (latency model at 0, {} members)\n",
            thousands(members as u64)
        );
        println!("| client | requests | wall s | requests/s | members/s | in flight avg | simulator CPU s (with the in-process client) |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut j = Vec::new();
        for (what, s, wall, cpu, m) in rows {
            println!(
                "| {what} | {} | {wall:.2} | {:.0} | {} | {:.1} | {cpu:.2} |",
                thousands(s.requests),
                s.requests as f64 / wall,
                thousands((*m as f64 / wall) as u64),
                s.in_flight_s / wall,
            );
            j.push(json!({"client": what, "seen": s.json(), "wall_seconds": wall, "cpu_seconds": cpu, "members": m}));
        }
        println!(
            "| segsync run, whole export (upserts and tags) | {} | {:.2} | {:.0} | {} | | {:.2} |",
            thousands(seg.run_requests),
            seg.run_wall,
            seg.run_requests as f64 / seg.run_wall,
            thousands((seg.members as f64 / seg.run_wall) as u64),
            seg.run_sim_cpu
        );
        println!();
        let mut text = format!(
            "- segsync at latency 0: {} requests in {:.2} s, its own CPU {:.2} s; the simulator spent {:.2} s of CPU on them ({:.2} ms per request)",
            thousands(seg.run_requests),
            seg.run_wall,
            seg.run_cpu,
            seg.run_sim_cpu,
            seg.run_sim_cpu * 1000.0 / seg.run_requests.max(1) as f64
        );
        if let Some(f) = &self.full {
            text.push_str(&format!(
                "\n- during the full export with the latency model: simulator CPU {:.2} s in {:.2} s of wall ({:.0}% of one core) for {} requests = {:.2} ms per request, against a modelled {:.1} ms + {:.2} ms/member per request ({:.0} ms for a 500-member batch)",
                f.sim_cpu,
                f.wall,
                f.sim_cpu / f.wall * 100.0,
                thousands(f.requests),
                f.sim_cpu * 1000.0 / f.requests.max(1) as f64,
                self.lat.base_ms,
                self.lat.per_item_ms,
                self.lat.base_ms + 500.0 * self.lat.per_item_ms
            ));
        }
        println!("{text}");
        self.report.insert(
            "sim".into(),
            json!({"direct": j, "segsync_latency_0": seg.json()}),
        );
    }
}
