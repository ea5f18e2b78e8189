//! Connections to Mailchimp accounts, with their sealed secrets on SQLite: the [`ConnectionStore`](crate::state::ConnectionStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;
use crate::state::ConnectionHealth;

impl ConnectionStore for SqliteState {
    fn add_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO connections (name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at, account_id, slot_budget)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![c.name, c.display_name, c.base_url, c.credential_kind.as_str(), c.sealed_secret, c.consent_by, c.consent_at, c.shared_with_contributors, c.export_user, c.created_at, c.account_id, c.slot_budget],
        );
        match r {
            Err(e) if is_constraint(&e) => Err(msg::connection_exists(&c.name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn connection(&self, name: &str) -> Result<ConnectionRecord> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM connections WHERE name = ?1",
                    CONNECTION_COLUMNS
                ),
                [name],
                connection_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_connection_listed(name))
    }

    fn connections(&self) -> Result<Vec<ConnectionRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {} FROM connections ORDER BY name",
            CONNECTION_COLUMNS
        ))?;
        let rows = st
            .query_map([], connection_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Changes what may change of a connection after its creation: its display name, who may
    /// use it, the export user, and (on re-authentication) its credential and API root.
    fn update_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE connections SET display_name = ?2, base_url = ?3, credential_kind = ?4, sealed_secret = ?5, consent_by = ?6, consent_at = ?7, shared_with_contributors = ?8, export_user = ?9, account_id = ?10, slot_budget = ?11 WHERE name = ?1",
            params![c.name, c.display_name, c.base_url, c.credential_kind.as_str(), c.sealed_secret, c.consent_by, c.consent_at, c.shared_with_contributors, c.export_user, c.account_id, c.slot_budget],
        )?;
        if n == 0 {
            return Err(msg::no_connection(&c.name));
        }
        Ok(())
    }

    fn set_connection_account(&self, name: &str, account_id: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE connections SET account_id = ?2 WHERE name = ?1",
            params![name, account_id],
        )?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        Ok(())
    }

    fn set_connection_health(&self, name: &str, h: &ConnectionHealth) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE connections SET account_name = COALESCE(?2, account_name), health = ?3, health_detail = ?4, health_checked_at = ?5 WHERE name = ?1",
            params![name, h.account_name, h.status, h.detail, h.checked_at],
        )?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        Ok(())
    }

    fn connection_health(&self, name: &str) -> Result<Option<ConnectionHealth>> {
        let row = self
            .conn
            .query_row(
                "SELECT account_name, health, health_detail, health_checked_at FROM connections WHERE name = ?1",
                [name],
                |r| {
                    let status: Option<String> = r.get(1)?;
                    Ok(status.map(|status| -> rusqlite::Result<ConnectionHealth> {
                        Ok(ConnectionHealth {
                            account_name: r.get(0)?,
                            status,
                            detail: r.get(2)?,
                            checked_at: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        })
                    }))
                },
            )
            .optional()?
            .ok_or_else(|| msg::no_connection(name))?;
        Ok(row.transpose()?)
    }

    /// Removes a connection and its sealed secret; the exports on it stop running.
    fn remove_connection(&self, name: &str) -> Result<()> {
        // Overwrite before deleting, so the sealed secret does not linger in free pages.
        self.conn.execute("UPDATE connections SET sealed_secret = zeroblob(length(sealed_secret)) WHERE name = ?1", [name])?;
        let n = self
            .conn
            .execute("DELETE FROM connections WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}
