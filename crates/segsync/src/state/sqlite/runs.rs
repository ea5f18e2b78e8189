//! Runs, their counts and the records they could not send on SQLite: the [`RunStore`](crate::state::RunStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;
use crate::state::RunChange;

impl RunStore for SqliteState {
    /// Exports that have a run still marked `running` (alive, or left so by a process that
    /// died).
    fn exports_with_running_runs(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT DISTINCT export FROM runs WHERE outcome = 'running' ORDER BY export",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Marks runs left `running` by a process that died as interrupted.
    fn interrupt_stale_runs(&self, export: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = COALESCE(finished_at, ?2), error = COALESCE(error, 'the process stopped before the run finished; the next run resumes from its checkpoint') WHERE export = ?1 AND outcome = 'running'",
            params![export, now()],
        )?)
    }

    fn start_run(&self, export: &str, trigger: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (export, trigger, started_at, outcome, counts) VALUES (?1, ?2, ?3, 'running', ?4)",
            params![export, trigger, now(), serde_json::to_string(&RunCounts::default()).unwrap()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn update_run_counts(&self, id: i64, counts: &RunCounts) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET counts = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(counts).unwrap()],
        )?;
        Ok(())
    }

    fn finish_run(
        &self,
        id: i64,
        outcome: Outcome,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET outcome = ?2, counts = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
            params![
                id,
                outcome.as_str(),
                serde_json::to_string(counts).unwrap(),
                error,
                now()
            ],
        )?;
        Ok(())
    }

    fn add_run_errors(&mut self, id: i64, errors: &[RecordError]) -> Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let start: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM run_errors WHERE run_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let mut st = tx.prepare_cached("INSERT INTO run_errors (run_id, seq, profile_key, email, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for (i, e) in errors.iter().enumerate() {
                st.execute(params![
                    id,
                    start + i as i64,
                    e.profile_key,
                    e.email,
                    e.reason
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn runs(&self, export: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut st = self.conn.prepare(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR export = ?1) ORDER BY id DESC LIMIT ?2"),
        )?;
        let rows = st
            .query_map(params![export, limit as i64], run_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn run(&self, id: i64) -> Result<RunRecord> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_run(id))
    }

    fn run_errors(&self, id: i64) -> Result<Vec<RecordError>> {
        let mut st = self.conn.prepare(
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = st
            .query_map([id], |r| {
                Ok(RecordError {
                    profile_key: r.get(0)?,
                    email: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// How many records run `id` could not send (for lists, without reading them all).
    fn run_error_count(&self, id: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM run_errors WHERE run_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The first `limit` records run `id` could not send, in order (for the web UI's run page).
    fn run_errors_head(&self, id: i64, limit: usize) -> Result<Vec<RecordError>> {
        let mut st = self.conn.prepare(
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![id, limit as i64], |r| {
                Ok(RecordError {
                    profile_key: r.get(0)?,
                    email: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn add_run_changes(&mut self, id: i64, changes: &[RunChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let start: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM run_changes WHERE run_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let mut st = tx.prepare_cached("INSERT INTO run_changes (run_id, seq, action, email, detail, profile_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            for (i, c) in changes.iter().enumerate() {
                st.execute(params![
                    id,
                    start + i as i64,
                    c.action.code(),
                    c.email,
                    c.detail,
                    c.profile_key
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn run_changes_page(&self, id: i64, after: i64, limit: usize) -> Result<Vec<(i64, RunChange)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, action, email, detail, profile_key FROM run_changes WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![id, after, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    crate::state::changes::change_of(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn run_errors_page(
        &self,
        id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RecordError)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, profile_key, email, reason FROM run_errors WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![id, after, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    RecordError {
                        profile_key: r.get(1)?,
                        email: r.get(2)?,
                        reason: r.get(3)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
