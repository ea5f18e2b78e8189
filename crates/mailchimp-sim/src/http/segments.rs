//! Segments and tags (a tag is a static segment): list, create, update, delete, batch add and
//! remove of members (at most 500 each), segment members, member tags and tag search.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use indexmap::IndexSet;
use serde_json::{json, Value};

use super::members::path_key;
use super::{body_json, no_content, off_runtime, paging, reply, AppState, Items, Query};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::render::{self, MemberDoc};
use crate::rules::{self, Status};
use crate::store::list::{
    format_time, now_micros, tag_name_too_long, Key, List, Segment, SegmentKind,
};
use crate::store::Account;
use serde::Serialize;

/// Emails one segment batch may add, and remove.
pub const MAX_SEGMENT_BATCH: usize = 500;

fn segment_id(s: &str) -> ApiResult<u32> {
    s.parse().map_err(|_| ApiError::not_found())
}

fn emails(v: Option<&Value>, field: &str) -> ApiResult<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str().map(String::from).ok_or_else(|| {
                    ApiError::schema(vec![FieldError::new(
                        field,
                        "Each item must be an email address string",
                    )])
                })
            })
            .collect(),
        Some(_) => Err(ApiError::schema(vec![FieldError::new(
            field,
            "Schema describes array, another type found instead",
        )])),
    }
}

/// Checks the `options` of a saved segment as the spec types them (`match` one of any, all;
/// `conditions` an array of condition objects), so that what is stored can be answered back.
fn check_options(v: Option<&Value>) -> ApiResult<()> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let Some(o) = v.as_object() else {
        return Err(ApiError::schema(vec![FieldError::new(
            "options",
            "Schema describes object, another type found instead",
        )]));
    };
    let mut errors = Vec::new();
    match o.get("match") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if m == "any" || m == "all" => {}
        Some(_) => errors.push(FieldError::new(
            "options.match",
            "Value is not one of enum values: any, all",
        )),
    }
    match o.get("conditions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cs)) => {
            if cs.iter().any(|c| !c.is_object()) {
                errors.push(FieldError::new(
                    "options.conditions",
                    "Each condition must be an object",
                ));
            }
        }
        Some(_) => errors.push(FieldError::new(
            "options.conditions",
            "Schema describes array, another type found instead",
        )),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::schema(errors))
    }
}

pub async fn list_all(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let (count, offset) = paging(&q);
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let ty = q.get("type").filter(|t| !t.is_empty()).map(String::as_str);
    let matching: Vec<&Segment> = list
        .segments
        .values()
        .filter(|s| match ty {
            None => true,
            Some("static") => s.kind == SegmentKind::Static,
            Some("saved") => s.kind == SegmentKind::Saved,
            Some(_) => false,
        })
        .collect();
    let counted = render::field_wanted(&q, "segments.member_count");
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(count)
        .map(|s| render::segment_counted(list, s, counted))
        .collect();
    Ok(reply(
        &q,
        json!({"segments": page, "list_id": list_id, "total_items": matching.len(), "_links": []}),
    ))
}

/// 400 "Invalid Resource" for a tag (static segment) name over `variants.tag_name_max`.
fn check_tag_name(sim: &AppState, name: &str) -> ApiResult<()> {
    let max = sim.settings.read().variants.tag_name_max;
    match max {
        Some(max) if name.chars().count() > max => {
            Err(ApiError::invalid_resource(tag_name_too_long(name, max))
                .with_errors(vec![FieldError::new("name", tag_name_too_long(name, max))]))
        }
        _ => Ok(()),
    }
}

fn name_taken(list: &List, name: &str, except: Option<u32>) -> bool {
    list.segments
        .values()
        .any(|s| s.name.eq_ignore_ascii_case(name) && Some(s.id) != except)
}

pub async fn create(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::schema(vec![FieldError::new(
            "name",
            "This value should not be blank.",
        )]));
    }
    let static_emails = body.get("static_segment").filter(|v| !v.is_null());
    let options = body.get("options").filter(|v| !v.is_null());
    check_options(options)?;
    if static_emails.is_some() && options.is_some() {
        return Err(ApiError::invalid_resource("You can't provide both static_segment and options: a segment is either static (a tag) or saved."));
    }
    if static_emails.is_none() && options.is_none() {
        return Err(ApiError::schema(vec![FieldError::new(
            "static_segment",
            "Provide static_segment (an array of emails, possibly empty) or options (conditions).",
        )]));
    }
    let emails = emails(static_emails, "static_segment")?;
    if static_emails.is_some() {
        check_tag_name(&sim, &name)?;
    }
    let mut guard = account.data.lock();
    let d = &mut *guard;
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    if name_taken(list, &name, None) {
        return Err(ApiError::invalid_resource(format!(
            "A tag or segment named \"{name}\" already exists in this audience."
        )));
    }
    let now = now_micros();
    let id = d.next_segment_id;
    d.next_segment_id += 1;
    let kind = if options.is_some() {
        SegmentKind::Saved
    } else {
        SegmentKind::Static
    };
    list.segments.insert(
        id,
        Segment {
            id,
            name,
            kind,
            options: options.cloned().unwrap_or(Value::Null),
            created_at: now,
            updated_at: now,
            members: IndexSet::new(),
        },
    );
    for e in emails {
        let k = rules::hash_key(&e);
        if list.members.contains_key(&k) {
            list.add_tag(k, id, now);
        }
    }
    Ok(reply(&q, render::segment(list, &list.segments[&id])))
}

pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let s = list.segments.get(&id).ok_or_else(ApiError::not_found)?;
    Ok(reply(&q, render::segment(list, s)))
}

pub async fn update(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg)): Path<(String, String)>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let body = body_json(&body)?;
    check_options(body.get("options"))?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let kind = list.segments.get(&id).ok_or_else(ApiError::not_found)?.kind;
    let now = now_micros();
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::schema(vec![FieldError::new(
                "name",
                "This value should not be blank.",
            )]));
        }
        if name_taken(list, name, Some(id)) {
            return Err(ApiError::invalid_resource(format!(
                "A tag or segment named \"{name}\" already exists in this audience."
            )));
        }
        if kind == SegmentKind::Static && list.segments[&id].name != name {
            check_tag_name(&sim, name)?;
        }
        list.segments[&id].name = name.to_string();
    }
    if let Some(v) = body.get("static_segment").filter(|v| !v.is_null()) {
        if kind != SegmentKind::Static {
            return Err(ApiError::invalid_resource(
                "static_segment applies only to static segments (tags).",
            ));
        }
        let wanted: Vec<Key> = emails(Some(v), "static_segment")?
            .iter()
            .map(|e| rules::hash_key(e))
            .collect();
        let current: Vec<Key> = list.segments[&id].members.iter().copied().collect();
        for k in current.into_iter().filter(|k| !wanted.contains(k)) {
            list.remove_tag(k, id, now);
        }
        for k in wanted {
            if list.members.contains_key(&k) {
                list.add_tag(k, id, now);
            }
        }
    }
    if let Some(o) = body.get("options").filter(|v| !v.is_null()) {
        if kind != SegmentKind::Saved {
            return Err(ApiError::invalid_resource(
                "options apply only to saved segments.",
            ));
        }
        list.segments[&id].options = o.clone();
    }
    list.segments[&id].updated_at = now;
    Ok(reply(&q, render::segment(list, &list.segments[&id])))
}

pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    if !list.delete_segment(id, now_micros()) {
        return Err(ApiError::not_found());
    }
    Ok(no_content())
}

/// `POST /lists/{id}/segments/{segment_id}`: add and remove up to 500 members each.
pub async fn batch_members(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg)): Path<(String, String)>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    off_runtime(move || tag_batch(account, list_id, seg, q, body)).await
}

/// [`batch_members`]' work, off the runtime's workers.
fn tag_batch(
    account: Arc<Account>,
    list_id: String,
    seg: String,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let body = body_json(&body)?;
    let to_add = emails(body.get("members_to_add"), "members_to_add")?;
    let to_remove = emails(body.get("members_to_remove"), "members_to_remove")?;
    if to_add.len() > MAX_SEGMENT_BATCH || to_remove.len() > MAX_SEGMENT_BATCH {
        return Err(ApiError::invalid_resource(
            "Maximum allowed member items exceeded, please provide at most 500 items in members_to_add field or members_to_remove field",
        ));
    }
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let seg = list.segments.get(&id).ok_or_else(ApiError::not_found)?;
    if seg.kind != SegmentKind::Static {
        return Err(ApiError::invalid_resource(
            "Members can only be added to or removed from static segments (tags).",
        ));
    }
    let now = now_micros();
    let (mut added, mut removed, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for e in &to_add {
        let k = rules::hash_key(e);
        if list.members.contains_key(&k) {
            list.add_tag(k, id, now);
            added.push(k);
        } else {
            missing.push(e.clone());
        }
    }
    for e in &to_remove {
        let k = rules::hash_key(e);
        if list.members.contains_key(&k) {
            list.remove_tag(k, id, now);
            removed.push(k);
        } else {
            missing.push(e.clone());
        }
    }
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![
            json!({"email_addresses": missing, "error": "Email addresses are not members of this audience"}),
        ]
    };
    #[derive(Serialize)]
    struct Answer<'a> {
        members_added: Vec<MemberDoc<'a>>,
        members_removed: Vec<MemberDoc<'a>>,
        total_added: usize,
        total_removed: usize,
        error_count: usize,
        errors: Vec<Value>,
        _links: [(); 0],
    }
    let (added_only, removed_only) = (
        render::member_projection(&q, "members_added"),
        render::member_projection(&q, "members_removed"),
    );
    let out = Answer {
        members_added: render::members_for(list, &added, &q, "members_added", &added_only),
        members_removed: render::members_for(list, &removed, &q, "members_removed", &removed_only),
        total_added: added.len(),
        total_removed: removed.len(),
        error_count: missing.len(),
        errors,
        _links: [],
    };
    let mut resp = reply(&q, out);
    drop(d);
    resp.extensions_mut()
        .insert(Items(to_add.len() + to_remove.len()));
    Ok(resp.into_response())
}

pub async fn members(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let (count, offset) = paging(&q);
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let s = list.segments.get(&id).ok_or_else(ApiError::not_found)?;
    let include = |st: Status| match st {
        Status::Archived => false,
        Status::Cleaned => super::flag(&q, "include_cleaned"),
        Status::Transactional => super::flag(&q, "include_transactional"),
        Status::Unsubscribed => super::flag(&q, "include_unsubscribed"),
        _ => true,
    };
    let matching: Vec<&Key> = s
        .members
        .iter()
        .filter(|k| list.members.get(*k).is_some_and(|m| include(m.status)))
        .collect();
    let page: Vec<MemberDoc> = matching
        .iter()
        .skip(offset)
        .take(count)
        .map(|k| render::member(list, k))
        .collect();
    #[derive(Serialize)]
    struct Page<'a> {
        members: Vec<MemberDoc<'a>>,
        total_items: usize,
        _links: [(); 0],
    }
    Ok(reply(
        &q,
        Page {
            members: page,
            total_items: matching.len(),
            _links: [],
        },
    ))
}

pub async fn add_member(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg)): Path<(String, String)>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let body = body_json(&body)?;
    let Some(email) = body.get("email_address").and_then(Value::as_str) else {
        return Err(ApiError::schema(vec![FieldError::new(
            "email_address",
            "This value should not be blank.",
        )]));
    };
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let s = list.segments.get(&id).ok_or_else(ApiError::not_found)?;
    if s.kind != SegmentKind::Static {
        return Err(ApiError::invalid_resource(
            "Members can only be added to static segments (tags).",
        ));
    }
    let k = rules::hash_key(email);
    if !list.members.contains_key(&k) {
        return Err(ApiError::invalid_resource(format!(
            "{email} is not a member of this audience."
        )));
    }
    list.add_tag(k, id, now_micros());
    Ok(reply(&q, render::member(list, &k)))
}

pub async fn remove_member(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, seg, hash)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let id = segment_id(&seg)?;
    let k = path_key(&hash)?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    if !list.segments.contains_key(&id) || !list.remove_tag(k, id, now_micros()) {
        return Err(ApiError::not_found());
    }
    Ok(no_content())
}

pub async fn tag_search(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let prefix = q.get("name").map(|n| n.to_lowercase()).unwrap_or_default();
    let tags: Vec<Value> = list
        .segments
        .values()
        .filter(|s| s.kind == SegmentKind::Static && s.name.to_lowercase().starts_with(&prefix))
        .map(|s| json!({"id": s.id, "name": s.name}))
        .collect();
    Ok(reply(&q, json!({"tags": tags, "total_items": tags.len()})))
}

pub async fn member_tags(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    let k = path_key(&hash)?;
    let (count, offset) = paging(&q);
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let m = list.members.get(&k).ok_or_else(ApiError::not_found)?;
    let tags: Vec<Value> = m
        .tags
        .iter()
        .filter_map(|(id, at)| {
            list.segments
                .get(id)
                .map(|s| json!({"id": s.id, "name": s.name, "date_added": format_time(*at)}))
        })
        .collect();
    let total = tags.len();
    let page: Vec<Value> = tags.into_iter().skip(offset).take(count).collect();
    Ok(reply(
        &q,
        json!({"tags": page, "total_items": total, "_links": []}),
    ))
}

/// `POST .../members/{hash}/tags`: names with `active` are added (created when missing),
/// with `inactive` removed; answers 204.
pub async fn set_member_tags(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let k = path_key(&hash)?;
    let body = body_json(&body)?;
    let Some(tags) = body.get("tags").and_then(Value::as_array) else {
        return Err(ApiError::schema(vec![FieldError::new(
            "tags",
            "This value should not be blank.",
        )]));
    };
    let mut changes = Vec::new();
    for t in tags {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        let status = t.get("status").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(ApiError::schema(vec![FieldError::new(
                "tags.name",
                "This value should not be blank.",
            )]));
        }
        if status != "active" && status != "inactive" {
            return Err(ApiError::schema(vec![FieldError::new(
                "tags.status",
                "Value is not one of enum values: inactive, active",
            )]));
        }
        changes.push((name.to_string(), status == "active"));
    }
    let mut guard = account.data.lock();
    let d = &mut *guard;
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    if !list.members.contains_key(&k) {
        return Err(ApiError::not_found());
    }
    for (name, active) in &changes {
        if *active && list.tag_by_name(name).is_none() {
            check_tag_name(&sim, name)?;
        }
    }
    let now = now_micros();
    for (name, active) in changes {
        if active {
            let id = list.ensure_tag(&name, &mut d.next_segment_id, now);
            list.add_tag(k, id, now);
        } else if let Some(id) = list.tag_by_name(&name) {
            list.remove_tag(k, id, now);
        }
    }
    Ok(no_content())
}
