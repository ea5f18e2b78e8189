//! Arbitrary bytes as input files and arbitrary text as predicates: always a result (success or
//! a clear error), never a panic, and a refused import never changes the stored profiles.

use proptest::prelude::*;
use segsync::profiles::{Format, ProfileStore};
use std::convert::Infallible;

fn fresh() -> (tempfile::TempDir, ProfileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("profiles.sqlite")).unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "id,n\nA,1\nB,2\n").unwrap();
    store.import(&good, None, "id").unwrap();
    (dir, store)
}

fn keys(store: &ProfileStore) -> Vec<String> {
    let mut keys = Vec::new();
    store
        .select(&[], &["1".to_string()], |row| -> Result<(), Infallible> {
            keys.push(row.key);
            Ok(())
        })
        .unwrap();
    keys
}

fn input_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"id".to_vec()),
        Just(b",".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\"id\":".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"PAR1".to_vec()),
        Just(b"true".to_vec()),
        Just(b"12".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_file_gives_a_result_and_failures_change_nothing(bytes in input_bytes(), format in 0usize..3) {
        let (dir, store) = fresh();
        let format = [Format::Csv, Format::Ndjson, Format::Parquet][format];
        let file = dir.path().join("input");
        std::fs::write(&file, &bytes).unwrap();
        match store.import(&file, Some(format), "id") {
            Ok(report) => prop_assert_eq!(report.rows, store.row_count().unwrap()),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert_eq!(keys(&store), vec!["A".to_string(), "B".to_string()]);
            }
        }
    }

    #[test]
    fn any_predicate_gives_a_result(predicate in "[ -~]{0,40}") {
        let (_dir, store) = fresh();
        let _ = store.check_predicate(&predicate);
        let _ = store.preview(&predicate, 1);
        prop_assert_eq!(store.row_count().unwrap(), 2);
    }
}
