//! Suppression lists and remembered refusals on PostgreSQL: the
//! [`SuppressionStore`](crate::state::SuppressionStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;
use crate::state::suppressions::{
    scope_column, scope_of, RefusalRecord, Suppression, SuppressionKind,
};

fn suppression_row(r: &Row) -> Result<Suppression> {
    let kind: String = get(r, 1)?;
    Ok(Suppression {
        export: scope_of(get(r, 0)?),
        kind: SuppressionKind::parse(&kind).ok_or_else(|| msg::bad_suppression_kind(&kind))?,
        value: get(r, 2)?,
        note: get(r, 3)?,
        added_by: get(r, 4)?,
        added_at: get(r, 5)?,
    })
}

fn refusal_row(r: &Row) -> Result<RefusalRecord> {
    Ok(RefusalRecord {
        export: get(r, 0)?,
        email: get(r, 1)?,
        profile_key: get(r, 2)?,
        fingerprint: get::<i64>(r, 3)? as u64,
        reason: get(r, 4)?,
        refused_at: get(r, 5)?,
        run_id: get(r, 6)?,
    })
}

impl SuppressionStore for PgState {
    fn add_suppression(&self, s: &Suppression) -> Result<()> {
        self.execute_unique(
            "add a suppression",
            "INSERT INTO suppressions (export, kind, value, note, added_by, added_at) VALUES ($1, $2, $3, $4, $5, $6)",
            params![
                scope_column(s.export.as_deref()),
                s.kind.as_str().to_string(),
                s.value.clone(),
                s.note.clone(),
                s.added_by.clone(),
                s.added_at.clone()
            ],
            msg::suppression_exists(s.export.as_deref(), s.kind.as_str(), &s.value),
        )?;
        Ok(())
    }

    fn remove_suppression(
        &self,
        export: Option<&str>,
        kind: SuppressionKind,
        value: &str,
    ) -> Result<()> {
        let n = self.execute(
            "remove a suppression",
            "DELETE FROM suppressions WHERE export = $1 AND kind = $2 AND value = $3",
            params![
                scope_column(export),
                kind.as_str().to_string(),
                value.to_string()
            ],
        )?;
        if n == 0 {
            return Err(msg::no_suppression(export, kind.as_str(), value));
        }
        Ok(())
    }

    fn suppressions(&self, export: Option<&str>) -> Result<Vec<Suppression>> {
        self.query(
            "list suppressions",
            "SELECT export, kind, value, note, added_by, added_at FROM suppressions WHERE export = $1 ORDER BY kind, value".into(),
            params![scope_column(export)],
        )?
        .iter()
        .map(suppression_row)
        .collect()
    }

    fn remember_refusals(&self, refusals: &[RefusalRecord]) -> Result<()> {
        let refusals = refusals.to_vec();
        self.call(move |c| {
            let op = "remember refusals";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let st = tx
                .prepare(
                    "INSERT INTO refusals (export, email, profile_key, fingerprint, reason, refused_at, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (export, email) DO UPDATE SET profile_key = EXCLUDED.profile_key, fingerprint = EXCLUDED.fingerprint, reason = EXCLUDED.reason, refused_at = EXCLUDED.refused_at, run_id = EXCLUDED.run_id",
                )
                .map_err(pe)?;
            for r in &refusals {
                let fp = r.fingerprint as i64;
                tx.execute(
                    &st,
                    &[&r.export, &r.email, &r.profile_key, &fp, &r.reason, &r.refused_at, &r.run_id],
                )
                .map_err(pe)?;
            }
            tx.commit().map_err(pe)
        })
    }

    fn refusals(&self, export: &str) -> Result<Vec<RefusalRecord>> {
        self.query(
            "list refusals",
            "SELECT export, email, profile_key, fingerprint, reason, refused_at, run_id FROM refusals WHERE export = $1 ORDER BY email".into(),
            params![export.to_string()],
        )?
        .iter()
        .map(refusal_row)
        .collect()
    }

    fn forget_refusals(&self, export: &str, emails: &[String]) -> Result<u64> {
        self.execute(
            "forget refusals",
            "DELETE FROM refusals WHERE export = $1 AND email = ANY($2)",
            params![export.to_string(), emails.to_vec()],
        )
    }
}
