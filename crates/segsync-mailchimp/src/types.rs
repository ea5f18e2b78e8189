//! What the typed calls take and give: audiences, merge fields, members, batch outcomes and
//! tags, in segsync's terms, plus the wire shapes they are read from (kept private).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// Mailchimp's subscriber hash: the MD5 of the lower-cased address, in hex.
pub fn subscriber_hash(email: &str) -> String {
    hex::encode(Md5::digest(email.trim().to_lowercase().as_bytes()))
}

/// A member's status in an audience.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MemberStatus {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    /// Reached only through archiving (DELETE); never sent in a write.
    Archived,
    /// A status this client does not know yet, kept as Mailchimp wrote it.
    Other(String),
}

impl MemberStatus {
    pub fn as_str(&self) -> &str {
        match self {
            MemberStatus::Subscribed => "subscribed",
            MemberStatus::Unsubscribed => "unsubscribed",
            MemberStatus::Cleaned => "cleaned",
            MemberStatus::Pending => "pending",
            MemberStatus::Transactional => "transactional",
            MemberStatus::Archived => "archived",
            MemberStatus::Other(s) => s,
        }
    }
}

impl From<String> for MemberStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "subscribed" => MemberStatus::Subscribed,
            "unsubscribed" => MemberStatus::Unsubscribed,
            "cleaned" => MemberStatus::Cleaned,
            "pending" => MemberStatus::Pending,
            "transactional" => MemberStatus::Transactional,
            "archived" => MemberStatus::Archived,
            _ => MemberStatus::Other(s),
        }
    }
}

impl From<MemberStatus> for String {
    fn from(s: MemberStatus) -> String {
        s.as_str().to_string()
    }
}

impl FromStr for MemberStatus {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(MemberStatus::from(s.to_string()))
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a merge field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MergeFieldType {
    Text,
    Number,
    Address,
    Phone,
    Date,
    Url,
    ImageUrl,
    Radio,
    Dropdown,
    Birthday,
    Zip,
    /// A type this client does not know yet.
    Other(String),
}

impl MergeFieldType {
    pub fn as_str(&self) -> &str {
        match self {
            MergeFieldType::Text => "text",
            MergeFieldType::Number => "number",
            MergeFieldType::Address => "address",
            MergeFieldType::Phone => "phone",
            MergeFieldType::Date => "date",
            MergeFieldType::Url => "url",
            MergeFieldType::ImageUrl => "imageurl",
            MergeFieldType::Radio => "radio",
            MergeFieldType::Dropdown => "dropdown",
            MergeFieldType::Birthday => "birthday",
            MergeFieldType::Zip => "zip",
            MergeFieldType::Other(s) => s,
        }
    }
}

impl From<String> for MergeFieldType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "text" => MergeFieldType::Text,
            "number" => MergeFieldType::Number,
            "address" => MergeFieldType::Address,
            "phone" => MergeFieldType::Phone,
            "date" => MergeFieldType::Date,
            "url" => MergeFieldType::Url,
            "imageurl" => MergeFieldType::ImageUrl,
            "radio" => MergeFieldType::Radio,
            "dropdown" => MergeFieldType::Dropdown,
            "birthday" => MergeFieldType::Birthday,
            "zip" => MergeFieldType::Zip,
            _ => MergeFieldType::Other(s),
        }
    }
}

impl From<MergeFieldType> for String {
    fn from(t: MergeFieldType) -> String {
        t.as_str().to_string()
    }
}

impl FromStr for MergeFieldType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(MergeFieldType::from(s.to_string()))
    }
}

impl fmt::Display for MergeFieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An audience (`GET /lists/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListInfo {
    pub id: String,
    pub name: String,
    /// New members should get `pending` (a confirmation email) rather than `subscribed`.
    pub double_optin: bool,
    /// Subscribed members.
    pub member_count: u64,
    pub unsubscribe_count: u64,
    pub cleaned_count: u64,
    /// Contacts in every state (Mailchimp's approximation), when it answers it.
    pub total_contacts: Option<u64>,
    pub merge_field_count: u64,
}

/// A merge field of an audience.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MergeFieldInfo {
    pub merge_id: u64,
    /// `FNAME`, `LNAME`, ... (at most 10 characters, upper case).
    pub tag: String,
    pub name: String,
    pub r#type: MergeFieldType,
    pub required: bool,
    pub default_value: String,
    /// For `date` and `birthday` fields: `MM/DD/YYYY`, `DD/MM/YYYY`, `MM/DD`, `DD/MM`.
    pub date_format: Option<String>,
    /// For `radio` and `dropdown` fields.
    pub choices: Vec<String>,
    /// For `text` fields: the display size.
    pub size: Option<u64>,
}

/// A merge field to create.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NewMergeField {
    pub name: String,
    /// Upper case, at most 10 characters; `None` lets Mailchimp pick (`MMERGE5`).
    pub tag: Option<String>,
    pub r#type: Option<MergeFieldType>,
    pub required: bool,
    /// For `date` and `birthday`.
    pub date_format: Option<String>,
    /// Required for `radio` and `dropdown`.
    pub choices: Vec<String>,
}

/// What the client knows about one member of an audience.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberState {
    pub email: String,
    /// The subscriber hash (`id` in Mailchimp's answers).
    pub hash: String,
    pub status: MemberStatus,
    /// When the member last changed in Mailchimp (second resolution).
    pub last_changed: Option<DateTime<Utc>>,
}

/// One member of a batch upsert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpsertItem {
    #[serde(rename = "email_address")]
    pub email: String,
    /// For a new member, the export's `status_if_new`; for an existing one, the status it
    /// has now, sent back unchanged (a batch item always carries a status).
    pub status: MemberStatus,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub merge_fields: serde_json::Map<String, serde_json::Value>,
    /// Tags (by name) a new member is created with; never sent for existing members, and
    /// never with `sync_tags` (which would strip tags others gave them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A member a batch upsert created or updated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AcceptedMember {
    /// As Mailchimp answered it.
    pub email: String,
    pub hash: String,
    pub status: MemberStatus,
    /// Created by this request (else updated).
    pub created: bool,
    /// The names of the tags Mailchimp's answer lists on a created member (what shows
    /// whether the item's `tags` took).
    pub tags: Vec<String>,
}

/// A member a batch upsert refused, with Mailchimp's reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberFailure {
    pub email: String,
    /// Why, as segsync acts on it (read from Mailchimp's code and message once, here).
    pub kind: FailureKind,
    /// Mailchimp's `error` ("x looks fake or invalid, please enter a real email address.",
    /// "x is in a compliance state ...").
    pub message: String,
    /// The merge field or property at fault, when Mailchimp names one.
    pub field: Option<String>,
    pub field_message: Option<String>,
}

/// Why Mailchimp refused one member of a batch upsert. Decided once, when the answer is read,
/// so that nothing downstream reads Mailchimp's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// `ERROR_CONTACT_EXISTS`: the address is on the audience and `update_existing` was
    /// false (someone added it meanwhile, or a request of ours whose answer was lost).
    Exists,
    /// Permanently deleted from the audience ("Forgotten Email Not Subscribed"): it can
    /// never be added again by the API.
    Forgotten,
    /// Unsubscribed, cleaned or under compliance review ("Member In Compliance State"): it
    /// cannot be subscribed by the API.
    Compliance,
    /// A temporary refusal of one address ("x has signed up to a lot of lists very recently;
    /// we're not allowing more signups for now"): not the address's fault, and not a reason
    /// to ask again at once; the next run sends it again.
    Deferred,
    /// The account holds as many contacts as its plan allows: not the address's fault; it
    /// is sent again once there is room.
    AccountFull,
    /// Anything else: an address Mailchimp finds invalid or fake, a merge value it refuses.
    Invalid,
}

impl FailureKind {
    /// The kind of a batch upsert's `errors[]` entry.
    pub fn of(error_code: &str, message: &str) -> FailureKind {
        let m = message.to_ascii_lowercase();
        if error_code == "ERROR_CONTACT_EXISTS" {
            FailureKind::Exists
        } else if m.contains("permanently deleted") {
            FailureKind::Forgotten
        } else if m.contains("compliance state") {
            FailureKind::Compliance
        } else if m.contains("signed up to a lot of lists") {
            FailureKind::Deferred
        } else if m.contains("reached its limit") {
            FailureKind::AccountFull
        } else {
            FailureKind::Invalid
        }
    }
}

/// What a batch upsert did. Every item sent is in exactly one of the three lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    pub accepted: Vec<AcceptedMember>,
    pub failed: Vec<MemberFailure>,
    /// Items Mailchimp's answer did not mention (neither accepted nor refused): not known
    /// to be delivered; send them again.
    pub unanswered: Vec<String>,
    /// An earlier attempt of this request failed in a way Mailchimp may have applied it
    /// (timeout, broken connection, 5xx) and it was sent again. Members that attempt created
    /// then come back as updated (`created: false`), or, with `update_existing: false`, as
    /// [`FailureKind::Exists`] failures.
    pub replayed: bool,
}

/// What a tag update did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TagOutcome {
    pub added: u64,
    pub removed: u64,
    /// Addresses Mailchimp ignored because they are not members of the audience.
    pub not_members: Vec<String>,
}

/// What [`archive`](super::Client::archive) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Archived {
    /// The member was archived now.
    Archived,
    /// There was nothing to archive (404: not a member, or already gone).
    AlreadyGone,
}

// Wire shapes, read with `fields=` so answers stay slim.

#[derive(Deserialize)]
pub(crate) struct WireList {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub double_optin: bool,
    #[serde(default)]
    pub stats: WireListStats,
}

#[derive(Deserialize)]
pub(crate) struct WireListPage {
    #[serde(default)]
    pub lists: Vec<WireList>,
    #[serde(default)]
    pub total_items: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WireListStats {
    pub member_count: u64,
    pub unsubscribe_count: u64,
    pub cleaned_count: u64,
    pub total_contacts: Option<u64>,
    pub merge_field_count: u64,
}

impl From<WireList> for ListInfo {
    fn from(w: WireList) -> Self {
        ListInfo {
            id: w.id,
            name: w.name,
            double_optin: w.double_optin,
            member_count: w.stats.member_count,
            unsubscribe_count: w.stats.unsubscribe_count,
            cleaned_count: w.stats.cleaned_count,
            total_contacts: w.stats.total_contacts,
            merge_field_count: w.stats.merge_field_count,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct WireMergeField {
    pub merge_id: u64,
    pub tag: String,
    #[serde(default)]
    pub name: String,
    pub r#type: MergeFieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default_value: String,
    #[serde(default)]
    pub options: WireMergeOptions,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WireMergeOptions {
    pub date_format: Option<String>,
    pub choices: Vec<String>,
    pub size: Option<u64>,
}

impl From<WireMergeField> for MergeFieldInfo {
    fn from(w: WireMergeField) -> Self {
        MergeFieldInfo {
            merge_id: w.merge_id,
            tag: w.tag,
            name: w.name,
            r#type: w.r#type,
            required: w.required,
            default_value: w.default_value,
            date_format: w.options.date_format.filter(|f| !f.is_empty()),
            choices: w.options.choices,
            size: w.options.size,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct WireMergeFieldPage {
    #[serde(default)]
    pub merge_fields: Vec<WireMergeField>,
    #[serde(default)]
    pub total_items: u64,
}

#[derive(Deserialize)]
pub(crate) struct WireMember {
    pub email_address: String,
    #[serde(default)]
    pub id: Option<String>,
    pub status: MemberStatus,
    #[serde(default)]
    pub last_changed: Option<String>,
}

impl From<WireMember> for MemberState {
    fn from(w: WireMember) -> Self {
        let hash =
            w.id.filter(|h| h.len() == 32)
                .unwrap_or_else(|| subscriber_hash(&w.email_address));
        MemberState {
            last_changed: w.last_changed.as_deref().and_then(parse_time),
            email: w.email_address,
            hash,
            status: w.status,
        }
    }
}

/// Mailchimp's times: ISO 8601 with an offset (`2015-10-21T15:41:36+00:00`).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The form Mailchimp's docs use for time filters.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

#[derive(Deserialize)]
pub(crate) struct WireMemberPage {
    #[serde(default)]
    pub members: Vec<WireMember>,
    #[serde(default)]
    pub total_items: u64,
}

#[derive(Deserialize)]
pub(crate) struct WireBatchMember {
    pub email_address: String,
    pub status: MemberStatus,
    #[serde(default)]
    pub tags: Vec<WireTagRef>,
}

/// A tag as a member lists it (`{id, name}`).
#[derive(Deserialize)]
pub(crate) struct WireTagRef {
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
pub(crate) struct WireBatchError {
    #[serde(default)]
    pub email_address: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub field_message: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireBatchAnswer {
    #[serde(default)]
    pub new_members: Vec<WireBatchMember>,
    #[serde(default)]
    pub updated_members: Vec<WireBatchMember>,
    #[serde(default)]
    pub errors: Vec<WireBatchError>,
}

#[derive(Deserialize)]
pub(crate) struct WireSegment {
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
pub(crate) struct WireSegmentPage {
    #[serde(default)]
    pub segments: Vec<WireSegment>,
    #[serde(default)]
    pub total_items: u64,
}

#[derive(Deserialize)]
pub(crate) struct WireTagAnswer {
    #[serde(default)]
    pub total_added: u64,
    #[serde(default)]
    pub total_removed: u64,
    #[serde(default)]
    pub errors: Vec<WireTagError>,
}

#[derive(Deserialize)]
pub(crate) struct WireTagError {
    #[serde(default)]
    pub email_addresses: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_of_lower_case() {
        // md5("urist.mcvankab@freddiesjokes.com"), Mailchimp's docs example.
        assert_eq!(
            subscriber_hash("Urist.McVankab@freddiesjokes.com"),
            "62eeb292278cc15f5817cb78f7790b08"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            "subscribed",
            "unsubscribed",
            "cleaned",
            "pending",
            "transactional",
            "archived",
            "something_new",
        ] {
            let st: MemberStatus = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(serde_json::to_value(&st).unwrap(), serde_json::json!(s));
        }
    }

    #[test]
    fn times() {
        let t = parse_time("2015-10-21T15:41:36+00:00").unwrap();
        assert_eq!(format_time(t), "2015-10-21T15:41:36+00:00");
    }
}
