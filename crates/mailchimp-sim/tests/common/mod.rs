//! What the simulator's HTTP tests share: a simulator started in-process on a free port, and a
//! small client that speaks to it as Mailchimp clients do (HTTP Basic, JSON bodies).
#![allow(dead_code)]

pub mod spec;

use mailchimp_sim::config::Profile;
use mailchimp_sim::{RunningSim, SimConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// A running simulator with one account and one audience.
pub struct Env {
    pub sim: RunningSim,
    pub key: String,
    pub list_id: String,
    pub http: reqwest::Client,
}

/// A simulator with the default profile, whatever `MAILCHIMP_SIM_PROFILE` says: these tests
/// are the specification of the default readings (`tests/api/variants.rs` sets the others).
pub async fn start() -> Env {
    start_with(SimConfig::for_profile(Profile::Default)).await
}

pub async fn start_with(config: SimConfig) -> Env {
    let sim = RunningSim::start(config, "127.0.0.1:0")
        .await
        .expect("simulator starts");
    let key = sim.add_account();
    let list_id = sim.create_list(&key, "Newsletter", false);
    Env {
        sim,
        key,
        list_id,
        http: reqwest::Client::new(),
    }
}

/// An answer: status, headers and the body parsed as JSON (Null when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.api_url(), path)
    }

    /// A request to `/3.0{path}` with this account's key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(&self.key, method, path, body).await
    }

    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth("anystring", Some(key));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.expect("request reaches the simulator")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// `/_sim{path}`: the admin API.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}/_sim{}", self.sim.base_url(), path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.expect("request reaches the simulator")).await
    }

    pub fn members_path(&self) -> String {
        format!("/lists/{}/members", self.list_id)
    }

    /// Adds a subscribed member with `PUT` and returns its subscriber hash.
    pub async fn add_member(&self, email: &str, status: &str) -> String {
        let hash = mailchimp_sim::subscriber_hash(email);
        let a = self
            .put(
                &format!("{}/{hash}", self.members_path()),
                json!({"email_address": email, "status_if_new": status}),
            )
            .await;
        assert_eq!(a.status, 200, "adding {email}: {}", a.body);
        hash
    }
}

pub async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body arrives");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer {
        status,
        headers,
        body,
    }
}
