//! People and their traces: users (passwords hashed by the caller with argon2), API tokens
//! and browser sessions (both stored as SHA-256 hashes of the random value the holder has),
//! the audit log, installation settings and pending "Authenticate with Mailchimp" flows.
//!
//! The operations on them are methods of [`super::StateBackend`]; this module holds their
//! records.

use serde::{Deserialize, Serialize};

/// What a user may do, from least to most.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads exports and runs.
    Viewer,
    /// Creates and runs exports on connections shared with contributors.
    Contributor,
    /// Everything, and the only role that manages connections and users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Contributor => "contributor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "contributor" => Some(Role::Contributor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: i64,
    pub user: String,
    pub label: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A browser session, found by the hash of its cookie.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub user: UserRecord,
    pub csrf: String,
    pub expires_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}
