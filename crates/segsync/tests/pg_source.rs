//! Profiles read from PostgreSQL ([`PgSource`]) against a real server: types, query
//! relations, predicates evaluated by PostgreSQL, refusals, deadlines, streaming, and URLs
//! whose password must never show.
//!
//! The server is `postgres://postgres@127.0.0.1:5432/postgres` (or `SEGSYNC_TEST_POSTGRES`);
//! each test creates a database of its own and drops it at the end. Without a server the tests
//! fail, saying so: they are never skipped.

use segsync::profiles::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

#[path = "support/pg.rs"]
mod pg_support;
use pg_support::TestDb;

/// What these tests do with their database.
trait SourceDb {
    fn url_with_password(&self, password: &str) -> String;
    fn exec(&self, sql: &str);
    fn count(&self, table: &str) -> i64;
    fn source(&self, relation: PgRelation, key: &str) -> PgSource;
    fn table(&self, table: &str, key: &str) -> PgSource;
}

impl SourceDb for TestDb {
    /// This database's URL with `password` in it (trust authentication ignores it).
    fn url_with_password(&self, password: &str) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_password(Some(password)).unwrap();
        url.to_string()
    }

    fn exec(&self, sql: &str) {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    fn count(&self, table: &str) -> i64 {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        client
            .query_one(format!("SELECT count(*) FROM {table}").as_str(), &[])
            .unwrap()
            .get(0)
    }

    fn source(&self, relation: PgRelation, key: &str) -> PgSource {
        PgSource::connect(&self.url, relation, key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn table(&self, table: &str, key: &str) -> PgSource {
        self.source(PgRelation::Table(table.into()), key)
    }
}

/// The rows of a select by key: values and membership of each predicate.
type Rows = BTreeMap<String, (Vec<Value>, Vec<bool>)>;

/// Every row of a select, by key, with the stats.
fn select_all(source: &PgSource, columns: &[&str], predicates: &[&str]) -> (Rows, SelectStats) {
    let mut rows = BTreeMap::new();
    let stats = source
        .select(
            &strings(columns),
            &strings(predicates),
            |row| -> Result<(), Infallible> {
                let before = rows.insert(row.key.clone(), (row.values, row.in_segment));
                assert!(before.is_none(), "key {} twice", row.key);
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    (rows, stats)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn column(name: &str, kind: ColumnType) -> Column {
    Column {
        name: name.into(),
        kind,
    }
}

#[test]
fn mixed_types_are_described_and_read_as_json() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
         CREATE TABLE customers (
             id bigint PRIMARY KEY, email text, name varchar(40), code char(3), age integer,
             visits smallint, ltv numeric(10,2), score double precision, ratio real,
             vip boolean, birthday date, seen_at timestamp, created_at timestamptz,
             attrs jsonb, meta json, tags text[], token uuid, rank positive
         );
         INSERT INTO customers VALUES
           (1, 'ann@example.com', 'Ann', 'RO', 34, 7, 1234.50, 0.25, 0.5, true, '1990-05-17',
            '2024-03-01 10:00:00.25', '2024-03-01 10:00:00+02', '{\"plan\": \"pro\", \"n\": 2}',
            '{\"b\": 1, \"a\": [1, 2]}', '{a,b}', '6f1c2b9e-1d2e-4c3b-9a8f-0123456789ab', 3),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL),
           (3, 'x', '', 'A', -5, 0, 'NaN', 'Infinity', 0, false, 'infinity', '1999-12-31 23:59:59',
            '1970-01-01 00:00:00.123456+00', '[1, \"two\", null]', 'null', '{}', NULL, 1);",
    );
    let source = db.table("customers", "id");
    assert_eq!(source.key_column(), "id");
    use ColumnType::*;
    assert_eq!(
        source.columns().unwrap(),
        vec![
            column("id", Integer),
            column("email", Text),
            column("name", Text),
            column("code", Text),
            column("age", Integer),
            column("visits", Integer),
            column("ltv", Real),
            column("score", Real),
            column("ratio", Real),
            column("vip", Boolean),
            column("birthday", Date),
            column("seen_at", Timestamp),
            column("created_at", Timestamp),
            column("attrs", Json),
            column("meta", Json),
            column("tags", Json),
            column("token", Text),
            column("rank", Integer),
        ]
    );
    assert_eq!(source.row_count().unwrap(), 3);
    let wanted = [
        "email",
        "name",
        "code",
        "age",
        "visits",
        "ltv",
        "score",
        "ratio",
        "vip",
        "birthday",
        "seen_at",
        "created_at",
        "attrs",
        "meta",
        "tags",
        "token",
        "rank",
    ];
    let (rows, stats) = select_all(&source, &wanted, &["true", "vip"]);
    assert_eq!(stats.rows, 3);
    assert_eq!(stats.per_predicate, vec![3, 1]);
    assert_eq!(
        rows["1"],
        (
            vec![
                json!("ann@example.com"),
                json!("Ann"),
                json!("RO"),
                json!(34),
                json!(7),
                json!(1234.5),
                json!(0.25),
                json!(0.5),
                json!(true),
                json!("1990-05-17"),
                json!("2024-03-01T10:00:00.250"),
                json!("2024-03-01T08:00:00Z"),
                json!({"plan": "pro", "n": 2}),
                json!({"b": 1, "a": [1, 2]}),
                json!(["a", "b"]),
                json!("6f1c2b9e-1d2e-4c3b-9a8f-0123456789ab"),
                json!(3),
            ],
            vec![true, true]
        )
    );
    assert_eq!(
        rows["2"],
        (vec![Value::Null; wanted.len()], vec![true, false])
    );
    assert_eq!(
        rows["3"],
        (
            vec![
                json!("x"),
                json!(""),
                json!("A"),
                json!(-5),
                json!(0),
                Value::Null, // numeric NaN
                Value::Null, // Infinity
                json!(0.0),
                json!(false),
                json!("infinity"),
                json!("1999-12-31T23:59:59"),
                json!("1970-01-01T00:00:00.123456Z"),
                json!([1, "two", null]),
                Value::Null, // the JSON value null
                json!([]),
                Value::Null,
                json!(1),
            ],
            vec![true, false]
        )
    );
    // Columns come back in the order asked for, whatever their case.
    let (rows, _) = select_all(&source, &["VIP", "id", "email"], &["id = 1"]);
    assert_eq!(
        rows["1"].0,
        vec![json!(true), json!(1), json!("ann@example.com")]
    );

    let preview = source.preview("vip", 5).unwrap();
    assert_eq!(preview.count, 1);
    assert_eq!(preview.columns.len(), 18);
    assert_eq!(preview.sample.len(), 1);
    assert_eq!(preview.sample[0]["id"], json!(1));
    assert_eq!(preview.sample[0]["ltv"], json!(1234.5));
    assert_eq!(
        preview.sample[0]["created_at"],
        json!("2024-03-01T08:00:00Z")
    );
    assert!(source.preview("vip", 0).unwrap().sample.is_empty());
}

#[test]
fn a_query_relation_and_a_schema_qualified_table() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE SCHEMA crm;
         CREATE TABLE crm.customers (customer_id text PRIMARY KEY, email text, country text);
         CREATE TABLE crm.orders (
             id serial PRIMARY KEY, customer_id text REFERENCES crm.customers,
             amount numeric(10,2), placed_on date
         );
         INSERT INTO crm.customers VALUES
           ('C1', 'c1@example.ro', 'RO'), ('C2', 'c2@example.de', 'DE'),
           ('C3', 'c3@example.ro', 'RO'), ('C4', 'c4@example.fr', 'FR');
         INSERT INTO crm.orders (customer_id, amount, placed_on) VALUES
           ('C1', 100, '2024-01-05'), ('C1', 250, '2024-02-10'), ('C2', 30, '2024-01-01'),
           ('C4', 500, '2023-11-30');",
    );
    let query = "SELECT c.customer_id, c.email, c.country, sum(o.amount) AS spent,
                        max(o.placed_on) AS last_order
                 FROM crm.customers c JOIN crm.orders o USING (customer_id)
                 WHERE c.country <> 'DE'
                 GROUP BY c.customer_id, c.email, c.country;";
    let source = db.source(PgRelation::Query(query.into()), "customer_id");
    assert_eq!(
        source.columns().unwrap(),
        vec![
            column("customer_id", ColumnType::Text),
            column("email", ColumnType::Text),
            column("country", ColumnType::Text),
            column("spent", ColumnType::Real),
            column("last_order", ColumnType::Date),
        ]
    );
    assert_eq!(source.row_count().unwrap(), 2);
    let (rows, stats) = select_all(
        &source,
        &["email", "spent", "last_order"],
        &[
            "spent >= 300",
            "country = 'RO'",
            "last_order < '2024-01-01'",
        ],
    );
    assert_eq!(stats.rows, 2);
    assert_eq!(stats.per_predicate, vec![2, 1, 1]);
    assert_eq!(
        rows["C1"],
        (
            vec![json!("c1@example.ro"), json!(350.0), json!("2024-02-10")],
            vec![true, true, false]
        )
    );
    assert_eq!(
        rows["C4"],
        (
            vec![json!("c4@example.fr"), json!(500.0), json!("2023-11-30")],
            vec![true, false, true]
        )
    );

    let table = db.table("crm.customers", "customer_id");
    assert_eq!(table.row_count().unwrap(), 4);
    let (rows, _) = select_all(&table, &["country"], &["country = 'RO'"]);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["C1", "C3"]);
    // Names are taken as written: "Customers" is not "customers".
    let e = PgSource::connect(
        &db.url,
        PgRelation::Table("crm.Customers".into()),
        "customer_id",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(r#"relation "crm.Customers" does not exist"#),
        "{e}"
    );
}

#[test]
fn predicates_are_evaluated_by_postgres() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE TABLE people (id text PRIMARY KEY, email text, signed_up date,
                              last_seen timestamptz, attrs jsonb);
         INSERT INTO people VALUES
           ('p1', 'Ann@Example.com', '2024-01-10', '2024-06-01T00:00:00Z',
            '{\"plan\": \"pro\", \"tags\": [\"vip\"]}'),
           ('p2', 'bob@other.org', '2023-12-01', '2024-01-01T00:00:00Z', '{\"plan\": \"free\"}'),
           ('p3', 'cy@EXAMPLE.com', '2024-03-05', NULL, '{\"plan\": \"pro\"}'),
           ('p4', 'dee@example.net', NULL, '2024-02-01T00:00:00Z', NULL);",
    );
    let source = db.table("people", "id");
    let predicates = [
        "email ILIKE '%@example.com'",
        "signed_up >= DATE '2024-01-01' AND signed_up < '2024-03-01'",
        "attrs @> '{\"plan\": \"pro\"}'",
        "attrs->'tags' ? 'vip' OR last_seen < '2024-01-15T00:00:00Z' -- jsonb, or a date",
    ];
    for p in predicates {
        source
            .check_predicate(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    let (rows, stats) = select_all(&source, &["email"], &predicates);
    assert_eq!(stats.rows, 3);
    assert_eq!(stats.per_predicate, vec![2, 1, 2, 2]);
    assert_eq!(rows["p1"].1, vec![true, true, true, true]);
    assert_eq!(rows["p2"].1, vec![false, false, false, true]);
    assert_eq!(rows["p3"].1, vec![true, false, true, false]);
    assert!(!rows.contains_key("p4"));
    assert_eq!(rows["p3"].0, vec![json!("cy@EXAMPLE.com")]);

    let preview = source.preview(predicates[0], 10).unwrap();
    assert_eq!(preview.count, 2);
    assert_eq!(
        preview.columns,
        ["id", "email", "signed_up", "last_seen", "attrs"]
    );
    let mut ids: Vec<&Value> = preview.sample.iter().map(|m| &m["id"]).collect();
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, [&json!("p1"), &json!("p3")]);
    assert_eq!(source.preview("false", 10).unwrap().count, 0);
}

#[test]
fn a_missing_column_is_reported_in_postgres_words() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE TABLE customers (id text, lifetime_value numeric, age int);
         INSERT INTO customers VALUES ('a', 10, 30);",
    );
    let source = db.table("customers", "id");
    let e = source.check_predicate("ltv > 5").unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(
            r#"segment predicate rejected by PostgreSQL: column "ltv" does not exist"#
        ),
        "{text}"
    );
    match e {
        PredicateError::Postgres { predicate, message } => {
            assert_eq!(predicate, "ltv > 5");
            assert!(
                message.contains(r#"column "ltv" does not exist"#),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let e = source.check_predicate("age + 1").unwrap_err();
    assert!(e.to_string().contains("must be type boolean"), "{e}");
    let e = source.preview("ltv > 5", 3).unwrap_err();
    assert!(matches!(e, PredicateError::Postgres { .. }), "{e:?}");

    let e = source
        .select(
            &strings(&["age"]),
            &strings(&["true", "ltv > 5"]),
            |_| -> Result<(), Infallible> { Ok(()) },
        )
        .unwrap_err();
    match e {
        SelectError::Predicate {
            index: 1,
            predicate,
            source: PredicateError::Postgres { message, .. },
        } => {
            assert_eq!(predicate, "ltv > 5");
            assert!(
                message.contains(r#"column "ltv" does not exist"#),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let e = source
        .select(
            &strings(&["nope"]),
            &strings(&["true"]),
            |_| -> Result<(), Infallible> { Ok(()) },
        )
        .unwrap_err();
    assert!(
        matches!(&e, SelectError::UnknownColumn { column, .. } if column == "nope"),
        "{e:?}"
    );
    let e = source
        .select(&strings(&["age"]), &[], |_| -> Result<(), Infallible> {
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(e, SelectError::NoPredicates), "{e:?}");
}

#[test]
fn injection_attempts_are_refused_and_the_table_is_intact() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE TABLE customers (id text PRIMARY KEY, email text);
         CREATE SEQUENCE counter;
         INSERT INTO customers VALUES
           ('c1', 'ann@example.com'), ('c2', 'o''brien@example.com'), ('c3', 'zed@example.com');
         CREATE FUNCTION wipe() RETURNS boolean LANGUAGE sql VOLATILE
           AS 'DELETE FROM customers RETURNING true';",
    );
    let source = db.table("customers", "id");
    let nothing = |_: ProfileRow| -> Result<(), Infallible> { panic!("no row may be selected") };
    for attack in [
        "1=1) OR (true",
        "false) OR (true); DELETE FROM customers; --",
        "false; DELETE FROM customers",
        // PostgreSQL ends E'\'' at its second quote; a scanner that only knows '...' would not.
        r"email = E'\'' ) OR (true --'",
        // A dollar-quoted string holding a quote.
        "email = $$'$$ ) OR (true --'",
        // Nested comments: PostgreSQL's comment ends at the second '*/'.
        "email = 'none' /* /* */ ( */ ) OR (true",
        "id = $1",
    ] {
        assert!(source.check_predicate(attack).is_err(), "{attack}");
        assert!(source.preview(attack, 1).is_err(), "{attack}");
        let e = source
            .select(&strings(&["email"]), &strings(&["false", attack]), nothing)
            .unwrap_err();
        assert!(
            matches!(e, SelectError::Predicate { index: 1, .. }),
            "{attack}: {e:?}"
        );
    }
    // Functions that change the session are refused before PostgreSQL sees them.
    for changer in [
        "set_config('transaction_read_only', 'off', true) = 'off'",
        "nextval('counter') > 0",
        "pg_advisory_lock(1) IS NULL",
    ] {
        let e = source
            .select(&strings(&["email"]), &strings(&[changer]), nothing)
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("not allowed"), "{changer}: {text}");
    }
    // A predicate that compiles but would write: the read-only transaction refuses.
    for writer in ["wipe()", "(SELECT wipe())"] {
        let e = source
            .select(&strings(&["email"]), &strings(&[writer]), nothing)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("read-only transaction") || text.contains("read-write mode"),
            "{writer}: {text}"
        );
    }
    assert_eq!(db.count("customers"), 3);
    // Escape strings are fine when they stay inside the expression.
    let (rows, _) = select_all(&source, &["email"], &[r"email = E'o\'brien@example.com'"]);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["c2"]);
    let (rows, _) = select_all(&source, &["email"], &["email = $$zed@example.com$$"]);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["c3"]);
}

#[test]
fn a_slow_predicate_is_stopped_by_the_statement_timeout() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE TABLE customers (id text, email text);
         INSERT INTO customers VALUES ('a', 'a@x'), ('b', 'b@x');",
    );
    let limits = Limits {
        check_timeout: Duration::from_millis(200),
        select_timeout: Duration::from_millis(300),
    };
    let source = db.table("customers", "id").with_limits(limits);
    let slow = "(SELECT true FROM pg_sleep(5))";
    // Checking plans the predicate without running it.
    source.check_predicate(slow).unwrap();
    let started = Instant::now();
    let e = source.preview(slow, 1).unwrap_err();
    assert!(
        matches!(e, PredicateError::Timeout { limit } if limit == limits.check_timeout),
        "{e:?}"
    );
    assert!(e.to_string().contains("longer than"), "{e}");
    let e = source
        .select(
            &strings(&["email"]),
            &strings(&[slow]),
            |_| -> Result<(), Infallible> { Ok(()) },
        )
        .unwrap_err();
    assert!(
        matches!(e, SelectError::Timeout { limit } if limit == limits.select_timeout),
        "{e:?}"
    );
    assert!(e.to_string().contains("longer than"), "{e}");
    // Both were stopped well before the 5 s sleeps ended.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The connection is usable afterwards.
    assert_eq!(source.row_count().unwrap(), 2);
}

#[test]
fn a_large_select_streams_every_row() {
    const N: u64 = 200_000;
    let db = TestDb::create("pg_source");
    db.exec(&format!(
        "CREATE TABLE big AS
           SELECT g AS id, 'user' || g || '@example.com' AS email, g % 7 AS bucket
           FROM generate_series(1, {N}) AS g;"
    ));
    let source = db.table("big", "id");
    assert_eq!(source.row_count().unwrap(), N);
    let mut seen = vec![false; N as usize + 1];
    let stats = source
        .select(
            &strings(&["email", "bucket"]),
            &strings(&["bucket = 3", "id % 2 = 0"]),
            |row| -> Result<(), Infallible> {
                let id: usize = row.key.parse().unwrap();
                assert!(!std::mem::replace(&mut seen[id], true), "{id} twice");
                assert_eq!(row.values[0], json!(format!("user{id}@example.com")));
                assert_eq!(row.in_segment, vec![id % 7 == 3, id.is_multiple_of(2)]);
                assert_eq!(row.values[1], json!(id % 7));
                Ok(())
            },
        )
        .unwrap();
    let expected: Vec<u64> = (1..=N)
        .filter(|g| g % 7 == 3 || g.is_multiple_of(2))
        .collect();
    assert_eq!(stats.rows, expected.len() as u64);
    assert_eq!(
        stats.per_predicate,
        vec![
            (1..=N).filter(|g| g % 7 == 3).count() as u64,
            (1..=N).filter(|g| g.is_multiple_of(2)).count() as u64
        ]
    );
    assert!(expected.iter().all(|&g| seen[g as usize]));
}

#[test]
fn a_callback_error_stops_the_pass() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE TABLE big AS
           SELECT g AS id, 'user' || g || '@example.com' AS email
           FROM generate_series(1, 50000) AS g;",
    );
    let source = db.table("big", "id");
    let mut calls = 0;
    let e = source
        .select(&strings(&["email"]), &strings(&["true"]), |_| {
            calls += 1;
            if calls == 10 {
                Err("the audience is gone")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(
        matches!(e, SelectError::Callback("the audience is gone")),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "the audience is gone");
    assert_eq!(calls, 10);
    // The connection is free and out of the stopped transaction: a full pass works.
    assert_eq!(source.row_count().unwrap(), 50_000);
    let (rows, stats) = select_all(&source, &[], &["id <= 5000"]);
    assert_eq!(stats.rows, 5000);
    assert_eq!(rows.len(), 5000);
}

#[test]
fn connection_errors_never_show_the_password() {
    let url = "postgres://postgres:s3cret@127.0.0.1:1/x";
    let e = PgSource::connect(url, PgRelation::Table("t".into()), "id").unwrap_err();
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("postgres://postgres:***@127.0.0.1:1/x"),
            "{text}"
        );
    }
    assert!(check_source(url, PgRelation::Table("t".into()), "id").is_err());

    let db = TestDb::create("pg_source");
    db.exec("CREATE TABLE customers (id text, email text);");
    let url = db.url_with_password("s3cret");
    let source = PgSource::connect(&url, PgRelation::Table("customers".into()), "id").unwrap();
    let shown = format!("{source:?}");
    assert!(
        !shown.contains("s3cret") && shown.contains("***"),
        "{shown}"
    );
    assert!(!source.url().contains("s3cret"));
    let e = PgSource::connect(&url, PgRelation::Table("missing".into()), "id").unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("s3cret") && text.contains("***"), "{text}");
}

#[test]
fn connect_checks_the_relation_and_the_key_column() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE SCHEMA crm;
         CREATE TABLE crm.customers (id text, email text, age int);",
    );
    let (columns, reach) =
        check_source(&db.url, PgRelation::Table("crm.customers".into()), "id").unwrap();
    assert!(reach.superuser, "the tests' server user: {reach:?}");
    assert_eq!(
        columns,
        vec![
            column("id", ColumnType::Text),
            column("email", ColumnType::Text),
            column("age", ColumnType::Integer),
        ]
    );

    let e = check_source(&db.url, PgRelation::Table("crm.nope".into()), "id").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PgSourceError::Failed { .. }), "{e:?}");
    assert!(text.contains(&db.url), "{text}");
    assert!(text.contains(r#"table "crm.nope""#), "{text}");
    assert!(
        text.contains(r#"relation "crm.nope" does not exist"#),
        "{text}"
    );

    let e = check_source(&db.url, PgRelation::Table("crm.customers".into()), "ID").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PgSourceError::NoKeyColumn { .. }), "{e:?}");
    assert!(text.contains(r#"no column "ID""#), "{text}");
    assert!(text.contains("id, email, age"), "{text}");
    assert!(text.contains(r#"did you mean "id"?"#), "{text}");

    for bad in [r#"crm."customers""#, "crm.", "a.b.c.d"] {
        let e = check_source(&db.url, PgRelation::Table(bad.into()), "id").unwrap_err();
        assert!(
            matches!(e, PgSourceError::BadRelation { .. }),
            "{bad}: {e:?}"
        );
    }
    for bad in [
        "SELECT * FROM crm.customers; DROP TABLE crm.customers",
        "SELECT * FROM crm.customers) AS x, (SELECT 1",
        "  ",
    ] {
        let e = check_source(&db.url, PgRelation::Query(bad.into()), "id").unwrap_err();
        assert!(
            matches!(e, PgSourceError::BadRelation { .. }),
            "{bad}: {e:?}"
        );
    }
    let e = check_source(
        &db.url,
        PgRelation::Query("SELECT id, email AS id FROM crm.customers".into()),
        "id",
    )
    .unwrap_err();
    assert!(matches!(e, PgSourceError::DuplicateColumn { .. }), "{e:?}");
    let e = check_source(
        &db.url,
        PgRelation::Query("SELECT id, emial FROM crm.customers".into()),
        "id",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains(r#"column "emial" does not exist"#),
        "{e}"
    );
    assert_eq!(db.count("crm.customers"), 0);
}

#[test]
fn works_from_inside_a_tokio_runtime() {
    let db = TestDb::create("pg_source");
    db.exec(
        "CREATE TABLE customers (id text, vip boolean); INSERT INTO customers VALUES ('a', true);",
    );
    let source = std::sync::Arc::new(db.table("customers", "id"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared = source.clone();
    let (count, preview) = runtime.block_on(async move {
        tokio::spawn(async move {
            (
                shared.row_count().unwrap(),
                shared.preview("vip", 1).unwrap(),
            )
        })
        .await
        .unwrap()
    });
    assert_eq!(count, 1);
    assert_eq!(preview.count, 1);
}

/// The advisory locks the session of backend `pid` holds now.
fn locks_of(db: &TestDb, pid: i32) -> i64 {
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    c.query_one(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
        &[&pid],
    )
    .unwrap()
    .get(0)
}

/// A connection goes back to the pool with its session reset (an advisory lock it took is
/// released at once, a setting it changed is back to its default when it is used again), and
/// the state store never gets a connection a profile source used.
#[test]
fn pooled_connections_come_back_reset_and_state_and_sources_never_share_them() {
    use segsync::pg::{PgThread, PgUse};
    let db = TestDb::create("pg_source");
    let t = PgThread::connect(&db.url, PgUse::Source).unwrap();
    let pid: i32 = t
        .call(|c| {
            c.batch_execute(
                "SELECT pg_advisory_lock(77); SELECT set_config('work_mem', '77kB', false)",
            )
            .unwrap();
            c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
        })
        .unwrap();
    assert_eq!(locks_of(&db, pid), 1, "the lock is taken");
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(5);
    while locks_of(&db, pid) > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle connection holds the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = PgThread::connect(&db.url, PgUse::State).unwrap();
    let state_pid: i32 = state
        .call(|c| c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0))
        .unwrap();
    assert_ne!(
        state_pid, pid,
        "the state store got the source's connection"
    );
    let again = PgThread::connect(&db.url, PgUse::Source).unwrap();
    let (again_pid, work_mem): (i32, String) = again
        .call(|c| {
            let r = c
                .query_one("SELECT pg_backend_pid(), current_setting('work_mem')", &[])
                .unwrap();
            (r.get(0), r.get(1))
        })
        .unwrap();
    assert_eq!(again_pid, pid, "the source's connection is reused");
    assert_ne!(work_mem, "77kB", "the setting was reset");
}
