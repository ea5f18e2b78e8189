//! A run's change log: one line per member per action Mailchimp acknowledged (created,
//! updated, moved, tagged, untagged, unsubscribed, archived, forgotten), written by the run's
//! checkpoint thread with each checkpoint and read back in pages for a download. The records
//! a run refused or could not send are its errors (`run_errors`), which the download adds
//! as `refused` lines: they are not stored twice.
//!
//! Compact on purpose: the action is a small integer, the detail one short text (the
//! status, the tag's name, the previous address of a moved member), so that a million-member
//! run adds a million short rows, written in the checkpoints' own batches.

use serde::Serialize;

/// What happened to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    Created,
    Updated,
    /// Moved to its profile's new address (`detail`: the previous address).
    Moved,
    /// `detail`: the tag's name.
    Tagged,
    Untagged,
    Unsubscribed,
    Archived,
    /// Mailchimp had deleted it permanently: out of the audience for good.
    Forgotten,
    /// Refused before sending, or by Mailchimp (`detail`: why); from the run's errors.
    Refused,
}

impl ChangeAction {
    const ALL: [ChangeAction; 9] = [
        ChangeAction::Created,
        ChangeAction::Updated,
        ChangeAction::Moved,
        ChangeAction::Tagged,
        ChangeAction::Untagged,
        ChangeAction::Unsubscribed,
        ChangeAction::Archived,
        ChangeAction::Forgotten,
        ChangeAction::Refused,
    ];

    /// The stored code.
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<ChangeAction> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Created => "created",
            ChangeAction::Updated => "updated",
            ChangeAction::Moved => "moved",
            ChangeAction::Tagged => "tagged",
            ChangeAction::Untagged => "untagged",
            ChangeAction::Unsubscribed => "unsubscribed",
            ChangeAction::Archived => "archived",
            ChangeAction::Forgotten => "forgotten",
            ChangeAction::Refused => "refused",
        }
    }
}

/// One line of a run's change log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunChange {
    pub action: ChangeAction,
    pub email: String,
    /// The status written (created, updated), the tag (tagged, untagged), the previous
    /// address (moved), or why (refused); empty otherwise.
    pub detail: String,
    /// The keys of the profiles behind the member, `;`-separated, when known.
    pub profile_key: String,
}

/// Rows read per page when a change log is streamed.
pub const CHANGES_PAGE: usize = 5000;

/// A stored row back into a change; an unknown code reads as "updated" (never fails a
/// download).
pub(crate) fn change_of(
    code: i64,
    email: String,
    detail: String,
    profile_key: String,
) -> RunChange {
    RunChange {
        action: ChangeAction::from_code(code).unwrap_or(ChangeAction::Updated),
        email,
        detail,
        profile_key,
    }
}

/// What the last check of a connection found (at `connection add`, at each run, and when
/// someone asks): its Mailchimp account's name and whether Mailchimp accepts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ConnectionHealth {
    /// The account's name, as Mailchimp gives it (`null` until a check learned it).
    pub account_name: Option<String>,
    /// `ok`, `revoked` (Mailchimp refuses the credential: invalid or revoked),
    /// `unreachable`, `rate_limited`, or `error` (anything else; see `detail`).
    pub status: String,
    /// What went wrong, in words (`null` when ok).
    pub detail: Option<String>,
    /// When (RFC 3339).
    pub checked_at: String,
}
