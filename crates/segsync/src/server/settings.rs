//! Installation settings (admins): where alerts go (`/api/settings/alerts`). See
//! [`super::alerts`] for what they hold and when they fire.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use super::alerts::{self, AlertSettings, DeliveryReport};
use super::auth::Authed;
use super::extract::Json;
use super::{ApiError, AppState, ErrorBody};
use crate::state::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/settings/alerts", get(get_alerts).put(put_alerts))
        .route("/api/settings/alerts/test", post(test_alerts))
}

/// The alert settings, with what may not work as expected. Never a password: the SMTP
/// password stays in the server's environment.
#[derive(Serialize, ToSchema)]
pub struct AlertSettingsView {
    #[serde(flatten)]
    pub settings: AlertSettings,
    /// Whether the variable named by `smtp.password_env` is set in the server's environment
    /// (absent when no password is used).
    pub smtp_password_available: Option<bool>,
    /// Settings that are accepted but will not work as one may think.
    pub warnings: Vec<String>,
}

fn view(settings: AlertSettings) -> AlertSettingsView {
    let smtp_password_available = settings
        .smtp
        .as_ref()
        .and_then(|s| s.password_env.as_deref())
        .map(|var| std::env::var_os(var).is_some());
    AlertSettingsView {
        warnings: alerts::warnings(&settings),
        smtp_password_available,
        settings,
    }
}

/// Where alerts of failed runs go (admins).
#[utoipa::path(get, path = "/api/settings/alerts", tag = "settings",
    responses((status = 200, body = AlertSettingsView), (status = 403, body = ErrorBody)))]
pub async fn get_alerts(
    State(app): State<AppState>,
    who: Authed,
) -> Result<Json<AlertSettingsView>, ApiError> {
    who.require(Role::Admin, "reading the alert settings")?;
    let settings = alerts::load(&app.app).map_err(ApiError::internal)?;
    Ok(Json(view(settings)))
}

/// Replaces where alerts of failed runs go (admins): `webhook_url` (a Slack-compatible
/// incoming webhook), `email_to` (addresses) and `smtp` {host, port, from, username,
/// password_env, starttls}. `{}` turns alerts off. The SMTP password is never sent here:
/// `password_env` names the server's environment variable that holds it.
#[utoipa::path(put, path = "/api/settings/alerts", tag = "settings", request_body(content = Option<AlertSettings>, description = "The settings; no body is read as {} (alerts off)"),
    responses((status = 200, body = AlertSettingsView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_alerts(
    State(app): State<AppState>,
    who: Authed,
    body: Bytes,
) -> Result<Json<AlertSettingsView>, ApiError> {
    who.require(Role::Admin, "changing the alert settings")?;
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(invalid(
            "the body is a JSON object: {\"webhook_url\": ..., \"email_to\": [...], \"smtp\": {...}}"
                .into(),
        ));
    }
    let settings = alerts::check(value).map_err(invalid)?;
    alerts::save(&app.app, &settings).map_err(ApiError::internal)?;
    let state = app.app.state().map_err(ApiError::internal)?;
    state.audit(
        &who.actor.name,
        "settings.alerts",
        "alerts",
        &alerts::describe(&settings),
    )?;
    Ok(Json(view(settings)))
}

/// Sends a test alert on every configured channel now (admins) and tells how each fared.
#[utoipa::path(post, path = "/api/settings/alerts/test", tag = "settings",
    responses((status = 200, body = DeliveryReport), (status = 403, body = ErrorBody)))]
pub async fn test_alerts(
    State(app): State<AppState>,
    who: Authed,
) -> Result<Json<DeliveryReport>, ApiError> {
    who.require(Role::Admin, "sending a test alert")?;
    let report = alerts::send_test(&app, &who.actor.name)
        .await
        .map_err(ApiError::internal)?;
    let state = app.app.state().map_err(ApiError::internal)?;
    state.audit(
        &who.actor.name,
        "settings.alerts.test",
        "alerts",
        &format!(
            "webhook: {}; email: {}",
            report.webhook.status, report.email.status
        ),
    )?;
    Ok(Json(report))
}
