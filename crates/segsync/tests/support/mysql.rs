//! A MySQL / MariaDB database of a test's own, on the machine's server (127.0.0.1:3306, user
//! root, empty password; `SEGSYNC_TEST_MYSQL` names another server). Dropped when the test
//! ends, passed or failed, with the users it made. A test fails, never skips, when the server
//! is not there (`scripts/setup-mariadb.sh` starts it). Shared by the test crates that need
//! MySQL (`#[path]` includes).

#![allow(dead_code)]

use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_SERVER: &str = "mysql://root@127.0.0.1:3306/mysql";

/// The password of the users [`MyTestDb::reader`] makes (to look for where it must not be).
pub const READER_PASSWORD: &str = "Rd-s3cret-7731";

/// The server's URL (as root).
pub fn server_url() -> String {
    std::env::var("SEGSYNC_TEST_MYSQL").unwrap_or_else(|_| DEFAULT_SERVER.to_string())
}

fn admin() -> mysql::Conn {
    let url = server_url();
    mysql::Conn::new(mysql::Opts::from_url(&url).expect("a MySQL URL")).unwrap_or_else(|e| {
        panic!(
            "these tests need MySQL or MariaDB at {} (user root, empty password; \
             scripts/setup-mariadb.sh starts it, SEGSYNC_TEST_MYSQL names another): {e}",
            segsync::pg::redact(&url)
        )
    })
}

pub struct MyTestDb {
    pub name: String,
    /// `mysql://root@127.0.0.1:3306/NAME`
    pub url: String,
    users: std::cell::RefCell<Vec<String>>,
}

impl MyTestDb {
    /// A new, empty database named after `what`, the process and a counter.
    pub fn create(what: &str) -> MyTestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let what: String = what
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(20)
            .collect();
        let name = format!(
            "segsync_{what}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin()
            .query_drop(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let server = server_url();
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        MyTestDb {
            url: format!("{base}/{name}"),
            name,
            users: Default::default(),
        }
    }

    pub fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(mysql::Opts::from_url(&self.url).expect("a MySQL URL"))
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.name))
    }

    /// Runs statements (`;`-separated) as root in this database.
    pub fn exec(&self, sql: &str) {
        self.conn()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    pub fn count(&self, table: &str) -> u64 {
        self.conn()
            .query_first(format!("SELECT COUNT(*) FROM {table}"))
            .unwrap()
            .unwrap_or(0)
    }

    /// A user of this database's own (`NAME_r`, password [`READER_PASSWORD`]) that can run `grants`
    /// (`{user}` replaced by its name, e.g. `GRANT SELECT ON {db}.customers TO {user}`,
    /// `{db}` by the database's); the URL that logs in as it, without its password (give it
    /// in `MYSQL_PWD`) unless `with_password`.
    pub fn reader(&self, grants: &str, with_password: bool) -> String {
        let user = format!("{}_r", self.name.replace("segsync_", "s"));
        let account = format!("'{user}'@'%'");
        let mut admin = admin();
        admin
            .query_drop(format!(
                "DROP USER IF EXISTS {account}; CREATE USER {account} IDENTIFIED BY '{READER_PASSWORD}'"
            ))
            .unwrap_or_else(|e| panic!("cannot create the user {user}: {e}"));
        self.users.borrow_mut().push(account.clone());
        let grants = grants
            .replace("{user}", &account)
            .replace("{db}", &format!("`{}`", self.name));
        admin
            .query_drop(&grants)
            .unwrap_or_else(|e| panic!("cannot grant {grants}: {e}"));
        let server = server_url();
        let rest = server
            .split_once('@')
            .map_or("127.0.0.1:3306/x", |(_, r)| r);
        let host = rest.split_once('/').map_or(rest, |(h, _)| h);
        let pw = if with_password {
            format!(":{READER_PASSWORD}")
        } else {
            String::new()
        };
        format!("mysql://{user}{pw}@{host}/{}", self.name)
    }
}

impl Drop for MyTestDb {
    fn drop(&mut self) {
        let mut sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        for u in self.users.borrow().iter() {
            sql.push_str(&format!("; DROP USER IF EXISTS {u}"));
        }
        if let Err(e) = admin().query_drop(&sql) {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}
