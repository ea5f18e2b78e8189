//! Crash torture: one export, killed with SIGKILL again and again at seeded random moments
//! (during `profiles import`, during the read and diff before any write, during the upserts,
//! during the tagging) and through the engine's `SEGSYNC_CRASH_AFTER_ACK` hook right between an
//! acknowledged request and its checkpoint; resumed each time. After every kill the state
//! store and the profile store pass `PRAGMA integrity_check`, a killed import left the previous
//! profiles intact, nothing in the snapshot is ahead of what Mailchimp holds, and nobody was
//! created twice. After the final run the audience, and the snapshot, are exactly what one
//! uninterrupted run makes (a fresh simulator and home), and every planted bad record is in
//! the last run's `runs errors`.
//!
//! The CI form is the test at the bottom (5,000 profiles, 8 interruptions); the full form is
//! `cargo run --release -p segsync --example torture` (100,000 profiles, 26 interruptions),
//! which shares this module. See RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mailchimp_sim::config::BatchItemTags;
use mailchimp_sim::Status;
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;

use crate::common::*;

const UPSERT_ENDPOINT: &str = "POST /3.0/lists/{list_id}";
const TAG_ENDPOINT: &str = "POST /3.0/lists/{list_id}/segments/{segment_id}";
const CRASH_ENV: &str = "SEGSYNC_CRASH_AFTER_ACK";

/// How hard to torture.
#[derive(Clone, Debug)]
pub struct Config {
    pub profiles: usize,
    /// SIGKILLs delivered from outside, spread over import, read/diff, upserts and tagging.
    pub kills: usize,
    /// Further interruptions by the engine's hook, right after an acknowledged request and
    /// before its checkpoint (half during upserts, half during tagging).
    pub hook_kills: usize,
    pub seed: u64,
    /// `segsync run --max-in-flight`.
    pub in_flight: usize,
    /// The simulator's latency model: base and per-item milliseconds.
    pub latency: (f64, f64),
}

impl Config {
    /// The form CI runs: small enough for a debug build in a few seconds, with every kind of
    /// interruption at least once.
    #[allow(dead_code)] // used by the test only
    pub fn ci() -> Config {
        Config {
            profiles: 5_000,
            kills: 8,
            hook_kills: 2,
            seed: 20_261_122,
            in_flight: 2,
            latency: (30.0, 0.4),
        }
    }

    /// The full form (`examples/torture.rs`).
    #[allow(dead_code)] // used by the example only
    pub fn full() -> Config {
        Config {
            profiles: 100_000,
            kills: 22,
            hook_kills: 4,
            seed: 20_261_122,
            in_flight: 10,
            latency: (40.0, 0.3),
        }
    }
}

/// Where a process was when it died, as the simulator and the files tell afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// `segsync profiles import` of another file.
    Import,
    /// `segsync run` before any write reached Mailchimp.
    ReadDiff,
    /// `segsync run` after creating merge fields or tags, before any member was sent.
    AudienceSetup,
    Upserts,
    Tagging,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Import => "profiles import",
            Phase::ReadDiff => "read and diff (no write yet)",
            Phase::AudienceSetup => "merge fields and tags setup",
            Phase::Upserts => "member upserts",
            Phase::Tagging => "tagging",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    Import,
    ReadDiff,
    Upserts,
    Tagging,
    HookUpserts,
    HookTagging,
}

/// What the torture did, for RELIABILITY.md.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub profiles: usize,
    pub members: usize,
    pub planted_local: usize,
    pub planted_mailchimp: usize,
    /// SIGKILLs from outside, by where they landed.
    pub sigkills: BTreeMap<Phase, usize>,
    /// Interruptions by the engine's hook, by phase.
    pub hook_kills: BTreeMap<Phase, usize>,
    /// Interruptions during upserts or tagging that fell between a request Mailchimp applied
    /// and its checkpoint: every hook kill, and every outside kill that left Mailchimp with
    /// applied requests the dead process never got the answer to.
    pub in_window: usize,
    /// Imports that finished before their kill came (not counted as kills).
    pub imports_finished_first: usize,
    /// Runs that finished before their kill came (not counted as kills).
    pub runs_finished_first: usize,
    /// `segsync run` processes started, the final one included.
    pub runs: usize,
    pub requests: u64,
    pub members_created: u64,
    pub seconds: f64,
    pub reference_seconds: f64,
    pub log: Vec<String>,
}

impl Report {
    pub fn total_sigkills(&self) -> usize {
        self.sigkills.values().sum()
    }

    pub fn total_hook_kills(&self) -> usize {
        self.hook_kills.values().sum()
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "profiles {}, members {}, planted bad records {} (refused by segsync) + {} (refused by Mailchimp)",
            self.profiles, self.members, self.planted_local, self.planted_mailchimp
        );
        let _ = writeln!(
            s,
            "SIGKILLs survived: {} ({}), hook kills after an acknowledged request: {} ({})",
            self.total_sigkills(),
            by_phase(&self.sigkills),
            self.total_hook_kills(),
            by_phase(&self.hook_kills)
        );
        let _ = writeln!(
            s,
            "interruptions between an applied request and its checkpoint: {}; imports/runs that finished before their kill: {}/{}",
            self.in_window, self.imports_finished_first, self.runs_finished_first
        );
        let _ = writeln!(
            s,
            "segsync runs {}, Mailchimp requests {}, members created {} (= members), {:.1}s (one uninterrupted run: {:.1}s)",
            self.runs, self.requests, self.members_created, self.seconds, self.reference_seconds
        );
        s
    }
}

fn by_phase(m: &BTreeMap<Phase, usize>) -> String {
    m.iter()
        .map(|(p, n)| format!("{} {n}", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The profiles: `people(n)`, with bad records planted in the segments, 1 in 500 of each
/// kind: addresses segsync refuses, and addresses at example.com, which Mailchimp refuses.
pub fn profiles(n: usize) -> (Vec<Profile>, BTreeSet<String>, BTreeSet<String>) {
    let mut ps = people(n);
    let (mut local, mut remote) = (BTreeSet::new(), BTreeSet::new());
    let step = 500.min(n / 10).max(7);
    for (i, p) in ps.iter_mut().enumerate() {
        let (first, last) = p
            .email
            .split('@')
            .next()
            .unwrap()
            .split_once('.')
            .unwrap_or(("x", "y"));
        let (first, last) = (first.to_string(), last.to_string());
        if i % step == 1 {
            p.email = match (i / step) % 4 {
                0 => format!("{first}.{last}{i}@"),
                1 => format!("no-at-sign{i}.gmail.com"),
                2 => format!("{first}{i}@@gmail.com"),
                _ => format!("{first}.{last}{i}@gmail"),
            };
            p.ltv = 900.0;
            local.insert(p.id.clone());
        } else if i % step == 2 {
            p.email = format!("{first}.{last}{i}@example.com");
            p.ltv = 900.0;
            remote.insert(p.id.clone());
        }
    }
    (ps, local, remote)
}

/// The profile table, in key order, as text: equal before and after a killed import.
fn profile_digest(home: &Path) -> String {
    let db = rusqlite::Connection::open(home.join("profiles.sqlite")).unwrap();
    let mut st = db
        .prepare("SELECT * FROM profiles ORDER BY customer_id")
        .unwrap();
    let n = st.column_count();
    let mut rows = st.query([]).unwrap();
    let mut out = digest::Digest::default();
    while let Some(r) = rows.next().unwrap() {
        for i in 0..n {
            out.add(&format!("{:?}", r.get_ref(i).unwrap()));
        }
    }
    out.finish()
}

/// A small order-sensitive digest without a new dependency.
mod digest {
    use std::hash::{Hash, Hasher};

    #[derive(Default)]
    pub struct Digest {
        rows: u64,
        h: std::collections::hash_map::DefaultHasher,
    }

    impl Digest {
        pub fn add(&mut self, s: &str) {
            self.rows += 1;
            s.hash(&mut self.h);
        }
        pub fn finish(&self) -> String {
            format!("{} values, {:016x}", self.rows, self.h.finish())
        }
    }
}

/// `PRAGMA integrity_check` of both SQLite files of a home folder.
pub fn integrity(home: &Path) {
    for f in ["state.sqlite", "profiles.sqlite"] {
        let db = rusqlite::Connection::open(home.join(f)).unwrap();
        let rows: Vec<String> = db
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, ["ok"], "{f} passes PRAGMA integrity_check");
    }
}

/// One snapshot row: address, fingerprint, tag names, status, owned.
pub type SnapRow = (Option<i64>, Vec<String>, String, bool);

/// The export's snapshot, by address, with tag bits turned into names.
pub fn snapshot(home: &Path) -> BTreeMap<String, SnapRow> {
    let db = rusqlite::Connection::open(home.join("state.sqlite")).unwrap();
    let names: BTreeMap<i64, String> = db
        .prepare("SELECT bit, tag FROM export_tags WHERE export = ?1")
        .unwrap()
        .query_map([EXPORT], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut st = db
        .prepare("SELECT email, fingerprint, tags, status, owned FROM snapshot WHERE export = ?1")
        .unwrap();
    let rows = st
        .query_map([EXPORT], |r| {
            let bits: i64 = r.get(2)?;
            let mut tags: Vec<String> = names
                .iter()
                .filter(|(b, _)| bits & (1 << **b) != 0)
                .map(|(_, n)| n.clone())
                .collect();
            tags.sort();
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, tags, r.get(3)?, r.get(4)?),
            ))
        })
        .unwrap()
        .collect::<Result<BTreeMap<_, _>, _>>()
        .unwrap();
    rows
}

/// Checks that nothing in the snapshot is ahead of Mailchimp (every member it knows exists
/// with its status and at least its tags) and that nobody was created twice; returns where
/// Mailchimp is ahead of the snapshot: (address, "") for a member it lacks or whose content it
/// never recorded, (address, tag) for a tag membership it lacks.
fn consistent(
    sim: &Sim,
    list: &str,
    home: &Path,
    tag_names: &[&str],
) -> BTreeSet<(String, String)> {
    let view = sim.view(list);
    let snap = snapshot(home);
    let by_email: BTreeMap<String, &mailchimp_sim::MemberView> = view
        .members
        .iter()
        .map(|m| (m.email_address.to_lowercase(), m))
        .collect();
    for (email, (_, tags, status, _)) in &snap {
        let m = by_email
            .get(email)
            .unwrap_or_else(|| panic!("{email} is in the snapshot but not in Mailchimp"));
        assert_eq!(
            m.status.as_str(),
            status,
            "{email}: the snapshot's status is Mailchimp's"
        );
        for t in tags {
            assert!(
                m.tags.contains(t),
                "{email}: the snapshot says tagged {t}, Mailchimp does not: {:?}",
                m.tags
            );
        }
    }
    assert_eq!(
        sim.counters().members_created,
        view.members.len() as u64,
        "no member was created twice"
    );
    let mut ahead = BTreeSet::new();
    for (email, m) in &by_email {
        if matches!(snap.get(email), None | Some((None, ..))) {
            ahead.insert((email.clone(), String::new()));
        }
        let known = snap.get(email).map(|s| s.1.clone()).unwrap_or_default();
        for t in &m.tags {
            if tag_names.contains(&t.as_str()) && !known.contains(t) {
                ahead.insert((email.clone(), t.clone()));
            }
        }
    }
    ahead
}

fn endpoint(sim: &Sim, e: &str) -> u64 {
    sim.counters().by_endpoint.get(e).copied().unwrap_or(0)
}

/// How long `segsync plan` takes: about the time a run spends reading and diffing.
fn plan_time(s: &Session) -> Duration {
    let t = Instant::now();
    s.ok(&["plan", EXPORT, "--json"]);
    t.elapsed()
}

struct Torture<'a> {
    cfg: &'a Config,
    want: Holding,
    remote: usize,
    prep: Duration,
    sim: Sim,
    s: Session,
    list: String,
    rng: StdRng,
    report: Report,
    tags: Vec<&'static str>,
    digest: String,
    /// The profile table once the decoy's import is committed.
    decoy_digest: String,
    csv: std::path::PathBuf,
    decoy: std::path::PathBuf,
    import_time: Duration,
}

enum Ended {
    Killed,
    Finished(i32),
}

impl Torture<'_> {
    /// A line of the story (shown by the example as it goes, by the test if it fails).
    fn log(&mut self, line: String) {
        eprintln!("{line}");
        self.report.log.push(line);
    }

    /// The upsert and tag requests the next run will send, estimated from what Mailchimp
    /// and the snapshot hold (without running `segsync plan`, which would do the next run's
    /// work of recognising members a killed run created).
    fn remaining(&self) -> (u64, u64) {
        let view = self.sim.view(&self.list);
        let in_mailchimp: BTreeSet<String> = view
            .members
            .iter()
            .map(|m| m.email_address.to_lowercase())
            .collect();
        let snap = snapshot(self.s.home());
        let (mut creates, mut updates) = (self.remote as u64, 0u64);
        let mut tags: BTreeMap<&str, u64> = BTreeMap::new();
        for (email, (_, _, want_tags)) in &self.want {
            match snap.get(email) {
                Some((Some(_), ..)) => {}
                _ if in_mailchimp.contains(email) => updates += 1,
                // Mailchimp refuses it for now (the pessimistic profile): the run defers it,
                // and can neither create nor tag it.
                _ if self.sim.refuses_for_now(email) => continue,
                _ => creates += 1,
            }
            let have = snap.get(email).map(|r| r.1.clone()).unwrap_or_default();
            for t in want_tags {
                if !have.contains(t) {
                    *tags.entry(t.as_str()).or_default() += 1;
                }
            }
        }
        let batches = |n: u64| n.div_ceil(500);
        (
            batches(creates) + batches(updates),
            tags.values().map(|n| batches(*n)).sum(),
        )
    }

    fn run_args(&self) -> Vec<String> {
        vec![
            "run".into(),
            EXPORT.into(),
            "--quiet".into(),
            "--max-in-flight".into(),
            self.cfg.in_flight.to_string(),
        ]
    }

    fn spawn_run(&mut self, crash_after: Option<u64>) -> Child {
        let args = self.run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.s.command(&args);
        if let Some(n) = crash_after {
            c.env(CRASH_ENV, n.to_string());
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        self.report.runs += 1;
        c.spawn().expect("segsync starts")
    }

    /// Waits until `cond` holds or the child ends; true if it still runs.
    fn until(&self, child: &mut Child, mut cond: impl FnMut(&Sim) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if cond(&self.sim) {
                return true;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "a run made no progress for 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn kill(child: &mut Child) -> Ended {
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        end_of(status)
    }

    /// Waits until the simulator has taken what the killed process sent: a request whose
    /// bytes were all in the socket when the process died still arrives, and is applied, a
    /// moment later (checked too early, its members were counted as created and not yet
    /// in the audience's view).
    fn settle(&self) {
        let seen = |sim: &Sim| {
            let c = sim.counters();
            (c.requests, c.writes, c.members_created, c.members_updated)
        };
        let mut last = seen(&self.sim);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = seen(&self.sim);
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Requests Mailchimp has taken and not answered (yet, or ever: a request whose client
    /// died is never counted as answered). The simulator applies a request before it spends
    /// its latency, so the ones a killed process leaves are writes applied whose answers it
    /// never got: it died between them and their checkpoints.
    fn unanswered(&self) -> u64 {
        let c = self.sim.counters();
        c.requests - c.by_status.values().sum::<u64>()
    }

    /// One interruption as planned; what it turned out to be.
    fn attempt(&mut self, planned: Plan, left: usize) -> Option<(Phase, bool)> {
        if planned == Plan::Import {
            return self.import_attempt();
        }
        let (upserts, tags) = self.remaining();
        let prep = self.prep;
        let planned = match planned {
            Plan::Upserts | Plan::HookUpserts if upserts == 0 => Plan::ReadDiff,
            Plan::Tagging | Plan::HookTagging if tags == 0 => Plan::ReadDiff,
            p => p,
        };
        consistent(&self.sim, &self.list, self.s.home(), &self.tags);
        let pending0 = self.unanswered();
        let c0 = self.sim.counters();
        let (u0, t0) = (
            endpoint(&self.sim, UPSERT_ENDPOINT),
            endpoint(&self.sim, TAG_ENDPOINT),
        );
        let latency_ms = (self.cfg.latency.0 + 500.0 * self.cfg.latency.1) as u64;
        let hook = matches!(planned, Plan::HookUpserts | Plan::HookTagging);
        let ended = match planned {
            Plan::ReadDiff => {
                let mut child = self.spawn_run(None);
                let wait = prep.mul_f64(self.rng.gen_range(0.05..0.6));
                let writes = c0.writes;
                let t = Instant::now();
                let alive = self.until(&mut child, |sim| {
                    t.elapsed() >= wait || sim.counters().writes > writes
                });
                if alive {
                    Self::kill(&mut child)
                } else {
                    end_of(child.wait().unwrap())
                }
            }
            Plan::Upserts | Plan::Tagging => {
                let (e, base, total) = if planned == Plan::Upserts {
                    (UPSERT_ENDPOINT, u0, upserts)
                } else {
                    (TAG_ENDPOINT, t0, tags)
                };
                // Anywhere in the first waves of requests, spread so that the planned kills
                // of this kind leave work for each other.
                let spread = (total / (left as u64 + 1)).max(1) + self.cfg.in_flight as u64;
                let nth = self.rng.gen_range(1..=spread.min(total));
                let extra = Duration::from_millis(self.rng.gen_range(0..=latency_ms));
                let mut child = self.spawn_run(None);
                let (t, writes) = (Instant::now(), c0.writes);
                if self.until(&mut child, |sim| sim.counters().writes > writes) {
                    self.prep = t.elapsed();
                }
                // The nth request is applied on arrival, then answered after its latency: a kill
                // within that latency falls between the request and its checkpoint.
                if self.until(&mut child, |sim| endpoint(sim, e) >= base + nth) {
                    std::thread::sleep(extra);
                    Self::kill(&mut child)
                } else {
                    end_of(child.wait().unwrap())
                }
            }
            Plan::HookUpserts | Plan::HookTagging => {
                // Early in the phase, so that the run surely gets there and leaves work for
                // the interruptions still planned.
                let n = if planned == Plan::HookUpserts {
                    self.rng.gen_range(1..=upserts.div_ceil(2))
                } else {
                    upserts + self.rng.gen_range(1..=tags.div_ceil(2))
                };
                let mut child = self.spawn_run(Some(n));
                end_of(child.wait().unwrap())
            }
            Plan::Import => unreachable!(),
        };
        self.settle();
        let pending = self.unanswered() - pending0;
        let c1 = self.sim.counters();
        let (u1, t1) = (
            endpoint(&self.sim, UPSERT_ENDPOINT),
            endpoint(&self.sim, TAG_ENDPOINT),
        );
        integrity(self.s.home());
        let ahead = consistent(&self.sim, &self.list, self.s.home(), &self.tags).len();
        // A dead run is listed as interrupted, never as still running.
        let runs: Value =
            serde_json::from_str(&self.s.ok(&["runs", "--json", "--limit", "3"]).stdout).unwrap();
        assert!(
            runs.as_array()
                .unwrap()
                .iter()
                .all(|r| r["outcome"] != "running"),
            "{runs}"
        );
        match ended {
            Ended::Finished(code) => {
                assert!(
                    code == 0 || code == 3,
                    "a run that was not killed ends well: exit {code}; the last runs: {runs}"
                );
                self.report.runs_finished_first += 1;
                self.log(format!(
                    "  run finished (exit {code}) before its planned {planned:?} interruption"
                ));
                None
            }
            Ended::Killed => {
                let phase = if t1 > t0 {
                    Phase::Tagging
                } else if u1 > u0 {
                    Phase::Upserts
                } else if c1.writes == c0.writes {
                    Phase::ReadDiff
                } else {
                    Phase::AudienceSetup
                };
                // Between a request and its checkpoint: the hook fires right there; an outside
                // kill when Mailchimp still held applied, unanswered writes of the process.
                let sending = matches!(phase, Phase::Upserts | Phase::Tagging);
                let window = sending && (hook || pending > 0);
                self.log(format!(
                    "  {} during {}: {} upsert and {} tag requests reached Mailchimp, {pending} taken there and never answered; Mailchimp ahead of the checkpoint by {ahead} member writes",
                    if hook { "hook kill" } else { "SIGKILL" },
                    phase.as_str(),
                    u1 - u0,
                    t1 - t0
                ));
                Some((phase, window))
            }
        }
    }

    fn import_attempt(&mut self) -> Option<(Phase, bool)> {
        let args = [
            "profiles",
            "import",
            self.decoy.to_str().unwrap(),
            "--key",
            "customer_id",
        ];
        let mut c = self.s.command(&args);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let wait = self.import_time.mul_f64(self.rng.gen_range(0.1..0.9));
        let mut child = c.spawn().unwrap();
        let t = Instant::now();
        while t.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ended = Self::kill(&mut child);
        integrity(self.s.home());
        match ended {
            Ended::Killed => {
                let now = profile_digest(self.s.home());
                // Killed after its commit, on its way out: the decoy's profiles, whole.
                if now != self.decoy_digest {
                    assert_eq!(
                        now, self.digest,
                        "a killed import leaves the previous profiles intact"
                    );
                    self.log(format!(
                        "  SIGKILL during profiles import after {:?}: previous profiles intact",
                        t.elapsed()
                    ));
                    return Some((Phase::Import, false));
                }
            }
            Ended::Finished(code) => {
                assert_eq!(code, 0, "the decoy import succeeds when not killed");
            }
        }
        self.report.imports_finished_first += 1;
        self.log("  import finished before its kill: importing the profiles again".into());
        self.s.ok(&[
            "profiles",
            "import",
            self.csv.to_str().unwrap(),
            "--key",
            "customer_id",
        ]);
        assert_eq!(profile_digest(self.s.home()), self.digest);
        None
    }
}

fn end_of(status: std::process::ExitStatus) -> Ended {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(9) {
            return Ended::Killed;
        }
    }
    match status.code() {
        Some(c) => Ended::Finished(c),
        None => Ended::Killed,
    }
}

/// The schedule: upsert interruptions before tagging ones (the run gets there in that
/// order), imports and read/diff kills anywhere but first.
fn schedule(cfg: &Config, rng: &mut StdRng) -> Vec<Plan> {
    let imports = (cfg.kills * 3 / 22).max(1);
    let reads = (cfg.kills * 4 / 22).max(1);
    let rest = cfg.kills.saturating_sub(imports + reads).max(2);
    let upserts = rest.div_ceil(2);
    let tagging = rest - upserts;
    let mut first: Vec<Plan> = vec![Plan::Upserts; upserts];
    first.extend(vec![Plan::HookUpserts; cfg.hook_kills.div_ceil(2)]);
    first.shuffle(rng);
    // The first interruption is an outside kill during the upserts.
    if let Some(i) = first.iter().position(|p| *p == Plan::Upserts) {
        first.swap(0, i);
    }
    let mut second: Vec<Plan> = vec![Plan::Tagging; tagging];
    second.extend(vec![Plan::HookTagging; cfg.hook_kills / 2]);
    second.shuffle(rng);
    let mut all = first;
    all.extend(second);
    for p in
        std::iter::repeat_n(Plan::Import, imports).chain(std::iter::repeat_n(Plan::ReadDiff, reads))
    {
        let at = rng.gen_range(1..=all.len());
        all.insert(at, p);
    }
    all
}

/// What one uninterrupted run leaves (with the run that sends what Mailchimp deferred, if it
/// deferred anything): the audience and the snapshot, and how long that took.
pub fn reference(profiles: &[Profile]) -> (Holding, BTreeMap<String, SnapRow>, f64) {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    s.setup(&list, profiles, &[]);
    let t = Instant::now();
    s.run_settled(&sim, 3, &[]);
    let secs = t.elapsed().as_secs_f64();
    let view = sim.view(&list);
    assert_eq!(sim.counters().members_created, view.members.len() as u64);
    (holding(&view, FIELDS), snapshot(s.home()), secs)
}

/// The whole torture; panics on the first broken promise.
pub fn run(cfg: &Config) -> Report {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let (people, local, remote) = profiles(cfg.profiles);
    let want = expected(
        &people
            .iter()
            .filter(|p| !local.contains(&p.id) && !remote.contains(&p.id))
            .cloned()
            .collect::<Vec<_>>(),
        Status::Subscribed,
    );

    let (ref_holding, ref_snapshot, ref_secs) = reference(&people);
    assert_eq!(
        ref_holding, want,
        "the uninterrupted run delivers the profiles"
    );

    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let csv = s.path("profiles.csv");
    write_csv(&csv, &people);
    let t = Instant::now();
    s.ok(&[
        "profiles",
        "import",
        csv.to_str().unwrap(),
        "--key",
        "customer_id",
    ]);
    let import_time = t.elapsed();
    // Another file, imported only to be killed: every city differs, a tenth more rows.
    let mut decoy_people = people.clone();
    for p in &mut decoy_people {
        p.city = format!("{} (decoy)", p.city);
    }
    decoy_people.extend(people.iter().take(cfg.profiles / 10).map(|p| Profile {
        id: format!("D{}", p.id),
        email: format!("decoy.{}", p.email),
        ..p.clone()
    }));
    let decoy = s.path("decoy.csv");
    write_csv(&decoy, &decoy_people);
    // What the decoy's import holds when committed, from an import into a home of its own: a
    // kill that lands after the commit, as the process exits, leaves exactly that.
    let decoy_home = tempfile::tempdir().unwrap();
    let out = s
        .command(&[
            "profiles",
            "import",
            decoy.to_str().unwrap(),
            "--key",
            "customer_id",
        ])
        .env("SEGSYNC_HOME", decoy_home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let decoy_digest = profile_digest(decoy_home.path());
    s.segments();
    s.connect();
    s.add_export(&list, &[]);
    sim.settings(|st| {
        st.latency.base_ms = cfg.latency.0;
        st.latency.per_item_ms = cfg.latency.1;
        // Items' tags ignored: every tag goes by a tag batch, so that runs can be killed
        // tagging (where Mailchimp applies them, creates and the updates of members a killed
        // run created carry them all, and no tag batch is left to kill).
        st.variants.batch_item_tags = BatchItemTags::Ignored;
    });
    let digest = profile_digest(s.home());

    let prep = plan_time(&s);
    let mut t = Torture {
        cfg,
        want: want.clone(),
        remote: remote.len(),
        prep,
        sim,
        s,
        list,
        rng: StdRng::seed_from_u64(rng.gen()),
        report: Report {
            profiles: cfg.profiles,
            members: want.len(),
            planted_local: local.len(),
            planted_mailchimp: remote.len(),
            reference_seconds: ref_secs,
            ..Default::default()
        },
        tags: vec![HIGH_VALUE_TAG, "romania"],
        digest,
        decoy_digest,
        csv,
        decoy,
        import_time,
    };

    let mut queue = schedule(cfg, &mut rng);
    let total = queue.len();
    let mut done = 0;
    let mut extra = 0;
    let mut topped_up = 0;
    loop {
        if queue.is_empty() {
            // A kill planned for a phase may have landed in another (a read that was
            // quicker than planned): plan another for a phase no kill reached yet.
            let missing = [
                (Phase::Import, Plan::Import),
                (Phase::ReadDiff, Plan::ReadDiff),
                (Phase::Upserts, Plan::Upserts),
                (Phase::Tagging, Plan::Tagging),
            ]
            .into_iter()
            .find(|(phase, _)| !t.report.sigkills.contains_key(phase));
            match missing {
                Some((_, plan)) if topped_up < 6 => {
                    topped_up += 1;
                    queue.push(plan);
                }
                _ => break,
            }
        }
        let planned = queue.remove(0);
        let same_left = queue.iter().filter(|p| **p == planned).count();
        t.log(format!("interruption {}/{total}: {planned:?}", done + 1));
        match t.attempt(planned, same_left) {
            Some((phase, window)) => {
                done += 1;
                let hook = matches!(planned, Plan::HookUpserts | Plan::HookTagging);
                let m = if hook {
                    &mut t.report.hook_kills
                } else {
                    &mut t.report.sigkills
                };
                *m.entry(phase).or_default() += 1;
                t.report.in_window += usize::from(window);
            }
            None => {
                // The process finished first: try again (a bounded number of times).
                extra += 1;
                assert!(
                    extra <= total,
                    "too many processes finished before their kill"
                );
                queue.insert(0, planned);
            }
        }
    }

    // The final run, uninterrupted (and the one that sends what Mailchimp deferred until
    // then, if anything).
    let last = t.s.run_settled(&t.sim, 3, &[]);
    t.report.runs += last.runs.len();
    let home = t.s.home().to_path_buf();
    integrity(&home);
    let view = t.sim.view(&t.list);
    assert_eq!(
        holding(&view, FIELDS),
        ref_holding,
        "the audience is what one uninterrupted run makes"
    );
    let snap = snapshot(&home);
    assert_eq!(
        snap.len(),
        ref_snapshot.len(),
        "the snapshot knows as many members as the uninterrupted run's"
    );
    for (email, row) in &ref_snapshot {
        assert_eq!(
            snap.get(email),
            Some(row),
            "{email}: the snapshot (content, tags, status, ownership) is the uninterrupted run's"
        );
    }
    let c = t.sim.counters();
    assert_eq!(
        c.members_created,
        want.len() as u64,
        "every member created exactly once"
    );
    assert_eq!(c.compliance_refusals, 0);
    // Every planted bad record is reported by the last run, or held back by it as a refusal
    // for good remembered from an earlier one; nothing else.
    let runs: Value =
        serde_json::from_str(&t.s.ok(&["runs", "--json", "--limit", "1"]).stdout).unwrap();
    let last = runs[0]["id"].as_i64().unwrap();
    assert_eq!(runs[0]["outcome"], "succeeded_with_errors");
    assert_eq!(count(&runs[0], "deferred"), 0, "{runs}");
    let errors = t.s.errors_csv(last);
    let reported: BTreeSet<String> = errors.iter().map(|e| e.0.clone()).collect();
    let planted: BTreeSet<String> = local.union(&remote).cloned().collect();
    let held: BTreeSet<String> = planted.difference(&reported).cloned().collect();
    assert!(
        reported.is_subset(&planted) && held.is_subset(&remote),
        "every planted bad record is in `runs errors` or remembered, nothing else: {reported:?}"
    );
    assert!(held.is_subset(&t.s.remembered_keys()), "{held:?}");
    assert_eq!(count(&runs[0], "remembered_refusals"), held.len() as u64);
    assert_eq!(
        errors.len(),
        reported.len(),
        "each reported once: {errors:?}"
    );
    for (key, _, reason) in &errors {
        if remote.contains(key) {
            assert!(reason.starts_with("Mailchimp: "), "{key}: {reason}");
        } else {
            assert!(reason.contains("invalid email address"), "{key}: {reason}");
        }
    }
    let total_interruptions = t.report.total_sigkills() + t.report.total_hook_kills();
    assert!(
        t.report.total_sigkills() >= cfg.kills,
        "{}",
        t.report.summary()
    );
    assert_eq!(total_interruptions, done);
    for phase in [
        Phase::Import,
        Phase::ReadDiff,
        Phase::Upserts,
        Phase::Tagging,
    ] {
        assert!(
            t.report.sigkills.get(&phase).copied().unwrap_or(0) > 0,
            "a SIGKILL during {}: {}",
            phase.as_str(),
            t.report.summary()
        );
    }
    if cfg.hook_kills > 0 {
        assert!(t.report.total_hook_kills() >= cfg.hook_kills.min(2));
    }
    assert!(
        t.report.in_window > t.report.total_hook_kills(),
        "interruptions landed between an applied request and its checkpoint: {}",
        t.report.summary()
    );
    t.report.requests = c.requests;
    t.report.members_created = c.members_created;
    t.report.seconds = started.elapsed().as_secs_f64();
    t.report
}

#[test]
fn kill_9_at_seeded_random_moments_loses_and_duplicates_nothing() {
    let report = run(&Config::ci());
    eprintln!("{}", report.summary());
    assert!(report.total_sigkills() >= 6, "{}", report.summary());
    assert!(report.total_hook_kills() >= 2, "{}", report.summary());
}
