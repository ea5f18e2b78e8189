//! mailchimp-sim: an offline stand-in for the Mailchimp Marketing API v3, faithful enough that
//! what works against it works against Mailchimp, and fast enough that a benchmark of a client
//! measures the client.
//!
//! - [`config`]: settings (limits, latency model, faults, and the [`config::Variants`] of
//!   Mailchimp's behaviour gathered in a [`config::Profile`]) and what the simulator starts
//!   with. `MAILCHIMP_SIM_PROFILE=pessimistic` makes [`SimConfig::default`] take every
//!   reading that is harder on a sync.
//! - [`rules`]: Mailchimp's rules as pure functions (addresses, statuses, merge values).
//! - [`store`]: the in-memory state of accounts, audiences, members, tags and batches.
//! - [`render`]: resources in the shapes of the API spec.
//! - [`http`]: the `/3.0` API, the OAuth2 login server and the `/_sim` admin API.
//!
//! Start one in-process on a free port:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = mailchimp_sim::RunningSim::start(mailchimp_sim::SimConfig::default(), "127.0.0.1:0").await?;
//! let key = sim.add_account();
//! println!("API at {} with key {key}", sim.api_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod http;
pub mod render;
pub mod rules;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use tokio::net::TcpListener;

pub use config::{OAuthClient, Settings, SimConfig};
pub use http::admin::{ListView, MemberView, TagView};
pub use rules::{subscriber_hash, Status};
pub use store::{CountersView, Sim};

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = http::app(sim);
    let service = axum::ServiceExt::<Request>::into_make_service(app);
    // Small answers must not wait for delayed ACKs.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A simulator running in this process, on its own port.
pub struct RunningSim {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// Starts a simulator on `addr` (`127.0.0.1:0` picks a free port).
    pub async fn start(config: SimConfig, addr: &str) -> std::io::Result<RunningSim> {
        let sim = Sim::new(config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, sim.clone(), async {
            let _ = stopped.await;
        }));
        Ok(RunningSim {
            addr,
            sim,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the login server (`/oauth2/...`) and admin API (`/_sim/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/3.0`: what a client uses instead of `https://<dc>.api.mailchimp.com/3.0`.
    pub fn api_url(&self) -> String {
        format!("http://{}/3.0", self.addr)
    }

    pub fn sim(&self) -> &Arc<Sim> {
        &self.sim
    }

    /// Adds an account and returns its new API key.
    pub fn add_account(&self) -> String {
        self.sim
            .add_account(None)
            .expect("a generated key is valid")
            .1
    }

    /// Creates an audience in the account of `api_key` and returns its id.
    pub fn create_list(&self, api_key: &str, name: &str, double_optin: bool) -> String {
        let account = self
            .sim
            .account_for(api_key)
            .expect("the key belongs to an account");
        let v = http::admin::new_list(&account, name, double_optin);
        v["id"].as_str().expect("a list has an id").to_string()
    }

    /// Everything audience `list_id` holds.
    pub fn list_view(&self, list_id: &str) -> Option<ListView> {
        http::admin::list_view(&self.sim, list_id, true)
    }

    pub fn counters(&self) -> CountersView {
        self.sim.counters.view()
    }

    pub fn set_settings(&self, settings: Settings) -> Result<(), String> {
        http::admin::apply_settings(&self.sim, settings)
    }

    pub fn settings(&self) -> Settings {
        self.sim.settings.read().clone()
    }

    /// Ends the "signed up to a lot of lists very recently" refusal of every address refused
    /// so far (by `variants.recent_signups_rate`), as the wait before a user's next run
    /// would; see [`store::RecentSignups::lapse`].
    pub fn lapse_recent_signups(&self) {
        self.sim.recent_signups.lapse();
    }

    /// Whether a new member with address `email` would now be refused as "signed up to a
    /// lot of lists very recently", by the settings in force (asking counts as no attempt).
    pub fn refuses_recent_signup(&self, email: &str) -> bool {
        let s = self.sim.settings.read();
        self.sim
            .recent_signups
            .would_refuse(email, &s.variants, s.faults.seed)
    }

    /// How many addresses `variants.recent_signups_rate` refused so far.
    pub fn recent_signups_refused(&self) -> usize {
        self.sim.recent_signups.refused()
    }

    /// Stops serving and waits until the port is closed.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop_now();
    }
}
