//! Configuration as code: connections (never their secrets), segments and exports declared in
//! a TOML file that lives in git next to the segment SQL. `segsync apply FILE` makes an
//! installation match the file; `segsync dump` writes an installation's configuration in the
//! same format. This module is the file's model, its parsing (every error located as
//! `FILE:LINE:COLUMN`), its validation, the plan of changes against the installation, and the
//! dump. Changes themselves go through [`crate::ops`], like every other change; the commands
//! are in `cli/config.rs`.
//!
//! Its files, in the order a configuration goes through them:
//!
//! - `source.rs`: the text of a file, and its problems located as `FILE:LINE:COLUMN`.
//! - `model.rs`: the file's tables as serde reads them, every value with its place.
//! - `parse.rs`: reading the TOML into the model, every mistake of form listed.
//! - `secrets.rs`: where a connection's secret comes from, read and checked locally.
//! - `plan.rs`: the file checked against the installation, and the steps of an apply in
//!   their order; `plan_connection.rs`, `plan_segment.rs` and `plan_export.rs` plan one
//!   object each.
//! - `dump.rs`: an installation's configuration written in the same format.
//!
//! A complete, realistic file is `examples/segsync.toml` at the root of the repository (the
//! demo's shop); the end-to-end tests apply it.
//!
//! # The format
//!
//! ```toml
//! [[connection]]
//! name = "mailchimp"
//! display_name = "Mailchimp (marketing)"   # default: the name
//! api_key_env = "MAILCHIMP_API_KEY"        # where the secret comes from: one of api_key_env,
//!                                          # api_key_file, oauth_token_env; never the secret
//! base_url = "https://us6.api.mailchimp.com/3.0"   # default: from the key's data center
//! share_with_contributors = true           # default: admins only
//! export_user = "ana"                      # default: whoever applies the file
//! slot_budget = 6                          # requests in flight on the account (default 8)
//! accept_privacy_terms = true              # required to create it (the data privacy statement)
//!
//! [[source]]                               # a PostgreSQL or MySQL / MariaDB table or query
//! name = "crm"
//! kind = "mysql"                           # or "postgres"
//! url = "env:CRM_DATABASE_URL"             # the variable holding the URL; a URL written here
//!                                          # is refused when it holds a password
//! table = "customers"                      # or query = "SELECT ..."
//! key = "customer_id"
//! # cursor = "updated_at"                  # set by the database on every write: re-runs read
//!                                          # only the rows past it
//! # allow_superuser = true                 # a user that can read every table (refused otherwise)
//!
//! [[segment]]
//! name = "high-value"
//! where = "lifetime_value > 500"           # a SQL predicate over the profile columns
//! # source = "crm"                         # a database profile source (default: imported profiles)
//!
//! [[segment]]
//! name = "recent-romania"                  # or the condition as a rule (see `crate::rules`)
//! rule = { all = [
//!   { condition = { column = "country", op = "is", value = "RO" } },
//!   { condition = { column = "last_order", op = "in_last", value = { amount = 90, unit = "days" } } },
//! ] }
//!
//! [[export]]
//! name = "newsletter"
//! connection = "mailchimp"                 # in this file or already in the installation
//! audience = "a1b2c3d4e5"                  # the Mailchimp audience id
//! email_field = "email"
//! first_name = "first_name"                # FNAME (optional)
//! last_name = "last_name"                  # LNAME (optional)
//! merge = { CITY = "city", LTV = "lifetime_value" }   # further merge fields: TAG = column
//! segments = [
//!   { segment = "high-value", tag = "High value" },   # the tag members get (default: the name)
//!   { segment = "romania" },
//! ]
//! status_if_new = "subscribed"             # subscribed (default), pending, transactional
//! removal = "untag"                        # untag (default), archive, unsubscribe
//! create_merge_fields = true               # create mapped merge fields the audience lacks
//! updated_at_field = "updated_at"          # picks among profiles sharing an address
//! max_profiles = 1000000                   # the default
//! schedule = { cron = "0 6 * * *", timezone = "Europe/Bucharest" }
//!                                          # or "after_refresh", or "manual" (the default)
//! paused = false                           # absent: left as it is in the installation
//! ```
//!
//! Rules:
//!
//! - Nothing changes unless the whole file is right, and every problem is listed with its
//!   place, in two rounds: first the form (TOML syntax, unknown keys and sections, missing
//!   keys, values of the wrong type or not among the allowed words), then, once the form is
//!   right, the content: duplicate names, an export whose connection or segments are neither
//!   in the file nor in the installation, a profile column that does not exist, a predicate
//!   that does not compile, a cron expression or time zone that does not parse, a secret
//!   source that cannot be read, a secret that cannot be a Mailchimp credential. Then
//!   `apply` asks Mailchimp, reading only, what only it knows (whether new credentials work,
//!   whether the audiences exist and have the mapped merge fields).
//! - A secret is read only when it is needed: to create a connection, or to replace an
//!   existing one's credential with `--rotate-secrets`. `api_key_file` is relative to the
//!   folder of the TOML file. An existing connection changes only in what the file says
//!   (display name, sharing, export user); its credential and API root change only with
//!   `--rotate-secrets`.
//! - An export is the whole of its declaration: an optional key that is absent takes its
//!   default (above), except `paused`, an operational switch left as it is unless the file
//!   says. The order of `merge` and `segments` carries no meaning.
//! - Objects of the installation that the file does not declare are left alone and listed;
//!   `--prune` removes such exports, segments and sources, never connections.
//! - A source is created from the URL its variable holds when it is applied (the database
//!   is reached and the table or query checked then); an existing source keeps its kind,
//!   table or query and key, and its URL is never replaced by `apply`. `dump` writes a source
//!   with `url = "env:SEGSYNC_SOURCE_<NAME>"` and the URL without its password in a comment.

mod dump;
mod model;
mod parse;
mod plan;
mod plan_connection;
mod plan_export;
mod plan_segment;
mod plan_source;
mod secrets;
mod source;
#[cfg(test)]
mod testkit;

pub use dump::{quote, render, source_url_var};
pub use model::{
    ConfigFile, ConnectionSpec, ExportSpec, ScheduleSpec, SegmentRef, SegmentSpec, SourceSpec,
};
pub use parse::parse;
pub use plan::{
    plan, Action, Checks, Installation, Kind, Op, Options, Plan, PredicateCheck, RuleColumns, Step,
};
pub use plan_export::export_changes;
pub use secrets::{check_credential, SecretSource};
pub use source::{Problem, Source};
