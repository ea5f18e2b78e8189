//! What each import changed, so that a re-run evaluates only those profiles.
//!
//! Every import is a generation (1, 2, ...). The store keeps, per profile key, a hash of its
//! row, where the row is in the profiles table, and the generation in which its content last
//! changed; and, per removed key, the generation that removed it. An import that changes the
//! columns (names, types, key column) changes every profile: its generation is recorded as
//! the schema's. All of it is written in the import's own transaction.

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::load::{Cell, Schema};
use super::{table_columns, META_TABLE, PROFILES_TABLE};

/// Per profile key: `rid` (rowid in the profiles table), `hash` of the row, `gen` (the
/// generation in which its content last changed), `pos` (where the import read it).
pub(crate) const KEYS_TABLE: &str = "segsync_profile_keys";
/// Keys an import removed, with the generation that removed them.
pub(crate) const REMOVED_TABLE: &str = "segsync_profile_removed";
/// Per generation, the keys it added or changed (removed keys are in [`REMOVED_TABLE`]), for
/// the generations from the meta entry [`CHANGES_FROM`] on: what changed after a recent
/// generation is read from these alone, not from every key's row. A generation that changed
/// the columns changed every key: it records none, and the record begins again after it.
pub(crate) const CHANGED_TABLE: &str = "segsync_profile_changed";
/// Meta entries: the last import's generation, and the generation of the last column change.
const GENERATION: &str = "generation";
const SCHEMA_GENERATION: &str = "schema_generation";
/// Meta entry: the first generation [`CHANGED_TABLE`] holds.
const CHANGES_FROM: &str = "changes_recorded_from";
/// Generations [`CHANGED_TABLE`] keeps (a run that goes on from an older one reads every
/// key's row instead).
const KEPT_GENERATIONS: u64 = 64;

/// What changed in the profiles since a generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    /// The last import's generation (0: no import recorded its changes yet).
    pub generation: u64,
    /// The generation of the last import that changed the columns.
    pub schema_generation: u64,
    /// Keys of profiles new, changed or removed after the generation asked about.
    pub keys: Vec<String>,
}

/// A 64-bit hash of a row's values (types and contents), the same in every process.
pub(crate) fn row_hash(cells: &[Cell<'_>]) -> i64 {
    let mut h = Fnv::default();
    for cell in cells {
        match cell {
            Cell::Null => h.write(&[0]),
            Cell::Int(i) => {
                h.write(&[1]);
                h.write(&i.to_le_bytes());
            }
            Cell::Real(f) => {
                h.write(&[2]);
                h.write(&f.to_bits().to_le_bytes());
            }
            Cell::Text(t) => {
                h.write(&[3]);
                h.write(&(t.len() as u64).to_le_bytes());
                h.write(t.as_bytes());
            }
        }
    }
    h.0 as i64
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn meta_u64(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    let v: Option<String> = conn
        .query_row(
            &format!("SELECT value FROM main.{META_TABLE} WHERE name = ?1"),
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn set_meta(tx: &Transaction<'_>, name: &str, value: u64) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO main.{META_TABLE} (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ),
        (name, value.to_string()),
    )?;
    Ok(())
}

/// Starts an import's record of changes: its generation (returned), and the schema's when
/// the columns differ from the previous import's.
pub(crate) fn begin(
    tx: &Transaction<'_>,
    schema: &Schema,
    key_column: &str,
) -> rusqlite::Result<i64> {
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS main.{KEYS_TABLE} (key TEXT PRIMARY KEY, pos INTEGER NOT NULL, rid INTEGER NOT NULL, hash INTEGER NOT NULL, gen INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS main.{REMOVED_TABLE} (key TEXT PRIMARY KEY, gen INTEGER NOT NULL) WITHOUT ROWID;"
    ))?;
    let generation = meta_u64(tx, GENERATION)? + 1;
    let old_key: Option<String> = tx
        .query_row(
            &format!("SELECT value FROM main.{META_TABLE} WHERE name = 'key_column'"),
            [],
            |r| r.get(0),
        )
        .optional()?;
    let old_columns =
        table_columns(tx, std::path::Path::new("")).map_err(|_| rusqlite::Error::InvalidQuery)?;
    if old_key.as_deref() != Some(key_column) || old_columns != schema.columns {
        set_meta(tx, SCHEMA_GENERATION, generation)?;
    }
    set_meta(tx, GENERATION, generation)?;
    Ok(generation as i64)
}

/// Ends an import's record of changes: the keys it no longer has are tombstoned, and its
/// keys (`new_keys`) replace the previous import's.
pub(crate) fn finish(
    tx: &Transaction<'_>,
    new_keys: &str,
    generation: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO main.{REMOVED_TABLE} (key, gen)
             SELECT o.key, ?1 FROM main.{KEYS_TABLE} o
             WHERE NOT EXISTS (SELECT 1 FROM main.{new_keys} n WHERE n.key = o.key)
             ON CONFLICT (key) DO UPDATE SET gen = excluded.gen"
        ),
        [generation],
    )?;
    record_changed(tx, new_keys, generation as u64)?;
    tx.execute_batch(&format!(
        "DROP TABLE main.{KEYS_TABLE};
         ALTER TABLE main.{new_keys} RENAME TO {KEYS_TABLE};"
    ))
}

/// Records the keys `generation` added or changed (their row in `new_keys` says so), and
/// forgets the generations older than [`KEPT_GENERATIONS`].
fn record_changed(tx: &Transaction<'_>, new_keys: &str, generation: u64) -> rusqlite::Result<()> {
    if meta_u64(tx, SCHEMA_GENERATION)? == generation {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS main.{CHANGED_TABLE};"))?;
        return set_meta(tx, CHANGES_FROM, generation + 1);
    }
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS main.{CHANGED_TABLE} (gen INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (gen, key)) WITHOUT ROWID;"
    ))?;
    tx.execute(
        &format!(
            "INSERT INTO main.{CHANGED_TABLE} (gen, key) SELECT gen, key FROM main.{new_keys} WHERE gen = ?1"
        ),
        [generation as i64],
    )?;
    let oldest_kept = generation.saturating_sub(KEPT_GENERATIONS - 1).max(1);
    tx.execute(
        &format!("DELETE FROM main.{CHANGED_TABLE} WHERE gen < ?1"),
        [oldest_kept as i64],
    )?;
    // A store imported before generations were recorded begins its record here.
    let from = match meta_u64(tx, CHANGES_FROM)? {
        0 => generation,
        from => from.max(oldest_kept),
    };
    set_meta(tx, CHANGES_FROM, from)
}

/// Whether [`CHANGED_TABLE`] holds every generation after `since`.
fn recorded_after(conn: &Connection, since: u64) -> rusqlite::Result<bool> {
    let from = meta_u64(conn, CHANGES_FROM)?;
    if from == 0 || since + 1 < from {
        return Ok(false);
    }
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE name = ?1)",
        [CHANGED_TABLE],
        |r| r.get(0),
    )
}

/// What changed after generation `since` (`None`: only the current generations).
pub(crate) fn since(conn: &Connection, since: Option<u64>) -> rusqlite::Result<ProfileChanges> {
    let has_keys: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE name = ?1)",
        [KEYS_TABLE],
        |r| r.get(0),
    )?;
    let has_profiles: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE name = ?1)",
        [PROFILES_TABLE],
        |r| r.get(0),
    )?;
    if !has_keys || !has_profiles {
        return Ok(ProfileChanges::default());
    }
    let mut out = ProfileChanges {
        generation: meta_u64(conn, GENERATION)?,
        schema_generation: meta_u64(conn, SCHEMA_GENERATION)?,
        keys: Vec::new(),
    };
    let Some(since) = since else {
        return Ok(out);
    };
    for table in [changed_table(conn, since)?, REMOVED_TABLE] {
        let mut st = conn.prepare(&format!("SELECT key FROM main.{table} WHERE gen > ?1"))?;
        let keys = st.query_map([since as i64], |r| r.get::<_, String>(0))?;
        for k in keys {
            out.keys.push(k?);
        }
    }
    out.keys.sort_unstable();
    out.keys.dedup();
    Ok(out)
}

/// Where the keys changed after `since` are: the record of each generation when it holds
/// them all (an index range), else every key's row.
fn changed_table(conn: &Connection, since: u64) -> rusqlite::Result<&'static str> {
    Ok(if recorded_after(conn, since)? {
        CHANGED_TABLE
    } else {
        KEYS_TABLE
    })
}

/// Whether any profile is new, changed or removed after generation `since` (the columns
/// changed, every one), found without listing them.
pub(crate) fn any_since(conn: &Connection, since: u64) -> rusqlite::Result<bool> {
    let now = self::since(conn, None)?;
    if now.generation <= since {
        return Ok(false);
    }
    if now.schema_generation > since {
        return Ok(true);
    }
    for table in [changed_table(conn, since)?, REMOVED_TABLE] {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM main.{table} WHERE gen > ?1)");
        if conn.query_row(&sql, [since as i64], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How many profiles the last import read (0 before the first).
pub(crate) fn profile_count(conn: &Connection) -> rusqlite::Result<u64> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE name = ?1)",
        [META_TABLE],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    meta_u64(conn, "rows")
}

/// The rowids of the profiles keyed `keys` (those that exist), in order.
pub(crate) fn rowids(conn: &Connection, keys: &[String]) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn.prepare(&format!("SELECT rid FROM main.{KEYS_TABLE} WHERE key = ?1"))?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(rid) = st.query_row([k], |r| r.get::<_, i64>(0)).optional()? {
            out.push(rid);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The generation of the profiles `conn` sees.
pub(crate) fn generation(conn: &Connection) -> rusqlite::Result<u64> {
    meta_u64(conn, GENERATION)
}

#[cfg(test)]
mod tests {
    use super::super::{ProfileStore, SelectError};

    fn import(store: &ProfileStore, dir: &std::path::Path, text: &str) {
        let file = dir.join("p.csv");
        std::fs::write(&file, text).unwrap();
        store.import(&file, None, "id").unwrap();
    }

    fn keys_read(store: &ProfileStore, keys: &[&str], generation: u64) -> Vec<String> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut out = Vec::new();
        store
            .select_keys(&["v".into()], &["1".into()], &keys, generation, |r| {
                out.push(r.key);
                Ok::<(), ()>(())
            })
            .unwrap();
        out
    }

    #[test]
    fn imports_record_what_changed_and_what_was_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::open(&dir.path().join("p.sqlite")).unwrap();
        assert_eq!(store.changes(None).unwrap().generation, 0);
        import(&store, dir.path(), "id,v\na,1\nb,2\nc,3\n");
        let first = store.changes(Some(0)).unwrap();
        assert_eq!((first.generation, first.schema_generation), (1, 1));
        assert_eq!(first.keys, ["a", "b", "c"]);
        // b changes, c goes, d comes; a is as it was.
        import(&store, dir.path(), "id,v\nd,4\na,1\nb,5\n");
        let second = store.changes(Some(1)).unwrap();
        assert_eq!((second.generation, second.schema_generation), (2, 1));
        assert_eq!(second.keys, ["b", "c", "d"]);
        assert_eq!(store.changed_count(1).unwrap(), (3, 3));
        assert_eq!(store.changed_count(2).unwrap(), (0, 3));
        assert!(store.changes(Some(2)).unwrap().keys.is_empty());
        // Read back by key, in the table's order; a key that is gone reads nothing.
        assert_eq!(keys_read(&store, &["b", "c", "d"], 2), ["d", "b"]);
        // A failed import (a duplicate key) changes nothing, the generation included.
        let file = dir.path().join("bad.csv");
        std::fs::write(&file, "id,v\na,1\na,2\n").unwrap();
        assert!(store.import(&file, None, "id").is_err());
        assert_eq!(store.changes(Some(2)).unwrap().generation, 2);
        // New columns change every profile.
        import(&store, dir.path(), "id,v,w\nd,4,x\na,1,y\nb,5,z\n");
        assert_eq!(store.changes(None).unwrap().schema_generation, 3);
        // Whether anything changed after a generation, without listing it: new columns
        // change every profile, the same rows again change nothing, a removal alone does.
        assert!(store.changed_after(2).unwrap());
        assert!(!store.changed_after(3).unwrap());
        import(&store, dir.path(), "id,v,w\nd,4,x\na,1,y\nb,5,z\n");
        assert_eq!(store.changes(None).unwrap().generation, 4);
        assert!(!store.changed_after(3).unwrap());
        import(&store, dir.path(), "id,v,w\nd,4,x\na,1,y\n");
        assert!(store.changed_after(4).unwrap());
        assert!(!store.changed_after(5).unwrap());
    }

    /// The rows of the record of each generation's changes (gen, key), in order.
    fn recorded(store: &ProfileStore) -> Vec<(u64, String)> {
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        let sql = format!(
            "SELECT gen, key FROM {} ORDER BY gen, key",
            super::CHANGED_TABLE
        );
        let Ok(mut st) = conn.prepare(&sql) else {
            return Vec::new();
        };
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows
    }

    #[test]
    fn what_changed_lately_is_read_from_each_generations_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::open(&dir.path().join("p.sqlite")).unwrap();
        import(&store, dir.path(), "id,v\na,1\nb,2\nc,3\n");
        assert_eq!(recorded(&store), [], "the first import changed every key");
        import(&store, dir.path(), "id,v\nd,4\na,1\nb,5\n");
        import(&store, dir.path(), "id,v\nd,4\na,1\nb,5\n");
        import(&store, dir.path(), "id,v\nd,4\na,6\nb,5\n");
        let rows = |r: &[(u64, &str)]| -> Vec<(u64, String)> {
            r.iter().map(|(g, k)| (*g, k.to_string())).collect()
        };
        assert_eq!(recorded(&store), rows(&[(2, "b"), (2, "d"), (4, "a")]));
        let keys = |since| store.changes(Some(since)).unwrap().keys;
        assert_eq!(keys(1), ["a", "b", "c", "d"]);
        assert_eq!(keys(2), ["a"]);
        assert_eq!(keys(3), ["a"]);
        assert!(keys(4).is_empty());
        // Past the generations kept, every key's row answers, the same.
        for i in 0..super::KEPT_GENERATIONS {
            import(&store, dir.path(), &format!("id,v\nd,4\na,{i}\nb,5\n"));
        }
        let now = store.changes(None).unwrap().generation;
        assert_eq!(now, 4 + super::KEPT_GENERATIONS);
        assert_eq!(
            recorded(&store).first().map(|r| r.0),
            Some(now - super::KEPT_GENERATIONS + 1)
        );
        assert_eq!(keys(2), ["a"]);
        assert_eq!(keys(1), ["a", "b", "c", "d"]);
        assert_eq!(keys(now - 1), ["a"]);
        // New columns change every key: the record begins again after them.
        import(&store, dir.path(), "id,v,w\nd,4,x\na,1,y\n");
        assert_eq!(recorded(&store), []);
        assert_eq!(keys(now), ["a", "b", "d"]);
        import(&store, dir.path(), "id,v,w\nd,4,x\na,2,y\n");
        assert_eq!(recorded(&store), rows(&[(now + 2, "a")]));
        assert_eq!(keys(now + 1), ["a"]);
        assert_eq!(keys(now), ["a", "b", "d"]);
    }

    #[test]
    fn a_read_by_key_refuses_another_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::open(&dir.path().join("p.sqlite")).unwrap();
        import(&store, dir.path(), "id,v\na,1\n");
        let keys = vec!["a".to_string()];
        let r = store.select_keys(&["v".into()], &["1".into()], &keys, 7, |_| Ok::<(), ()>(()));
        assert!(
            matches!(&r, Err(SelectError::Failed(m)) if m.contains("imported again")),
            "{r:?}"
        );
    }
}
