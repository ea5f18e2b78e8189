//! What each export delivered on SQLite: the [`SnapshotStore`](crate::state::SnapshotStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;

impl SnapshotStore for SqliteState {
    fn snapshot(&self, export: &str) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        let mut st = self.conn.prepare(
            "SELECT key, email, fingerprint, tags, status, owned, profiles FROM snapshot WHERE export = ?1",
        )?;
        let mut out = HashMap::new();
        let mut rows = st.query([export])?;
        while let Some(r) = rows.next()? {
            out.insert(member_key(r.get(0)?, "snapshot")?, snapshot_entry(r, 1)?);
        }
        Ok(out)
    }

    /// Writes snapshot entries in one transaction: one acknowledged request.
    fn save_snapshot(
        &mut self,
        export: &str,
        entries: &[(MemberKey, SnapshotEntry)],
    ) -> Result<()> {
        let tx = self.write_tx()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO snapshot (export, key, email, fingerprint, tags, status, owned, profiles) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (export, key) DO UPDATE SET email = excluded.email, fingerprint = excluded.fingerprint,
                   tags = excluded.tags, status = excluded.status, owned = excluded.owned, profiles = excluded.profiles",
            )?;
            for (k, e) in entries {
                insert_snapshot_row(&mut st, export, k, e)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn remove_snapshot_entries(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        let tx = self.write_tx()?;
        {
            let mut st =
                tx.prepare_cached("DELETE FROM snapshot WHERE export = ?1 AND key = ?2")?;
            for k in keys {
                st.execute(params![export, &k.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    //
    // Written before a run sends its creates, cleared when the run ends. If the process dies
    // after Mailchimp created a member but before the answer was checkpointed, the next run
    // finds the member in the audience and, through its intent, knows this export added it
    // (so that `--removal archive|unsubscribe` may one day remove it, as if nothing had
    // crashed), instead of taking it for a contact from elsewhere.

    /// Records that the export is about to create these members (key, address).
    fn record_create_intents(&mut self, export: &str, members: &[(MemberKey, &str)]) -> Result<()> {
        let tx = self.write_tx()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO create_intents (export, key, email) VALUES (?1, ?2, ?3)",
            )?;
            for (k, email) in members {
                st.execute(params![export, &k.0[..], email])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Members a run of the export meant to create, and did not see through (key, address).
    fn create_intents(&self, export: &str) -> Result<Vec<(MemberKey, String)>> {
        let mut st = self
            .conn
            .prepare("SELECT key, email FROM create_intents WHERE export = ?1")?;
        let mut rows = st.query([export])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let key: Vec<u8> = r.get(0)?;
            let key: [u8; 16] = key
                .try_into()
                .map_err(|_| StateError::Corrupt("create intent key".into()))?;
            out.push((MemberKey(key), r.get(1)?));
        }
        Ok(out)
    }

    /// Drops the intents of members found to exist already, added by someone else: not the
    /// export's own, whatever happens next.
    fn forget_create_intents(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        let tx = self.write_tx()?;
        {
            let mut st =
                tx.prepare_cached("DELETE FROM create_intents WHERE export = ?1 AND key = ?2")?;
            for k in keys {
                st.execute(params![export, &k.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn clear_create_intents(&self, export: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM create_intents WHERE export = ?1", [export])?;
        Ok(())
    }

    /// When the audience was last read, for the next `since_last_changed`.
    fn audience_read_at(&self, export: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT audience_read_at FROM sync_marks WHERE export = ?1",
                [export],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_audience_read_at(&self, export: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO sync_marks (export, audience_read_at) VALUES (?1, ?2) ON CONFLICT (export) DO UPDATE SET audience_read_at = excluded.audience_read_at",
            params![export, at],
        )?;
        Ok(())
    }

    fn snapshot_entries(
        &self,
        export: &str,
        keys: &[MemberKey],
    ) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        // One read transaction for all the lookups: alone, each would take and release the
        // file's locks (a run looks up 500 members per answer, and every member the audience
        // reports on the first re-run).
        let tx = self.conn.unchecked_transaction()?;
        let mut out = HashMap::with_capacity(keys.len());
        {
            let mut st = tx.prepare_cached(
                "SELECT email, fingerprint, tags, status, owned, profiles FROM snapshot WHERE export = ?1 AND key = ?2",
            )?;
            for k in keys {
                let e = st
                    .query_row(params![export, &k.0[..]], |r| snapshot_entry(r, 0))
                    .optional()?;
                if let Some(e) = e {
                    out.insert(*k, e);
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn has_snapshot(&self, export: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM snapshot WHERE export = ?1)",
            [export],
            |r| r.get(0),
        )?)
    }

    fn snapshot_statuses(&self, export: &str) -> Result<Vec<Status>> {
        let mut st = self.conn.prepare_cached(crate::state::SNAPSHOT_STATUSES)?;
        let texts = st
            .query_map([export], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        texts.iter().map(|t| known_status(t)).collect()
    }

    fn snapshot_in_key_order(&self, export: &str, sink: &mut SnapshotSink<'_>) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT key, email, fingerprint, tags, status, owned, profiles FROM snapshot WHERE export = ?1 ORDER BY key",
        )?;
        let mut rows = st.query([export])?;
        let mut batch = Vec::with_capacity(crate::state::STREAM_BATCH);
        while let Some(r) = rows.next()? {
            batch.push((member_key(r.get(0)?, "snapshot")?, snapshot_entry(r, 1)?));
            if batch.len() == crate::state::STREAM_BATCH {
                sink(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            sink(&batch)?;
        }
        Ok(())
    }
}

/// A snapshot status as stored.
fn known_status(text: &str) -> Result<Status> {
    Status::parse(text)
        .ok_or_else(|| StateError::Corrupt(format!("unknown status {text:?} in the snapshot")))
}
