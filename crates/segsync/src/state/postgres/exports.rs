//! Exports and the bit each of their tag names has in the snapshot on PostgreSQL: the [`ExportStore`](crate::state::ExportStore) of [`PgState`](super::PgState).

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

impl ExportStore for PgState {
    fn add_export(&self, e: &ExportConfig) -> Result<()> {
        let config = serde_json::to_string(e).expect("config serialises");
        self.execute_unique(
            "add an export",
            "INSERT INTO exports (name, config, created_at) VALUES ($1, $2, $3)",
            params![e.name.clone(), config, now()],
            msg::export_exists(&e.name),
        )?;
        Ok(())
    }

    fn export(&self, name: &str) -> Result<ExportConfig> {
        let row = self
            .query_opt(
                "read an export",
                "SELECT config FROM exports WHERE name = $1".into(),
                params![name.to_string()],
            )?
            .ok_or_else(|| msg::no_export_listed(name))?;
        msg::parse_export(name, &get::<String>(&row, 0)?)
    }

    fn exports(&self) -> Result<Vec<ExportConfig>> {
        self.query(
            "list exports",
            "SELECT name, config FROM exports ORDER BY name".into(),
            params![],
        )?
        .iter()
        .map(|r| msg::parse_export(&get::<String>(r, 0)?, &get::<String>(r, 1)?))
        .collect()
    }

    fn replace_export(&mut self, e: &ExportConfig) -> Result<()> {
        let new = e.clone();
        self.call(move |c| {
            let op = "replace an export";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let old = tx
                .query_opt(
                    "SELECT config FROM exports WHERE name = $1 FOR UPDATE",
                    &[&new.name],
                )
                .map_err(pe)?
                .ok_or_else(|| msg::no_export_listed(&new.name))?;
            let old = msg::parse_export(&new.name, &get::<String>(&old, 0)?)?;
            let config = serde_json::to_string(&new).expect("config serialises");
            tx.execute(
                "UPDATE exports SET config = $2 WHERE name = $1",
                &[&new.name, &config],
            )
            .map_err(pe)?;
            if old.connection != new.connection || old.audience_id != new.audience_id {
                for table in AUDIENCE_TABLES {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE export = $1"),
                        &[&new.name],
                    )
                    .map_err(pe)?;
                }
            }
            tx.commit().map_err(pe)
        })
    }

    fn remove_export(&mut self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.call(move |c| {
            let op = "remove an export";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let n = tx
                .execute("DELETE FROM exports WHERE name = $1", &[&name])
                .map_err(pe)?;
            if n == 0 {
                return Err(msg::no_export(&name));
            }
            for table in AUDIENCE_TABLES.iter().chain(&["suppressions"]) {
                tx.execute(&format!("DELETE FROM {table} WHERE export = $1"), &[&name])
                    .map_err(pe)?;
            }
            tx.commit().map_err(pe)
        })
    }

    fn tag_bits(&mut self, export: &str, tags: &[String]) -> Result<Vec<usize>> {
        let (export, tags) = (export.to_string(), tags.to_vec());
        self.call(move |c| {
            let op = "assign tag bits";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            // Two processes naming new tags of one export at once take turns.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&TAG_LOCK_CLASS, &export],
            )
            .map_err(pe)?;
            let mut bits = Vec::with_capacity(tags.len());
            for tag in &tags {
                let bit: Option<i64> = tx
                    .query_opt(
                        "SELECT bit FROM export_tags WHERE export = $1 AND tag = $2",
                        &[&export, tag],
                    )
                    .map_err(pe)?
                    .map(|r| r.get(0));
                let bit = match bit {
                    Some(b) => b,
                    None => {
                        let next: i64 = tx
                            .query_one(
                                "SELECT COALESCE(MAX(bit) + 1, 0) FROM export_tags WHERE export = $1",
                                &[&export],
                            )
                            .map_err(pe)?
                            .get(0);
                        if next as usize >= TagSet::MAX {
                            return Err(msg::too_many_tags(&export));
                        }
                        tx.execute(
                            "INSERT INTO export_tags (export, bit, tag) VALUES ($1, $2, $3)",
                            &[&export, &next, tag],
                        )
                        .map_err(pe)?;
                        next
                    }
                };
                bits.push(bit as usize);
            }
            tx.commit().map_err(pe)?;
            Ok(bits)
        })
    }

    fn tag_names(&self, export: &str) -> Result<HashMap<usize, String>> {
        self.query(
            "read tag names",
            "SELECT bit, tag FROM export_tags WHERE export = $1".into(),
            params![export.to_string()],
        )?
        .iter()
        .map(|r| Ok((get::<i64>(r, 0)? as usize, get::<String>(r, 1)?)))
        .collect()
    }
}
