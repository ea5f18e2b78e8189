//! Prometheus metrics at `/metrics`: runs by outcome, records sent and refused, Mailchimp
//! requests by endpoint and retries by cause, runs in progress, each Mailchimp account's
//! connection budget (cap, current budget, slots in use, attempts and refusals for too many
//! connections, and their ratio: the throttle rate), and the latency of the server's own
//! requests by route.

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::runs::{Event, RunEnded};
use super::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    export: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    export: String,
    /// `sent` (created, updated), `refused` (bad record), `failed` (Mailchimp said no).
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    /// The Mailchimp account id (a closed set: the accounts of the installation's connections).
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    /// `429`, `5xx`, `timeout`, `connection`.
    cause: String,
}

/// The labels of a request, from closed sets only: whoever sends a request chooses its
/// method and path, and every new label value is a new series kept for the life of the
/// process, so a label taken from the request as it came would let anybody grow `/metrics`
/// (and the server's memory) without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// One of [`METHODS`], else `other`.
    method: &'static str,
    /// The template of the route that matched (`/api/runs/{id}`), else `other`.
    route: String,
    status: u16,
}

/// The methods that get a label of their own.
static METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

/// A request's method as a label: a known one, else `other`.
fn method_label(m: &Method) -> &'static str {
    METHODS
        .iter()
        .find(|k| *k == m)
        .map_or(OTHER, Method::as_str)
}

/// The label of a method or a path outside the closed sets.
const OTHER: &str = "other";

/// The server's metric families.
pub struct Metrics {
    registry: Mutex<Registry>,
    runs: Family<RunLabels, Counter>,
    records: Family<RecordLabels, Counter>,
    mailchimp_requests: Family<EndpointLabels, Counter>,
    mailchimp_retries: Family<RetryLabels, Counter>,
    runs_active: Gauge,
    http: Family<HttpLabels, Histogram>,
    budgets: BudgetMetrics,
}

/// Each account's connection budget, read from the process's budgets when `/metrics` is read.
#[derive(Default)]
struct BudgetMetrics {
    cap: Family<AccountLabels, Gauge>,
    budget: Family<AccountLabels, Gauge>,
    in_use: Family<AccountLabels, Gauge>,
    attempts: Family<AccountLabels, Counter>,
    throttled: Family<AccountLabels, Counter>,
    throttle_ratio: Family<AccountLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl BudgetMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "mailchimp_slot_cap",
            "Configured connection budget of each Mailchimp account (its connections' slot budget)",
            self.cap.clone(),
        );
        registry.register(
            "mailchimp_slot_budget",
            "Requests in flight each Mailchimp account allows now: the cap, lowered after refusals for too many connections and grown back on success",
            self.budget.clone(),
        );
        registry.register(
            "mailchimp_slots_in_use",
            "Connection slots of each Mailchimp account held by this process now",
            self.in_use.clone(),
        );
        registry.register(
            "mailchimp_slot_attempts",
            "Requests sent in a slot of each Mailchimp account's budget, retries included",
            self.attempts.clone(),
        );
        registry.register(
            "mailchimp_throttled",
            "Requests Mailchimp refused for too many connections (429 or bodyless 403), by account",
            self.throttled.clone(),
        );
        registry.register(
            "mailchimp_throttle_ratio",
            "Share of each account's requests Mailchimp refused for too many connections, since the process started",
            self.throttle_ratio.clone(),
        );
    }

    /// Brings the series up to the budgets' state now.
    fn refresh(&self) {
        for v in crate::mailchimp::Budgets::shared().views() {
            let l = AccountLabels {
                account: v.account.clone(),
            };
            self.cap.get_or_create(&l).set(v.cap as i64);
            self.budget.get_or_create(&l).set(v.budget as i64);
            self.in_use.get_or_create(&l).set(v.in_use as i64);
            let a = self.attempts.get_or_create(&l);
            a.inc_by(v.attempts.saturating_sub(a.get()));
            let t = self.throttled.get_or_create(&l);
            t.inc_by(v.throttled.saturating_sub(t.get()));
            let ratio = if v.attempts > 0 {
                v.throttled as f64 / v.attempts as f64
            } else {
                0.0
            };
            self.throttle_ratio.get_or_create(&l).set(ratio);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("segsync");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Runs finished, by export and outcome", runs.clone());
        let records = Family::<RecordLabels, Counter>::default();
        registry.register(
            "records",
            "Records of finished runs: sent to Mailchimp, refused before sending, failed in Mailchimp",
            records.clone(),
        );
        let mailchimp_requests = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "mailchimp_requests",
            "HTTP requests sent to Mailchimp, retries included, by endpoint",
            mailchimp_requests.clone(),
        );
        let mailchimp_retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "mailchimp_retries",
            "Mailchimp requests retried, by cause (429, 5xx, timeout, connection)",
            mailchimp_retries.clone(),
        );
        let runs_active = Gauge::default();
        registry.register("runs_active", "Runs in progress", runs_active.clone());
        let http = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 12))
        });
        registry.register(
            "http_request_duration_seconds",
            "Latency of the server's HTTP requests, by method, route and status",
            http.clone(),
        );
        let budgets = BudgetMetrics::default();
        budgets.register(&mut registry);
        Metrics {
            budgets,
            registry: Mutex::new(registry),
            runs,
            records,
            mailchimp_requests,
            mailchimp_retries,
            runs_active,
            http,
        }
    }

    fn run_started(&self) {
        self.runs_active.inc();
    }

    fn run_ended(&self, r: &RunEnded) {
        self.runs_active.dec();
        self.runs
            .get_or_create(&RunLabels {
                export: r.export.clone(),
                outcome: r.outcome.as_str().to_string(),
            })
            .inc();
        let c = &r.counts;
        for (result, n) in [
            ("sent", c.created + c.updated),
            ("refused", c.refused),
            ("failed", c.failed),
        ] {
            self.records
                .get_or_create(&RecordLabels {
                    export: r.export.clone(),
                    result: result.into(),
                })
                .inc_by(n);
        }
        if let Some(s) = &r.client {
            for e in &s.by_endpoint {
                self.mailchimp_requests
                    .get_or_create(&EndpointLabels {
                        endpoint: e.endpoint.as_str().to_string(),
                    })
                    .inc_by(e.requests);
            }
            for (cause, n) in [
                ("429", s.retries.too_many_requests),
                ("5xx", s.retries.server_error),
                ("timeout", s.retries.timeout),
                ("connection", s.retries.connection),
            ] {
                self.mailchimp_retries
                    .get_or_create(&RetryLabels {
                        cause: cause.into(),
                    })
                    .inc_by(n);
            }
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        self.budgets.refresh();
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Follows the runs' events into the counters.
pub fn spawn_listener(app: &AppState) {
    let mut events = app.runs.subscribe();
    let app = app.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::RunStarted { .. }) => app.metrics.run_started(),
                Ok(Event::RunEnded(r)) => app.metrics.run_ended(&r),
                Ok(Event::ProfilesRefreshed) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "metrics missed run events")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Times every request, labelled by its route's template (not its path: no ids in labels,
/// and a path no route matches is `other`) and its method (`other` unless a known one).
pub async fn track_requests(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| OTHER.to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
    let t = Instant::now();
    let response = next.run(req).await;
    app.metrics
        .http
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(t.elapsed().as_secs_f64());
    response
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}
