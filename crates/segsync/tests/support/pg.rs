//! A PostgreSQL database of a test's own, on the machine's server (127.0.0.1:5432, user
//! postgres, trust authentication; `SEGSYNC_TEST_POSTGRES` names another server). Dropped
//! when the test ends, passed or failed. A test fails, never skips, when the server is not
//! there. Shared by the test crates that need PostgreSQL (`#[path]` includes).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server's URL (its `postgres` database).
pub fn server_url() -> String {
    std::env::var("SEGSYNC_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string())
}

fn admin() -> postgres::Client {
    let url = server_url();
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "these tests need PostgreSQL at {} (user postgres, trust authentication; \
             scripts/setup-postgres.sh starts it, SEGSYNC_TEST_POSTGRES names another): {e}",
            segsync::pg::redact(&url)
        )
    })
}

pub struct TestDb {
    pub name: String,
    /// `postgres://postgres@127.0.0.1:5432/NAME`
    pub url: String,
}

impl TestDb {
    /// A new, empty database named after `what`, the process and a counter.
    pub fn create(what: &str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let what: String = what
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(30)
            .collect();
        let name = format!(
            "segsync_{what}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let mut url = url::Url::parse(&server_url()).expect("a PostgreSQL URL");
        url.set_path(&format!("/{name}"));
        TestDb {
            name,
            url: url.to_string(),
        }
    }

    /// A login role of this database's own (`NAME_reader`, no password: the test server
    /// trusts local connections) that can connect and run `grants` (e.g. `GRANT USAGE ON
    /// SCHEMA crm TO {role}; GRANT SELECT ON crm.customers TO {role}`, `{role}` replaced by its
    /// name); the URL that logs in as it. Dropped with the database.
    pub fn reader(&self, grants: &str) -> String {
        let role = self.reader_role();
        admin()
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS \"{role}\"; CREATE ROLE \"{role}\" LOGIN; \
                 GRANT CONNECT ON DATABASE \"{}\" TO \"{role}\"",
                self.name
            ))
            .unwrap_or_else(|e| panic!("cannot create the role {role}: {e}"));
        self.client()
            .batch_execute(&grants.replace("{role}", &format!("\"{role}\"")))
            .unwrap_or_else(|e| panic!("cannot grant {grants} to {role}: {e}"));
        let mut url = url::Url::parse(&self.url).expect("a PostgreSQL URL");
        url.set_username(&role).expect("a user name");
        url.to_string()
    }

    fn reader_role(&self) -> String {
        format!("{}_reader", self.name)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let dropped =
            postgres::Client::connect(&server_url(), postgres::NoTls).and_then(|mut c| {
                // Two statements: DROP DATABASE cannot run in the implicit transaction of a
                // multi-statement query.
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))?;
                c.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.reader_role()))
            });
        if let Err(e) = dropped {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}
