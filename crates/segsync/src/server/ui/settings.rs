//! Admin > Alerts (where alerts of failed runs go: a webhook, e-mail through a relay; a test
//! alert) and Admin > Audit log (who changed what, when), on the API's shared code
//! ([`crate::server::settings`], the state store's audit log).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::layout::{csrf, Nav, Page};
use super::{redirect_notice, state_of, when, Admin, FormData, OrPage, PageResult};
use crate::server::alerts::{self, DeliveryReport, SmtpSettings};
use crate::server::auth::Authed;
use crate::server::settings::{self, AlertSettingsView};
use crate::server::{ApiError, AppState};

/// Audit entries per page.
const AUDIT_ROWS: usize = 100;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn alerts_page(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let stored = alerts::load(&app.app)
        .map_err(ApiError::internal)
        .or_page(&who)?;
    let view = settings::view(&app, stored).or_page(&who)?;
    Ok(alerts_form(&who, &view, q.notice, None, None).into_response())
}

/// The page: the settings as stored (or as just refused), a test's report.
fn alerts_form(
    who: &Authed,
    v: &AlertSettingsView,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
    tested: Option<&DeliveryReport>,
) -> impl IntoResponse {
    let smtp = v.smtp.as_ref();
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        p class="muted" { "When a run fails, segsync tells the people below: through a Slack-compatible webhook, by e-mail, or both. Leave everything empty to send no alert." }
        @if let Some(r) = tested { (test_report(r)) }
        @for w in &v.warnings {
            div class="flash flash-warn" role="status" { (w) }
        }
        form method="post" action="/admin/alerts" id="alerts-form" autocomplete="off" {
            (csrf(who))
            div class="card" {
                h2 { "Webhook" }
                div class="field" {
                    label for="webhook_url" { "Incoming webhook URL" }
                    input type="url" id="webhook_url" name="webhook_url" placeholder="https://hooks.slack.com/services/..." value=(v.webhook_url.as_deref().unwrap_or(""));
                    span class="hint" { "Slack, Mattermost, Teams and others take these messages." }
                }
            }
            div class="card" {
                h2 { "E-mail" }
                div class="field" {
                    label for="email_to" { "Send to" }
                    input type="text" id="email_to" name="email_to" value=(v.email_to.join(", "));
                    span class="hint" { "Addresses, separated by commas." }
                }
                div class="grid2" {
                    div class="field" {
                        label for="smtp_host" { "Mail server (SMTP relay)" }
                        input type="text" id="smtp_host" name="smtp_host" placeholder="smtp.example.com" value=(smtp.map_or("", |s| s.host.as_str()));
                    }
                    div class="field" {
                        label for="smtp_port" { "Port" }
                        input type="number" id="smtp_port" name="smtp_port" min="1" max="65535" value=(smtp.and_then(|s| s.port).map(|p| p.to_string()).unwrap_or_default());
                        span class="hint" { "Empty: 587 with STARTTLS, 25 without." }
                    }
                    div class="field" {
                        label for="smtp_from" { "Sender" }
                        input type="text" id="smtp_from" name="smtp_from" placeholder="segsync <alerts@example.com>" value=(smtp.map_or("", |s| s.from.as_str()));
                    }
                    div class="field" {
                        label for="smtp_username" { "Login" }
                        input type="text" id="smtp_username" name="smtp_username" value=(smtp.and_then(|s| s.username.as_deref()).unwrap_or(""));
                        span class="hint" { "If the relay wants one." }
                    }
                    div class="field" {
                        label for="smtp_password" { "Password" }
                        input type="password" id="smtp_password" name="smtp_password" autocomplete="new-password";
                        span class="hint" {
                            @if v.smtp_password_set { "One is set: leave empty to keep it. It is stored encrypted and never shown." }
                            @else { "Stored encrypted, never shown again." }
                        }
                    }
                }
                label class="check" {
                    input type="checkbox" name="smtp_starttls" value="on" checked[smtp.is_none_or(|s| s.starttls)];
                    span { "Encrypt the connection (STARTTLS). Off only for a relay on this machine." }
                }
            }
            div class="actions" {
                button type="submit" class="btn btn-primary" { "Save" }
            }
        }
        form method="post" action="/admin/alerts/test" class="inline" {
            (csrf(who))
            button type="submit" class="btn btn-secondary" id="send-test" { "Send a test alert" }
        }
    };
    let page = Page::new(Some(who), Nav::Alerts, "Alerts")
        .notice(notice)
        .error(error.map(|(_, m)| m))
        .render(body);
    (status, page)
}

fn test_report(r: &DeliveryReport) -> Markup {
    html! {
        div class="card" id="test-report" {
            h2 { "Test alert" }
            dl class="summary" {
                dt { "Webhook" } dd data-status=(r.webhook.status) { (r.webhook.status.replace('_', " ")) ": " (r.webhook.message) }
                dt { "E-mail" } dd data-status=(r.email.status) { (r.email.status.replace('_', " ")) ": " (r.email.message) }
            }
        }
    }
}

/// The form as the JSON body `PUT /api/settings/alerts` takes: empty fields are left out,
/// an empty relay means no e-mail.
fn alerts_body(form: &FormData) -> Value {
    let mut body = Map::new();
    if let Some(url) = form.opt("webhook_url").filter(|u| !u.trim().is_empty()) {
        body.insert("webhook_url".into(), json!(url.trim()));
    }
    let to: Vec<String> = form
        .text("email_to")
        .split([',', ';', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if !to.is_empty() {
        body.insert("email_to".into(), json!(to));
    }
    let host = form.text("smtp_host");
    if !host.trim().is_empty() {
        let mut smtp = Map::new();
        smtp.insert("host".into(), json!(host.trim()));
        smtp.insert("from".into(), json!(form.text("smtp_from").trim()));
        smtp.insert("starttls".into(), json!(form.has("smtp_starttls")));
        if let Some(port) = form.opt("smtp_port").filter(|p| !p.trim().is_empty()) {
            let port = port.trim();
            smtp.insert(
                "port".into(),
                port.parse::<u64>().map_or(json!(port), |p| json!(p)),
            );
        }
        if let Some(user) = form.opt("smtp_username").filter(|u| !u.trim().is_empty()) {
            smtp.insert("username".into(), json!(user.trim()));
        }
        if let Some(password) = form.opt("smtp_password").filter(|p| !p.is_empty()) {
            smtp.insert("password".into(), json!(password));
        }
        body.insert("smtp".into(), Value::Object(smtp));
    }
    Value::Object(body)
}

pub async fn alerts_save(
    State(app): State<AppState>,
    Admin(who): Admin,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let body = alerts_body(&form);
    let outcome = match alerts::check(body, app.app.private_targets()) {
        Ok(checked) => settings::change_alerts(&app, &who, checked).await,
        Err(m) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            m,
        )),
    };
    match outcome {
        Ok(_) => Ok(redirect_notice("/admin/alerts", "Alert settings saved.")),
        Err(e) if e.status.is_client_error() => {
            // The form as it was filled (never the password), with the refusal.
            let stored = alerts::load(&app.app)
                .map_err(ApiError::internal)
                .or_page(&who)?;
            let mut shown = settings::view(&app, stored).or_page(&who)?;
            refill(&mut shown, &form);
            Err(alerts_form(&who, &shown, None, Some((e.status, e.message)), None).into_response())
        }
        Err(e) => Err(super::error_page(Some(&who), &e)),
    }
}

/// `v` with what the form held (for showing a refused form as it was filled; never the
/// password).
fn refill(v: &mut AlertSettingsView, form: &FormData) {
    v.webhook_url = form.opt("webhook_url");
    v.email_to = vec![form.text("email_to")];
    v.warnings.clear();
    let host = form.text("smtp_host");
    v.smtp = (!host.trim().is_empty()).then(|| SmtpSettings {
        host,
        port: form.text("smtp_port").trim().parse().ok(),
        from: form.text("smtp_from"),
        username: form.opt("smtp_username").filter(|u| !u.is_empty()),
        starttls: form.has("smtp_starttls"),
    });
}

pub async fn alerts_test(
    State(app): State<AppState>,
    Admin(who): Admin,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let report = settings::send_test_alert(&app, &who).await.or_page(&who)?;
    let stored = alerts::load(&app.app)
        .map_err(ApiError::internal)
        .or_page(&who)?;
    let view = settings::view(&app, stored).or_page(&who)?;
    Ok(alerts_form(&who, &view, None, None, Some(&report)).into_response())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    /// Entries older than this id.
    before: Option<i64>,
}

pub async fn audit_page(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let state = state_of(&app).or_page(&who)?;
    let entries = state.audit_log(AUDIT_ROWS, q.before).or_page(&who)?;
    let older = (entries.len() == AUDIT_ROWS)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let body = html! {
        p class="muted" { "Who changed what, and when: connections, users, segments, exports, runs started by hand, settings. Newest first; never a secret." }
        @if entries.is_empty() {
            div class="card empty" { p { "Nothing yet." } }
        } @else {
            div class="card table-wrap" {
                table id="audit" class="stack" {
                    thead { tr { th { "When" } th { "Who" } th { "What" } th { "On" } th { "Detail" } } }
                    tbody {
                        @for e in &entries {
                            tr data-action=(e.action) {
                                td class="small" data-label="When" { (when(&e.at)) }
                                td data-label="Who" { (e.actor) }
                                td data-label="What" { code { (e.action) } }
                                td data-label="On" { (e.target) }
                                td class="small" data-label="Detail" { (e.detail) }
                            }
                        }
                    }
                }
            }
            div class="actions" {
                @if q.before.is_some() { a class="btn btn-secondary" href="/admin/audit" { "Newest" } }
                @if let Some(id) = older { a class="btn btn-secondary" href=(format!("/admin/audit?before={id}")) { "Older" } }
            }
        }
    };
    Ok(Page::new(Some(&who), Nav::Audit, "Audit log")
        .render(body)
        .into_response())
}
