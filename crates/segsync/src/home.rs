//! The home folder: where everything segsync keeps lives (`--home DIR`, else `SEGSYNC_HOME`,
//! else the platform's data folder).
//!
//! ```text
//! HOME/profiles.sqlite   imported profiles (segment predicates read only this file)
//! HOME/state.sqlite      connections, segments, exports, snapshots, runs
//! HOME/master.key        the key that seals credentials (0600), unless SEGSYNC_MASTER_KEY
//! HOME/locks/            one lock file per export, held while it runs
//! ```
//!
//! The state store can live elsewhere: `--state URL` or `SEGSYNC_STATE` (`sqlite:PATH` or
//! `postgres://...`). With PostgreSQL, several `segsync serve` processes on several machines
//! share it, so an export's run lock is a lease in the database (renewed while the run goes,
//! taken over when its holder stops renewing it) instead of a lock file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::profiles::ProfileStore;
use crate::secrets::MasterKey;
use crate::state::StateStore;

pub const HOME_ENV: &str = "SEGSYNC_HOME";
/// Where the state store is, when not in the home folder: `sqlite:PATH` or `postgres://...`.
pub const STATE_ENV: &str = "SEGSYNC_STATE";
/// How long an export's lease lasts without renewal (seconds); default [`LEASE_TTL`].
pub const LEASE_ENV: &str = "SEGSYNC_LEASE_SECONDS";
/// How long a run's lease on its export lasts unless renewed (a third of it between
/// renewals): a worker that dies leaves its run to another one after at most this.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Home {
    root: PathBuf,
    /// The state store's URL when it is not `HOME/state.sqlite`.
    state_url: Option<String>,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home")
            .field("root", &self.root)
            .field("state", &self.state_url())
            .finish()
    }
}

impl Home {
    /// The folder from the flag, the environment or the platform, created if missing; the
    /// state store from `SEGSYNC_STATE` when it is set.
    pub fn resolve(flag: Option<PathBuf>) -> anyhow::Result<Home> {
        let root = match flag.or_else(|| std::env::var_os(HOME_ENV).map(PathBuf::from)) {
            Some(p) => p,
            None => directories::ProjectDirs::from("dev", "segsync", "segsync")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or_else(|| {
                    anyhow::anyhow!("no home folder: pass --home DIR or set {HOME_ENV}")
                })?,
        };
        let home = Home::at(root)?;
        match std::env::var(STATE_ENV) {
            Ok(url) if !url.trim().is_empty() => Ok(home.with_state_url(Some(url))),
            _ => Ok(home),
        }
    }

    pub fn at(root: PathBuf) -> anyhow::Result<Home> {
        std::fs::create_dir_all(root.join("locks")).map_err(|e| {
            anyhow::anyhow!("cannot create the home folder {}: {e}", root.display())
        })?;
        Ok(Home {
            root,
            state_url: None,
        })
    }

    /// This home with its state store at `url` (`None`: `HOME/state.sqlite`).
    pub fn with_state_url(mut self, url: Option<String>) -> Home {
        self.state_url = url;
        self
    }

    /// The state store's URL, password hidden.
    pub fn state_url(&self) -> String {
        match &self.state_url {
            Some(url) => crate::pg::redact(url),
            None => format!("sqlite:{}", self.root.join("state.sqlite").display()),
        }
    }

    /// The state store's URL as given (password included: never print it).
    pub(crate) fn state_location(&self) -> String {
        match &self.state_url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}", self.root.join("state.sqlite").display()),
        }
    }

    /// Whether the state store is PostgreSQL (shared by several processes, maybe on several
    /// machines).
    pub fn shared_state(&self) -> bool {
        self.state_url
            .as_deref()
            .is_some_and(crate::pg::is_postgres_url)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state(&self) -> anyhow::Result<StateStore> {
        Ok(match &self.state_url {
            Some(url) => StateStore::open_url(url)?,
            None => StateStore::open(&self.root.join("state.sqlite"))?,
        })
    }

    pub fn profiles(&self) -> anyhow::Result<ProfileStore> {
        Ok(ProfileStore::open(&self.root.join("profiles.sqlite"))?)
    }

    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        Ok(MasterKey::load_or_create(&self.root)?)
    }

    /// Takes the run lock of `export`; `None` when another process holds it.
    ///
    /// With the state in a file, a lock file: the operating system releases it when the
    /// process ends, however it ends (kill -9 included). With PostgreSQL, a lease in the
    /// database renewed by a thread while the lock is held: when its process dies, the lease
    /// runs out within [`LEASE_TTL`] and another worker may take the export over.
    pub fn lock_export(&self, export: &str) -> anyhow::Result<Option<ExportLock>> {
        if self.shared_state() {
            return Ok(LeaseGuard::take(self, export)?.map(ExportLock::Lease));
        }
        Ok(self.lock_file(export)?.map(ExportLock::File))
    }

    fn lock_file(&self, export: &str) -> anyhow::Result<Option<File>> {
        let safe: String = export
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.root.join("locks").join(format!(
            "{safe}-{}.lock",
            &segsync_core::MemberKey::of(export).hex()[..8]
        ));
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// An export's run lock: a lock file, or a lease in a shared state store. Released when
/// dropped.
pub enum ExportLock {
    File(#[allow(dead_code)] File),
    Lease(LeaseGuard),
}

impl ExportLock {
    /// For a lease: set when another worker took it (a lock file is never lost).
    pub fn lost_flag(&self) -> Option<Arc<AtomicBool>> {
        match self {
            ExportLock::File(_) => None,
            ExportLock::Lease(g) => Some(g.lost.clone()),
        }
    }
}

/// Who holds leases from this process: host, process id and a random part (a restarted
/// process with the same pid is someone else).
pub fn worker_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )
    })
}

/// The lease's length: `SEGSYNC_LEASE_SECONDS` (at least 2), else [`LEASE_TTL`].
pub fn lease_ttl() -> Duration {
    std::env::var(LEASE_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s >= 2)
        .map(Duration::from_secs)
        .unwrap_or(LEASE_TTL)
}

/// A lease on an export, renewed by a thread of its own every third of its length and
/// released when dropped.
pub struct LeaseGuard {
    /// Set when a renewal found the lease held by another worker.
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl LeaseGuard {
    fn take(home: &Home, export: &str) -> anyhow::Result<Option<LeaseGuard>> {
        let name = format!("export:{export}");
        let holder = worker_id().to_string();
        let ttl = lease_ttl();
        if !home.state()?.try_lease(&name, &holder, ttl)? {
            return Ok(None);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let home = home.clone();
        let lost = Arc::new(AtomicBool::new(false));
        let lost_here = lost.clone();
        let renewer = std::thread::Builder::new()
            .name("segsync-lease".into())
            .spawn(move || {
                let mut state = None;
                // Until the guard is dropped (the run is over).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
                    if state.is_none() {
                        state = home.state().ok();
                    }
                    let renewed = state
                        .as_ref()
                        .map(|s| s.try_lease(&name, &holder, ttl));
                    match renewed {
                        Some(Ok(true)) => {}
                        Some(Ok(false)) => {
                            tracing::error!(lease = %name, "the export's lease was taken by another worker (this one did not renew it in time): the run stops at its next checkpoint");
                            lost_here.store(true, Ordering::SeqCst);
                            return;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(lease = %name, error = %e, "renewing the export's lease (retrying)");
                            state = None;
                        }
                        None => tracing::warn!(lease = %name, "renewing the export's lease: the state store does not answer (retrying)"),
                    }
                }
                if let Some(s) = state.or_else(|| home.state().ok()) {
                    if let Err(e) = s.release_lease(&name, &holder) {
                        tracing::warn!(lease = %name, error = %e, "releasing the export's lease (it runs out by itself)");
                    }
                }
            })?;
        Ok(Some(LeaseGuard {
            lost,
            stop: Some(stop),
            renewer: Some(renewer),
        }))
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }
}
