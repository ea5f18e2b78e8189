//! Users, API tokens, sessions, the audit log, settings and pending OAuth flows on PostgreSQL: the [`PeopleStore`](crate::state::PeopleStore) of [`PgState`](super::PgState).

use super::*;
use crate::state::stores::*;

impl PeopleStore for PgState {
    fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<()> {
        self.execute_unique(
            "add a user",
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            params![
                name.to_string(),
                role.as_str().to_string(),
                password_hash.to_string(),
                now()
            ],
            msg::user_exists(name),
        )?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<UserRecord> {
        self.query_opt(
            "read a user",
            "SELECT name, role, created_at FROM users WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| user_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_user(name))
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        self.query(
            "list users",
            "SELECT name, role, created_at FROM users ORDER BY name".into(),
            params![],
        )?
        .iter()
        .map(user_row)
        .collect()
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>> {
        self.query_opt(
            "read a password hash",
            "SELECT password_hash FROM users WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn set_password_hash(&self, name: &str, hash: &str) -> Result<()> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.call(move |c| {
            let op = "change a password";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = $2 WHERE name = $1",
                    &[&name, &hash],
                )
                .map_err(pe)?;
            if n == 0 {
                return Err(msg::no_user(&name));
            }
            tx.execute("DELETE FROM sessions WHERE \"user\" = $1", &[&name])
                .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn set_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.execute(
            "change a role",
            "UPDATE users SET role = $2 WHERE name = $1",
            params![name.to_string(), role.as_str().to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    fn remove_user(&self, name: &str) -> Result<()> {
        let n = self.execute(
            "remove a user",
            "DELETE FROM users WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    fn count_admins(&self) -> Result<u64> {
        Ok(get::<i64>(
            &self.query_one(
                "count admins",
                "SELECT COUNT(*) FROM users WHERE role = 'admin'".into(),
                params![],
            )?,
            0,
        )? as u64)
    }

    fn add_token(&self, user: &str, label: &str, token_hash: &[u8]) -> Result<i64> {
        get(
            &self.query_one(
                "add an API token",
                "INSERT INTO api_tokens (\"user\", label, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id".into(),
                params![user.to_string(), label.to_string(), token_hash.to_vec(), now()],
            )?,
            0,
        )
    }

    fn token_user(&self, token_hash: &[u8]) -> Result<Option<UserRecord>> {
        self.query_opt(
            "check an API token",
            "WITH t AS (UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1 RETURNING \"user\")
             SELECT u.name, u.role, u.created_at FROM t JOIN users u ON u.name = t.\"user\"".into(),
            params![token_hash.to_vec(), now()],
        )?
        .map(|r| user_row(&r))
        .transpose()
    }

    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>> {
        self.query(
            "list API tokens",
            "SELECT id, \"user\", label, created_at, last_used_at FROM api_tokens WHERE ($1::text IS NULL OR \"user\" = $1) ORDER BY id".into(),
            params![user.map(str::to_string)],
        )?
        .iter()
        .map(token_row)
        .collect()
    }

    fn revoke_token(&self, id: i64) -> Result<TokenRecord> {
        self.query_opt(
            "revoke an API token",
            "DELETE FROM api_tokens WHERE id = $1 RETURNING id, \"user\", label, created_at, last_used_at".into(),
            params![id],
        )?
        .map(|r| token_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_token(id))
    }

    fn add_session(&self, id_hash: &[u8], user: &str, csrf: &str, expires_at: &str) -> Result<()> {
        let (id_hash, user, csrf, expires_at) = (
            id_hash.to_vec(),
            user.to_string(),
            csrf.to_string(),
            expires_at.to_string(),
        );
        self.call(move |c| {
            let op = "open a session";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            tx.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now()])
                .map_err(pe)?;
            tx.execute(
                "INSERT INTO sessions (id_hash, \"user\", csrf, expires_at) VALUES ($1, $2, $3, $4)",
                &[&id_hash, &user, &csrf, &expires_at],
            )
            .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>> {
        self.query_opt(
            "read a session",
            "SELECT u.name, u.role, u.created_at, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.name = s.\"user\" WHERE s.id_hash = $1 AND s.expires_at >= $2".into(),
            params![id_hash.to_vec(), now()],
        )?
        .map(|r| {
            Ok(SessionRecord {
                user: user_row(&r)?,
                csrf: get(&r, 3)?,
                expires_at: get(&r, 4)?,
            })
        })
        .transpose()
    }

    fn remove_session(&self, id_hash: &[u8]) -> Result<()> {
        self.execute(
            "close a session",
            "DELETE FROM sessions WHERE id_hash = $1",
            params![id_hash.to_vec()],
        )?;
        Ok(())
    }

    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        self.execute(
            "write the audit log",
            "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
            params![
                now(),
                actor.to_string(),
                action.to_string(),
                target.to_string(),
                detail.to_string()
            ],
        )?;
        Ok(())
    }

    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        self.query(
            "read the audit log",
            "SELECT id, at, actor, action, target, detail FROM audit WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2".into(),
            params![before, limit as i64],
        )?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: get(r, 0)?,
                at: get(r, 1)?,
                actor: get(r, 2)?,
                action: get(r, 3)?,
                target: get(r, 4)?,
                detail: get(r, 5)?,
            })
        })
        .collect()
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        self.query_opt(
            "read a setting",
            "SELECT value FROM settings WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.execute(
                "write a setting",
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name.to_string(), v.to_string()],
            )?,
            None => self.execute(
                "write a setting",
                "DELETE FROM settings WHERE name = $1",
                params![name.to_string()],
            )?,
        };
        Ok(())
    }

    fn add_oauth_flow(&self, state: &str, user: &str, request: &str) -> Result<()> {
        self.execute(
            "begin an OAuth flow",
            "INSERT INTO oauth_flows (state, \"user\", request, created_at) VALUES ($1, $2, $3, $4)",
            params![state.to_string(), user.to_string(), request.to_string(), now()],
        )?;
        Ok(())
    }

    fn take_oauth_flow(&self, state: &str) -> Result<Option<(String, String, String)>> {
        self.query_opt(
            "take an OAuth flow",
            "DELETE FROM oauth_flows WHERE state = $1 RETURNING \"user\", request, created_at"
                .into(),
            params![state.to_string()],
        )?
        .map(|r| Ok((get(&r, 0)?, get(&r, 1)?, get(&r, 2)?)))
        .transpose()
    }
}
