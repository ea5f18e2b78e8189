//! Plan operations as Mailchimp request bodies: the core's members and statuses in the
//! API's words. Pure; the [`sink`](crate::sink) sends what this builds.

use std::collections::HashMap;

use segsync_core::{MemberKey, Status, TagSet, Upsert};

use crate::types::{MemberStatus, UpsertItem};

/// The items of a batch upsert (`POST /lists/{list_id}`): each member's address, the status
/// the plan gives it, its merge values when it carries content, and the names (`tag_names`,
/// by tag bit) of the tags it carries (a new member's, or those an existing one gains;
/// Mailchimp adds them to the member's others, as `sync_tags` is never sent).
pub fn upsert_items(items: &[Upsert], tag_names: &HashMap<usize, String>) -> Vec<UpsertItem> {
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
            tags: tag_names_of(u.tags, tag_names),
        })
        .collect()
}

/// The names of the tags `tags` (a tag without a name is left out).
pub fn tag_names_of(tags: TagSet, tag_names: &HashMap<usize, String>) -> Vec<String> {
    tags.iter()
        .filter_map(|b| tag_names.get(&b).cloned())
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
