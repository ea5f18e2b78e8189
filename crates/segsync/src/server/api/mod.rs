//! The JSON REST API under `/api`. Every change goes through [`crate::ops`] (checks, roles,
//! audit); reads filter by role here. No answer ever holds a secret.
//!
//! | role | may |
//! | --- | --- |
//! | viewer | read exports, runs, the sizes of suppression lists and remembered refusals (not their entries), (their counts: not the records they could not send, which name people), segments (their counts), database profile sources (without their URL's password) and their status, the connections shared with contributors |
//! | contributor | also: segments; exports' suppression lists and remembered refusals (on shared connections); the records runs could not send; exports on shared connections (add, edit, preview a run, run, cancel, pause, remove); profile refresh |
//! | admin | everything: the installation's suppression list, connections, database profile sources, users, tokens of others, profile imports, alert settings, the audit log |
//!
//! One file per resource: [`users`] (and tokens), [`connections`], [`segments`],
//! [`profiles`], [`sources`] (database profile sources), [`exports`] (and [`preview`], a run's plan), [`runs`], [`audit`], [`suppressions`] (and remembered refusals). Alert settings are in
//! [`crate::server::settings`]; login and sessions in [`crate::server::auth`].

pub mod audit;
pub mod connections;
pub mod exports;
pub mod preview;
pub mod profiles;
pub mod runs;
pub mod segments;
pub mod sources;
pub mod suppressions;
pub mod uploads;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::auth;
use super::{ApiError, AppState};

// The web UI shares these with the API, so that both check and act alike.
pub use connections::remove_connection_now;
pub use exports::remove_export_now;
pub use runs::{cancel, start_run};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(auth::api_login))
        .route("/api/logout", post(auth::api_logout))
        .route("/api/me", get(auth::api_me))
        .route("/api/users", get(users::list_users).post(users::add_user))
        .route(
            "/api/users/{name}",
            axum::routing::patch(users::change_user).delete(users::remove_user),
        )
        .route(
            "/api/tokens",
            get(users::list_tokens).post(users::create_token),
        )
        .route(
            "/api/tokens/{id}",
            axum::routing::delete(users::revoke_token),
        )
        .route(
            "/api/connections",
            get(connections::list_connections).post(connections::add_connection),
        )
        .route(
            "/api/connections/{name}",
            get(connections::get_connection)
                .patch(connections::change_connection)
                .delete(connections::remove_connection),
        )
        .route(
            "/api/connections/{name}/test",
            post(connections::test_connection),
        )
        .route(
            "/api/connections/{name}/check",
            post(connections::check_connection),
        )
        .route(
            "/api/connections/{name}/audiences",
            get(connections::audiences),
        )
        .route(
            "/api/segments",
            get(segments::list_segments).post(segments::add_segment),
        )
        .route(
            "/api/segments/{name}",
            get(segments::get_segment)
                .put(segments::change_segment)
                .delete(segments::remove_segment),
        )
        .route(
            "/api/sources",
            get(sources::list_sources).post(sources::add_source),
        )
        .route(
            "/api/sources/{name}",
            get(sources::get_source).delete(sources::remove_source),
        )
        .route("/api/segment-preview", post(segments::preview_draft))
        .route("/api/export-sizes", post(segments::export_sizes))
        .route("/api/profiles", get(profiles::profiles))
        .route("/api/profiles/columns", get(segments::column_stats))
        .route(
            "/api/profiles/import",
            post(profiles::import_profiles).layer(DefaultBodyLimit::max(4 << 30)),
        )
        .route("/api/profiles/refresh", post(profiles::refresh_profiles))
        .route(
            "/api/profiles/uploads",
            post(uploads::upload)
                .layer(DefaultBodyLimit::max(crate::server::uploads::UPLOAD_LIMIT)),
        )
        .route(
            "/api/profiles/uploads/{id}",
            get(uploads::get_upload).delete(uploads::discard),
        )
        .route(
            "/api/profiles/uploads/{id}/preview",
            post(uploads::repreview),
        )
        .route("/api/profiles/uploads/{id}/commit", post(uploads::commit))
        .route(
            "/api/exports",
            get(exports::list_exports).post(exports::add_export),
        )
        .route(
            "/api/exports/{name}",
            get(exports::get_export)
                .put(exports::change_export)
                .delete(exports::remove_export),
        )
        .route("/api/exports/{name}/pause", post(exports::pause_export))
        .route("/api/exports/{name}/resume", post(exports::resume_export))
        .route("/api/exports/{name}/plan", post(preview::plan_export))
        .route("/api/exports/{name}/runs", post(runs::run_export))
        .route("/api/exports/{name}/cancel", post(runs::cancel_export))
        .route("/api/runs", get(runs::list_runs))
        .route("/api/runs/{id}", get(runs::get_run))
        .route("/api/runs/{id}/errors", get(runs::run_errors))
        .route("/api/runs/{id}/changes", get(runs::run_changes))
        .route("/api/runs/{id}/cancel", post(runs::cancel_run))
        .route("/api/audit", get(audit::audit_log))
        .route(
            "/api/suppressions",
            get(suppressions::installation_list).post(suppressions::installation_add),
        )
        .route(
            "/api/suppressions/{kind}/{value}",
            axum::routing::delete(suppressions::installation_remove),
        )
        .route(
            "/api/exports/{name}/suppressions",
            get(suppressions::export_list).post(suppressions::export_add),
        )
        .route(
            "/api/exports/{name}/suppressions/{kind}/{value}",
            axum::routing::delete(suppressions::export_remove),
        )
        .route("/api/exports/{name}/refusals", get(suppressions::refusals))
        .route(
            "/api/exports/{name}/refusals/{email}",
            axum::routing::delete(suppressions::forget_refusal),
        )
        .route(
            "/api/exports/{name}/refusals/{email}/suppress",
            post(suppressions::suppress_refusal),
        )
}

fn state_of(app: &AppState) -> ApiResult<crate::state::StateStore> {
    app.app.state().map_err(ApiError::internal)
}
