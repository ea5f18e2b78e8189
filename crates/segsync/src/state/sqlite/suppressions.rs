//! Suppression lists and remembered refusals on SQLite: the
//! [`SuppressionStore`](crate::state::SuppressionStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;
use crate::state::suppressions::{
    scope_column, scope_of, RefusalRecord, Suppression, SuppressionKind,
};

fn suppression_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, Suppression)> {
    let kind: String = r.get(1)?;
    Ok((
        r.get(0)?,
        kind,
        Suppression {
            export: None,
            kind: SuppressionKind::Email,
            value: r.get(2)?,
            note: r.get(3)?,
            added_by: r.get(4)?,
            added_at: r.get(5)?,
        },
    ))
}

fn refusal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RefusalRecord> {
    Ok(RefusalRecord {
        export: r.get(0)?,
        email: r.get(1)?,
        profile_key: r.get(2)?,
        fingerprint: r.get::<_, i64>(3)? as u64,
        reason: r.get(4)?,
        refused_at: r.get(5)?,
        run_id: r.get(6)?,
    })
}

impl SuppressionStore for SqliteState {
    fn add_suppression(&self, s: &Suppression) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO suppressions (export, kind, value, note, added_by, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                scope_column(s.export.as_deref()),
                s.kind.as_str(),
                s.value,
                s.note,
                s.added_by,
                s.added_at
            ],
        );
        match r {
            Err(err) if is_constraint(&err) => Err(msg::suppression_exists(
                s.export.as_deref(),
                s.kind.as_str(),
                &s.value,
            )),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn remove_suppression(
        &self,
        export: Option<&str>,
        kind: SuppressionKind,
        value: &str,
    ) -> Result<()> {
        let n = self.conn.execute(
            "DELETE FROM suppressions WHERE export = ?1 AND kind = ?2 AND value = ?3",
            params![scope_column(export), kind.as_str(), value],
        )?;
        if n == 0 {
            return Err(msg::no_suppression(export, kind.as_str(), value));
        }
        Ok(())
    }

    fn suppressions(&self, export: Option<&str>) -> Result<Vec<Suppression>> {
        let mut st = self.conn.prepare(
            "SELECT export, kind, value, note, added_by, added_at FROM suppressions WHERE export = ?1 ORDER BY kind, value",
        )?;
        let rows = st
            .query_map([scope_column(export)], suppression_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(scope, kind, s)| {
                Ok(Suppression {
                    export: scope_of(scope),
                    kind: SuppressionKind::parse(&kind)
                        .ok_or_else(|| msg::bad_suppression_kind(&kind))?,
                    ..s
                })
            })
            .collect()
    }

    fn remember_refusals(&self, refusals: &[RefusalRecord]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO refusals (export, email, profile_key, fingerprint, reason, refused_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in refusals {
                st.execute(params![
                    r.export,
                    r.email,
                    r.profile_key,
                    r.fingerprint as i64,
                    r.reason,
                    r.refused_at,
                    r.run_id
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn refusals(&self, export: &str) -> Result<Vec<RefusalRecord>> {
        let mut st = self.conn.prepare(
            "SELECT export, email, profile_key, fingerprint, reason, refused_at, run_id FROM refusals WHERE export = ?1 ORDER BY email",
        )?;
        let rows = st
            .query_map([export], refusal_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn forget_refusals(&self, export: &str, emails: &[String]) -> Result<u64> {
        let tx = self.conn.unchecked_transaction()?;
        let mut n = 0;
        {
            let mut st =
                tx.prepare_cached("DELETE FROM refusals WHERE export = ?1 AND email = ?2")?;
            for e in emails {
                n += st.execute(params![export, e])? as u64;
            }
        }
        tx.commit()?;
        Ok(n)
    }
}
