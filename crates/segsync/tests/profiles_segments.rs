//! Segment predicates over the profile store: checks, refusals, deadlines, preview and the
//! one-pass select.

use segsync::profiles::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const CUSTOMERS: &str = "\
customer_id,email,country,lifetime_value,orders,vip
C1,ana@example.ro,RO,1250.5,12,true
C2,ion@example.ro,RO,80,1,false
C3,zoe@example.com,FR,600,3,true
C4,max@example.de,DE,,0,false
C5,eva@example.ro,RO,501,2,
";

fn store_with(limits: Limits) -> (TempDir, ProfileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("profiles.sqlite"))
        .unwrap()
        .with_limits(limits);
    let file = dir.path().join("customers.csv");
    std::fs::write(&file, CUSTOMERS).unwrap();
    store.import(&file, None, "customer_id").unwrap();
    (dir, store)
}

fn store() -> (TempDir, ProfileStore) {
    store_with(Limits::default())
}

fn refusal(store: &ProfileStore, predicate: &str) -> String {
    match store.check_predicate(predicate) {
        Ok(()) => panic!("{predicate:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_predicates_pass() {
    let (_dir, store) = store();
    for p in [
        "lifetime_value > 500 AND country = 'RO'",
        "vip",
        "lower(email) LIKE '%@example.ro' -- Romanian addresses",
        "country IN ('RO', 'FR') /* two countries */",
        "lifetime_value > (SELECT avg(lifetime_value) FROM profiles)",
        "\"customer_id\" = 'C1'",
        "profiles.orders BETWEEN 1 AND 5",
        "coalesce(lifetime_value, 0) = 0",
        "email = 'it''s; fine'",
    ] {
        store
            .check_predicate(p)
            .unwrap_or_else(|e| panic!("{p:?} refused: {e}"));
    }
}

#[test]
fn unknown_column_and_bad_sql_are_refused_with_sqlite_message() {
    let (_dir, store) = store();
    assert_eq!(
        refusal(&store, "lifetime_valu > 500"),
        "invalid predicate: no such column: lifetime_valu"
    );
    assert_eq!(
        refusal(&store, "lifetime_value >> AND 1"),
        "invalid predicate: near \"AND\": syntax error"
    );
    assert_eq!(
        refusal(&store, "no_such_function(email)"),
        "invalid predicate: no such function: no_such_function"
    );
    assert_eq!(
        refusal(&store, "count(*) > 1"),
        "invalid predicate: misuse of aggregate function count()"
    );
    assert_eq!(refusal(&store, "  "), "the predicate is empty");
    assert_eq!(
        refusal(&store, "email = 'unterminated"),
        "unterminated string"
    );
}

#[test]
fn more_than_one_statement_is_refused() {
    let (_dir, store) = store();
    for p in [
        "1=1; DROP TABLE profiles",
        "1=1;",
        "vip; SELECT * FROM sqlite_master",
    ] {
        assert_eq!(
            refusal(&store, p),
            "more than one statement: a segment predicate is a single SQL expression, without ';'",
            "{p}"
        );
    }
    // Escaping the surrounding parentheses is refused too.
    assert_eq!(
        refusal(&store, "1) UNION SELECT name FROM sqlite_master WHERE (1"),
        "unbalanced parentheses: a ')' without its '('"
    );
    assert_eq!(refusal(&store, "1 /* DROP"), "unterminated /* comment");
    // The data is still there.
    assert_eq!(store.row_count().unwrap(), 5);
}

#[test]
fn reading_anything_but_the_profiles_is_refused() {
    let (dir, store) = store();
    // Tables of other parts of segsync in the same file (and an attached database) stay unreadable.
    {
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE connections (name TEXT, api_key TEXT);
             INSERT INTO connections VALUES ('main', 'secret-key-us1');",
        )
        .unwrap();
    }
    let other = dir.path().join("state.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE runs (id INTEGER)")
        .unwrap();
    let not_allowed = |what: &str| {
        format!("not allowed in a segment predicate: {what} (a predicate can only read the profiles table)")
    };
    assert_eq!(
        refusal(&store, "EXISTS (SELECT 1 FROM sqlite_master)"),
        not_allowed("reading table \"sqlite_master\"")
    );
    assert_eq!(
        refusal(
            &store,
            "(SELECT sql FROM sqlite_schema LIMIT 1) IS NOT NULL"
        ),
        not_allowed("reading table \"sqlite_master\"")
    );
    assert_eq!(
        refusal(&store, "email IN (SELECT api_key FROM connections)"),
        not_allowed("reading table \"connections\"")
    );
    assert_eq!(
        refusal(&store, "EXISTS (SELECT 1 FROM segsync_profiles_meta)"),
        not_allowed("reading table \"segsync_profiles_meta\"")
    );
    assert_eq!(
        refusal(
            &store,
            "EXISTS (SELECT 1 FROM pragma_table_info('connections'))"
        ),
        not_allowed("reading table \"pragma_table_info\"")
    );
    assert_eq!(
        refusal(&store, "load_extension('/tmp/evil.so') IS NULL"),
        not_allowed("load_extension()")
    );
    // An attached database cannot even be named: ATTACH is not an expression, and nothing is attached.
    assert_eq!(
        refusal(&store, "EXISTS (SELECT 1 FROM state.runs)"),
        "invalid predicate: no such table: state.runs"
    );
    assert_eq!(
        refusal(
            &store,
            &format!("1=1; ATTACH '{}' AS state", other.display())
        ),
        "more than one statement: a segment predicate is a single SQL expression, without ';'"
    );
    // Preview and select refuse the same predicates.
    assert!(matches!(
        store.preview("email IN (SELECT api_key FROM connections)", 5),
        Err(PredicateError::NotAllowed(_))
    ));
    let result = store.select(
        &["email".to_string()],
        &[
            "vip".to_string(),
            "email IN (SELECT api_key FROM connections)".to_string(),
        ],
        |_| -> Result<(), Infallible> { Ok(()) },
    );
    match result {
        Err(SelectError::Predicate {
            index: 1,
            source: PredicateError::NotAllowed(_),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn writes_are_impossible() {
    let (_dir, store) = store();
    for p in [
        "1=1; DELETE FROM profiles",
        "(DELETE FROM profiles)",
        "(UPDATE profiles SET vip = 0)",
        "1=1; PRAGMA writable_schema = ON",
        "(INSERT INTO profiles DEFAULT VALUES) IS NULL",
    ] {
        store.check_predicate(p).unwrap_err();
        store.preview(p, 1).unwrap_err();
    }
    assert_eq!(store.row_count().unwrap(), 5);
    assert_eq!(store.preview("vip", 0).unwrap().count, 2);
}

/// A predicate that would run for hours: a 16-way cross join of the 5 profiles (5^16 rows).
fn cross_join() -> String {
    let tables: Vec<String> = (0..16).map(|i| format!("profiles t{i}")).collect();
    format!("(SELECT count(*) FROM {}) > 0", tables.join(", "))
}

/// A predicate that never ends: an endless recursive CTE.
const ENDLESS: &str =
    "EXISTS (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT 1 FROM n WHERE x < 0)";

#[test]
fn slow_predicates_are_stopped_at_the_deadline() {
    let limits = Limits {
        check_timeout: Duration::from_millis(200),
        select_timeout: Duration::from_millis(300),
    };
    let (_dir, store) = store_with(limits);
    for p in [cross_join().as_str(), ENDLESS] {
        // Checking does not run it.
        store.check_predicate(p).unwrap();
        let started = Instant::now();
        let err = store.preview(p, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the predicate ran longer than 200ms and was stopped"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let err = store
            .select(
                &[],
                &["vip".to_string(), p.to_string()],
                |_| -> Result<(), Infallible> { Ok(()) },
            )
            .unwrap_err();
        assert!(matches!(err, SelectError::Timeout { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "selecting the profiles took longer than 300ms and was stopped"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    // The deadline counts time inside SQLite only: a slow consumer is not stopped.
    let started = Instant::now();
    let stats = store
        .select(&[], &["1".to_string()], |_| -> Result<(), Infallible> {
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        })
        .unwrap();
    assert_eq!(stats.rows, 5);
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn nothing_imported_yet() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("profiles.sqlite")).unwrap();
    assert_eq!(refusal(&store, "vip"), "no profiles have been imported yet");
    assert!(matches!(
        store.preview("vip", 1),
        Err(PredicateError::NoProfiles)
    ));
    assert!(matches!(
        store.select(&[], &["vip".to_string()], |_| -> Result<(), Infallible> {
            Ok(())
        }),
        Err(SelectError::NoProfiles)
    ));
}

#[test]
fn preview_counts_and_samples() {
    let (_dir, store) = store();
    let preview = store.preview("country = 'RO'", 2).unwrap();
    assert_eq!(preview.count, 3);
    assert_eq!(
        preview.columns,
        [
            "customer_id",
            "email",
            "country",
            "lifetime_value",
            "orders",
            "vip"
        ]
    );
    assert_eq!(preview.sample.len(), 2);
    assert_eq!(
        serde_json::Value::Object(preview.sample[0].clone()),
        json!({
            "customer_id": "C1",
            "email": "ana@example.ro",
            "country": "RO",
            "lifetime_value": 1250.5,
            "orders": 12,
            "vip": true
        })
    );
    assert_eq!(preview.sample[1]["customer_id"], json!("C2"));
    let none = store.preview("country = 'XX'", 10).unwrap();
    assert_eq!(none.count, 0);
    assert!(none.sample.is_empty());
    assert_eq!(store.preview("1", 0).unwrap().count, 5);
}

#[test]
fn select_evaluates_overlapping_segments_in_one_pass() {
    let (_dir, store) = store();
    let predicates = [
        "lifetime_value > 500", // C1 C3 C5
        "country = 'RO'",       // C1 C2 C5
        "vip",                  // C1 C3   (C5: NULL is not true)
        "orders > 100",         // nobody
    ]
    .map(String::from);
    let columns = ["email", "lifetime_value", "vip"].map(String::from);
    let mut rows = BTreeMap::new();
    let stats = store
        .select(&columns, &predicates, |row| -> Result<(), Infallible> {
            rows.insert(row.key.clone(), row);
            Ok(())
        })
        .unwrap();
    assert_eq!(stats.rows, 4);
    assert_eq!(stats.per_predicate, [3, 3, 2, 0]);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["C1", "C2", "C3", "C5"]);
    assert_eq!(
        rows["C1"],
        ProfileRow {
            key: "C1".into(),
            values: vec![json!("ana@example.ro"), json!(1250.5), json!(true)],
            in_segment: vec![true, true, true, false],
            position: Some(1),
        }
    );
    assert_eq!(rows["C2"].in_segment, [false, true, false, false]);
    assert_eq!(rows["C3"].in_segment, [true, false, true, false]);
    assert_eq!(
        rows["C5"],
        ProfileRow {
            key: "C5".into(),
            values: vec![
                json!("eva@example.ro"),
                json!(501.0),
                serde_json::Value::Null
            ],
            in_segment: vec![true, true, false, false],
            position: Some(5),
        }
    );
}

#[test]
fn select_errors() {
    let (_dir, store) = store();
    let ok = |_: ProfileRow| -> Result<(), Infallible> { Ok(()) };
    let err = store
        .select(&["emial".to_string()], &["vip".to_string()], ok)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no column \"emial\" in the profiles (columns: customer_id, email, country, lifetime_value, orders, vip)"
    );
    let err = store.select(&[], &[], ok).unwrap_err();
    assert_eq!(err.to_string(), "no segment predicates given");
    let err = store
        .select(
            &[],
            &["vip".to_string(), "lifetime_valu > 1".to_string()],
            ok,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "segment predicate 2 (\"lifetime_valu > 1\"): invalid predicate: no such column: lifetime_valu"
    );
    let err = store
        .select(&[], &["1=1; DROP TABLE profiles".to_string()], ok)
        .unwrap_err();
    assert!(matches!(
        err,
        SelectError::Predicate {
            index: 0,
            source: PredicateError::MultipleStatements,
            ..
        }
    ));

    // The callback's error stops the pass at once.
    let mut seen = 0;
    let err = store
        .select(&[], &["1".to_string()], |_| {
            seen += 1;
            Err("disk full")
        })
        .unwrap_err();
    assert_eq!(seen, 1);
    assert!(matches!(err, SelectError::Callback("disk full")));
    assert_eq!(err.to_string(), "disk full");
}

#[test]
fn select_streams_many_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("profiles.sqlite")).unwrap();
    let mut csv = String::from("id,n,even\n");
    for i in 0..50_000 {
        csv.push_str(&format!("K{i},{i},{}\n", i % 2 == 0));
    }
    let file: PathBuf = dir.path().join("many.csv");
    std::fs::write(&file, csv).unwrap();
    store.import(&file, None, "id").unwrap();
    let mut seen = Vec::new();
    let mut evens = 0u64;
    let segments = ["even".to_string(), "n % 3 = 0".to_string()];
    let stats = store
        .select(
            &["n".to_string()],
            &segments,
            |row| -> Result<(), Infallible> {
                seen.push(row.values[0].as_i64().unwrap());
                evens += u64::from(row.in_segment[0]);
                Ok(())
            },
        )
        .unwrap();
    // Members of "even" or "multiple of 3": n with n%2==0 || n%3==0, in the file's order
    // (the store is read in a thread of its own, handfuls of rows ahead of the callback).
    let expected: Vec<i64> = (0..50_000).filter(|n| n % 2 == 0 || n % 3 == 0).collect();
    assert_eq!(stats.rows, expected.len() as u64);
    assert_eq!(seen, expected);
    assert_eq!(evens, 25_000);
    assert_eq!(stats.per_predicate, [25_000, 16_667]);

    // A callback that stops far into the pass stops it there: no row after it is handed
    // over, and its error is the pass's.
    let mut taken = 0;
    let err = store
        .select(&["n".to_string()], &segments, |_| {
            taken += 1;
            if taken == 2_000 {
                return Err("enough");
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(taken, 2_000);
    assert!(matches!(err, SelectError::Callback("enough")), "{err:?}");
}
