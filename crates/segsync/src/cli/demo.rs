//! `segsync demo`: the whole flow, offline, through the same code as the real commands. It
//! starts the Mailchimp simulator in this process, imports a bundled sample of 3,000
//! profiles, defines segments, adds a connection and an export, runs it, changes some
//! profiles, runs again (only the change is sent), and shows what Mailchimp holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use mailchimp_sim::{RunningSim, SimConfig, Status};

use super::{
    ConnectionAdd, ConnectionCmd, ExportAdd, ExportCmd, Failure, PlanArgs, ProfilesCmd, RunArgs,
    SegmentsCmd, EXIT_OK,
};
use crate::app::App;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's home folder here instead of a temporary one (the same as the global
    /// `--home`; the folder must be new or empty).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Per-request latency of the built-in simulator, in milliseconds.
    #[arg(long, default_value_t = 40.0)]
    pub latency_ms: f64,
}

const SAMPLE: &str = include_str!("../../data/demo-profiles.csv");

/// People who had unsubscribed from the audience before segsync came: they stay unsubscribed.
const ALREADY_UNSUBSCRIBED: usize = 12;

fn title(s: &str) {
    println!("\n== {s}");
}

/// A copy of the sample with some profiles changed, as a day of business would change them.
fn changed_sample(sample: &str) -> String {
    let mut out = String::with_capacity(sample.len() + 1024);
    for (i, line) in sample.lines().enumerate() {
        if i == 0 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut cols: Vec<String> = line.split(',').map(String::from).collect();
        match i % 100 {
            // A few people moved city.
            7 => cols[5] = "Sibiu".into(),
            // A few big spenders became small ones and leave the high-value segment.
            13 => cols[6] = "12.00".into(),
            _ => {}
        }
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    for n in 1..=25 {
        out.push_str(&format!(
            "N{n:05},new.customer{n}@gmail.com,Noemi,Nouă,RO,Cluj-Napoca,{}.00,2,2026-11-20,2026-11-21T10:00:00Z\n",
            400 + n * 20
        ));
    }
    out
}

async fn seed_unsubscribed(
    sim: &RunningSim,
    key: &str,
    list_id: &str,
) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let emails: Vec<String> = SAMPLE
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(str::to_lowercase))
        .filter(|e| e.contains('@') && !e.contains(' '))
        .step_by(97)
        .take(ALREADY_UNSUBSCRIBED)
        .collect();
    for e in &emails {
        let url = format!(
            "{}/lists/{list_id}/members/{}",
            sim.api_url(),
            mailchimp_sim::subscriber_hash(e)
        );
        let resp = http
            .put(url)
            .basic_auth("demo", Some(key))
            .json(&serde_json::json!({"email_address": e, "status_if_new": "unsubscribed"}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "seeding the audience: {}",
            resp.status()
        );
    }
    Ok(emails)
}

fn show_audience(sim: &RunningSim, list_id: &str) {
    let Some(view) = sim.list_view(list_id) else {
        return;
    };
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &view.members {
        *by_status.entry(m.status.as_str()).or_default() += 1;
    }
    println!(
        "audience \"{}\" ({}) holds {} contacts:",
        view.name,
        view.id,
        view.members.len()
    );
    for (s, n) in &by_status {
        println!("  {n:>6} {s}");
    }
    println!("tags:");
    for t in &view.tags {
        println!("  {:>6} {}", t.member_count, t.name);
    }
    println!("a few members:");
    let subscribed = view
        .members
        .iter()
        .filter(|m| !m.tags.is_empty() && m.status == Status::Subscribed)
        .take(3);
    let unsubscribed = view
        .members
        .iter()
        .filter(|m| !m.tags.is_empty() && m.status == Status::Unsubscribed)
        .take(2);
    for m in subscribed.chain(unsubscribed) {
        let name = format!(
            "{} {}",
            m.merge_fields
                .get("FNAME")
                .and_then(|v| v.as_str())
                .unwrap_or(""),
            m.merge_fields
                .get("LNAME")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        );
        println!(
            "  {:<38} {:<12} {:<24} tags: {}",
            m.email_address,
            m.status.as_str(),
            name.trim(),
            m.tags.join(", ")
        );
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

/// Runs the demo in `home` (the global `--home`, else `--keep`), which is kept, or in a
/// temporary folder removed at the end; the last line says which, and how to keep it.
pub async fn run(args: &DemoArgs, home: Option<&Path>) -> Result<i32, Failure> {
    let (root, temporary) = match home.or(args.keep.as_deref()) {
        Some(p) => {
            check_empty(p)?;
            (p.to_path_buf(), false)
        }
        None => (
            std::env::temp_dir().join(format!("segsync-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = demo(args, &root).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
        println!(
            "\nThe demo's home folder {} was removed; to keep it, give one: `segsync demo --home DIR`, then look around with `segsync --home DIR runs`.",
            root.display()
        );
    } else {
        println!(
            "\nThe demo's home folder is {}: look around with `segsync --home {} runs` (or set SEGSYNC_HOME).",
            root.display(),
            root.display()
        );
    }
    result
}

/// The demo adds its own connection, segments and export: it refuses a folder that already
/// holds something (an installation it would change).
fn check_empty(dir: &Path) -> Result<(), Failure> {
    let used = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(super::usage(
                anyhow::Error::new(e).context(format!("demo home folder {}", dir.display())),
            ))
        }
    };
    if used {
        return Err(super::usage(anyhow::anyhow!(
            "demo home folder {} is not empty: give a new or empty folder, so that the demo changes no installation",
            dir.display()
        )));
    }
    Ok(())
}

async fn demo(args: &DemoArgs, root: &Path) -> Result<i32, Failure> {
    // The simulator listens on 127.0.0.1: this installation talks to it on purpose.
    let app = App::at(root.to_path_buf())?.with_private_targets(true);
    title("Starting the Mailchimp simulator (in this process, offline)");
    let mut config = SimConfig::default();
    config.settings.latency.base_ms = args.latency_ms;
    config.settings.latency.per_item_ms = args.latency_ms / 1000.0;
    let sim = RunningSim::start(config, "127.0.0.1:0")
        .await
        .context("starting the simulator")?;
    let key = sim.add_account();
    let list_id = sim.create_list(&key, "Newsletter", false);
    let unsubscribed = seed_unsubscribed(&sim, &key, &list_id).await?;
    println!(
        "simulated Mailchimp at {} with audience {list_id}; {} people had already unsubscribed from it",
        sim.api_url(),
        unsubscribed.len()
    );

    title("segsync profiles import demo-profiles.csv --key customer_id");
    let csv = root.join("demo-profiles.csv");
    import_profiles(&app, &csv, SAMPLE)?;
    add_segments(&app)?;
    add_connection(&app, root, &sim, &key).await?;
    add_export(&app, &list_id).await?;

    title("segsync plan newsletter");
    super::plan::plan(
        &app,
        PlanArgs {
            export: "newsletter".into(),
            json: false,
        },
    )
    .await?;

    let (first, second) = run_twice(&app, &sim, &csv).await?;

    title("segsync runs");
    super::runs::runs(
        &app,
        super::RunsArgs {
            args: vec![],
            csv: false,
            json: false,
            format: crate::change_log::Format::Csv,
            limit: 10,
        },
    )?;

    show_outcome(&sim, &list_id, &unsubscribed);
    sim.shutdown().await;
    println!("\nThe record errors above are the sample's deliberately invalid addresses.");
    // The sample's invalid addresses make both runs end "with record errors": that is the
    // demo working as meant.
    let fine = |c: i32| c == EXIT_OK || c == super::EXIT_RECORD_ERRORS;
    Ok(if fine(first) && fine(second) {
        EXIT_OK
    } else {
        super::EXIT_FAILED
    })
}

/// Writes the profiles to the demo's CSV and imports it, as `segsync profiles import` does.
fn import_profiles(app: &App, csv: &Path, text: &str) -> Result<i32, Failure> {
    std::fs::write(csv, text).context("writing the sample profiles")?;
    super::profiles::profiles(
        app,
        ProfilesCmd::Import {
            path: csv.to_path_buf(),
            key: "customer_id".into(),
            format: None,
            csv: Default::default(),
        },
    )
}

fn add_segments(app: &App) -> Result<(), Failure> {
    title("segsync segments add ...");
    for (name, predicate) in [
        ("high-value", "lifetime_value > 500"),
        ("romania", "country = 'RO'"),
        ("recent-buyers", "last_order_date >= '2026-07-01'"),
    ] {
        println!("$ segsync segments add {name} --where \"{predicate}\"");
        super::segments::segments(
            app,
            SegmentsCmd::Add {
                name: name.into(),
                predicate: predicate.into(),
                source: None,
            },
        )?;
    }
    Ok(())
}

/// The simulator's key goes through a private file, as a real key would, and the file is
/// removed once the connection holds the key.
async fn add_connection(
    app: &App,
    root: &Path,
    sim: &RunningSim,
    key: &str,
) -> Result<(), Failure> {
    title("segsync connection add demo --api-key-file KEYFILE --accept-privacy-terms");
    let key_file = root.join("demo-api-key");
    write_private(&key_file, key).context("writing the demo key file")?;
    super::connection::connection(
        app,
        ConnectionCmd::Add(ConnectionAdd {
            name: "demo".into(),
            api_key_env: None,
            api_key_file: Some(key_file.clone()),
            oauth_token_env: None,
            display_name: Some("Mailchimp (simulated)".into()),
            base_url: Some(sim.api_url()),
            accept_privacy_terms: true,
            share_with_contributors: false,
            export_user: None,
            slot_budget: None,
        }),
    )
    .await?;
    std::fs::remove_file(&key_file).ok();
    Ok(())
}

async fn add_export(app: &App, list_id: &str) -> Result<(), Failure> {
    title("segsync export add newsletter ...");
    super::export::export(
        app,
        ExportCmd::Add(ExportAdd {
            name: "newsletter".into(),
            connection: "demo".into(),
            audience: list_id.to_string(),
            email_field: "email".into(),
            first_name: Some("first_name".into()),
            last_name: Some("last_name".into()),
            merge: vec!["CITY=city".into(), "LTV=lifetime_value".into()],
            segments: vec![
                "high-value".into(),
                "romania".into(),
                "recent-buyers".into(),
            ],
            tags: vec![
                "high-value=High value".into(),
                "recent-buyers=Recent buyers".into(),
            ],
            status_if_new: "subscribed".into(),
            removal: "untag".into(),
            max_profiles: 1_000_000,
            create_merge_fields: true,
            updated_at_field: Some("updated_at".into()),
            cron: None,
            timezone: "UTC".into(),
            after_refresh: false,
        }),
    )
    .await?;
    Ok(())
}

/// Runs the export, changes some profiles, and runs it again; the second run sends only the
/// change, as the counts of write requests show. Returns both runs' exit codes.
async fn run_twice(app: &App, sim: &RunningSim, csv: &Path) -> Result<(i32, i32), Failure> {
    let before_first = sim.counters();
    let run_args = || RunArgs {
        export: "newsletter".into(),
        json: false,
        max_in_flight: 10,
        timeout: 30.0,
        quiet: false,
        full: false,
    };
    title("segsync run newsletter");
    let first = super::run::run(app, run_args()).await?;
    let after_first = sim.counters();

    title("Some profiles change (new city, lower spend, 25 new customers); segsync profiles import again");
    import_profiles(app, csv, &changed_sample(SAMPLE))?;

    title("segsync run newsletter (only the change is sent)");
    let second = super::run::run(app, run_args()).await?;
    let after_second = sim.counters();
    println!(
        "Mailchimp write requests: first run {}, second run {}",
        after_first.writes - before_first.writes,
        after_second.writes - after_first.writes
    );
    Ok((first, second))
}

/// What the audience holds now, and that the people who had unsubscribed still are.
fn show_outcome(sim: &RunningSim, list_id: &str, unsubscribed: &[String]) {
    title("What Mailchimp now holds");
    show_audience(sim, list_id);
    let still = sim
        .list_view(list_id)
        .map(|v| {
            v.members
                .iter()
                .filter(|m| {
                    unsubscribed.contains(&m.email_address) && m.status == Status::Unsubscribed
                })
                .count()
        })
        .unwrap_or(0);
    println!(
        "the {} people who had unsubscribed are still unsubscribed: {}",
        unsubscribed.len(),
        still
    );
}
