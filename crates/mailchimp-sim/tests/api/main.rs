//! Mailchimp's behaviour as the simulator models it, rule by rule, through HTTP.

#[path = "../common/mod.rs"]
mod common;

mod audiences;
mod auth_errors;
mod batch_upsert;
mod batches;
mod cli;
mod limits_faults;
mod members;
mod merge_fields;
mod oauth;
mod tags;
mod variants;
