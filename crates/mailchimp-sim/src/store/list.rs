//! One audience held in memory: its settings, merge fields, members, tags and segments, and
//! every write a member can receive, with Mailchimp's rules applied in one place so that
//! `POST`, `PUT`, `PATCH` and the batch upsert behave alike.
//!
//! Members are keyed by the 16 raw bytes of their subscriber hash and kept in insertion order,
//! so paging is cheap at a million members; a (last_changed, key) index answers
//! `since_last_changed` without scanning, and the keys of the range last asked are kept
//! until the index changes, so that paging through a million changes stays cheap too. The
//! same index per status answers status-filtered reads and the audience's counts in
//! proportion to what they return, not to the audience's size.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use indexmap::{IndexMap, IndexSet};
use serde_json::{Map, Value};

use crate::config::{BatchCompliance, BatchItemTags, Variants};
use crate::error::{ApiError, FieldError};
use crate::rules::{self, MergeType, Status};

pub type Key = [u8; 16];

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Mailchimp's timestamp form: `2026-11-22T21:37:59+00:00`.
pub fn format_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// Parses the time filters (`since_last_changed` and friends): RFC 3339, or
/// `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS` taken as UTC, or a date.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros())
}

#[derive(Clone, Debug)]
pub struct MergeField {
    pub merge_id: u32,
    pub tag: String,
    pub name: String,
    pub ty: MergeType,
    pub required: bool,
    pub default_value: String,
    pub public: bool,
    pub display_order: u32,
    pub help_text: String,
    pub date_format: String,
    pub phone_format: String,
    pub default_country: u32,
    pub size: u32,
    pub choices: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    Static,
    Saved,
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub id: u32,
    pub name: String,
    pub kind: SegmentKind,
    pub options: Value,
    pub created_at: i64,
    pub updated_at: i64,
    /// Members of a static segment (tag); saved segments are not evaluated.
    pub members: IndexSet<Key>,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub email: String,
    pub status: Status,
    /// For an archived member, the status it had before: compliance survives archiving.
    pub archived_from: Option<Status>,
    /// Values by merge id, sorted by id.
    pub merge: Vec<(u32, Value)>,
    /// Tags (static segment ids) with the time each was added.
    pub tags: Vec<(u32, i64)>,
    pub email_type: String,
    pub language: String,
    pub vip: bool,
    pub ip_signup: String,
    pub timestamp_signup: String,
    pub ip_opt: String,
    pub timestamp_opt: String,
    pub unsubscribe_reason: String,
    pub source: &'static str,
    pub last_changed: i64,
    pub web_id: u64,
}

/// The audience-level settings, kept as the JSON fields Mailchimp takes and returns.
#[derive(Clone, Debug)]
pub struct ListInfo {
    pub name: String,
    pub contact: Value,
    pub permission_reminder: String,
    pub use_archive_bar: bool,
    pub campaign_defaults: Value,
    pub notify_on_subscribe: String,
    pub notify_on_unsubscribe: String,
    pub email_type_option: bool,
    pub double_optin: bool,
    pub marketing_permissions: bool,
    pub visibility: String,
}

/// The keys of one `[since, before)` range of [`List::changed`], as of one generation.
struct ChangedRange {
    generation: u64,
    since: i64,
    before: i64,
    keys: Arc<Vec<Key>>,
}

pub struct List {
    pub id: String,
    pub web_id: u64,
    pub date_created: i64,
    pub info: ListInfo,
    pub merge_fields: Vec<MergeField>,
    pub next_merge_id: u32,
    pub members: IndexMap<Key, Member>,
    /// Permanently deleted addresses: they can never be added again.
    pub forgotten: HashSet<Key>,
    /// (last_changed, key) of every member, for `since_last_changed`. Every change to it
    /// must bump `changed_generation` (see [`List::changed_between`]).
    pub changed: BTreeSet<(i64, Key)>,
    changed_generation: u64,
    changed_range: parking_lot::Mutex<Option<ChangedRange>>,
    /// (last_changed, key) of the members at each status, by [`status_slot`]: every member
    /// is in the set of its status, at its `last_changed`, once [`List::touch`] ran after a
    /// change of status (every write that changes a status touches the member).
    by_status: [BTreeSet<(i64, Key)>; STATUSES],
    pub segments: IndexMap<u32, Segment>,
    pub last_sub_date: Option<i64>,
    pub last_unsub_date: Option<i64>,
    next_member_web_id: u64,
}

/// The number of member statuses.
const STATUSES: usize = 6;

/// Where a status's members are in [`List`]'s index by status.
fn status_slot(s: Status) -> usize {
    match s {
        Status::Subscribed => 0,
        Status::Unsubscribed => 1,
        Status::Cleaned => 2,
        Status::Pending => 3,
        Status::Transactional => 4,
        Status::Archived => 5,
    }
}

/// How a write reaches a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// `POST /lists/{id}/members`: create only.
    Create,
    /// `PUT /lists/{id}/members/{hash}`: create with `status_if_new`, or update.
    Upsert,
    /// `PATCH /lists/{id}/members/{hash}`: update only.
    Update,
    /// One item of `POST /lists/{id}`.
    Batch {
        update_existing: bool,
        sync_tags: bool,
    },
}

/// What a write may carry, already type-checked.
#[derive(Clone, Debug, Default)]
pub struct MemberInput {
    pub email_address: Option<String>,
    pub status: Option<Status>,
    pub status_if_new: Option<Status>,
    pub merge_fields: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub email_type: Option<String>,
    pub language: Option<String>,
    pub vip: Option<bool>,
    pub ip_signup: Option<String>,
    pub timestamp_signup: Option<String>,
    pub ip_opt: Option<String>,
    pub timestamp_opt: Option<String>,
}

impl MemberInput {
    /// Reads a member body; `statuses` are the values `status` may take for this endpoint.
    pub fn from_json(v: &Value, statuses: &[Status]) -> Result<MemberInput, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Value::Object(o) = v else {
            return Err(vec![FieldError::new(
                "",
                "Schema describes object, NULL found instead",
            )]);
        };
        let mut text = |k: &str| -> Option<String> {
            match o.get(k) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    errors.push(FieldError::new(
                        k,
                        "Schema describes string, another type found instead",
                    ));
                    None
                }
            }
        };
        let email_address = text("email_address");
        let email_type = text("email_type");
        let language = text("language");
        let ip_signup = text("ip_signup");
        let timestamp_signup = text("timestamp_signup");
        let ip_opt = text("ip_opt");
        let timestamp_opt = text("timestamp_opt");
        let status_text = text("status");
        let status_if_new_text = text("status_if_new");
        let mut status_of = |k: &str, s: Option<String>, allowed: &[Status]| {
            let s = s?;
            match Status::parse(&s).filter(|st| allowed.contains(st)) {
                Some(st) => Some(st),
                None => {
                    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                    errors.push(FieldError::new(
                        k,
                        format!("Value is not one of enum values: {}", names.join(", ")),
                    ));
                    None
                }
            }
        };
        let status = status_of("status", status_text, statuses);
        let status_if_new = status_of(
            "status_if_new",
            status_if_new_text,
            &[
                Status::Subscribed,
                Status::Unsubscribed,
                Status::Cleaned,
                Status::Pending,
                Status::Transactional,
            ],
        );
        let merge_fields = match o.get("merge_fields") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                errors.push(FieldError::new(
                    "merge_fields",
                    "Schema describes object, another type found instead",
                ));
                None
            }
        };
        let tags = match o.get("tags") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let mut names = Vec::new();
                for t in a {
                    match t {
                        Value::String(s) => names.push(s.clone()),
                        Value::Object(obj) => match obj.get("name") {
                            Some(Value::String(s)) => names.push(s.clone()),
                            _ => errors.push(FieldError::new("tags", "Each tag must be a string")),
                        },
                        _ => errors.push(FieldError::new("tags", "Each tag must be a string")),
                    }
                }
                Some(names)
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "tags",
                    "Schema describes array, another type found instead",
                ));
                None
            }
        };
        let vip = match o.get("vip") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push(FieldError::new(
                    "vip",
                    "Schema describes boolean, another type found instead",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(MemberInput {
            email_address,
            status,
            status_if_new,
            merge_fields,
            tags,
            email_type,
            language,
            vip,
            ip_signup,
            timestamp_signup,
            ip_opt,
            timestamp_opt,
        })
    }
}

/// The schema rules of a member body that the default reading lets pass: `email_type` is
/// `html` or `text`, and each merge value is a string, a number or an address object
/// ([`rules::merge_value_fits_schema`]). Under `batch_schema_errors: whole_request` they are
/// checked with the rest of the schema.
pub fn strict_schema_errors(v: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(Value::String(t)) = v.get("email_type") {
        if t != "html" && t != "text" {
            errors.push(FieldError::new(
                "email_type",
                "Value is not one of enum values: html, text",
            ));
        }
    }
    if let Some(Value::Object(m)) = v.get("merge_fields") {
        for (tag, value) in m {
            if !rules::merge_value_fits_schema(value) {
                errors.push(FieldError::new(
                    format!("merge_fields.{tag}"),
                    rules::ANY_OF_MESSAGE,
                ));
            }
        }
    }
    errors
}

/// Why one member write was refused: an API error for single calls, one `errors[]` entry of a
/// batch upsert.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub field_errors: Vec<FieldError>,
    pub contact_exists: bool,
}

impl MemberError {
    fn new(title: &'static str, detail: String) -> Self {
        MemberError {
            status: StatusCode::BAD_REQUEST,
            title,
            detail,
            field_errors: Vec::new(),
            contact_exists: false,
        }
    }

    pub fn into_api(self) -> ApiError {
        let mut e = ApiError::new(self.status, self.title, self.detail);
        e.errors = self.field_errors;
        e
    }

    /// The entry of a batch upsert's `errors[]`.
    pub fn batch_entry(&self, email: &str) -> Value {
        let (field, field_message) = match self.field_errors.first() {
            Some(f) => (f.field.clone(), f.message.clone()),
            None => (String::new(), String::new()),
        };
        serde_json::json!({
            "email_address": email,
            "error": self.detail,
            "error_code": if self.contact_exists { "ERROR_CONTACT_EXISTS" } else { "ERROR_GENERIC" },
            "field": field,
            "field_message": field_message,
        })
    }
}

impl From<MemberError> for ApiError {
    fn from(e: MemberError) -> Self {
        e.into_api()
    }
}

/// What the account around the list allows a write to do.
pub struct WriteCtx<'a> {
    pub refused_domains: &'a [String],
    pub skip_merge_validation: bool,
    pub batch_compliance: BatchCompliance,
    /// Contacts the account may still add; `None` is no limit.
    pub room: &'a mut Option<u64>,
    pub contact_limit: Option<u64>,
    pub now: i64,
    /// The readings in force (dates, addresses, tag names, recent signups).
    pub variants: &'a Variants,
    /// Addresses refused for signing up to many lists recently.
    pub recent_signups: &'a crate::store::RecentSignups,
    /// The seed that draws `variants.recent_signups_rate`'s addresses.
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Created(Key),
    /// An existing member the write changed.
    Updated(Key),
    /// An existing member the write left as it was.
    Unchanged(Key),
}

impl Written {
    pub fn key(self) -> Key {
        match self {
            Written::Created(k) | Written::Updated(k) | Written::Unchanged(k) => k,
        }
    }
}

/// The detail of Mailchimp's temporary refusal of an address that signed up to many lists.
pub fn recent_signups_message(email: &str) -> String {
    format!("{email} has signed up to a lot of lists very recently; we're not allowing more signups for now")
}

/// The detail of a refused tag (static segment) name longer than `max` characters.
pub fn tag_name_too_long(name: &str, max: usize) -> String {
    format!("The tag name \"{name}\" is too long: tag names may be at most {max} characters.")
}

fn default_merge_fields() -> Vec<MergeField> {
    let mk = |id: u32, tag: &str, name: &str, ty: MergeType| MergeField {
        merge_id: id,
        tag: tag.into(),
        name: name.into(),
        ty,
        required: false,
        default_value: String::new(),
        public: false,
        display_order: id + 1,
        help_text: String::new(),
        date_format: String::new(),
        phone_format: if ty == MergeType::Phone {
            "none".into()
        } else {
            String::new()
        },
        default_country: if ty == MergeType::Address { 164 } else { 0 },
        size: 25,
        choices: Vec::new(),
    };
    vec![
        mk(1, "FNAME", "First Name", MergeType::Text),
        mk(2, "LNAME", "Last Name", MergeType::Text),
        mk(3, "ADDRESS", "Address", MergeType::Address),
        mk(4, "PHONE", "Phone Number", MergeType::Phone),
    ]
}

impl List {
    pub fn new(id: String, web_id: u64, info: ListInfo) -> List {
        List {
            id,
            web_id,
            date_created: now_micros(),
            info,
            merge_fields: default_merge_fields(),
            next_merge_id: 5,
            members: IndexMap::new(),
            forgotten: HashSet::new(),
            changed: BTreeSet::new(),
            changed_generation: 0,
            changed_range: parking_lot::Mutex::new(None),
            by_status: Default::default(),
            segments: IndexMap::new(),
            last_sub_date: None,
            last_unsub_date: None,
            next_member_web_id: 1,
        }
    }

    /// Members that count against the account's contact limit.
    pub fn contacts(&self) -> u64 {
        (self.members.len() - self.by_status[status_slot(Status::Archived)].len()) as u64
    }

    pub fn count_status(&self, s: Status) -> u64 {
        self.by_status[status_slot(s)].len() as u64
    }

    /// (last_changed, key) of the members at status `s`, oldest change first.
    pub fn with_status(&self, s: Status) -> &BTreeSet<(i64, Key)> {
        &self.by_status[status_slot(s)]
    }

    /// Takes `key` (last changed at `at`) out of the index by status: from the set of
    /// `status` (the member's status, unless it changed since it was indexed), else from
    /// whichever set holds it.
    fn unindex_status(&mut self, key: Key, status: Status, at: i64) {
        if self.by_status[status_slot(status)].remove(&(at, key)) {
            return;
        }
        for set in self.by_status.iter_mut() {
            if set.remove(&(at, key)) {
                return;
            }
        }
    }

    pub fn merge_field_by_tag(&self, tag: &str) -> Option<&MergeField> {
        self.merge_fields.iter().find(|f| f.tag == tag)
    }

    pub fn tag_by_name(&self, name: &str) -> Option<u32> {
        self.segments
            .values()
            .find(|s| s.kind == SegmentKind::Static && s.name == name)
            .map(|s| s.id)
    }

    /// The static segment called `name`, created when missing, as tagging does.
    pub fn ensure_tag(&mut self, name: &str, next_id: &mut u32, now: i64) -> u32 {
        if let Some(id) = self.tag_by_name(name) {
            return id;
        }
        let id = *next_id;
        *next_id += 1;
        self.segments.insert(
            id,
            Segment {
                id,
                name: name.to_string(),
                kind: SegmentKind::Static,
                options: Value::Null,
                created_at: now,
                updated_at: now,
                members: IndexSet::new(),
            },
        );
        id
    }

    /// The members whose last change is in `[since, before)` (microseconds), oldest change
    /// first. The range is computed once per state of the index: the pages of one
    /// `since_last_changed` read each cost their own size, not the range's.
    pub fn changed_between(&self, since: i64, before: i64) -> Arc<Vec<Key>> {
        let mut cached = self.changed_range.lock();
        if let Some(r) = cached.as_ref().filter(|r| {
            (r.generation, r.since, r.before) == (self.changed_generation, since, before)
        }) {
            return r.keys.clone();
        }
        let keys: Arc<Vec<Key>> = Arc::new(
            self.changed
                .range((since, [0u8; 16])..(before, [0u8; 16]))
                .map(|(_, k)| *k)
                .collect(),
        );
        *cached = Some(ChangedRange {
            generation: self.changed_generation,
            since,
            before,
            keys: keys.clone(),
        });
        keys
    }

    fn touch(&mut self, key: Key, now: i64) {
        let Some(&Member {
            status,
            last_changed,
            ..
        }) = self.members.get(&key)
        else {
            return;
        };
        self.unindex_status(key, status, last_changed);
        self.changed_generation += 1;
        self.changed.remove(&(last_changed, key));
        // Keep last_changed strictly increasing per member so the index stays exact.
        let at = now.max(last_changed + 1);
        self.members[&key].last_changed = at;
        self.changed.insert((at, key));
        self.by_status[status_slot(status)].insert((at, key));
    }

    /// Adds `key` to tag `seg`; true when it was not there yet.
    pub fn add_tag(&mut self, key: Key, seg: u32, now: i64) -> bool {
        let Some(s) = self.segments.get_mut(&seg) else {
            return false;
        };
        if !s.members.insert(key) {
            return false;
        }
        s.updated_at = now;
        if let Some(m) = self.members.get_mut(&key) {
            m.tags.push((seg, now));
        }
        self.touch(key, now);
        true
    }

    /// Removes `key` from tag `seg`; true when it was there.
    pub fn remove_tag(&mut self, key: Key, seg: u32, now: i64) -> bool {
        let Some(s) = self.segments.get_mut(&seg) else {
            return false;
        };
        if !s.members.swap_remove(&key) {
            return false;
        }
        s.updated_at = now;
        if let Some(m) = self.members.get_mut(&key) {
            m.tags.retain(|(id, _)| *id != seg);
        }
        self.touch(key, now);
        true
    }

    pub fn delete_segment(&mut self, seg: u32, now: i64) -> bool {
        let Some(s) = self.segments.shift_remove(&seg) else {
            return false;
        };
        for key in s.members {
            if let Some(m) = self.members.get_mut(&key) {
                m.tags.retain(|(id, _)| *id != seg);
            }
            self.touch(key, now);
        }
        true
    }

    /// Archives a member (`DELETE .../members/{hash}`).
    pub fn archive(&mut self, key: Key, now: i64) -> Result<(), ApiError> {
        let m = self.members.get_mut(&key).ok_or_else(ApiError::not_found)?;
        if matches!(
            m.status,
            Status::Pending | Status::Cleaned | Status::Archived
        ) {
            return Err(ApiError::method_not_allowed(
                "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived",
                "GET, PUT",
            ));
        }
        m.archived_from = Some(m.status);
        m.status = Status::Archived;
        self.touch(key, now);
        Ok(())
    }

    /// Deletes a member for good (`actions/delete-permanent`): it can never come back.
    pub fn delete_permanent(&mut self, key: Key) -> Result<(), ApiError> {
        let m = self
            .members
            .shift_remove(&key)
            .ok_or_else(ApiError::not_found)?;
        self.changed_generation += 1;
        self.changed.remove(&(m.last_changed, key));
        self.unindex_status(key, m.status, m.last_changed);
        for (seg, _) in m.tags {
            if let Some(s) = self.segments.get_mut(&seg) {
                s.members.swap_remove(&key);
            }
        }
        self.forgotten.insert(key);
        Ok(())
    }

    /// Sets a member's status as Mailchimp itself would (the member unsubscribing, a bounce):
    /// no compliance rule applies. For the admin API.
    pub fn force_status(&mut self, key: Key, status: Status, now: i64) -> bool {
        let Some(m) = self.members.get_mut(&key) else {
            return false;
        };
        if status == Status::Archived {
            m.archived_from = Some(m.status);
        } else {
            m.archived_from = None;
        }
        if status == Status::Unsubscribed {
            self.last_unsub_date = Some(now);
        }
        m.status = status;
        self.touch(key, now);
        true
    }

    /// Checks and normalises incoming merge values against this audience's fields.
    fn check_merge(
        &self,
        input: Option<&Map<String, Value>>,
        current: &[(u32, Value)],
        skip_required: bool,
        dates: crate::config::DateMergeValues,
    ) -> Result<Vec<(u32, Value)>, MemberError> {
        let mut out: Vec<(u32, Value)> = current.to_vec();
        let mut errors = Vec::new();
        if let Some(input) = input {
            for (tag, value) in input {
                let Some(f) = self.merge_field_by_tag(&tag.to_uppercase()) else {
                    errors.push(FieldError::new(
                        tag,
                        "This merge field does not exist in the audience",
                    ));
                    continue;
                };
                match rules::normalise_merge_value_as(
                    f.ty,
                    value,
                    &f.date_format,
                    &f.choices,
                    dates,
                ) {
                    Ok(v) => match out.iter_mut().find(|(id, _)| *id == f.merge_id) {
                        Some(slot) => slot.1 = v,
                        None => out.push((f.merge_id, v)),
                    },
                    Err(msg) => errors.push(FieldError::new(f.tag.clone(), msg)),
                }
            }
        }
        if !skip_required {
            for f in self.merge_fields.iter().filter(|f| f.required) {
                let present = out
                    .iter()
                    .any(|(id, v)| *id == f.merge_id && !rules::is_blank(v));
                if !present && !errors.iter().any(|e| e.field == f.tag) {
                    errors.push(FieldError::new(f.tag.clone(), "Please enter a value"));
                }
            }
        }
        if !errors.is_empty() {
            let mut e =
                MemberError::new("Invalid Resource", "Your merge fields were invalid.".into());
            e.field_errors = errors;
            return Err(e);
        }
        out.retain(|(_, v)| !(v.is_string() && v.as_str() == Some("")));
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// Applies one member write with every rule of Mailchimp.
    pub fn write_member(
        &mut self,
        path_key: Option<Key>,
        input: &MemberInput,
        mode: WriteMode,
        ctx: &mut WriteCtx<'_>,
        next_segment_id: &mut u32,
    ) -> Result<Written, MemberError> {
        let email = input.email_address.as_deref().map(str::trim);
        let body_key = email.map(rules::hash_key);
        let key = match (path_key, body_key, mode) {
            (Some(p), Some(b), WriteMode::Upsert) if p != b && !self.members.contains_key(&p) => {
                return Err(MemberError::new(
                    "Invalid Resource",
                    "The email address in the body does not match the subscriber hash in the URL."
                        .into(),
                ));
            }
            (Some(p), _, _) => p,
            (None, Some(b), _) => b,
            (None, None, _) => {
                let mut e = MemberError::new(
                    "Invalid Resource",
                    "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
                );
                e.field_errors = vec![FieldError::new(
                    "email_address",
                    "This value should not be blank.",
                )];
                return Err(e);
            }
        };
        if self.members.contains_key(&key) {
            self.update_existing(key, email, body_key, input, mode, ctx, next_segment_id)
        } else {
            self.create(key, email, input, mode, ctx, next_segment_id)
        }
    }

    fn create(
        &mut self,
        key: Key,
        email: Option<&str>,
        input: &MemberInput,
        mode: WriteMode,
        ctx: &mut WriteCtx<'_>,
        next_segment_id: &mut u32,
    ) -> Result<Written, MemberError> {
        if mode == WriteMode::Update {
            return Err(MemberError {
                status: StatusCode::NOT_FOUND,
                ..MemberError::new(
                    "Resource Not Found",
                    "The requested resource could not be found.".into(),
                )
            });
        }
        let email = email.unwrap_or_default();
        let status = match mode {
            WriteMode::Upsert => input.status_if_new.or(input.status),
            _ => input.status,
        };
        let Some(status) = status else {
            let field = if mode == WriteMode::Upsert {
                "status_if_new"
            } else {
                "status"
            };
            let mut e = MemberError::new(
                "Invalid Resource",
                "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
            );
            e.field_errors = vec![FieldError::new(field, "This value should not be blank.")];
            return Err(e);
        };
        if let Err(p) =
            rules::check_email_as(email, ctx.refused_domains, ctx.variants.ascii_local_parts)
        {
            let mut e = MemberError::new("Invalid Resource", p.message(email));
            e.field_errors = vec![FieldError::new("email_address", p.message(email))];
            return Err(e);
        }
        if self.forgotten.contains(&key) {
            return Err(MemberError::new(
                "Forgotten Email Not Subscribed",
                format!("{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."),
            ));
        }
        if let Some(room) = ctx.room {
            if *room == 0 {
                return Err(MemberError::new(
                    "Invalid Resource",
                    format!(
                        "{email} could not be added: the account has reached its limit of {} contacts. Upgrade your plan or archive contacts to add more.",
                        ctx.contact_limit.unwrap_or(0)
                    ),
                ));
            }
        }
        let merge = self.check_merge(
            input.merge_fields.as_ref(),
            &[],
            ctx.skip_merge_validation,
            ctx.variants.date_merge_values,
        )?;
        self.check_new_tags(input.tags.as_deref(), ctx.variants.tag_name_max)?;
        if ctx.recent_signups.refuses(email, ctx.variants, ctx.seed) {
            return Err(MemberError::new(
                "Invalid Resource",
                recent_signups_message(email),
            ));
        }
        if let Some(room) = ctx.room.as_mut() {
            *room -= 1;
        }
        let web_id = self.next_member_web_id;
        self.next_member_web_id += 1;
        let now = ctx.now;
        let member = Member {
            email: email.to_string(),
            status,
            archived_from: None,
            merge,
            tags: Vec::new(),
            email_type: input.email_type.clone().unwrap_or_else(|| "html".into()),
            language: input.language.clone().unwrap_or_default(),
            vip: input.vip.unwrap_or(false),
            ip_signup: input.ip_signup.clone().unwrap_or_default(),
            timestamp_signup: input.timestamp_signup.clone().unwrap_or_default(),
            ip_opt: input.ip_opt.clone().unwrap_or_default(),
            timestamp_opt: input.timestamp_opt.clone().unwrap_or_else(|| {
                if status == Status::Subscribed {
                    format_time(now)
                } else {
                    String::new()
                }
            }),
            unsubscribe_reason: String::new(),
            source: "API - Generic",
            last_changed: now,
            web_id,
        };
        if status == Status::Subscribed {
            self.last_sub_date = Some(now);
        }
        self.members.insert(key, member);
        self.changed_generation += 1;
        self.changed.insert((now, key));
        self.by_status[status_slot(status)].insert((now, key));
        for name in input.tags.iter().flatten() {
            let seg = self.ensure_tag(name, next_segment_id, now);
            self.add_tag(key, seg, now);
        }
        Ok(Written::Created(key))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_existing(
        &mut self,
        key: Key,
        email: Option<&str>,
        body_key: Option<Key>,
        input: &MemberInput,
        mode: WriteMode,
        ctx: &mut WriteCtx<'_>,
        next_segment_id: &mut u32,
    ) -> Result<Written, MemberError> {
        let current = &self.members[&key];
        let shown = email.unwrap_or(&current.email).to_string();
        match mode {
            WriteMode::Create => {
                return Err(MemberError::new(
                    "Member Exists",
                    format!(
                    "{shown} is already a list member. Use PUT to insert or update list members."
                ),
                ))
            }
            WriteMode::Batch {
                update_existing: false,
                ..
            } => {
                let mut e = MemberError::new(
                    "Member Exists",
                    format!("{shown} is already a list member, do you want to update? please provide update_existing:true in the request body"),
                );
                e.contact_exists = true;
                return Err(e);
            }
            _ => {}
        }
        // A change of address (PATCH or PUT with a new email_address).
        let new_key = body_key.filter(|b| *b != key);
        if let (Some(nk), Some(addr)) = (new_key, email) {
            if let Err(p) =
                rules::check_email_as(addr, ctx.refused_domains, ctx.variants.ascii_local_parts)
            {
                return Err(MemberError::new("Invalid Resource", p.message(addr)));
            }
            if self.members.contains_key(&nk) {
                return Err(MemberError::new(
                    "Member Exists",
                    format!("{addr} is already a list member. Use PUT to insert or update list members."),
                ));
            }
            if self.forgotten.contains(&nk) {
                return Err(MemberError::new(
                    "Forgotten Email Not Subscribed",
                    format!("{addr} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."),
                ));
            }
        }
        let from = current.archived_from.unwrap_or(current.status);
        let mut target = input.status.unwrap_or(current.status);
        if let Err(refused) = rules::check_transition(from, target) {
            if current.status != target || current.status == Status::Archived {
                let silent = matches!(mode, WriteMode::Batch { .. })
                    && ctx.batch_compliance == BatchCompliance::Ignore;
                if !silent {
                    return Err(MemberError::new(refused.title(), refused.message(&shown)));
                }
                target = current.status;
            }
        }
        let merge = self.check_merge(
            input.merge_fields.as_ref(),
            &current.merge,
            ctx.skip_merge_validation,
            ctx.variants.date_merge_values,
        )?;
        // `new_members_only`: an update's item tags are ignored, as if not sent.
        let item_tags = match ctx.variants.batch_item_tags {
            BatchItemTags::NewMembersOnly => None,
            _ => input.tags.as_ref(),
        };
        if matches!(mode, WriteMode::Batch { .. }) {
            self.check_new_tags(item_tags.map(Vec::as_slice), ctx.variants.tag_name_max)?;
        }
        // Coming back from the archive makes the member count as a contact again.
        if current.status == Status::Archived && target != Status::Archived {
            if let Some(room) = ctx.room.as_mut() {
                if *room == 0 {
                    return Err(MemberError::new(
                        "Invalid Resource",
                        format!(
                            "{shown} could not be added: the account has reached its limit of {} contacts. Upgrade your plan or archive contacts to add more.",
                            ctx.contact_limit.unwrap_or(0)
                        ),
                    ));
                }
                *room -= 1;
            }
        }
        let now = ctx.now;
        let m = self.members.get_mut(&key).expect("checked above");
        let mut changed = m.merge != merge;
        m.merge = merge;
        if m.status != target {
            changed = true;
            match target {
                Status::Subscribed => self.last_sub_date = Some(now),
                Status::Unsubscribed => self.last_unsub_date = Some(now),
                _ => {}
            }
            if target == Status::Subscribed {
                m.timestamp_opt = format_time(now);
            }
            m.archived_from = None;
            m.status = target;
        }
        let mut set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                if slot != v {
                    *slot = v.clone();
                    changed = true;
                }
            }
        };
        set(&mut m.email_type, &input.email_type);
        set(&mut m.language, &input.language);
        set(&mut m.ip_signup, &input.ip_signup);
        set(&mut m.timestamp_signup, &input.timestamp_signup);
        set(&mut m.ip_opt, &input.ip_opt);
        set(&mut m.timestamp_opt, &input.timestamp_opt);
        if let Some(v) = input.vip {
            changed |= m.vip != v;
            m.vip = v;
        }
        let mut key = key;
        if let (Some(nk), Some(addr)) = (new_key, email) {
            m.email = addr.to_string();
            key = self.rekey(key, nk);
            changed = true;
        } else if let Some(addr) = email {
            if m.email != addr {
                m.email = addr.to_string();
                changed = true;
            }
        }
        if changed {
            self.touch(key, now);
        }
        if let (Some(names), WriteMode::Batch { sync_tags, .. }) = (item_tags, mode) {
            let wanted: Vec<u32> = names
                .iter()
                .map(|n| self.ensure_tag(n, next_segment_id, now))
                .collect();
            if sync_tags {
                let have: Vec<u32> = self.members[&key].tags.iter().map(|(id, _)| *id).collect();
                for seg in have.into_iter().filter(|s| !wanted.contains(s)) {
                    changed |= self.remove_tag(key, seg, now);
                }
            }
            for seg in wanted {
                changed |= self.add_tag(key, seg, now);
            }
        }
        Ok(if changed {
            Written::Updated(key)
        } else {
            Written::Unchanged(key)
        })
    }

    /// Refuses tag names that would create a tag longer than `max` characters.
    fn check_new_tags(
        &self,
        names: Option<&[String]>,
        max: Option<usize>,
    ) -> Result<(), MemberError> {
        let Some(max) = max else {
            return Ok(());
        };
        for name in names.into_iter().flatten() {
            if name.chars().count() > max && self.tag_by_name(name).is_none() {
                let mut e = MemberError::new("Invalid Resource", tag_name_too_long(name, max));
                e.field_errors = vec![FieldError::new("tags", tag_name_too_long(name, max))];
                return Err(e);
            }
        }
        Ok(())
    }

    /// Moves a member to the key of its new address, keeping its tags.
    fn rekey(&mut self, old: Key, new: Key) -> Key {
        let m = self.members.shift_remove(&old).expect("member exists");
        self.changed_generation += 1;
        self.changed.remove(&(m.last_changed, old));
        self.unindex_status(old, m.status, m.last_changed);
        for (seg, _) in &m.tags {
            if let Some(s) = self.segments.get_mut(seg) {
                s.members.swap_remove(&old);
                s.members.insert(new);
            }
        }
        self.changed.insert((m.last_changed, new));
        self.by_status[status_slot(m.status)].insert((m.last_changed, new));
        self.members.insert(new, m);
        new
    }
}
