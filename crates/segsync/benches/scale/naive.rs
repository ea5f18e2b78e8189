//! Part `naive`: the export done the naive ways (one request per member, and Mailchimp's
//! `/batches`) on a sample, extrapolated to the full export's members and compared with it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use mailchimp_sim::RunningSim;
use serde_json::{json, Value};

use crate::bench::Bench;
use crate::generate::{canonical_email, profile, write_profiles, COUNTRIES, FIRST, LAST, SEGMENTS};
use crate::report::thousands;
use crate::sim::{seen, start_sim, Seen, BASE_MS, IN_FLIGHT, PER_ITEM_MS};

/// A member as the naive baselines send it: its subscriber hash, the body of its PUT, the
/// body of its tags POST.
type Member = (String, Value, Value);

impl Bench {
    pub fn naive_part(&mut self, sample: usize, batch_ops_per_s: f64) {
        let (members_full, members) = self.naive_members(sample);
        let sample = members.len();
        let sim = start_sim(&self.rt, &self.lat, &self.runner.key);
        let key = sim.add_account();
        let api = sim.api_url();
        let http = reqwest::Client::new();
        let put = self.naive_put(&sim, &http, &key, &api, &members);
        let (batches, poll_every) =
            self.naive_batches(&sim, &http, &key, &api, &members, batch_ops_per_s);
        self.rt.block_on(sim.shutdown());
        self.print_naive(
            members_full,
            sample,
            put,
            batches,
            poll_every,
            batch_ops_per_s,
        );
    }

    /// The members a full export of N profiles sends, and the first `sample` of them.
    fn naive_members(&self, sample: usize) -> (u64, Vec<Member>) {
        let n = self.n;
        let members_full = match &self.full {
            Some(f) => f.members,
            None => write_profiles(None, n, &[], &self.dates).members,
        };
        let mut seen_ids = BTreeSet::new();
        let mut members = Vec::new();
        for i in 0..n {
            if members.len() >= sample {
                break;
            }
            let p = profile(i, 0);
            let Some(id) = p.email_id() else { continue };
            if p.mask() == 0 || !seen_ids.insert(id) {
                continue;
            }
            let (country, cities) = COUNTRIES[p.country];
            let email = canonical_email(id);
            let tags: Vec<Value> = SEGMENTS
                .iter()
                .enumerate()
                .filter(|(s, _)| (p.mask() >> s) & 1 == 1)
                .map(|(_, (name, _))| json!({"name": name, "status": "active"}))
                .collect();
            members.push((
                mailchimp_sim::subscriber_hash(&email),
                json!({
                    "email_address": email,
                    "status_if_new": "subscribed",
                    "merge_fields": {
                        "FNAME": FIRST[p.first], "LNAME": LAST[p.last], "CITY": cities[p.city],
                        "COUNTRY": country, "LTV": format!("{}.{:02}", p.ltv_cents / 100, p.ltv_cents % 100),
                    }
                }),
                json!({ "tags": tags }),
            ));
        }
        (members_full, members)
    }

    /// What the simulator saw and the wall time.
    fn naive_put(
        &mut self,
        sim: &RunningSim,
        http: &reqwest::Client,
        key: &str,
        api: &str,
        members: &[Member],
    ) -> (Seen, f64) {
        let sample = members.len();
        // (a) One PUT per member, then its tags, 10 members at a time.
        eprintln!("[bench] naive: one PUT per member ({sample} members)...");
        let list = list_with_fields(&self.rt, sim, http, key, "Naive PUT");
        let before = sim.counters();
        let t = Instant::now();
        let failed: usize = self
            .rt
            .block_on(
                stream::iter(members.iter())
                    .map(|(hash, body, tags)| {
                        let list = &list;
                        async move {
                            let put = http
                                .put(format!("{api}/lists/{list}/members/{hash}"))
                                .basic_auth("bench", Some(key))
                                .json(body)
                                .send()
                                .await;
                            let tag = http
                                .post(format!("{api}/lists/{list}/members/{hash}/tags"))
                                .basic_auth("bench", Some(key))
                                .json(tags)
                                .send()
                                .await;
                            [put, tag]
                                .iter()
                                .filter(|r| !r.as_ref().is_ok_and(|r| r.status().is_success()))
                                .count()
                        }
                    })
                    .buffer_unordered(10)
                    .collect::<Vec<usize>>(),
            )
            .into_iter()
            .sum();
        let put_wall = t.elapsed().as_secs_f64();
        let put_seen = seen(&before, &sim.counters());
        let view = mailchimp_sim::http::admin::list_view(sim.sim(), &list, false).unwrap();
        self.check(
            failed == 0 && view.member_count == sample,
            format!(
                "naive PUT: {} members in the audience, {failed} failed requests (expected {sample}, 0)",
                view.member_count
            ),
        );
        (put_seen, put_wall)
    }

    /// What the simulator saw, the wall time, and how often the batches were polled.
    fn naive_batches(
        &mut self,
        sim: &RunningSim,
        http: &reqwest::Client,
        key: &str,
        api: &str,
        members: &[Member],
        batch_ops_per_s: f64,
    ) -> ((Seen, f64), Duration) {
        let sample = members.len();
        // (b) The same operations through /batches, polled until finished.
        eprintln!("[bench] naive: /batches ({sample} members)...");
        let list = list_with_fields(&self.rt, sim, http, key, "Naive batches");
        let mut settings = sim.settings();
        settings.batches.op_ms = 1000.0 / batch_ops_per_s * self.scale;
        sim.set_settings(settings).unwrap();
        let ops: Vec<Value> = members
            .iter()
            .flat_map(|(hash, body, tags)| {
                [
                    json!({"method": "PUT", "path": format!("/lists/{list}/members/{hash}"), "body": body.to_string()}),
                    json!({"method": "POST", "path": format!("/lists/{list}/members/{hash}/tags"), "body": tags.to_string()}),
                ]
            })
            .collect();
        let poll_every = Duration::from_secs_f64(5.0 * self.scale);
        let before = sim.counters();
        let t = Instant::now();
        let errored: u64 = self.rt.block_on(async {
            let mut ids = Vec::new();
            for chunk in ops.chunks(1000) {
                let r: Value = http
                    .post(format!("{api}/batches"))
                    .basic_auth("bench", Some(key))
                    .json(&json!({ "operations": chunk }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push(r["id"].as_str().expect("a batch id").to_string());
            }
            let mut errored = 0;
            while let Some(id) = ids.first().cloned() {
                let r: Value = http
                    .get(format!("{api}/batches/{id}"))
                    .basic_auth("bench", Some(key))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if r["status"] == "finished" {
                    errored += r["errored_operations"].as_u64().unwrap_or(0);
                    ids.remove(0);
                } else {
                    tokio::time::sleep(poll_every).await;
                }
            }
            errored
        });
        let batch_wall = t.elapsed().as_secs_f64();
        let batch_seen = seen(&before, &sim.counters());
        let view = mailchimp_sim::http::admin::list_view(sim.sim(), &list, false).unwrap();
        self.check(
            errored == 0 && view.member_count == sample,
            format!(
                "naive /batches: {} members in the audience, {errored} errored operations (expected {sample}, 0)",
                view.member_count
            ),
        );
        ((batch_seen, batch_wall), poll_every)
    }

    /// `put` and `batches`: what the simulator saw and the wall time of each baseline.
    fn print_naive(
        &mut self,
        members_full: u64,
        sample: usize,
        put: (Seen, f64),
        batches: (Seen, f64),
        poll_every: Duration,
        batch_ops_per_s: f64,
    ) {
        let factor = members_full as f64 / sample.max(1) as f64;
        println!(
            "\n## Naive baselines: {} members sent, extrapolated linearly to the full export's {} members\n",
            thousands(sample as u64),
            thousands(members_full)
        );
        println!("| approach | requests (sample) | wall s (sample) | in flight avg | est. requests | est. wall s | est. unscaled wall h | requests vs segsync | time vs segsync |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut j = Vec::new();
        for (what, s, wall) in [
            (
                "one PUT + one tags POST per member, 10 in flight",
                &put.0,
                put.1,
            ),
            (
                "/batches of 1,000 operations (PUT + tags POST per member), polled",
                &batches.0,
                batches.1,
            ),
        ] {
            let est_req = s.requests as f64 * factor;
            let est_wall = wall * factor;
            let (vs_req, vs_time) = match &self.full {
                Some(f) => (
                    format!("{:.1}x", est_req / f.requests as f64),
                    format!("{:.1}x", est_wall / f.wall),
                ),
                None => ("n/a".into(), "n/a".into()),
            };
            println!(
                "| {what} | {} | {wall:.2} | {:.1} | {} | {:.0} | {:.1} | {vs_req} | {vs_time} |",
                thousands(s.requests),
                s.in_flight_s / wall,
                thousands(est_req as u64),
                est_wall,
                est_wall / self.scale / 3600.0
            );
            j.push(json!({
                "approach": what, "sample_members": sample, "seen": s.json(), "wall_seconds": wall,
                "estimated_requests": est_req, "estimated_wall_seconds": est_wall,
                "estimated_unscaled_wall_seconds": est_wall / self.scale,
            }));
        }
        println!();
        let model_h = 2.0 * members_full as f64 / batch_ops_per_s / 3600.0;
        println!(
            "- /batches operations run one at a time per account at {batch_ops_per_s} operations/s unscaled ({:.2} ms each scaled), polled every {:.1} s; requests by endpoint: {}; the model alone gives {} operations / {batch_ops_per_s} per s = {model_h:.1} h unscaled (the measured figure adds the simulator's own time per operation, which does not scale)",
            1000.0 / batch_ops_per_s * self.scale,
            poll_every.as_secs_f64(),
            batches.0.endpoints(),
            thousands(2 * members_full),
        );
        println!(
            "- one PUT per member: the model alone gives {} requests x {:.0} ms / 10 in flight = {:.1} h unscaled",
            thousands(2 * members_full),
            BASE_MS + PER_ITEM_MS,
            2.0 * members_full as f64 * (BASE_MS + PER_ITEM_MS) / IN_FLIGHT / 1000.0 / 3600.0
        );
        self.report.insert(
            "naive".into(),
            json!({"members_full": members_full, "baselines": j,
                "batches_model_unscaled_seconds": model_h * 3600.0}),
        );
    }
}

/// A new audience with the text merge fields the naive baselines send.
fn list_with_fields(
    rt: &tokio::runtime::Runtime,
    sim: &RunningSim,
    http: &reqwest::Client,
    key: &str,
    name: &str,
) -> String {
    let list = sim.create_list(key, name, false);
    let api = sim.api_url();
    rt.block_on(async {
        for tag in ["CITY", "COUNTRY", "LTV"] {
            let r = http
                .post(format!("{api}/lists/{list}/merge-fields"))
                .basic_auth("bench", Some(key))
                .json(&json!({"tag": tag, "name": tag, "type": "text"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "merge field {tag}: {}", r.status());
        }
    });
    list
}
