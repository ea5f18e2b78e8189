//! segsync: exports segments of customer profiles to Mailchimp audiences.
//!
//! - [`profiles`]: the embedded profile store (imports CSV, NDJSON, Parquet into SQLite) and
//!   segment predicates evaluated over it.
//! - [`mailchimp`]: the Mailchimp Marketing API client (limits, retries, typed calls).
//! - [`state`]: connections, segments, exports, snapshots and runs (SQLite).
//! - [`secrets`]: credentials sealed at rest under a master key.
//! - [`engine`]: one run of an export: read, normalise, diff, plan, send, checkpoint, report.
//! - [`ops`]: the operations people perform (checked, role-gated, audited), shared by the
//!   command line, the server and `segsync apply`.
//! - [`schedule`]: cron schedules of exports; [`server`]: `segsync serve` (REST API, web UI,
//!   scheduler, metrics).
//! - [`cli`]: the `segsync` command line; [`app`]: an installation as a process sees it (its
//!   [`home`] folder's paths and its state store, chosen once at start and handed down);
//!   [`locks`]: an export's run lock (a lock file, or a lease in a shared store);
//!   [`csv_out`]: the CSV files written for people, safe to open in a spreadsheet;
//!   [`budget`]: each Mailchimp account's connection budget, shared by every run on it.

pub mod app;
pub mod budget;
pub mod change_log;
pub mod cli;
pub mod config_file;
pub mod csv_out;
pub mod engine;
pub mod home;
pub mod locks;
pub mod merge_type;
pub use segsync_mailchimp as mailchimp;
pub mod ops;
pub mod pg;
pub mod pg_tls;
pub mod profiles;
pub mod rules;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod sources;
pub mod state;

/// The data privacy and compliance statement a connection's creator agrees to.
pub const PRIVACY_STATEMENT: &str = "Data privacy and compliance: when you let segsync send data to Mailchimp, you allow data, \
including potentially sensitive data such as personal data, to leave the systems segsync reads it from. segsync \
transfers such data at your instruction, but you are responsible for making sure that Mailchimp meets any privacy or \
security obligations you have. An admin can remove the connection at any time to stop sending data.";
