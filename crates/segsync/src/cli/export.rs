//! `segsync export ...`: exports (a connection, an audience, a field mapping and segments),
//! and how the flags of `export add` become one.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use segsync_core::{NewStatus, RemovalPolicy};

use super::{op_failure, run_failure, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::engine::{self, RunSettings};
use crate::ops::{self, Actor};
use crate::state::{FieldMap, Schedule};

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum ExportCmd {
    /// Configure an export; the audience and the mapping are checked with Mailchimp.
    Add(ExportAdd),
    List,
    Show {
        name: String,
    },
    /// Remove an export and its snapshot (its run history stays).
    Remove {
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ExportAdd {
    pub name: String,
    #[arg(long)]
    pub connection: String,
    /// The Mailchimp audience (list) id.
    #[arg(long)]
    pub audience: String,
    /// The profile column holding the email address.
    #[arg(long)]
    pub email_field: String,
    #[arg(long)]
    pub first_name: Option<String>,
    #[arg(long)]
    pub last_name: Option<String>,
    /// Another merge field: TAG=COLUMN (repeatable).
    #[arg(long = "merge", value_name = "TAG=COLUMN")]
    pub merge: Vec<String>,
    /// A segment to send (repeatable); its members get a tag named after it.
    #[arg(long = "segment", required = true)]
    pub segments: Vec<String>,
    /// Tag name for a segment: SEGMENT=TAGNAME (repeatable).
    #[arg(long = "tag", value_name = "SEGMENT=TAGNAME")]
    pub tags: Vec<String>,
    #[arg(long, default_value = "subscribed", value_parser = ["subscribed", "pending", "transactional"])]
    pub status_if_new: String,
    #[arg(long, default_value = "untag", value_parser = ["untag", "archive", "unsubscribe"])]
    pub removal: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub max_profiles: u64,
    /// Create mapped merge fields the audience lacks (as text fields).
    #[arg(long)]
    pub create_merge_fields: bool,
    /// A column with each profile's last update, to choose among duplicate addresses.
    #[arg(long)]
    pub updated_at_field: Option<String>,
    /// Run on this cron schedule under `segsync serve` ("0 6 * * *": every day at 06:00).
    #[arg(long, conflicts_with = "after_refresh")]
    pub cron: Option<String>,
    /// The time zone of --cron (an IANA name).
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Run after every profile import under `segsync serve`.
    #[arg(long)]
    pub after_refresh: bool,
}

fn pair(s: &str, what: &str) -> Result<(String, String), Failure> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| usage(anyhow!("{what} takes NAME=VALUE, got \"{s}\"")))
}

/// The export the flags of `segsync export add` describe.
fn export_input(a: ExportAdd) -> Result<ops::ExportInput, Failure> {
    let mut merge = Vec::new();
    for m in &a.merge {
        let (tag, column) = pair(m, "--merge")?;
        merge.push(FieldMap {
            tag,
            column,
            kind: None,
        });
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    for t in &a.tags {
        tags.push(pair(t, "--tag")?);
    }
    if let Some((seg, _)) = tags.iter().find(|(seg, _)| !a.segments.contains(seg)) {
        return Err(usage(anyhow!(
            "--tag {seg}=...: {seg} is not one of the export's --segment"
        )));
    }
    let segments = a
        .segments
        .iter()
        .map(|s| ops::SegmentChoice {
            segment: s.clone(),
            tag: tags
                .iter()
                .find(|(seg, _)| seg == s)
                .map(|(_, t)| t.clone()),
        })
        .collect();
    let schedule = match (&a.cron, a.after_refresh) {
        (Some(cron), _) => Schedule::Cron {
            cron: cron.clone(),
            timezone: a.timezone.clone(),
        },
        (None, true) => Schedule::AfterRefresh,
        (None, false) => Schedule::Manual,
    };
    Ok(ops::ExportInput {
        name: a.name,
        connection: a.connection,
        audience: a.audience,
        email_field: a.email_field,
        first_name: a.first_name,
        last_name: a.last_name,
        merge,
        segments,
        status_if_new: match a.status_if_new.as_str() {
            "pending" => NewStatus::Pending,
            "transactional" => NewStatus::Transactional,
            _ => NewStatus::Subscribed,
        },
        removal: match a.removal.as_str() {
            "archive" => RemovalPolicy::Archive,
            "unsubscribe" => RemovalPolicy::Unsubscribe,
            _ => RemovalPolicy::Untag,
        },
        max_profiles: a.max_profiles,
        create_merge_fields: a.create_merge_fields,
        updated_at_field: a.updated_at_field,
        schedule,
        paused: false,
    })
}

pub(super) async fn export(app: &App, cmd: ExportCmd) -> Result<i32, Failure> {
    let state = app.state()?;
    match cmd {
        ExportCmd::Add(a) => {
            let input = export_input(a)?;
            let config = ops::save_export(app, &Actor::cli(), input, ops::SaveMode::Create)
                .await
                .map_err(op_failure)?;
            let list = engine::client_for(&state, app, &config.connection, &RunSettings::default())
                .map_err(run_failure)?
                .list(&config.audience_id)
                .await
                .map_err(|e| usage(anyhow!("{e}")))?;
            println!(
                "export \"{}\" added: audience \"{}\" ({}), {} segment(s)",
                config.name,
                list.name,
                config.audience_id,
                config.segments.len()
            );
            if list.double_optin && config.status_if_new == NewStatus::Subscribed {
                println!("note: the audience uses double opt-in; consider --status-if-new pending");
            }
        }
        ExportCmd::List => {
            for e in state.exports()? {
                let segs: Vec<&str> = e.segments.iter().map(|s| s.segment.as_str()).collect();
                println!(
                    "{:<20} connection {:<12} audience {:<24} segments {}",
                    e.name,
                    e.connection,
                    super::runs::audience_label(&e),
                    segs.join(", ")
                );
            }
        }
        ExportCmd::Show { name } => {
            let e = state.export(&name).map_err(usage)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&e).expect("config serialises")
            );
        }
        ExportCmd::Remove { name } => {
            ops::remove_export(app, &Actor::cli(), &name).map_err(op_failure)?;
            println!("export \"{name}\" removed");
        }
    }
    Ok(EXIT_OK)
}
