//! `GET /3.0/` (the account) and `GET /3.0/ping` (the health check).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use serde_json::json;

use super::{reply, AppState, Query};
use crate::store::list::format_time;
use crate::store::Account;

pub async fn root(
    State(_sim): State<AppState>,
    Extension(account): Extension<Arc<Account>>,
    q: Query,
) -> Response {
    let total: u64 = account.data.lock().contacts();
    reply(
        &q,
        json!({
            "account_id": account.id,
            "login_id": account.login,
            "account_name": account.name,
            "email": account.email,
            "first_name": "Sim",
            "last_name": "Owner",
            "username": account.login,
            "avatar_url": "",
            "role": "owner",
            "member_since": format_time(account.created_at),
            "pricing_plan_type": "monthly",
            "first_payment": format_time(account.created_at),
            "account_timezone": "UTC",
            "account_industry": "Software",
            "contact": {"company": account.name, "addr1": "1 Simulation Way", "addr2": "",
                        "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
            "pro_enabled": false,
            "last_login": format_time(account.created_at),
            "total_subscribers": total,
            "industry_stats": {"open_rate": 0, "bounce_rate": 0, "click_rate": 0},
            "_links": [{"rel": "self", "href": "/3.0/", "method": "GET"}],
        }),
    )
}

pub async fn ping(q: Query) -> Response {
    reply(&q, json!({"health_status": "Everything's Chimpy!"}))
}
