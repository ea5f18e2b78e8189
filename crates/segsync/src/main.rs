//! `segsync`: parse, dispatch, map the outcome to an exit code (see `cli` for the codes).

use std::io::IsTerminal;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SEGSYNC_LOG"))
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a log kept in a file or piped to a collector stays
        // plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = segsync::cli::Cli::parse();
    let code = match segsync::cli::main(cli).await {
        Ok(code) => code,
        Err(f) => {
            eprintln!("segsync: {:#}", f.error);
            f.code
        }
    };
    std::process::exit(code);
}
