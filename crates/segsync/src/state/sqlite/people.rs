//! Users, API tokens, sessions, the audit log, settings and pending OAuth flows on SQLite: the [`PeopleStore`](crate::state::PeopleStore) of [`SqliteState`](super::SqliteState).

use super::*;
use crate::state::stores::*;

impl PeopleStore for SqliteState {
    fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), password_hash, now()],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    msg::user_exists(name)
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<UserRecord> {
        self.conn
            .query_row(
                "SELECT name, role, created_at FROM users WHERE name = ?1",
                [name],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_user(name))
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT name, role, created_at FROM users ORDER BY name")?;
        let rows = st
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The stored password hash (a PHC string), for verification only.
    fn password_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT password_hash FROM users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_password_hash(&self, name: &str, hash: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        // A new password ends every session opened with the old one.
        self.conn
            .execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        Ok(())
    }

    fn set_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE users SET role = ?2 WHERE name = ?1",
            params![name, role.as_str()],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    /// Removes a user with their sessions and tokens.
    fn remove_user(&self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    fn count_admins(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    fn add_token(&self, user: &str, label: &str, token_hash: &[u8]) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO api_tokens (user, label, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![user, label, token_hash, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The user a token (by its hash) belongs to; records its use.
    fn token_user(&self, token_hash: &[u8]) -> Result<Option<UserRecord>> {
        let user = self
            .conn
            .query_row(
                "SELECT u.name, u.role, u.created_at FROM api_tokens t JOIN users u ON u.name = t.user WHERE t.token_hash = ?1",
                [token_hash],
                user_from_row,
            )
            .optional()?;
        if user.is_some() {
            self.conn.execute(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE token_hash = ?1",
                params![token_hash, now()],
            )?;
        }
        Ok(user)
    }

    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>> {
        let mut st = self.conn.prepare(
            "SELECT id, user, label, created_at, last_used_at FROM api_tokens WHERE (?1 IS NULL OR user = ?1) ORDER BY id",
        )?;
        let rows = st
            .query_map([user], |r| {
                Ok(TokenRecord {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    label: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used_at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_token(&self, id: i64) -> Result<TokenRecord> {
        let t = self
            .tokens(None)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| msg::no_token(id))?;
        self.conn
            .execute("DELETE FROM api_tokens WHERE id = ?1", [id])?;
        Ok(t)
    }

    fn add_session(&self, id_hash: &[u8], user: &str, csrf: &str, expires_at: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE expires_at < ?1", [now()])?;
        self.conn.execute(
            "INSERT INTO sessions (id_hash, user, csrf, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![id_hash, user, csrf, expires_at],
        )?;
        Ok(())
    }

    /// The live session with this hash (expired ones are not returned).
    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT u.name, u.role, u.created_at, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?1 AND s.expires_at >= ?2",
                params![id_hash, now()],
                |r| {
                    Ok(SessionRecord {
                        user: user_from_row(r)?,
                        csrf: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    fn remove_session(&self, id_hash: &[u8]) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    /// Records who did what to what. `detail` must never hold a secret.
    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), actor, action, target, detail],
        )?;
        Ok(())
    }

    /// The newest entries first, `limit` of them, older than `before` when given.
    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let mut st = self.conn.prepare(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![before, limit as i64], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, v],
            )?,
            None => self
                .conn
                .execute("DELETE FROM settings WHERE name = ?1", [name])?,
        };
        Ok(())
    }

    fn add_oauth_flow(&self, state: &str, user: &str, request: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO oauth_flows (state, user, request, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![state, user, request, now()],
        )?;
        Ok(())
    }

    /// Takes (and forgets) a pending flow: its user, its request and when it began.
    fn take_oauth_flow(&self, state: &str) -> Result<Option<(String, String, String)>> {
        Ok(self
            .conn
            .query_row(
                "DELETE FROM oauth_flows WHERE state = ?1 RETURNING user, request, created_at",
                [state],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }
}
