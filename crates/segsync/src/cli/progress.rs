//! How a run shows its progress: a bar on a terminal (members sent, requests in flight, rate,
//! ETA), plain lines elsewhere (logs, CI, pipes).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::{Mutex, OnceLock};

use crate::engine::Progress;
use crate::mailchimp::ClientStats;

/// Chooses the display: a bar when stderr is a terminal, plain lines otherwise, nothing
/// with `quiet`.
pub fn for_terminal(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(crate::engine::Silent)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bar::new())
    } else {
        Arc::new(Lines::new())
    }
}

struct Bar {
    bar: ProgressBar,
    stats: OnceLock<Arc<ClientStats>>,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar {
            bar,
            stats: OnceLock::new(),
        }
    }
}

impl Progress for Bar {
    fn attach(&self, stats: Arc<ClientStats>) {
        let _ = self.stats.set(stats);
    }

    fn phase(&self, name: &str, total: u64) {
        if total == 0 {
            self.bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"),
            );
            self.bar.set_length(0);
        } else {
            let mut style = ProgressStyle::with_template(
                "{spinner} {msg:<18} [{bar:30}] {pos}/{len} members | {per_sec} | ETA {eta}{inflight}",
            )
            .expect("template")
            .progress_chars("=> ");
            // Read at every redraw, so the count moves while requests wait for answers.
            let stats = self.stats.get().cloned();
            style = style.with_key(
                "inflight",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    if let Some(s) = &stats {
                        let _ = write!(w, " | {} in flight", s.in_flight());
                    }
                },
            );
            self.bar.set_style(style);
            self.bar.set_length(total);
        }
        self.bar.set_position(0);
        self.bar.reset_eta();
        self.bar.set_message(name.to_string());
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

struct Lines {
    stats: OnceLock<Arc<ClientStats>>,
    state: Mutex<LineState>,
}

struct LineState {
    phase: String,
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

impl Lines {
    fn new() -> Lines {
        let now = Instant::now();
        Lines {
            stats: OnceLock::new(),
            state: Mutex::new(LineState {
                phase: String::new(),
                total: 0,
                done: 0,
                started: now,
                last: now,
            }),
        }
    }

    fn line(&self, s: &LineState) {
        let secs = s.started.elapsed().as_secs_f64().max(0.001);
        let in_flight = self
            .stats
            .get()
            .map(|st| format!(", {} requests in flight", st.in_flight()))
            .unwrap_or_default();
        eprintln!(
            "{}: {}/{} members ({:.0}/s{in_flight})",
            s.phase,
            s.done,
            s.total,
            s.done as f64 / secs
        );
    }
}

impl Progress for Lines {
    fn attach(&self, stats: Arc<ClientStats>) {
        let _ = self.stats.set(stats);
    }

    fn phase(&self, name: &str, total: u64) {
        let mut s = self.state.lock().expect("progress lock");
        if !s.phase.is_empty() && s.total > 0 {
            self.line(&s);
        }
        *s = LineState {
            phase: name.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            last: Instant::now(),
        };
        if total == 0 {
            eprintln!("{name} ...");
        }
    }

    fn advance(&self, n: u64) {
        let mut s = self.state.lock().expect("progress lock");
        s.done += n;
        if s.last.elapsed() >= Duration::from_secs(2) {
            s.last = Instant::now();
            self.line(&s);
        }
    }

    fn finish(&self) {
        let s = self.state.lock().expect("progress lock");
        if s.total > 0 {
            self.line(&s);
        }
    }
}
