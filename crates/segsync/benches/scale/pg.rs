//! The PostgreSQL server of part `pgsource`: a database of its own per size, the generated
//! profiles loaded into a typed table, and PostgreSQL's own share of the profile pass
//! measured without segsync's staging.

use std::path::Path;
use std::time::Instant;

use crate::generate::HEADER;
use crate::sample::self_cpu;

/// The same segments over the profiles in PostgreSQL ([`PG_TABLE`]), in the order of
/// [`SEGMENTS`]: PostgreSQL SQL over typed columns.
pub const PG_PREDICATES: [&str; 4] = [
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
pub const PG_COLUMN_TYPES: [(&str, &str); 11] = [
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
pub struct PgDatabase {
    /// The server's maintenance database, which the drop connects to.
    pub admin: String,
    pub name: String,
    /// This database's URL.
    pub url: String,
}

impl PgDatabase {
    /// Creates the database `name` (an identifier of lower-case letters, digits and `_`) on
    /// the server of `server`, the URL of its maintenance database.
    pub fn create(server: &str, name: &str) -> PgDatabase {
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
pub struct PgLoad {
    /// `COPY ... FROM STDIN (FORMAT csv)` of the CSV, primary key included.
    pub copy_s: f64,
    /// `VACUUM (ANALYZE)` after it, as a maintained table would have had (not in `copy_s`).
    pub vacuum_s: f64,
    /// The table with its index, MB.
    pub table_mb: f64,
}

/// Creates [`PG_TABLE`] in the database at `url` and loads `csv` (`rows` profiles) into it.
pub fn pg_load(url: &str, csv: &Path, rows: usize) -> PgLoad {
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
pub struct PgAlone {
    /// `SELECT count(*) ... WHERE p1 OR p2 ...`: PostgreSQL evaluating, nothing sent.
    pub count_s: f64,
    pub count: u64,
    /// [`segsync::profiles::PgSource::select`] of the export's columns, each row dropped.
    pub select_s: f64,
    /// CPU of this process (the source's connection thread, decoding the rows) meanwhile.
    pub select_cpu: f64,
    pub select_rows: u64,
    pub select_per_segment: Vec<u64>,
}

pub fn pg_alone(url: &str) -> PgAlone {
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
