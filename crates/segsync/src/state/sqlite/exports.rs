//! Exports and the bit each of their tag names has in the snapshot on SQLite: the [`ExportStore`](crate::state::ExportStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;

/// What an export holds of its audience: dropped when it moves to another one (its
/// suppression list stays: it names profiles, not members).
const AUDIENCE_TABLES: [&str; 5] = [
    "snapshot",
    "export_tags",
    "sync_marks",
    "create_intents",
    "refusals",
];

impl ExportStore for SqliteState {
    fn add_export(&self, e: &ExportConfig) -> Result<()> {
        let config = serde_json::to_string(e).expect("config serialises");
        let r = self.conn.execute(
            "INSERT INTO exports (name, config, created_at) VALUES (?1, ?2, ?3)",
            params![e.name, config, now()],
        );
        match r {
            Err(err) if is_constraint(&err) => Err(msg::export_exists(&e.name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn export(&self, name: &str) -> Result<ExportConfig> {
        let text: String = self
            .conn
            .query_row("SELECT config FROM exports WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| msg::no_export_listed(name))?;
        msg::parse_export(name, &text)
    }

    fn exports(&self) -> Result<Vec<ExportConfig>> {
        let mut st = self
            .conn
            .prepare("SELECT name, config FROM exports ORDER BY name")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(n, c)| msg::parse_export(&n, &c))
            .collect()
    }

    /// Replaces an export's configuration. Pointing it at another connection or audience
    /// starts it afresh there: its snapshot, tag dictionary and marks belong to the old
    /// audience and are dropped.
    fn replace_export(&mut self, e: &ExportConfig) -> Result<()> {
        let old = self.export(&e.name)?;
        let config = serde_json::to_string(e).expect("config serialises");
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE exports SET config = ?2 WHERE name = ?1",
            params![e.name, config],
        )?;
        if old.connection != e.connection || old.audience_id != e.audience_id {
            for table in AUDIENCE_TABLES {
                tx.execute(&format!("DELETE FROM {table} WHERE export = ?1"), [&e.name])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes an export with its snapshot and tag dictionary (its run history stays).
    fn remove_export(&mut self, name: &str) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute("DELETE FROM exports WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_export(name));
        }
        tx.execute("DELETE FROM snapshot WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM export_tags WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM sync_marks WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM create_intents WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM refusals WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM suppressions WHERE export = ?1", [name])?;
        tx.commit()?;
        Ok(())
    }

    /// The bit of each tag name for `export`, assigning new bits for new names (never reused).
    fn tag_bits(&mut self, export: &str, tags: &[String]) -> Result<Vec<usize>> {
        let tx = self.write_tx()?;
        let mut bits = Vec::with_capacity(tags.len());
        for tag in tags {
            let bit: Option<i64> = tx
                .query_row(
                    "SELECT bit FROM export_tags WHERE export = ?1 AND tag = ?2",
                    params![export, tag],
                    |r| r.get(0),
                )
                .optional()?;
            let bit = match bit {
                Some(b) => b,
                None => {
                    let next: i64 = tx.query_row(
                        "SELECT COALESCE(MAX(bit) + 1, 0) FROM export_tags WHERE export = ?1",
                        [export],
                        |r| r.get(0),
                    )?;
                    if next as usize >= TagSet::MAX {
                        return Err(msg::too_many_tags(export));
                    }
                    tx.execute(
                        "INSERT INTO export_tags (export, bit, tag) VALUES (?1, ?2, ?3)",
                        params![export, next, tag],
                    )?;
                    next
                }
            };
            bits.push(bit as usize);
        }
        tx.commit()?;
        Ok(bits)
    }

    /// Tag names by bit for `export`.
    fn tag_names(&self, export: &str) -> Result<HashMap<usize, String>> {
        let mut st = self
            .conn
            .prepare("SELECT bit, tag FROM export_tags WHERE export = ?1")?;
        let rows = st
            .query_map([export], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<HashMap<_, _>>>()?;
        Ok(rows)
    }
}
