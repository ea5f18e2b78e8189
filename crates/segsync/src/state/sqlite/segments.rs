//! Segments on SQLite: the [`SegmentStore`](crate::state::SegmentStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;

impl SegmentStore for SqliteState {
    fn add_segment_with(
        &self,
        name: &str,
        predicate: &str,
        rule: Option<&str>,
        source: Option<&str>,
    ) -> Result<()> {
        if let Some(source) = source {
            self.profile_source(source)?;
        }
        let r = self.conn.execute(
            "INSERT INTO segments (name, predicate, source, created_at, rule) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, predicate, source, now(), rule],
        );
        match r {
            Err(e) if is_constraint(&e) => Err(msg::segment_exists(name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn segment(&self, name: &str) -> Result<SegmentRecord> {
        self.conn
            .query_row(
                "SELECT name, predicate, created_at, source, rule FROM segments WHERE name = ?1",
                [name],
                segment_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_segment_listed(name))
    }

    fn segments(&self) -> Result<Vec<SegmentRecord>> {
        let mut st = self.conn.prepare(
            "SELECT name, predicate, created_at, source, rule FROM segments ORDER BY name",
        )?;
        let rows = st
            .query_map([], segment_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn set_segment_definition(
        &self,
        name: &str,
        predicate: &str,
        rule: Option<&str>,
    ) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE segments SET predicate = ?2, rule = ?3 WHERE name = ?1",
            params![name, predicate, rule],
        )?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    fn remove_segment(&self, name: &str) -> Result<()> {
        msg::check_segment_unused(name, &self.exports()?)?;
        let n = self
            .conn
            .execute("DELETE FROM segments WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    fn add_profile_source(&self, p: &ProfileSourceRecord) -> Result<()> {
        msg::check_relation_kind(&p.relation_kind)?;
        let r = self.conn.execute(
            "INSERT INTO profile_sources (name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at, cursor_column) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![p.name, p.kind, p.sealed_url, p.relation_kind, p.relation, p.key_column, p.email_hint, p.created_at, p.cursor_column],
        );
        match r {
            Err(e) if is_constraint(&e) => Err(msg::profile_source_exists(&p.name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn profile_source(&self, name: &str) -> Result<ProfileSourceRecord> {
        self.conn
            .query_row(
                &format!("SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources WHERE name = ?1"),
                [name],
                profile_source_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_profile_source(name))
    }

    fn profile_sources(&self) -> Result<Vec<ProfileSourceRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources ORDER BY name"
        ))?;
        let rows = st
            .query_map([], profile_source_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn remove_profile_source(&self, name: &str) -> Result<()> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM segments WHERE source = ?1 ORDER BY name")?;
        let users = st
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        if !users.is_empty() {
            return Err(msg::profile_source_in_use(name, &users));
        }
        let n = self
            .conn
            .execute("DELETE FROM profile_sources WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_profile_source(name));
        }
        Ok(())
    }
}
