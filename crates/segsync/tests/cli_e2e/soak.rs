//! Fault soak: Mailchimp answering 10% of requests with 5xx, in bursts of 429, slower than
//! the client's timeout, and dropping connections after applying the write, all at once,
//! through a first export and a second run after the profiles changed. Each run completes
//! with the audience exactly right, its counts (created, updated, tagged, untagged) are the
//! simulator's, and the only records it reports are the permanently bad ones planted in the
//! profiles: no transient fault ever surfaces as a per-member error.
//!
//! The CI form is the test at the bottom (3,000 profiles); the full form is
//! `cargo run --release -p segsync --example soak` (100,000 profiles), which shares this
//! module. See RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

use mailchimp_sim::config::Faults;
use mailchimp_sim::Status;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::common::*;
use crate::torture::profiles;

#[derive(Clone, Debug)]
pub struct Config {
    pub profiles: usize,
    /// The first fault seed tried; the one used is the first from there whose early requests
    /// meet every kind of fault (see [`early_faults`]).
    pub seed: u64,
    pub faults: Faults,
    /// `segsync run --timeout`, in seconds: below `faults.slow_ms`.
    pub timeout: f64,
    pub latency: (f64, f64),
    pub verbose: bool,
}

impl Config {
    fn faults(slow_ms: u64) -> Faults {
        Faults {
            error_5xx_rate: 0.10,
            burst_429_rate: 0.03,
            burst_429_len: 4,
            bodyless_429: false,
            slow_rate: 0.05,
            slow_ms,
            drop_rate: 0.05,
            seed: 1,
        }
    }

    #[allow(dead_code)] // used by the test only
    pub fn ci() -> Config {
        Config {
            profiles: 3_000,
            seed: 2026,
            faults: Config::faults(2_500),
            timeout: 1.0,
            latency: (5.0, 0.05),
            verbose: false,
        }
    }

    #[allow(dead_code)] // used by the example only
    pub fn full() -> Config {
        Config {
            profiles: 100_000,
            seed: 2026,
            faults: Config::faults(4_000),
            timeout: 1.5,
            latency: (20.0, 0.1),
            verbose: true,
        }
    }
}

/// Faults of each kind the simulator injects into its first `n` requests with `f` (it decides
/// per request, in arrival order, from a generator seeded with `f.seed`; this replays that).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Early {
    pub burst_429: usize,
    pub error_5xx: usize,
    pub slow: usize,
    pub dropped: usize,
}

pub fn early_faults(f: &Faults, n: usize) -> Early {
    let mut rng = StdRng::seed_from_u64(f.seed);
    let mut burst_left = 0u32;
    let mut e = Early::default();
    for _ in 0..n {
        if burst_left > 0 {
            burst_left -= 1;
            e.burst_429 += 1;
            continue;
        }
        if f.burst_429_rate > 0.0 && rng.gen::<f64>() < f.burst_429_rate {
            burst_left = f.burst_429_len.saturating_sub(1);
            e.burst_429 += 1;
            continue;
        }
        if f.error_5xx_rate > 0.0 && rng.gen::<f64>() < f.error_5xx_rate {
            e.error_5xx += 1;
            continue;
        }
        let slow = f.slow_rate > 0.0 && rng.gen::<f64>() < f.slow_rate;
        let dropped = f.drop_rate > 0.0 && rng.gen::<f64>() < f.drop_rate;
        e.slow += usize::from(slow);
        e.dropped += usize::from(dropped);
    }
    e
}

/// The first seed from `from` whose first `n` requests meet every kind of fault `f` has.
pub fn seed_with_every_fault_within(f: &Faults, from: u64, n: usize) -> u64 {
    (from..from + 100_000)
        .find(|&seed| {
            let e = early_faults(&Faults { seed, ..f.clone() }, n);
            (f.burst_429_rate == 0.0 || e.burst_429 > 0)
                && (f.error_5xx_rate == 0.0 || e.error_5xx > 0)
                && (f.slow_rate == 0.0 || e.slow > 0)
                && (f.drop_rate == 0.0 || e.dropped > 0)
        })
        .expect("a seed")
}

/// What the soak saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub profiles: usize,
    pub members: usize,
    pub planted: usize,
    pub seed: u64,
    pub requests: u64,
    /// The requests by endpoint, as the simulator counted them.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Times a run could not read the audience's recent changes to learn the statuses of
    /// members met again, and asked for them one by one instead (from its debug log).
    pub lookups_one_by_one: u64,
    /// Faults the simulator injected, by kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Retries segsync made, by cause (from its debug log).
    pub retries: BTreeMap<String, u64>,
    /// Requests that failed after all their retries and were sent again later in the run.
    pub requeued: u64,
    /// Per run (with the runs that sent what it deferred): created, updated, tagged,
    /// untagged, seconds.
    pub runs: Vec<(u64, u64, u64, u64, f64)>,
    /// Records Mailchimp refused for now and a later run sent (the pessimistic profile's
    /// "signed up to a lot of lists very recently"), over both runs.
    pub deferred: u64,
    pub seconds: f64,
}

impl Report {
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "profiles {}, members {}, planted bad records {}, fault seed {}",
            self.profiles, self.members, self.planted, self.seed
        );
        let _ = writeln!(
            s,
            "faults injected: {}",
            self.injected
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "retries by cause: {}; requests re-queued after exhausting their retries: {}",
            self.retries
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.requeued
        );
        for (i, (c, u, t, un, secs)) in self.runs.iter().enumerate() {
            let _ = writeln!(
                s,
                "run {}: created {c}, updated {u}, tagged {t}, untagged {un} in {secs:.1}s, as the simulator counted; only the planted records reported",
                i + 1
            );
        }
        if self.deferred > 0 {
            let _ = writeln!(
                s,
                "deferred by Mailchimp for now, then sent by the next run: {}",
                self.deferred
            );
        }
        let _ = write!(
            s,
            "Mailchimp requests {} in {:.1}s ({}); recent changes unreadable, members looked up one by one: {} times",
            self.requests,
            self.seconds,
            self.by_endpoint
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.lookups_one_by_one
        );
        s
    }
}

/// Retries per cause and re-queued requests, from the debug log of a run.
fn tally_log(stderr: &str, r: &mut Report) {
    for line in stderr.lines() {
        if line.contains("retrying") {
            if let Some(rest) = line.split("cause=").nth(1) {
                let cause = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string();
                *r.retries.entry(cause).or_default() += 1;
            }
        }
        if line.contains("re-queued") {
            r.requeued += 1;
        }
        if line.contains("reading the audience's recent changes failed") {
            r.lookups_one_by_one += 1;
        }
    }
}

fn tag_memberships(sim: &Sim, list: &str) -> u64 {
    sim.view(list)
        .tags
        .iter()
        .map(|t| t.member_count as u64)
        .sum()
}

/// The second run's profiles: a tenth change city, a tenth cross the "High value" line (some
/// leave every segment, some join), and 1% are new customers.
fn changed(v1: &[Profile], planted: &BTreeSet<String>) -> Vec<Profile> {
    let mut v2: Vec<Profile> = v1.to_vec();
    for (i, p) in v2.iter_mut().enumerate() {
        if planted.contains(&p.id) {
            continue;
        }
        match i % 10 {
            0 => p.city = format!("{} (nou)", p.city),
            5 => p.ltv = if p.high_value() { 100.0 } else { 900.0 },
            _ => {}
        }
    }
    let extra: Vec<Profile> = people(v1.len() / 100 + 1)
        .into_iter()
        .enumerate()
        .map(|(i, p)| Profile {
            id: format!("N{i:05}"),
            email: format!("new.{i}@proton.me"),
            ltv: 900.0,
            ..p
        })
        .collect();
    v2.extend(extra);
    v2
}

/// One run under faults: exit 3 (the planted records), exactly the planted records
/// reported, nothing transient; then, if Mailchimp refused records for now (deferred), the
/// runs that send them once those refusals ran out (a user's next runs, faults still on),
/// each reporting the planted records and what it deferred, nothing else. Returns the runs.
fn faulty_run(
    sim: &Sim,
    s: &Session,
    cfg: &Config,
    planted: &BTreeSet<String>,
    r: &mut Report,
) -> Settled {
    let timeout = cfg.timeout.to_string();
    let settled = s.run_settled(sim, 3, &["--timeout", &timeout]);
    for (run, out) in settled.runs.iter().zip(&settled.outs) {
        tally_log(&out.stderr, r);
        let id = run["id"].as_i64().unwrap();
        assert_eq!(run["outcome"], "succeeded_with_errors", "{run}");
        assert_eq!(
            count(run, "failed") + count(run, "refused") + count(run, "remembered_refusals"),
            planted.len() as u64,
            "{run}"
        );
        let errors = s.errors_csv(id);
        for (key, email, reason) in &errors {
            assert!(
                !reason.contains(" tries")
                    && !reason.starts_with("not sent")
                    && !reason.contains("tag not changed")
                    && !reason.contains("could not return"),
                "a transient fault surfaced as a per-member error: {key} {email}: {reason}"
            );
        }
        let deferred: BTreeSet<String> = errors
            .iter()
            .filter(|e| e.2.starts_with("deferred: "))
            .map(|e| e.0.clone())
            .collect();
        assert!(
            deferred.is_disjoint(planted),
            "a planted record deferred: {deferred:?}"
        );
        let reported: BTreeSet<String> = errors
            .iter()
            .map(|e| e.0.clone())
            .filter(|k| !deferred.contains(k))
            .collect();
        // Those Mailchimp refused for good in an earlier run, unchanged since, are held
        // back (remembered), not reported again.
        let remembered = s.remembered_keys();
        let held: BTreeSet<String> = planted.difference(&reported).cloned().collect();
        assert!(
            reported.is_subset(planted),
            "only planted records: {reported:?}"
        );
        assert!(
            held.is_subset(&remembered),
            "{held:?} not remembered: {remembered:?}"
        );
        assert_eq!(
            count(run, "remembered_refusals"),
            held.len() as u64,
            "{run}"
        );
        assert_eq!(
            errors.len(),
            reported.len() + deferred.len(),
            "each once: {errors:?}"
        );
        assert_eq!(count(run, "deferred"), deferred.len() as u64, "{run}");
    }
    r.deferred += settled.deferred();
    settled
}

pub fn run(cfg: &Config) -> Report {
    let started = Instant::now();
    let (v1, local, remote) = profiles(cfg.profiles);
    let planted: BTreeSet<String> = local.union(&remote).cloned().collect();
    let clean = |ps: &[Profile]| -> Vec<Profile> {
        ps.iter()
            .filter(|p| !planted.contains(&p.id))
            .cloned()
            .collect()
    };
    let want1 = expected(&clean(&v1), Status::Subscribed);
    let mut r = Report {
        profiles: cfg.profiles,
        members: want1.len(),
        planted: planted.len(),
        ..Default::default()
    };

    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, &v1, &[]);
    s.set_env("SEGSYNC_LOG", "segsync=debug");
    let faults = Faults {
        seed: seed_with_every_fault_within(&cfg.faults, cfg.seed, 20),
        ..cfg.faults.clone()
    };
    r.seed = faults.seed;
    sim.settings(|st| {
        st.faults = faults.clone();
        st.latency.base_ms = cfg.latency.0;
        st.latency.per_item_ms = cfg.latency.1;
    });
    let c0 = sim.counters();

    // Run 1: the first export.
    let t = Instant::now();
    let run1 = faulty_run(&sim, &s, cfg, &planted, &mut r);
    let secs1 = t.elapsed().as_secs_f64();
    let c1 = sim.counters();
    let view = sim.view(&list);
    assert_eq!(
        holding(&view, FIELDS),
        want1,
        "after run 1 the audience is exactly the export"
    );
    assert_eq!(c1.compliance_refusals, 0);
    assert_eq!(
        c1.members_created - c0.members_created,
        want1.len() as u64,
        "each member created once"
    );
    let tagged1 = tag_memberships(&sim, &list);
    assert_eq!(
        (
            run1.sum("created"),
            run1.sum("updated"),
            run1.sum("tagged"),
            run1.sum("untagged")
        ),
        (c1.members_created - c0.members_created, 0, tagged1, 0),
        "run 1's counts are the simulator's: {:?}",
        run1.runs
    );
    r.runs
        .push((run1.sum("created"), 0, run1.sum("tagged"), 0, secs1));
    if cfg.verbose {
        eprintln!("run 1 done in {secs1:.1}s: {:?}", run1.first()["counts"]);
    }

    // Run 2: the profiles changed.
    let v2 = changed(&v1, &planted);
    let want2_in = expected(&clean(&v2), Status::Subscribed);
    let mut want2 = want1.clone();
    for (email, entry) in want2.iter_mut() {
        if !want2_in.contains_key(email) {
            entry.2.clear(); // left every segment: untagged, stays subscribed
        }
    }
    want2.extend(want2_in.clone());
    let truth_created = want2_in.keys().filter(|k| !want1.contains_key(*k)).count() as u64;
    let truth_updated = want2_in
        .iter()
        .filter(|(k, v)| want1.get(*k).is_some_and(|old| old.1 != v.1))
        .count() as u64;
    let tag_set = |h: &Holding, k: &str| -> BTreeSet<String> {
        h.get(k)
            .map(|v| v.2.iter().cloned().collect())
            .unwrap_or_default()
    };
    let (mut truth_tagged, mut truth_untagged) = (0u64, 0u64);
    for k in want2.keys() {
        let (before, after) = (tag_set(&want1, k), tag_set(&want2, k));
        truth_tagged += after.difference(&before).count() as u64;
        truth_untagged += before.difference(&after).count() as u64;
    }
    s.import(&v2);
    let t = Instant::now();
    let run2 = faulty_run(&sim, &s, cfg, &planted, &mut r);
    let secs2 = t.elapsed().as_secs_f64();
    let c2 = sim.counters();
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        want2,
        "after run 2 the audience is exactly the changed export"
    );
    assert_eq!(c2.compliance_refusals, 0);
    let tagged2 = tag_memberships(&sim, &list);
    assert_eq!(
        (
            run2.sum("created"),
            run2.sum("updated"),
            run2.sum("tagged"),
            run2.sum("untagged")
        ),
        (truth_created, truth_updated, truth_tagged, truth_untagged),
        "run 2's counts are what changed: {:?}",
        run2.runs
    );
    assert_eq!(
        run2.sum("created"),
        c2.members_created - c1.members_created,
        "run 2 created what the simulator created"
    );
    assert_eq!(
        run2.sum("tagged") as i64 - run2.sum("untagged") as i64,
        tagged2 as i64 - tagged1 as i64,
        "run 2's tag changes are the simulator's"
    );
    // The simulator counts every applied write: an update whose answer was lost and that
    // was sent again counts twice there, once in the run.
    assert!(run2.sum("updated") <= c2.members_updated - c1.members_updated);
    r.runs.push((
        run2.sum("created"),
        run2.sum("updated"),
        run2.sum("tagged"),
        run2.sum("untagged"),
        secs2,
    ));

    let c = sim.counters();
    r.requests = c.requests - c0.requests;
    r.by_endpoint = c
        .by_endpoint
        .iter()
        .map(|(k, v)| (k.clone(), v - c0.by_endpoint.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    r.injected = BTreeMap::from([
        ("5xx", c.injected_5xx),
        ("429 (bursts)", c.injected_429),
        ("slower than the timeout", c.slowed),
        ("dropped connections", c.dropped),
        ("429 (over 10 in flight)", c.too_many_requests),
    ]);
    assert!(
        c.injected_5xx > 0 && c.injected_429 > 0 && c.slowed > 0 && c.dropped > 0,
        "every kind of fault was injected: {c:?}"
    );
    for cause in ["5xx", "429", "timeout", "connection"] {
        assert!(
            r.retries.get(cause).copied().unwrap_or(0) > 0,
            "segsync retried {cause}: {:?}",
            r.retries
        );
    }
    r.seconds = started.elapsed().as_secs_f64();
    r
}

#[test]
fn a_run_under_every_fault_at_once_ends_right_and_reports_only_permanent_errors() {
    let report = run(&Config::ci());
    eprintln!("{}", report.summary());
}
