//! `segsync plan EXPORT`: what a run would do, without sending anything.

use clap::Args;

use super::{printable, run_failure, Failure, EXIT_OK};
use crate::app::App;
use crate::engine::{self, RunSettings};

#[derive(Args, Debug)]
pub struct PlanArgs {
    pub export: String,
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn plan(app: &App, args: PlanArgs) -> Result<i32, Failure> {
    let mut state = app.state()?;
    let mut prepared = engine::prepare(app, &mut state, &args.export, &RunSettings::default())
        .await
        .map_err(run_failure)?;
    let report = prepared.plan_report().await.map_err(run_failure)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
        return Ok(EXIT_OK);
    }
    let s = &report.summary;
    println!(
        "plan for export \"{}\" to audience {}",
        report.export, report.audience
    );
    println!(
        "  profiles read        {:>9}  ({} members, {} duplicate addresses merged)",
        report.profiles, report.members, report.duplicates
    );
    println!("  members to create    {:>9}", s.creates);
    println!("  members to update    {:>9}", s.updates);
    println!(
        "  members to move      {:>9}  (to their profile's new address)",
        s.moves
    );
    println!("  members unchanged    {:>9}", report.unchanged);
    println!("  tags to add          {:>9}", s.tag_adds);
    println!("  tags to remove       {:>9}", s.tag_removes);
    println!("  members to archive   {:>9}", s.archives);
    println!("  to unsubscribe       {:>9}", s.unsubscribes);
    println!("  records refused      {:>9}", report.refused.len());
    println!("  members skipped      {:>9}", report.skipped.len());
    println!(
        "  members suppressed   {:>9}  (on a suppression list: not sent)",
        report.suppressed
    );
    println!(
        "  refusals remembered  {:>9}  (refused for good before, unchanged since: not sent)",
        report.remembered_refusals
    );
    println!("  Mailchimp requests   {:>9}", s.requests);
    for (endpoint, n) in &s.requests_by_endpoint {
        println!("    {n:>6}  {endpoint}");
    }
    if !report.merge_fields_to_create.is_empty() {
        println!(
            "  merge fields to create: {}",
            report.merge_fields_to_create.join(", ")
        );
    }
    if !report.tags_to_create.is_empty() {
        let names: Vec<String> = report.tags_to_create.iter().map(|t| printable(t)).collect();
        println!("  tags to create: {}", names.join(", "));
    }
    for e in report.refused.iter().take(20) {
        println!(
            "  refused {} ({}): {}",
            printable(&e.email),
            printable(&e.profile_key),
            printable(&e.reason)
        );
    }
    if report.refused.len() > 20 {
        println!("  ... and {} more refused", report.refused.len() - 20);
    }
    for e in report.skipped.iter().take(10) {
        println!(
            "  skipped {}: {}",
            printable(&e.email),
            printable(&e.reason)
        );
    }
    Ok(EXIT_OK)
}
