//! What keeps password guessing slow and cheap for the server: failed logins are counted per
//! account and per client address, and past a limit that name or address must wait
//! (`429 Too Many Requests` with `Retry-After`) before any password of it is checked again,
//! the right one included; and every argon2 hash or check runs on a blocking thread, a few
//! at a time, so that a burst of logins never slows down the other requests.
//!
//! | what | limit |
//! | --- | --- |
//! | failed logins of one user name (known or not) | [`ACCOUNT_FAILURES`] within [`WINDOW`] |
//! | failed logins from one client address (any names) | [`ADDRESS_FAILURES`] within [`WINDOW`] |
//! | the first wait past a limit | [`FIRST_WAIT`], doubled at each further failure, at most [`LONGEST_WAIT`] |
//!
//! A successful login forgets its account's failures (not its address's: one good account
//! must not reset the count of guesses at others). The counts live in the memory of each
//! server process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::ops;
use crate::server::ApiError;

/// Failed logins of one user name before it must wait.
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failed logins from one client address before it must wait (higher: people behind one
/// office address share it).
pub const ADDRESS_FAILURES: u32 = 20;
/// Failures older than this (counted from the last one) are forgotten.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The wait after the limit is reached; each further failure doubles it.
pub const FIRST_WAIT: Duration = Duration::from_secs(60);
/// The longest wait.
pub const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
/// Names and addresses remembered at most (the oldest are forgotten first).
const MAX_TRACKED: usize = 10_000;
/// How long a login waits for a free hashing slot before it is told to come back.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    wait_until: Option<Instant>,
}

/// Failed logins per account and per address.
#[derive(Default)]
pub struct Limiter {
    seen: Mutex<HashMap<Key, Failures>>,
}

fn keys(name: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::Account(name.to_string())).chain(addr.map(Key::Address))
}

fn locked(key: &Key, wait: Duration) -> ApiError {
    let whose = match key {
        Key::Account(name) => format!("for \"{name}\""),
        Key::Address(_) => "from this address".to_string(),
    };
    let e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "").retry_after(wait);
    let secs = e.retry_after_secs().unwrap_or(1);
    ApiError {
        message: format!("too many failed logins {whose}: try again in {secs} seconds"),
        ..e
    }
}

impl Limiter {
    /// Refuses (429) while the account or the address must wait.
    pub fn check(&self, name: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(name, addr) {
            if let Some(until) = seen.get(&key).and_then(|f| f.wait_until) {
                if until > now {
                    return Err(locked(&key, until - now));
                }
            }
        }
        Ok(())
    }

    /// Counts a failed login of `name` from `addr`.
    pub fn failed(&self, name: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(name, addr) {
            let limit = match key {
                Key::Account(_) => ACCOUNT_FAILURES,
                Key::Address(_) => ADDRESS_FAILURES,
            };
            let f = seen.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                wait_until: None,
            });
            if now.duration_since(f.last) > WINDOW {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= limit {
                f.wait_until = Some(now + wait_after(f.count - limit));
            }
        }
        forget_oldest(&mut seen, now);
    }

    /// Forgets the failures of `name` after a successful login.
    pub fn succeeded(&self, name: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&Key::Account(name.to_string()));
    }
}

/// The wait after `beyond` failures past the limit.
fn wait_after(beyond: u32) -> Duration {
    FIRST_WAIT
        .saturating_mul(1u32 << beyond.min(16))
        .min(LONGEST_WAIT)
}

/// Keeps the table bounded: drops what is past its window and wait, then the oldest.
fn forget_oldest(seen: &mut HashMap<Key, Failures>, now: Instant) {
    if seen.len() <= MAX_TRACKED {
        return;
    }
    seen.retain(|_, f| {
        now.duration_since(f.last) <= WINDOW || f.wait_until.is_some_and(|u| u > now)
    });
    while seen.len() > MAX_TRACKED {
        let Some(oldest) = seen
            .iter()
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        seen.remove(&oldest);
    }
}

/// The limiter, and the slots of argon2 work.
pub struct LoginGuard {
    pub limiter: Limiter,
    slots: Semaphore,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// A hash of a password nobody knows, with the same parameters as the stored ones: an
/// unknown user's login is checked against it, so that it takes as long as a known user's.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = SecretString::from(ops::new_token_value("dummy-"));
        ops::hash_password(&random).unwrap_or_default()
    })
}

impl LoginGuard {
    /// Half the machine's cores (at least one) hash or check passwords at once.
    pub fn new() -> LoginGuard {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoginGuard {
            limiter: Limiter::default(),
            slots: Semaphore::new((cores / 2).max(1)),
        }
    }

    /// Prepares the unknown users' hash at start-up rather than at the first login.
    pub fn warm_up(&self) {
        dummy_hash();
    }

    /// A free slot of argon2 work; 503 when none frees up within [`QUEUE_WAIT`].
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        let busy = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is checking too many passwords at once: try again in a few seconds",
            )
            .retry_after(Duration::from_secs(5))
        };
        tokio::time::timeout(QUEUE_WAIT, self.slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())
    }

    /// Runs argon2 work `f` on a blocking thread once a slot is free.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _slot = self.slot().await?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(ApiError::internal)
    }

    /// Checks `password` for `name` (its stored hash, or none for an unknown user, checked
    /// against a dummy hash all the same) if the account and the address may try now, and
    /// counts the outcome. `Ok(false)`: wrong user name or password.
    pub async fn check_password(
        &self,
        name: &str,
        addr: Option<IpAddr>,
        hash: Option<String>,
        password: SecretString,
    ) -> Result<bool, ApiError> {
        // Checked once the slot is held, so that a burst of guesses sent at once cannot all
        // pass before the first failures are counted.
        let _slot = self.slot().await?;
        self.limiter.check(name, addr)?;
        let ok = tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
            ops::verify_password(hash, &password) && known
        })
        .await
        .map_err(ApiError::internal)?;
        if ok {
            self.limiter.succeeded(name);
        } else {
            self.limiter.failed(name, addr);
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_waits_after_its_limit_and_longer_at_each_further_failure() {
        let l = Limiter::default();
        let addr = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..ACCOUNT_FAILURES - 1 {
            l.failed("ada", addr);
            l.check("ada", addr).unwrap();
        }
        l.failed("ada", addr);
        let e = l.check("ada", addr).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            e.message,
            "too many failed logins for \"ada\": try again in 60 seconds"
        );
        assert!(l.check("carl", addr).is_ok(), "another account may try");
        assert_eq!(wait_after(1), FIRST_WAIT * 2);
        assert_eq!(wait_after(40), LONGEST_WAIT);
    }

    #[test]
    fn an_address_waits_after_its_limit_whatever_the_names() {
        let l = Limiter::default();
        let addr = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..ADDRESS_FAILURES {
            l.failed(&format!("user{i}"), addr);
        }
        let e = l.check("someone-else", addr).unwrap_err();
        assert!(e.message.contains("from this address"), "{}", e.message);
        assert!(l.check("someone-else", None).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = Limiter::default();
        for i in 0..MAX_TRACKED + 50 {
            l.failed(&format!("u{i}"), None);
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_TRACKED);
    }
}
