//! The admin API under `/_sim`, outside Mailchimp's surface: create accounts and audiences,
//! read an audience's whole state, read and reset counters, change settings at run time,
//! force a member's status as Mailchimp itself would (an unsubscribe, a bounce), revoke
//! credentials, register OAuth apps, and reset everything. `GET /_sim` lists it all.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

use super::{json_response, AppState};
use crate::config::{OAuthClient, Profile, Settings, Variants};
use crate::render;
use crate::rules::{self, Status};
use crate::store::list::{format_time, now_micros, SegmentKind};
use crate::store::{Account, Sim};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_sim", get(index))
        .route("/_sim/accounts", get(accounts).post(create_account))
        .route("/_sim/accounts/{account_id}/lists", post(create_list))
        .route("/_sim/accounts/{account_id}/keys", post(add_key))
        .route(
            "/_sim/accounts/{account_id}/outside-load",
            put(set_outside_load),
        )
        .route("/_sim/lists/{list_id}", get(list_state))
        .route(
            "/_sim/lists/{list_id}/members/{member}/status",
            post(force_status),
        )
        .route("/_sim/counters", get(counters).delete(reset_counters))
        .route(
            "/_sim/settings",
            get(get_settings).put(put_settings).patch(patch_settings),
        )
        .route("/_sim/reset", post(reset))
        .route("/_sim/oauth-clients", post(add_oauth_client))
        .route("/_sim/revoke", post(revoke))
        .route("/_sim/batch-results/{file}", get(super::batches::results))
}

fn bad_request(msg: impl Into<String>) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": msg.into()}))
}

fn not_found(what: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": format!("no such {what}")}),
    )
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

async fn index() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "endpoints": [
                "GET /_sim/accounts", "POST /_sim/accounts {api_key?}",
                "POST /_sim/accounts/{account_id}/keys {api_key?}",
                "PUT /_sim/accounts/{account_id}/outside-load {slots}",
                "POST /_sim/accounts/{account_id}/lists {name?, double_optin?}",
                "GET /_sim/lists/{list_id}[?members=false]",
                "POST /_sim/lists/{list_id}/members/{hash_or_email}/status {status}",
                "GET /_sim/counters", "DELETE /_sim/counters",
                "GET /_sim/settings", "PUT /_sim/settings", "PATCH /_sim/settings",
                "POST /_sim/reset", "POST /_sim/oauth-clients {client_id, client_secret, redirect_uri?}",
                "POST /_sim/revoke {credential}", "GET /_sim/batch-results/{token}.tar.gz",
            ]
        }),
    )
}

/// An account as the admin API shows it (never its keys).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountView {
    pub account_id: String,
    pub login: String,
    pub dc: String,
    pub list_ids: Vec<String>,
}

fn account_view(a: &Account) -> AccountView {
    AccountView {
        account_id: a.id.clone(),
        login: a.login.clone(),
        dc: a.dc.clone(),
        list_ids: a.data.lock().lists.keys().cloned().collect(),
    }
}

async fn accounts(State(sim): State<AppState>) -> Response {
    let v: Vec<AccountView> = sim.accounts().iter().map(|a| account_view(a)).collect();
    json_response(StatusCode::OK, &json!({"accounts": v}))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct NewAccount {
    api_key: Option<String>,
}

async fn create_account(State(sim): State<AppState>, body: Bytes) -> Response {
    let req: NewAccount = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    match sim.add_account(req.api_key) {
        Ok((account, key)) => json_response(
            StatusCode::OK,
            &json!({"account_id": account.id, "api_key": key, "login": account.login, "dc": account.dc}),
        ),
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutsideLoad {
    slots: usize,
}

/// Makes `slots` of the account's in-flight cap taken by "other apps" (signup forms,
/// integrations) until changed again: they count against the cap like live requests.
async fn set_outside_load(
    State(sim): State<AppState>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: OutsideLoad = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(account) = sim.account(&account_id) else {
        return not_found("account");
    };
    let mut held = account.outside_load.lock();
    if req.slots >= *held {
        account
            .in_flight
            .fetch_add(req.slots - *held, Ordering::SeqCst);
    } else {
        account
            .in_flight
            .fetch_sub(*held - req.slots, Ordering::SeqCst);
    }
    *held = req.slots;
    json_response(
        StatusCode::OK,
        &json!({"account_id": account_id, "outside_load": req.slots}),
    )
}

/// Another API key for an existing account: it shares the account's data and in-flight cap.
async fn add_key(
    State(sim): State<AppState>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: NewAccount = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if sim.account(&account_id).is_none() {
        return not_found("account");
    }
    match sim.add_key(&account_id, req.api_key) {
        Ok(key) => json_response(
            StatusCode::OK,
            &json!({"account_id": account_id, "api_key": key}),
        ),
        Err(e) => bad_request(e),
    }
}

/// Creates an audience with plausible defaults; `name` and `double_optin` may be given.
pub fn new_list(account: &Account, name: &str, double_optin: bool) -> Value {
    let body = json!({
        "name": name,
        "contact": {"company": "Simulated Co", "address1": "1 Simulation Way", "city": "Atlanta",
                    "state": "GA", "zip": "30308", "country": "US"},
        "permission_reminder": "You signed up on our site.",
        "campaign_defaults": {"from_name": "Simulated Co", "from_email": "news@segsync-sim.dev",
                              "subject": "", "language": "en"},
        "email_type_option": false,
        "double_optin": double_optin,
    });
    super::lists::create_list(account, &body).expect("the default audience is valid")
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct NewList {
    name: Option<String>,
    double_optin: bool,
}

async fn create_list(
    State(sim): State<AppState>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: NewList = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(account) = sim.account(&account_id) else {
        return not_found("account");
    };
    let v = new_list(
        &account,
        req.name.as_deref().unwrap_or("Simulated Audience"),
        req.double_optin,
    );
    json_response(StatusCode::OK, &v)
}

/// One member of an audience, in the admin view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemberView {
    pub id: String,
    pub email_address: String,
    pub status: Status,
    pub merge_fields: serde_json::Map<String, Value>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    pub last_changed: String,
}

/// A tag of an audience, in the admin view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagView {
    pub id: u32,
    pub name: String,
    pub member_count: usize,
}

/// Everything an audience holds, for tests to compare with what they expect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListView {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub double_optin: bool,
    pub member_count: usize,
    pub merge_fields: Vec<Value>,
    pub tags: Vec<TagView>,
    pub saved_segments: Vec<String>,
    /// Subscriber hashes of permanently deleted contacts.
    pub forgotten: Vec<String>,
    pub members: Vec<MemberView>,
}

/// The whole state of audience `list_id`, members included unless `members` is false.
pub fn list_view(sim: &Sim, list_id: &str, members: bool) -> Option<ListView> {
    let account = sim.account_of_list(list_id)?;
    let d = account.data.lock();
    let list = d.lists.get(list_id)?;
    let members = if members {
        list.members
            .keys()
            .map(|k| {
                let full = render::member(list, k).to_value();
                let m = &list.members[k];
                let mut tags: Vec<String> = m
                    .tags
                    .iter()
                    .filter_map(|(id, _)| list.segments.get(id).map(|s| s.name.clone()))
                    .collect();
                tags.sort();
                MemberView {
                    id: hex::encode(k),
                    email_address: m.email.clone(),
                    status: m.status,
                    merge_fields: full["merge_fields"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    tags,
                    last_changed: format_time(m.last_changed),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut forgotten: Vec<String> = list.forgotten.iter().map(hex::encode).collect();
    forgotten.sort();
    Some(ListView {
        id: list.id.clone(),
        account_id: account.id.clone(),
        name: list.info.name.clone(),
        double_optin: list.info.double_optin,
        member_count: list.members.len(),
        merge_fields: list
            .merge_fields
            .iter()
            .map(|f| render::merge_field(&list.id, f))
            .collect(),
        tags: list
            .segments
            .values()
            .filter(|s| s.kind == SegmentKind::Static)
            .map(|s| TagView {
                id: s.id,
                name: s.name.clone(),
                member_count: s.members.len(),
            })
            .collect(),
        saved_segments: list
            .segments
            .values()
            .filter(|s| s.kind == SegmentKind::Saved)
            .map(|s| s.name.clone())
            .collect(),
        forgotten,
        members,
    })
}

async fn list_state(
    State(sim): State<AppState>,
    Path(list_id): Path<String>,
    q: super::Query,
) -> Response {
    let members = q.get("members").is_none_or(|m| m != "false");
    match list_view(&sim, &list_id, members) {
        Some(v) => json_response(
            StatusCode::OK,
            &serde_json::to_value(v).expect("view serialises"),
        ),
        None => not_found("audience"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceStatus {
    status: Status,
}

/// Sets a member's status as Mailchimp itself would: no compliance rule applies.
pub fn force_member_status(sim: &Sim, list_id: &str, member: &str, status: Status) -> bool {
    let Some(key) = rules::key_from_path(member) else {
        return false;
    };
    let Some(account) = sim.account_of_list(list_id) else {
        return false;
    };
    let mut d = account.data.lock();
    d.lists
        .get_mut(list_id)
        .is_some_and(|l| l.force_status(key, status, now_micros()))
}

async fn force_status(
    State(sim): State<AppState>,
    Path((list_id, member)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let req: ForceStatus = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if force_member_status(&sim, &list_id, &member, req.status) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found("member")
    }
}

async fn counters(State(sim): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(sim.counters.view()).expect("counters serialise"),
    )
}

async fn reset_counters(State(sim): State<AppState>) -> Response {
    sim.counters.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_settings(State(sim): State<AppState>) -> Response {
    let s = sim.settings.read().clone();
    json_response(
        StatusCode::OK,
        &serde_json::to_value(s).expect("settings serialise"),
    )
}

fn check_settings(s: &Settings) -> Result<(), String> {
    let f = &s.faults;
    for (name, rate) in [
        ("faults.error_5xx_rate", f.error_5xx_rate),
        ("faults.burst_429_rate", f.burst_429_rate),
        ("faults.slow_rate", f.slow_rate),
        ("faults.drop_rate", f.drop_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{name} must be between 0 and 1, got {rate}"));
        }
    }
    if s.max_in_flight == 0 {
        return Err("max_in_flight must be at least 1".into());
    }
    if s.latency.base_ms < 0.0 || s.latency.per_item_ms < 0.0 {
        return Err("latency must not be negative".into());
    }
    let v = &s.variants;
    if v.throttle_status != 429 && v.throttle_status != 403 {
        return Err(format!(
            "variants.throttle_status must be 429 or 403, got {}",
            v.throttle_status
        ));
    }
    if !(0.0..=1.0).contains(&v.recent_signups_rate) {
        return Err(format!(
            "variants.recent_signups_rate must be between 0 and 1, got {}",
            v.recent_signups_rate
        ));
    }
    if v.tag_name_max == Some(0) {
        return Err("variants.tag_name_max must be at least 1 (null for no cap)".into());
    }
    Ok(())
}

/// Replaces the settings in force; the fault generator is re-seeded.
pub fn apply_settings(sim: &Sim, s: Settings) -> Result<(), String> {
    check_settings(&s)?;
    *sim.rng.lock() = rand::SeedableRng::seed_from_u64(s.faults.seed);
    *sim.settings.write() = s;
    Ok(())
}

/// The settings a `PUT` (over `base`, the defaults) or `PATCH` (over the settings in force)
/// body gives: when it names a `profile`, `variants` first take that profile's values, and
/// whatever else the body gives overrides them.
fn settings_from(mut base: Settings, body: &Value) -> Result<Settings, String> {
    if let Some(p) = body.get("profile") {
        let profile: Profile =
            serde_json::from_value(p.clone()).map_err(|e| format!("invalid settings: {e}"))?;
        base.profile = profile;
        base.variants = Variants::for_profile(profile);
    }
    let mut current = serde_json::to_value(base).expect("settings serialise");
    merge_json(&mut current, body);
    serde_json::from_value(current).map_err(|e| format!("invalid settings: {e}"))
}

async fn put_settings(State(sim): State<AppState>, body: Bytes) -> Response {
    let body: Value = match parse(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    if !body.is_object() {
        return bad_request("invalid settings: a JSON object is expected");
    }
    let s = match settings_from(Settings::default(), &body) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    match apply_settings(&sim, s) {
        Ok(()) => get_settings(State(sim)).await,
        Err(e) => bad_request(e),
    }
}

fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge_json(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

async fn patch_settings(State(sim): State<AppState>, body: Bytes) -> Response {
    let patch: Value = match parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    let current = sim.settings.read().clone();
    let s = match settings_from(current, &patch) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    match apply_settings(&sim, s) {
        Ok(()) => get_settings(State(sim)).await,
        Err(e) => bad_request(e),
    }
}

async fn reset(State(sim): State<AppState>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn add_oauth_client(State(sim): State<AppState>, body: Bytes) -> Response {
    let c: OAuthClient = match parse(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let mut oauth = sim.oauth.lock();
    oauth.clients.retain(|x| x.client_id != c.client_id);
    oauth.clients.push(c);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    credential: String,
}

async fn revoke(State(sim): State<AppState>, body: Bytes) -> Response {
    let r: Revoke = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if sim.revoke(&r.credential) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found("credential")
    }
}
