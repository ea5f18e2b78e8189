//! Profiles read from MySQL / MariaDB ([`MySqlSource`]) against a real server: types, query
//! relations, predicates evaluated by the server, refusals, the statement time limit,
//! streaming, and URLs whose password must never show.
//!
//! The server is `mysql://root@127.0.0.1:3306` (or `SEGSYNC_TEST_MYSQL`); each test creates a
//! database of its own and drops it at the end. Without a server the tests fail, saying so:
//! they are never skipped.

use segsync::profiles::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

#[path = "support/mysql.rs"]
mod mysql_support;
use mysql_support::MyTestDb;

type Rows = BTreeMap<String, (Vec<Value>, Vec<bool>)>;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn table(db: &MyTestDb, table: &str, key: &str) -> MySqlSource {
    MySqlSource::connect(&db.url, Relation::Table(table.into()), key)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn select_all(source: &MySqlSource, columns: &[&str], predicates: &[&str]) -> (Rows, SelectStats) {
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

#[test]
fn mixed_types_are_described_and_read_as_json() {
    let db = MyTestDb::create("types");
    db.exec(
        "CREATE TABLE customers (
             id INT PRIMARY KEY, email VARCHAR(100), vip TINYINT(1), visits SMALLINT,
             big BIGINT UNSIGNED, ltv DECIMAL(12,2), ratio DOUBLE, born DATE,
             seen DATETIME(3), stamped TIMESTAMP NULL, attrs JSON, name VARCHAR(50),
             kind ENUM('a','b'), flag BIT(1)
         ) CHARACTER SET utf8mb4;
         SET time_zone = '+02:00';
         INSERT INTO customers VALUES
             (1, 'a@x.ro', 1, 3, 18446744073709551615, 1234.50, 0.25, '1990-05-17',
              '2024-03-01 10:00:00.250', '2024-03-01 12:00:00', '{\"plan\": \"pro\", \"n\": [1, 2]}',
              'Ștefan 🙂', 'b', b'1'),
             (2, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, b'0');",
    );
    let source = table(&db, "customers", "id");
    let kinds: Vec<(String, ColumnType)> = source
        .columns()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.kind))
        .collect();
    use ColumnType::*;
    let want = [
        ("id", Integer),
        ("email", Text),
        ("vip", Boolean),
        ("visits", Integer),
        ("big", Integer),
        ("ltv", Real),
        ("ratio", Real),
        ("born", Date),
        ("seen", Timestamp),
        ("stamped", Timestamp),
        ("attrs", Json),
        ("name", Text),
        ("kind", Text),
        ("flag", Boolean),
    ];
    assert_eq!(
        kinds,
        want.iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect::<Vec<_>>()
    );
    let columns: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    let (rows, stats) = select_all(&source, &columns, &["TRUE", "vip"]);
    assert_eq!(stats.rows, 2);
    assert_eq!(stats.per_predicate, vec![2, 1]);
    let (values, member) = &rows["1"];
    assert_eq!(member, &vec![true, true]);
    assert_eq!(
        values,
        &vec![
            json!(1),
            json!("a@x.ro"),
            json!(true),
            json!(3),
            json!(18446744073709551615u64),
            json!(1234.5),
            json!(0.25),
            json!("1990-05-17"),
            json!("2024-03-01T10:00:00.250"),
            // Written at +02:00, read in UTC.
            json!("2024-03-01T10:00:00Z"),
            json!({"plan": "pro", "n": [1, 2]}),
            json!("Ștefan 🙂"),
            json!("b"),
            json!(true),
        ]
    );
    let (values, member) = &rows["2"];
    assert_eq!(member, &vec![true, false]);
    assert_eq!(values[2], json!(false));
    assert_eq!(values[13], json!(false));
    assert!(values[1].is_null() && values[5].is_null() && values[10].is_null());
    // A preview has every column, decoded the same way.
    let preview = source
        .preview("JSON_EXTRACT(attrs, '$.plan') = 'pro'", 5)
        .unwrap();
    assert_eq!(preview.count, 1);
    assert_eq!(preview.sample[0]["ltv"], json!(1234.5));
    assert_eq!(preview.sample[0]["attrs"]["plan"], json!("pro"));
}

#[test]
fn a_query_relation_and_predicates_evaluated_by_the_server() {
    let db = MyTestDb::create("query");
    db.exec(
        "CREATE TABLE customers (id VARCHAR(10), email VARCHAR(100), country CHAR(2));
         CREATE TABLE orders (customer VARCHAR(10), total DECIMAL(10,2));
         INSERT INTO customers VALUES ('c1', 'a@x', 'RO'), ('c2', 'b@x', 'FR'), ('c3', 'c@x', 'RO');
         INSERT INTO orders VALUES ('c1', 100), ('c1', 450), ('c2', 20);",
    );
    let relation = Relation::Query(
        "SELECT c.id, c.email, c.country, COALESCE(SUM(o.total), 0) AS spent
         FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.id, c.email, c.country;"
            .into(),
    );
    let source = MySqlSource::connect(&db.url, relation, "id").unwrap();
    assert_eq!(source.row_count().unwrap(), 3);
    let (rows, _) = select_all(
        &source,
        &["email", "spent"],
        &["spent > 500", "country = 'RO'"],
    );
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["c1", "c3"]);
    assert_eq!(
        rows["c1"],
        (vec![json!("a@x"), json!(550.0)], vec![true, true])
    );
    assert_eq!(rows["c3"].1, vec![false, true]);
    // The server's own words for a bad predicate.
    let e = source.check_predicate("nope > 1").unwrap_err();
    assert!(
        matches!(e, PredicateError::MySql { .. })
            && e.to_string().contains("Unknown column 'nope'"),
        "{e}"
    );
    // A query that could change its shape is refused.
    for bad in [
        "SELECT 1 AS id; DROP TABLE customers",
        "SELECT 1 AS id) AS x, (SELECT 2",
    ] {
        let e = MySqlSource::connect(&db.url, Relation::Query(bad.into()), "id").unwrap_err();
        assert!(
            matches!(e, MySqlSourceError::BadRelation { .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn a_statement_over_its_time_limit_is_stopped_with_a_clear_message() {
    let db = MyTestDb::create("slow");
    db.exec("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(20))");
    let values: Vec<String> = (0..2000).map(|i| format!("({i}, 'p{i}@x')")).collect();
    db.exec(&format!(
        "INSERT INTO customers VALUES {}",
        values.join(",")
    ));
    let limits = Limits {
        check_timeout: Duration::from_millis(300),
        select_timeout: Duration::from_millis(500),
    };
    let source = table(&db, "customers", "id").with_limits(limits);
    // Eight billion rows to count: far longer than any limit here.
    let slow = "(SELECT COUNT(*) FROM customers a, customers b, customers c WHERE a.id + b.id + c.id = profiles.id * 7) >= 0";
    // Checking resolves the predicate without running it.
    source.check_predicate(slow).unwrap();
    let started = Instant::now();
    let e = source.preview(slow, 1).unwrap_err();
    assert!(
        matches!(e, PredicateError::Timeout { limit } if limit == limits.check_timeout),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the predicate ran longer than 300ms and was stopped"
    );
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
    assert!(e.to_string().contains("longer than 500ms"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The connection is usable afterwards, and nothing of the stopped statements is left.
    assert_eq!(source.row_count().unwrap(), 2000);
}

#[test]
fn rows_stream_and_a_callback_error_stops_the_pass() {
    let db = MyTestDb::create("stream");
    db.exec("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(40))");
    for chunk in (0..50_000).collect::<Vec<u32>>().chunks(5000) {
        let values: Vec<String> = chunk.iter().map(|i| format!("({i}, 'p{i}@x')")).collect();
        db.exec(&format!(
            "INSERT INTO customers VALUES {}",
            values.join(",")
        ));
    }
    let source = table(&db, "customers", "id");
    let mut seen = 0u64;
    let stats = source
        .select(
            &strings(&["email"]),
            &strings(&["id % 2 = 0", "TRUE"]),
            |row| -> Result<(), Infallible> {
                assert_eq!(row.values[0], json!(format!("p{}@x", row.key)));
                seen += 1;
                Ok(())
            },
        )
        .unwrap();
    assert_eq!((seen, stats.rows), (50_000, 50_000));
    assert_eq!(stats.per_predicate, vec![25_000, 50_000]);

    let mut taken = 0;
    let e = source
        .select(&strings(&["email"]), &strings(&["TRUE"]), |_| {
            taken += 1;
            if taken == 10 {
                Err("enough")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(e, SelectError::Callback("enough")), "{e:?}");
    assert_eq!(taken, 10);
    assert_eq!(source.row_count().unwrap(), 50_000);
}

#[test]
fn connection_errors_never_show_the_password() {
    let e = MySqlSource::connect(
        "mysql://ann:s3cret-pw@127.0.0.1:1/shop",
        Relation::Table("customers".into()),
        "id",
    )
    .unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(text.contains("mysql://ann:***@127.0.0.1:1/shop"), "{text}");

    let db = MyTestDb::create("missing");
    let e = MySqlSource::connect(&db.url, Relation::Table("nowhere".into()), "id").unwrap_err();
    assert!(e.to_string().contains("doesn't exist"), "{e}");
    db.exec("CREATE TABLE customers (id INT, Email VARCHAR(9))");
    let e =
        MySqlSource::connect(&db.url, Relation::Table("customers".into()), "email").unwrap_err();
    assert!(e.to_string().contains("has no column \"email\""), "{e}");
}
