//! Connections of a MySQL / MariaDB profile source: the URL (its password never shown), TLS
//! (`ssl-mode`), which server it is, and the watchdog that stops a statement over its time.
//!
//! URLs are `mysql://USER[:PASSWORD]@HOST[:PORT]/DB[?ssl-mode=MODE&ssl-ca=FILE]` (`mariadb://`
//! too). Without a password in the URL, `MYSQL_PWD` from the environment is used, as the
//! MySQL clients do. `ssl-mode` is one of MySQL's: `DISABLED`, `PREFERRED` (the default: TLS
//! when the server offers it), `REQUIRED` (TLS, certificate not checked), `VERIFY_CA` (the
//! certificate signed by `ssl-ca`, or by a public authority without it), `VERIFY_IDENTITY`
//! (also for the URL's host name); PostgreSQL's names (`disable`, `prefer`, `require`,
//! `verify-ca`, `verify-full`) are read the same way.

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, SslOpts};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How a connection uses TLS (`ssl-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(
            match value.to_ascii_lowercase().replace('_', "-").as_str() {
                "disabled" | "disable" => SslMode::Disabled,
                "preferred" | "prefer" => SslMode::Preferred,
                "required" | "require" => SslMode::Required,
                "verify-ca" => SslMode::VerifyCa,
                "verify-identity" | "verify-full" => SslMode::VerifyIdentity,
                _ => return None,
            },
        )
    }
}

/// Which server answers: the SQL of time limits differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::MySql => "MySQL",
            Flavor::MariaDb => "MariaDB",
        }
    }

    /// The session setting that stops a statement running longer than `limit`.
    pub fn time_limit(self, limit: Duration) -> String {
        let ms = limit.as_millis().clamp(1, u32::MAX as u128);
        match self {
            Flavor::MySql => format!("SESSION max_execution_time = {ms}"),
            Flavor::MariaDb => format!("SESSION max_statement_time = {:.3}", ms as f64 / 1000.0),
        }
    }
}

/// Whether `url` names a MySQL or MariaDB database (`mysql://` or `mariadb://`).
pub fn is_mysql_url(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// Where and how to connect; the password is inside `opts` (never printed: no `Debug`).
#[derive(Clone)]
pub struct Target {
    opts: Opts,
    ssl: SslMode,
    ca: Option<PathBuf>,
    /// The URL without its password.
    pub shown: String,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MyConnError {
    #[error("not a MySQL URL ({url}): {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {server} at {url}: {message}")]
    Connect {
        server: &'static str,
        url: String,
        message: String,
    },
}

impl Target {
    /// Reads `url` (see the module's documentation); the error names it without its password.
    pub fn parse(url: &str) -> Result<Target, MyConnError> {
        let shown = crate::pg::redact(url);
        let bad = |reason: String| MyConnError::BadUrl {
            url: shown.clone(),
            reason,
        };
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or_else(|| bad("it must start with mysql:// or mariadb://".into()))?;
        let (base, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let mut ssl = SslMode::Preferred;
        let mut ca = None;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key.to_ascii_lowercase().replace('_', "-").as_str() {
                "ssl-mode" | "sslmode" => {
                    ssl = SslMode::parse(&value).ok_or_else(|| {
                        bad(format!(
                            "ssl-mode \"{value}\" is not one of DISABLED, PREFERRED, REQUIRED, \
                             VERIFY_CA, VERIFY_IDENTITY"
                        ))
                    })?;
                }
                "ssl-ca" | "sslrootcert" => ca = Some(PathBuf::from(value)),
                "" => {}
                _ => kept.push(pair),
            }
        }
        let mut plain = format!("mysql://{base}");
        if !kept.is_empty() {
            plain.push('?');
            plain.push_str(&kept.join("&"));
        }
        let opts = Opts::from_url(&plain)
            .map_err(|e| bad(e.to_string().replace(url, &shown).replace(&plain, &shown)))?;
        let mut builder = OptsBuilder::from_opts(opts.clone())
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .init(vec!["SET NAMES utf8mb4"]);
        if opts.get_pass().is_none() {
            if let Ok(pw) = std::env::var("MYSQL_PWD") {
                builder = builder.pass(Some(pw));
            }
        }
        if let Some(path) = &ca {
            if !path.is_file() {
                return Err(bad(format!(
                    "ssl-ca {} is not a readable file",
                    path.display()
                )));
            }
        }
        Ok(Target {
            opts: builder.into(),
            ssl,
            ca,
            shown,
        })
    }

    /// A new connection, with TLS as `ssl-mode` says, and which server it is.
    pub fn connect(&self) -> Result<(Conn, Flavor), MyConnError> {
        let conn = match self.ssl_opts() {
            None => self.open(None),
            Some(ssl) if self.ssl == SslMode::Preferred => match self.open(Some(ssl)) {
                Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported)) => {
                    self.open(None)
                }
                other => other,
            },
            Some(ssl) => self.open(Some(ssl)),
        };
        let mut conn = conn.map_err(|e| self.connect_error(&e))?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .map_err(|e| self.connect_error(&e))?;
        let flavor = if version.unwrap_or_default().contains("MariaDB") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        Ok((conn, flavor))
    }

    fn open(&self, ssl: Option<SslOpts>) -> mysql::Result<Conn> {
        Conn::new(OptsBuilder::from_opts(self.opts.clone()).ssl_opts(ssl))
    }

    fn ssl_opts(&self) -> Option<SslOpts> {
        let ssl = SslOpts::default().with_root_cert_path(self.ca.clone());
        match self.ssl {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => {
                Some(ssl.with_danger_accept_invalid_certs(true))
            }
            SslMode::VerifyCa => Some(ssl.with_danger_skip_domain_validation(true)),
            SslMode::VerifyIdentity => Some(ssl),
        }
    }

    fn connect_error(&self, e: &mysql::Error) -> MyConnError {
        let message = match e {
            mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => format!(
                "the server does not offer TLS, which ssl-mode={} requires",
                match self.ssl {
                    SslMode::VerifyCa => "VERIFY_CA",
                    SslMode::VerifyIdentity => "VERIFY_IDENTITY",
                    _ => "REQUIRED",
                }
            ),
            other => self.explain_tls(error_text(other)),
        };
        MyConnError::Connect {
            server: "MySQL",
            url: self.shown.clone(),
            message,
        }
    }

    /// A clear sentence for a refused certificate (the driver gives rustls's reason only).
    fn explain_tls(&self, text: String) -> String {
        let ca = self
            .ca
            .as_ref()
            .map_or("(the public authorities)".to_string(), |p| {
                p.display().to_string()
            });
        if text.contains("UnknownIssuer") || text.contains("BadSignature") {
            format!(
                "the server's certificate is not signed by a certificate authority in ssl-ca {ca} \
                 ({text})"
            )
        } else if text.contains("NotValidForName") || text.contains("not valid for name") {
            let host = self.opts.get_ip_or_hostname();
            format!(
                "the server's certificate is not made out to the host name \"{host}\" \
                 (ssl-mode=VERIFY_IDENTITY checks it; VERIFY_CA does not)"
            )
        } else {
            text
        }
    }

    /// Asks the server, on a connection of its own, to stop what connection `id` runs.
    pub fn kill_query(&self, id: u32) {
        let killed = self
            .connect()
            .map_err(|e| e.to_string())
            .and_then(|(mut c, _)| {
                c.query_drop(format!("KILL QUERY {id}"))
                    .map_err(|e| error_text(&e))
            });
        if let Err(e) = killed {
            tracing::warn!(url = %self.shown, "could not stop a MySQL statement: {e}");
        }
    }
}

/// `%XX` escapes of a URL parameter's value decoded (a path like `/etc/ssl/my%20ca.pem`).
fn percent_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The server's own words for an error (MySQL's message with its code), else the client's.
pub fn error_text(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(db) => db.message.clone(),
        mysql::Error::IoError(io) => format!("{io}"),
        other => other.to_string(),
    }
}

/// The server's error code, if the server answered with an error.
pub fn error_code(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(db) => Some(db.code),
        _ => None,
    }
}

/// Counts the time a statement spends waiting for the server (not the time the caller takes
/// with its rows) and, past `limit`, has the server stop it (`KILL QUERY` on a connection of
/// its own). [`Watchdog::fired`] then says that the statement's error was the time limit.
pub struct Watchdog {
    clock: Arc<Clock>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Clock {
    start: Instant,
    /// Microseconds spent waiting, finished waits only.
    used: AtomicU64,
    /// Microseconds since `start` when the current wait began; `u64::MAX` when not waiting.
    since: AtomicU64,
    fired: AtomicBool,
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX - 1)
    }

    fn used(&self) -> Duration {
        let mut used = self.used.load(Ordering::Acquire);
        let since = self.since.load(Ordering::Acquire);
        if since != u64::MAX {
            used += self.now().saturating_sub(since);
        }
        Duration::from_micros(used)
    }
}

impl Watchdog {
    /// Starts watching connection `id` of `target`, waiting counted from now.
    pub fn start(target: &Target, id: u32, limit: Duration) -> Watchdog {
        let clock = Arc::new(Clock {
            start: Instant::now(),
            used: AtomicU64::new(0),
            since: AtomicU64::new(0),
            fired: AtomicBool::new(false),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let watched = Arc::clone(&clock);
        let target = target.clone();
        let thread = std::thread::Builder::new()
            .name("segsync-mysql-watch".into())
            .spawn(move || loop {
                let used = watched.used();
                if used >= limit {
                    watched.fired.store(true, Ordering::Release);
                    target.kill_query(id);
                    return;
                }
                let step =
                    (limit - used).clamp(Duration::from_millis(5), Duration::from_millis(100));
                if !matches!(
                    stopped.recv_timeout(step),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    return;
                }
            })
            .ok();
        Watchdog {
            clock,
            stop: Some(stop),
            thread,
        }
    }

    /// The caller waits for the server from now.
    pub fn waiting(&self) {
        self.clock.since.store(self.clock.now(), Ordering::Release);
    }

    /// The caller has its answer: the wait is counted and the clock stops.
    pub fn answered(&self) {
        let since = self.clock.since.swap(u64::MAX, Ordering::AcqRel);
        if since != u64::MAX {
            let waited = self.clock.now().saturating_sub(since);
            self.clock.used.fetch_add(waited, Ordering::AcqRel);
        }
    }

    /// Whether the time ran out (and the statement was stopped).
    pub fn fired(&self) -> bool {
        self.clock.fired.load(Ordering::Acquire)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_their_tls_settings_and_shown_without_password() {
        let t =
            Target::parse("mysql://ann:s3cret@db.example:3307/shop?ssl-mode=VERIFY_CA").unwrap();
        assert_eq!(t.ssl, SslMode::VerifyCa);
        assert_eq!(
            t.shown,
            "mysql://ann:***@db.example:3307/shop?ssl-mode=VERIFY_CA"
        );
        let t = Target::parse("mariadb://ann@db/shop").unwrap();
        assert_eq!(t.ssl, SslMode::Preferred);
        for bad in [
            "postgres://ann:s3cret@db/shop",
            "mysql://ann:s3cret@db/shop?ssl-mode=sometimes",
            "mysql://ann:s3cret@db/shop?ssl-ca=/nowhere/ca.pem",
        ] {
            let e = Target::parse(bad).err().expect(bad).to_string();
            assert!(!e.contains("s3cret"), "{e}");
            assert!(e.contains("ann:***@db"), "{e}");
        }
    }
}
