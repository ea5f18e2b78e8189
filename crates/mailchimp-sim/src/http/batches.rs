//! `/batches`: operations submitted at once and run asynchronously, one batch at a time per
//! account, through the same router as live calls (without limits or latency, as a submitted
//! batch holds no connection). Results are served as a gzipped tar of JSON files at a
//! short-lived `response_body_url` that needs no credential.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{body_json, no_content, paging, reply, AppState, Internal, Query};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::store::list::{format_time, now_micros};
use crate::store::{random_hex, Account, Batch, ResultLink, Sim};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The base URL the client used, for absolute links such as `response_body_url`.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn render(sim: &Sim, account: &Account, b: &Batch, origin: &str) -> Value {
    let url = if b.results.is_some() {
        let token = random_hex(16);
        let ttl = Duration::from_secs(sim.settings.read().batches.url_ttl_secs);
        sim.result_links.lock().insert(
            token.clone(),
            ResultLink {
                account_id: account.id.clone(),
                batch_id: b.id.clone(),
                expires: Instant::now() + ttl,
            },
        );
        format!("{origin}/_sim/batch-results/{token}.tar.gz")
    } else {
        String::new()
    };
    json!({
        "id": b.id,
        "status": b.status,
        "total_operations": b.total,
        "finished_operations": b.finished,
        "errored_operations": b.errored,
        "submitted_at": format_time(b.submitted_at),
        "completed_at": b.completed_at.map(format_time).unwrap_or_default(),
        "response_body_url": url,
        "_links": [{"rel": "self", "href": format!("/3.0/batches/{}", b.id), "method": "GET"}],
    })
}

pub async fn create(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    headers: HeaderMap,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = body_json(&body)?;
    let Some(ops) = body.get("operations").and_then(Value::as_array) else {
        return Err(ApiError::schema(vec![FieldError::new(
            "operations",
            "This value should not be blank.",
        )]));
    };
    let mut errors = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op.get("method").and_then(Value::as_str) {
            Some(m) if METHODS.contains(&m) => {}
            _ => errors.push(FieldError::new(
                format!("operations.{i}.method"),
                "Value is not one of enum values: GET, POST, PUT, PATCH, DELETE",
            )),
        }
        if op
            .get("path")
            .and_then(Value::as_str)
            .is_none_or(|p| !p.starts_with('/'))
        {
            errors.push(FieldError::new(
                format!("operations.{i}.path"),
                "A path relative to /3.0, starting with /",
            ));
        }
        if op
            .get("body")
            .is_some_and(|b| !b.is_string() && !b.is_null())
        {
            errors.push(FieldError::new(
                format!("operations.{i}.body"),
                "Schema describes string, another type found instead",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::schema(errors));
    }
    let max_pending = sim.settings.read().batches.max_pending;
    let out = {
        let mut d = account.data.lock();
        let pending = d
            .batches
            .values()
            .filter(|b| b.status != "finished")
            .count();
        if pending >= max_pending {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                format!("You have more than {max_pending} pending batches. Please wait for some to complete before adding any more batches."),
            ));
        }
        let b = Batch {
            id: random_hex(5),
            status: "pending",
            total: ops.len(),
            operations: ops.clone(),
            finished: 0,
            errored: 0,
            submitted_at: now_micros(),
            completed_at: None,
            results: None,
            cancelled: false,
        };
        let out = render(&sim, &account, &b, &origin(&headers));
        d.batches.insert(b.id.clone(), b);
        out
    };
    start_runner(sim.clone(), account.clone());
    Ok(reply(&q, out))
}

pub async fn get_one(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    Path(batch_id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let d = account.data.lock();
    let b = d.batches.get(&batch_id).ok_or_else(ApiError::not_found)?;
    Ok(reply(&q, render(&sim, &account, b, &origin(&headers))))
}

pub async fn list_all(
    State(sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let (count, offset) = paging(&q);
    let d = account.data.lock();
    let o = origin(&headers);
    let batches: Vec<Value> = d
        .batches
        .values()
        .rev()
        .skip(offset)
        .take(count)
        .map(|b| render(&sim, &account, b, &o))
        .collect();
    Ok(reply(
        &q,
        json!({"batches": batches, "total_items": d.batches.len(), "_links": []}),
    ))
}

/// Stops a batch and removes it.
pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path(batch_id): Path<String>,
) -> ApiResult<Response> {
    let mut d = account.data.lock();
    let mut b = d
        .batches
        .shift_remove(&batch_id)
        .ok_or_else(ApiError::not_found)?;
    b.cancelled = true;
    Ok(no_content())
}

/// Serves a minted `response_body_url` until it expires.
pub async fn results(State(sim): State<AppState>, Path(file): Path<String>) -> Response {
    let token = file.trim_end_matches(".tar.gz");
    let link = {
        let links = sim.result_links.lock();
        links
            .get(token)
            .map(|l| (l.account_id.clone(), l.batch_id.clone(), l.expires))
    };
    let Some((account_id, batch_id, expires)) = link else {
        return (
            StatusCode::NOT_FOUND,
            "NoSuchKey: The specified key does not exist.",
        )
            .into_response();
    };
    if Instant::now() > expires {
        return (StatusCode::FORBIDDEN, "ExpiredToken: Request has expired.").into_response();
    }
    let data = sim.account(&account_id).and_then(|a| {
        a.data
            .lock()
            .batches
            .get(&batch_id)
            .and_then(|b| b.results.clone())
    });
    match data {
        Some(bytes) => {
            let mut r = Body::from(bytes.as_ref().clone()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, "application/x-gzip".parse().unwrap());
            r
        }
        None => (
            StatusCode::NOT_FOUND,
            "NoSuchKey: The specified key does not exist.",
        )
            .into_response(),
    }
}

/// Starts the account's batch runner unless one is running.
fn start_runner(sim: AppState, account: Arc<Account>) {
    if account.batch_runner.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        loop {
            let next = {
                let d = account.data.lock();
                d.batches
                    .values()
                    .find(|b| b.status != "finished")
                    .map(|b| b.id.clone())
            };
            match next {
                Some(id) => run_batch(&sim, &account, &id).await,
                None => {
                    account.batch_runner.store(false, Ordering::SeqCst);
                    // A batch submitted between the check and the flag must not wait forever.
                    let more = account
                        .data
                        .lock()
                        .batches
                        .values()
                        .any(|b| b.status != "finished");
                    if !more || account.batch_runner.swap(true, Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
    });
}

fn set_status(account: &Account, id: &str, status: &'static str) -> bool {
    let mut d = account.data.lock();
    match d.batches.get_mut(id) {
        Some(b) => {
            b.status = status;
            true
        }
        None => false,
    }
}

async fn run_batch(sim: &AppState, account: &Arc<Account>, id: &str) {
    let timing = sim.settings.read().batches.clone();
    let pause = Duration::from_millis(timing.state_ms);
    tokio::time::sleep(pause).await;
    if !set_status(account, id, "preprocessing") {
        return;
    }
    tokio::time::sleep(pause).await;
    let Some(ops) = account
        .data
        .lock()
        .batches
        .get(id)
        .map(|b| b.operations.clone())
    else {
        return;
    };
    if !set_status(account, id, "started") {
        return;
    }
    let router = super::router(sim.clone());
    let mut results = Vec::with_capacity(ops.len());
    for op in &ops {
        let (status, response) = run_operation(&router, account, op).await;
        results.push(json!({
            "status_code": status,
            "operation_id": op.get("operation_id").cloned().unwrap_or(Value::Null),
            "response": response,
        }));
        if timing.op_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(timing.op_ms / 1000.0)).await;
        }
        let mut d = account.data.lock();
        let Some(b) = d.batches.get_mut(id) else {
            return;
        };
        b.finished += 1;
        if status >= 400 {
            b.errored += 1;
        }
    }
    if !set_status(account, id, "finalizing") {
        return;
    }
    tokio::time::sleep(pause).await;
    let archive = match pack_results(id, &results) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not pack batch results");
            return;
        }
    };
    let mut d = account.data.lock();
    if let Some(b) = d.batches.get_mut(id) {
        b.results = Some(Arc::new(archive));
        b.completed_at = Some(now_micros());
        b.status = "finished";
        b.operations.clear();
    }
}

/// Runs one operation through the router as the account; returns its status and body.
async fn run_operation(router: &axum::Router, account: &Arc<Account>, op: &Value) -> (u16, String) {
    let method = op.get("method").and_then(Value::as_str).unwrap_or("GET");
    let path = op.get("path").and_then(Value::as_str).unwrap_or("/");
    let mut uri = format!("/3.0{}", path.trim_end_matches('/'));
    if let Some(params) = op.get("params").and_then(Value::as_object) {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ser.append_pair(k, &v);
        }
        let qs = ser.finish();
        if !qs.is_empty() {
            uri.push('?');
            uri.push_str(&qs);
        }
    }
    let body = op
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let req = Request::builder()
        .method(method)
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/json")
        .extension(Internal(account.clone()))
        .body(Body::from(body));
    let Ok(req) = req else {
        return (
            404,
            ApiError::not_found()
                .body(&crate::error::request_id())
                .to_string(),
        );
    };
    let resp = match router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A gzipped tar with one JSON file per operation, each an array of one result.
fn pack_results(batch_id: &str, results: &[Value]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(chrono::Utc::now().timestamp() as u64);
    tar.append_data(&mut dir, format!("{batch_id}/"), std::io::empty())?;
    for (i, r) in results.iter().enumerate() {
        let data = serde_json::to_vec(&[r]).expect("results serialise");
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(chrono::Utc::now().timestamp() as u64);
        tar.append_data(&mut h, format!("{batch_id}/{i}.json"), &data[..])?;
    }
    tar.into_inner()?.finish()
}
