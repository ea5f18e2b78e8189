//! PostgreSQL connections for the state store and the PostgreSQL profile source.
//!
//! The `postgres` crate's client is blocking and drives its own small runtime, which must not
//! run on a thread that drives tokio tasks (it would panic). A [`PgThread`] owns one client
//! on a thread of its own and runs closures there, so that callers (CLI, engine, server
//! handlers) can use it from anywhere, like a SQLite connection.
//!
//! URLs may carry a password. It never appears in errors or `Debug` output: [`redact`] hides
//! it, and when a URL has none, `PGPASSWORD` from the environment is used, so that the
//! password need not be on a command line at all.
//!
//! Connections use TLS as the URL's `sslmode` and `sslrootcert` say (default `prefer`), on
//! rustls: see [`crate::pg_tls`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;

/// A job for the connection's thread.
type Job = Box<dyn FnOnce(&mut postgres::Client) + Send>;

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("not a PostgreSQL URL ({url}): {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to PostgreSQL at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the PostgreSQL connection to {url} is closed")]
    Closed { url: String },
}

/// `url` with every password in it replaced by `***`, read the way the driver reads it: the
/// user-info password of a URL with any number of hosts (`postgres://u:pw@h1:1,h2:5432/db`,
/// which a URL parser refuses), a `password` query parameter, and the `password` of a
/// key=value connection string, quoted or not. Nothing else changes, so a redacted URL still
/// says where it points. Every URL segsync shows or stores in clear goes through this.
pub fn redact(url: &str) -> String {
    match url.find("://") {
        Some(i) => redact_uri(&url[..i + 3], &url[i + 3..]),
        None => redact_conninfo(url),
    }
}

/// `scheme://` and what follows it: the password of the user info (up to the last `@` before
/// the query, so an unencoded `@` or `/` in a password hides too) and of the query.
fn redact_uri(scheme: &str, rest: &str) -> String {
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let mut out = String::from(scheme);
    match authority_and_path.rfind('@') {
        Some(at) => {
            let (userinfo, hosts) = authority_and_path.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(hosts);
        }
        None => out.push_str(authority_and_path),
    }
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A key=value connection string (`host=db password='a b' dbname=x`): each value copied as
/// it is, but the password's, which becomes `***`.
fn redact_conninfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let copy_spaces = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String| {
        while let Some(c) = chars.next_if(|c| c.is_whitespace()) {
            out.push(c);
        }
    };
    loop {
        copy_spaces(&mut chars, &mut out);
        if chars.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        out.push_str(&key);
        copy_spaces(&mut chars, &mut out);
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        out.push('=');
        copy_spaces(&mut chars, &mut out);
        let value = conninfo_value(&mut chars);
        if key.eq_ignore_ascii_case("password") {
            out.push_str("***");
        } else {
            out.push_str(&value);
        }
    }
}

/// One value of a connection string as written: a quoted one (backslash escapes) or a run of
/// non-space characters.
fn conninfo_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut value = String::new();
    if chars.next_if_eq(&'\'').is_some() {
        value.push('\'');
        while let Some(c) = chars.next() {
            value.push(c);
            match c {
                '\\' => value.extend(chars.next()),
                '\'' => break,
                _ => {}
            }
        }
    } else {
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            value.push(c);
        }
    }
    value
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The client configuration of `url`, with `PGPASSWORD` as the password when the URL has
/// none, and the TLS connector its `sslmode` and `sslrootcert` ask for.
pub fn config(url: &str) -> Result<(postgres::Config, crate::pg_tls::Connector), PgError> {
    let bad = |reason: String| PgError::BadUrl {
        url: redact(url),
        reason: strip_url(&reason, url),
    };
    let tls = crate::pg_tls::split(url).map_err(bad)?;
    let connector = crate::pg_tls::Connector::new(tls.mode, tls.root.as_deref()).map_err(bad)?;
    let mut config: postgres::Config = tls
        .rest
        .parse()
        .map_err(|e: postgres::Error| bad(e.to_string()))?;
    config.ssl_mode(tls.mode.client_mode());
    if config.get_password().is_none() {
        if let Some(pw) = std::env::var_os("PGPASSWORD") {
            config.password(pw.to_string_lossy().as_bytes());
        }
    }
    if config.get_application_name().is_none() {
        config.application_name("segsync");
    }
    if config.get_connect_timeout().is_none() {
        // An unreachable host fails in seconds, not after the system's TCP timeout.
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    Ok((config, connector))
}

/// An error message that might quote the URL, with the URL replaced by its redacted form.
fn strip_url(message: &str, url: &str) -> String {
    message.replace(url, &redact(url))
}

/// What a connection is for. Connections of one use are never handed to the other: a
/// profile source's connections run segment predicates (written by contributors), the state
/// store's hold the installation's secrets and locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgUse {
    /// The state store.
    State,
    /// A PostgreSQL profile source.
    Source,
}

/// Idle connections, for reuse: the state store is opened for every operation of the server
/// and the CLI, and a new PostgreSQL connection costs a server process and a few milliseconds.
/// Keyed by use and the URL as given, so that the state store and a profile source on the
/// same database never share a connection.
static IDLE: Mutex<Vec<(PoolKey, mpsc::Sender<Job>)>> = Mutex::new(Vec::new());
/// Idle connections kept per use and URL; more are closed.
const MAX_IDLE: usize = 8;

type PoolKey = (PgUse, String);

/// Puts a session back as a new connection has it, but for the statements the client prepared
/// (its cache of type lookups names them, so `DISCARD ALL`, which would drop them, cannot be
/// used): an open transaction rolled back, cursors closed, settings back to their defaults,
/// no `LISTEN`, advisory locks released, plans, sequence values and temporary tables
/// forgotten. Whether the connection answered.
pub fn reset_session(client: &mut postgres::Client) -> bool {
    client
        .batch_execute(
            "ROLLBACK; CLOSE ALL; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); \
             DISCARD PLANS; DISCARD SEQUENCES; DISCARD TEMP",
        )
        .is_ok()
}

/// One PostgreSQL connection on a thread of its own. Dropped, it goes back to a small pool of
/// idle connections of the same use to the same URL (closed when the pool is full or it
/// broke), its session reset first ([`reset_session`]) so that nothing a caller left behind
/// (an advisory lock, a setting) lives on while it is idle or reaches its next caller.
pub struct PgThread {
    jobs: Option<mpsc::Sender<Job>>,
    url: String,
    /// The use and the URL as given, the pool's key.
    key: PoolKey,
    /// A call found the connection closed: not to be reused.
    broken: AtomicBool,
}

impl Drop for PgThread {
    fn drop(&mut self) {
        let Some(jobs) = self.jobs.take() else { return };
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        // Queued before any job of its next user; a connection that fails it is closed.
        let reset: Job = Box::new(|client| {
            if !reset_session(client) {
                tracing::debug!("a pooled PostgreSQL connection did not reset; closing it");
                let _ = client.simple_query("SELECT pg_terminate_backend(pg_backend_pid())");
            }
        });
        if jobs.send(reset).is_err() {
            return;
        }
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.iter().filter(|(k, _)| *k == self.key).count() < MAX_IDLE {
            let key = (self.key.0, std::mem::take(&mut self.key.1));
            idle.push((key, jobs));
        }
    }
}

/// An idle connection of `use_` to `url` that still answers, its session reset, if there is
/// one.
fn reuse(use_: PgUse, url: &str, shown: &str) -> Option<PgThread> {
    loop {
        let jobs = {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            let i = idle.iter().position(|(k, _)| k.0 == use_ && k.1 == url)?;
            idle.swap_remove(i).1
        };
        let t = PgThread {
            jobs: Some(jobs),
            url: shown.to_string(),
            key: (use_, url.to_string()),
            broken: AtomicBool::new(false),
        };
        // The server may have closed it meanwhile (a restart, an idle timeout).
        if let Ok(true) = t.call(reset_session) {
            return Some(t);
        }
        t.broken.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for PgThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgThread").field("url", &self.url).finish()
    }
}

impl PgThread {
    /// Connects to `url` (password from the URL or `PGPASSWORD`) for `use_`, reusing an idle
    /// connection of the same use; the error names the URL without its password.
    pub fn connect(url: &str, use_: PgUse) -> Result<PgThread, PgError> {
        let shown = redact(url);
        if let Some(t) = reuse(use_, url, &shown) {
            return Ok(t);
        }
        let (config, tls) = config(url)?;
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("segsync-pg".into())
            .spawn(move || {
                let mut client = match config.connect(tls) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(error_text(&e)));
                        return;
                    }
                };
                for job in queue {
                    job(&mut client);
                }
            })
            .map_err(|e| PgError::Connect {
                url: shown.clone(),
                message: format!("cannot start a thread: {e}"),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(PgThread {
                jobs: Some(jobs),
                url: shown,
                key: (use_, url.to_string()),
                broken: AtomicBool::new(false),
            }),
            Ok(Err(message)) => Err(PgError::Connect {
                url: shown,
                message: strip_url(&message, url),
            }),
            Err(_) => Err(PgError::Closed { url: shown }),
        }
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` on the connection and waits for its answer.
    pub fn call<R, F>(&self, f: F) -> Result<R, PgError>
    where
        R: Send + 'static,
        F: FnOnce(&mut postgres::Client) -> R + Send + 'static,
    {
        self.submit(f)?.recv().map_err(|_| self.closed())
    }

    fn closed(&self) -> PgError {
        self.broken.store(true, Ordering::Relaxed);
        PgError::Closed {
            url: self.url.clone(),
        }
    }

    /// Keeps this connection out of the pool when it is dropped: for a caller that saw it
    /// fail (a closed connection answers every call with an error).
    pub fn discard(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    /// Starts `f` on the connection and returns at once; the answer arrives on the receiver.
    /// For streaming: `f` may send rows through a channel of its own while the caller reads
    /// them (when the caller drops its end, `f`'s sends fail and it should stop).
    pub fn submit<R, F>(&self, f: F) -> Result<mpsc::Receiver<R>, PgError>
    where
        R: Send + 'static,
        F: FnOnce(&mut postgres::Client) -> R + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or_else(|| self.closed())?;
        jobs.send(Box::new(move |client| {
            if client.is_closed() {
                // Dropping `tx` unanswered tells the caller the connection is gone.
                return;
            }
            let _ = tx.send(f(client));
        }))
        .map_err(|_| self.closed())?;
        Ok(rx)
    }
}

/// PostgreSQL's own words for an error: the server's message (with its detail and hint when
/// it has them), else the client's.
pub fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                s.push_str(&format!("; hint: {hint}"));
            }
            s
        }
        None => {
            // The client's error, with its causes (a TLS handshake's says why it failed).
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !s.contains(&text) {
                    s.push_str(&format!(": {text}"));
                }
                cause = c.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://ann:s3cret@db.example:5432/segsync"),
            "postgres://ann:***@db.example:5432/segsync"
        );
        assert_eq!(
            redact("postgres://ann@db.example/segsync"),
            "postgres://ann@db.example/segsync"
        );
        assert_eq!(
            redact("host=db user=ann password=s3cret dbname=x"),
            "host=db user=ann password=*** dbname=x"
        );
    }

    /// The audit's case: a URL with several hosts, which a URL parser refuses, kept its
    /// password; and the other places a password can stand.
    #[test]
    fn redact_hides_every_password_the_driver_would_read() {
        for (given, shown) in [
            (
                "postgres://u:PW@h1:1,h2:5432/db",
                "postgres://u:***@h1:1,h2:5432/db",
            ),
            (
                "postgresql://u:p@ss/w@h1,h2/db?sslmode=require",
                "postgresql://u:***@h1,h2/db?sslmode=require",
            ),
            (
                "postgres://h1/db?user=u&password=PW&sslmode=require",
                "postgres://h1/db?user=u&password=***&sslmode=require",
            ),
            (
                "host=h1,h2 password = 'P W\\' x' dbname=db",
                "host=h1,h2 password = *** dbname=db",
            ),
            (
                "sqlite:/var/lib/segsync/state.sqlite",
                "sqlite:/var/lib/segsync/state.sqlite",
            ),
        ] {
            assert_eq!(redact(given), shown, "{given}");
            assert!(!redact(given).contains("PW"), "{given}");
        }
    }

    #[test]
    fn a_failed_connection_does_not_show_the_password() {
        let e = PgThread::connect("postgres://ann:s3cret@127.0.0.1:1/nothing", PgUse::Source)
            .unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("postgres://ann:***@127.0.0.1:1/nothing"),
            "{text}"
        );
    }
}
