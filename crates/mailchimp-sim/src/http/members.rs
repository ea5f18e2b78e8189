//! Members of an audience: list with filters and paging, get, create, upsert, update,
//! archive and permanent deletion. `{subscriber_hash}` also takes the email address.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::lists::{count_refusal, count_written, room};
use super::{body_json, flag, no_content, paging, reply, AppState, Query};
use crate::config::{ArchivedMembers, BatchSchemaErrors, MalformedSince};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::render::{self, MemberDoc};
use crate::rules::{self, Status};
use crate::store::list::{
    now_micros, parse_time, strict_schema_errors, Key, MemberInput, WriteCtx, WriteMode,
};
use crate::store::Account;
use serde::Serialize;

const WRITABLE: [Status; 5] = [
    Status::Subscribed,
    Status::Unsubscribed,
    Status::Cleaned,
    Status::Pending,
    Status::Transactional,
];

pub fn path_key(segment: &str) -> ApiResult<Key> {
    rules::key_from_path(segment).ok_or_else(ApiError::not_found)
}

/// A time filter: malformed, it is refused with 400 (`malformed_since: reject`) or dropped
/// (`ignore`, where a value with fractional seconds counts as malformed too, as reported).
fn time_param(
    q: &std::collections::HashMap<String, String>,
    name: &str,
    malformed: MalformedSince,
) -> ApiResult<Option<i64>> {
    let Some(v) = q.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match malformed {
        MalformedSince::Reject => parse_time(v).map(Some).ok_or_else(|| {
            ApiError::schema(vec![FieldError::new(name, format!("\"{v}\" is not a valid date-time (use ISO 8601, e.g. 2015-10-21T15:41:36+00:00)"))])
        }),
        MalformedSince::Ignore if has_fractional_seconds(v) => Ok(None),
        MalformedSince::Ignore => Ok(parse_time(v)),
    }
}

/// `2024-01-01T10:00:00.5+00:00`: a fraction after the seconds.
fn has_fractional_seconds(v: &str) -> bool {
    v.split_once(['T', 't', ' '])
        .is_some_and(|(_, time)| time.contains('.'))
}

pub async fn list_members(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let (count, offset) = paging(&q);
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::schema(vec![FieldError::new("status", "Value is not one of enum values: subscribed, unsubscribed, cleaned, pending, transactional, archived")])
        })?),
    };
    let (malformed, archived) = {
        let s = sim.settings.read();
        (s.variants.malformed_since, s.variants.archived_members)
    };
    let since = time_param(&q, "since_last_changed", malformed)?;
    let before = time_param(&q, "before_last_changed", malformed)?;
    let vip_only = flag(&q, "vip_only");
    // Archived contacts are left out of a read without a status filter, when excluded.
    let hide_archived = status.is_none() && archived == ArchivedMembers::Excluded;
    let filtered = status.is_some() || vip_only || hide_archived;
    let by_change = since.is_some()
        || before.is_some()
        || q.get("sort_field").is_some_and(|f| f == "last_changed");
    let desc = q
        .get("sort_dir")
        .is_some_and(|d| d.eq_ignore_ascii_case("DESC"));
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let keep = |k: &Key| {
        let m = &list.members[k];
        status.is_none_or(|s| m.status == s)
            && (!vip_only || m.vip)
            && !(hide_archived && m.status == Status::Archived)
    };
    let (total, page): (usize, Vec<Key>) = if let Some(s) = status.filter(|_| by_change) {
        // The members at that status, by last change: as many as the answer has.
        let lo = (since.unwrap_or(i64::MIN), [0u8; 16]);
        let hi = (before.unwrap_or(i64::MAX), [0u8; 16]);
        let range = list.with_status(s).range(lo..hi).map(|(_, k)| k);
        let matching: Vec<&Key> = if desc {
            range.rev().filter(|k| keep(k)).collect()
        } else {
            range.filter(|k| keep(k)).collect()
        };
        page_of(matching, offset, count)
    } else if let Some(s) = status.filter(|s| few(list, *s)) {
        // A status few members have: found by the index, in the audience's order.
        let mut matching: Vec<(usize, &Key)> = list
            .with_status(s)
            .iter()
            .filter(|(_, k)| keep(k))
            .map(|(_, k)| (list.members.get_index_of(k).expect("indexed"), k))
            .collect();
        matching.sort_unstable();
        page_of(
            matching.into_iter().map(|(_, k)| k).collect(),
            offset,
            count,
        )
    } else if by_change {
        let lo = (since.unwrap_or(i64::MIN), [0u8; 16]);
        let hi = (before.unwrap_or(i64::MAX), [0u8; 16]);
        let range = list.changed.range(lo..hi).map(|(_, k)| k);
        if !filtered {
            // Every member in the range matches: the page is a slice of the range, which
            // the list keeps while nothing changes (a client paging a million changes asks
            // for a thousand pages of the same range).
            let keys = list.changed_between(lo.0, hi.0);
            let page: Vec<Key> = if desc {
                keys.iter()
                    .rev()
                    .skip(offset)
                    .take(count)
                    .copied()
                    .collect()
            } else {
                keys.iter().skip(offset).take(count).copied().collect()
            };
            (keys.len(), page)
        } else {
            let matching: Vec<&Key> = if desc {
                range.rev().filter(|k| keep(k)).collect()
            } else {
                range.filter(|k| keep(k)).collect()
            };
            page_of(matching, offset, count)
        }
    } else if !filtered {
        let end = (offset + count).min(list.members.len());
        let page = if offset < end {
            (offset..end)
                .map(|i| *list.members.get_index(i).unwrap().0)
                .collect()
        } else {
            Vec::new()
        };
        (list.members.len(), page)
    } else {
        let matching = list.members.keys().filter(|k| keep(k));
        let total = list.members.keys().filter(|k| keep(k)).count();
        (total, matching.skip(offset).take(count).copied().collect())
    };
    // Render only the member fields `fields=` keeps: paging with a slim projection is what
    // sync tools do, and building whole members to drop most of them was most of the cost.
    let projection = render::member_projection(&q, "members");
    let members: Vec<MemberDoc> = page
        .iter()
        .map(|k| render::member_only(list, k, projection.as_deref()))
        .collect();
    #[derive(Serialize)]
    struct Page<'a> {
        members: Vec<MemberDoc<'a>>,
        list_id: &'a str,
        total_items: usize,
        _links: Value,
    }
    let links =
        json!([{"rel": "self", "href": format!("/3.0/lists/{list_id}/members"), "method": "GET"}]);
    Ok(reply(
        &q,
        Page {
            members,
            list_id: &list_id,
            total_items: total,
            _links: links,
        },
    ))
}

/// Whether fewer of the audience's members are at status `s` than it is worth reading them
/// through the index by status (which then puts them back in the audience's order).
fn few(list: &crate::store::list::List, s: Status) -> bool {
    list.count_status(s) * 8 <= list.members.len() as u64
}

/// The page at `offset` of `matching` (`count` long), and how many matched.
fn page_of(matching: Vec<&Key>, offset: usize, count: usize) -> (usize, Vec<Key>) {
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(offset)
        .take(count)
        .copied()
        .collect();
    (total, page)
}

pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    let key = path_key(&hash)?;
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    if !list.members.contains_key(&key) {
        return Err(ApiError::not_found());
    }
    Ok(reply(&q, render::member(list, &key)))
}

/// One member write through `POST`, `PUT` or `PATCH`, answered with the member.
fn write_one(
    sim: &AppState,
    account: &Account,
    list_id: &str,
    key: Option<Key>,
    body: &Bytes,
    mode: WriteMode,
    q: &std::collections::HashMap<String, String>,
) -> ApiResult<Response> {
    let body = body_json(body)?;
    // PATCH takes no `transactional`.
    let statuses = if mode == WriteMode::Update {
        &WRITABLE[..4]
    } else {
        &WRITABLE[..]
    };
    let input = MemberInput::from_json(&body, statuses).map_err(ApiError::schema)?;
    let settings = sim.settings.read().clone();
    if settings.variants.batch_schema_errors == BatchSchemaErrors::WholeRequest {
        let strict = strict_schema_errors(&body);
        if !strict.is_empty() {
            return Err(ApiError::schema(strict));
        }
    }
    if mode != WriteMode::Update
        && input
            .email_address
            .as_deref()
            .is_none_or(|e| e.trim().is_empty())
    {
        return Err(ApiError::schema(vec![FieldError::new(
            "email_address",
            "This value should not be blank.",
        )]));
    }
    if mode == WriteMode::Create && input.status.is_none() {
        return Err(ApiError::schema(vec![FieldError::new(
            "status",
            "This value should not be blank.",
        )]));
    }
    let mut guard = account.data.lock();
    let (mut room, limit) = room(sim, &guard);
    let d = &mut *guard;
    let list = d.lists.get_mut(list_id).ok_or_else(ApiError::not_found)?;
    let mut ctx = WriteCtx {
        refused_domains: &settings.refused_domains,
        skip_merge_validation: flag(q, "skip_merge_validation"),
        batch_compliance: settings.batch_compliance,
        room: &mut room,
        contact_limit: limit,
        now: now_micros(),
        variants: &settings.variants,
        recent_signups: &sim.recent_signups,
        seed: settings.faults.seed,
    };
    match list.write_member(key, &input, mode, &mut ctx, &mut d.next_segment_id) {
        Ok(w) => {
            count_written(sim, w);
            Ok(reply(q, render::member(list, &w.key())))
        }
        Err(e) => {
            count_refusal(sim, e.title);
            Err(e.into())
        }
    }
}

pub async fn create(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    write_one(&sim, &account, &list_id, None, &body, WriteMode::Create, &q)
}

pub async fn upsert(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let key = path_key(&hash)?;
    write_one(
        &sim,
        &account,
        &list_id,
        Some(key),
        &body,
        WriteMode::Upsert,
        &q,
    )
}

pub async fn update(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let key = path_key(&hash)?;
    write_one(
        &sim,
        &account,
        &list_id,
        Some(key),
        &body,
        WriteMode::Update,
        &q,
    )
}

pub async fn archive(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
) -> ApiResult<Response> {
    let key = path_key(&hash)?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    list.archive(key, now_micros())?;
    Ok(no_content())
}

pub async fn delete_permanent(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, hash)): Path<(String, String)>,
) -> ApiResult<Response> {
    let key = path_key(&hash)?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    list.delete_permanent(key)?;
    Ok(no_content())
}
