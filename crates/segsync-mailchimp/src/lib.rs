//! segsync's Mailchimp destination: everything that knows Mailchimp's wire format, its limits
//! and its answers. The engine hands it plan operations and gets back acknowledged facts.
//!
//! - [`config`]: the credential (API key or OAuth token, never shown, of a [`CredentialKind`]),
//!   base URL and limits; [`ClientConfig::for_connection`] is the one way from a stored
//!   connection to a client.
//! - [`service`]: the request stack every call goes through, outermost first: retry, a slot
//!   of the account's connection budget per attempt, timeout, HTTP.
//! - [`budget`]: the connection budget of a Mailchimp account (Mailchimp allows 10 requests
//!   in flight per user), shared by every client of the account, fair between them, adaptive
//!   to refusals, and across processes through leases.
//! - [`retry`]: the retry decision ([`retry::decide`]) and policy, apart from the backoff
//!   mechanics.
//! - [`error`]: one [`Error`] type, each kind retryable or permanent, messages that say what
//!   to do next.
//! - [`stats`]: live counters (requests, in flight, retries by cause and endpoint) that a
//!   progress bar reads without locks.
//! - [`types`]: what the calls take and give.
//! - [`encoder`]: plan operations as request bodies.
//! - [`sink`]: sends an operation and reads the answer into acknowledged facts, refused
//!   members, members to update and requests to send again.
//! - [`client`]: the typed calls ([`Client`]).
//! - [`probe`]: a short session on a test audience that checks the readings of Mailchimp's
//!   behaviour the simulator assumes (`segsync connection probe`).
//! - [`targets`]: where requests may go: public addresses only, unless private ones are
//!   allowed (a simulator, a test server).
//!
//! ```no_run
//! # async fn demo() -> Result<(), segsync_mailchimp::Error> {
//! use segsync_mailchimp::{Client, ClientConfig, Credential};
//! let key = std::env::var("MAILCHIMP_API_KEY").unwrap_or_default();
//! let client = Client::new(ClientConfig::new(Credential::api_key(key)?))?;
//! client.ping().await?;
//! let audience = client.list("a1b2c3d4e5").await?;
//! println!("{} has {} subscribed members", audience.name, audience.member_count);
//! # Ok(()) }
//! ```

pub mod budget;
pub mod client;
pub mod config;
pub mod encoder;
pub mod error;
pub mod probe;
pub mod retry;
pub mod service;
pub mod sink;
pub mod stats;
pub mod targets;
pub mod types;

pub use budget::{AccountBudget, BudgetView, Budgets, SlotLeases, DEFAULT_SLOT_BUDGET};
pub use client::{Client, MAX_BATCH_MEMBERS, MAX_TAG_CHANGES, PAGE_SIZE};
pub use config::{default_base_url, ClientConfig, Credential, CredentialKind, RetryPolicy};
pub use error::{Error, FieldError, Problem};
pub use retry::{RetryCause, REQUEUE_ROUNDS};
pub use sink::{AudienceTags, Read, Refused, Sent, Sink, Tally};
pub use stats::{ClientStats, Endpoint, EndpointStats, RetryCounts, StatsSnapshot};
pub use types::{
    subscriber_hash, AcceptedMember, Archived, BatchOutcome, FailureKind, ListInfo, MemberFailure,
    MemberState, MemberStatus, MergeFieldInfo, MergeFieldType, NewMergeField, TagOutcome,
    UpsertItem,
};
