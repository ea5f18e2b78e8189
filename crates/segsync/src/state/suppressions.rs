//! Suppression lists (addresses or profile keys never sent: one list per export and one for
//! the installation) and remembered refusals (addresses Mailchimp refused for good, with the
//! content they were refused with, not sent again until it changes). See
//! [`SuppressionStore`](super::SuppressionStore).

use serde::{Deserialize, Serialize};

/// What a suppression names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionKind {
    /// An e-mail address (normalised: trimmed, lower-cased).
    Email,
    /// A profile key: the member its profile makes is never sent.
    Key,
}

impl SuppressionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionKind::Email => "email",
            SuppressionKind::Key => "key",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<SuppressionKind> {
        match s {
            "email" => Some(SuppressionKind::Email),
            "key" => Some(SuppressionKind::Key),
            _ => None,
        }
    }
}

/// One entry of a suppression list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suppression {
    /// The export whose list holds it; none: the installation's list (every export).
    pub export: Option<String>,
    pub kind: SuppressionKind,
    /// The address (normalised) or the profile key.
    pub value: String,
    pub note: String,
    pub added_by: String,
    pub added_at: String,
}

/// An address Mailchimp refused for good (invalid or fake, in a compliance state,
/// permanently deleted, a merge value it refuses), remembered so that later runs do not
/// send it again until the profile's content changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusalRecord {
    pub export: String,
    pub email: String,
    /// The key of the profile behind it, when known.
    pub profile_key: String,
    /// The fingerprint of the content refused (internal: compared, never shown).
    #[serde(skip)]
    #[schema(ignore)]
    pub fingerprint: u64,
    /// Mailchimp's reason.
    pub reason: String,
    pub refused_at: String,
    /// The run that was refused.
    pub run_id: i64,
}

/// The `export` column of the installation's list.
pub(crate) const INSTALLATION: &str = "";

pub(crate) fn scope_column(export: Option<&str>) -> String {
    export.unwrap_or(INSTALLATION).to_string()
}

pub(crate) fn scope_of(column: String) -> Option<String> {
    (column != INSTALLATION).then_some(column)
}

/// What a list is called in messages.
pub(crate) fn list_name(export: Option<&str>) -> String {
    match export {
        Some(e) => format!("the suppression list of export \"{e}\""),
        None => "the installation's suppression list".to_string(),
    }
}
