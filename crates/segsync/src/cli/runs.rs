//! `segsync runs ...`: the history of runs, one run in detail, and the records a run could
//! not send.

use anyhow::{anyhow, Context};
use clap::Args;

use super::{print_counts, printable, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::state::StateStore;

#[derive(Args, Debug)]
pub struct RunsArgs {
    /// `show RUN`, `errors RUN`, `changes RUN`, or an export name (or nothing) for the
    /// history.
    pub args: Vec<String>,
    /// With `errors`: every refused record as CSV (profile_key,email,reason), cells that
    /// start like a spreadsheet formula with a `'` in front.
    #[arg(long)]
    pub csv: bool,
    #[arg(long)]
    pub json: bool,
    /// With `changes`: the change log as CSV (action,email,detail,profile_key) or JSON lines.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: crate::change_log::Format,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `segsync runs`: after marking the runs of dead processes interrupted, the history, one
/// run (`show RUN`) or its records not sent (`errors RUN`).
pub(super) fn runs(app: &App, args: RunsArgs) -> Result<i32, Failure> {
    let state = app.state()?;
    interrupt_dead_runs(app, &state)?;
    match args.args.first().map(String::as_str) {
        Some("show") => show_run(&state, run_id(args.args.get(1))?, &args),
        Some("errors") => print_errors(&state, run_id(args.args.get(1))?, &args),
        Some("changes") => print_changes(&state, run_id(args.args.get(1))?, &args),
        export => print_history(&state, export, &args),
    }
}

/// A run whose process died (kill -9, a crash, a power cut) is still marked running; when
/// nobody holds its export's lock, it is over: it shows as interrupted.
fn interrupt_dead_runs(app: &App, state: &StateStore) -> Result<(), Failure> {
    for export in state.exports_with_running_runs()? {
        if let Some(_lock) = app.lock_export(&export)? {
            state.interrupt_stale_runs(&export)?;
        }
    }
    Ok(())
}

/// The run named on the command line.
fn run_id(s: Option<&String>) -> Result<i64, Failure> {
    let s = s.ok_or_else(|| usage(anyhow!("which run? `segsync runs` lists them")))?;
    s.parse()
        .map_err(|_| usage(anyhow!("a run is a number, not \"{s}\"")))
}

/// `runs show RUN`: one run, its counts and its first errors.
fn show_run(state: &StateStore, id: i64, args: &RunsArgs) -> Result<i32, Failure> {
    let r = state.run(id).map_err(usage)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("run serialises")
        );
        return Ok(EXIT_OK);
    }
    println!(
        "run {} of export \"{}\" ({}): {}",
        r.id,
        r.export,
        r.trigger,
        r.outcome.label()
    );
    if let Ok(e) = state.export(&r.export) {
        println!("  audience {}", audience_label(&e));
    }
    println!(
        "  started {}, finished {}",
        r.started_at,
        r.finished_at.as_deref().unwrap_or("-")
    );
    print_counts(&r.counts);
    println!(
        "  connection slots held on average {:.1}; refused for too many connections (429) {} times",
        r.counts.slots_held(),
        r.counts.throttled
    );
    if let Some(e) = &r.error {
        println!("  error: {e}");
    }
    let errors = state.run_errors(r.id)?;
    for e in errors.iter().take(20) {
        println!(
            "  not sent {} ({}): {}",
            printable(&e.email),
            printable(&e.profile_key),
            printable(&e.reason)
        );
    }
    if errors.len() > 20 {
        println!(
            "  ... {} in all: segsync runs errors {} --csv",
            errors.len(),
            r.id
        );
    }
    Ok(EXIT_OK)
}

/// `runs errors RUN`: every record the run could not send, as CSV, JSON or lines.
fn print_errors(state: &StateStore, id: i64, args: &RunsArgs) -> Result<i32, Failure> {
    state.run(id).map_err(usage)?;
    let errors = state.run_errors(id)?;
    if args.csv {
        crate::csv_out::write_run_errors(std::io::stdout(), &errors).context("writing CSV")?;
    } else if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&errors).expect("errors serialise")
        );
    } else {
        for e in &errors {
            println!(
                "{}\t{}\t{}",
                printable(&e.profile_key),
                printable(&e.email),
                printable(&e.reason)
            );
        }
    }
    Ok(EXIT_OK)
}

/// `runs changes RUN`: the run's change log (who was created, updated, moved, tagged,
/// untagged, removed, refused), streamed to stdout.
fn print_changes(state: &StateStore, id: i64, args: &RunsArgs) -> Result<i32, Failure> {
    state.run(id).map_err(usage)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match crate::change_log::write_all(state, id, args.format, &mut out) {
        // `runs changes RUN | head`: the reader had enough.
        Err(e) if broken_pipe(&e) => Ok(EXIT_OK),
        r => {
            r.context("writing the change log")?;
            Ok(EXIT_OK)
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `runs [EXPORT]`: the newest runs, of one export or all.
fn print_history(
    state: &StateStore,
    export: Option<&str>,
    args: &RunsArgs,
) -> Result<i32, Failure> {
    if args.args.len() > 1 {
        return Err(usage(anyhow!(
            "usage: segsync runs [EXPORT] | runs show RUN | runs errors RUN [--csv] | runs changes RUN [--format csv|jsonl]"
        )));
    }
    let list = state.runs(export, args.limit)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).expect("runs serialise")
        );
        return Ok(EXIT_OK);
    }
    // Records Mailchimp refused only for now are no errors, but not sent either: a column of
    // their own, there when a listed run has any.
    let deferred = list.iter().any(|r| r.counts.deferred > 0);
    let column = |n: String| {
        if deferred {
            format!(" {n:>8}")
        } else {
            String::new()
        }
    };
    println!(
        "{:>5}  {:<20} {:<22} {:<22} {:>8} {:>8} {:>8}{}",
        "run",
        "export",
        "started",
        "outcome",
        "created",
        "updated",
        "errors",
        column("deferred".into())
    );
    for r in list {
        println!(
            "{:>5}  {:<20} {:<22} {:<22} {:>8} {:>8} {:>8}{}",
            r.id,
            r.export,
            r.started_at,
            r.outcome.label(),
            r.counts.created,
            r.counts.updated,
            r.counts.refused + r.counts.failed,
            column(r.counts.deferred.to_string())
        );
    }
    Ok(EXIT_OK)
}

/// An export's audience as people know it: `Newsletter (a1b2c3d4e5)`, or its id alone when
/// its name was never read.
pub fn audience_label(e: &crate::state::ExportConfig) -> String {
    match &e.audience_name {
        Some(name) => format!("\"{name}\" ({})", e.audience_id),
        None => e.audience_id.clone(),
    }
}
