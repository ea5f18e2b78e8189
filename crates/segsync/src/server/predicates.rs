//! Segment predicates evaluated for requests (previews, counts, the checks of adding or
//! changing a segment): never on the async workers that serve every request, where two slow
//! predicates made `/healthz` wait seconds, but on blocking threads, at most
//! [`ServeConfig::predicate_slots`](super::ServeConfig) at once. A request that finds every
//! slot busy waits up to [`WAIT`] for one, then gets 503 saying so. Each predicate's memory is
//! bounded where it runs (SQLite: the longest value it may make; PostgreSQL: `work_mem` and
//! the statement timeout), so the slots bound the memory predicates take together.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use super::{ApiError, AppState};
use crate::state::SegmentRecord;

/// How long a request waits for a free slot before it is answered 503.
pub const WAIT: Duration = Duration::from_secs(10);

/// The slots of one server.
pub struct PredicateSlots {
    slots: Arc<Semaphore>,
    size: usize,
}

impl PredicateSlots {
    pub fn new(size: usize) -> PredicateSlots {
        let size = size.max(1);
        PredicateSlots {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Runs `f`, which evaluates predicates, on a blocking thread once a slot is free. The
    /// slot stays taken until `f` returns, even when the request is given up meanwhile.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = tokio::time::timeout(WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| self.busy())?
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            f()
        })
        .await
        .map_err(ApiError::internal)
    }

    fn busy(&self) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "the server is busy: {} segment queries are running (at most {} at once, \
                 segsync serve --predicate-slots) and none finished within {} s; try again in \
                 a moment",
                self.size,
                self.size,
                WAIT.as_secs()
            ),
        )
    }
}

/// Each segment with its member count now (or why it cannot be counted), counted in one of
/// the server's predicate slots, off the async runtime (a predicate may take seconds over a
/// million profiles).
pub async fn counted(
    state: &AppState,
    segments: Vec<SegmentRecord>,
) -> Result<Vec<(SegmentRecord, Result<u64, String>)>, ApiError> {
    let app = state.app.clone();
    state
        .predicates
        .run(move || {
            // One store per source, opened once.
            let mut stores = std::collections::HashMap::new();
            segments
                .into_iter()
                .map(|s| {
                    let store = stores.entry(s.source.clone()).or_insert_with(|| {
                        app.profiles_of(s.source.as_deref())
                            .map_err(|e| format!("{e:#}"))
                    });
                    let count = match store {
                        Ok(p) => p
                            .preview(&s.predicate, 0)
                            .map(|p| p.count)
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    (s, count)
                })
                .collect()
        })
        .await
}
