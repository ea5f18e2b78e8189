//! Segment rules compiled to SQL and run where the profiles are: the same profiles in the
//! embedded store (SQLite), in a PostgreSQL table and in a MariaDB / MySQL table, every
//! operator of every column kind, quoting, NOT and relative dates; each rule's SQL must pass
//! the store's predicate checks on each and count exactly the profiles the rule describes.
//!
//! PostgreSQL is `postgres://postgres@127.0.0.1:5432/postgres` (or `SEGSYNC_TEST_POSTGRES`),
//! MariaDB `mysql://root@127.0.0.1:3306` (or `SEGSYNC_TEST_MYSQL`); without them the test
//! fails, saying so.

use chrono::{Duration, Utc};
use segsync::profiles::*;
use segsync::rules::{compile, Dialect, Rule};
use serde_json::{json, Value};

#[path = "support/pg.rs"]
mod pg_support;
use pg_support::TestDb;

#[path = "support/mysql.rs"]
mod mysql_support;
use mysql::prelude::Queryable;
use mysql_support::MyTestDb;

/// One profile: key, email, country, ltv, orders, last order (days from today), vip, note.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<f64>,
    i64,
    Option<i64>,
    Option<bool>,
    &'static str,
);

const ROWS: &[Row] = &[
    (
        "C1",
        "ana@example.ro",
        "RO",
        Some(1250.5),
        12,
        Some(-3),
        Some(true),
        "O'Brien",
    ),
    (
        "C2",
        "ion@example.ro",
        "RO",
        Some(80.0),
        1,
        Some(-40),
        Some(false),
        "50%_off!",
    ),
    (
        "C3",
        "zoe@example.com",
        "FR",
        Some(600.0),
        3,
        Some(-100),
        Some(true),
        "back\\slash",
    ),
    (
        "C4",
        "max@example.de",
        "DE",
        None,
        0,
        Some(-400),
        Some(false),
        "",
    ),
    (
        "C5",
        "eva@example.ro",
        "ro",
        Some(501.0),
        2,
        None,
        None,
        "Rom",
    ),
    (
        "C6",
        "li@example.cn",
        "CN",
        Some(-5.25),
        7,
        Some(10),
        Some(true),
        "x",
    ),
];

fn day(offset: i64) -> String {
    (Utc::now().date_naive() + Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn sqlite_store(dir: &std::path::Path) -> ProfileStore {
    let mut text = String::from("customer_id,email,country,ltv,orders,last_order,vip,note\n");
    for (k, e, c, ltv, o, last, vip, note) in ROWS {
        text += &format!(
            "{k},{e},{c},{},{o},{},{},{}\n",
            ltv.map_or(String::new(), |v| v.to_string()),
            last.map_or(String::new(), day),
            vip.map_or(String::new(), |v| v.to_string()),
            csv_field(note),
        );
    }
    let file = dir.join("customers.csv");
    std::fs::write(&file, text).unwrap();
    let store = ProfileStore::open(&dir.join("profiles.sqlite")).unwrap();
    store.import(&file, None, "customer_id").unwrap();
    store
}

fn pg_source(db: &TestDb) -> PgSource {
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE customers (customer_id text PRIMARY KEY, email text, country text, \
             ltv double precision, orders bigint, last_order date, vip boolean, note text)",
        )
        .unwrap();
    for (k, e, c, ltv, o, last, vip, note) in ROWS {
        let last = last.map(|d| Utc::now().date_naive() + Duration::days(d));
        client
            .execute(
                "INSERT INTO customers VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[k, e, c, ltv, o, &last, vip, note],
            )
            .unwrap();
    }
    PgSource::connect(
        &db.url,
        PgRelation::Table("customers".into()),
        "customer_id",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn mysql_source(db: &MyTestDb) -> MySqlSource {
    db.exec(
        "CREATE TABLE customers (customer_id varchar(16) PRIMARY KEY, email text, \
         country text, ltv double, orders bigint, last_order date, vip boolean, note text)",
    );
    let mut conn = db.conn();
    for (k, e, c, ltv, o, last, vip, note) in ROWS {
        let last = last.map(day);
        conn.exec_drop(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (k, e, c, ltv, o, last, vip, note),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    MySqlSource::connect(&db.url, Relation::Table("customers".into()), "customer_id")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cond(column: &str, op: &str, value: Value) -> Value {
    if value.is_null() {
        json!({"condition": {"column": column, "op": op}})
    } else {
        json!({"condition": {"column": column, "op": op, "value": value}})
    }
}

/// Each rule with the keys of the profiles it must give.
fn cases() -> Vec<(Value, Vec<&'static str>)> {
    let n = Value::Null;
    let span = |a: i64, u: &str| json!({"amount": a, "unit": u});
    vec![
        // Text.
        (cond("country", "is", json!("RO")), vec!["C1", "C2"]),
        (
            cond("country", "is_not", json!("RO")),
            vec!["C3", "C4", "C5", "C6"],
        ),
        (
            cond("country", "one_of", json!(["FR", "DE"])),
            vec!["C3", "C4"],
        ),
        (
            cond("country", "none_of", json!(["RO", "ro"])),
            vec!["C3", "C4", "C6"],
        ),
        (
            cond("email", "contains", json!("EXAMPLE.RO")),
            vec!["C1", "C2", "C5"],
        ),
        (
            cond("email", "not_contains", json!(".ro")),
            vec!["C3", "C4", "C6"],
        ),
        (cond("email", "starts_with", json!("z")), vec!["C3"]),
        (cond("email", "ends_with", json!(".de")), vec!["C4"]),
        (cond("note", "is", json!("O'Brien")), vec!["C1"]),
        (cond("note", "contains", json!("%_off!")), vec!["C2"]),
        (cond("note", "is", json!("back\\slash")), vec!["C3"]),
        (cond("note", "is_empty", n.clone()), vec!["C4"]),
        (
            cond("note", "is_not_empty", n.clone()),
            vec!["C1", "C2", "C3", "C5", "C6"],
        ),
        // Numbers.
        (cond("ltv", "eq", json!(600)), vec!["C3"]),
        (
            cond("ltv", "ne", json!(600)),
            vec!["C1", "C2", "C4", "C5", "C6"],
        ),
        (cond("ltv", "gt", json!(500)), vec!["C1", "C3", "C5"]),
        (cond("ltv", "gte", json!("501")), vec!["C1", "C3", "C5"]),
        (cond("ltv", "lt", json!(0)), vec!["C6"]),
        (cond("orders", "lte", json!(1)), vec!["C2", "C4"]),
        (
            cond("ltv", "between", json!([80, 600])),
            vec!["C2", "C3", "C5"],
        ),
        (cond("ltv", "is_empty", n.clone()), vec!["C4"]),
        // Dates, absolute and relative.
        (cond("last_order", "on", json!(day(-3))), vec!["C1"]),
        (
            cond("last_order", "before", json!(day(-40))),
            vec!["C3", "C4"],
        ),
        (
            cond("last_order", "after", json!(day(-40))),
            vec!["C1", "C6"],
        ),
        (
            cond("last_order", "between", json!([day(-100), day(-3)])),
            vec!["C1", "C2", "C3"],
        ),
        (
            cond("last_order", "in_last", span(90, "days")),
            vec!["C1", "C2"],
        ),
        (cond("last_order", "in_last", span(2, "weeks")), vec!["C1"]),
        (
            cond("last_order", "more_than_ago", span(3, "months")),
            vec!["C3", "C4"],
        ),
        (
            cond("last_order", "more_than_ago", span(1, "years")),
            vec!["C4"],
        ),
        (cond("last_order", "in_next", span(30, "days")), vec!["C6"]),
        (cond("last_order", "is_empty", n.clone()), vec!["C5"]),
        // Booleans.
        (cond("vip", "is_true", n.clone()), vec!["C1", "C3", "C6"]),
        (cond("vip", "is_false", n.clone()), vec!["C2", "C4"]),
        (cond("vip", "is_empty", n.clone()), vec!["C5"]),
        // Groups, NOT and raw SQL.
        (
            json!({"all": [cond("country", "is", json!("RO")), cond("vip", "is_true", n.clone())]}),
            vec!["C1"],
        ),
        (
            json!({"any": [cond("country", "is", json!("FR")), {"sql": "orders > 5"}]}),
            vec!["C1", "C3", "C6"],
        ),
        // NOT counts the profiles the rule does not give, those with a missing value too.
        (
            json!({"not": cond("vip", "is_true", n.clone())}),
            vec!["C2", "C4", "C5"],
        ),
        (
            json!({"not": {"any": [cond("ltv", "gt", json!(500)), cond("last_order", "in_last", span(90, "days"))]}}),
            vec!["C4", "C6"],
        ),
    ]
}

fn keys(p: &Preview) -> Vec<String> {
    let mut k: Vec<String> = p
        .sample
        .iter()
        .map(|r| r["customer_id"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

#[test]
fn every_operator_gives_the_same_profiles_on_mariadb() {
    let db = MyTestDb::create("segment_rules");
    let my = mysql_source(&db);
    let columns = my.columns().unwrap();
    for (rule, want) in cases() {
        let r: Rule = serde_json::from_value(rule.clone()).unwrap();
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        let sql = compile(&r, &columns, Dialect::MySql).unwrap_or_else(|e| panic!("{e}"));
        my.check_predicate(&sql)
            .unwrap_or_else(|e| panic!("MariaDB refused {sql}: {e}"));
        let got = my.preview(&sql, 100).unwrap();
        assert_eq!(keys(&got), want, "MariaDB, {rule}: {sql}");
    }
}

#[test]
fn every_operator_gives_the_same_profiles_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_store(dir.path());
    let db = TestDb::create("segment_rules");
    let pg = pg_source(&db);
    let sqlite_columns = sqlite.columns().unwrap();
    let pg_columns = pg.columns().unwrap();
    for (rule, want) in cases() {
        let r: Rule = serde_json::from_value(rule.clone()).unwrap();
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        let sql = compile(&r, &sqlite_columns, Dialect::Sqlite).unwrap_or_else(|e| panic!("{e}"));
        sqlite
            .check_predicate(&sql)
            .unwrap_or_else(|e| panic!("SQLite refused {sql}: {e}"));
        let got = sqlite.preview(&sql, 100).unwrap();
        assert_eq!(keys(&got), want, "SQLite, {rule}: {sql}");
        let sql = compile(&r, &pg_columns, Dialect::Postgres).unwrap_or_else(|e| panic!("{e}"));
        pg.check_predicate(&sql)
            .unwrap_or_else(|e| panic!("PostgreSQL refused {sql}: {e}"));
        let got = pg.preview(&sql, 100).unwrap();
        assert_eq!(keys(&got), want, "PostgreSQL, {rule}: {sql}");
    }
}
