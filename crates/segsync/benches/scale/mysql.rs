//! The MySQL / MariaDB server of part `mysqlsource`: a database of its own per size, the
//! generated profiles loaded into a typed table, and the server's own share of the profile
//! pass measured without segsync's staging.

use std::path::Path;
use std::time::Instant;

use mysql::prelude::Queryable;

use crate::generate::HEADER;
use crate::sample::self_cpu;

/// The same segments as [`crate::pg::PG_PREDICATES`], in MySQL's SQL.
pub const MY_PREDICATES: [&str; 4] = [
    "accepts_marketing",
    "lifetime_value >= 2000",
    "last_order_at >= '2026-06-01'",
    "country = 'RO'",
];

/// The table the generated profiles are loaded into, typed as a shop's database would.
const MY_TABLE: &str = "CREATE TABLE customers (
    customer_id VARCHAR(20) PRIMARY KEY,
    email VARCHAR(320),
    first_name VARCHAR(100),
    last_name VARCHAR(100),
    city VARCHAR(100),
    country CHAR(2),
    lifetime_value DECIMAL(12, 2),
    orders INT,
    last_order_at DATE,
    accepts_marketing TINYINT(1),
    updated_at TIMESTAMP NULL
) CHARACTER SET utf8mb4";

/// The column types `profiles source add` should report for [`MY_TABLE`] (those of
/// PostgreSQL's table: the same export reads both).
pub use crate::pg::PG_COLUMN_TYPES as MY_COLUMN_TYPES;

/// The columns an export reads (as in [`crate::pg`]).
const EXPORT_COLUMNS: [&str; 7] = [
    "email",
    "first_name",
    "last_name",
    "city",
    "country",
    "lifetime_value",
    "updated_at",
];

fn my_connect(url: &str) -> mysql::Conn {
    mysql::Opts::from_url(url)
        .map_err(|e| e.to_string())
        .and_then(|o| mysql::Conn::new(o).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            panic!(
                "the mysqlsource part needs MySQL or MariaDB at {} (SEGSYNC_BENCH_MYSQL_URL; a \
                 user that may create databases): {e}",
                segsync::pg::redact(url)
            )
        })
}

/// A database of its own for one size, dropped with this value (also on a panic).
pub struct MyDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl MyDatabase {
    pub fn create(server: &str, name: &str) -> MyDatabase {
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        let db = MyDatabase {
            admin: server.to_string(),
            name: name.to_string(),
            url: format!("{base}/{name}"),
        };
        my_connect(server)
            .query_drop(format!(
                "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            ))
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        db
    }
}

impl Drop for MyDatabase {
    fn drop(&mut self) {
        match my_connect(&self.admin).query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name))
        {
            Ok(()) => eprintln!("[bench] dropped database {}", self.name),
            Err(e) => eprintln!(
                "[bench] could not drop database {} ({e}): drop it by hand",
                self.name
            ),
        }
    }
}

/// Loads `csv` (`rows` profiles) into [`MY_TABLE`] with multi-row INSERTs of 2,000 rows,
/// then `ANALYZE TABLE`; figures as [`crate::pg::PgLoad`] (`copy_s`: the INSERTs).
pub fn my_load(url: &str, csv: &Path, rows: usize) -> crate::pg::PgLoad {
    let mut c = my_connect(url);
    c.query_drop(MY_TABLE).expect("creating customers");
    let t = Instant::now();
    let mut reader = csv::Reader::from_path(csv).expect("the profiles file");
    let columns = HEADER.split(',').count();
    let mut loaded = 0usize;
    let mut batch: Vec<csv::StringRecord> = Vec::with_capacity(2000);
    let flush = |batch: &mut Vec<csv::StringRecord>, c: &mut mysql::Conn| {
        if batch.is_empty() {
            return;
        }
        let one = format!("({})", vec!["?"; columns].join(","));
        let sql = format!(
            "INSERT INTO customers ({HEADER}) VALUES {}",
            vec![one.as_str(); batch.len()].join(",")
        );
        let mut values: Vec<mysql::Value> = Vec::with_capacity(batch.len() * columns);
        for r in batch.iter() {
            for (i, field) in r.iter().enumerate() {
                values.push(match i {
                    // accepts_marketing, updated_at (RFC 3339 in UTC, read by a UTC session)
                    9 => mysql::Value::from(field == "true"),
                    10 => mysql::Value::from(field.trim_end_matches('Z').replace('T', " ")),
                    _ => mysql::Value::from(field),
                });
            }
        }
        c.exec_drop(sql, values).expect("INSERT of profiles");
        batch.clear();
    };
    c.query_drop("SET time_zone = '+00:00'").unwrap();
    for record in reader.records() {
        batch.push(record.expect("a CSV record"));
        loaded += 1;
        if batch.len() == 2000 {
            flush(&mut batch, &mut c);
        }
    }
    flush(&mut batch, &mut c);
    let copy_s = t.elapsed().as_secs_f64();
    assert_eq!(loaded, rows, "rows loaded into customers");
    let t = Instant::now();
    c.query_drop("ANALYZE TABLE customers")
        .expect("ANALYZE TABLE");
    let vacuum_s = t.elapsed().as_secs_f64();
    let bytes: Option<u64> = c
        .query_first(
            "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'customers'",
        )
        .expect("the table's size");
    crate::pg::PgLoad {
        copy_s,
        vacuum_s,
        table_mb: bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
    }
}

/// The server evaluating the predicates alone (a count of their union), then the run's one
/// query streamed through [`segsync::profiles::MySqlSource::select`], each row dropped.
pub fn my_alone(url: &str) -> crate::pg::PgAlone {
    let wrapped: Vec<String> = MY_PREDICATES.iter().map(|p| format!("({p})")).collect();
    let mut c = my_connect(url);
    let t = Instant::now();
    let count: Option<u64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM customers WHERE {}",
            wrapped.join(" OR ")
        ))
        .expect("counting the segments' union");
    let count_s = t.elapsed().as_secs_f64();
    drop(c);
    let source = segsync::profiles::MySqlSource::connect(
        url,
        segsync::profiles::Relation::Table("customers".into()),
        "customer_id",
    )
    .expect("the profile source connects");
    let columns: Vec<String> = EXPORT_COLUMNS.iter().map(|c| c.to_string()).collect();
    let predicates: Vec<String> = MY_PREDICATES.iter().map(|p| p.to_string()).collect();
    let cpu0 = self_cpu();
    let t = Instant::now();
    let stats = source
        .select(&columns, &predicates, |_row| {
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("the source's select");
    crate::pg::PgAlone {
        count_s,
        count: count.unwrap_or(0),
        select_s: t.elapsed().as_secs_f64(),
        select_cpu: self_cpu() - cpu0,
        select_rows: stats.rows,
        select_per_segment: stats.per_predicate,
    }
}
