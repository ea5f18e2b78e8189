//! Measuring a segsync process from outside: its peak RSS sampled from /proc while it runs,
//! its exit code and CPU time when it is reaped; and this process's own CPU time (the
//! in-process simulator's, mostly).

use std::time::Duration;

/// Waits for `child`; returns its exit code and CPU seconds (user + system, from `wait4`).
///
/// Not its peak RSS: `ru_maxrss` is unusable here. The child is spawned with
/// `CLONE_VM | CLONE_VFORK` (posix_spawn), and exec records the high-water RSS of the memory
/// it leaves, which is this process's, into the child's `ru_maxrss`. See [`PeakRss`].
#[cfg(unix)]
pub fn wait_cpu(child: std::process::Child) -> (i32, f64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
    }
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (code, tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[cfg(not(unix))]
pub fn wait_cpu(mut child: std::process::Child) -> (i32, f64) {
    let s = child.wait().expect("segsync ends");
    (s.code().unwrap_or(-1), 0.0)
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
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(not(unix))]
pub fn self_cpu() -> f64 {
    0.0
}
