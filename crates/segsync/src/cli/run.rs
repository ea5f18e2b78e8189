//! `segsync run EXPORT`: one run now, with its progress on a terminal and an exit code that
//! says whether every record was delivered.

use std::time::Duration;

use clap::Args;

use super::{
    print_counts, printable, progress, run_failure, Failure, EXIT_FAILED, EXIT_OK,
    EXIT_RECORD_ERRORS,
};
use crate::app::App;
use crate::engine::{self, RunSettings};
use crate::state::Outcome;

#[derive(Args, Debug)]
pub struct RunArgs {
    pub export: String,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Requests in flight for this run at most; the connection's slot budget (shared by every
    /// run on its Mailchimp account, default 8) also applies, so the smaller one wins.
    #[arg(long, default_value_t = 10)]
    pub max_in_flight: usize,
    /// Seconds before a Mailchimp request times out (fractions allowed: 0.5).
    #[arg(long, default_value_t = 120.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Evaluate every profile against the segments, even when only some changed since the
    /// last run (which otherwise evaluates those only).
    #[arg(long)]
    pub full: bool,
}

/// A number of seconds above zero (`120`, `0.5`), no more than a day.
fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number of seconds"))?;
    if (0.001..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{s} seconds: give at least 0.001 and at most 86400"
        ))
    }
}

fn exit_for(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Succeeded => EXIT_OK,
        Outcome::SucceededWithErrors => EXIT_RECORD_ERRORS,
        _ => EXIT_FAILED,
    }
}

pub(super) async fn run(app: &App, args: RunArgs) -> Result<i32, Failure> {
    let settings = RunSettings {
        trigger: "manual".into(),
        max_in_flight: args.max_in_flight.max(1),
        timeout: Duration::from_secs_f64(args.timeout),
        full: args.full,
        ..Default::default()
    };
    // On a shared (PostgreSQL) state store the run also shares its account's slots with the
    // workers and other runs on that store.
    crate::budget::share_across_processes(app, crate::budget::DEFAULT_SLOT_LEASE)?;
    let progress = progress::for_terminal(args.quiet || args.json);
    let report = engine::run(app, &args.export, &settings, progress)
        .await
        .map_err(run_failure)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        println!(
            "run {} of export \"{}\": {} in {:.1}s",
            report.run_id,
            report.export,
            report.outcome.label(),
            report.seconds
        );
        print_counts(&report.counts);
        if let Some(e) = &report.error {
            println!("  error: {e}");
        }
        for e in &report.errors_sample {
            println!(
                "  not sent {}: {}",
                printable(if e.email.is_empty() {
                    &e.profile_key
                } else {
                    &e.email
                }),
                printable(&e.reason)
            );
        }
        if report.counts.refused + report.counts.failed > report.errors_sample.len() as u64 {
            println!(
                "  every record not sent: segsync runs errors {} --csv",
                report.run_id
            );
        }
    }
    Ok(exit_for(report.outcome))
}
