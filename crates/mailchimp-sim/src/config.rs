//! Settings of the simulator: accounts at start, limits, the latency model and fault injection.
//!
//! Everything here can be given on the command line (`mailchimp-sim --help`), built in Rust for
//! in-process tests, and changed at run time through `PUT /_sim/settings`.

use serde::{Deserialize, Serialize};

/// The settings that can change while the simulator runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Requests one account may have in flight; the next one gets 429 (Mailchimp: 10).
    pub max_in_flight: usize,
    /// Contacts (members that are not archived, over all audiences) an account may hold;
    /// `None` is no limit.
    pub contact_limit: Option<u64>,
    /// Domains whose addresses Mailchimp refuses as fake-looking ("looks fake or invalid").
    pub refused_domains: Vec<String>,
    /// What a batch upsert does with an item that would resubscribe an unsubscribed or
    /// cleaned member: `error` reports "Member In Compliance State" in `errors[]` (strict,
    /// the default); `ignore` keeps the status and updates the rest, as some reports say the
    /// live API does silently.
    pub batch_compliance: BatchCompliance,
    /// How long each request takes.
    pub latency: Latency,
    /// Faults injected into answers.
    pub faults: Faults,
    /// How `/batches` jobs progress.
    pub batches: BatchTiming,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchCompliance {
    #[default]
    Error,
    Ignore,
}

/// Latency model: every request costs `base_ms + per_item_ms x items`, where items are the
/// members of a batch upsert, the members added and removed in a segment batch, and 1 for any
/// other request. The time is spent while the request holds its in-flight slot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    pub base_ms: f64,
    pub per_item_ms: f64,
}

impl Latency {
    pub fn for_items(&self, items: usize) -> std::time::Duration {
        let ms = self.base_ms + self.per_item_ms * items as f64;
        if ms <= 0.0 || !ms.is_finite() {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs_f64(ms / 1000.0)
        }
    }
}

/// Fault injection, decided per request with a seeded random generator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of requests (0..1) answered 500 "Internal Server Error" before they are applied.
    pub error_5xx_rate: f64,
    /// Share of requests (0..1) that start a burst of 429 answers for their account.
    pub burst_429_rate: f64,
    /// How many consecutive requests of the account a 429 burst refuses.
    pub burst_429_len: u32,
    /// Burst 429s come with no body, as Mailchimp sometimes answers under heavy load.
    pub bodyless_429: bool,
    /// Share of requests (0..1) that are answered late, after `slow_ms` more milliseconds.
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Share of requests (0..1) whose connection is dropped after the request was applied:
    /// the client never learns the outcome, as when a network path fails mid-answer.
    pub drop_rate: f64,
    /// Seed of the fault generator, so that a failing run can be replayed.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_5xx_rate: 0.0,
            burst_429_rate: 0.0,
            burst_429_len: 5,
            bodyless_429: false,
            slow_rate: 0.0,
            slow_ms: 0,
            drop_rate: 0.0,
            seed: 1,
        }
    }
}

/// How long a `/batches` job spends in each state, and per operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchTiming {
    /// Time spent in each of `pending`, `preprocessing` and `finalizing`.
    pub state_ms: u64,
    /// Time spent per operation while `started` (Mailchimp was seen at about 16 ops/s).
    pub op_ms: f64,
    /// Batches an account may have that are not finished yet.
    pub max_pending: usize,
    /// How long a minted `response_body_url` stays valid (Mailchimp: 10 minutes).
    pub url_ttl_secs: u64,
}

impl Default for BatchTiming {
    fn default() -> Self {
        BatchTiming {
            state_ms: 0,
            op_ms: 0.0,
            max_pending: 500,
            url_ttl_secs: 600,
        }
    }
}

/// The domains Mailchimp refuses as fake-looking by default.
pub const DEFAULT_REFUSED_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "test.com",
    "mailinator.com",
    "yopmail.com",
    "guerrillamail.com",
    "10minutemail.com",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_in_flight: 10,
            contact_limit: None,
            refused_domains: DEFAULT_REFUSED_DOMAINS
                .iter()
                .map(|d| d.to_string())
                .collect(),
            batch_compliance: BatchCompliance::Error,
            latency: Latency::default(),
            faults: Faults::default(),
            batches: BatchTiming::default(),
        }
    }
}

/// A registered OAuth2 application of the simulated login server.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// When set, `redirect_uri` must start with it, as Mailchimp checks the registered URI.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// Everything the simulator starts with.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// One account per API key (Mailchimp's format: 32 hex characters, a dash, the data center).
    pub api_keys: Vec<String>,
    pub oauth_clients: Vec<OAuthClient>,
    pub settings: Settings,
}
