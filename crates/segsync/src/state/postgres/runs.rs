//! Runs, their counts and the records they could not send on PostgreSQL: the [`RunStore`](crate::state::RunStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;
use crate::state::RunChange;

impl RunStore for PgState {
    fn exports_with_running_runs(&self) -> Result<Vec<String>> {
        self.query(
            "list running runs",
            "SELECT DISTINCT export FROM runs WHERE outcome = 'running' ORDER BY export".into(),
            params![],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn interrupt_stale_runs(&self, export: &str) -> Result<usize> {
        Ok(self.execute(
            "mark stale runs interrupted",
            "UPDATE runs SET outcome = 'interrupted', finished_at = COALESCE(finished_at, $2), error = COALESCE(error, 'the process stopped before the run finished; the next run resumes from its checkpoint') WHERE export = $1 AND outcome = 'running'",
            params![export.to_string(), now()],
        )? as usize)
    }

    fn start_run(&self, export: &str, trigger: &str) -> Result<i64> {
        get(
            &self.query_one(
                "record a run",
                "INSERT INTO runs (export, trigger, started_at, outcome, counts) VALUES ($1, $2, $3, 'running', $4) RETURNING id".into(),
                params![
                    export.to_string(),
                    trigger.to_string(),
                    now(),
                    serde_json::to_string(&RunCounts::default()).unwrap()
                ],
            )?,
            0,
        )
    }

    fn update_run_counts(&self, id: i64, counts: &RunCounts) -> Result<()> {
        self.execute(
            "update a run's counts",
            "UPDATE runs SET counts = $2 WHERE id = $1",
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
        self.execute(
            "finish a run",
            "UPDATE runs SET outcome = $2, counts = $3, error = $4, finished_at = $5 WHERE id = $1",
            params![
                id,
                outcome.as_str().to_string(),
                serde_json::to_string(counts).unwrap(),
                error.map(str::to_string),
                now()
            ],
        )?;
        Ok(())
    }

    fn add_run_errors(&mut self, id: i64, errors: &[RecordError]) -> Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = errors.iter().map(|e| e.profile_key.clone()).collect();
        let emails: Vec<String> = errors.iter().map(|e| e.email.clone()).collect();
        let reasons: Vec<String> = errors.iter().map(|e| e.reason.clone()).collect();
        self.call(move |c| {
            let op = "record a run's errors";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            // Writers of one run's errors take turns on its row.
            tx.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&id])
                .map_err(pe)?;
            let start: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM run_errors WHERE run_id = $1",
                    &[&id],
                )
                .map_err(pe)?
                .get(0);
            tx.execute(
                "INSERT INTO run_errors (run_id, seq, profile_key, email, reason)
                 SELECT $1::bigint, $2::bigint + u.n - 1, u.k, u.e, u.r
                 FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS u(k, e, r, n)",
                &[&id, &start, &keys, &emails, &reasons],
            )
            .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn runs(&self, export: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        self.query(
            "list runs",
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR export = $1) ORDER BY id DESC LIMIT $2"),
            params![export.map(str::to_string), limit as i64],
        )?
        .iter()
        .map(run_row)
        .collect()
    }

    fn run(&self, id: i64) -> Result<RunRecord> {
        self.query_opt(
            "read a run",
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            params![id],
        )?
        .map(|r| run_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_run(id))
    }

    fn run_errors(&self, id: i64) -> Result<Vec<RecordError>> {
        let mut out = Vec::new();
        self.stream(
            "read a run's errors",
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = $1 ORDER BY seq"
                .into(),
            params![id],
            record_error_row,
            &mut |batch| {
                out.extend(batch);
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn run_error_count(&self, id: i64) -> Result<u64> {
        Ok(get::<i64>(
            &self.query_one(
                "count a run's errors",
                "SELECT COUNT(*) FROM run_errors WHERE run_id = $1".into(),
                params![id],
            )?,
            0,
        )? as u64)
    }

    fn run_errors_head(&self, id: i64, limit: usize) -> Result<Vec<RecordError>> {
        self.query(
            "read a run's errors",
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = $1 ORDER BY seq LIMIT $2".into(),
            params![id, limit as i64],
        )?
        .iter()
        .map(record_error_row)
        .collect()
    }

    fn add_run_changes(&mut self, id: i64, changes: &[RunChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let actions: Vec<i64> = changes.iter().map(|c| c.action.code()).collect();
        let emails: Vec<String> = changes.iter().map(|c| c.email.clone()).collect();
        let details: Vec<String> = changes.iter().map(|c| c.detail.clone()).collect();
        let keys: Vec<String> = changes.iter().map(|c| c.profile_key.clone()).collect();
        self.call(move |c| {
            let op = "record a run's changes";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let start: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM run_changes WHERE run_id = $1",
                    &[&id],
                )
                .map_err(pe)?
                .get(0);
            tx.execute(
                "INSERT INTO run_changes (run_id, seq, action, email, detail, profile_key)
                 SELECT $1::bigint, $2::bigint + u.n - 1, u.a, u.e, u.d, u.k
                 FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[])
                      WITH ORDINALITY AS u(a, e, d, k, n)",
                &[&id, &start, &actions, &emails, &details, &keys],
            )
            .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn run_changes_page(&self, id: i64, after: i64, limit: usize) -> Result<Vec<(i64, RunChange)>> {
        self.query(
            "read a run's changes",
            "SELECT seq, action, email, detail, profile_key FROM run_changes WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3".into(),
            params![id, after, limit as i64],
        )?
        .iter()
        .map(|r| {
            Ok((
                get(r, 0)?,
                crate::state::changes::change_of(get(r, 1)?, get(r, 2)?, get(r, 3)?, get(r, 4)?),
            ))
        })
        .collect()
    }

    fn run_errors_page(
        &self,
        id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RecordError)>> {
        self.query(
            "read a run's errors",
            "SELECT seq, profile_key, email, reason FROM run_errors WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3".into(),
            params![id, after, limit as i64],
        )?
        .iter()
        .map(|r| {
            Ok((
                get(r, 0)?,
                RecordError {
                    profile_key: get(r, 1)?,
                    email: get(r, 2)?,
                    reason: get(r, 3)?,
                },
            ))
        })
        .collect()
    }
}
