//! `segsync serve`: the REST API (`/api`, described at `/api/openapi.json`), the web UI of
//! the seed's flow (`/`), "Authenticate with Mailchimp" (`/oauth/mailchimp/...`), the
//! scheduler, alerts, health (`/healthz`, `/readyz`) and Prometheus metrics (`/metrics`).
//!
//! Runs go through the same engine as `segsync run` ([`runs::RunManager`]); every change
//! goes through [`crate::ops`], so the CLI, the API, the UI and `segsync apply` check, refuse
//! and audit alike.
//!
//! - [`auth`]: sessions, API tokens, CSRF.
//! - [`api`]: the JSON endpoints; [`openapi`]: their description; [`extract`]: their
//!   extractors, whose refusals answer the API's error shape.
//! - [`ui`]: the server-rendered pages.
//! - [`oauth`]: the OAuth2 authorization-code flow with Mailchimp's login server.
//! - [`scheduler`]: cron and after-refresh triggers; [`alerts`]: webhook and e-mail alerts.
//! - [`metrics`]: the Prometheus registry.
//! - [`predicates`]: where and how many segment predicates run for requests.
//! - [`http`]: the HTTP/1.1 server under the router (timeouts, connection cap, shutdown).

pub mod alerts;
pub mod api;
pub mod auth;
pub mod extract;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod predicates;
pub mod runs;
pub mod scheduler;
pub mod settings;
pub mod ui;
pub mod uploads;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Serialize;

use crate::app::App;
use crate::engine::RunSettings;
use crate::ops::OpError;

/// The Mailchimp OAuth2 app of this installation ("Authenticate with Mailchimp").
#[derive(Clone)]
pub struct OAuthApp {
    /// Mailchimp's login server: `https://login.mailchimp.com` (the simulator's in tests).
    pub login_url: url::Url,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("login_url", &self.login_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// The address people reach the server at (for OAuth redirects and links in alerts);
    /// by default `http://` + the listen address.
    pub public_url: Option<url::Url>,
    pub oauth: Option<OAuthApp>,
    /// Mark the session cookie `Secure` (on by default when the public URL is https).
    pub secure_cookies: bool,
    /// The template of every run (timeout, retries, requests in flight).
    pub run_settings: RunSettings,
    /// How often the scheduler looks at the clock.
    pub scheduler_tick: Duration,
    /// How many scheduled runs this server takes on at once; further due runs wait in the
    /// queue for a free slot here or on another server sharing the state store. "Run now"
    /// is not limited.
    pub max_runs: usize,
    /// How long after a scheduled run starts the next scheduled run on the same Mailchimp
    /// account may start (zero: no staggering).
    pub stagger: Duration,
    /// How many segment predicates requests may run at once (previews, counts, checks);
    /// more wait for a free slot ([`predicates`]).
    pub predicate_slots: usize,
    /// Timeouts of slow clients, the connection cap, the shutdown grace period.
    pub http: http::HttpLimits,
    /// The SMTP relay's password the operator gave at start-up (`SEGSYNC_SMTP_PASSWORD`),
    /// used when none is stored with the alert settings.
    pub smtp_password: Option<SecretString>,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            listen,
            public_url: None,
            oauth: None,
            secure_cookies: false,
            run_settings: RunSettings::default(),
            scheduler_tick: Duration::from_millis(500),
            max_runs: 8,
            stagger: scheduler::STAGGER,
            predicate_slots: 4,
            http: http::HttpLimits::default(),
            smtp_password: None,
        }
    }
}

/// What every handler shares.
pub struct Shared {
    pub app: App,
    pub config: ServeConfig,
    /// The address actually bound (the listen address with its port resolved).
    pub local_addr: SocketAddr,
    pub runs: runs::RunManager,
    pub metrics: metrics::Metrics,
    pub predicates: predicates::PredicateSlots,
    /// Failed logins and the slots of password hashing.
    pub login: auth::guard::LoginGuard,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.config.public_url {
            Some(u) => u.as_str().trim_end_matches('/').to_string(),
            None => format!("http://{}", self.local_addr),
        }
    }
}

/// The body of every error answer under `/api` (`Content-Type: application/json`), whoever
/// refuses: a handler, an extractor (a body that is not JSON, a parameter of the wrong
/// type), the router (no such route, another method).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid` (400, 422), `unauthenticated` (401), `forbidden`, `csrf`
    /// (403), `not_found` (404), `method_not_allowed` (405), `conflict` (409), `too_large`
    /// (413), `unsupported_media_type` (415), `too_many_attempts` (429 from login, with
    /// `Retry-After`), `rate_limited` (429), `internal` (500), `mailchimp` (502, or 400 from
    /// Mailchimp's login server), `busy` (503, with `Retry-After`).
    pub error: String,
    /// What was wrong, for a person.
    pub message: String,
}

/// An error answer: a status and a message a person can act on.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same answer with `Retry-After`.
    pub fn retry_after(mut self, wait: Duration) -> ApiError {
        self.retry_after = Some(wait);
        self
    }

    /// `Retry-After`'s whole seconds: the wait rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .map(|s| s.max(1))
    }

    /// A failure that is not the caller's: logged, answered without details.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; its log says why",
        )
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            OpError::NotFound(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", without_cli_hint(&m))
            }
            OpError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            OpError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            OpError::Mailchimp(m) => ApiError::new(StatusCode::BAD_GATEWAY, "mailchimp", m),
            OpError::Internal(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

/// A message of the state store without the hint it gives command-line users (`no export
/// named "x" (see `segsync export list`)`): people on the web UI or the API have lists of
/// their own.
fn without_cli_hint(m: &str) -> String {
    match m.find(" (see `segsync ") {
        Some(i) if m.ends_with("`)") => m[..i].to_string(),
        _ => m.to_string(),
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> Self {
        OpError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.retry_after_secs();
        let mut r = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = retry {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the state store answers.
async fn readyz(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    match app.app.state().and_then(|s| Ok(s.integrity_check()?)) {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store does not answer",
            )
                .into_response()
        }
    }
}

/// The paths outside `/api/` whose answers get [`api_headers`]' headers too: plain text a
/// browser must not take for a page, and states a cache must not replay.
const PROTECTED_PLAIN: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Headers of every answer under `/api/` (JSON, the errors CSV, refusals, even a path no
/// route matches) and of `/healthz`, `/readyz` and `/metrics`: a browser must not guess
/// another type than the one declared (`nosniff`: a JSON answer holding markup from the data
/// is never run as a page) nor keep a copy of answers that hold personal data and tokens, or
/// a health state that is stale a second later (`no-store`).
async fn api_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || PROTECTED_PLAIN.contains(&path);
    let mut res = next.run(req).await;
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was not read: the connection cannot carry another request,
        // and a client that does not hear so would send its next one into a closed socket.
        res.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    if api {
        res = problem_json(res).await;
        let h = res.headers_mut();
        h.insert(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        );
        h.insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    res
}

/// An error answer under `/api/` that is not JSON yet (one that no handler or extractor of
/// the API made: a body over the size limit read as bytes, a refusal of a layer) becomes
/// the API's error shape, its text the message; its status and other headers are kept.
async fn problem_json(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: extract::code_of(status).to_string(),
        message,
    })
    .unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// No route has this path: under `/api/`, a JSON 404 that says so; elsewhere the page that
/// says so.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no API route {} (the API is described at /api/openapi.json)",
                uri.path()
            ),
        )
        .into_response()
    } else {
        ui::page_not_found().await
    }
}

/// The route exists but not with this method: under `/api/`, a JSON 405 (the router adds
/// `Allow` with the methods it has).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} does not take {method} (see its Allow header)",
                uri.path()
            ),
        )
        .into_response()
    } else {
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    }
}

/// Every route of the server.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .merge(settings::routes())
        .merge(openapi::routes())
        .merge(oauth::routes())
        .merge(metrics::routes())
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(api_headers))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track_requests,
        ))
        .with_state(app)
}

/// A server that is listening: its address, and the future that serves until `shutdown`
/// resolves, then stops the runs at their next checkpoint and returns.
pub struct Server {
    pub local_addr: SocketAddr,
    pub app: AppState,
    listener: tokio::net::TcpListener,
}

impl Server {
    /// Binds the listen address and prepares the shared state.
    pub async fn bind(app: App, config: ServeConfig) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let local_addr = listener.local_addr()?;
        // The state store is created (and migrated) before the first request.
        app.state()?;
        let runs = runs::RunManager::new(app.clone(), config.run_settings.clone());
        let app = Arc::new(Shared {
            app,
            predicates: predicates::PredicateSlots::new(config.predicate_slots),
            config,
            local_addr,
            runs,
            metrics: metrics::Metrics::new(),
            login: auth::guard::LoginGuard::new(),
        });
        app.login.warm_up();
        Ok(Server {
            local_addr,
            app,
            listener,
        })
    }

    /// Serves until `shutdown`; then lets running exports reach their next checkpoint.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.app.clone();
        metrics::spawn_listener(&app);
        alerts::spawn(&app);
        let scheduler = scheduler::spawn(&app);
        let resumed = app.runs.resume_interrupted().await;
        if !resumed.is_empty() {
            tracing::info!(exports = ?resumed, "resumed interrupted runs");
        }
        // At the signal, runs stop starting and head for their checkpoint while the HTTP
        // requests in progress drain, for the grace period at most.
        let runs = app.runs.clone();
        let shutdown = async move {
            shutdown.await;
            runs.begin_shutdown();
        };
        http::serve(
            self.listener,
            router(app.clone()),
            &app.config.http,
            shutdown,
        )
        .await;
        scheduler.abort();
        tracing::info!("shutting down: running exports stop at their next checkpoint");
        app.runs.shutdown().await;
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when
/// the future is first polled: a SIGTERM that arrives once the server answers (it did, in a
/// test, before the serving task had polled its shutdown future) must stop it gracefully, not
/// kill it by the signal's default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
