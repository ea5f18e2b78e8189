//! Measuring a segsync process from outside: its peak RSS sampled from /proc while it runs,
//! its exit code and CPU time when it is reaped; and this process's own CPU time (the
//! in-process simulator's, mostly).

use std::process::{Child, ExitStatus};
use std::time::Duration;

#[cfg(unix)]
use nix::sys::{
    resource::{getrusage, UsageWho},
    time::TimeVal,
};

/// Waits for `child`; returns its exit code (minus the signal's number when a signal ended
/// it) and its CPU seconds (user + system).
///
/// The CPU time is what reaping the child adds to this process's `RUSAGE_CHILDREN` totals,
/// the figure `wait4` gives for that child: the bench runs one child at a time and reaps
/// nothing else, so nothing else is added meanwhile. Totals can be subtracted, a maximum
/// cannot: the children's `ru_maxrss` says nothing of one child. Nor would the child's own:
/// it is spawned with `CLONE_VM | CLONE_VFORK` (posix_spawn), and exec records the high-water
/// RSS of the memory it leaves, which is this process's, into the child's `ru_maxrss`. See
/// [`PeakRss`].
pub fn wait_cpu(mut child: Child) -> (i32, f64) {
    let before = children_cpu();
    let status = child.wait().expect("segsync ends");
    (exit_code(status), children_cpu() - before)
}

#[cfg(unix)]
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1)
}

#[cfg(not(unix))]
fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

/// Samples `VmHWM` (the kernel's high-water mark of the process's resident set, after exec)
/// from /proc every 5 ms until the process is gone: its peak RSS, but for growth in its last
/// 5 ms, where a process frees rather than grows.
pub struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> PeakRss {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut peak_kb = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let kb = std::fs::read_to_string(&path).ok().and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                });
                match kb {
                    Some(kb) => peak_kb = peak_kb.max(kb),
                    // Exited (a zombie has no memory) or reaped.
                    None if peak_kb > 0 => break,
                    None => {}
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak_kb
        });
        PeakRss { stop, thread }
    }

    /// MB.
    pub fn finish(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0) as f64 / 1024.0
    }
}

/// CPU seconds of this process (the in-process simulator, mostly).
#[cfg(unix)]
pub fn self_cpu() -> f64 {
    cpu_seconds(UsageWho::RUSAGE_SELF)
}

#[cfg(not(unix))]
pub fn self_cpu() -> f64 {
    0.0
}

/// CPU seconds of the children reaped so far, with their own reaped children.
#[cfg(unix)]
fn children_cpu() -> f64 {
    cpu_seconds(UsageWho::RUSAGE_CHILDREN)
}

#[cfg(not(unix))]
fn children_cpu() -> f64 {
    0.0
}

#[cfg(unix)]
fn cpu_seconds(who: UsageWho) -> f64 {
    let usage = getrusage(who).expect("getrusage");
    let s = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    s(usage.user_time()) + s(usage.system_time())
}
