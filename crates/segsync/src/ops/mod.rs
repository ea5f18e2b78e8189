//! The operations people perform on an installation, checked and audited in one place, so
//! that the command line, the REST API, the web UI and `segsync apply` behave the same way:
//! the same validation, the same messages, the same role rules, the same audit entries.
//!
//! Role rules: admins do everything and are the only ones who manage connections and users;
//! contributors manage segments and exports, on connections shared with contributors only;
//! viewers read. No operation ever returns a secret.
//!
//! One file per resource:
//!
//! - `connections.rs`: Mailchimp connections (consent, credentials checked and sealed) and the
//!   audiences they see.
//! - `segments.rs`: segments over the profiles, checked and counted before they are saved.
//! - `sources.rs`: database profile sources (PostgreSQL, MySQL / MariaDB) and their status.
//! - `exports.rs`: exports (what `apply`, the form and the API save), pausing and removal.
//! - `suppressions.rs`: suppression lists and remembered refusals.
//! - `users.rs`: users, passwords and API tokens.
//! - `profiles.rs`: importing the profiles from a file and refreshing them.
//!
//! This file holds what they share: who acts ([`Actor`]), how they fail ([`OpError`]), the
//! role check ([`require`]), the name check ([`check_name`]) and the audit entry. Everything
//! is re-exported here, so callers keep naming `ops::save_export`, never the file it is in.

pub mod builder;
mod connections;
mod exports;
pub mod health;
pub mod numbers;
mod profiles;
mod segments;
mod sources;
mod suppressions;
mod users;

pub use connections::{
    add_connection, audiences, can_use, connection, connections, remove_connection,
    test_connection, update_connection, ConnectionChange, ConnectionView, CredentialInput,
    NewConnection,
};
pub use exports::{
    check_export_access, check_schedule, describe_change, remove_export, save_export, set_paused,
    ExportInput, SaveMode, SegmentChoice,
};
pub use profiles::{
    audit_upload, import_profiles, import_upload, preview_upload, profile_source, refresh_profiles,
    ProfileSource, UploadFile, PREVIEW_ROWS,
};
pub use segments::{
    add_segment, add_segment_defined, remove_segment, update_segment, update_segment_defined,
    Counted, Definition,
};
pub use sources::{
    add_source, list_sources, remove_source, source_status, status_of, AddedSource, SourceInput,
    SourceKind, SourceStatus,
};
pub use suppressions::{
    add_suppression, forget_refusal, import_suppressions, normalized_value, refusal_count,
    refusals, remove_suppression, suppress_refusal, suppression_count, suppressions,
    ImportedSuppressions, SuppressionInput,
};
pub use users::{
    add_user, create_token, hash_password, new_token_value, remove_user, revoke_token,
    set_password, set_role, token_hash, verify_password,
};

use crate::engine::RunError;
use crate::state::{Role, StateError, StateStore};

/// Who performs an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// Whoever runs the command line on the installation's home folder: they hold the master
    /// key, so they are an admin. Named after the system user, for the audit log.
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            name: format!("cli:{user}"),
            role: Role::Admin,
        }
    }

    /// The user name without the `cli:` prefix (for consent and export user).
    pub fn user_name(&self) -> &str {
        self.name.strip_prefix("cli:").unwrap_or(&self.name)
    }
}

/// Why an operation was refused or failed. Each maps to an exit code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The input is wrong; the message says what and where.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Mailchimp refused or could not be reached.
    #[error("{0}")]
    Mailchimp(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StateError> for OpError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound(m) => OpError::NotFound(m),
            StateError::Conflict(m) => OpError::Conflict(m),
            other => OpError::Internal(other.into()),
        }
    }
}

impl From<RunError> for OpError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(m) | RunError::Limit(m) => OpError::Invalid(m),
            RunError::Busy(_) | RunError::NothingToResume(_) => OpError::Conflict(e.to_string()),
            RunError::Mailchimp(m) => OpError::Mailchimp(m.to_string()),
            RunError::Other(e) => OpError::Internal(e),
        }
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// Refuses unless `actor` has at least `role`.
pub fn require(actor: &Actor, role: Role, what: &str) -> OpResult<()> {
    if actor.role >= role {
        Ok(())
    } else {
        Err(OpError::Forbidden(format!(
            "{what} needs the {} role; {} is a {}",
            role.as_str(),
            actor.name,
            actor.role.as_str()
        )))
    }
}

/// Refuses a name (of a segment, export, connection, user or tag) that is empty, longer than
/// 100 characters, padded with spaces, or holds a control character (a newline, an escape
/// sequence that would play tricks on a terminal): such names are mistakes or attacks.
pub fn check_name(what: &str, name: &str) -> OpResult<()> {
    let bad = |why: String| {
        Err(OpError::Invalid(format!(
            "{what} name {name:?} refused: {why}"
        )))
    };
    if name.trim().is_empty() {
        return Err(OpError::Invalid(format!("a {what} name cannot be empty")));
    }
    if let Some((i, c)) = name.chars().enumerate().find(|(_, c)| c.is_control()) {
        return bad(format!(
            "it holds a control character (U+{:04X} at character {})",
            c as u32,
            i + 1
        ));
    }
    if name.trim() != name {
        return bad("it starts or ends with a space".into());
    }
    let n = name.chars().count();
    if n > 100 {
        return bad(format!("it is {n} characters long (at most 100)"));
    }
    Ok(())
}

fn audit(
    state: &StateStore,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: &str,
) -> OpResult<()> {
    state.audit(&actor.name, action, target, detail)?;
    Ok(())
}
