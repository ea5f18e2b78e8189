//! Leases on SQLite: the [`QueueStore`](crate::state::QueueStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;

impl QueueStore for SqliteState {
    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_millis();
        let n = self.conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4",
            params![name, holder, now.saturating_add(ttl_millis(ttl)), now],
        )?;
        Ok(n == 1)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
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
        Ok(self
            .conn
            .query_row(
                "INSERT INTO run_queue (export, trigger, requested_by, tick, requested_at, state) VALUES (?1, ?2, ?3, ?4, ?5, 'pending')
                 ON CONFLICT (export, tick) DO NOTHING RETURNING id",
                params![export, trigger, requested_by, tick, now()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// One statement: SQLite takes the write lock before it reads, so two workers never
    /// claim the same row.
    fn claim_queued_run(&self, worker: &str, ttl: Duration) -> Result<Option<QueuedRun>> {
        let now = now_millis();
        let row = self
            .conn
            .query_row(
                &format!(
                    "UPDATE run_queue SET state = 'claimed', worker = ?1, lease_until = ?3
                     WHERE id = (
                       SELECT q.id FROM run_queue q
                       WHERE (q.state = 'pending' OR (q.state = 'claimed' AND q.lease_until <= ?2))
                         AND NOT EXISTS (SELECT 1 FROM run_queue o WHERE o.export = q.export AND o.id <> q.id
                                         AND o.state = 'claimed' AND o.lease_until > ?2)
                       ORDER BY q.id LIMIT 1)
                     RETURNING {QUEUE_COLUMNS}"
                ),
                params![worker, now, now.saturating_add(ttl_millis(ttl))],
                queue_row,
            )
            .optional()?;
        row.map(queued_run).transpose()
    }

    fn renew_queued_run(&self, id: i64, worker: &str, ttl: Duration) -> Result<bool> {
        let until = now_millis().saturating_add(ttl_millis(ttl));
        let n = self.conn.execute(
            "UPDATE run_queue SET lease_until = ?3 WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
            params![id, worker, until],
        )?;
        Ok(n == 1)
    }

    fn complete_queued_run(&self, id: i64, worker: &str, run_id: Option<i64>) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE run_queue SET state = 'done', run_id = ?3, lease_until = NULL WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
            params![id, worker, run_id],
        )?;
        if n == 1 {
            return Ok(());
        }
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM run_queue WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        Err(if exists {
            msg::queued_run_not_held(id, worker)
        } else {
            msg::no_queued_run(id)
        })
    }

    fn queued_runs(&self, export: Option<&str>) -> Result<Vec<QueuedRun>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {QUEUE_COLUMNS} FROM run_queue WHERE state <> 'done' AND (?1 IS NULL OR export = ?1) ORDER BY id"
        ))?;
        let rows = st
            .query_map([export], queue_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(queued_run).collect()
    }
}
