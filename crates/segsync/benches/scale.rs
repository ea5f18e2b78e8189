//! Issue 6's benchmark: segsync at a million profiles, against the bound of design.md
//! section 7, in one run.
//!
//! ```text
//! cargo bench -p segsync --bench scale
//! ```
//!
//! Knobs (environment):
//! - `SEGSYNC_BENCH_PROFILES` (default 1,000,000): profiles of the full export, the re-runs,
//!   the pipeline and the simulator parts.
//! - `SEGSYNC_BENCH_SCALE` (default 0.1): the latency model is Mailchimp's plausible 300 ms per
//!   request + 2 ms per member, times this; both the scaled and the unscaled figures are shown.
//! - `SEGSYNC_BENCH_PARTS` (default all): a comma list of
//!   `full,reruns,pipeline,memory,naive,sim,pgsource` (`reruns` runs `full` first, which it
//!   needs).
//! - `SEGSYNC_BENCH_MEMORY_SIZES` (default `100000,1000000,3000000`): the sizes of `memory`.
//! - `SEGSYNC_BENCH_PG_SIZES` (default `100000,1000000`): the sizes of `pgsource`.
//! - `SEGSYNC_BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`): the
//!   maintenance database of the PostgreSQL server `pgsource` uses; its role must be able to
//!   create databases without a password (trust). Unreachable, the bench fails: it never
//!   skips the part.
//! - `SEGSYNC_BENCH_NAIVE_SAMPLE` (default 5,000): members sent the naive ways; the figures
//!   are extrapolated linearly to the full export's members.
//! - `SEGSYNC_BENCH_BATCH_OPS_PER_S` (default 16, as Mailchimp was seen to run `/batches`
//!   operations): the unscaled speed of `/batches` jobs in the naive baseline.
//! - `SEGSYNC_BENCH_JSON=path`: every figure as JSON too.
//! - `SEGSYNC_BENCH_DIR`: where the profiles and homes go (default: a temporary folder).
//! - `SEGSYNC_BENCH_BIN`: another `segsync` binary, or a wrapper (perf record, for a profile).
//!
//! segsync is driven through its binary (`run --json`, `plan --json`), as a user would; its
//! peak RSS is sampled from /proc (VmHWM), its CPU time comes from `wait4`, its local stages from its
//! debug log (`SEGSYNC_LOG=segsync=debug`: "profiles read", "audience read", "planned"). The
//! simulator runs in this process; its counters give the requests by endpoint, their items
//! (for the bound) and the time requests held an in-flight slot (for the average in flight).
//!
//! `pgsource` (issue 5) keeps the profiles in PostgreSQL: for each size, a new database
//! (dropped at the end, also on a panic), the same generated profiles loaded into a typed
//! table `crm.customers` with `COPY ... FROM STDIN (FORMAT csv)`, a profile source on it
//! (`profiles source add`), the same four segments as PostgreSQL SQL (`segments add
//! --source`), the same export; then `plan --json` and one `run` at latency 0, measured like
//! the `memory` part, and PostgreSQL's share of the profile pass measured apart: the union of
//! the predicates counted by PostgreSQL, and the run's one query streamed through segsync's
//! cursor without staging.
//!
//! Nothing is asserted about times: the figures are printed (BENCHMARKS.md explains them).
//! Correctness is checked (audience size, tag sizes, segment sizes, no write on an unchanged
//! re-run); a failed check is printed and makes the bench exit with status 1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use mailchimp_sim::{CountersView, RunningSim, SimConfig};
use serde_json::{json, Value};

const KEY_ENV: &str = "SEGSYNC_BENCH_KEY";
const PARTS: [&str; 7] = [
    "full", "reruns", "pipeline", "memory", "naive", "sim", "pgsource",
];
/// Mailchimp's plausible latency, unscaled: per request, and per member of a request.
const BASE_MS: f64 = 300.0;
const PER_ITEM_MS: f64 = 2.0;
/// Requests in flight that Mailchimp allows (the bound spreads the latency over them).
const IN_FLIGHT: f64 = 10.0;

/// The export's segments: (name, predicate). They overlap; their union is about 90% of the
/// profiles.
const SEGMENTS: [(&str, &str); 4] = [
    ("newsletter", "accepts_marketing = 1"),
    ("high-value", "lifetime_value >= 2000"),
    ("recent-buyers", "last_order_at >= '2026-06-01'"),
    ("romania", "country = 'RO'"),
];

/// The same segments over the profiles in PostgreSQL ([`PG_TABLE`]), in the order of
/// [`SEGMENTS`]: PostgreSQL SQL over typed columns.
const PG_PREDICATES: [&str; 4] = [
    "accepts_marketing",
    "lifetime_value >= 2000",
    "last_order_at >= '2026-06-01'",
    "country = 'RO'",
];

/// The table `pgsource` loads the generated profiles into: the CSV's columns ([`HEADER`]),
/// typed as a CRM database would type them.
const PG_TABLE: &str = "CREATE SCHEMA crm;
CREATE TABLE crm.customers (
    customer_id text PRIMARY KEY,
    email text,
    first_name text,
    last_name text,
    city text,
    country text,
    lifetime_value numeric(12, 2),
    orders integer,
    last_order_at date,
    accepts_marketing boolean,
    updated_at timestamptz
)";

/// The column types `profiles source add` should report for [`PG_TABLE`].
const PG_COLUMN_TYPES: [(&str, &str); 11] = [
    ("customer_id", "text"),
    ("email", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("city", "text"),
    ("country", "text"),
    ("lifetime_value", "real"),
    ("orders", "integer"),
    ("last_order_at", "date"),
    ("accepts_marketing", "boolean"),
    ("updated_at", "timestamp"),
];

/// The columns an export reads from its profiles, as the engine asks for them: the address,
/// the merge fields (FNAME, LNAME, CITY, COUNTRY, LTV), then `updated_at`.
const EXPORT_COLUMNS: [&str; 7] = [
    "email",
    "first_name",
    "last_name",
    "city",
    "country",
    "lifetime_value",
    "updated_at",
];

// ---------------------------------------------------------------------------------------
// Profiles

const FIRST: [&str; 16] = [
    "Ana", "Ion", "Maria", "Andrei", "Élise", "Jürgen", "Zoë", "Luca", "Sofía", "Mihai", "Ioana",
    "Pierre", "Giulia", "Lukas", "Carmen", "Radu",
];
const FIRST_ASCII: [&str; 16] = [
    "ana", "ion", "maria", "andrei", "elise", "juergen", "zoe", "luca", "sofia", "mihai", "ioana",
    "pierre", "giulia", "lukas", "carmen", "radu",
];
const LAST: [&str; 12] = [
    "Popescu", "Ionescu", "Dumitru", "Müller", "Martin", "Rossi", "García", "Dubois", "Schmidt",
    "Stan", "Bianchi", "López",
];
const LAST_ASCII: [&str; 12] = [
    "popescu", "ionescu", "dumitru", "mueller", "martin", "rossi", "garcia", "dubois", "schmidt",
    "stan", "bianchi", "lopez",
];
const COUNTRIES: [(&str, &[&str]); 5] = [
    ("RO", &["București", "Cluj-Napoca", "Iași", "Timișoara"]),
    ("FR", &["Paris", "Lyon", "Marseille"]),
    ("DE", &["Berlin", "München", "Hamburg"]),
    ("IT", &["Milano", "Roma", "Torino"]),
    ("ES", &["Madrid", "Barcelona", "Sevilla"]),
];
const DOMAINS: [&str; 10] = [
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "posta.ro",
    "orange.fr",
    "web.de",
    "libero.it",
    "hotmail.es",
    "icloud.com",
    "gmx.de",
];
/// Days of `last_order_at` counted from 2024-01-01; 2026-06-01 is day 882.
const ORDER_DAYS: u64 = 1050;
const RECENT_FROM_DAY: u16 = 882;

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Email {
    Valid,
    /// The address of an earlier profile, written differently (case, spaces).
    Duplicate {
        of: usize,
        variant: u8,
    },
    /// An address segsync must refuse (no TLD, no @, misplaced dot, empty, spaces).
    Invalid(u8),
}

/// 0.5% invalid, 1% duplicates of an earlier valid profile, the rest valid and distinct.
fn base_kind(i: usize) -> (u64, u64) {
    let h = mix(i as u64 ^ 0x5e65_7e3c);
    (h % 1000, h)
}

fn email_kind(i: usize) -> Email {
    let (r, h) = base_kind(i);
    if r < 5 {
        return Email::Invalid(((h >> 10) % 5) as u8);
    }
    if r < 15 && i > 0 {
        let mut of = i - 1 - ((h >> 20) as usize % i.min(1000));
        loop {
            let (r, _) = base_kind(of);
            if r >= 15 || (of == 0 && r >= 5) {
                return Email::Duplicate {
                    of,
                    variant: ((h >> 40) % 3) as u8,
                };
            }
            if of == 0 {
                return Email::Valid;
            }
            of -= 1;
        }
    }
    Email::Valid
}

/// One profile, as a pure function of its index and how many times it changed.
struct Profile {
    i: usize,
    email: Email,
    first: usize,
    last: usize,
    country: usize,
    city: usize,
    ltv_cents: u64,
    orders: u64,
    day: u16,
    accepts: bool,
    rev: u8,
    updated: (u8, u8, u8, u8, u8),
}

fn names(i: usize) -> (usize, usize, usize) {
    let h = mix(i as u64 ^ 0x0a11_ce00);
    (
        (h % 16) as usize,
        ((h >> 4) % 12) as usize,
        ((h >> 20) % 10) as usize,
    )
}

fn profile(i: usize, rev: u8) -> Profile {
    let h = mix(i as u64 ^ 0x0a11_ce00);
    let h2 = mix(h);
    let (first, last, _) = names(i);
    let country = match (h >> 8) % 100 {
        0..30 => 0,
        30..50 => 1,
        50..70 => 2,
        70..85 => 3,
        _ => 4,
    };
    let city = ((h >> 16) % COUNTRIES[country].1.len() as u64) as usize;
    let u = (h2 % 10_000) as f64 / 10_000.0;
    let mut ltv_cents = (500_000.0 * u * u * u) as u64;
    let mut orders = 1 + ltv_cents / 10_000 + (h2 >> 16) % 5;
    let mut day = ((h2 >> 24) % ORDER_DAYS) as u16;
    let accepts = (h2 >> 40) % 100 < 85;
    let mut updated = (
        1 + ((h2 >> 48) % 10) as u8,
        1 + ((h2 >> 52) % 28) as u8,
        ((h >> 32) % 24) as u8,
        ((h >> 40) % 60) as u8,
        ((h >> 48) % 60) as u8,
    );
    if rev > 0 {
        // A new order for every change: the value grows, the last order is recent.
        ltv_cents += 5_000 * rev as u64;
        orders += rev as u64;
        day = ORDER_DAYS as u16 + 5 + rev as u16;
        updated = (11, 21, rev.min(23), updated.3, updated.4);
    }
    Profile {
        i,
        email: email_kind(i),
        first,
        last,
        country,
        city,
        ltv_cents,
        orders,
        day,
        accepts,
        rev,
        updated,
    }
}

impl Profile {
    /// The segments the profile is in, as bits in the order of [`SEGMENTS`].
    fn mask(&self) -> u8 {
        (self.accepts as u8)
            | (((self.ltv_cents >= 200_000) as u8) << 1)
            | (((self.day >= RECENT_FROM_DAY) as u8) << 2)
            | (((self.country == 0) as u8) << 3)
    }

    /// The index of the profile whose address this one has, None for an invalid address.
    fn email_id(&self) -> Option<usize> {
        match self.email {
            Email::Valid => Some(self.i),
            Email::Duplicate { of, .. } => Some(of),
            Email::Invalid(_) => None,
        }
    }
}

/// The canonical (lower-case) address of profile `i`.
fn canonical_email(i: usize) -> String {
    let (f, l, d) = names(i);
    format!("{}.{}{i}@{}", FIRST_ASCII[f], LAST_ASCII[l], DOMAINS[d])
}

fn written_email(p: &Profile) -> String {
    let (f, l, d) = names(p.i);
    let (fa, la, dom) = (FIRST_ASCII[f], LAST_ASCII[l], DOMAINS[d]);
    let i = p.i;
    match p.email {
        Email::Valid => canonical_email(i),
        Email::Duplicate { of, variant } => {
            let e = canonical_email(of);
            match variant {
                0 => e.to_uppercase(),
                1 => format!("  {e} "),
                _ => {
                    // Capitalised: "Ana.popescu12@Gmail.com".
                    let (local, domain) = e.split_once('@').unwrap();
                    format!(
                        "{}{}@{}{}",
                        local[..1].to_ascii_uppercase(),
                        &local[1..],
                        domain[..1].to_ascii_uppercase(),
                        &domain[1..]
                    )
                }
            }
        }
        Email::Invalid(0) => format!("{fa}.{la}{i}@{}", dom.split('.').next().unwrap()),
        Email::Invalid(1) => format!("{fa}.{la}{i}{dom}"),
        Email::Invalid(2) => format!("{fa}..{la}{i}@{dom}"),
        Email::Invalid(3) => String::new(),
        Email::Invalid(_) => format!("{fa} {la}{i}@{dom}"),
    }
}

/// What the profiles written should give, computed while writing them.
#[derive(Clone, Debug, Default)]
struct Expect {
    profiles: u64,
    invalid: u64,
    duplicate_profiles: u64,
    /// Profiles in each segment (what `segments add` counts).
    segment_profiles: [u64; 4],
    /// Profiles in at least one segment.
    selected: u64,
    /// Distinct valid addresses among the selected profiles: the audience's members.
    members: u64,
    /// Members carrying each segment's tag.
    tag_members: [u64; 4],
    /// Selected profiles with an invalid address.
    refused: u64,
    /// Selected profiles merged into another's member.
    duplicates: u64,
    /// Profiles changed at least once.
    changed: u64,
}

const HEADER: &str = "customer_id,email,first_name,last_name,city,country,lifetime_value,orders,last_order_at,accepts_marketing,updated_at";

/// Writes `n` profiles (changed `revs[i]` times) as CSV, or only counts them with `path` None.
fn write_profiles(path: Option<&Path>, n: usize, revs: &[u8], dates: &[String]) -> Expect {
    let mut out: Box<dyn Write> = match path {
        Some(p) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).expect("profiles file"),
        )),
        None => Box::new(std::io::sink()),
    };
    writeln!(out, "{HEADER}").unwrap();
    let mut e = Expect {
        profiles: n as u64,
        ..Default::default()
    };
    let mut member_mask = vec![0u8; n];
    for i in 0..n {
        let p = profile(i, revs.get(i).copied().unwrap_or(0));
        let mask = p.mask();
        for (s, count) in e.segment_profiles.iter_mut().enumerate() {
            *count += ((mask >> s) & 1) as u64;
        }
        e.changed += (p.rev > 0) as u64;
        match p.email {
            Email::Invalid(_) => e.invalid += 1,
            Email::Duplicate { .. } => e.duplicate_profiles += 1,
            Email::Valid => {}
        }
        if mask != 0 {
            e.selected += 1;
            match p.email_id() {
                Some(id) => member_mask[id] |= mask,
                None => e.refused += 1,
            }
        }
        if path.is_some() {
            let (country, cities) = COUNTRIES[p.country];
            let u = p.updated;
            writeln!(
                out,
                "C{i:08},{},{},{},{},{country},{}.{:02},{},{},{},2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                written_email(&p),
                FIRST[p.first],
                LAST[p.last],
                cities[p.city],
                p.ltv_cents / 100,
                p.ltv_cents % 100,
                p.orders,
                dates[p.day as usize],
                p.accepts,
                u.0,
                u.1,
                u.2,
                u.3,
                u.4
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
    for m in member_mask.iter().filter(|m| **m != 0) {
        e.members += 1;
        for (s, count) in e.tag_members.iter_mut().enumerate() {
            *count += ((m >> s) & 1) as u64;
        }
    }
    e.duplicates = e.selected - e.refused - e.members;
    e
}

fn order_dates() -> Vec<String> {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    (0..ORDER_DAYS as i64 + 300)
        .map(|d| (start + chrono::Duration::days(d)).to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Running segsync

/// One segsync process: exit code, wall time, and its rusage.
struct Proc {
    code: i32,
    wall: f64,
    /// Peak resident set size, MB (VmHWM).
    rss_mb: f64,
    /// User + system CPU seconds.
    cpu: f64,
    stdout: String,
    stderr: String,
}

impl Proc {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }
}

/// Waits for `child`; returns its exit code and CPU seconds (user + system, from `wait4`).
///
/// Not its peak RSS: `ru_maxrss` is unusable here. The child is spawned with
/// `CLONE_VM | CLONE_VFORK` (posix_spawn), and exec records the high-water RSS of the memory
/// it leaves, which is this process's, into the child's `ru_maxrss`. See [`PeakRss`].
#[cfg(unix)]
fn wait_cpu(child: std::process::Child) -> (i32, f64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
    }
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (code, tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[cfg(not(unix))]
fn wait_cpu(mut child: std::process::Child) -> (i32, f64) {
    let s = child.wait().expect("segsync ends");
    (s.code().unwrap_or(-1), 0.0)
}

/// Samples `VmHWM` (the kernel's high-water mark of the process's resident set, after exec)
/// from /proc every 5 ms until the process is gone: its peak RSS, but for growth in its last
/// 5 ms, where a process frees rather than grows.
struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut peak_kb = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let kb = std::fs::read_to_string(&path).ok().and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                });
                match kb {
                    Some(kb) => peak_kb = peak_kb.max(kb),
                    // Exited (a zombie has no memory) or reaped.
                    None if peak_kb > 0 => break,
                    None => {}
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak_kb
        });
        PeakRss { stop, thread }
    }

    /// MB.
    fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0) as f64 / 1024.0
    }
}

/// CPU seconds of this process (the in-process simulator, mostly).
#[cfg(unix)]
fn self_cpu() -> f64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(not(unix))]
fn self_cpu() -> f64 {
    0.0
}

struct Runner {
    bin: String,
    key: String,
    scratch: PathBuf,
}

impl Runner {
    /// Runs `segsync --home HOME ARGS` with the debug log on, and waits for it.
    fn run(&self, home: &Path, args: &[&str]) -> Proc {
        let out = self.scratch.join("segsync.out");
        let err = self.scratch.join("segsync.err");
        let t = Instant::now();
        let child = Command::new(&self.bin)
            .arg("--home")
            .arg(home)
            .args(args)
            .env(KEY_ENV, &self.key)
            .env("SEGSYNC_LOG", "segsync=debug")
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

    /// Like [`Runner::run`], and stops the bench unless segsync exits with one of `codes`.
    fn must(&self, home: &Path, args: &[&str], codes: &[i32]) -> Proc {
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
struct Stages {
    /// Profiles read, segments evaluated, addresses normalised, duplicates merged.
    read: Option<f64>,
    /// The audience's (changes) read.
    audience: Option<f64>,
    /// Diffed and planned.
    planned: Option<f64>,
}

impl Stages {
    fn of(log: &str) -> Stages {
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

    fn read_s(&self) -> Option<f64> {
        self.read
    }

    fn audience_s(&self) -> Option<f64> {
        Some(self.audience? - self.read?)
    }

    fn diff_plan_s(&self) -> Option<f64> {
        Some(self.planned? - self.audience?)
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

// ---------------------------------------------------------------------------------------
// The simulator

struct Latency {
    base_ms: f64,
    per_item_ms: f64,
}

/// A simulator in this process whose one account has API key `key`.
fn start_sim(rt: &tokio::runtime::Runtime, lat: &Latency, key: &str) -> RunningSim {
    let mut config = SimConfig {
        api_keys: vec![key.to_string()],
        ..Default::default()
    };
    config.settings.latency.base_ms = lat.base_ms;
    config.settings.latency.per_item_ms = lat.per_item_ms;
    rt.block_on(RunningSim::start(config, "127.0.0.1:0"))
        .expect("the simulator starts")
}

/// What the simulator saw between two snapshots of its counters.
struct Seen {
    requests: u64,
    writes: u64,
    items: u64,
    in_flight_s: f64,
    too_many: u64,
    by_endpoint: BTreeMap<String, u64>,
}

/// POSTs every body to `url` with the account's key, 10 in flight; each answer's status (0
/// when there was none).
fn post_all(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
    key: &str,
    bodies: &[bytes::Bytes],
) -> Vec<u16> {
    rt.block_on(
        stream::iter(bodies.iter())
            .map(|b| async move {
                http.post(url)
                    .basic_auth("bench", Some(key))
                    .header("content-type", "application/json")
                    .body(b.clone())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
            .buffer_unordered(10)
            .collect(),
    )
}

fn seen(before: &CountersView, after: &CountersView) -> Seen {
    let mut by_endpoint = BTreeMap::new();
    for (k, v) in &after.by_endpoint {
        let d = v - before.by_endpoint.get(k).copied().unwrap_or(0);
        if d > 0 {
            by_endpoint.insert(k.trim_start_matches("/3.0").to_string(), d);
        }
    }
    Seen {
        requests: after.requests - before.requests,
        writes: after.writes - before.writes,
        items: after.items - before.items,
        in_flight_s: (after.in_flight_micros - before.in_flight_micros) as f64 / 1e6,
        too_many: after.too_many_requests - before.too_many_requests,
        by_endpoint,
    }
}

impl Seen {
    /// Design.md section 7's bound: the modelled latency of every request, over 10 in flight.
    fn bound_s(&self, lat: &Latency) -> f64 {
        (self.requests as f64 * lat.base_ms + self.items as f64 * lat.per_item_ms)
            / IN_FLIGHT
            / 1000.0
    }

    /// Time requests held their slots beyond the modelled latency (the simulator's handling,
    /// body transfer), as a share of the modelled time.
    fn overhead_share(&self, lat: &Latency) -> f64 {
        let model = self.bound_s(lat) * IN_FLIGHT;
        if model > 0.0 {
            (self.in_flight_s - model) / model
        } else {
            0.0
        }
    }

    fn endpoints(&self) -> String {
        self.by_endpoint
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "writes": self.writes,
            "items": self.items,
            "in_flight_seconds": self.in_flight_s,
            "too_many_requests": self.too_many,
            "by_endpoint": self.by_endpoint,
        })
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// A connection to `url`; stops the bench, saying what it needs, when there is none.
fn pg_connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        // The error's own text is terse ("error connecting to server"): add its causes.
        let mut why = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            why.push_str(&format!(": {c}"));
            cause = c.source();
        }
        panic!(
            "the pgsource part needs PostgreSQL at {} (SEGSYNC_BENCH_PG_URL; a role that may \
             create databases, no password): {why}",
            segsync::pg::redact(url)
        )
    })
}

/// A database of its own for one size of `pgsource`, dropped with this value: at the end of
/// the size, and also when the bench panics on the way.
struct PgDatabase {
    /// The server's maintenance database, which the drop connects to.
    admin: String,
    name: String,
    /// This database's URL.
    url: String,
}

impl PgDatabase {
    /// Creates the database `name` (an identifier of lower-case letters, digits and `_`) on
    /// the server of `server`, the URL of its maintenance database.
    fn create(server: &str, name: &str) -> PgDatabase {
        let mut url = url::Url::parse(server)
            .unwrap_or_else(|e| panic!("SEGSYNC_BENCH_PG_URL={server}: {e}"));
        url.set_path(&format!("/{name}"));
        let mut admin = pg_connect(server);
        // Guard first: a failure from here on still drops whatever was created.
        let db = PgDatabase {
            admin: server.to_string(),
            name: name.to_string(),
            url: url.to_string(),
        };
        // One statement per call: neither runs inside a transaction block.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        db
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE ends the sessions still connected (a segsync killed by a panic, say).
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        match postgres::Client::connect(&self.admin, postgres::NoTls)
            .and_then(|mut c| c.batch_execute(&sql))
        {
            Ok(()) => eprintln!("[bench] dropped database {}", self.name),
            Err(e) => eprintln!(
                "[bench] could not drop database {} ({e}): drop it by hand",
                self.name
            ),
        }
    }
}

/// What loading the profiles into PostgreSQL took.
struct PgLoad {
    /// `COPY ... FROM STDIN (FORMAT csv)` of the CSV, primary key included.
    copy_s: f64,
    /// `VACUUM (ANALYZE)` after it, as a maintained table would have had (not in `copy_s`).
    vacuum_s: f64,
    /// The table with its index, MB.
    table_mb: f64,
}

/// Creates [`PG_TABLE`] in the database at `url` and loads `csv` (`rows` profiles) into it.
fn pg_load(url: &str, csv: &Path, rows: usize) -> PgLoad {
    let mut c = pg_connect(url);
    c.batch_execute(PG_TABLE).expect("creating crm.customers");
    let t = Instant::now();
    let mut input = std::fs::File::open(csv).expect("the profiles file");
    let mut w = c
        .copy_in(&format!(
            "COPY crm.customers ({HEADER}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        ))
        .expect("COPY starts");
    std::io::copy(&mut input, &mut w).expect("COPY takes the profiles");
    let copied = w.finish().expect("COPY ends");
    let copy_s = t.elapsed().as_secs_f64();
    assert_eq!(copied, rows as u64, "rows COPY loaded into crm.customers");
    let t = Instant::now();
    c.batch_execute("VACUUM (ANALYZE) crm.customers")
        .expect("VACUUM (ANALYZE) crm.customers");
    let vacuum_s = t.elapsed().as_secs_f64();
    let bytes: i64 = c
        .query_one("SELECT pg_total_relation_size('crm.customers')", &[])
        .expect("the table's size")
        .get(0);
    PgLoad {
        copy_s,
        vacuum_s,
        table_mb: bytes as f64 / (1024.0 * 1024.0),
    }
}

/// The source's reading, without segsync's staging: PostgreSQL evaluating the predicates
/// alone, then the one query of a run streamed through segsync's cursor and decoded.
struct PgAlone {
    /// `SELECT count(*) ... WHERE p1 OR p2 ...`: PostgreSQL evaluating, nothing sent.
    count_s: f64,
    count: u64,
    /// [`segsync::profiles::PgSource::select`] of the export's columns, each row dropped.
    select_s: f64,
    /// CPU of this process (the source's connection thread, decoding the rows) meanwhile.
    select_cpu: f64,
    select_rows: u64,
    select_per_segment: Vec<u64>,
}

fn pg_alone(url: &str) -> PgAlone {
    let wrapped: Vec<String> = PG_PREDICATES.iter().map(|p| format!("({p})")).collect();
    let mut c = pg_connect(url);
    let t = Instant::now();
    let count: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM crm.customers WHERE {}",
                wrapped.join(" OR ")
            ),
            &[],
        )
        .expect("counting the segments' union")
        .get(0);
    let count_s = t.elapsed().as_secs_f64();
    drop(c);
    let source = segsync::profiles::PgSource::connect(
        url,
        segsync::profiles::PgRelation::Table("crm.customers".into()),
        "customer_id",
    )
    .expect("the profile source connects");
    let columns: Vec<String> = EXPORT_COLUMNS.iter().map(|c| c.to_string()).collect();
    let predicates: Vec<String> = PG_PREDICATES.iter().map(|p| p.to_string()).collect();
    let cpu0 = self_cpu();
    let t = Instant::now();
    let stats = source
        .select(&columns, &predicates, |_row| {
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("the source's select");
    let select_s = t.elapsed().as_secs_f64();
    let select_cpu = self_cpu() - cpu0;
    PgAlone {
        count_s,
        count: count as u64,
        select_s,
        select_cpu,
        select_rows: stats.rows,
        select_per_segment: stats.per_predicate,
    }
}

// ---------------------------------------------------------------------------------------
// Formatting

fn thousands(n: u64) -> String {
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

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn pct(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}%", a / b * 100.0)
    } else {
        "n/a".into()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not valid")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------
// The bench

struct Bench {
    n: usize,
    scale: f64,
    lat: Latency,
    rt: tokio::runtime::Runtime,
    runner: Runner,
    dir: PathBuf,
    dates: Vec<String>,
    report: serde_json::Map<String, Value>,
    failures: Vec<String>,
    /// The full export, once measured.
    full: Option<FullFigures>,
    /// Pipeline measurements by size.
    pipelines: BTreeMap<usize, Pipeline>,
}

#[derive(Clone)]
struct FullFigures {
    members: u64,
    wall: f64,
    requests: u64,
    sim_cpu: f64,
}

/// A home with profiles imported, the segments defined, a connection and an export.
struct Home {
    path: PathBuf,
    list: String,
    import: Proc,
    segments: Vec<Proc>,
}

impl Bench {
    fn check(&mut self, ok: bool, what: String) {
        if ok {
            println!("  ok: {what}");
        } else {
            println!("  CHECK FAILED: {what}");
            self.failures.push(what);
        }
    }

    /// Imports `csv` into a new home, defines the segments, adds a connection to `sim` and the
    /// export `bench` to a new audience.
    fn home(&mut self, name: &str, csv: &Path, sim: &RunningSim, expect: &Expect) -> Home {
        let path = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let import = self.runner.must(
            &path,
            &[
                "profiles",
                "import",
                csv.to_str().unwrap(),
                "--key",
                "customer_id",
            ],
            &[0],
        );
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
    fn segments(
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
    fn export(&self, path: &Path, sim: &RunningSim, expect: &Expect) -> String {
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

    /// Checks the audience against what the profiles should give.
    fn check_audience(&mut self, sim: &RunningSim, list: &str, expect: &Expect, what: &str) {
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

    fn generate(&self, path: &Path, n: usize, revs: &[u8]) -> Expect {
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
    fn measure_run(&self, sim: &RunningSim, home: &Path, label: &str) -> RunFigures {
        eprintln!("[bench] {label}...");
        let before = sim.counters();
        let cpu0 = self_cpu();
        let p = self
            .runner
            .must(home, &["run", "bench", "--json", "--quiet"], &[0, 3]);
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

    // -- full export and re-runs ----------------------------------------------------------

    fn full_and_reruns(&mut self, reruns: bool) {
        let n = self.n;
        println!(
            "\n## Full export of {} profiles (latency model {:.1} ms + {:.2} ms/member: 300 ms + 2 ms/member x {})\n",
            thousands(n as u64),
            self.lat.base_ms,
            self.lat.per_item_ms,
            self.scale
        );
        let sim = start_sim(&self.rt, &self.lat, &self.runner.key);
        let csv = self.dir.join("full.csv");
        let mut revs = vec![0u8; n];
        let expect = self.generate(&csv, n, &revs);
        println!(
            "profiles: {} ({} invalid addresses, {} duplicate addresses); in a segment: {}; members expected: {}; tags expected: {}",
            thousands(expect.profiles),
            thousands(expect.invalid),
            thousands(expect.duplicate_profiles),
            thousands(expect.selected),
            thousands(expect.members),
            SEGMENTS
                .iter()
                .zip(expect.tag_members)
                .map(|((s, _), c)| format!("{s} {}", thousands(c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let home = self.home("full", &csv, &sim, &expect);
        let full = self.measure_run(&sim, &home.path, "full export");
        let c = &full.report["counts"];
        self.check(
            c["members"].as_u64() == Some(expect.members)
                && c["refused"].as_u64() == Some(expect.refused)
                && c["duplicates"].as_u64() == Some(expect.duplicates),
            format!(
                "the run counts {} members, {} refused, {} duplicates (expected {}, {}, {})",
                c["members"],
                c["refused"],
                c["duplicates"],
                expect.members,
                expect.refused,
                expect.duplicates
            ),
        );
        self.check_audience(&sim, &home.list, &expect, "after the full export");
        full.print_full(&self.lat, self.scale, n);
        self.full = Some(FullFigures {
            members: expect.members,
            wall: full.proc.wall,
            requests: full.seen.requests,
            sim_cpu: full.sim_cpu,
        });
        self.report.insert(
            "full".into(),
            json!({
                "profiles": n,
                "members": expect.members,
                "import_seconds": home.import.wall,
                "import_peak_rss_mb": home.import.rss_mb,
                "run": full.json(&self.lat, self.scale),
            }),
        );
        if !reruns {
            self.rt.block_on(sim.shutdown());
            return;
        }

        println!("\n## Re-runs after changing some profiles (each a new order: value, last order, updated_at)\n");
        println!("| run | changed profiles | wall s | requests (writes) | bound s | wall / bound | requests vs full | writes vs full | time vs full | peak RSS MB | CPU s |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut rows = Vec::new();
        let mut endpoint_lines = Vec::new();
        for (k, share) in [(1u64, 0.0), (2, 0.001), (3, 0.01), (4, 0.1)] {
            let threshold = (share * 1_000_000.0) as u64;
            let mut changed = 0u64;
            for (i, r) in revs.iter_mut().enumerate() {
                if mix(i as u64 * 31 + k) % 1_000_000 < threshold {
                    *r = r.saturating_add(1);
                    changed += 1;
                }
            }
            let expect = self.generate(&csv, n, &revs);
            let import = self.runner.must(
                &home.path,
                &[
                    "profiles",
                    "import",
                    csv.to_str().unwrap(),
                    "--key",
                    "customer_id",
                ],
                &[0],
            );
            let label = format!("re-run, {}% changed", share * 100.0);
            let r = self.measure_run(&sim, &home.path, &label);
            self.check_audience(&sim, &home.list, &expect, &label);
            if share == 0.0 {
                self.check(
                    r.seen.writes == 0,
                    format!("{label}: {} write requests (expected none)", r.seen.writes),
                );
            }
            let bound = r.seen.bound_s(&self.lat);
            println!(
                "| {label} | {} | {:.2} | {} ({}) | {:.2} | {} | {} | {} | {} | {:.0} | {:.2} |",
                thousands(changed),
                r.proc.wall,
                thousands(r.seen.requests),
                thousands(r.seen.writes),
                bound,
                if bound > 0.0 {
                    format!("{:.2}", r.proc.wall / bound)
                } else {
                    "n/a".into()
                },
                pct(r.seen.requests as f64, full.seen.requests as f64),
                pct(r.seen.writes as f64, full.seen.writes as f64),
                pct(r.proc.wall, full.proc.wall),
                r.proc.rss_mb,
                r.proc.cpu,
            );
            endpoint_lines.push(format!(
                "{label}: {}; stages: read+evaluate {} s, audience read {} s, diff+plan {} s; re-import {:.2} s",
                r.seen.endpoints(),
                opt(r.stages.read_s(), 2),
                opt(r.stages.audience_s(), 2),
                opt(r.stages.diff_plan_s(), 2),
                import.wall
            ));
            let mut j = r.json(&self.lat, self.scale);
            j["changed_profiles"] = json!(changed);
            j["share"] = json!(share);
            j["requests_vs_full"] = json!(r.seen.requests as f64 / full.seen.requests as f64);
            j["writes_vs_full"] = json!(r.seen.writes as f64 / full.seen.writes.max(1) as f64);
            j["time_vs_full"] = json!(r.proc.wall / full.proc.wall);
            j["reimport_seconds"] = json!(import.wall);
            rows.push(j);
        }
        println!();
        for l in endpoint_lines {
            println!("- {l}");
        }
        self.report.insert("reruns".into(), Value::Array(rows));
        self.rt.block_on(sim.shutdown());
    }

    // -- local pipeline and memory --------------------------------------------------------

    /// Import, segments, plan and a run against a simulator with no latency, at `size`.
    fn pipeline(&mut self, size: usize) -> Pipeline {
        if let Some(p) = self.pipelines.get(&size) {
            return p.clone();
        }
        eprintln!(
            "[bench] local pipeline at {} profiles...",
            thousands(size as u64)
        );
        let zero = Latency {
            base_ms: 0.0,
            per_item_ms: 0.0,
        };
        let sim = start_sim(&self.rt, &zero, &self.runner.key);
        let name = format!("pipeline-{size}");
        let csv = self.dir.join(format!("{name}.csv"));
        let expect = self.generate(&csv, size, &[]);
        let home = self.home(&name, &csv, &sim, &expect);
        let plan = self
            .runner
            .must(&home.path, &["plan", "bench", "--json"], &[0]);
        let plan_stages = Stages::of(&plan.stderr);
        let plan_json = plan.json();
        let r = self.measure_run(&sim, &home.path, "run at latency 0");
        self.check_audience(
            &sim,
            &home.list,
            &expect,
            &format!("run at latency 0, {size} profiles"),
        );
        let p = Pipeline {
            size,
            members: expect.members,
            import_s: home.import.wall,
            import_rss: home.import.rss_mb,
            segments_s: home.segments.iter().map(|s| s.wall).sum(),
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
            run_items: r.seen.items,
            run_sim_cpu: r.sim_cpu,
        };
        self.rt.block_on(sim.shutdown());
        let _ = std::fs::remove_file(&csv);
        let _ = std::fs::remove_dir_all(&home.path);
        self.pipelines.insert(size, p.clone());
        p
    }

    fn pipeline_part(&mut self) {
        let p = self.pipeline(self.n);
        println!(
            "\n## Local pipeline at {} profiles (no network but one audience read from a simulator with no latency)\n",
            thousands(p.size as u64)
        );
        let rate = |s: Option<f64>| s.map(|s| p.size as f64 / s);
        let rows = [
            ("import (CSV into the profile store)", Some(p.import_s)),
            (
                "segment evaluation: the run's read (one pass, 4 predicates, addresses normalised, duplicates merged)",
                p.stages.read_s(),
            ),
            ("diff + plan", p.stages.diff_plan_s()),
            (
                "import + segment evaluation",
                p.stages.read_s().map(|r| r + p.import_s),
            ),
            (
                "local pipeline: import + read + diff + plan",
                p.stages
                    .read_s()
                    .zip(p.stages.diff_plan_s())
                    .map(|(r, d)| r + d + p.import_s),
            ),
            (
                "whole run at latency 0, segsync CPU (read, diff, plan, encoding, decoding, checkpoints)",
                Some(p.run_cpu),
            ),
        ];
        println!("| stage | seconds | profiles/s |");
        println!("| --- | ---: | ---: |");
        for (what, s) in rows {
            println!(
                "| {what} | {} | {} |",
                opt(s, 2),
                rate(s).map_or("n/a".into(), |r| thousands(r as u64))
            );
        }
        println!();
        println!(
            "- `segments add` x4 (each counts its segment once): {:.2} s; `plan` process: wall {:.2} s, CPU {:.2} s, peak RSS {:.0} MB, {} requests planned; audience read {} s",
            p.segments_s,
            p.plan_wall,
            p.plan_cpu,
            p.plan_rss,
            p.plan_requests.map_or("?".into(), thousands),
            opt(p.stages.audience_s(), 3)
        );
        println!(
            "- run at latency 0: wall {:.2} s, {} requests, segsync CPU {:.2} s, simulator CPU {:.2} s, peak RSS {:.0} MB",
            p.run_wall,
            thousands(p.run_requests),
            p.run_cpu,
            p.run_sim_cpu,
            p.run_rss
        );
        self.report.insert("pipeline".into(), p.json());
    }

    fn memory_part(&mut self, sizes: &[usize]) {
        let mut rows = Vec::new();
        for &s in sizes {
            rows.push(self.pipeline(s));
        }
        println!("\n## Memory as profiles grow (peak RSS of each segsync process, MB)\n");
        println!("| profiles | members | import s | import RSS | plan s | plan RSS | run (latency 0) s | run RSS | run CPU s | run RSS per 1,000 members |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for p in &rows {
            println!(
                "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.3} |",
                thousands(p.size as u64),
                thousands(p.members),
                p.import_s,
                p.import_rss,
                p.plan_wall,
                p.plan_rss,
                p.run_wall,
                p.run_rss,
                p.run_cpu,
                p.run_rss / p.members.max(1) as f64 * 1000.0
            );
        }
        for w in rows.windows(2) {
            println!(
                "- {} -> {} profiles (x{:.1}): plan RSS x{:.2}, run RSS x{:.2}",
                thousands(w[0].size as u64),
                thousands(w[1].size as u64),
                w[1].size as f64 / w[0].size as f64,
                w[1].plan_rss / w[0].plan_rss,
                w[1].run_rss / w[0].run_rss
            );
        }
        self.report.insert(
            "memory".into(),
            Value::Array(rows.iter().map(Pipeline::json).collect()),
        );
    }

    // -- profiles from PostgreSQL ----------------------------------------------------------

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
        let source = self.runner.must(
            &home,
            &[
                "profiles",
                "source",
                "add",
                "crm",
                "--postgres",
                &db.url,
                "--table",
                "crm.customers",
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
        let want: Vec<(String, String)> = PG_COLUMN_TYPES
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect();
        self.check(
            types == want,
            format!("profile source columns {types:?} (expected {want:?})"),
        );
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
        let zero = Latency {
            base_ms: 0.0,
            per_item_ms: 0.0,
        };
        let sim = start_sim(&self.rt, &zero, &self.runner.key);
        let list = self.export(&home, &sim, &expect);
        let plan = self.runner.must(&home, &["plan", "bench", "--json"], &[0]);
        let plan_stages = Stages::of(&plan.stderr);
        let plan_json = plan.json();
        let r = self.measure_run(&sim, &home, "run at latency 0, profiles from PostgreSQL");
        let c = &r.report["counts"];
        self.check(
            c["members"].as_u64() == Some(expect.members)
                && c["refused"].as_u64() == Some(expect.refused)
                && c["duplicates"].as_u64() == Some(expect.duplicates),
            format!(
                "profiles from PostgreSQL, {size}: the run counts {} members, {} refused, {} duplicates (expected {}, {}, {})",
                c["members"], c["refused"], c["duplicates"], expect.members, expect.refused, expect.duplicates
            ),
        );
        self.check_audience(
            &sim,
            &list,
            &expect,
            &format!("run at latency 0, profiles from PostgreSQL, {size}"),
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
        }
    }

    fn pgsource_part(&mut self, server: &str, sizes: &[usize]) {
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

    // -- the simulator's own throughput -----------------------------------------------------

    fn sim_part(&mut self) {
        let n = self.n;
        let seg = self.pipeline(n);
        eprintln!("[bench] simulator alone...");
        let zero = Latency {
            base_ms: 0.0,
            per_item_ms: 0.0,
        };
        let sim = start_sim(&self.rt, &zero, &self.runner.key);
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
        let before = sim.counters();
        let cpu0 = self_cpu();
        let t = Instant::now();
        let statuses = post_all(&self.rt, &http, &url, &key, &batches);
        let wall = t.elapsed().as_secs_f64();
        drop(batches);
        rows.push((
            "mailchimp-sim alone: batch upserts (500 new members, slim answer)",
            seen(&before, &sim.counters()),
            wall,
            self_cpu() - cpu0,
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
        let before = sim.counters();
        let cpu0 = self_cpu();
        let t = Instant::now();
        let statuses = post_all(&self.rt, &http, &seg_url, &key, &adds);
        let wall = t.elapsed().as_secs_f64();
        rows.push((
            "mailchimp-sim alone: segment batches (500 additions)",
            seen(&before, &sim.counters()),
            wall,
            self_cpu() - cpu0,
            members,
        ));
        self.check(
            statuses.iter().all(|s| *s == 200),
            "every direct segment batch answered 200".into(),
        );
        self.rt.block_on(sim.shutdown());

        println!(
            "\n## The simulator is not the bottleneck (latency model at 0, {} members)\n",
            thousands(members as u64)
        );
        println!("| client | requests | wall s | requests/s | members/s | in flight avg | simulator CPU s (with the in-process client) |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut j = Vec::new();
        for (what, s, wall, cpu, m) in &rows {
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

    // -- naive baselines ------------------------------------------------------------------

    fn naive_part(&mut self, sample: usize, batch_ops_per_s: f64) {
        let n = self.n;
        // The members a full export of N profiles sends, and the first `sample` of them.
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
        let sample = members.len();
        let factor = members_full as f64 / sample.max(1) as f64;
        let sim = start_sim(&self.rt, &self.lat, &self.runner.key);
        let key = sim.add_account();
        let api = sim.api_url();
        let http = reqwest::Client::new();
        // (a) One PUT per member, then its tags, 10 members at a time.
        eprintln!("[bench] naive: one PUT per member ({sample} members)...");
        let list = list_with_fields(&self.rt, &sim, &http, &key, "Naive PUT");
        let before = sim.counters();
        let t = Instant::now();
        let failed: usize = self
            .rt
            .block_on(
                stream::iter(members.iter())
                    .map(|(hash, body, tags)| {
                        let (http, key, api, list) = (&http, &key, &api, &list);
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

        // (b) The same operations through /batches, polled until finished.
        eprintln!("[bench] naive: /batches ({sample} members)...");
        let list = list_with_fields(&self.rt, &sim, &http, &key, "Naive batches");
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
                    .basic_auth("bench", Some(&key))
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
                    .basic_auth("bench", Some(&key))
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
        self.rt.block_on(sim.shutdown());

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
                &put_seen,
                put_wall,
            ),
            (
                "/batches of 1,000 operations (PUT + tags POST per member), polled",
                &batch_seen,
                batch_wall,
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
            batch_seen.endpoints(),
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

    fn targets(&self) {
        let get = |path: &[&str]| -> Option<f64> {
            let mut v = self.report.get(path[0])?;
            for p in &path[1..] {
                v = match p.parse::<usize>() {
                    Ok(i) => v.get(i)?,
                    Err(_) => v.get(p)?,
                };
            }
            v.as_f64()
        };
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

/// One measured `segsync run`.
struct RunFigures {
    label: String,
    report: Value,
    stages: Stages,
    seen: Seen,
    sim_cpu: f64,
    proc: Proc,
}

impl RunFigures {
    /// Seconds before the first request of the plan could go: the local stages.
    fn local_s(&self) -> Option<f64> {
        self.stages.planned
    }

    fn in_flight_sending(&self) -> Option<f64> {
        let sending = self.proc.wall - self.local_s()?;
        (sending > 0.0).then(|| self.seen.in_flight_s / sending)
    }

    fn print_full(&self, lat: &Latency, scale: f64, n: usize) {
        let bound = self.seen.bound_s(lat);
        let wall = self.proc.wall;
        // Unscaled: the network part scales with the model, the local part does not.
        let local = self.local_s().unwrap_or(0.0);
        let unscaled_wall = local + (wall - local) / scale;
        println!("| profiles | wall s | bound s | wall / bound | in flight avg (while sending) | requests (writes) | peak RSS MB | CPU s | unscaled wall s (est.) | unscaled bound s |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        println!(
            "| {} | {wall:.2} | {bound:.2} | {:.2} | {:.1} ({}) | {} ({}) | {:.0} | {:.2} | {unscaled_wall:.0} | {:.0} |",
            thousands(n as u64),
            wall / bound,
            self.seen.in_flight_s / wall,
            opt(self.in_flight_sending(), 1),
            thousands(self.seen.requests),
            thousands(self.seen.writes),
            self.proc.rss_mb,
            self.proc.cpu,
            bound / scale
        );
        println!();
        println!("- requests by endpoint: {}", self.seen.endpoints());
        println!(
            "- {}: stages before the first write: read+evaluate {} s, audience read {} s, diff+plan {} s; 429 answers: {}; simulator CPU {:.2} s; requests held their slots {:.1}% longer than the model (the simulator's own handling)",
            self.label,
            opt(self.stages.read_s(), 2),
            opt(self.stages.audience_s(), 2),
            opt(self.stages.diff_plan_s(), 2),
            self.seen.too_many,
            self.sim_cpu,
            self.seen.overhead_share(lat) * 100.0
        );
        let c = &self.report["counts"];
        println!(
            "- segsync's report: outcome {}, created {}, updated {}, tagged {}, refused {}, duplicates merged {}, requests {}, retries {}",
            self.report["outcome"], c["created"], c["updated"], c["tagged"], c["refused"], c["duplicates"], c["requests"], c["retries"]
        );
    }

    fn json(&self, lat: &Latency, scale: f64) -> Value {
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

#[derive(Clone)]
struct Pipeline {
    size: usize,
    members: u64,
    import_s: f64,
    import_rss: f64,
    segments_s: f64,
    plan_wall: f64,
    plan_rss: f64,
    plan_cpu: f64,
    plan_requests: Option<u64>,
    stages: Stages,
    run_wall: f64,
    run_rss: f64,
    run_cpu: f64,
    run_stages: Stages,
    run_requests: u64,
    run_items: u64,
    run_sim_cpu: f64,
}

impl Pipeline {
    fn json(&self) -> Value {
        let mut run = run_json(
            self.run_wall,
            self.run_cpu,
            self.run_rss,
            self.run_requests,
            self.run_sim_cpu,
            &self.run_stages,
        );
        run["items"] = json!(self.run_items);
        json!({
            "profiles": self.size,
            "members": self.members,
            "import_seconds": self.import_s,
            "import_peak_rss_mb": self.import_rss,
            "segments_add_seconds": self.segments_s,
            "plan": plan_json(self.plan_wall, self.plan_cpu, self.plan_rss, self.plan_requests, &self.stages),
            "run_latency_0": run,
        })
    }
}

/// A `segsync plan` of the local pipeline and pgsource parts, as the JSON report has it.
fn plan_json(wall: f64, cpu: f64, rss: f64, requests: Option<u64>, stages: &Stages) -> Value {
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
fn run_json(wall: f64, cpu: f64, rss: f64, requests: u64, sim_cpu: f64, stages: &Stages) -> Value {
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

/// One size of `pgsource`: the profiles in PostgreSQL, the segments evaluated there.
struct PgFigures {
    size: usize,
    members: u64,
    load: PgLoad,
    alone: PgAlone,
    /// `profiles source add` (connects, describes the table).
    source_add_s: f64,
    /// `segments add` x4, each counted by PostgreSQL.
    segments_s: f64,
    plan_wall: f64,
    plan_rss: f64,
    plan_cpu: f64,
    plan_requests: Option<u64>,
    stages: Stages,
    run_wall: f64,
    run_rss: f64,
    run_cpu: f64,
    run_stages: Stages,
    run_requests: u64,
    run_sim_cpu: f64,
}

impl PgFigures {
    fn json(&self) -> Value {
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
        })
    }
}

fn main() {
    let n: usize = env_or("SEGSYNC_BENCH_PROFILES", 1_000_000);
    let scale: f64 = env_or("SEGSYNC_BENCH_SCALE", 0.1);
    let parts: BTreeSet<String> = match std::env::var("SEGSYNC_BENCH_PARTS") {
        Ok(v) => v
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Err(_) => PARTS.iter().map(|p| p.to_string()).collect(),
    };
    if let Some(p) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        eprintln!(
            "SEGSYNC_BENCH_PARTS: unknown part {p:?}; the parts are {}",
            PARTS.join(",")
        );
        std::process::exit(2);
    }
    let memory_sizes: Vec<usize> = std::env::var("SEGSYNC_BENCH_MEMORY_SIZES")
        .unwrap_or_else(|_| "100000,1000000,3000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .expect("SEGSYNC_BENCH_MEMORY_SIZES: a comma list of sizes")
        })
        .collect();
    let pg_sizes: Vec<usize> = std::env::var("SEGSYNC_BENCH_PG_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .expect("SEGSYNC_BENCH_PG_SIZES: a comma list of sizes")
        })
        .collect();
    let pg_url = std::env::var("SEGSYNC_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let naive_sample: usize = env_or("SEGSYNC_BENCH_NAIVE_SAMPLE", 5_000);
    let batch_ops_per_s: f64 = env_or("SEGSYNC_BENCH_BATCH_OPS_PER_S", 16.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("SEGSYNC_BENCH_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.path().to_path_buf(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The account every segsync home talks to is made per simulator; the key is set below.
    let bin = std::env::var("SEGSYNC_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_segsync").to_string());
    let mut bench = Bench {
        n,
        scale,
        lat: Latency {
            base_ms: BASE_MS * scale,
            per_item_ms: PER_ITEM_MS * scale,
        },
        rt,
        runner: Runner {
            bin,
            key: String::new(),
            scratch: dir.clone(),
        },
        dir,
        dates: order_dates(),
        report: serde_json::Map::new(),
        failures: Vec::new(),
        full: None,
        pipelines: BTreeMap::new(),
    };
    // One API key for every simulator: each simulator gets the same account key.
    bench.runner.key = mailchimp_sim::store::new_api_key("us6");
    println!(
        "# segsync scale benchmark: {} profiles, latency model 300 ms + 2 ms/member x {scale}, parts {}",
        thousands(n as u64),
        parts.iter().cloned().collect::<Vec<_>>().join(",")
    );
    let t = Instant::now();
    let has = |p: &str| parts.contains(p);
    if has("full") || has("reruns") {
        bench.full_and_reruns(has("reruns"));
    }
    if has("pipeline") {
        bench.pipeline_part();
    }
    if has("memory") {
        bench.memory_part(&memory_sizes);
    }
    if has("sim") {
        bench.sim_part();
    }
    // After `pipeline` and `memory`: their figures at the same sizes are shown for comparison.
    if has("pgsource") {
        bench.pgsource_part(&pg_url, &pg_sizes);
    }
    if has("naive") {
        bench.naive_part(naive_sample, batch_ops_per_s);
    }
    bench.targets();
    println!("\n(bench took {:.0} s)", t.elapsed().as_secs_f64());
    bench.report.insert(
        "config".into(),
        json!({"profiles": n, "scale": scale, "parts": parts, "memory_sizes": memory_sizes,
            "pg_sizes": pg_sizes,
            "naive_sample": naive_sample, "batch_ops_per_s": batch_ops_per_s,
            "base_ms": bench.lat.base_ms, "per_item_ms": bench.lat.per_item_ms,
            "failures": bench.failures}),
    );
    if let Some(path) = std::env::var_os("SEGSYNC_BENCH_JSON") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&Value::Object(bench.report)).unwrap(),
        )
        .expect("writing SEGSYNC_BENCH_JSON");
    }
    if !bench.failures.is_empty() {
        eprintln!("{} check(s) failed:", bench.failures.len());
        for f in &bench.failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
