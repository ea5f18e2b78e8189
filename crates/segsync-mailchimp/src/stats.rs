//! Live counters of the client, kept in atomics so that a progress bar or a metrics endpoint
//! can read them at any moment without locks: requests sent, in flight now and at most,
//! retries by cause, and per endpoint.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use crate::retry::RetryCause;

/// The Mailchimp endpoints the client calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Ping,
    Root,
    ListLists,
    GetList,
    ListMergeFields,
    CreateMergeField,
    ListMembers,
    GetMember,
    BatchUpsert,
    ListTags,
    CreateTag,
    UpdateTagMembers,
    ArchiveMember,
    UpdateMember,
    DeleteMemberPermanently,
    DeleteTag,
    DeleteMergeField,
}

impl Endpoint {
    pub const ALL: [Endpoint; 17] = [
        Endpoint::Ping,
        Endpoint::Root,
        Endpoint::ListLists,
        Endpoint::GetList,
        Endpoint::ListMergeFields,
        Endpoint::CreateMergeField,
        Endpoint::ListMembers,
        Endpoint::GetMember,
        Endpoint::BatchUpsert,
        Endpoint::ListTags,
        Endpoint::CreateTag,
        Endpoint::UpdateTagMembers,
        Endpoint::ArchiveMember,
        Endpoint::UpdateMember,
        Endpoint::DeleteMemberPermanently,
        Endpoint::DeleteTag,
        Endpoint::DeleteMergeField,
    ];

    /// `METHOD /route`, as Mailchimp's docs (and the simulator's counters) name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Ping => "GET /ping",
            Endpoint::Root => "GET /",
            Endpoint::ListLists => "GET /lists",
            Endpoint::GetList => "GET /lists/{list_id}",
            Endpoint::ListMergeFields => "GET /lists/{list_id}/merge-fields",
            Endpoint::CreateMergeField => "POST /lists/{list_id}/merge-fields",
            Endpoint::ListMembers => "GET /lists/{list_id}/members",
            Endpoint::GetMember => "GET /lists/{list_id}/members/{subscriber_hash}",
            Endpoint::BatchUpsert => "POST /lists/{list_id}",
            Endpoint::ListTags => "GET /lists/{list_id}/segments",
            Endpoint::CreateTag => "POST /lists/{list_id}/segments",
            Endpoint::UpdateTagMembers => "POST /lists/{list_id}/segments/{segment_id}",
            Endpoint::ArchiveMember => "DELETE /lists/{list_id}/members/{subscriber_hash}",
            Endpoint::UpdateMember => "PATCH /lists/{list_id}/members/{subscriber_hash}",
            Endpoint::DeleteMemberPermanently => {
                "POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent"
            }
            Endpoint::DeleteTag => "DELETE /lists/{list_id}/segments/{segment_id}",
            Endpoint::DeleteMergeField => "DELETE /lists/{list_id}/merge-fields/{merge_id}",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Default)]
struct PerEndpoint {
    calls: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
}

/// The client's counters. Share it (`Client::stats()` gives an `Arc`) and read it any time.
#[derive(Default)]
pub struct ClientStats {
    calls: AtomicU64,
    requests_sent: AtomicU64,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    retries: [AtomicU64; 4],
    failures: AtomicU64,
    throttled: AtomicU64,
    slot_micros: AtomicU64,
    endpoints: [PerEndpoint; Endpoint::ALL.len()],
}

impl std::fmt::Debug for ClientStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.snapshot(), f)
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl ClientStats {
    /// HTTP requests sent to Mailchimp, retries included.
    pub fn requests_sent(&self) -> u64 {
        load(&self.requests_sent)
    }

    /// Requests on the wire right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The most requests that were ever on the wire at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    /// Calls waiting for an in-flight slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Retries made for `cause`.
    pub fn retries(&self, cause: RetryCause) -> u64 {
        load(&self.retries[cause.index()])
    }

    /// Retries for every cause.
    pub fn total_retries(&self) -> u64 {
        self.retries.iter().map(load).sum()
    }

    /// Attempts Mailchimp refused for too many connections (429, or a bodyless 403).
    pub fn throttled(&self) -> u64 {
        load(&self.throttled)
    }

    /// Slot time held in the account's connection budget, summed over attempts.
    pub fn slot_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(load(&self.slot_micros))
    }

    /// Everything at once, for a report or JSON.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: load(&self.calls),
            requests_sent: self.requests_sent(),
            waiting: self.waiting(),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight(),
            failures: load(&self.failures),
            throttled: self.throttled(),
            slot_ms: self.slot_time().as_millis() as u64,
            retries: RetryCounts {
                too_many_requests: self.retries(RetryCause::TooManyRequests),
                server_error: self.retries(RetryCause::ServerError),
                timeout: self.retries(RetryCause::Timeout),
                connection: self.retries(RetryCause::Connection),
            },
            by_endpoint: Endpoint::ALL
                .iter()
                .map(|&e| {
                    let c = &self.endpoints[e.index()];
                    EndpointStats {
                        endpoint: e,
                        calls: load(&c.calls),
                        requests: load(&c.requests),
                        retries: load(&c.retries),
                        failures: load(&c.failures),
                    }
                })
                .filter(|s| s.calls > 0)
                .collect(),
        }
    }

    pub(crate) fn call_started(&self, e: Endpoint) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.endpoints[e.index()]
            .calls
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call_failed(&self, e: Endpoint) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.endpoints[e.index()]
            .failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn throttled_once(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn slot_held(&self, held: std::time::Duration) {
        self.slot_micros
            .fetch_add(held.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self, e: Endpoint, cause: RetryCause) {
        self.retries[cause.index()].fetch_add(1, Ordering::Relaxed);
        self.endpoints[e.index()]
            .retries
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call waiting for a slot until the guard drops.
    pub(crate) fn waiting_guard(&self) -> Gauge<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Gauge(&self.waiting)
    }

    /// Counts one request sent and on the wire until the guard drops.
    pub(crate) fn sending(&self, e: Endpoint) -> Gauge<'_> {
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        self.endpoints[e.index()]
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Gauge(&self.in_flight)
    }
}

/// Decrements its gauge when dropped, however the request ends (a cancelled future too).
pub(crate) struct Gauge<'a>(&'a AtomicUsize);

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Requests asked for (each page of a paged read is one), retries not counted.
    pub calls: u64,
    /// HTTP requests sent, retries included.
    pub requests_sent: u64,
    pub waiting: usize,
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// Calls that ended in an error.
    pub failures: u64,
    /// Attempts refused for too many connections (429, or a bodyless 403).
    pub throttled: u64,
    /// Milliseconds of connection-budget slots held, summed over attempts.
    pub slot_ms: u64,
    pub retries: RetryCounts,
    /// Endpoints called at least once.
    pub by_endpoint: Vec<EndpointStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryCounts {
    pub too_many_requests: u64,
    pub server_error: u64,
    pub timeout: u64,
    pub connection: u64,
}

impl RetryCounts {
    pub fn total(&self) -> u64 {
        self.too_many_requests + self.server_error + self.timeout + self.connection
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub endpoint: Endpoint,
    pub calls: u64,
    pub requests: u64,
    pub retries: u64,
    pub failures: u64,
}
