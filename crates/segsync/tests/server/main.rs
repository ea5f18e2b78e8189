//! End-to-end tests of `segsync serve` (issue 4): the binary runs as a child process on a
//! free port in a temporary home, with a Mailchimp simulator in this process; tests talk to
//! it over HTTP as the web UI, a script or Mailchimp's login server would, and read what a
//! user relies on: answers and status codes, the audience in the simulator, the audit log,
//! the rows of the run history.

#[path = "../cli_e2e/common/mod.rs"]
mod common;
mod harness;

mod alerts;
mod api;
mod browser;
mod budget;
mod builder;
mod contract;
mod hardening;
mod oauth;
mod preview;
mod roles;
mod schedule;
mod secrets;
mod shutdown;
mod sources;
mod suppressions;
mod truth;
mod uploads;
mod workers;
