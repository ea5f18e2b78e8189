//! Merge fields of an audience: the eleven types, tags of at most 10 characters, at most 30
//! fields per audience.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::{body_json, no_content, paging, reply, Query};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::render;
use crate::rules::{self, MergeType};
use crate::store::list::MergeField;
use crate::store::Account;

/// Merge fields one audience may have (EMAIL not counted).
pub const MAX_MERGE_FIELDS: usize = 30;

pub async fn list_all(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let (count, offset) = paging(&q);
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let ty = q.get("type").filter(|t| !t.is_empty());
    let required = q.get("required").map(|r| r == "true");
    let matching: Vec<&MergeField> = list
        .merge_fields
        .iter()
        .filter(|f| ty.is_none_or(|t| f.ty.as_str() == t))
        .filter(|f| required.is_none_or(|r| f.required == r))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(count)
        .map(|f| render::merge_field(&list_id, f))
        .collect();
    Ok(reply(
        &q,
        json!({"merge_fields": page, "list_id": list_id, "total_items": matching.len(), "_links": []}),
    ))
}

pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, merge_id)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    let d = account.data.lock();
    let list = d.lists.get(&list_id).ok_or_else(ApiError::not_found)?;
    let id: u32 = merge_id.parse().map_err(|_| ApiError::not_found())?;
    let f = list
        .merge_fields
        .iter()
        .find(|f| f.merge_id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(reply(&q, render::merge_field(&list_id, f)))
}

/// Applies the optional fields of a create or update body to `f`.
fn apply(f: &mut MergeField, o: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let s = |k: &str, errors: &mut Vec<FieldError>| match o.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                k,
                "Schema describes string, another type found instead",
            ));
            None
        }
    };
    let b = |k: &str, errors: &mut Vec<FieldError>| match o.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::new(
                k,
                "Schema describes boolean, another type found instead",
            ));
            None
        }
    };
    if let Some(v) = s("name", errors) {
        f.name = v;
    }
    if let Some(v) = b("required", errors) {
        f.required = v;
    }
    if let Some(v) = b("public", errors) {
        f.public = v;
    }
    if let Some(v) = s("default_value", errors) {
        f.default_value = v;
    }
    if let Some(v) = s("help_text", errors) {
        f.help_text = v;
    }
    if let Some(v) = o.get("display_order").and_then(Value::as_u64) {
        f.display_order = v as u32;
    }
    if let Some(opts) = o.get("options").and_then(Value::as_object) {
        if let Some(v) = opts.get("date_format").and_then(Value::as_str) {
            f.date_format = v.to_string();
        }
        if let Some(v) = opts.get("phone_format").and_then(Value::as_str) {
            f.phone_format = v.to_string();
        }
        if let Some(v) = opts.get("size").and_then(Value::as_u64) {
            f.size = v as u32;
        }
        if let Some(v) = opts.get("default_country").and_then(Value::as_u64) {
            f.default_country = v as u32;
        }
        if let Some(v) = opts.get("choices").and_then(Value::as_array) {
            f.choices = v
                .iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect();
        }
    }
}

pub async fn create(
    Extension(account): Extension<Arc<Account>>,
    Path(list_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    let Value::Object(o) = &body else {
        return Err(ApiError::schema(vec![FieldError::new(
            "",
            "Schema describes object",
        )]));
    };
    let mut errors = Vec::new();
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.trim().is_empty() {
        errors.push(FieldError::new("name", "This value should not be blank."));
    }
    let ty = match o.get("type").and_then(Value::as_str) {
        None => {
            errors.push(FieldError::new("type", "This value should not be blank."));
            None
        }
        Some(t) => match MergeType::parse(t) {
            Some(t) => Some(t),
            None => {
                errors.push(FieldError::new("type", "Value is not one of enum values: text, number, address, phone, date, url, imageurl, radio, dropdown, birthday, zip"));
                None
            }
        },
    };
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let tag = match o
        .get("tag")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(t) => {
            let t = t.to_uppercase();
            if !rules::valid_merge_tag(&t) {
                errors.push(FieldError::new("tag", "Merge tags are at most 10 characters: letters, digits and underscores, starting with a letter."));
            } else if list.merge_field_by_tag(&t).is_some() || t == "EMAIL" {
                errors.push(FieldError::new(
                    "tag",
                    format!("A merge field with the tag \"{t}\" already exists."),
                ));
            }
            t
        }
        None => format!("MMERGE{}", list.next_merge_id),
    };
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    if list.merge_fields.len() >= MAX_MERGE_FIELDS {
        return Err(ApiError::invalid_resource(format!(
            "You cannot create more merge fields than {MAX_MERGE_FIELDS}."
        )));
    }
    let ty = ty.expect("checked above");
    let mut f = MergeField {
        merge_id: list.next_merge_id,
        tag,
        name,
        ty,
        required: false,
        default_value: String::new(),
        public: false,
        display_order: list.merge_fields.len() as u32 + 2,
        help_text: String::new(),
        date_format: match ty {
            MergeType::Date => "MM/DD/YYYY".into(),
            MergeType::Birthday => "MM/DD".into(),
            _ => String::new(),
        },
        phone_format: if ty == MergeType::Phone {
            "none".into()
        } else {
            String::new()
        },
        default_country: if ty == MergeType::Address { 164 } else { 0 },
        size: 25,
        choices: Vec::new(),
    };
    apply(&mut f, o, &mut errors);
    if matches!(ty, MergeType::Radio | MergeType::Dropdown) && f.choices.is_empty() {
        errors.push(FieldError::new(
            "options.choices",
            "Radio and dropdown fields need at least one choice.",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    list.next_merge_id += 1;
    let out = render::merge_field(&list_id, &f);
    list.merge_fields.push(f);
    Ok(reply(&q, out))
}

pub async fn update(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, merge_id)): Path<(String, String)>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    let Value::Object(o) = &body else {
        return Err(ApiError::schema(vec![FieldError::new(
            "",
            "Schema describes object",
        )]));
    };
    let id: u32 = merge_id.parse().map_err(|_| ApiError::not_found())?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let new_tag = o
        .get("tag")
        .and_then(Value::as_str)
        .map(|t| t.trim().to_uppercase());
    let mut errors = Vec::new();
    if let Some(t) = &new_tag {
        if !rules::valid_merge_tag(t) {
            errors.push(FieldError::new("tag", "Merge tags are at most 10 characters: letters, digits and underscores, starting with a letter."));
        } else if list
            .merge_fields
            .iter()
            .any(|f| f.tag == *t && f.merge_id != id)
        {
            errors.push(FieldError::new(
                "tag",
                format!("A merge field with the tag \"{t}\" already exists."),
            ));
        }
    }
    let f = list
        .merge_fields
        .iter_mut()
        .find(|f| f.merge_id == id)
        .ok_or_else(ApiError::not_found)?;
    let mut updated = f.clone();
    apply(&mut updated, o, &mut errors);
    if o.get("type")
        .is_some_and(|t| t.as_str() != Some(f.ty.as_str()))
    {
        errors.push(FieldError::new(
            "type",
            "The type of a merge field cannot be changed.",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    if let Some(t) = new_tag {
        updated.tag = t;
    }
    *f = updated;
    Ok(reply(&q, render::merge_field(&list_id, f)))
}

pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path((list_id, merge_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id: u32 = merge_id.parse().map_err(|_| ApiError::not_found())?;
    let mut d = account.data.lock();
    let list = d.lists.get_mut(&list_id).ok_or_else(ApiError::not_found)?;
    let before = list.merge_fields.len();
    list.merge_fields.retain(|f| f.merge_id != id);
    if list.merge_fields.len() == before {
        return Err(ApiError::not_found());
    }
    for m in list.members.values_mut() {
        m.merge.retain(|(mid, _)| *mid != id);
    }
    Ok(no_content())
}
