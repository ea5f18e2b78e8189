//! The HTTP face of the simulator: the `/3.0` API, the OAuth2 login server, and the admin
//! API under `/_sim`.
//!
//! Every `/3.0` request passes one middleware, in this order: count it, authenticate it,
//! honour `X-Trigger-Error`, take an in-flight slot of its account (429, or a bare 403 under
//! `variants.throttle_status`, past the limit; 429 in an injected burst), maybe fail it with
//! an injected 500, run the handler, spend the modelled latency while still holding the slot,
//! then maybe answer slowly or drop the connection. A request its client gives up on frees
//! its slot at once, or later under `variants.abandoned_slot_ms`.

mod account;
pub mod admin;
mod batches;
mod lists;
mod members;
mod merge_fields;
mod oauth;
mod segments;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::Value;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_layer::Layer;

use crate::error::{ApiError, ApiResult};
use crate::render;
use crate::store::{Account, Sim};

pub type AppState = Arc<Sim>;

/// Marks a request made by the simulator itself (a `/batches` operation) for an account: it
/// skips authentication, limits, latency and faults, as a submitted batch holds no connection.
#[derive(Clone)]
pub struct Internal(pub Arc<Account>);

/// How many items a request carried, for the latency model; set by handlers on the response.
#[derive(Clone, Copy)]
pub struct Items(pub usize);

/// The router with every route, before URI normalisation.
pub fn router(sim: AppState) -> Router {
    let api = Router::new()
        .route("/3.0", get(account::root))
        .route("/3.0/ping", get(account::ping))
        .route("/3.0/lists", get(lists::list_all).post(lists::create))
        .route(
            "/3.0/lists/{list_id}",
            get(lists::get_one)
                .patch(lists::update)
                .delete(lists::delete)
                .post(lists::batch_upsert),
        )
        .route(
            "/3.0/lists/{list_id}/members",
            get(members::list_members).post(members::create),
        )
        .route(
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            get(members::get_one)
                .put(members::upsert)
                .patch(members::update)
                .delete(members::archive),
        )
        .route(
            "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            post(members::delete_permanent),
        )
        .route(
            "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            get(segments::member_tags).post(segments::set_member_tags),
        )
        .route(
            "/3.0/lists/{list_id}/merge-fields",
            get(merge_fields::list_all).post(merge_fields::create),
        )
        .route(
            "/3.0/lists/{list_id}/merge-fields/{merge_id}",
            get(merge_fields::get_one)
                .patch(merge_fields::update)
                .delete(merge_fields::delete),
        )
        .route(
            "/3.0/lists/{list_id}/segments",
            get(segments::list_all).post(segments::create),
        )
        .route(
            "/3.0/lists/{list_id}/segments/{segment_id}",
            get(segments::get_one)
                .patch(segments::update)
                .delete(segments::delete)
                .post(segments::batch_members),
        )
        .route(
            "/3.0/lists/{list_id}/segments/{segment_id}/members",
            get(segments::members).post(segments::add_member),
        )
        .route(
            "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
            axum::routing::delete(segments::remove_member),
        )
        .route("/3.0/lists/{list_id}/tag-search", get(segments::tag_search))
        .route("/3.0/batches", get(batches::list_all).post(batches::create))
        .route(
            "/3.0/batches/{batch_id}",
            get(batches::get_one).delete(batches::delete),
        )
        // A known resource asked with a method it lacks: a problem document, and the
        // `Allow` header axum adds.
        .method_not_allowed_fallback(api_method_not_allowed)
        .route_layer(middleware::from_fn_with_state(sim.clone(), api_gate))
        .fallback(api_not_found);

    Router::new()
        .merge(api)
        .merge(oauth::routes())
        .merge(admin::routes())
        .with_state(sim)
}

/// The router wrapped so that `/3.0/lists/` and `/3.0/lists` route alike, as clients that
/// join a base URL ending in `/` send both.
pub fn app(sim: AppState) -> NormalizePath<Router> {
    NormalizePathLayer::trim_trailing_slash().layer(router(sim))
}

async fn api_not_found(uri: Uri) -> Response {
    tracing::debug!(%uri, "no such resource");
    ApiError::not_found().into_response()
}

async fn api_method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        "The requested method and resource are not compatible. See the Allow header for this resource's available methods.",
    )
    .into_response()
}

/// The credential a request carries: HTTP Basic (any user name, the key as password),
/// `Bearer <key or token>`, or `OAuth <token>`.
pub fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, key) = text.split_once(':')?;
            Some(key.to_string())
        }
        "bearer" | "oauth" | "apikey" => Some(rest.to_string()),
        _ => None,
    }
}

/// Releases an in-flight slot when the request ends, however it ends; once the request is
/// admitted, adds the time it held the slot to `in_flight_micros`.
///
/// A request whose client went away before its answer (the future is dropped) is abandoned:
/// with `variants.abandoned_slot_ms` above 0 its slot stays taken until its handling, the
/// modelled latency included, would have ended, plus that many milliseconds, as Mailchimp is
/// reported to keep counting a connection the client timed out.
struct Slot {
    sim: AppState,
    account: Arc<Account>,
    admitted: Option<std::time::Instant>,
    /// When the request's handling, its modelled latency included, ends; once known.
    ends_at: Option<std::time::Instant>,
    /// The answer is ready: the client did not give up first.
    answered: bool,
    abandoned_hold: std::time::Duration,
}

impl Slot {
    fn release(sim: &Sim, account: &Account, admitted: Option<std::time::Instant>) {
        account.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(t) = admitted {
            sim.counters
                .in_flight_micros
                .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let abandoned = self.admitted.is_some() && !self.answered;
        if abandoned {
            self.sim.counters.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        if abandoned && !self.abandoned_hold.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let now = std::time::Instant::now();
                let until = self.ends_at.unwrap_or(now).max(now) + self.abandoned_hold;
                let (sim, account, admitted) =
                    (self.sim.clone(), self.account.clone(), self.admitted);
                rt.spawn(async move {
                    tokio::time::sleep_until(until.into()).await;
                    Slot::release(&sim, &account, admitted);
                });
                return;
            }
        }
        Slot::release(&self.sim, &self.account, self.admitted);
    }
}

async fn api_gate(State(sim): State<AppState>, mut req: Request, next: Next) -> Response {
    let endpoint = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| req.uri().path().to_string())
    );
    if req.extensions().get::<Internal>().is_some() {
        let account = req.extensions().get::<Internal>().unwrap().0.clone();
        req.extensions_mut().insert(account);
        return next.run(req).await;
    }
    let counters = &sim.counters;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if req.method() != Method::GET {
        counters.writes.fetch_add(1, Ordering::Relaxed);
    }
    *counters.by_endpoint.lock().entry(endpoint).or_default() += 1;
    let resp = gated(&sim, req, next).await;
    *counters
        .by_status
        .lock()
        .entry(resp.status().as_u16())
        .or_default() += 1;
    resp
}

async fn gated(sim: &AppState, mut req: Request, next: Next) -> Response {
    let trigger = req
        .headers()
        .get("x-trigger-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if trigger.as_deref() == Some("APIKeyMissing") {
        return ApiError::api_key_missing().into_response();
    }
    let Some(cred) = credential(req.headers()) else {
        return ApiError::api_key_missing().into_response();
    };
    let Some(account) = sim.account_for(&cred) else {
        return ApiError::api_key_invalid().into_response();
    };
    if let Some(e) = trigger.as_deref().and_then(ApiError::triggered) {
        return e.into_response();
    }
    let settings = sim.settings.read().clone();
    let limit = settings.max_in_flight;
    // The cap is the account's, whichever of its keys or tokens the request carries.
    let now_in = account.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let mut slot = Slot {
        sim: sim.clone(),
        account: account.clone(),
        admitted: None,
        ends_at: None,
        answered: false,
        abandoned_hold: std::time::Duration::from_millis(settings.variants.abandoned_slot_ms),
    };
    if now_in > limit {
        sim.counters
            .too_many_requests
            .fetch_add(1, Ordering::Relaxed);
        drop(slot);
        if settings.variants.throttle_status == 403 {
            let mut e = ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "You have exceeded the limit of simultaneous connections.",
            );
            e.bodyless = true;
            return e.into_response();
        }
        return ApiError::too_many_requests(limit).into_response();
    }
    slot.admitted = Some(std::time::Instant::now());
    sim.counters
        .max_in_flight
        .fetch_max(now_in, Ordering::Relaxed);

    let faults = &settings.faults;
    let burst = account
        .burst_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if burst || (faults.burst_429_rate > 0.0 && sim.roll() < faults.burst_429_rate) {
        if !burst {
            account
                .burst_left
                .store(faults.burst_429_len.saturating_sub(1), Ordering::SeqCst);
        }
        sim.counters.injected_429.fetch_add(1, Ordering::Relaxed);
        let mut e = ApiError::too_many_requests(limit);
        e.bodyless = faults.bodyless_429;
        slot.answered = true;
        return e.into_response();
    }
    if faults.error_5xx_rate > 0.0 && sim.roll() < faults.error_5xx_rate {
        sim.counters.injected_5xx.fetch_add(1, Ordering::Relaxed);
        let latency = settings.latency.for_items(1);
        slot.ends_at = Some(std::time::Instant::now() + latency);
        tokio::time::sleep(latency).await;
        slot.answered = true;
        return ApiError::internal().into_response();
    }
    let slow = faults.slow_rate > 0.0 && sim.roll() < faults.slow_rate;
    let drop_it = faults.drop_rate > 0.0 && sim.roll() < faults.drop_rate;

    req.extensions_mut().insert(account.clone());
    let handling = std::time::Instant::now();
    let mut resp = next.run(req).await;

    let items = resp.extensions().get::<Items>().map_or(1, |i| i.0.max(1));
    sim.counters
        .items
        .fetch_add(items as u64, Ordering::Relaxed);
    // The modelled latency is the request's whole time here, its handling included (as a
    // real server's answer time is), so a client that keeps 10 requests in flight can reach
    // the bound of design.md section 7 exactly.
    let mut wait = settings
        .latency
        .for_items(items)
        .saturating_sub(handling.elapsed());
    if slow {
        sim.counters.slowed.fetch_add(1, Ordering::Relaxed);
        wait += std::time::Duration::from_millis(faults.slow_ms);
    }
    slot.ends_at = Some(std::time::Instant::now() + wait);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    slot.answered = true;
    drop(slot);
    if drop_it {
        sim.counters.dropped.fetch_add(1, Ordering::Relaxed);
        let broken = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection dropped by fault injection",
            ))
        });
        *resp.body_mut() = Body::from_stream(broken);
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if !resp.headers().contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(&crate::error::request_id()) {
            resp.headers_mut().insert("x-request-id", v);
        }
    }
    resp
}

/// The query string as a map (the last value of a repeated name wins).
pub type Query = axum::extract::Query<HashMap<String, String>>;

/// A JSON answer with `fields` / `exclude_fields` applied. Without them the body is
/// serialised as it is, which for typed answers skips building a JSON tree.
pub fn reply<T: serde::Serialize>(q: &HashMap<String, String>, body: T) -> Response {
    let fields = q.get("fields").filter(|f| !f.trim().is_empty());
    let exclude = q.get("exclude_fields").filter(|f| !f.trim().is_empty());
    if fields.is_none() && exclude.is_none() {
        return json_bytes(
            StatusCode::OK,
            serde_json::to_vec(&body).expect("JSON serialises"),
        );
    }
    let tree = serde_json::to_value(&body).expect("JSON serialises");
    let body = render::filter_fields(
        tree,
        fields.map(String::as_str),
        exclude.map(String::as_str),
    );
    json_response(StatusCode::OK, &body)
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    json_bytes(status, serde_json::to_vec(body).expect("JSON serialises"))
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// 204 No Content, as DELETE and a few POSTs answer.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Parses a JSON request body; an empty body is an empty object.
pub fn body_json(body: &Bytes) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::json_parse())
}

/// Runs a handler's synchronous work (a large body parsed, members written under the
/// account's lock, the answer rendered) on the blocking pool. On the runtime's own workers,
/// that work, and the wait for the account's lock, held them: the requests around it missed
/// the end of their modelled latency (by 5.7 ms a request on average, in a first export of
/// 1M members on two cores), and the simulator, not its client, set the pace.
pub async fn off_runtime<T, F>(work: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(ApiError::internal()))
}

/// Reads `count` (default 10, at most 1000) and `offset`.
pub fn paging(q: &HashMap<String, String>) -> (usize, usize) {
    let count = q
        .get("count")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(10)
        .min(1000);
    let offset = q
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    (count, offset)
}

pub fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true" || v == "1")
}
