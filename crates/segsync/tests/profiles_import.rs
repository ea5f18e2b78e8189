//! Profile imports: CSV, NDJSON and Parquet into the embedded store, typed columns, atomic
//! replacement, and every kind of bad input with its exact message.

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use segsync::profiles::*;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

fn store() -> (TempDir, ProfileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("home/profiles.sqlite")).unwrap();
    (dir, store)
}

fn write(dir: &TempDir, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The error text of an import that must fail.
fn import_error(store: &ProfileStore, file: &Path, key: &str) -> String {
    match store.import(file, None, key) {
        Ok(report) => panic!("import of {} succeeded: {report:?}", file.display()),
        Err(e) => e.to_string(),
    }
}

fn columns(store: &ProfileStore) -> Vec<(String, ColumnType)> {
    store
        .columns()
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.kind))
        .collect()
}

fn cols(list: &[(&str, ColumnType)]) -> Vec<(String, ColumnType)> {
    list.iter().map(|(n, t)| (n.to_string(), *t)).collect()
}

/// Every profile (key, values of `columns`) in key order.
fn all_rows(store: &ProfileStore, columns: &[&str]) -> Vec<(String, Vec<Value>)> {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let mut rows = Vec::new();
    store
        .select(
            &columns,
            &["1".to_string()],
            |row| -> Result<(), Infallible> {
                rows.push((row.key, row.values));
                Ok(())
            },
        )
        .unwrap();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

const CUSTOMERS: &str = "\
customer_id,email,first_name,lifetime_value,orders,vip,signup_date,last_seen,zip,notes
C1,ana@example.ro,Ana-Maria,1250.5,12,true,2023-05-01,2024-01-05T10:00:00Z,01234,
C2,ion@example.ro,Ion,80,1,false,2024-02-29,2024-01-06 08:30,10500,\"likes \"\"quotes\"\", commas\"
C3,zoe@example.com,Zoë,,0,FALSE,,,,\"two
lines\"
";

#[test]
fn csv_import_infers_types_and_keeps_values() {
    let (dir, store) = store();
    assert_eq!(store.row_count().unwrap(), 0);
    assert_eq!(store.key_column().unwrap(), None);
    assert!(store.columns().unwrap().is_empty());

    let file = write(&dir, "customers.csv", CUSTOMERS);
    let report = store.import(&file, None, "customer_id").unwrap();
    assert_eq!(report.rows, 3);
    assert_eq!(report.format, Format::Csv);
    assert_eq!(report.key_column, "customer_id");
    use ColumnType::*;
    let expected = cols(&[
        ("customer_id", Text),
        ("email", Text),
        ("first_name", Text),
        ("lifetime_value", Real),
        ("orders", Integer),
        ("vip", Boolean),
        ("signup_date", Date),
        ("last_seen", Timestamp),
        ("zip", Text), // 01234 keeps its leading zero
        ("notes", Text),
    ]);
    let reported: Vec<_> = report
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.kind))
        .collect();
    assert_eq!(reported, expected);
    assert_eq!(columns(&store), expected);
    assert_eq!(store.row_count().unwrap(), 3);
    assert_eq!(store.key_column().unwrap().as_deref(), Some("customer_id"));

    let rows = all_rows(
        &store,
        &[
            "first_name",
            "lifetime_value",
            "orders",
            "vip",
            "signup_date",
            "last_seen",
            "zip",
            "notes",
        ],
    );
    assert_eq!(
        rows,
        vec![
            (
                "C1".to_string(),
                vec![
                    json!("Ana-Maria"),
                    json!(1250.5),
                    json!(12),
                    json!(true),
                    json!("2023-05-01"),
                    json!("2024-01-05T10:00:00Z"),
                    json!("01234"),
                    Value::Null, // empty cell
                ]
            ),
            (
                "C2".to_string(),
                vec![
                    json!("Ion"),
                    json!(80.0),
                    json!(1),
                    json!(false),
                    json!("2024-02-29"),
                    json!("2024-01-06 08:30"),
                    json!("10500"),
                    json!("likes \"quotes\", commas"),
                ]
            ),
            (
                "C3".to_string(),
                vec![
                    json!("Zoë"),
                    Value::Null,
                    json!(0),
                    json!(false),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    json!("two\nlines"),
                ]
            ),
        ]
    );
    // Typed columns: numeric comparisons work as numbers, not text.
    assert_eq!(store.preview("lifetime_value > 100", 0).unwrap().count, 1);
    assert_eq!(store.preview("orders >= 1 AND vip", 0).unwrap().count, 1);
    assert_eq!(store.preview("zip = '01234'", 0).unwrap().count, 1);
}

#[test]
fn csv_details_bom_crlf_blank_lines_and_odd_column_names() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "odd.csv",
        "\u{FEFF}customer_id,Email Address,\"we\"\"ird\",x;y\r\n\r\nC1,a@x.ro,1,2\r\nC2,b@x.ro,2,3\r\n\r\n",
    );
    let report = store.import(&file, None, "customer_id").unwrap();
    assert_eq!(report.rows, 2);
    let names: Vec<String> = store
        .columns()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["customer_id", "Email Address", "we\"ird", "x;y"]);
    // Quoted identifiers work in predicates and in select.
    assert_eq!(
        store
            .preview("\"we\"\"ird\" = 2 AND \"x;y\" = 3", 1)
            .unwrap()
            .count,
        1
    );
    let rows = all_rows(&store, &["Email Address", "we\"ird"]);
    assert_eq!(rows[0], ("C1".to_string(), vec![json!("a@x.ro"), json!(1)]));
}

#[test]
fn ndjson_import_infers_types_and_unions_keys() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "people.ndjson",
        concat!(
            "{\"customer_id\": \"P1\", \"email\": \"a@x.ro\", \"score\": 3, \"vip\": true, \"tags\": [\"a\", \"b\"]}\n",
            "\n",
            "{\"customer_id\": 2, \"score\": 4.5, \"vip\": false, \"address\": {\"city\": \"Cluj\"}, \"born\": \"1990-04-01\"}\r\n",
            "{\"email\": \"c@x.ro\", \"customer_id\": \"P3\", \"score\": null, \"mixed\": 1}\n",
            "{\"customer_id\": \"P4\", \"mixed\": \"one\"}",
        ),
    );
    let report = store.import(&file, None, "customer_id").unwrap();
    assert_eq!(report.rows, 4);
    assert_eq!(report.format, Format::Ndjson);
    use ColumnType::*;
    assert_eq!(
        columns(&store),
        cols(&[
            ("customer_id", Text),
            ("email", Text),
            ("score", Real),
            ("vip", Boolean),
            ("tags", Json),
            ("address", Json),
            ("born", Date),
            ("mixed", Text),
        ])
    );
    let rows = all_rows(
        &store,
        &["email", "score", "vip", "tags", "address", "born", "mixed"],
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        (
            "2".to_string(),
            vec![
                Value::Null,
                json!(4.5),
                json!(false),
                Value::Null,
                json!({"city": "Cluj"}),
                json!("1990-04-01"),
                Value::Null
            ]
        )
    );
    assert_eq!(
        rows[1],
        (
            "P1".to_string(),
            vec![
                json!("a@x.ro"),
                json!(3.0),
                json!(true),
                json!(["a", "b"]),
                Value::Null,
                Value::Null,
                Value::Null
            ]
        )
    );
    assert_eq!(rows[2].1[6], json!("1"));
    assert_eq!(rows[3].1[6], json!("one"));
    // JSON columns can be queried with SQLite's JSON functions.
    assert_eq!(
        store
            .preview("json_extract(address, '$.city') = 'Cluj'", 0)
            .unwrap()
            .count,
        1
    );
    assert_eq!(
        store
            .preview(
                "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 'b')",
                0
            )
            .unwrap()
            .count,
        1
    );
    // .jsonl is NDJSON too.
    let jsonl = write(&dir, "people.jsonl", "{\"customer_id\": \"J1\"}\n");
    assert_eq!(store.import(&jsonl, None, "customer_id").unwrap().rows, 1);
}

/// customer_id, orders, lifetime_value, vip, signup (days), last_seen (ms), tags.
type ParquetRow<'a> = (
    Option<&'a str>,
    Option<i64>,
    Option<f64>,
    Option<bool>,
    Option<i32>,
    Option<i64>,
    &'a [&'a str],
);

fn write_parquet(path: &Path, rows: &[ParquetRow<'_>]) {
    let schema = Arc::new(
        parse_message_type(
            "message profile {
                OPTIONAL BYTE_ARRAY customer_id (UTF8);
                OPTIONAL INT64 orders;
                OPTIONAL DOUBLE lifetime_value;
                OPTIONAL BOOLEAN vip;
                OPTIONAL INT32 signup (DATE);
                OPTIONAL INT64 last_seen (TIMESTAMP(MILLIS,true));
                OPTIONAL group tags (LIST) {
                    REPEATED group list {
                        OPTIONAL BYTE_ARRAY element (UTF8);
                    }
                }
            }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let defs = |present: Vec<bool>| present.into_iter().map(i16::from).collect::<Vec<i16>>();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        match index {
            0 => {
                let values: Vec<ByteArray> = rows
                    .iter()
                    .filter_map(|r| r.0)
                    .map(ByteArray::from)
                    .collect();
                let d = defs(rows.iter().map(|r| r.0.is_some()).collect());
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            1 => {
                let values: Vec<i64> = rows.iter().filter_map(|r| r.1).collect();
                let d = defs(rows.iter().map(|r| r.1.is_some()).collect());
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            2 => {
                let values: Vec<f64> = rows.iter().filter_map(|r| r.2).collect();
                let d = defs(rows.iter().map(|r| r.2.is_some()).collect());
                column
                    .typed::<DoubleType>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            3 => {
                let values: Vec<bool> = rows.iter().filter_map(|r| r.3).collect();
                let d = defs(rows.iter().map(|r| r.3.is_some()).collect());
                column
                    .typed::<BoolType>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            4 => {
                let values: Vec<i32> = rows.iter().filter_map(|r| r.4).collect();
                let d = defs(rows.iter().map(|r| r.4.is_some()).collect());
                column
                    .typed::<Int32Type>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            5 => {
                let values: Vec<i64> = rows.iter().filter_map(|r| r.5).collect();
                let d = defs(rows.iter().map(|r| r.5.is_some()).collect());
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, Some(&d), None)
                    .unwrap();
            }
            6 => {
                // tags: an empty slice is a NULL list; each element is present.
                let mut values = Vec::new();
                let mut d = Vec::new();
                let mut r = Vec::new();
                for row in rows {
                    if row.6.is_empty() {
                        d.push(0);
                        r.push(0);
                    }
                    for (i, tag) in row.6.iter().enumerate() {
                        values.push(ByteArray::from(*tag));
                        d.push(3);
                        r.push(if i == 0 { 0 } else { 1 });
                    }
                }
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&d), Some(&r))
                    .unwrap();
            }
            _ => unreachable!(),
        }
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_import_takes_the_schema_types() {
    let (dir, store) = store();
    let file = dir.path().join("profiles.parquet");
    write_parquet(
        &file,
        &[
            (
                Some("Q1"),
                Some(12),
                Some(1250.5),
                Some(true),
                Some(19_727),
                Some(1_704_448_800_123),
                &["vip", "ro"],
            ),
            (Some("Q2"), None, Some(80.0), Some(false), None, None, &[]),
            (Some("Q3"), Some(0), None, None, Some(0), Some(0), &["new"]),
        ],
    );
    let report = store.import(&file, None, "customer_id").unwrap();
    assert_eq!(report.rows, 3);
    assert_eq!(report.format, Format::Parquet);
    use ColumnType::*;
    assert_eq!(
        columns(&store),
        cols(&[
            ("customer_id", Text),
            ("orders", Integer),
            ("lifetime_value", Real),
            ("vip", Boolean),
            ("signup", Date),
            ("last_seen", Timestamp),
            ("tags", Json),
        ])
    );
    let rows = all_rows(
        &store,
        &[
            "orders",
            "lifetime_value",
            "vip",
            "signup",
            "last_seen",
            "tags",
        ],
    );
    assert_eq!(
        rows,
        vec![
            (
                "Q1".to_string(),
                vec![
                    json!(12),
                    json!(1250.5),
                    json!(true),
                    json!("2024-01-05"),
                    json!("2024-01-05T10:00:00.123Z"),
                    json!(["vip", "ro"])
                ]
            ),
            (
                "Q2".to_string(),
                vec![
                    Value::Null,
                    json!(80.0),
                    json!(false),
                    Value::Null,
                    Value::Null,
                    Value::Null
                ]
            ),
            (
                "Q3".to_string(),
                vec![
                    json!(0),
                    Value::Null,
                    Value::Null,
                    json!("1970-01-01"),
                    json!("1970-01-01T00:00:00.000Z"),
                    json!(["new"])
                ]
            ),
        ]
    );
    assert_eq!(
        store
            .preview("signup >= '2024-01-01' AND vip", 0)
            .unwrap()
            .count,
        1
    );
}

#[test]
fn format_from_extension_or_explicit() {
    let (dir, store) = store();
    let file = write(&dir, "export.txt", "customer_id\nC1\n");
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}: cannot tell the format from the file name (expected .csv, .ndjson, .jsonl or .parquet); give the format explicitly",
            file.display()
        )
    );
    let report = store
        .import(&file, Some(Format::Csv), "customer_id")
        .unwrap();
    assert_eq!(report.rows, 1);
    assert_eq!("JSONL".parse::<Format>().unwrap(), Format::Ndjson);
    assert_eq!(
        Format::from_path(Path::new("a/B.PARQUET")),
        Some(Format::Parquet)
    );
    assert!("xml".parse::<Format>().is_err());
}

#[test]
fn reimport_replaces_atomically_and_a_failed_import_changes_nothing() {
    let (dir, store) = store();
    let good = write(
        &dir,
        "customers.csv",
        "customer_id,email,ltv\nC1,a@x.ro,10\nC2,b@x.ro,20\nC3,c@x.ro,30\n",
    );
    store.import(&good, None, "customer_id").unwrap();
    let before_rows = all_rows(&store, &["email", "ltv"]);
    let before_columns = columns(&store);

    // Fails only at the very end, after thousands of rows were written to the new table.
    let mut bad = String::from("id,name,score\n");
    for i in 0..5000 {
        bad.push_str(&format!("K{i},name {i},{i}\n"));
    }
    bad.push_str("K17,again,1\n");
    let bad = write(&dir, "bad.csv", bad);
    assert_eq!(
        import_error(&store, &bad, "id"),
        format!(
            "{}:5002: column \"id\": duplicate key \"K17\" (first on line 19)",
            bad.display()
        )
    );
    // Every other kind of failure too.
    let ragged = write(&dir, "ragged.csv", "id,name\nA,1\nB\n");
    import_error(&store, &ragged, "id");
    import_error(&store, &dir.path().join("missing.csv"), "id");
    let broken = write(&dir, "broken.parquet", "PAR1 not really");
    import_error(&store, &broken, "id");

    assert_eq!(all_rows(&store, &["email", "ltv"]), before_rows);
    assert_eq!(columns(&store), before_columns);
    assert_eq!(store.row_count().unwrap(), 3);
    assert_eq!(store.key_column().unwrap().as_deref(), Some("customer_id"));
    // No half-built table left behind: the profiles, their import's record of what changed
    // (per key, and keys removed), and the meta table.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "profiles",
            "segsync_profile_keys",
            "segsync_profile_removed",
            "segsync_profiles_meta"
        ]
    );

    // A good re-import replaces columns, rows and key.
    let other = write(&dir, "people.ndjson", "{\"pid\": \"X\", \"age\": 40}\n");
    store.import(&other, None, "pid").unwrap();
    assert_eq!(store.key_column().unwrap().as_deref(), Some("pid"));
    assert_eq!(
        columns(&store),
        cols(&[("pid", ColumnType::Text), ("age", ColumnType::Integer)])
    );
    assert_eq!(store.row_count().unwrap(), 1);

    // A store opened afresh sees the same.
    drop(store);
    let store = ProfileStore::open(&dir.path().join("home/profiles.sqlite")).unwrap();
    assert_eq!(store.row_count().unwrap(), 1);
    assert_eq!(store.key_column().unwrap().as_deref(), Some("pid"));
}

#[test]
fn readers_see_the_old_profiles_until_the_new_ones_are_committed() {
    let (dir, store) = store();
    let first = write(&dir, "a.csv", "id,v\nA,1\n");
    store.import(&first, None, "id").unwrap();
    let mut big = String::from("id,v\n");
    for i in 0..20_000 {
        big.push_str(&format!("B{i},{i}\n"));
    }
    let second = write(&dir, "b.csv", big);
    let store = Arc::new(store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || store.import(&second, None, "id").unwrap())
    };
    // While the import runs, every read sees either all of the old data or all of the new.
    while !writer.is_finished() {
        let n = store.row_count().unwrap();
        assert!(n == 1 || n == 20_000, "saw {n} rows");
    }
    writer.join().unwrap();
    assert_eq!(store.row_count().unwrap(), 20_000);
}

// ---------------------------------------------------------------------------------------------
// Bad input: each case gets a clear message naming the file, the line (or row) and the column.

#[test]
fn csv_duplicate_key() {
    let (dir, store) = store();
    let mut content = String::from("customer_id,email\n");
    for i in 1..=60 {
        let id = match i {
            11 | 56 => "C123".to_string(),
            i => format!("C{i}"),
        };
        content.push_str(&format!("{id},x{i}@example.com\n"));
    }
    let file = write(&dir, "customers.csv", content);
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}:57: column \"customer_id\": duplicate key \"C123\" (first on line 12)",
            file.display()
        )
    );
}

#[test]
fn csv_wrong_field_count() {
    let (dir, store) = store();
    let file = write(&dir, "customers.csv", "a,b,c,d,e\n1,2,3,4,5\n1,2,3,4\n");
    assert_eq!(
        import_error(&store, &file, "a"),
        format!("{}:3: expected 5 fields, found 4", file.display())
    );
    let file = write(&dir, "more.csv", "a,b\n1,2\n1,2,\n");
    assert_eq!(
        import_error(&store, &file, "a"),
        format!("{}:3: expected 2 fields, found 3", file.display())
    );
}

#[test]
fn csv_missing_key_column() {
    let (dir, store) = store();
    let file = write(&dir, "customers.csv", "a,b,c\n1,2,3\n");
    assert_eq!(
        import_error(&store, &file, "cust_id"),
        format!(
            "{}: no column \"cust_id\" (columns: a, b, c)",
            file.display()
        )
    );
    let file = write(&dir, "case.csv", "Customer_ID,b\n1,2\n");
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}: no column \"customer_id\" (columns: Customer_ID, b); did you mean \"Customer_ID\"?",
            file.display()
        )
    );
}

#[test]
fn csv_delimiter_is_detected_or_given() {
    let (dir, store) = store();
    for (name, text, delimiter) in [
        (
            "semi.csv",
            "customer_id;email;ltv\nC1;a@x.ro;5\nC2;\"b;c\"@x.ro;7\n",
            ";",
        ),
        (
            "tab.csv",
            "customer_id\temail\tltv\nC1\ta@x.ro\t5\nC2\tb@x.ro\t7\n",
            "tab",
        ),
        (
            "pipe.csv",
            "customer_id|email|ltv\nC1|a@x.ro|5\nC2|b@x.ro|7\n",
            "|",
        ),
        (
            "comma.csv",
            "customer_id,email,ltv\nC1,a@x.ro,5\nC2,\"b;c|d\"@x.ro,7\n",
            ",",
        ),
    ] {
        let file = write(&dir, name, text);
        let report = store.import(&file, None, "customer_id").unwrap();
        let dialect = report.dialect.unwrap();
        assert_eq!(dialect.delimiter, delimiter, "{name}");
        assert!(dialect.delimiter_detected);
        assert_eq!(report.rows, 2, "{name}");
        assert_eq!(
            columns(&store),
            cols(&[
                ("customer_id", ColumnType::Text),
                ("email", ColumnType::Text),
                ("ltv", ColumnType::Integer)
            ]),
            "{name}"
        );
        assert_eq!(store.preview("ltv > 6", 0).unwrap().count, 1, "{name}");
    }
    // A delimiter given is used as given: the wrong one is explained.
    let semi = write(&dir, "semi2.csv", "customer_id;email\nC1;a@x.ro\n");
    let options = ImportOptions {
        delimiter: Some(b','),
        ..Default::default()
    };
    let err = store
        .import_with(&semi, None, "customer_id", &options)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1: the header is a single column holding \";\": the file seems to use \";\" as its delimiter, not \",\" (give the delimiter \";\")",
            semi.display()
        )
    );
    // CSV options on another format are refused, not ignored.
    let ndjson = write(&dir, "p.ndjson", "{\"customer_id\":\"C1\"}\n");
    let err = store
        .import_with(&ndjson, None, "customer_id", &options)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("apply to CSV files only, not to ndjson"),
        "{err}"
    );
}

/// The Excel file of a European locale: UTF-8 byte order mark, `;`, CRLF, decimal commas
/// with thousands dots, `dd/mm/yyyy` dates and `dd/mm/yyyy HH:MM` times, zip codes with
/// leading zeros, one "x" among the amounts and one "n/a" among the dates.
fn excel_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/excel-eu.csv")
}

/// The profiles of `predicate`, by key.
fn keys_of(store: &ProfileStore, predicate: &str) -> Vec<String> {
    let mut keys = Vec::new();
    store
        .select(
            &[],
            &[predicate.to_string()],
            |row| -> Result<(), Infallible> {
                keys.push(row.key);
                Ok(())
            },
        )
        .unwrap();
    keys.sort();
    keys
}

#[test]
fn excel_european_csv_is_read_with_its_formats_and_segments_count_right() {
    let (_dir, store) = store();
    let file = excel_fixture();
    let report = store.import(&file, None, "Customer ID").unwrap();
    assert_eq!(report.rows, 18);
    assert_eq!(
        report.dialect,
        Some(Dialect {
            delimiter: ";".into(),
            delimiter_detected: true,
            bom: true,
            line_ending: "crlf".into(),
            decimal_comma: true,
            date_format: DateFormat::DayMonthYear,
        })
    );
    use ColumnType::*;
    assert_eq!(
        columns(&store),
        cols(&[
            ("Customer ID", Text),
            ("E-mail", Text),
            ("First name", Text),
            ("Country", Text),
            ("Lifetime value", Real),
            ("Orders", Integer),
            ("Joined", Date),
            ("Last order", Timestamp),
            ("Zip", Text),
        ])
    );
    // The two values that are not what their column holds, with their lines (CRLF file).
    assert_eq!(report.bad_value_count, 2);
    let bad: Vec<String> = report.bad_values.iter().map(|b| b.to_string()).collect();
    assert_eq!(
        bad,
        [
            "line 9: column \"Lifetime value\": \"x\" is not a number (with a decimal comma, as 1.234,50)",
            "line 10: column \"Joined\": \"n/a\" is not a date (dd/mm/yyyy or yyyy-mm-dd)",
        ]
    );
    assert_eq!(report.on_bad_value, OnBadValue::Empty);
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].starts_with("column \"Zip\": kept as text: 15 of its 18 values are numbers, but \"010101\" (line 2) and 2 more start with 0"),
        "{}",
        report.notes[0]
    );

    // Exactly the customers worth more than 500 (not 69,34 nor 87,14, which text would be).
    assert_eq!(
        keys_of(&store, "\"Lifetime value\" > 500"),
        ["C001", "C005", "C006", "C010", "C011", "C012", "C014", "C016"]
    );
    for (predicate, count) in [
        ("\"Lifetime value\" > 500", 8),
        ("\"Lifetime value\" < 100", 4),
        ("\"Lifetime value\" IS NULL", 2), // the "x" and the empty one
        ("\"Lifetime value\" > 500 AND Country = 'RO'", 3),
        ("Orders >= 5", 7),
        ("Joined >= '2024-01-01'", 8),
        ("Joined IS NULL", 1),
        ("\"Last order\" >= '2024-12-31'", 2),
        ("Zip = '00118'", 1),
    ] {
        assert_eq!(
            store.preview(predicate, 0).unwrap().count,
            count,
            "{predicate}"
        );
    }
    let rows = all_rows(
        &store,
        &["Lifetime value", "Orders", "Joined", "Last order", "Zip"],
    );
    assert_eq!(
        rows[0],
        (
            "C001".to_string(),
            vec![
                json!(1234.5),
                json!(12),
                json!("2024-12-31"),
                json!("2025-01-05 14:30:00"),
                json!("010101"),
            ]
        )
    );
    assert_eq!(rows[15].1[0], json!(1_000_000.0));
    assert_eq!(rows[15].1[1], json!(1200), "1.200 orders: a thousands dot");
}

#[test]
fn bad_values_refuse_or_skip_as_chosen() {
    let (dir, store) = store();
    let good = write(&dir, "good.csv", "id,ltv\nA,1\n");
    store.import(&good, None, "id").unwrap();
    let file = excel_fixture();
    let refuse = ImportOptions {
        on_bad_value: OnBadValue::Refuse,
        ..Default::default()
    };
    let err = store
        .import_with(&file, None, "Customer ID", &refuse)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 2 values do not fit their column's type, so nothing was imported (to import the rest, choose to leave bad values empty or to skip their rows):\n  \
             line 9: column \"Lifetime value\": \"x\" is not a number (with a decimal comma, as 1.234,50)\n  \
             line 10: column \"Joined\": \"n/a\" is not a date (dd/mm/yyyy or yyyy-mm-dd)",
            file.display()
        )
    );
    assert_eq!(
        store.row_count().unwrap(),
        1,
        "a refused import changes nothing"
    );
    assert_eq!(store.key_column().unwrap().as_deref(), Some("id"));

    let skip = ImportOptions {
        on_bad_value: OnBadValue::Skip,
        ..Default::default()
    };
    let report = store
        .import_with(&file, None, "Customer ID", &skip)
        .unwrap();
    assert_eq!((report.rows, report.skipped_rows), (16, 2));
    assert_eq!(store.row_count().unwrap(), 16);
    assert_eq!(
        store
            .preview("\"Customer ID\" IN ('C008', 'C009')", 0)
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        store.preview("\"Lifetime value\" > 500", 0).unwrap().count,
        8
    );

    // A column kept as text on request; the formats can be given too.
    let text = ImportOptions {
        text_columns: vec!["Lifetime value".into()],
        delimiter: Some(b';'),
        decimal_comma: Some(true),
        date_format: Some(DateFormat::DayMonthYear),
        ..Default::default()
    };
    let report = store
        .import_with(&file, None, "Customer ID", &text)
        .unwrap();
    assert_eq!(report.bad_value_count, 1, "only the date");
    assert_eq!(report.columns[4].kind, ColumnType::Text);
    let dialect = report.dialect.unwrap();
    assert!(!dialect.delimiter_detected);
}

#[test]
fn every_bad_value_is_reported_up_to_a_cap_with_crlf_line_numbers() {
    let (dir, store) = store();
    let mut text = String::from("id,ltv,note\r\n");
    let mut line = 2;
    let mut bad_lines = Vec::new();
    for i in 0..1000 {
        if i % 5 == 0 {
            // A quoted note over two lines: the next record starts a line later.
            text.push_str(&format!("K{i},{i}.5,\"two\r\nlines\"\r\n"));
            line += 2;
        } else if i % 7 == 3 {
            text.push_str(&format!("K{i},n/a,x\r\n"));
            bad_lines.push(line);
            line += 1;
        } else {
            text.push_str(&format!("K{i},{i},x\r\n"));
            line += 1;
        }
    }
    let file = write(&dir, "many.csv", &text);
    let report = store.import(&file, None, "id").unwrap();
    assert_eq!(report.columns[1].kind, ColumnType::Real);
    assert_eq!(report.bad_value_count, bad_lines.len() as u64);
    assert!(bad_lines.len() > 100);
    let listed: Vec<u64> = report.bad_values.iter().map(|b| b.line).collect();
    assert_eq!(listed, bad_lines[..100]);
    let refuse = ImportOptions {
        on_bad_value: OnBadValue::Refuse,
        ..Default::default()
    };
    let err = store
        .import_with(&file, None, "id", &refuse)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: {} values do not fit",
            file.display(),
            bad_lines.len()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("\n  line {}: column \"ltv\": \"n/a\" is not a number (with a decimal point, as 1,234.50)", bad_lines[0])), "{err}");
    assert!(
        err.ends_with(&format!("\n  … and {} more", bad_lines.len() - 100)),
        "{err}"
    );
    assert_eq!(err.lines().count(), 102);
}

#[test]
fn every_wrong_row_is_reported_at_once_with_its_line() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "rows.csv",
        "id;email;ltv\r\nA;a@x.ro;1\r\nB;b@x.ro\r\n;c@x.ro;3\r\nD;\"d\r\n\";4\r\nE;e@x.ro;5;6\r\n",
    );
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{f}: 3 rows cannot be imported, so nothing was:\n  \
             {f}:3: expected 3 fields, found 2\n  \
             {f}:4: column \"id\": empty key\n  \
             {f}:7: expected 3 fields, found 4",
            f = file.display()
        )
    );
    let dupes = write(
        &dir,
        "dupes.csv",
        "id,n\r\nA,1\r\nB,2\r\nA,3\r\nB,4\r\nC,5\r\n",
    );
    assert_eq!(
        import_error(&store, &dupes, "id"),
        format!(
            "{f}: 2 rows cannot be imported, so nothing was:\n  \
             {f}:4: column \"id\": duplicate key \"A\" (first on line 2)\n  \
             {f}:5: column \"id\": duplicate key \"B\" (first on line 3)",
            f = dupes.display()
        )
    );
    assert_eq!(store.row_count().unwrap(), 0, "nothing was imported");
}

#[test]
fn us_formats_are_detected_and_formats_can_be_given() {
    let (dir, store) = store();
    let us = write(
        &dir,
        "us.csv",
        "id,ltv,joined\nA,\"1,234.50\",12/31/2024\nB,69.34,01/02/2024 08:00\nC,\"2,000\",\n",
    );
    let report = store.import(&us, None, "id").unwrap();
    let dialect = report.dialect.unwrap();
    assert_eq!(
        (
            dialect.delimiter.as_str(),
            dialect.decimal_comma,
            dialect.date_format
        ),
        (",", false, DateFormat::MonthDayYear)
    );
    assert_eq!(report.bad_value_count, 0);
    let rows = all_rows(&store, &["ltv", "joined"]);
    assert_eq!(rows[0].1, [json!(1234.5), json!("2024-12-31")]);
    assert_eq!(rows[1].1, [json!(69.34), json!("2024-01-02 08:00:00")]);
    assert_eq!(rows[2].1, [json!(2000.0), Value::Null]);

    // Decimal commas in a comma-delimited file (quoted), detected.
    let eu = write(
        &dir,
        "eu.csv",
        "id,ltv\nA,\"69,34\"\nB,\"1.234,5\"\nC,600\n",
    );
    store.import(&eu, None, "id").unwrap();
    assert_eq!(keys_of(&store, "ltv > 500"), ["B", "C"]);

    // Dates that could be read either way: read as the delimiter suggests, with a note;
    // or as given.
    let ambiguous = write(&dir, "amb.csv", "id,joined\nA,05/04/2024\nB,01/02/2024\n");
    let report = store.import(&ambiguous, None, "id").unwrap();
    assert_eq!(
        report.dialect.unwrap().date_format,
        DateFormat::MonthDayYear
    );
    assert!(
        report.notes[0].starts_with("dates such as 05/04/2024 could be day first or month first"),
        "{:?}",
        report.notes
    );
    assert_eq!(all_rows(&store, &["joined"])[0].1, [json!("2024-05-04")]);
    let given = ImportOptions {
        date_format: Some(DateFormat::DayMonthYear),
        ..Default::default()
    };
    let report = store.import_with(&ambiguous, None, "id", &given).unwrap();
    assert!(report.notes.is_empty());
    assert_eq!(all_rows(&store, &["joined"])[0].1, [json!("2024-04-05")]);
    // 1.234 is a thousand and more with a decimal comma, about one with a decimal point.
    let dots = write(&dir, "dots.csv", "id,n\nA,1.234\nB,2.5\nC,7\n");
    let comma = ImportOptions {
        decimal_comma: Some(true),
        ..Default::default()
    };
    let report = store.import_with(&dots, None, "id", &comma).unwrap();
    assert_eq!(
        report.bad_value_count, 1,
        "2.5 is no number with a decimal comma"
    );
    assert_eq!(all_rows(&store, &["n"])[0].1, [json!(1234)]);
    store.import(&dots, None, "id").unwrap();
    assert_eq!(all_rows(&store, &["n"])[0].1, [json!(1.234)]);
}

#[test]
fn csv_empty_and_header_only() {
    let (dir, store) = store();
    let empty = write(&dir, "empty.csv", "");
    assert_eq!(
        import_error(&store, &empty, "id"),
        format!("{}: the file is empty", empty.display())
    );
    let bom_only = write(&dir, "bom.csv", "\u{FEFF}");
    assert_eq!(
        import_error(&store, &bom_only, "id"),
        format!("{}: the file is empty", bom_only.display())
    );
    let header = write(&dir, "header.csv", "id,email\n");
    assert_eq!(
        import_error(&store, &header, "id"),
        format!(
            "{}: no profiles: the file has a header but no rows",
            header.display()
        )
    );
}

#[test]
fn csv_bom_is_stripped() {
    let (dir, store) = store();
    let file = write(&dir, "bom.csv", b"\xEF\xBB\xBFid,email\nC1,a@x.ro\n");
    store.import(&file, None, "id").unwrap();
    assert_eq!(columns(&store)[0].0, "id");
}

#[test]
fn csv_invalid_utf8_names_the_line_and_column() {
    let (dir, store) = store();
    // "José" in Latin-1.
    let file = write(&dir, "latin1.csv", b"id,name\nC1,Ana\nC2,Jos\xE9\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:3: column \"name\": invalid UTF-8 (byte 0xE9 at offset 3 of the value); the file must be UTF-8",
            file.display()
        )
    );
    let file = write(&dir, "header.csv", b"id,n\xE4me\nC1,x\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:1: column 2 of the header: invalid UTF-8 (byte 0xE4 at offset 1 of the value); the file must be UTF-8",
            file.display()
        )
    );
}

#[test]
fn csv_empty_key() {
    let (dir, store) = store();
    let file = write(&dir, "customers.csv", "id,email\nC1,a@x.ro\n,b@x.ro\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!("{}:3: column \"id\": empty key", file.display())
    );
}

#[test]
fn csv_bad_header_names() {
    let (dir, store) = store();
    let file = write(&dir, "dup.csv", "id,email,email\n1,2,3\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:1: duplicate column name \"email\" (columns 2 and 3)",
            file.display()
        )
    );
    let file = write(&dir, "case.csv", "id,Email,email\n1,2,3\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:1: column names \"Email\" and \"email\" differ only in case (columns 2 and 3); column names are case-insensitive",
            file.display()
        )
    );
    let file = write(&dir, "noname.csv", "id,,x\n1,2,3\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!("{}:1: column 2 has no name", file.display())
    );
    let file = write(&dir, "ctl.csv", "id,na\u{7}me\n1,2\n");
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:1: column 2 name \"na\\u{{7}}me\" contains a control character",
            file.display()
        )
    );
}

#[test]
fn csv_unbalanced_quote() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "quotes.csv",
        "id,name,city\nC1,Ana,Cluj\nC2,\"Ion,Iasi\nC3,Zoe,Arad\nC4,Dan,Brasov\n",
    );
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:3: column \"name\": unbalanced quote: the quoted field that starts on this line is never closed (it would run to the end of the file, line 5)",
            file.display()
        )
    );
    // A quote closed further down: the record spans lines and has the wrong number of fields.
    let file = write(
        &dir,
        "late-quote.csv",
        "id,name,city\nC1,Ana,Cluj\nC2,\"Ion,Iasi\nC3,Zoe\",Arad,X\nC4,Dan,Brasov\n",
    );
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:3: expected 3 fields, found 4 (the record runs from line 3 to line 4: an unbalanced quote?)",
            file.display()
        )
    );
    // The last record's quote left open, with as many fields as the header: refused, not
    // imported with the rest of the file in one field.
    let file = write(
        &dir,
        "eof-quote.csv",
        "id,name,city\nC1,Ana,Cluj\nC2,Ion,\"Iasi\nC3,Zoe,Arad\n",
    );
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:3: column \"city\": unbalanced quote: the quoted field that starts on this line is never closed (it would run to the end of the file, line 4)",
            file.display()
        )
    );
}

#[test]
fn csv_line_numbers_count_multiline_records() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "multi.csv",
        "id,notes\nC1,\"one\ntwo\nthree\"\nC2,x\nC1,y\n",
    );
    assert_eq!(
        import_error(&store, &file, "id"),
        format!(
            "{}:6: column \"id\": duplicate key \"C1\" (first on line 2)",
            file.display()
        )
    );
}

#[test]
fn csv_ten_megabyte_field() {
    let (dir, store) = store();
    let big = "x".repeat(10 * 1024 * 1024);
    let file = write(
        &dir,
        "big.csv",
        format!("id,blob\nC1,\"{big}\"\nC2,small\n"),
    );
    let report = store.import(&file, None, "id").unwrap();
    assert_eq!(report.rows, 2);
    let rows = all_rows(&store, &["blob"]);
    assert_eq!(rows[0].1[0].as_str().map(str::len), Some(big.len()));
    assert_eq!(store.preview("length(blob) > 1000000", 0).unwrap().count, 1);
}

#[test]
fn csv_record_longer_than_64_mib_is_refused_without_reading_the_rest() {
    let (dir, store) = store();
    let path = dir.path().join("runaway.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"id,name\nC1,Ana\nC2,\"Ion\n").unwrap();
        let line = "C3,Zoe\n".repeat(1024 * 1024);
        for _ in 0..10 {
            f.write_all(line.as_bytes()).unwrap(); // 70 MiB swallowed by the open quote
        }
    }
    assert_eq!(
        import_error(&store, &path, "id"),
        format!(
            "{}:3: a record longer than 64 MiB starts here (an unbalanced quote?)",
            path.display()
        )
    );
}

#[test]
fn ndjson_invalid_json() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "people.ndjson",
        "{\"customer_id\": \"C1\"}\n{\"customer_id\": \"C2\"}\n\n{\"customer_id\": \"C3\", \"email\": }\n",
    );
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}:4: invalid JSON: expected value at column 32",
            file.display()
        )
    );
    let file = write(
        &dir,
        "two.ndjson",
        "{\"customer_id\": \"C1\"} {\"customer_id\": \"C2\"}\n",
    );
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}:1: invalid JSON: trailing characters at column 23",
            file.display()
        )
    );
}

#[test]
fn ndjson_not_an_object() {
    let (dir, store) = store();
    let file = write(&dir, "people.ndjson", "{\"customer_id\": \"C1\"}\n[1, 2]\n");
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}:2: expected a JSON object, found an array",
            file.display()
        )
    );
}

#[test]
fn ndjson_invalid_utf8() {
    let (dir, store) = store();
    let file = write(
        &dir,
        "people.ndjson",
        b"{\"customer_id\": \"C1\"}\n{\"customer_id\": \"C\xE92\"}\n",
    );
    assert_eq!(
        import_error(&store, &file, "customer_id"),
        format!(
            "{}:2: invalid UTF-8 (byte 0xE9 at offset 18 of the line); the file must be UTF-8",
            file.display()
        )
    );
}

#[test]
fn ndjson_key_problems() {
    let (dir, store) = store();
    let dup = write(
        &dir,
        "dup.ndjson",
        "{\"id\": \"A\"}\n{\"id\": \"B\"}\n{\"id\": \"A\"}\n",
    );
    assert_eq!(
        import_error(&store, &dup, "id"),
        format!(
            "{}:3: column \"id\": duplicate key \"A\" (first on line 1)",
            dup.display()
        )
    );
    let missing = write(
        &dir,
        "missing.ndjson",
        "{\"id\": \"A\"}\n{\"email\": \"b@x.ro\"}\n",
    );
    assert_eq!(
        import_error(&store, &missing, "id"),
        format!("{}:2: column \"id\": missing key", missing.display())
    );
    let empty = write(
        &dir,
        "empty-key.ndjson",
        "{\"id\": \"A\"}\n{\"id\": \"\"}\n",
    );
    assert_eq!(
        import_error(&store, &empty, "id"),
        format!("{}:2: column \"id\": empty key", empty.display())
    );
    let object = write(&dir, "object-key.ndjson", "{\"id\": {\"a\": 1}}\n");
    assert_eq!(
        import_error(&store, &object, "id"),
        format!(
            "{}:1: column \"id\": the key must be a string or a number, found an object",
            object.display()
        )
    );
    let none = write(&dir, "none.ndjson", "{\"a\": 1}\n{\"b\": 2}\n");
    assert_eq!(
        import_error(&store, &none, "id"),
        format!("{}: no column \"id\" (columns: a, b)", none.display())
    );
    let blank = write(&dir, "blank.ndjson", "\n  \n");
    assert_eq!(
        import_error(&store, &blank, "id"),
        format!("{}: the file is empty (no JSON objects)", blank.display())
    );
    let case = write(
        &dir,
        "case.ndjson",
        "{\"id\": \"A\", \"Email\": 1}\n{\"id\": \"B\", \"email\": 2}\n",
    );
    assert_eq!(
        import_error(&store, &case, "id"),
        format!(
            "{}:2: key \"email\" differs only in case from \"Email\" (first on line 1); column names are case-insensitive",
            case.display()
        )
    );
}

#[test]
fn parquet_bad_files() {
    let (dir, store) = store();
    let junk = write(
        &dir,
        "junk.parquet",
        "this is not parquet at all, just text",
    );
    let message = import_error(&store, &junk, "customer_id");
    assert!(
        message.starts_with(&format!(
            "{}: not a readable Parquet file: ",
            junk.display()
        )),
        "{message}"
    );
    let empty = write(&dir, "empty.parquet", "");
    let message = import_error(&store, &empty, "customer_id");
    assert!(
        message.starts_with(&format!(
            "{}: not a readable Parquet file: ",
            empty.display()
        )),
        "{message}"
    );

    let dup = dir.path().join("dup.parquet");
    write_parquet(
        &dup,
        &[
            (Some("A"), None, None, None, None, None, &[]),
            (Some("B"), None, None, None, None, None, &[]),
            (Some("A"), None, None, None, None, None, &[]),
        ],
    );
    assert_eq!(
        import_error(&store, &dup, "customer_id"),
        format!(
            "{}: row 3: column \"customer_id\": duplicate key \"A\" (first in row 1)",
            dup.display()
        )
    );
    let null_key = dir.path().join("null.parquet");
    write_parquet(
        &null_key,
        &[
            (Some("A"), None, None, None, None, None, &[]),
            (None, Some(1), None, None, None, None, &[]),
        ],
    );
    assert_eq!(
        import_error(&store, &null_key, "customer_id"),
        format!(
            "{}: row 2: column \"customer_id\": empty key",
            null_key.display()
        )
    );
    assert_eq!(
        import_error(&store, &null_key, "id"),
        format!(
            "{}: no column \"id\" (columns: customer_id, orders, lifetime_value, vip, signup, last_seen, tags)",
            null_key.display()
        )
    );
    let no_rows = dir.path().join("no-rows.parquet");
    write_parquet(&no_rows, &[]);
    assert_eq!(
        import_error(&store, &no_rows, "customer_id"),
        format!("{}: no profiles: the file has no rows", no_rows.display())
    );
}

#[test]
fn parquet_unsupported_type_is_refused_not_a_panic() {
    let (dir, store) = store();
    let path = dir.path().join("interval.parquet");
    let schema = Arc::new(
        parse_message_type(
            "message m { REQUIRED BYTE_ARRAY id (UTF8); OPTIONAL FIXED_LEN_BYTE_ARRAY (12) wait (INTERVAL); }",
        )
        .unwrap(),
    );
    let file = std::fs::File::create(&path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        if index == 0 {
            column
                .typed::<ByteArrayType>()
                .write_batch(&[ByteArray::from("A")], None, None)
                .unwrap();
        } else {
            column
                .typed::<parquet::data_type::FixedLenByteArrayType>()
                .write_batch(&[], Some(&[0]), None)
                .unwrap();
        }
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
    assert_eq!(
        import_error(&store, &path, "id"),
        format!(
            "{}: column \"wait\": unsupported Parquet type FIXED_LEN_BYTE_ARRAY (INTERVAL)",
            path.display()
        )
    );
}

#[test]
fn unreadable_file() {
    let (dir, store) = store();
    let missing = dir.path().join("nope.csv");
    let message = import_error(&store, &missing, "id");
    assert!(
        message.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{message}"
    );
}
