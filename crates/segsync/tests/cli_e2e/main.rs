//! End-to-end tests of issue 3: the `segsync` binary, driven as a user drives it (a temporary
//! home folder, a CSV of profiles, `profiles import`, `segments add`, `connection add`,
//! `export add`, `plan`, `run`, `runs`), against a Mailchimp simulator running in this process.
//! Assertions read what a user relies on: what the audience holds (`list_view`: members,
//! statuses, merge fields, tags), what the simulator counted (writes, members created,
//! compliance refusals), exit codes, and what `segsync` printed.
//!
//! Nothing here asserts on time: runs that must be caught in the middle are polled with a
//! generous deadline, through the simulator's counters.

mod common;

mod apply;
mod compliance;
mod excel;
mod faults;
mod fidelity;
mod first_run;
mod guards;
mod incremental;
mod incremental_eval;
mod membership;
mod merge_types;
mod moves;
mod mysql;
mod pg_cursor;
mod postgres;
mod probe;
mod records;
mod requests;
mod resume;
mod secrets;
mod soak;
mod streaming;
mod suppress;
mod torture;
pub mod truth;
