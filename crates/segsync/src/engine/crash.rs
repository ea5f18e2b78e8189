//! The crash-test hook `SEGSYNC_CRASH_AFTER_ACK=N`: with the `crash-hook` feature (which only
//! the tests turn on) and the variable set, the process kills itself (SIGKILL; abort
//! elsewhere) right after the Nth answered request of the run's send phases, before that
//! answer is checkpointed: the one moment a crash is most likely to lose or duplicate work.
//! Used by the crash torture (`tests/cli_e2e/torture.rs`, `examples/torture.rs`); the release
//! binary has no such hook.

/// The variable the hook reads.
pub const CRASH_AFTER_ACK_ENV: &str = "SEGSYNC_CRASH_AFTER_ACK";

/// The hook as the run sees it: told of every answered request.
pub(super) struct Hook {
    #[cfg(feature = "crash-hook")]
    after: Option<u64>,
}

#[cfg(feature = "crash-hook")]
impl Hook {
    pub(super) fn from_env() -> Hook {
        let after = std::env::var(CRASH_AFTER_ACK_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        Hook { after }
    }

    /// Kills the process if `answered` is the request it was told to die after.
    pub(super) fn answered(&self, answered: u64) {
        if self.after == Some(answered) {
            kill_self()
        }
    }
}

#[cfg(not(feature = "crash-hook"))]
impl Hook {
    pub(super) fn from_env() -> Hook {
        Hook {}
    }

    pub(super) fn answered(&self, _: u64) {}
}

/// Ends the process at once, as `kill -9` would: no destructor runs, nothing is flushed.
/// (The shell's own `kill`, so that no unsafe system call is needed here.)
#[cfg(feature = "crash-hook")]
fn kill_self() -> ! {
    let pid = std::process::id();
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("kill -9 {pid}")])
        .status();
    // The signal lands as the shell exits; abort if it somehow did not.
    std::thread::sleep(std::time::Duration::from_secs(5));
    std::process::abort()
}
