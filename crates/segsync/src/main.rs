//! `segsync`: parse, dispatch, map the outcome to an exit code (see `cli` for the codes).

use std::io::IsTerminal;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    small_pages();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SEGSYNC_LOG"))
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a log kept in a file or piped to a collector stays
        // plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    quiet_when_output_closes();
    let cli = segsync::cli::Cli::parse();
    let code = match segsync::cli::main(cli).await {
        Ok(code) => code,
        // `segsync runs errors RUN --csv | head`: the reader went away; nothing to report.
        Err(f) if closed_output(&f.error) => SIGPIPE_STATUS,
        Err(f) => {
            eprintln!("segsync: {:#}", f.error);
            f.code
        }
    };
    std::process::exit(code);
}

/// Transparent huge pages off for this process. The allocator asks for them on its arenas,
/// and then every first touch of a region faults in and zeroes 2 MB, and a region given back
/// and used again is zeroed again: in the scale bench at 1M, runs peaked 25 to 50 MB higher
/// with them (the first export at 106 to 118 MB, not 69 to 70) and a 10% re-run spent a
/// twelfth of its main thread's CPU zeroing pages. A kernel that refuses the call keeps them:
/// nothing else changes.
fn small_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// The exit status of a command stopped by SIGPIPE, as a shell reports it.
const SIGPIPE_STATUS: i32 = 128 + 13;

/// `segsync profiles show | head`: when the reader of standard output goes away, printing
/// fails (Rust ignores SIGPIPE, so the write returns "broken pipe" and `println!` panics).
/// That is not a bug to report: the process ends quietly, with the status a shell gives a
/// command stopped by SIGPIPE (128 + 13), like other command-line tools. Any other panic is
/// reported as usual. (Restoring SIGPIPE's default instead would also kill a server or a run
/// whose network peer closes a connection mid-write.)
fn quiet_when_output_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(SIGPIPE_STATUS);
        }
        report(info);
    }));
}

/// Whether a failure is standard output's reader having gone away: a broken pipe among the
/// error's causes, and standard output refusing a line too (a broken pipe may also be a
/// network connection's, and that failure must be reported).
fn closed_output(error: &anyhow::Error) -> bool {
    use std::io::Write;
    let broken_pipe = error.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<csv::Error>().map(csv::Error::kind) {
                Some(csv::ErrorKind::Io(io)) => Some(io),
                _ => None,
            }
        });
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    broken_pipe && {
        let mut out = std::io::stdout().lock();
        out.write_all(b"\n").and_then(|()| out.flush()).is_err()
    }
}
