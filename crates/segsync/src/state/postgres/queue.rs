//! Leases on PostgreSQL: the [`QueueStore`](crate::state::QueueStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;

impl QueueStore for PgState {
    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let n = self.call({
            let (name, holder) = (name.to_string(), holder.to_string());
            move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, {NOW_MS} + $3)
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE leases.holder = excluded.holder OR leases.expires_at <= {NOW_MS}"
                    ),
                    &[&name, &holder, &ttl_millis(ttl)],
                )
                .map_err(|e| pg_err("take a lease", &e))
            }
        })?;
        Ok(n == 1)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.execute(
            "release a lease",
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            params![name.to_string(), holder.to_string()],
        )?;
        Ok(())
    }

    fn enqueue_run(
        &self,
        export: &str,
        trigger: &str,
        requested_by: &str,
        tick: Option<&str>,
    ) -> Result<Option<i64>> {
        self.query_opt(
            "queue a run",
            "INSERT INTO run_queue (export, trigger, requested_by, tick, requested_at, state) VALUES ($1, $2, $3, $4, $5, 'pending')
             ON CONFLICT (export, tick) DO NOTHING RETURNING id".into(),
            params![
                export.to_string(),
                trigger.to_string(),
                requested_by.to_string(),
                tick.map(str::to_string),
                now()
            ],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    /// Claims take turns (an advisory lock), so that two workers never start runs of the
    /// same export; the row itself is locked with `FOR UPDATE SKIP LOCKED`.
    fn claim_queued_run(&self, worker: &str, ttl: Duration) -> Result<Option<QueuedRun>> {
        let worker = worker.to_string();
        let ttl = ttl_millis(ttl);
        self.call(move |c| {
            let op = "claim a queued run";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&QUEUE_LOCK])
                .map_err(pe)?;
            let id: Option<i64> = tx
                .query_opt(
                    &format!(
                        "SELECT q.id FROM run_queue q
                         WHERE (q.state = 'pending' OR (q.state = 'claimed' AND q.lease_until <= {NOW_MS}))
                           AND NOT EXISTS (SELECT 1 FROM run_queue o WHERE o.export = q.export AND o.id <> q.id
                                           AND o.state = 'claimed' AND o.lease_until > {NOW_MS})
                         ORDER BY q.id LIMIT 1 FOR UPDATE OF q SKIP LOCKED"
                    ),
                    &[],
                )
                .map_err(pe)?
                .map(|r| r.get(0));
            let Some(id) = id else {
                tx.commit().map_err(pe)?;
                return Ok(None);
            };
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE run_queue SET state = 'claimed', worker = $2, lease_until = {NOW_MS} + $3
                         WHERE id = $1 RETURNING {QUEUE_COLUMNS}"
                    ),
                    &[&id, &worker, &ttl],
                )
                .map_err(pe)?;
            tx.commit().map_err(pe)?;
            queue_row(&row).map(Some)
        })
    }

    fn renew_queued_run(&self, id: i64, worker: &str, ttl: Duration) -> Result<bool> {
        let worker = worker.to_string();
        let ttl = ttl_millis(ttl);
        let n = self.call(move |c| {
            c.execute(
                &format!(
                    "UPDATE run_queue SET lease_until = {NOW_MS} + $3 WHERE id = $1 AND worker = $2 AND state = 'claimed'"
                ),
                &[&id, &worker, &ttl],
            )
            .map_err(|e| pg_err("renew a queued run", &e))
        })?;
        Ok(n == 1)
    }

    fn complete_queued_run(&self, id: i64, worker: &str, run_id: Option<i64>) -> Result<()> {
        let n = self.execute(
            "complete a queued run",
            "UPDATE run_queue SET state = 'done', run_id = $3, lease_until = NULL WHERE id = $1 AND worker = $2 AND state = 'claimed'",
            params![id, worker.to_string(), run_id],
        )?;
        if n == 1 {
            return Ok(());
        }
        let exists: bool = get(
            &self.query_one(
                "complete a queued run",
                "SELECT EXISTS (SELECT 1 FROM run_queue WHERE id = $1)".into(),
                params![id],
            )?,
            0,
        )?;
        Err(if exists {
            msg::queued_run_not_held(id, worker)
        } else {
            msg::no_queued_run(id)
        })
    }

    fn queued_runs(&self, export: Option<&str>) -> Result<Vec<QueuedRun>> {
        self.query(
            "list queued runs",
            format!("SELECT {QUEUE_COLUMNS} FROM run_queue WHERE state <> 'done' AND ($1::text IS NULL OR export = $1) ORDER BY id"),
            params![export.map(str::to_string)],
        )?
        .iter()
        .map(queue_row)
        .collect()
    }
}
