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
        description = "Export segments of customer profiles to Mailchimp audiences. Roles: viewer (reads exports and runs), contributor (segments, exports on shared connections; a segment that an export on a connection kept for admins uses is changed or removed by admins only: 403 naming those exports), admin (everything). Errors are {error, message}. Endpoints that evaluate segment predicates (segment list, preview, add, change) run them in a bounded number of slots per server: 503 with error \"busy\" when none frees within 10 s. Mailchimp base URLs and alert webhooks must be public addresses unless the server runs with --allow-private-targets (422 otherwise); errors never repeat another server's answer. Every answer under /api carries X-Content-Type-Options: nosniff and Cache-Control: no-store.",
    ),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    paths(
        auth::api_login, auth::api_logout, auth::api_me,
        api::users::list_users, api::users::add_user, api::users::change_user,
        api::users::remove_user,
        api::users::list_tokens, api::users::create_token, api::users::revoke_token,
        api::connections::list_connections, api::connections::add_connection,
        api::connections::get_connection, api::connections::change_connection,
        api::connections::remove_connection, api::connections::test_connection,
        api::connections::audiences,
        oauth::api_begin,
        api::segments::list_segments, api::segments::add_segment, api::segments::get_segment,
        api::segments::change_segment, api::segments::remove_segment,
        api::profiles::profiles, api::profiles::import_profiles, api::profiles::refresh_profiles,
        api::exports::list_exports, api::exports::add_export, api::exports::get_export,
        api::exports::change_export, api::exports::remove_export,
        api::exports::pause_export, api::exports::resume_export,
        api::runs::run_export, api::runs::cancel_export,
        api::runs::list_runs, api::runs::get_run, api::runs::run_errors, api::runs::cancel_run,
        api::audit::audit_log,
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
