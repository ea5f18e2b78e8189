//! The OpenAPI document of the REST API, at `/api/openapi.json`, generated from the handlers'
//! annotations (so it cannot drift from the code; a test checks every route is in it).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api, auth, oauth, settings, AppState};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (POST /api/tokens)"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "The session cookie of POST /api/login; changes also need the X-CSRF-Token header",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "segsync",
        description = "Export segments of customer profiles to Mailchimp audiences. Roles: viewer (reads exports and runs), contributor (segments, exports on shared connections), admin (everything). Errors are {error, message}.",
    ),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    paths(
        auth::api_login, auth::api_logout, auth::api_me,
        api::list_users, api::add_user, api::change_user, api::remove_user,
        api::list_tokens, api::create_token, api::revoke_token,
        api::list_connections, api::add_connection, api::get_connection, api::change_connection,
        api::remove_connection, api::test_connection, api::audiences,
        oauth::api_begin,
        api::list_segments, api::add_segment, api::get_segment, api::change_segment, api::remove_segment,
        api::profiles, api::import_profiles, api::refresh_profiles,
        api::list_exports, api::add_export, api::get_export, api::change_export, api::remove_export,
        api::pause_export, api::resume_export, api::run_export, api::cancel_export,
        api::list_runs, api::get_run, api::run_errors, api::cancel_run,
        api::audit_log,
        settings::get_alerts, settings::put_alerts, settings::test_alerts,
    )
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
