//! segsync's pure core: the domain's words, normalisation of profile rows, the diff against
//! what was delivered, and the plan of Mailchimp requests. Nothing here does I/O, so every
//! rule is tested with case tables and property tests.
//!
//! - [`model`]: member keys, statuses, tag sets, desired members, snapshot entries.
//! - [`normalize`]: addresses, merge values by type, duplicate merging, refused rows.
//! - [`diff`]: desired vs snapshot vs audience, with Mailchimp's rules.
//! - [`moves`]: a member follows its profile to a new address.
//! - [`plan`]: requests in phases, the facts Mailchimp acknowledges, and how they move the
//!   snapshot.
//! - [`incremental`]: when a re-run may evaluate only the profiles that changed.
//! - [`refresh`]: which statuses a re-run's audience read asks for.
//! - [`suppress`]: members held back (suppression lists, remembered refusals).
//! - [`requests`]: the grouping of planned rows into requests, shared by the tested plan and
//!   the engine.

pub mod diff;
pub mod incremental;
pub mod model;
pub mod moves;
pub mod normalize;
pub mod plan;
pub mod refresh;
pub mod requests;
pub mod suppress;

pub use diff::{
    decide, decide_move, diff, Diff, DiffOptions, DiffSink, Move, Skip, TagChange, Upsert, Want,
};
pub use incremental::{config_change, reads_clock, ConfigPrints};
pub use model::{
    fingerprint, profile_keys, Desired, MemberKey, MergeValues, NewStatus, RemovalPolicy,
    SnapshotEntry, Status, TagSet, PROFILE_SEP,
};
pub use moves::{pair_moves, Holder, Moves, NewAddress, Route};
pub use normalize::{
    check_email, format_value, newer, Collector, FieldSpec, MergeKind, Normalized, RecordError, Row,
};
pub use plan::{plan, Fact, Op, Plan, PlanSummary, BATCH};
pub use refresh::statuses_to_read;
pub use requests::{Part, PlannedRows, Requests};
pub use suppress::{Candidate, Held, Holds};
