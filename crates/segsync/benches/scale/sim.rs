//! The Mailchimp simulator in this process: the latency model, starting one, posting to it,
//! what its counters saw of a run, and design.md section 7's bound computed from them.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use mailchimp_sim::{CountersView, RunningSim, SimConfig};
use serde_json::{json, Value};

/// Mailchimp's plausible latency, unscaled: per request, and per member of a request.
pub const BASE_MS: f64 = 300.0;
pub const PER_ITEM_MS: f64 = 2.0;
/// Requests in flight that Mailchimp allows (the bound spreads the latency over them).
pub const IN_FLIGHT: f64 = 10.0;

pub struct Latency {
    pub base_ms: f64,
    pub per_item_ms: f64,
}

impl Latency {
    /// For the parts that measure segsync's own work, with the network out of the way.
    pub const ZERO: Latency = Latency {
        base_ms: 0.0,
        per_item_ms: 0.0,
    };

    /// Mailchimp's plausible latency times `scale`.
    pub fn scaled(scale: f64) -> Latency {
        Latency {
            base_ms: BASE_MS * scale,
            per_item_ms: PER_ITEM_MS * scale,
        }
    }
}

/// A simulator in this process whose one account has API key `key`.
pub fn start_sim(rt: &tokio::runtime::Runtime, lat: &Latency, key: &str) -> RunningSim {
    let mut config = SimConfig {
        api_keys: vec![key.to_string()],
        ..Default::default()
    };
    config.settings.latency.base_ms = lat.base_ms;
    config.settings.latency.per_item_ms = lat.per_item_ms;
    rt.block_on(RunningSim::start(config, "127.0.0.1:0"))
        .expect("the simulator starts")
}

/// What the simulator saw between two snapshots of its counters.
pub struct Seen {
    pub requests: u64,
    pub writes: u64,
    pub items: u64,
    pub in_flight_s: f64,
    pub too_many: u64,
    pub by_endpoint: BTreeMap<String, u64>,
}

/// POSTs every body to `url` with the account's key, 10 in flight; each answer's status (0
/// when there was none).
pub fn post_all(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
    key: &str,
    bodies: &[bytes::Bytes],
) -> Vec<u16> {
    rt.block_on(
        stream::iter(bodies.iter())
            .map(|b| async move {
                http.post(url)
                    .basic_auth("bench", Some(key))
                    .header("content-type", "application/json")
                    .body(b.clone())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
            .buffer_unordered(10)
            .collect(),
    )
}

pub fn seen(before: &CountersView, after: &CountersView) -> Seen {
    let mut by_endpoint = BTreeMap::new();
    for (k, v) in &after.by_endpoint {
        let d = v - before.by_endpoint.get(k).copied().unwrap_or(0);
        if d > 0 {
            by_endpoint.insert(k.trim_start_matches("/3.0").to_string(), d);
        }
    }
    Seen {
        requests: after.requests - before.requests,
        writes: after.writes - before.writes,
        items: after.items - before.items,
        in_flight_s: (after.in_flight_micros - before.in_flight_micros) as f64 / 1e6,
        too_many: after.too_many_requests - before.too_many_requests,
        by_endpoint,
    }
}

impl Seen {
    /// Design.md section 7's bound: the modelled latency of every request, over 10 in flight.
    pub fn bound_s(&self, lat: &Latency) -> f64 {
        (self.requests as f64 * lat.base_ms + self.items as f64 * lat.per_item_ms)
            / IN_FLIGHT
            / 1000.0
    }

    /// Time requests held their slots beyond the modelled latency (the simulator's handling,
    /// body transfer), as a share of the modelled time.
    pub fn overhead_share(&self, lat: &Latency) -> f64 {
        let model = self.bound_s(lat) * IN_FLIGHT;
        if model > 0.0 {
            (self.in_flight_s - model) / model
        } else {
            0.0
        }
    }

    pub fn endpoints(&self) -> String {
        self.by_endpoint
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "writes": self.writes,
            "items": self.items,
            "in_flight_seconds": self.in_flight_s,
            "too_many_requests": self.too_many,
            "by_endpoint": self.by_endpoint,
        })
    }
}
