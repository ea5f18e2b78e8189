//! An installation as a running process sees it: its [`Home`] folder (paths) and its state
//! store ([`StateSource`]), both chosen once where the process starts (the command line's
//! `main`, `segsync serve`) and handed down to every operation, which opens what it needs
//! from them.
//!
//! The state store can live elsewhere than the home folder: `--state URL` or `SEGSYNC_STATE`
//! (`sqlite:PATH` or `postgres://...`). With PostgreSQL, several `segsync serve` processes on
//! several machines share it, so an export's run lock is a lease in the database instead of
//! a lock file ([`crate::locks`]).

use std::path::{Path, PathBuf};

use crate::home::Home;
use crate::locks::{self, LeaseGuard};
use crate::profiles::ProfileStore;
use crate::secrets::MasterKey;
use crate::state::{StateSource, StateStore};

pub use crate::home::HOME_ENV;
pub use crate::locks::{lease_ttl, worker_id, ExportLock, LEASE_ENV, LEASE_TTL};

/// Where the state store is, when not in the home folder: `sqlite:PATH` or `postgres://...`.
pub const STATE_ENV: &str = "SEGSYNC_STATE";

/// Lets outbound requests (Mailchimp base URLs, alert webhooks) go to loopback, private and
/// link-local addresses: for an installation that talks to a local simulator or test server.
pub const PRIVATE_TARGETS_ENV: &str = "SEGSYNC_ALLOW_PRIVATE_TARGETS";

#[derive(Clone)]
pub struct App {
    home: Home,
    state: StateSource,
    /// Outbound requests may go to non-public addresses ([`PRIVATE_TARGETS_ENV`]).
    private_targets: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("home", &self.home.root())
            .field("state", &self.state_url())
            .field("private_targets", &self.private_targets)
            .finish()
    }
}

impl App {
    /// The home folder from the flag, the environment or the platform; the state store from
    /// `state_url`, else `SEGSYNC_STATE`, else the home folder's file.
    pub fn resolve(home: Option<PathBuf>, state_url: Option<String>) -> anyhow::Result<App> {
        let home = Home::resolve(home)?;
        let url = state_url.or_else(|| {
            std::env::var(STATE_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty())
        });
        App::with_state(home, url)
    }

    /// The installation at `root`, its state in `root/state.sqlite`.
    pub fn at(root: PathBuf) -> anyhow::Result<App> {
        App::with_state(Home::at(root)?, None)
    }

    /// The installation of `home` with its state store at `url` (`None`: the home's file).
    pub fn with_state(home: Home, url: Option<String>) -> anyhow::Result<App> {
        let state = match url {
            Some(u) => StateSource::parse(&u)?,
            None => StateSource::sqlite(&home.state_file()),
        };
        Ok(App {
            home,
            state,
            private_targets: false,
        })
    }

    /// The same installation, its outbound requests allowed to reach loopback, private and
    /// link-local addresses or not (`segsync --allow-private-targets`).
    pub fn with_private_targets(mut self, allow: bool) -> App {
        self.private_targets = allow;
        self
    }

    /// Whether outbound requests may reach non-public addresses (see
    /// [`segsync_mailchimp::targets`]).
    pub fn private_targets(&self) -> bool {
        self.private_targets
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    pub fn root(&self) -> &Path {
        self.home.root()
    }

    /// A connection to the state store (its migrations applied on the first one).
    pub fn state(&self) -> anyhow::Result<StateStore> {
        Ok(self.state.open()?)
    }

    /// Where the state store is, chosen at start.
    pub fn state_source(&self) -> &StateSource {
        &self.state
    }

    /// The state store's URL, password hidden.
    pub fn state_url(&self) -> String {
        self.state.location()
    }

    /// The state store's URL as given (password included: never print it).
    pub(crate) fn state_location(&self) -> String {
        self.state.url().to_string()
    }

    /// Whether the state store is PostgreSQL (shared by several processes, maybe on several
    /// machines).
    pub fn shared_state(&self) -> bool {
        self.state.is_shared()
    }

    pub fn profiles(&self) -> anyhow::Result<ProfileStore> {
        Ok(ProfileStore::open(&self.home.profiles_file())?)
    }

    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        Ok(MasterKey::load_or_create(self.home.root())?)
    }

    /// Takes the run lock of `export`; `None` when another process holds it: a lease when
    /// the state store is shared, else a lock file in the home folder.
    pub fn lock_export(&self, export: &str) -> anyhow::Result<Option<ExportLock>> {
        if self.shared_state() {
            return Ok(LeaseGuard::take(&self.state, export)?.map(ExportLock::Lease));
        }
        Ok(locks::lock_file(&self.home.locks_dir(), export)?.map(ExportLock::File))
    }
}
