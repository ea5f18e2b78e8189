//! What a MySQL source's user can read besides its profiles. Segment predicates run with the
//! source's user, so whatever it can read, a predicate can read too. `segsync profiles
//! source add` refuses a user with global rights (unless told otherwise) and warns about the
//! rest. Read from `information_schema` (the user's own grants; roles granted to it are not
//! followed).

use super::{Fault, MySqlSource, MySqlSourceError, PgRelation};
use mysql::prelude::Queryable;

/// Names shown in a warning; the rest are counted.
const SHOWN: usize = 5;

/// Global privileges that read everything or reach outside the databases.
const GLOBAL: [&str; 4] = ["SELECT", "FILE", "SUPER", "PROCESS"];

/// What the source's user can read beyond the relation of its profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MyReach {
    /// The user (`CURRENT_USER()`, `name@host`).
    pub user: String,
    /// Global privileges among [`GLOBAL`] (on `*.*`): it can read every database, or files.
    pub global: Vec<String>,
    /// Databases it may read every table of (`GRANT SELECT ON db.*`).
    pub databases: Vec<String>,
    /// Other tables it may read (`db.table`).
    pub other_tables: Vec<String>,
}

impl MyReach {
    /// Rights like a superuser's: predicates could read every database or the server's files.
    pub fn superuser(&self) -> bool {
        !self.global.is_empty()
    }

    /// What a person should be told, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let user = &self.user;
        let mut w = Vec::new();
        if self.superuser() {
            w.push(format!(
                "the source's user \"{user}\" has global privileges ({}): segment predicates \
                 (which contributors write) run with its rights and can read every database",
                self.global.join(", ")
            ));
        }
        for (what, names) in [
            ("database(s), every table of them", &self.databases),
            ("other table(s)", &self.other_tables),
        ] {
            if names.is_empty() {
                continue;
            }
            let n = names.len();
            let mut shown = names[..n.min(SHOWN)].join(", ");
            if n > SHOWN {
                shown.push_str(&format!(" and {} more", n - SHOWN));
            }
            w.push(format!(
                "the source's user \"{user}\" can also read {n} {what} ({shown}): segment \
                 predicates can read them too and show them in previews; give the source a \
                 user that can read only the profiles"
            ));
        }
        w
    }
}

impl MySqlSource {
    /// What the source's user can read besides the profiles.
    pub fn reach(&self) -> Result<MyReach, MySqlSourceError> {
        let own_table = match self.relation() {
            PgRelation::Table(t) => Some(t.clone()),
            PgRelation::Query(_) => None,
        };
        let limit = self.limits.check_timeout;
        self.call(
            super::Clock::Server(limit),
            move |conn, _| -> Result<MyReach, Fault> {
                let user: Option<String> = conn.query_first("SELECT CURRENT_USER()")?;
                let user = user.unwrap_or_default();
                let (name, host) = user.rsplit_once('@').unwrap_or((&user, "%"));
                let grantee = format!(
                    "'{}'@'{}'",
                    name.replace('\'', "''"),
                    host.replace('\'', "''")
                );
                let global: Vec<String> = conn.exec(
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?",
                (&grantee,),
            )?;
                let databases: Vec<String> = conn.exec(
                    "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.SCHEMA_PRIVILEGES \
                 WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'SELECT' ORDER BY 1",
                    (&grantee,),
                )?;
                let db: Option<String> = conn.query_first("SELECT DATABASE()")?;
                let db = db.unwrap_or_default();
                let tables: Vec<(String, String)> = conn.exec(
                "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLE_PRIVILEGES \
                 WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'SELECT' ORDER BY 1, 2",
                (&grantee,),
            )?;
                let other_tables = tables
                    .into_iter()
                    .filter(|(schema, table)| {
                        own_table.as_deref().is_none_or(|own| {
                            !(own == table && *schema == db) && own != format!("{schema}.{table}")
                        })
                    })
                    .map(|(schema, table)| format!("{schema}.{table}"))
                    .collect();
                Ok(MyReach {
                    user: user.clone(),
                    global: global
                        .into_iter()
                        .filter(|p| GLOBAL.contains(&p.as_str()))
                        .collect(),
                    databases,
                    other_tables,
                })
            },
        )
        .map_err(|f| self.source_error(f, limit))
    }
}
