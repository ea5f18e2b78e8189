//! Entry points for the fuzz targets in `fuzz/` (and the replay of their findings in
//! `tests/hostile_input.rs`): the file readers and predicate validation fed raw bytes, with
//! the promises of the store checked after each call. Not for anything else.

use super::{changes, csv_input, ndjson_input, parquet_input, META_TABLE, PROFILES_TABLE};
use super::{load, Format, ImportError, Limits, PredicateError, ProfileStore};
use rusqlite::Connection;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The key column of fuzzed imports (as in the files of `tests/corpus/`, the fuzzers' seeds).
pub const FUZZ_KEY: &str = "customer_id";

/// Imports `bytes` as a file of `format`, keyed by column [`FUZZ_KEY`], into a fresh in-memory store;
/// the number of profiles stored, or why the file was refused.
///
/// Panics if the import broke a promise: a refused file left a table behind, or the stored
/// rows are not the number reported; a panic of a reader that the import does not catch
/// (the Parquet import catches the parquet crate's, and reports the file as damaged) is a
/// finding too.
pub fn fuzz_import(bytes: &[u8], format: Format) -> Result<u64, ImportError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "segsync-fuzz-{}-{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        format.as_str()
    ));
    std::fs::write(&file, bytes).expect("the temporary folder is writable");
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    conn.execute_batch(&format!(
        "CREATE TABLE {META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    ))
    .expect("the meta table");
    let store = PathBuf::from(":memory:");
    let result = match format {
        Format::Csv => csv_input::import(&mut conn, &store, &file, FUZZ_KEY, &Default::default())
            .map(|i| (i.rows, i.columns)),
        Format::Ndjson => ndjson_input::import(&mut conn, &store, &file, FUZZ_KEY),
        Format::Parquet => parquet_input::import(&mut conn, &store, &file, FUZZ_KEY),
    };
    let _ = std::fs::remove_file(&file);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> ?1")
        .and_then(|mut s| {
            s.query_map([META_TABLE], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .expect("the schema reads");
    match &result {
        Ok((rows, columns)) => {
            // The profiles, and the record of what the import changed (`changes`).
            let mut tables = tables.clone();
            tables.sort();
            let mut want = [changes::KEYS_TABLE, PROFILES_TABLE, changes::REMOVED_TABLE];
            want.sort();
            assert_eq!(tables, want, "tables after an import");
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {PROFILES_TABLE}"), [], |r| {
                    r.get(0)
                })
                .expect("the profiles count");
            assert_eq!(n as u64, *rows, "rows stored and rows reported");
            assert!(*rows > 0, "an import stores at least one profile");
            let key = columns.iter().find(|c| c.name == FUZZ_KEY);
            assert_eq!(key.map(|c| c.kind), Some(load::KEY_TYPE), "the key column");
        }
        Err(e) => {
            assert!(tables.is_empty(), "a refused import left {tables:?} ({e})");
            assert!(!e.to_string().is_empty(), "an error says something");
        }
    }
    result.map(|(rows, _)| rows)
}

/// Checks `bytes` (as UTF-8, lossily) as a segment predicate over a small store of three
/// profiles, the way `segsync segments add` does: check, then count and sample (within
/// 200 ms), then one `select` pass.
///
/// Panics if the check accepted a predicate that counting or selecting then refused as
/// invalid or not allowed (the check and the queries disagree), or if a profile changed.
pub fn fuzz_predicate(bytes: &[u8]) -> Result<(), PredicateError> {
    // One store per process, in the temporary folder (left there for the system to clean).
    static STORE: OnceLock<ProfileStore> = OnceLock::new();
    let store = STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("segsync-fuzz-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let store = ProfileStore::open(&dir.join("profiles.sqlite"))
            .expect("a profile store")
            .with_limits(Limits {
                check_timeout: Duration::from_millis(200),
                select_timeout: Duration::from_millis(200),
            });
        let csv = dir.join("profiles.csv");
        std::fs::write(
            &csv,
            "customer_id,email,name,ltv,joined,vip,tags\n\
             C1,ana.popescu@gmail.com,Ana,120.5,2024-01-05,true,\"[\"\"a\"\"]\"\n\
             C2,ion.ionescu@yahoo.ro,Ion,900,2023-11-20,false,\n\
             C3,zoe.muller@web.de,Zoë,,,true,\"{\"\"k\"\":1}\"\n",
        )
        .expect("the profiles file");
        store
            .import(&csv, None, FUZZ_KEY)
            .expect("the fuzz profiles import");
        store
    });
    let predicate = String::from_utf8_lossy(bytes);
    store.check_predicate(&predicate)?;
    let agrees = |e: &PredicateError| {
        !matches!(
            e,
            PredicateError::Invalid(_)
                | PredicateError::NotAllowed(_)
                | PredicateError::Empty
                | PredicateError::MultipleStatements
                | PredicateError::Unbalanced(_)
                | PredicateError::Unterminated(_)
        )
    };
    if let Err(e) = store.preview(&predicate, 2) {
        assert!(
            agrees(&e),
            "checked {predicate:?}, then preview refused it: {e}"
        );
    }
    let selected = store.select(
        &[],
        &[predicate.to_string()],
        |_| -> Result<(), Infallible> { Ok(()) },
    );
    if let Err(super::SelectError::Predicate { source, .. }) = &selected {
        assert!(
            agrees(source),
            "checked {predicate:?}, then select refused it: {source}"
        );
    }
    assert_eq!(store.row_count().expect("the profiles count"), 3);
    Ok(())
}
