//! Audiences (`/lists`) and the batch upsert `POST /lists/{list_id}`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Map, Value};

use super::{body_json, flag, no_content, off_runtime, paging, reply, AppState, Items, Query};
use crate::config::{BatchItemTags, BatchSchemaErrors, UpdatedMembers};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::render::{self, MemberDoc};
use crate::rules::{self, Status};
use crate::store::list::{
    now_micros, strict_schema_errors, List, ListInfo, MemberInput, WriteCtx, WriteMode, Written,
};
use crate::store::{random_hex, Account, AccountData, Sim};
use serde::Serialize;

/// Members one batch upsert may carry.
pub const MAX_BATCH_MEMBERS: usize = 500;

pub async fn list_all(Extension(account): Extension<Arc<Account>>, q: Query) -> Response {
    let (count, offset) = paging(&q);
    let d = account.data.lock();
    let lists: Vec<Value> = d
        .lists
        .values()
        .skip(offset)
        .take(count)
        .map(render::list)
        .collect();
    reply(
        &q,
        json!({
            "lists": lists,
            "total_items": d.lists.len(),
            "constraints": {"may_create": true, "max_instances": 100, "current_total_instances": d.lists.len()},
            "_links": [],
        }),
    )
}

fn str_field(o: &Map<String, Value>, k: &str, errors: &mut Vec<FieldError>) -> Option<String> {
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
}

fn bool_field(o: &Map<String, Value>, k: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match o.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::new(
                k,
                "Schema describes boolean, another type found instead",
            ));
            None
        }
    }
}

/// Applies the fields of a create or update body to `info`; `create` demands the required ones.
fn apply_list_body(info: &mut ListInfo, body: &Value, create: bool) -> ApiResult<()> {
    let Value::Object(o) = body else {
        return Err(ApiError::schema(vec![FieldError::new(
            "",
            "Schema describes object",
        )]));
    };
    let mut errors = Vec::new();
    if create {
        for k in [
            "name",
            "contact",
            "permission_reminder",
            "campaign_defaults",
            "email_type_option",
        ] {
            if o.get(k).is_none_or(Value::is_null) {
                errors.push(FieldError::new(k, "This value should not be blank."));
            }
        }
    }
    if let Some(name) = str_field(o, "name", &mut errors) {
        if name.trim().is_empty() {
            errors.push(FieldError::new("name", "This value should not be blank."));
        }
        info.name = name;
    }
    if let Some(c) = o.get("contact").filter(|c| !c.is_null()) {
        match c.as_object() {
            Some(obj) => {
                for k in ["company", "address1", "city", "country"] {
                    if obj
                        .get(k)
                        .and_then(Value::as_str)
                        .is_none_or(|s| s.trim().is_empty())
                    {
                        errors.push(FieldError::new(
                            format!("contact.{k}"),
                            "This value should not be blank.",
                        ));
                    }
                }
                for k in ["address2", "state", "zip", "phone"] {
                    if obj.get(k).is_some_and(|v| !v.is_null() && !v.is_string()) {
                        errors.push(FieldError::new(
                            format!("contact.{k}"),
                            "Schema describes string, another type found instead",
                        ));
                    }
                }
                info.contact = c.clone();
            }
            None => errors.push(FieldError::new(
                "contact",
                "Schema describes object, another type found instead",
            )),
        }
    }
    if let Some(c) = o.get("campaign_defaults").filter(|c| !c.is_null()) {
        match c.as_object() {
            Some(obj) => {
                for k in ["from_name", "from_email", "subject", "language"] {
                    if obj.get(k).and_then(Value::as_str).is_none() {
                        errors.push(FieldError::new(
                            format!("campaign_defaults.{k}"),
                            "This value should not be blank.",
                        ));
                    }
                }
                info.campaign_defaults = c.clone();
            }
            None => errors.push(FieldError::new(
                "campaign_defaults",
                "Schema describes object, another type found instead",
            )),
        }
    }
    if let Some(v) = str_field(o, "permission_reminder", &mut errors) {
        info.permission_reminder = v;
    }
    if let Some(v) = str_field(o, "notify_on_subscribe", &mut errors) {
        info.notify_on_subscribe = v;
    }
    if let Some(v) = str_field(o, "notify_on_unsubscribe", &mut errors) {
        info.notify_on_unsubscribe = v;
    }
    if let Some(v) = bool_field(o, "use_archive_bar", &mut errors) {
        info.use_archive_bar = v;
    }
    if let Some(v) = bool_field(o, "email_type_option", &mut errors) {
        info.email_type_option = v;
    }
    if let Some(v) = bool_field(o, "double_optin", &mut errors) {
        info.double_optin = v;
    }
    if let Some(v) = bool_field(o, "marketing_permissions", &mut errors) {
        info.marketing_permissions = v;
    }
    if let Some(v) = str_field(o, "visibility", &mut errors) {
        if v != "pub" && v != "prv" {
            errors.push(FieldError::new(
                "visibility",
                "Value is not one of enum values: pub, prv",
            ));
        }
        info.visibility = v;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::schema(errors))
    }
}

/// Creates an audience in `account` from a `POST /lists` body.
pub fn create_list(account: &Account, body: &Value) -> ApiResult<Value> {
    let mut info = ListInfo {
        name: String::new(),
        contact: Value::Null,
        permission_reminder: String::new(),
        use_archive_bar: false,
        campaign_defaults: Value::Null,
        notify_on_subscribe: String::new(),
        notify_on_unsubscribe: String::new(),
        email_type_option: false,
        double_optin: false,
        marketing_permissions: false,
        visibility: "pub".into(),
    };
    apply_list_body(&mut info, body, true)?;
    let mut d = account.data.lock();
    let web_id = d.next_list_web_id;
    d.next_list_web_id += 1;
    let list = List::new(random_hex(5), web_id, info);
    let out = render::list(&list);
    d.lists.insert(list.id.clone(), list);
    Ok(out)
}

pub async fn create(
    Extension(account): Extension<Arc<Account>>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    Ok(reply(&q, create_list(&account, &body)?))
}

pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    Ok(reply(&q, render::list(list)))
}

pub async fn update(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let mut info = list.info.clone();
    apply_list_body(&mut info, &body, false)?;
    list.info = info;
    Ok(reply(&q, render::list(list)))
}

pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
) -> ApiResult<Response> {
    let mut d = account.data.lock();
    d.lists
        .shift_remove(&list_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(no_content())
}

/// Contacts the account may still add, under the configured limit.
pub fn room(sim: &Sim, d: &AccountData) -> (Option<u64>, Option<u64>) {
    let limit = sim.settings.read().contact_limit;
    (limit.map(|l| l.saturating_sub(d.contacts())), limit)
}

/// Counts a refused write that would have broken a compliance rule.
pub fn count_refusal(sim: &Sim, title: &str) {
    if title == "Member In Compliance State" || title == "Forgotten Email Not Subscribed" {
        sim.counters
            .compliance_refusals
            .fetch_add(1, Ordering::Relaxed);
    }
}

pub fn count_written(sim: &Sim, w: Written) {
    let c = match w {
        Written::Created(_) => &sim.counters.members_created,
        Written::Updated(_) | Written::Unchanged(_) => &sim.counters.members_updated,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

/// An item as read for a write: `tags` dropped when `variants.batch_item_tags` is `ignored`,
/// so that they are neither applied nor checked.
fn item_input(
    item: &Value,
    statuses: &[Status],
    ignore_tags: bool,
) -> Result<MemberInput, Vec<FieldError>> {
    match item {
        Value::Object(o) if ignore_tags && o.contains_key("tags") => {
            let mut o = o.clone();
            o.remove("tags");
            MemberInput::from_json(&Value::Object(o), statuses)
        }
        _ => MemberInput::from_json(item, statuses),
    }
}

/// Every schema error of the batch's items, each field named `members.item:N.field` (N from
/// 0), for `batch_schema_errors: whole_request`.
fn whole_request_errors(
    items: &[Value],
    inputs: &[Result<MemberInput, Vec<FieldError>>],
) -> Vec<FieldError> {
    let mut all = Vec::new();
    for (i, (item, input)) in items.iter().zip(inputs).enumerate() {
        let mut errors = match input {
            Ok(_) => Vec::new(),
            Err(fe) => fe.clone(),
        };
        if item.is_object() && item.get("email_address").is_none_or(Value::is_null) {
            errors.push(FieldError::new(
                "email_address",
                "This value should not be blank.",
            ));
        }
        errors.extend(strict_schema_errors(item));
        all.extend(errors.into_iter().map(|e| {
            let field = if e.field.is_empty() {
                format!("members.item:{i}")
            } else {
                format!("members.item:{i}.{}", e.field)
            };
            FieldError::new(field, e.message)
        }));
    }
    all
}

/// `POST /lists/{list_id}`: up to 500 members created or updated; always 200, with the
/// members that failed in `errors[]` (but for a schema error under
/// `batch_schema_errors: whole_request`, which refuses the whole request).
pub async fn batch_upsert(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    off_runtime(move || write_batch(sim, account, list_id, q, body)).await
}

/// [`batch_upsert`]'s work, off the runtime's workers.
fn write_batch(
    sim: AppState,
    account: Arc<Account>,
    list_id: String,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    let Some(items) = body.get("members").and_then(Value::as_array) else {
        return Err(ApiError::schema(vec![FieldError::new(
            "members",
            "This value should not be blank.",
        )]));
    };
    if items.len() > MAX_BATCH_MEMBERS {
        return Err(ApiError::schema(vec![FieldError::new(
            "members",
            format!(
                "Schema describes array, maximum {MAX_BATCH_MEMBERS} items, {} found instead",
                items.len()
            ),
        )]));
    }
    let mut errors = Vec::new();
    let update_existing = match body.get("update_existing") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new(
                "update_existing",
                "Schema describes boolean, another type found instead",
            ));
            false
        }
    };
    let sync_tags = match body.get("sync_tags") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new(
                "sync_tags",
                "Schema describes boolean, another type found instead",
            ));
            false
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    let skip_dupes = flag(&q, "skip_duplicate_check");
    let settings = sim.settings.read().clone();
    let variants = &settings.variants;
    let mode = WriteMode::Batch {
        update_existing,
        sync_tags,
    };
    let statuses = [
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
        Status::Transactional,
    ];
    let ignore_tags = variants.batch_item_tags == BatchItemTags::Ignored;
    let inputs: Vec<Result<MemberInput, Vec<FieldError>>> = items
        .iter()
        .map(|item| item_input(item, &statuses, ignore_tags))
        .collect();
    if variants.batch_schema_errors == BatchSchemaErrors::WholeRequest {
        let errors = whole_request_errors(items, &inputs);
        if !errors.is_empty() {
            return Err(ApiError::schema(errors));
        }
    }
    let changed_only = variants.updated_members == UpdatedMembers::ChangedOnly;

    let mut guard = account.data.lock();
    let (mut room, limit) = room(&sim, &guard);
    let d = &mut *guard;
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let mut ctx = WriteCtx {
        refused_domains: &settings.refused_domains,
        skip_merge_validation: flag(&q, "skip_merge_validation"),
        batch_compliance: settings.batch_compliance,
        room: &mut room,
        contact_limit: limit,
        now: now_micros(),
        variants,
        recent_signups: &sim.recent_signups,
        seed: settings.faults.seed,
    };
    let mut seen = HashSet::new();
    let (mut created, mut updated, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (item, input) in items.iter().zip(inputs) {
        let email = item
            .get("email_address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string();
        let input = match input {
            Ok(i) => i,
            Err(fe) => {
                let e = ApiError::schema(fe);
                failed.push(json!({
                    "email_address": email,
                    "error": e.detail,
                    "error_code": "ERROR_GENERIC",
                    "field": e.errors.first().map(|f| f.field.clone()).unwrap_or_default(),
                    "field_message": e.errors.first().map(|f| f.message.clone()).unwrap_or_default(),
                }));
                continue;
            }
        };
        if !email.is_empty() && !seen.insert(rules::hash_key(&email)) {
            if !skip_dupes {
                failed.push(json!({
                    "email_address": email,
                    "error": format!("{email} appears more than once in this request. Send each address once, or set skip_duplicate_check=true to keep the first."),
                    "error_code": "ERROR_GENERIC", "field": "email_address",
                    "field_message": "Duplicate email address in request",
                }));
            }
            continue;
        }
        match list.write_member(None, &input, mode, &mut ctx, &mut d.next_segment_id) {
            Ok(w) => {
                count_written(&sim, w);
                match w {
                    Written::Created(k) => created.push(k),
                    Written::Updated(k) => updated.push(k),
                    Written::Unchanged(k) if !changed_only => updated.push(k),
                    Written::Unchanged(_) => {}
                }
            }
            Err(e) => {
                count_refusal(&sim, e.title);
                failed.push(e.batch_entry(&email));
            }
        }
    }
    #[derive(Serialize)]
    struct Answer<'a> {
        new_members: Vec<MemberDoc<'a>>,
        updated_members: Vec<MemberDoc<'a>>,
        errors: Vec<Value>,
        total_created: usize,
        total_updated: usize,
        error_count: usize,
        _links: Value,
    }
    let (new_only, updated_only) = (
        render::member_projection(&q, "new_members"),
        render::member_projection(&q, "updated_members"),
    );
    let out = Answer {
        new_members: render::members_for(list, &created, &q, "new_members", &new_only),
        updated_members: render::members_for(list, &updated, &q, "updated_members", &updated_only),
        total_created: created.len(),
        total_updated: updated.len(),
        error_count: failed.len(),
        errors: failed,
        _links: json!([{"rel": "self", "href": format!("/3.0/lists/{list_id}"), "method": "GET"}]),
    };
    let mut resp = reply(&q, out);
    drop(guard);
    resp.extensions_mut().insert(Items(items.len()));
    Ok(resp.into_response())
}
