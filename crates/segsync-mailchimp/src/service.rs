//! The request stack every call goes through, outermost layer first:
//!
//! 1. **retry**: [`retry::run`], which asks [`retry::decide`] after each failure;
//! 2. **connection budget**: each attempt takes a slot of the account's
//!    [budget](crate::budget) (shared by every client of the account in the process, and
//!    across processes through leases) and holds it until the last byte of its answer, so
//!    the account never has more requests open than its budget, and a request waiting to
//!    retry holds none; the client's own `max_in_flight` caps its share. A refusal for load
//!    shrinks the budget, successes grow it back;
//! 3. **timeout**: each attempt, from sending to the last byte of the answer;
//! 4. **HTTP**: reqwest, with the credential in a sensitive `Authorization` header, no
//!    redirects followed (Mailchimp's API does not redirect; following one could carry the
//!    credential elsewhere).
//!
//! There is no rate layer: Mailchimp publishes no per-second quota, only the in-flight cap.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use secrecy::zeroize::Zeroizing;
use secrecy::ExposeSecret;
use url::Url;

use crate::budget::{AccountBudget, BudgetParty};
use crate::config::{ClientConfig, Credential, RetryPolicy};
use crate::error::Error;
use crate::retry::{self, Attempts};
use crate::stats::{ClientStats, Endpoint};

/// The HTTP Basic user name sent with API keys (Mailchimp ignores it; it names the tool).
pub const BASIC_USER: &str = "segsync";

/// One request to make, kept whole so that a retry sends the same bytes.
pub(crate) struct Call {
    pub endpoint: Endpoint,
    pub method: Method,
    /// Path segments under the base URL, each percent-encoded on its own.
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    /// A JSON body, encoded once.
    pub body: Option<Bytes>,
}

impl Call {
    pub fn new(endpoint: Endpoint, method: Method, path: Vec<String>) -> Call {
        Call {
            endpoint,
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.query.push((name, value.into()));
        self
    }

    pub fn json(mut self, body: &impl serde::Serialize) -> Call {
        self.body = Some(Bytes::from(
            serde_json::to_vec(body).expect("request bodies serialise"),
        ));
        self
    }
}

/// A success answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// Mailchimp's clock when it answered (the `Date` header), if it said.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

pub(crate) struct Service {
    http: reqwest::Client,
    base: Url,
    /// `Basic ...` or `Bearer ...`, marked sensitive.
    auth: HeaderValue,
    /// This client's place in its account's connection budget.
    party: BudgetParty,
    max_in_flight: usize,
    timeout: Duration,
    retry: RetryPolicy,
    stats: Arc<ClientStats>,
    created: std::time::Instant,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("base_url", &self.base.as_str())
            .field("authorization", &format_args!("<redacted>"))
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

fn authorization(credential: &Credential) -> Result<HeaderValue, Error> {
    let text = Zeroizing::new(match credential {
        Credential::ApiKey { key, .. } => {
            let pair = Zeroizing::new(format!("{BASIC_USER}:{}", key.expose_secret()));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            )
        }
        Credential::OAuthToken(token) => format!("Bearer {}", token.expose_secret()),
    });
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        Error::InvalidCredential(
            "the credential has characters that cannot be sent in an HTTP header".into(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

impl Service {
    pub fn new(config: &ClientConfig) -> Result<Service, Error> {
        config.validate()?;
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("segsync/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_max_idle_per_host(config.max_in_flight);
        if !config.allow_private_targets {
            // Names are checked at each connection, not only when the settings were.
            http = http.dns_resolver(Arc::new(crate::targets::PublicOnly));
        }
        let http = http
            .build()
            .map_err(|e| Error::InvalidConfig(format!("the HTTP client could not start: {e}")))?;
        let mut base = config.base_url.clone();
        if base.path().ends_with('/') {
            let trimmed = base.path().trim_end_matches('/').to_string();
            base.set_path(&trimmed);
        }
        Ok(Service {
            http,
            base,
            auth: authorization(&config.credential)?,
            party: config
                .budget
                .clone()
                .unwrap_or_else(|| AccountBudget::private(config.max_in_flight))
                .join(config.max_in_flight),
            max_in_flight: config.max_in_flight,
            timeout: config.timeout,
            retry: config.retry.clone(),
            stats: Arc::new(ClientStats::default()),
            created: std::time::Instant::now(),
        })
    }

    pub fn stats(&self) -> &Arc<ClientStats> {
        &self.stats
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// How long ago the service was made.
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    pub fn budget(&self) -> &std::sync::Arc<AccountBudget> {
        self.party.budget()
    }

    fn url(&self, call: &Call) -> Url {
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .expect("the base URL was checked to be a base");
            segments.pop_if_empty();
            for p in &call.path {
                segments.push(p);
            }
        }
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends `call` through the stack. Also tells how the attempts went, success or not.
    pub async fn send(&self, call: &Call) -> (Result<Answer, Error>, Attempts) {
        let endpoint = call.endpoint;
        self.stats.call_started(endpoint);
        let url = self.url(call);
        let (result, attempts) = retry::run(
            &self.retry,
            |n| self.attempt(call, &url, n),
            |cause, n, wait, error| {
                self.stats.retried(endpoint, cause);
                tracing::debug!(
                    endpoint = endpoint.as_str(),
                    cause = cause.as_str(),
                    retry = n,
                    wait_ms = wait.as_millis() as u64,
                    %error,
                    "Mailchimp request failed, retrying"
                );
            },
        )
        .await;
        if let Err(e) = &result {
            self.stats.call_failed(endpoint);
            tracing::debug!(endpoint = endpoint.as_str(), attempts = attempts.count, error = %e, "Mailchimp request failed");
        }
        (result, attempts)
    }

    /// One attempt of `call` outside the stack: no in-flight limit, no retry, and the
    /// status as Mailchimp sent it, with whether the answer had a body. Only for checking
    /// how Mailchimp sheds load (`segsync connection probe --load`), which needs more
    /// requests in flight than the limit lets through.
    pub(crate) async fn send_unlimited(&self, call: &Call) -> Result<(u16, bool), Error> {
        let endpoint = call.endpoint.as_str();
        let mut req = self
            .http
            .request(call.method.clone(), self.url(call))
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let exchange = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, !body.iter().all(u8::is_ascii_whitespace)))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(Error::Timeout {
                endpoint,
                timeout: self.timeout,
                attempts: 1,
            }),
            Ok(Err(e)) => Err(Error::from_transport(endpoint, self.timeout, e)),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// One attempt in a slot of the account's budget, telling the budget how it went.
    async fn attempt(&self, call: &Call, url: &Url, n: u32) -> Result<Answer, Error> {
        let slot = {
            let _waiting = self.stats.waiting_guard();
            self.party.acquire().await
        };
        let result = self.attempt_in_slot(call, url, n).await;
        match &result {
            Ok(_) => slot.succeeded(),
            Err(Error::RateLimited { .. }) => {
                self.stats.throttled_once();
                slot.throttled();
            }
            Err(_) => {}
        }
        self.stats.slot_held(slot.held());
        result
    }

    /// One attempt, bounded by the timeout; a non-success status becomes an error.
    async fn attempt_in_slot(&self, call: &Call, url: &Url, n: u32) -> Result<Answer, Error> {
        let endpoint = call.endpoint.as_str();
        let _on_wire = self.stats.sending(call.endpoint);
        tracing::trace!(endpoint, attempt = n, "Mailchimp request");
        let mut req = self
            .http
            .request(call.method.clone(), url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let exchange = async {
            let resp = req.send().await?;
            let status = resp.status();
            let date = resp
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            // The whole body is read inside the timeout: an answer that stops halfway is a
            // failed attempt, not a success with a truncated body.
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body, date))
        };
        let (status, body, date) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => {
                return Err(Error::Timeout {
                    endpoint,
                    timeout: self.timeout,
                    attempts: 1,
                })
            }
            Ok(Err(e)) => return Err(Error::from_transport(endpoint, self.timeout, e)),
            Ok(Ok(answer)) => answer,
        };
        tracing::trace!(
            endpoint,
            attempt = n,
            status = status.as_u16(),
            "Mailchimp answer"
        );
        if status.is_success() {
            Ok(Answer { status, body, date })
        } else {
            Err(Error::from_answer(endpoint, status, &body))
        }
    }
}
