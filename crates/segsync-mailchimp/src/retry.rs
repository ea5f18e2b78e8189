//! Retrying: the decision (is this failure worth another attempt, and why) in one function,
//! [`decide`], apart from the mechanics (capped exponential backoff with full jitter, the
//! attempt loop) in [`backoff_delay`] and [`run`].
//!
//! Retried: 429 (and Mailchimp's bodyless 403 under load), 5xx, timeouts, and connections
//! that failed or broke mid-answer. Everything else is permanent, 401 above all: a revoked
//! credential answers 401 forever, so retrying it would only be a storm of refusals.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use crate::error::Error;

/// How failed requests are retried: up to `max_attempts` in all, waiting a random time
/// between zero and `min(max_delay, base_delay x 2^(retry-1))` before each retry ("full
/// jitter", so that clients that failed together do not retry together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The cap of the first wait; it doubles with every retry.
    pub base_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 250 ms doubling up to 30 s: a 429 burst or a short outage is ridden out
    /// within about a minute at worst, while a real outage fails the call in reasonable time.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Why a request was retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryCause {
    /// 429 Too Many Requests (or a bodyless 403).
    TooManyRequests,
    /// 5xx (or 408).
    ServerError,
    /// No whole answer within the timeout.
    Timeout,
    /// The connection could not be made, or broke before the whole answer came.
    Connection,
}

impl RetryCause {
    pub const ALL: [RetryCause; 4] = [
        RetryCause::TooManyRequests,
        RetryCause::ServerError,
        RetryCause::Timeout,
        RetryCause::Connection,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether Mailchimp may have applied the failed attempt anyway. A 429 is refused at the
    /// door; after a 5xx, a timeout or a broken connection the write may have happened, so
    /// the retry may meet its own effect (a member already created, a contact already
    /// archived).
    pub fn may_have_applied(self) -> bool {
        !matches!(self, RetryCause::TooManyRequests)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::TooManyRequests => "429",
            RetryCause::ServerError => "5xx",
            RetryCause::Timeout => "timeout",
            RetryCause::Connection => "connection",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Worth another attempt, after a wait.
    Retry(RetryCause),
    /// Will fail the same way again: stop now.
    GiveUp,
}

/// The retry decision for every error the client produces. Listed variant by variant, so
/// that a new kind of error cannot be added without deciding.
pub fn decide(e: &Error) -> Decision {
    match e {
        Error::RateLimited { .. } => Decision::Retry(RetryCause::TooManyRequests),
        Error::ServerError { .. } => Decision::Retry(RetryCause::ServerError),
        Error::Timeout { .. } => Decision::Retry(RetryCause::Timeout),
        Error::Connection { .. } => Decision::Retry(RetryCause::Connection),
        Error::CredentialRejected
        | Error::InvalidCredential(_)
        | Error::InvalidConfig(_)
        | Error::AudienceNotFound { .. }
        | Error::NotFound { .. }
        | Error::Forbidden { .. }
        | Error::Rejected { .. }
        | Error::UnexpectedAnswer { .. }
        | Error::TooManyItems { .. } => Decision::GiveUp,
    }
}

/// How many more times a request that failed transiently after all its attempts is sent
/// (after the other requests of its phase) before its members are reported as not sent.
pub const REQUEUE_ROUNDS: u32 = 2;

/// Whether a request that failed with `e` after all its attempts, in re-queue round `round`
/// (0 for its first sending), goes again after the rest of its phase: Mailchimp having a bad
/// minute is ridden out; a permanent refusal is not.
pub fn requeue(e: &Error, round: u32) -> bool {
    e.is_retryable() && round < REQUEUE_ROUNDS
}

/// The retry decision, asked of an error.
impl Error {
    /// True when sending the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(decide(self), Decision::Retry(_))
    }

    /// True when the request will keep failing until something changes.
    pub fn is_permanent(&self) -> bool {
        !self.is_retryable()
    }

    /// Why a retryable error is retryable; `None` for permanent ones.
    pub fn retry_cause(&self) -> Option<RetryCause> {
        match decide(self) {
            Decision::Retry(c) => Some(c),
            Decision::GiveUp => None,
        }
    }
}

/// The longest wait before retry number `retry` (1 for the first retry):
/// `min(max_delay, base_delay x 2^(retry-1))`.
pub fn backoff_cap(policy: &RetryPolicy, retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(30);
    policy
        .base_delay
        .checked_mul(factor)
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay)
}

/// The wait before retry number `retry`: uniform between zero and [`backoff_cap`] ("full
/// jitter"), so that the requests a 429 burst refused together spread out.
pub fn backoff_delay(policy: &RetryPolicy, retry: u32, rng: &mut impl Rng) -> Duration {
    let cap = backoff_cap(policy, retry);
    if cap.is_zero() {
        return cap;
    }
    Duration::from_nanos(rng.gen_range(0..=cap.as_nanos().min(u64::MAX as u128) as u64))
}

/// How a request went through the retry loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts made, the first included.
    pub count: u32,
    /// Whether an earlier attempt failed in a way that Mailchimp may have applied it anyway
    /// (see [`RetryCause::may_have_applied`]): the answer may then reflect a replay.
    pub replayed: bool,
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails permanently,
/// or `policy.max_attempts` are spent, waiting [`backoff_delay`] between attempts and
/// telling `on_retry` (cause, retry number, wait, the error) before each wait. A transient error that
/// exhausts the attempts comes back with their count.
pub async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
    mut on_retry: impl FnMut(RetryCause, u32, Duration, &Error),
) -> (Result<T, Error>, Attempts)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut done = Attempts::default();
    loop {
        done.count += 1;
        let err = match attempt(done.count).await {
            Ok(v) => return (Ok(v), done),
            Err(e) => e,
        };
        let cause = match decide(&err) {
            Decision::GiveUp => return (Err(err), done),
            Decision::Retry(cause) => cause,
        };
        if done.count >= policy.max_attempts {
            return (Err(err.with_attempts(done.count)), done);
        }
        done.replayed |= cause.may_have_applied();
        let wait = backoff_delay(policy, done.count, &mut rand::thread_rng());
        on_retry(cause, done.count, wait, &err);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    #[test]
    fn caps_grow_then_stop() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let caps: Vec<u128> = (1..=6).map(|r| backoff_cap(&p, r).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff_cap(&p, 200), Duration::from_secs(1));
        let mut rng = rand::thread_rng();
        for r in 1..8 {
            assert!(backoff_delay(&p, r, &mut rng) <= backoff_cap(&p, r));
        }
    }

    fn timeout() -> Error {
        Error::Timeout {
            endpoint: "GET /x",
            timeout: Duration::from_millis(1),
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_the_limit() {
        let calls = Cell::new(0);
        let mut retries = Vec::new();
        let (r, a) = run::<(), _, _>(
            &policy(3),
            |_| {
                calls.set(calls.get() + 1);
                async { Err(timeout()) }
            },
            |cause, n, _, _| retries.push((cause, n)),
        )
        .await;
        assert_eq!(calls.get(), 3);
        assert_eq!(a.count, 3);
        assert!(a.replayed);
        assert!(matches!(r, Err(Error::Timeout { attempts: 3, .. })));
        assert_eq!(
            retries,
            [(RetryCause::Timeout, 1), (RetryCause::Timeout, 2)]
        );
    }

    #[tokio::test]
    async fn permanent_errors_stop_at_once() {
        let calls = Cell::new(0);
        let (r, a) = run::<(), _, _>(
            &policy(5),
            |_| {
                calls.set(calls.get() + 1);
                async { Err(Error::CredentialRejected) }
            },
            |_, _, _, _| panic!("no retry"),
        )
        .await;
        assert_eq!((calls.get(), a.count), (1, 1));
        assert!(matches!(r, Err(Error::CredentialRejected)));
    }

    #[tokio::test]
    async fn success_after_429_is_not_a_replay() {
        let (r, a) = run(
            &policy(5),
            |n| async move {
                if n < 3 {
                    Err(Error::RateLimited { attempts: 1 })
                } else {
                    Ok(n)
                }
            },
            |_, _, _, _| {},
        )
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(
            a,
            Attempts {
                count: 3,
                replayed: false
            }
        );
    }
}
