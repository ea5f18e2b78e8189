//! Segments on PostgreSQL: the [`SegmentStore`](crate::state::SegmentStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;

impl SegmentStore for PgState {
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
        self.execute_unique(
            "add a segment",
            "INSERT INTO segments (name, predicate, source, created_at, rule) VALUES ($1, $2, $3, $4, $5)",
            params![
                name.to_string(),
                predicate.to_string(),
                source.map(str::to_string),
                now(),
                rule.map(str::to_string)
            ],
            msg::segment_exists(name),
        )?;
        Ok(())
    }

    fn segment(&self, name: &str) -> Result<SegmentRecord> {
        self.query_opt(
            "read a segment",
            "SELECT name, predicate, created_at, source, rule FROM segments WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| segment_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_segment_listed(name))
    }

    fn segments(&self) -> Result<Vec<SegmentRecord>> {
        self.query(
            "list segments",
            "SELECT name, predicate, created_at, source, rule FROM segments ORDER BY name".into(),
            params![],
        )?
        .iter()
        .map(segment_row)
        .collect()
    }

    fn set_segment_definition(
        &self,
        name: &str,
        predicate: &str,
        rule: Option<&str>,
    ) -> Result<()> {
        let n = self.execute(
            "change a segment",
            "UPDATE segments SET predicate = $2, rule = $3 WHERE name = $1",
            params![
                name.to_string(),
                predicate.to_string(),
                rule.map(str::to_string)
            ],
        )?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    fn remove_segment(&self, name: &str) -> Result<()> {
        msg::check_segment_unused(name, &self.exports()?)?;
        let n = self.execute(
            "remove a segment",
            "DELETE FROM segments WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    fn add_profile_source(&self, p: &ProfileSourceRecord) -> Result<()> {
        msg::check_relation_kind(&p.relation_kind)?;
        self.execute_unique(
            "add a profile source",
            "INSERT INTO profile_sources (name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at, cursor_column) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            params![
                p.name.clone(),
                p.kind.clone(),
                p.sealed_url.clone(),
                p.relation_kind.clone(),
                p.relation.clone(),
                p.key_column.clone(),
                p.email_hint.clone(),
                p.created_at.clone(),
                p.cursor_column.clone()
            ],
            msg::profile_source_exists(&p.name),
        )?;
        Ok(())
    }

    fn profile_source(&self, name: &str) -> Result<ProfileSourceRecord> {
        self.query_opt(
            "read a profile source",
            format!("SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources WHERE name = $1"),
            params![name.to_string()],
        )?
        .map(|r| profile_source_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_profile_source(name))
    }

    fn profile_sources(&self) -> Result<Vec<ProfileSourceRecord>> {
        self.query(
            "list profile sources",
            format!("SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources ORDER BY name"),
            params![],
        )?
        .iter()
        .map(profile_source_row)
        .collect()
    }

    fn remove_profile_source(&self, name: &str) -> Result<()> {
        let users = self
            .query(
                "remove a profile source",
                "SELECT name FROM segments WHERE source = $1 ORDER BY name".into(),
                params![name.to_string()],
            )?
            .iter()
            .map(|r| get::<String>(r, 0))
            .collect::<Result<Vec<_>>>()?;
        if !users.is_empty() {
            return Err(msg::profile_source_in_use(name, &users));
        }
        let n = self.execute(
            "remove a profile source",
            "DELETE FROM profile_sources WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_profile_source(name));
        }
        Ok(())
    }
}
