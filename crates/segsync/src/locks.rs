//! An export's run lock, so that one export never runs twice at once: a lock file in the
//! home folder when the state store is a file (the operating system releases it when the
//! process ends, however it ends, kill -9 included), or a lease in a shared state store
//! (PostgreSQL), renewed by a thread while the run goes and taken over by another worker
//! when its holder stops renewing it.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::state::StateSource;

/// How long an export's lease lasts without renewal (seconds); default [`LEASE_TTL`].
pub const LEASE_ENV: &str = "SEGSYNC_LEASE_SECONDS";
/// How long a run's lease on its export lasts unless renewed (a third of it between
/// renewals): a worker that dies leaves its run to another one after at most this.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// The lock file of `export` in `locks_dir`, taken; `None` when another process holds it.
pub(crate) fn lock_file(locks_dir: &Path, export: &str) -> anyhow::Result<Option<File>> {
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
    let path = locks_dir.join(format!(
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
    pub(crate) fn take(state: &StateSource, export: &str) -> anyhow::Result<Option<LeaseGuard>> {
        let name = format!("export:{export}");
        let holder = worker_id().to_string();
        let ttl = lease_ttl();
        if !state.open()?.try_lease(&name, &holder, ttl)? {
            return Ok(None);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let source = state.clone();
        let lost = Arc::new(AtomicBool::new(false));
        let lost_here = lost.clone();
        let renewer = std::thread::Builder::new()
            .name("segsync-lease".into())
            .spawn(move || {
                let mut state = None;
                // Until the guard is dropped (the run is over).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
                    if state.is_none() {
                        state = source.open().ok();
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
                if let Some(s) = state.or_else(|| source.open().ok()) {
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
