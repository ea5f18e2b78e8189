//! Connections to Mailchimp accounts, with their sealed secrets on PostgreSQL: the [`ConnectionStore`](crate::state::ConnectionStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;
use crate::state::ConnectionHealth;

impl ConnectionStore for PgState {
    fn add_connection(&self, c: &ConnectionRecord) -> Result<()> {
        self.execute_unique(
            "add a connection",
            "INSERT INTO connections (name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at, account_id, slot_budget)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            params![
                c.name.clone(),
                c.display_name.clone(),
                c.base_url.clone(),
                c.credential_kind.as_str().to_string(),
                c.sealed_secret.clone(),
                c.consent_by.clone(),
                c.consent_at.clone(),
                c.shared_with_contributors,
                c.export_user.clone(),
                c.created_at.clone(),
                c.account_id.clone(),
                c.slot_budget.map(|b| b as i32)
            ],
            msg::connection_exists(&c.name),
        )?;
        Ok(())
    }

    fn connection(&self, name: &str) -> Result<ConnectionRecord> {
        self.query_opt(
            "read a connection",
            format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = $1"),
            params![name.to_string()],
        )?
        .map(|r| connection_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_connection_listed(name))
    }

    fn connections(&self) -> Result<Vec<ConnectionRecord>> {
        self.query(
            "list connections",
            format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY name"),
            params![],
        )?
        .iter()
        .map(connection_row)
        .collect()
    }

    fn update_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let n = self.execute(
            "update a connection",
            "UPDATE connections SET display_name = $2, base_url = $3, credential_kind = $4, sealed_secret = $5, consent_by = $6, consent_at = $7, shared_with_contributors = $8, export_user = $9, account_id = $10, slot_budget = $11 WHERE name = $1",
            params![
                c.name.clone(),
                c.display_name.clone(),
                c.base_url.clone(),
                c.credential_kind.as_str().to_string(),
                c.sealed_secret.clone(),
                c.consent_by.clone(),
                c.consent_at.clone(),
                c.shared_with_contributors,
                c.export_user.clone(),
                c.account_id.clone(),
                c.slot_budget.map(|b| b as i32)
            ],
        )?;
        if n == 0 {
            return Err(msg::no_connection(&c.name));
        }
        Ok(())
    }

    fn set_connection_account(&self, name: &str, account_id: &str) -> Result<()> {
        let n = self.execute(
            "record a connection's account",
            "UPDATE connections SET account_id = $2 WHERE name = $1",
            params![name.to_string(), account_id.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        Ok(())
    }

    fn set_connection_health(&self, name: &str, h: &ConnectionHealth) -> Result<()> {
        let n = self.execute(
            "record a connection's health",
            "UPDATE connections SET account_name = COALESCE($2, account_name), health = $3, health_detail = $4, health_checked_at = $5 WHERE name = $1",
            params![
                name.to_string(),
                h.account_name.clone(),
                h.status.clone(),
                h.detail.clone(),
                h.checked_at.clone()
            ],
        )?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        Ok(())
    }

    fn connection_health(&self, name: &str) -> Result<Option<ConnectionHealth>> {
        let row = self
            .query_opt(
                "read a connection's health",
                "SELECT account_name, health, health_detail, health_checked_at FROM connections WHERE name = $1".into(),
                params![name.to_string()],
            )?
            .ok_or_else(|| msg::no_connection(name))?;
        let status: Option<String> = get(&row, 1)?;
        Ok(match status {
            None => None,
            Some(status) => Some(ConnectionHealth {
                account_name: get(&row, 0)?,
                status,
                detail: get(&row, 2)?,
                checked_at: get::<Option<String>>(&row, 3)?.unwrap_or_default(),
            }),
        })
    }

    fn remove_connection(&self, name: &str) -> Result<()> {
        let n = self.execute(
            "remove a connection",
            "DELETE FROM connections WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        Ok(())
    }
}
