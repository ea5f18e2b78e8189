//! A run's working set on disk, so that memory stays flat however many profiles there are:
//! the desired members (one row per address, duplicates merged in the order of their
//! profiles' positions) and the plan the diff produced, in temporary tables of a SQLite
//! connection: the state store's own when the backend is SQLite, else a private scratch
//! database of the [`StateStore`]. SQLite keeps them in a temporary file with a bounded page
//! cache and drops them when the connection closes; a crash loses nothing, because the next
//! run recomputes them. A full pass streams its rows through an unsorted table that SQLite
//! sorts at the end; a re-run's few rows are sorted in memory and go straight to the keyed
//! table.
//!
//! The diff is a merge-join of the desired members and the snapshot, both read in key
//! order; the executor then pages through the plan 500 members at a time. On the SQLite
//! backend it reads `main.snapshot` in place; otherwise the export's snapshot is first
//! streamed, in key order and in batches, from the backend into the scratch database's own
//! `snapshot` table, and the same join runs there.
//!
//! The temporary tables keep no rollback journal: they are rebuilt from scratch by every run,
//! so a failed statement has nothing to roll back that matters, and the journal's page copies
//! were a tenth of the profile pass's time.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};
use segsync_core::{
    profile_keys, Holder, MemberKey, NewAddress, SnapshotEntry, Status, TagSet, PROFILE_SEP,
};

use super::{Result, StateStore};

/// The scratch database's copy of the snapshot being diffed: the same table as the SQLite
/// backend's, so that the same join reads it.
const SCRATCH_SCHEMA: &str = r#"
PRAGMA temp_store = FILE;
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -8192;
CREATE TABLE snapshot (
    export TEXT NOT NULL,
    key BLOB NOT NULL,
    email TEXT NOT NULL,
    fingerprint INTEGER,
    tags INTEGER NOT NULL,
    status TEXT NOT NULL,
    owned INTEGER NOT NULL,
    profiles TEXT,
    PRIMARY KEY (export, key)
) WITHOUT ROWID;
"#;

/// A private temporary database on disk (SQLite's empty file name: deleted when closed) for
/// the working set of a backend that has no SQLite connection of its own.
pub(super) fn open_scratch() -> Result<Connection> {
    let conn = Connection::open("")?;
    conn.execute_batch(SCRATCH_SCHEMA)?;
    Ok(conn)
}

/// The run's temporary tables, emptied. Their page cache (and so the memory of SQLite's sort
/// of the stage) is 8 MB: the memory SQLite frees mostly stays with the process's allocator,
/// not given back to the system, so each MB given to the stage here is still held while the
/// run sends. At 32 MB the first export of 1M profiles peaked at 123 to 150 MB, at 8 MB at
/// 100 to 123 MB, with the same `plan` CPU time within the machine's noise (BENCHMARKS.md,
/// issue 17; both before transparent huge pages were turned off, see `main.rs`).
const TEMP_SCHEMA: &str = r#"
PRAGMA temp.cache_size = -8192;
PRAGMA temp.journal_mode = OFF;
CREATE TEMP TABLE IF NOT EXISTS staged_raw (
    key BLOB NOT NULL,
    position INTEGER NOT NULL,
    email TEXT NOT NULL,
    merge TEXT NOT NULL,
    fp INTEGER NOT NULL,
    tags INTEGER NOT NULL,
    updated_at TEXT,
    profile_key TEXT NOT NULL
);
CREATE TEMP TABLE IF NOT EXISTS staged (
    key BLOB PRIMARY KEY,
    email TEXT NOT NULL,
    merge TEXT NOT NULL,
    fp INTEGER NOT NULL,
    tags INTEGER NOT NULL,
    updated_at TEXT,
    profile_key TEXT NOT NULL,
    profiles TEXT NOT NULL
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS plan_upsert (
    phase INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key BLOB NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    fp INTEGER,
    tags INTEGER NOT NULL,
    PRIMARY KEY (phase, seq)
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS plan_tag (
    bit INTEGER NOT NULL,
    adding INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key BLOB NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (bit, adding, seq)
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS plan_archive (
    seq INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    email TEXT NOT NULL
);
CREATE TEMP TABLE IF NOT EXISTS profile_refresh (
    key BLOB PRIMARY KEY,
    profiles TEXT NOT NULL
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS plan_move (
    seq INTEGER PRIMARY KEY,
    from_key BLOB NOT NULL,
    from_email TEXT NOT NULL,
    key BLOB NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    fp INTEGER NOT NULL
);
CREATE TEMP TABLE IF NOT EXISTS touched (
    key BLOB PRIMARY KEY
) WITHOUT ROWID;
DELETE FROM temp.touched;
DELETE FROM temp.staged_raw;
DELETE FROM temp.staged;
DELETE FROM temp.plan_upsert;
DELETE FROM temp.plan_tag;
DELETE FROM temp.plan_archive;
DELETE FROM temp.plan_move;
DELETE FROM temp.profile_refresh;
"#;

/// How a row joins the keyed stage when its address is there already: tags united; the
/// most recently updated profile gives the attributes (without a time, the one there keeps
/// them); the profiles' keys listed in the order they came.
const MERGE_DUPLICATES: &str = "ON CONFLICT (key) DO UPDATE SET
   tags = staged.tags | excluded.tags,
   profiles = staged.profiles || char(31) || excluded.profiles,
   merge = CASE WHEN excluded.updated_at IS NOT NULL AND (staged.updated_at IS NULL OR excluded.updated_at > staged.updated_at) THEN excluded.merge ELSE staged.merge END,
   fp = CASE WHEN excluded.updated_at IS NOT NULL AND (staged.updated_at IS NULL OR excluded.updated_at > staged.updated_at) THEN excluded.fp ELSE staged.fp END,
   updated_at = CASE WHEN excluded.updated_at IS NOT NULL AND (staged.updated_at IS NULL OR excluded.updated_at > staged.updated_at) THEN excluded.updated_at ELSE staged.updated_at END";

/// One accepted profile row, as the stage keeps it: its address's key and what it wants of
/// the member (merge values as JSON, with their fingerprint), and its profile's key.
#[derive(Clone, Debug)]
pub struct StageRow {
    pub key: MemberKey,
    pub email: String,
    pub merge_json: String,
    pub fingerprint: u64,
    pub tags: TagSet,
    /// The profile's update time, sortable as text (the newest of an address's rows gives
    /// its attributes).
    pub updated_at: Option<String>,
    pub profile_key: String,
    /// Where a full pass reads its profile: the rows of one address merge in this order.
    pub position: i64,
}

impl StageRow {
    /// The row for `(key, email, merge, fp, tags, updated_at, profile_key)`.
    fn params(&self) -> StageParams<'_> {
        (
            &self.key.0[..],
            &self.email,
            &self.merge_json,
            self.fingerprint as i64,
            self.tags.0 as i64,
            &self.updated_at,
            &self.profile_key,
        )
    }

    /// [`StageRow::params`], and the position.
    fn params_at(&self) -> impl rusqlite::Params + '_ {
        let (key, email, merge, fp, tags, updated_at, profile_key) = self.params();
        (
            key,
            email,
            merge,
            fp,
            tags,
            updated_at,
            profile_key,
            self.position,
        )
    }
}

/// A [`StageRow`]'s values, as bound to a statement.
type StageParams<'r> = (
    &'r [u8],
    &'r String,
    &'r String,
    i64,
    i64,
    &'r Option<String>,
    &'r String,
);

/// Which upserts a plan page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsertPhase {
    /// New members (`update_existing: false`).
    Create = 0,
    /// Content of existing members, each with its own status.
    Update = 1,
    /// Status-only writes that unsubscribe members this export added.
    Unsubscribe = 2,
}

/// One planned upsert, with the merge values (JSON) of its member when it carries content.
#[derive(Clone, Debug)]
pub struct PlannedUpsert {
    pub seq: i64,
    pub key: MemberKey,
    pub email: String,
    pub status: Status,
    pub fingerprint: Option<u64>,
    pub merge_json: Option<String>,
    /// The keys of the member's profiles, when it is staged.
    pub profiles: Option<String>,
    /// The tags a create carries (none for other upserts).
    pub tags: TagSet,
}

fn key_of(bytes: Vec<u8>) -> rusqlite::Result<MemberKey> {
    let arr: [u8; 16] = bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "a member key is 16 bytes".into(),
        )
    })?;
    Ok(MemberKey(arr))
}

fn status_of(text: &str) -> rusqlite::Result<Status> {
    Status::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown status {text:?}").into(),
        )
    })
}

/// How far a diff written in parts has gone ([`StateStore::diff_stage_part`]).
#[derive(Debug, Default)]
pub struct DiffCursor {
    /// The last staged member diffed (the empty key, before every member, at first).
    after: Vec<u8>,
    /// The plan's last sequence number.
    seq: i64,
    done: bool,
}

impl DiffCursor {
    /// Whether every key of the stage and the snapshot was diffed.
    pub fn done(&self) -> bool {
        self.done
    }
}

/// Writes plan rows during the diff.
pub struct PlanWriter<'a> {
    upsert: rusqlite::CachedStatement<'a>,
    tag: rusqlite::CachedStatement<'a>,
    archive: rusqlite::CachedStatement<'a>,
    moves: rusqlite::CachedStatement<'a>,
    profiles: rusqlite::CachedStatement<'a>,
    seq: i64,
}

impl PlanWriter<'_> {
    pub fn upsert(
        &mut self,
        phase: UpsertPhase,
        key: MemberKey,
        email: &str,
        status: Status,
        fingerprint: Option<u64>,
        tags: TagSet,
    ) -> Result<()> {
        self.seq += 1;
        self.upsert.execute(params![
            self.seq,
            phase as i64,
            &key.0[..],
            email,
            status.as_str(),
            fingerprint.map(|f| f as i64),
            tags.0 as i64
        ])?;
        Ok(())
    }

    pub fn tag(&mut self, bit: usize, adding: bool, key: MemberKey, email: &str) -> Result<()> {
        self.seq += 1;
        self.tag
            .execute(params![bit as i64, adding, self.seq, &key.0[..], email])?;
        Ok(())
    }

    /// The profiles behind a delivered member changed: its snapshot entry records them
    /// after the diff ([`StateStore::refresh_snapshot_profiles`]).
    pub fn profiles(&mut self, key: MemberKey, profiles: &str) -> Result<()> {
        self.profiles.execute(params![&key.0[..], profiles])?;
        Ok(())
    }

    /// A move of the member `from` (at `from_email`) to `key`, keeping `status`.
    pub fn move_member(
        &mut self,
        from: (MemberKey, &str),
        key: MemberKey,
        email: &str,
        status: Status,
        fingerprint: u64,
    ) -> Result<()> {
        self.seq += 1;
        self.moves.execute(params![
            self.seq,
            &from.0 .0[..],
            from.1,
            &key.0[..],
            email,
            status.as_str(),
            fingerprint as i64
        ])?;
        Ok(())
    }

    pub fn archive(&mut self, key: MemberKey, email: &str) -> Result<()> {
        self.seq += 1;
        self.archive.execute(params![self.seq, &key.0[..], email])?;
        Ok(())
    }
}

/// A desired member as the diff reads it back from the stage.
pub struct StagedMember {
    pub key: MemberKey,
    pub email: String,
    pub fingerprint: u64,
    pub tags: TagSet,
    /// The keys of its profiles, sorted ([`SnapshotEntry::profiles`]).
    pub profiles: String,
}

/// `profiles` with its keys sorted and each once, so that two readings of the same profiles
/// compare equal whatever order the source gave the rows in.
fn sorted_profiles(profiles: String) -> String {
    if !profiles.contains(PROFILE_SEP) {
        return profiles;
    }
    let mut keys: Vec<&str> = profile_keys(&profiles).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.join(&PROFILE_SEP.to_string())
}

impl StateStore {
    /// The connection holding the working set.
    fn stage(&self) -> &Connection {
        match &self.scratch {
            Some(c) => c,
            None => self
                .backend
                .sqlite()
                .expect("a backend without a SQLite connection has a scratch database"),
        }
    }

    fn stage_mut(&mut self) -> &mut Connection {
        match &mut self.scratch {
            Some(c) => c,
            None => self
                .backend
                .sqlite_mut()
                .expect("a backend without a SQLite connection has a scratch database"),
        }
    }

    /// Copies `export`'s snapshot from the backend into the scratch database, in key order
    /// (appends to the table's B-tree), batch by batch.
    fn load_scratch_snapshot(&mut self, export: &str) -> Result<()> {
        let StateStore {
            backend,
            scratch,
            scratch_export,
        } = self;
        let Some(scratch) = scratch.as_mut() else {
            return Ok(());
        };
        if scratch_export.as_deref() == Some(export) {
            return Ok(());
        }
        let tx = scratch.transaction()?;
        tx.execute("DELETE FROM snapshot", [])?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO snapshot (export, key, email, fingerprint, tags, status, owned, profiles) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            backend.snapshot_in_key_order(export, &mut |batch| {
                for (k, e) in batch {
                    super::sqlite::insert_snapshot_row(&mut st, export, k, e)?;
                }
                Ok(())
            })?;
        }
        tx.commit()?;
        *scratch_export = Some(export.to_string());
        Ok(())
    }

    /// Empties (creating if needed) the run's temporary tables.
    pub fn stage_begin(&mut self) -> Result<()> {
        self.stage().execute_batch(TEMP_SCHEMA)?;
        self.scratch_export = None;
        Ok(())
    }

    /// Adds accepted rows to the stage, in the order they came (appended: the members' keys
    /// are hashes, and inserting them where they belong, at random places of a tree larger
    /// than the page cache, was most of the profile pass's time). [`StateStore::stage_end`]
    /// then sorts them into the keyed table.
    pub fn stage_rows(&mut self, rows: &[StageRow]) -> Result<()> {
        let tx = self.stage_mut().transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO temp.staged_raw (key, email, merge, fp, tags, updated_at, profile_key, position) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in rows {
                st.execute(r.params_at())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Moves the staged rows into the keyed stage, sorted by key (SQLite's external sort,
    /// then appends), merging duplicates of an address as the in-memory collector does: tags
    /// united; the most recently updated profile gives the attributes (without a time, the
    /// first one keeps them: rows of one key go in the order of their positions); the first
    /// profile's key is kept for error reports.
    pub fn stage_end(&mut self) -> Result<()> {
        let tx = self.stage_mut().transaction()?;
        // `WHERE true`: SQLite's grammar needs it between a SELECT and ON CONFLICT.
        tx.execute(
            &format!(
                "INSERT INTO temp.staged (key, email, merge, fp, tags, updated_at, profile_key, profiles)
                 SELECT key, email, merge, fp, tags, updated_at, profile_key, profile_key FROM temp.staged_raw WHERE true ORDER BY key, position
                 {MERGE_DUPLICATES}"
            ),
            [],
        )?;
        tx.execute("DELETE FROM temp.staged_raw", [])?;
        tx.commit()?;
        Ok(())
    }

    /// [`StateStore::stage_rows`] then [`StateStore::stage_end`] for rows few enough to be
    /// held in memory: sorted here (by key, then position) and put into the keyed stage with
    /// the same merge of duplicates, without the unsorted table or SQLite's sort.
    pub fn stage_sorted(&mut self, rows: Vec<StageRow>) -> Result<()> {
        // The order is sorted, not the rows: a row is four times the size of its place in it.
        // Positions are the profiles' own: no two rows tie.
        let mut order: Vec<(MemberKey, i64, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key, r.position, i))
            .collect();
        order.sort_unstable();
        let mut rows: Vec<Option<StageRow>> = rows.into_iter().map(Some).collect();
        let tx = self.stage_mut().transaction()?;
        {
            let mut st = tx.prepare(&format!(
                "INSERT INTO temp.staged (key, email, merge, fp, tags, updated_at, profile_key, profiles)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 {MERGE_DUPLICATES}"
            ))?;
            // Each row is freed once in: the stage's pages grow as the rows go.
            for (_, _, i) in order {
                if let Some(r) = rows[i].take() {
                    st.execute(r.params())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Distinct addresses staged.
    pub fn staged_count(&self) -> Result<u64> {
        Ok(self
            .stage()
            .query_row("SELECT COUNT(*) FROM temp.staged", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// The key of the (first) profile that gave address `key`, for error reports.
    pub fn staged_profile_key(&self, key: &MemberKey) -> Result<Option<String>> {
        Ok(self
            .stage()
            .prepare_cached("SELECT profile_key FROM temp.staged WHERE key = ?1")?
            .query_row([&key.0[..]], |r| r.get(0))
            .optional()?)
    }

    /// The merge-join of the stage and `export`'s snapshot, in key order: `f` gets each key
    /// with what the export wants (if it does) and what it delivered (if anything), and
    /// writes the plan through the [`PlanWriter`]. Whole (`limit` `None`: one call, one
    /// transaction), or a part at a time: the keys after `cursor`, up to `limit` staged
    /// members (with the snapshot's keys up to the last of them, or to the end when the
    /// stage has no more), one transaction each. `cursor` moves past them and says when the
    /// diff is done. The plan's sequence numbers go on from part to part, so that the plan
    /// written in parts is the plan written at once, and pages of it can be read (and sent)
    /// between two parts.
    pub fn diff_stage_part<F>(
        &mut self,
        export: &str,
        restrict: bool,
        cursor: &mut DiffCursor,
        limit: Option<usize>,
        mut f: F,
    ) -> Result<()>
    where
        F: FnMut(
            MemberKey,
            Option<&StagedMember>,
            Option<&SnapshotEntry>,
            &mut PlanWriter<'_>,
        ) -> Result<()>,
    {
        if cursor.done {
            return Ok(());
        }
        self.load_scratch_snapshot(export)?;
        let tx = self.stage().unchecked_transaction()?;
        {
            // SQLite reads a negative limit as none.
            let max = limit.map_or(-1, |l| l as i64);
            let mut want_st = tx.prepare_cached(
                "SELECT key, email, fp, tags, profiles FROM temp.staged WHERE key > ?1 ORDER BY key LIMIT ?2",
            )?;
            // Restricted: the touched addresses only ([`StateStore::set_touched`]).
            let mut snap_st = tx.prepare_cached(if restrict {
                "SELECT s.key, s.email, s.fingerprint, s.tags, s.status, s.owned, s.profiles FROM temp.touched t CROSS JOIN snapshot s ON s.export = ?1 AND s.key = t.key WHERE t.key > ?2 ORDER BY t.key"
            } else {
                "SELECT key, email, fingerprint, tags, status, owned, profiles FROM snapshot WHERE export = ?1 AND key > ?2 ORDER BY key"
            })?;
            let mut wants = want_st.query_map(params![cursor.after, max], |r| {
                Ok(StagedMember {
                    key: key_of(r.get(0)?)?,
                    email: r.get(1)?,
                    fingerprint: r.get::<_, i64>(2)? as u64,
                    tags: TagSet(r.get::<_, i64>(3)? as u64),
                    profiles: sorted_profiles(r.get(4)?),
                })
            })?;
            let mut snaps = snap_st.query_map(params![export, cursor.after], |r| {
                let status: String = r.get(4)?;
                Ok((
                    key_of(r.get(0)?)?,
                    SnapshotEntry {
                        email: r.get(1)?,
                        fingerprint: r.get::<_, Option<i64>>(2)?.map(|f| f as u64),
                        tags: TagSet(r.get::<_, i64>(3)? as u64),
                        status: status_of(&status)?,
                        owned: r.get(5)?,
                        profiles: r.get(6)?,
                    },
                ))
            })?;
            let mut writer = PlanWriter {
                upsert: tx.prepare_cached("INSERT INTO temp.plan_upsert (seq, phase, key, email, status, fp, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?,
                tag: tx.prepare_cached("INSERT INTO temp.plan_tag (bit, adding, seq, key, email) VALUES (?1, ?2, ?3, ?4, ?5)")?,
                archive: tx.prepare_cached("INSERT INTO temp.plan_archive (seq, key, email) VALUES (?1, ?2, ?3)")?,
                profiles: tx.prepare_cached("INSERT OR REPLACE INTO temp.profile_refresh (key, profiles) VALUES (?1, ?2)")?,
                moves: tx.prepare_cached("INSERT INTO temp.plan_move (seq, from_key, from_email, key, email, status, fp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?,
                seq: cursor.seq,
            };
            let mut want = wants.next().transpose()?;
            let mut snap = snaps.next().transpose()?;
            let mut read = usize::from(want.is_some());
            let mut last_want = None;
            loop {
                let (w, s) = match (&want, &snap) {
                    (None, None) => break,
                    (Some(w), None) => (Some(w), None),
                    // The part's members are done; the stage has more: the snapshot's
                    // keys past them are the next part's.
                    (None, Some(_)) if limit.is_some_and(|l| read >= l) => break,
                    (None, Some(s)) => (None, Some(s)),
                    (Some(w), Some(s)) => match w.key.cmp(&s.0) {
                        std::cmp::Ordering::Less => (Some(w), None),
                        std::cmp::Ordering::Greater => (None, Some(s)),
                        std::cmp::Ordering::Equal => (Some(w), Some(s)),
                    },
                };
                let key = w.map(|w| w.key).or(s.map(|s| s.0)).expect("one side");
                f(key, w, s.map(|s| &s.1), &mut writer)?;
                let (took_w, took_s) = (w.is_some(), s.is_some());
                if took_w {
                    last_want = Some(key);
                    want = wants.next().transpose()?;
                    read += usize::from(want.is_some());
                }
                if took_s {
                    snap = snaps.next().transpose()?;
                }
            }
            cursor.seq = writer.seq;
            match (limit, last_want) {
                (Some(l), Some(last)) if read >= l => cursor.after = last.0.to_vec(),
                _ => cursor.done = true,
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The next page of planned upserts of `phase` after `after`, with their merge values.
    pub fn planned_upserts(
        &self,
        phase: UpsertPhase,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PlannedUpsert>> {
        let mut st = self.stage().prepare_cached(
            "SELECT p.seq, p.key, p.email, p.status, p.fp, CASE WHEN p.fp IS NULL THEN NULL ELSE s.merge END, s.profiles, p.tags
             FROM temp.plan_upsert p LEFT JOIN temp.staged s ON s.key = p.key
             WHERE p.phase = ?1 AND p.seq > ?2 ORDER BY p.seq LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![phase as i64, after, limit as i64], |r| {
                let status: String = r.get(3)?;
                Ok(PlannedUpsert {
                    seq: r.get(0)?,
                    key: key_of(r.get(1)?)?,
                    email: r.get(2)?,
                    status: status_of(&status)?,
                    fingerprint: r.get::<_, Option<i64>>(4)?.map(|f| f as u64),
                    merge_json: r.get(5)?,
                    profiles: r.get::<_, Option<String>>(6)?.map(sorted_profiles),
                    tags: TagSet(r.get::<_, i64>(7)? as u64),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The next page of planned moves after `after`: the old member and its address, and the
    /// member at its new address with its merge values.
    pub fn planned_moves(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(MemberKey, String, PlannedUpsert)>> {
        let mut st = self.stage().prepare_cached(
            "SELECT p.seq, p.key, p.email, p.status, p.fp, s.merge, s.profiles, p.from_key, p.from_email
             FROM temp.plan_move p LEFT JOIN temp.staged s ON s.key = p.key
             WHERE p.seq > ?1 ORDER BY p.seq LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![after, limit as i64], |r| {
                let status: String = r.get(3)?;
                let to = PlannedUpsert {
                    seq: r.get(0)?,
                    key: key_of(r.get(1)?)?,
                    email: r.get(2)?,
                    status: status_of(&status)?,
                    fingerprint: Some(r.get::<_, i64>(4)? as u64),
                    merge_json: r.get(5)?,
                    profiles: r.get::<_, Option<String>>(6)?.map(sorted_profiles),
                    tags: TagSet::default(),
                };
                Ok((key_of(r.get(7)?)?, r.get(8)?, to))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// What deciding the moves of `export`'s run needs (see `segsync_core::moves`): the
    /// staged addresses its snapshot lacks (less those `reported` by the audience), and the
    /// delivered members that held one of their profiles. Nothing on a first run. The
    /// holders come from `known` when it answers for every profile of the new addresses
    /// (an incremental run's, whose new addresses are mostly its changed profiles'), else
    /// from one pass over the snapshot; the members in `known` are not looked for among
    /// the new addresses.
    pub fn move_candidates(
        &mut self,
        export: &str,
        reported: impl Fn(&MemberKey) -> bool,
        known: Option<&KnownHolders>,
    ) -> Result<(Vec<NewAddress>, Vec<Holder>)> {
        if !self.backend.has_snapshot(export)? {
            return Ok((Vec::new(), Vec::new()));
        }
        self.load_scratch_snapshot(export)?;
        let conn = self.stage();
        let delivered: HashSet<MemberKey> = known
            .map(|k| k.rows.iter().map(|(key, _)| *key).collect())
            .unwrap_or_default();
        let new = new_addresses(conn, export, reported, &delivered)?;
        drop(delivered);
        if new.is_empty() {
            return Ok((new, Vec::new()));
        }
        let wanted: HashSet<&str> = new.iter().flat_map(|n| profile_keys(&n.profiles)).collect();
        let holders = match known.filter(|k| wanted.iter().all(|p| k.profiles.contains(*p))) {
            Some(known) => known_holders_of(conn, &*self.backend, export, known, &wanted)?,
            None => holders_of(conn, export, &wanted)?,
        };
        Ok((new, holders))
    }

    /// Records in `export`'s snapshot the profiles the diff found behind its delivered
    /// members, where they changed, a batch at a time. Which profiles a member belongs to is
    /// not something Mailchimp acknowledges, so it is written before anything is sent; the
    /// next run's moves are decided from it.
    pub fn refresh_snapshot_profiles(&mut self, export: &str) -> Result<()> {
        let mut after: Vec<u8> = Vec::new();
        loop {
            let batch: Vec<(MemberKey, String)> = self
                .stage()
                .prepare_cached("SELECT key, profiles FROM temp.profile_refresh WHERE key > ?1 ORDER BY key LIMIT ?2")?
                .query_map(params![after, REFRESH_BATCH as i64], |r| {
                    Ok((key_of(r.get(0)?)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let Some((last, _)) = batch.last() else {
                return Ok(());
            };
            after = last.0.to_vec();
            let keys: Vec<MemberKey> = batch.iter().map(|(k, _)| *k).collect();
            let mut known = self.backend.snapshot_entries(export, &keys)?;
            let entries: Vec<(MemberKey, SnapshotEntry)> = batch
                .into_iter()
                .filter_map(|(k, p)| {
                    let mut e = known.remove(&k)?;
                    e.profiles = Some(p);
                    Some((k, e))
                })
                .collect();
            self.backend.save_snapshot(export, &entries)?;
        }
    }

    /// The tags with planned changes, in order.
    pub fn planned_tag_bits(&self) -> Result<Vec<usize>> {
        let mut st = self
            .stage()
            .prepare("SELECT DISTINCT bit FROM temp.plan_tag ORDER BY bit")?;
        let rows = st
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|b| b as usize).collect())
    }

    /// The next page of addresses to add to (or remove from) tag `bit`, after `after`.
    pub fn planned_tags(
        &self,
        bit: usize,
        adding: bool,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, MemberKey, String)>> {
        let mut st = self.stage().prepare_cached(
            "SELECT seq, key, email FROM temp.plan_tag WHERE bit = ?1 AND adding = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
        )?;
        let rows = st
            .query_map(params![bit as i64, adding, after, limit as i64], |r| {
                Ok((r.get(0)?, key_of(r.get(1)?)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Adds tag additions to the plan, after every planned one of their tag: new members
    /// whose create did not apply their tags (`(bit, member, address)`), for the tag phase
    /// to send. Called while the upserts are answered, before the tag phase reads the plan.
    pub fn add_planned_tags(&mut self, rows: &[(usize, MemberKey, String)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.stage_mut().transaction()?;
        {
            let mut last = tx.prepare_cached(
                "SELECT COALESCE(MAX(seq), 0) FROM temp.plan_tag WHERE bit = ?1 AND adding = 1",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO temp.plan_tag (bit, adding, seq, key, email) VALUES (?1, 1, ?2, ?3, ?4)",
            )?;
            for (bit, key, email) in rows {
                let seq: i64 = last.query_row([*bit as i64], |r| r.get(0))?;
                insert.execute(params![*bit as i64, seq + 1, &key.0[..], email])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The next page of planned archives after `after`.
    pub fn planned_archives(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, MemberKey, String)>> {
        let mut st = self.stage().prepare_cached(
            "SELECT seq, key, email FROM temp.plan_archive WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![after, limit as i64], |r| {
                Ok((r.get(0)?, key_of(r.get(1)?)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// Which of the snapshot's keys a pass reads (the keys are MD5 digests: each half holds
/// about half the members).
#[derive(Clone, Copy)]
enum Keys {
    All,
    Lower,
    Upper,
}

/// Calls `each` with the key and the profiles of every member of `export`'s snapshot among
/// `keys` that has profiles, in key order (the profiles read in place, not copied).
fn each_member(
    conn: &Connection,
    export: &str,
    keys: Keys,
    mut each: impl FnMut(&[u8], &str) -> Result<()>,
) -> Result<()> {
    const SQL: &str =
        "SELECT key, profiles FROM snapshot WHERE export = ?1 AND profiles IS NOT NULL";
    let (within, half) = match keys {
        Keys::All => ("", None),
        Keys::Lower => (" AND key < ?2", Some(HALF)),
        Keys::Upper => (" AND key >= ?2", Some(HALF)),
    };
    let mut st = conn.prepare(&format!("{SQL}{within} ORDER BY key"))?;
    let mut rows = match half {
        None => st.query(params![export])?,
        Some(half) => st.query(params![export, &half[..]])?,
    };
    let unreadable = |column, kind, e: rusqlite::types::FromSqlError| {
        rusqlite::Error::FromSqlConversionFailure(column, kind, e.into())
    };
    while let Some(r) = rows.next()? {
        let key = r.get_ref(0)?.as_blob();
        let key = key.map_err(|e| unreadable(0, rusqlite::types::Type::Blob, e))?;
        let held = r.get_ref(1)?.as_str();
        let held = held.map_err(|e| unreadable(1, rusqlite::types::Type::Text, e))?;
        each(key, held)?;
    }
    Ok(())
}

/// The first key of the upper half of the snapshot's keys (a one-byte blob sorts before
/// every 16-byte key that starts with the same byte).
const HALF: [u8; 1] = [0x80];

/// The members of a snapshot that held one of `profiles`, found by one pass over it (see
/// [`StateStore::members_holding`]), in key order: what [`StateStore::move_candidates`]
/// needs to know of the holders of those profiles, without a second pass, as long as the
/// snapshot was not written in between.
#[derive(Debug, Default)]
pub struct KnownHolders {
    pub profiles: HashSet<String>,
    pub rows: Vec<(MemberKey, String)>,
}

impl StateStore {
    /// The members of `export`'s snapshot that hold one of `profiles`, with all their
    /// profiles, in key order: one pass over the snapshot (none when `profiles` is empty).
    pub fn members_holding(
        &mut self,
        export: &str,
        profiles: &HashSet<String>,
    ) -> Result<Vec<(MemberKey, String)>> {
        if profiles.is_empty() || !self.backend.has_snapshot(export)? {
            return Ok(Vec::new());
        }
        self.in_halves(export, |conn, keys| {
            let mut out = Vec::new();
            each_member(conn, export, keys, |key, held| {
                if profile_keys(held).any(|p| profiles.contains(p)) {
                    out.push((key_of(key.to_vec())?, held.to_string()));
                }
                Ok(())
            })?;
            Ok(out)
        })
    }

    /// The profiles behind `export`'s delivered members that are not `present` (in a
    /// database source's keys now): the profiles that left it. One pass over the snapshot.
    pub fn delivered_profiles_absent(
        &mut self,
        export: &str,
        present: impl Fn(&str) -> bool + Sync,
    ) -> Result<Vec<String>> {
        if !self.backend.has_snapshot(export)? {
            return Ok(Vec::new());
        }
        self.in_halves(export, |conn, keys| {
            let mut out = Vec::new();
            each_member(conn, export, keys, |_, held| {
                let absent = profile_keys(held).filter(|p| !present(p));
                out.extend(absent.map(str::to_string));
                Ok(())
            })?;
            Ok(out)
        })
    }

    /// `pass` over the whole of `export`'s snapshot, its results in key order. On a SQLite
    /// state file, two passes side by side: the lower half of the member keys through the
    /// store's connection, the upper half, in a second thread, through a second read-only
    /// connection (a PostgreSQL store's scratch copy has no second connection: one pass).
    fn in_halves<T: Send>(
        &mut self,
        export: &str,
        pass: impl Fn(&Connection, Keys) -> Result<Vec<T>> + Sync,
    ) -> Result<Vec<T>> {
        self.load_scratch_snapshot(export)?;
        let Some(second) = self.second_reader()? else {
            return pass(self.stage(), Keys::All);
        };
        let first = self.stage();
        let pass = &pass;
        std::thread::scope(|scope| {
            let upper = scope.spawn(move || pass(&second, Keys::Upper));
            let mut rows = pass(first, Keys::Lower)?;
            let upper = upper
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            rows.extend(upper);
            Ok(rows)
        })
    }

    /// A second connection to the SQLite state file, read-only, when the stage reads the
    /// backend's own snapshot (not a scratch copy, which no other connection can open).
    fn second_reader(&self) -> Result<Option<Connection>> {
        if self.scratch.is_some() {
            return Ok(None);
        }
        let Some(path) = self.backend.sqlite().and_then(|c| c.path()) else {
            return Ok(None);
        };
        if path.is_empty() {
            return Ok(None);
        }
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Some(conn))
    }

    /// The profiles behind the delivered members `keys` (those the snapshot knows them for).
    pub fn member_profiles(
        &self,
        export: &str,
        keys: &[MemberKey],
    ) -> Result<Vec<(MemberKey, String)>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(REFRESH_BATCH) {
            for (k, e) in self.backend.snapshot_entries(export, chunk)? {
                if let Some(p) = e.profiles {
                    out.push((k, p));
                }
            }
        }
        Ok(out)
    }

    /// The members Mailchimp reported (`audience`) at a status other than the one the
    /// snapshot holds, or that the snapshot does not hold: those an incremental run must
    /// compare (a member reported at the status segsync left it at needs nothing).
    pub fn status_changes(
        &self,
        export: &str,
        audience: &HashMap<MemberKey, Status>,
    ) -> Result<Vec<MemberKey>> {
        let keys: Vec<MemberKey> = audience.keys().copied().collect();
        let mut same = HashSet::new();
        for chunk in keys.chunks(REFRESH_BATCH) {
            for (k, e) in self.backend.snapshot_entries(export, chunk)? {
                if audience.get(&k) == Some(&e.status) {
                    same.insert(k);
                }
            }
        }
        Ok(keys.into_iter().filter(|k| !same.contains(k)).collect())
    }

    /// The addresses an incremental run compares with the snapshot: every staged one, and
    /// the `unstaged` others (after [`StateStore::stage_begin`]); see
    /// [`StateStore::diff_stage_part`].
    pub fn set_touched(&mut self, unstaged: &[MemberKey]) -> Result<()> {
        let tx = self.stage_mut().transaction()?;
        // The staged keys in one statement, in key order: each goes at the end of the
        // table's tree.
        tx.execute(
            "INSERT OR IGNORE INTO temp.touched (key) SELECT key FROM temp.staged",
            [],
        )?;
        {
            let mut st =
                tx.prepare_cached("INSERT OR IGNORE INTO temp.touched (key) VALUES (?1)")?;
            for k in unstaged {
                st.execute([&k.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Snapshot entries whose profiles are rewritten per transaction.
const REFRESH_BATCH: usize = 10_000;

/// The staged addresses `export`'s snapshot lacks, less those `reported`. Those known to
/// be `delivered` (the holders of an incremental run's changed profiles, read from the
/// snapshot) are not looked for in it: a 10% re-run's stage is mostly theirs. A snapshot
/// entry changes between that read and this one only for an address the audience reported.
fn new_addresses(
    conn: &Connection,
    export: &str,
    reported: impl Fn(&MemberKey) -> bool,
    delivered: &HashSet<MemberKey>,
) -> Result<Vec<NewAddress>> {
    let absent = "NOT EXISTS (SELECT 1 FROM snapshot s WHERE s.export = ?1 AND s.key = t.key)";
    let mut new = Vec::new();
    if delivered.is_empty() {
        let sql = format!("SELECT t.key, t.email, t.profiles FROM temp.staged t WHERE {absent}");
        let mut st = conn.prepare(&sql)?;
        let mut rows = st.query([export])?;
        while let Some(r) = rows.next()? {
            let key = key_of(r.get(0)?)?;
            if !reported(&key) {
                new.push(NewAddress {
                    key,
                    email: r.get(1)?,
                    profiles: r.get(2)?,
                });
            }
        }
        return Ok(new);
    }
    let mut keys = conn.prepare("SELECT key FROM temp.staged")?;
    let sql =
        format!("SELECT t.email, t.profiles FROM temp.staged t WHERE t.key = ?2 AND {absent}");
    let mut one = conn.prepare(&sql)?;
    let mut rows = keys.query([])?;
    while let Some(r) = rows.next()? {
        let key = key_of(r.get(0)?)?;
        if delivered.contains(&key) || reported(&key) {
            continue;
        }
        let found = one
            .query_row(params![export, &key.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((email, profiles)) = found {
            new.push(NewAddress {
                key,
                email,
                profiles,
            });
        }
    }
    Ok(new)
}

/// [`holders_of`] from the rows of `known`, which hold every profile of `wanted` that any
/// member holds: each holder's entry read by its key, in key order as the pass gives them.
fn known_holders_of(
    conn: &Connection,
    backend: &dyn super::StateBackend,
    export: &str,
    known: &KnownHolders,
    wanted: &HashSet<&str>,
) -> Result<Vec<Holder>> {
    let mut keys: Vec<MemberKey> = known
        .rows
        .iter()
        .filter(|(_, profiles)| profile_keys(profiles).any(|p| wanted.contains(p)))
        .map(|(k, _)| *k)
        .collect();
    keys.sort_unstable();
    let mut staged = conn.prepare("SELECT EXISTS (SELECT 1 FROM temp.staged WHERE key = ?1)")?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(REFRESH_BATCH) {
        let mut entries = backend.snapshot_entries(export, chunk)?;
        for k in chunk {
            let Some(entry) = entries.remove(k) else {
                continue;
            };
            let wanted: bool = staged.query_row([&k.0[..]], |r| r.get(0))?;
            out.push(Holder {
                key: *k,
                entry,
                wanted,
            });
        }
    }
    Ok(out)
}

/// The members of `export`'s snapshot that hold one of the profiles `wanted`: one pass over
/// the snapshot (only runs with new addresses make it).
fn holders_of(conn: &Connection, export: &str, wanted: &HashSet<&str>) -> Result<Vec<Holder>> {
    let mut st = conn.prepare(
        "SELECT s.key, s.email, s.fingerprint, s.tags, s.status, s.owned, s.profiles,
                EXISTS (SELECT 1 FROM temp.staged t WHERE t.key = s.key)
         FROM snapshot s WHERE s.export = ?1 AND s.profiles IS NOT NULL",
    )?;
    let mut rows = st.query([export])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let profiles: String = r.get(6)?;
        if !profile_keys(&profiles).any(|p| wanted.contains(p)) {
            continue;
        }
        let status: String = r.get(4)?;
        out.push(Holder {
            key: key_of(r.get(0)?)?,
            entry: SnapshotEntry {
                email: r.get(1)?,
                fingerprint: r.get::<_, Option<i64>>(2)?.map(|f| f as u64),
                tags: TagSet(r.get::<_, i64>(3)? as u64),
                status: status_of(&status)?,
                owned: r.get(5)?,
                profiles: Some(profiles),
            },
            wanted: r.get(7)?,
        });
    }
    Ok(out)
}
