//! What each export delivered on PostgreSQL: the [`SnapshotStore`](crate::state::SnapshotStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;

impl SnapshotStore for PgState {
    fn snapshot(&self, export: &str) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        let mut out = HashMap::new();
        self.stream(
            "read a snapshot",
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshot WHERE export = $1"),
            params![export.to_string()],
            snapshot_row,
            &mut |batch| {
                out.extend(batch);
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn save_snapshot(
        &mut self,
        export: &str,
        entries: &[(MemberKey, SnapshotEntry)],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (keys, emails, fps, tags, statuses, owned, profiles) = snapshot_arrays(entries);
        self.execute(
            "save a snapshot checkpoint",
            "INSERT INTO snapshot (export, key, email, fingerprint, tags, status, owned, profiles)
             SELECT $1::text, * FROM unnest($2::bytea[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::bool[], $8::text[])
             ON CONFLICT (export, key) DO UPDATE SET email = excluded.email, fingerprint = excluded.fingerprint,
               tags = excluded.tags, status = excluded.status, owned = excluded.owned, profiles = excluded.profiles",
            params![export.to_string(), keys, emails, fps, tags, statuses, owned, profiles],
        )?;
        Ok(())
    }

    fn remove_snapshot_entries(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.0.to_vec()).collect();
        self.execute(
            "remove snapshot entries",
            "DELETE FROM snapshot WHERE export = $1 AND key = ANY($2)",
            params![export.to_string(), keys],
        )?;
        Ok(())
    }

    fn snapshot_entries(
        &self,
        export: &str,
        keys: &[MemberKey],
    ) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.0.to_vec()).collect();
        self.query(
            "read snapshot entries",
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshot WHERE export = $1 AND key = ANY($2)"),
            params![export.to_string(), keys],
        )?
        .iter()
        .map(snapshot_row)
        .collect()
    }

    fn has_snapshot(&self, export: &str) -> Result<bool> {
        get(
            &self.query_one(
                "read a snapshot",
                "SELECT EXISTS (SELECT 1 FROM snapshot WHERE export = $1)".into(),
                params![export.to_string()],
            )?,
            0,
        )
    }

    fn snapshot_statuses(&self, export: &str) -> Result<Vec<Status>> {
        self.query(
            "read a snapshot",
            crate::state::SNAPSHOT_STATUSES.replace("?1", "$1"),
            params![export.to_string()],
        )?
        .iter()
        .map(|r| {
            let text: String = get(r, 0)?;
            Status::parse(&text).ok_or_else(|| {
                StateError::Corrupt(format!("unknown status {text:?} in the snapshot"))
            })
        })
        .collect()
    }

    fn snapshot_in_key_order(&self, export: &str, sink: &mut SnapshotSink<'_>) -> Result<()> {
        self.stream(
            "read a snapshot",
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshot WHERE export = $1 ORDER BY key"),
            params![export.to_string()],
            snapshot_row,
            &mut |batch| sink(&batch),
        )
    }

    fn record_create_intents(&mut self, export: &str, members: &[(MemberKey, &str)]) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = members.iter().map(|(k, _)| k.0.to_vec()).collect();
        let emails: Vec<String> = members.iter().map(|(_, e)| e.to_string()).collect();
        self.execute(
            "record create intents",
            "INSERT INTO create_intents (export, key, email)
             SELECT $1::text, * FROM unnest($2::bytea[], $3::text[]) ON CONFLICT (export, key) DO NOTHING",
            params![export.to_string(), keys, emails],
        )?;
        Ok(())
    }

    fn create_intents(&self, export: &str) -> Result<Vec<(MemberKey, String)>> {
        self.query(
            "read create intents",
            "SELECT key, email FROM create_intents WHERE export = $1".into(),
            params![export.to_string()],
        )?
        .iter()
        .map(|r| Ok((key_of(get(r, 0)?, "create intent")?, get(r, 1)?)))
        .collect()
    }

    fn forget_create_intents(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.0.to_vec()).collect();
        self.execute(
            "forget create intents",
            "DELETE FROM create_intents WHERE export = $1 AND key = ANY($2)",
            params![export.to_string(), keys],
        )?;
        Ok(())
    }

    fn clear_create_intents(&self, export: &str) -> Result<()> {
        self.execute(
            "clear create intents",
            "DELETE FROM create_intents WHERE export = $1",
            params![export.to_string()],
        )?;
        Ok(())
    }

    fn audience_read_at(&self, export: &str) -> Result<Option<String>> {
        self.query_opt(
            "read a sync mark",
            "SELECT audience_read_at FROM sync_marks WHERE export = $1".into(),
            params![export.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn set_audience_read_at(&self, export: &str, at: &str) -> Result<()> {
        self.execute(
            "write a sync mark",
            "INSERT INTO sync_marks (export, audience_read_at) VALUES ($1, $2) ON CONFLICT (export) DO UPDATE SET audience_read_at = excluded.audience_read_at",
            params![export.to_string(), at.to_string()],
        )?;
        Ok(())
    }
}
