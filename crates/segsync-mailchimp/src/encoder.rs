//! Plan operations as Mailchimp request bodies: the core's members and statuses in the
//! API's words. Pure; the [`sink`](crate::sink) sends what this builds.

use segsync_core::{MemberKey, Status, Upsert};

use crate::types::{MemberStatus, UpsertItem};

/// The items of a batch upsert (`POST /lists/{list_id}`): each member's address, the status
/// the plan gives it, and its merge values when it carries content.
pub fn upsert_items(items: &[Upsert]) -> Vec<UpsertItem> {
    items
        .iter()
        .map(|u| UpsertItem {
            email: u.email.clone(),
            status: member_status(u.status),
            merge_fields: u
                .merge
                .clone()
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// The addresses of one side of a tag request (`members_to_add` / `members_to_remove`).
pub fn addresses(members: &[(MemberKey, String)]) -> Vec<String> {
    members.iter().map(|(_, e)| e.clone()).collect()
}

/// The core's status in Mailchimp's words.
pub fn member_status(s: Status) -> MemberStatus {
    MemberStatus::from(s.as_str().to_string())
}

/// Mailchimp's status in the core's words (an unknown one reads as subscribed, the status
/// segsync never changes).
pub fn core_status(s: &MemberStatus) -> Status {
    Status::parse(s.as_str()).unwrap_or(Status::Subscribed)
}
