//! Exports: the input a person, a form or a file gives ([`ExportInput`]), the checks
//! [`save_export`] makes against the segments, the profiles and the audience in Mailchimp
//! before it saves, and pausing, access and removal.

use segsync_core::{NewStatus, RemovalPolicy};
use serde::{Deserialize, Serialize};

use super::{audit, can_use, check_name, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::engine::{self, RunSettings};
use crate::mailchimp::Client;
use crate::state::{ExportConfig, FieldMap, Role, Schedule, SegmentTag, StateStore};

/// An export as a person or a file describes it; [`save_export`] checks it and turns it into
/// an [`ExportConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    pub name: String,
    pub connection: String,
    /// The Mailchimp audience (list) id.
    pub audience: String,
    pub email_field: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// Further merge fields: tag and column.
    #[serde(default)]
    pub merge: Vec<FieldMap>,
    /// The segments to send, each with the tag its members get (by default its name).
    pub segments: Vec<SegmentChoice>,
    #[serde(default = "default_status")]
    #[schema(value_type = crate::server::openapi::NewStatus)]
    pub status_if_new: NewStatus,
    #[serde(default = "default_removal")]
    #[schema(value_type = crate::server::openapi::RemovalPolicy)]
    pub removal: RemovalPolicy,
    #[serde(default = "default_max", deserialize_with = "super::numbers::u64")]
    pub max_profiles: u64,
    #[serde(default)]
    pub create_merge_fields: bool,
    #[serde(default)]
    pub updated_at_field: Option<String>,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub paused: bool,
}

fn default_status() -> NewStatus {
    NewStatus::Subscribed
}
fn default_removal() -> RemovalPolicy {
    RemovalPolicy::Untag
}
fn default_max() -> u64 {
    1_000_000
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentChoice {
    pub segment: String,
    #[serde(default)]
    pub tag: Option<String>,
}

impl ExportInput {
    /// The input that describes an existing configuration (for editing and `segsync dump`).
    pub fn from_config(e: &ExportConfig) -> ExportInput {
        let field = |tag: &str| {
            e.fields
                .iter()
                .find(|f| f.tag == tag)
                .map(|f| f.column.clone())
        };
        ExportInput {
            name: e.name.clone(),
            connection: e.connection.clone(),
            audience: e.audience_id.clone(),
            email_field: e.email_field.clone(),
            first_name: field("FNAME"),
            last_name: field("LNAME"),
            merge: e
                .fields
                .iter()
                .filter(|f| f.tag != "FNAME" && f.tag != "LNAME")
                .cloned()
                .collect(),
            segments: e
                .segments
                .iter()
                .map(|s| SegmentChoice {
                    segment: s.segment.clone(),
                    tag: (s.tag != s.segment).then(|| s.tag.clone()),
                })
                .collect(),
            status_if_new: e.status_if_new,
            removal: e.removal,
            max_profiles: e.max_profiles,
            create_merge_fields: e.create_merge_fields,
            updated_at_field: e.updated_at_field.clone(),
            schedule: e.schedule.clone(),
            paused: e.paused,
        }
    }
}

/// Whether [`save_export`] creates a new export or replaces an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveMode {
    Create,
    Replace,
}

/// Checks a schedule: a cron expression that parses, in a time zone that exists.
pub fn check_schedule(s: &Schedule) -> OpResult<()> {
    if let Schedule::Cron { cron, timezone } = s {
        crate::schedule::CronSchedule::parse(cron, timezone).map_err(OpError::Invalid)?;
    }
    Ok(())
}

/// Checks an export against the segments, the profiles and the audience in Mailchimp, then
/// saves it. Contributors may only use connections shared with contributors.
pub async fn save_export(
    app: &App,
    actor: &Actor,
    input: ExportInput,
    mode: SaveMode,
) -> OpResult<ExportConfig> {
    require(actor, Role::Contributor, "configuring an export")?;
    check_name("export", &input.name)?;
    let mut state = app.state()?;
    let existing = existing_export(&state, &input.name, mode)?;
    let mut config = checked_config(app, &state, actor, &input, existing.as_ref())?;
    let client = engine::client_for(&state, app, &config.connection, &RunSettings::default())?;
    let audience = audience_name(&client, &config).await?;
    config.audience_name = Some(audience.clone());
    save_and_audit(&mut state, actor, existing, &config, &audience)?;
    Ok(config)
}

/// The export `name` as saved now (None if there is none), refused when `mode` expects the
/// other case.
fn existing_export(
    state: &StateStore,
    name: &str,
    mode: SaveMode,
) -> OpResult<Option<ExportConfig>> {
    let existing = state.export(name).ok();
    match (mode, &existing) {
        (SaveMode::Create, Some(_)) => {
            return Err(OpError::Conflict(format!(
                "an export named \"{}\" exists already",
                name
            )))
        }
        (SaveMode::Replace, None) => {
            return Err(OpError::NotFound(format!("no export named \"{}\"", name)))
        }
        _ => {}
    }
    Ok(existing)
}

/// Makes every check that needs no call to Mailchimp, then builds the configuration. Their
/// order decides which refusal an input with several mistakes gets.
fn checked_config(
    app: &App,
    state: &StateStore,
    actor: &Actor,
    input: &ExportInput,
    existing: Option<&ExportConfig>,
) -> OpResult<ExportConfig> {
    check_schedule(&input.schedule)?;
    let fields = field_maps(input)?;
    let (segments, source) = segment_tags(state, input)?;
    check_connection(state, actor, input, existing)?;
    check_columns(app, source.as_deref(), input, &fields)?;
    Ok(ExportConfig {
        name: input.name.clone(),
        connection: input.connection.clone(),
        audience_id: input.audience.trim().to_string(),
        email_field: input.email_field.clone(),
        fields,
        segments,
        status_if_new: input.status_if_new,
        removal: input.removal,
        max_profiles: input.max_profiles,
        create_merge_fields: input.create_merge_fields,
        updated_at_field: input.updated_at_field.clone(),
        schedule: input.schedule.clone(),
        paused: input.paused,
        audience_name: existing.and_then(|e| e.audience_name.clone()),
    })
}

/// The merge fields an export maps: first name, last name, then the others, each tag well
/// formed and mapped once.
fn field_maps(input: &ExportInput) -> OpResult<Vec<FieldMap>> {
    let mut fields = Vec::new();
    if let Some(c) = &input.first_name {
        fields.push(FieldMap {
            tag: "FNAME".into(),
            column: c.clone(),
            kind: None,
        });
    }
    if let Some(c) = &input.last_name {
        fields.push(FieldMap {
            tag: "LNAME".into(),
            column: c.clone(),
            kind: None,
        });
    }
    for m in &input.merge {
        let tag = m.tag.trim().to_uppercase();
        if tag.is_empty()
            || tag.len() > 10
            || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(OpError::Invalid(format!(
                "merge field {:?}: a merge tag is 1 to 10 letters, digits or underscores",
                m.tag
            )));
        }
        if fields.iter().any(|f: &FieldMap| f.tag == tag) {
            return Err(OpError::Invalid(format!(
                "merge field {tag} is mapped twice"
            )));
        }
        fields.push(FieldMap {
            tag,
            column: m.column.trim().to_string(),
            kind: m.kind,
        });
    }
    Ok(fields)
}

/// The segments an export sends with their tags, and the profile source they all read (None
/// for the imported profiles).
fn segment_tags(
    state: &StateStore,
    input: &ExportInput,
) -> OpResult<(Vec<SegmentTag>, Option<String>)> {
    if input.segments.is_empty() {
        return Err(OpError::Invalid(
            "an export sends at least one segment".into(),
        ));
    }
    let mut segments: Vec<SegmentTag> = Vec::new();
    // Where the profiles come from: the one source of all the chosen segments.
    let mut source: Option<(String, Option<String>)> = None;
    for s in &input.segments {
        let record = state
            .segment(&s.segment)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        match &source {
            None => source = Some((record.name.clone(), record.source.clone())),
            Some((first, src)) if *src != record.source => {
                let from = |s: &Option<String>| match s {
                    Some(name) => format!("profile source \"{name}\""),
                    None => "the imported profiles".to_string(),
                };
                return Err(OpError::Invalid(format!(
                    "segments \"{first}\" and \"{}\" read different profiles ({} and {}): an export's segments all come from one source",
                    record.name,
                    from(src),
                    from(&record.source)
                )));
            }
            Some(_) => {}
        }
        let tag = s.tag.clone().unwrap_or_else(|| s.segment.clone());
        check_name("tag", &tag)?;
        check_tag_length(&tag)?;
        if segments.iter().any(|x| x.segment == s.segment) {
            return Err(OpError::Invalid(format!(
                "segment \"{}\" is chosen twice",
                s.segment
            )));
        }
        segments.push(SegmentTag {
            segment: s.segment.clone(),
            tag,
        });
    }
    Ok((segments, source.and_then(|(_, src)| src)))
}

/// The longest tag name segsync sends: Mailchimp has been reported to cap static segment
/// (tag) names at 50 characters, so a longer one is refused when the export is saved rather
/// than by Mailchimp in the middle of a run.
pub const MAX_TAG_CHARS: usize = 50;

fn check_tag_length(tag: &str) -> OpResult<()> {
    let n = tag.chars().count();
    if n > MAX_TAG_CHARS {
        return Err(OpError::Invalid(format!(
            "tag name {tag:?} refused: it is {n} characters long, and Mailchimp takes at most {MAX_TAG_CHARS} (give it a shorter tag: --tag SEGMENT=TAG on the command line, tag = \"...\" in a file)"
        )));
    }
    Ok(())
}

/// Refuses a connection that does not exist or that `actor` may not use, on either side of
/// a move: a contributor cannot take an export away from a connection kept for admins.
fn check_connection(
    state: &StateStore,
    actor: &Actor,
    input: &ExportInput,
    existing: Option<&ExportConfig>,
) -> OpResult<()> {
    let conn = state.connection(&input.connection).map_err(|_| {
        OpError::Invalid(format!(
            "no connection named \"{}\" (an admin adds connections; see `segsync connection list`)",
            input.connection
        ))
    })?;
    if !can_use(actor, &conn) {
        return Err(OpError::Forbidden(format!(
            "connection \"{}\" is for admins only: an admin can share it with contributors",
            input.connection
        )));
    }
    if let Some(old) = existing {
        if old.connection != input.connection {
            check_export_access(state, actor, old)?;
        }
    }
    Ok(())
}

/// Refuses a mapped column (the email column, a merge field's, the updated-at field) that
/// the profiles of `source` do not have.
fn check_columns(
    app: &App,
    source: Option<&str>,
    input: &ExportInput,
    fields: &[FieldMap],
) -> OpResult<()> {
    let columns = app
        .profiles_of(source)
        .and_then(|p| p.columns())
        .map_err(|e| OpError::Invalid(format!("{e:#}")))?;
    let known = |c: &str| columns.iter().any(|x| x.name == c);
    for c in std::iter::once(&input.email_field)
        .chain(fields.iter().map(|f| &f.column))
        .chain(input.updated_at_field.iter())
    {
        if !known(c) {
            let names: Vec<&str> = columns.iter().map(|x| x.name.as_str()).collect();
            return Err(OpError::Invalid(format!(
                "no profile column \"{c}\" (columns: {})",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// The audience's name, once Mailchimp has shown that the audience exists and that the
/// mapping fits its merge fields.
async fn audience_name(client: &Client, config: &ExportConfig) -> OpResult<String> {
    let list = client
        .list(&config.audience_id)
        .await
        .map_err(|e| OpError::Invalid(e.to_string()))?;
    let merge_fields = client
        .merge_fields(&config.audience_id)
        .await
        .map_err(|e| OpError::Invalid(e.to_string()))?;
    let tags: Vec<&str> = config.fields.iter().map(|f| f.tag.as_str()).collect();
    if let Some(problem) =
        engine::mapping_problems(&list.name, &tags, config.create_merge_fields, &merge_fields)
            .into_iter()
            .next()
    {
        return Err(OpError::Invalid(problem));
    }
    Ok(list.name)
}

/// Saves the export, new or in place of the old one, and audits it. An export saved unchanged
/// is neither written nor audited, so that saving the same configuration again (`apply` run
/// twice, a form saved untouched) leaves the audit log as it was.
fn save_and_audit(
    state: &mut StateStore,
    actor: &Actor,
    existing: Option<ExportConfig>,
    config: &ExportConfig,
    audience: &str,
) -> OpResult<()> {
    match existing {
        None => {
            state.add_export(config)?;
            audit(
                state,
                actor,
                "export.add",
                &config.name,
                &format!(
                    "connection {}, audience {} ({}), segments {}",
                    config.connection,
                    audience,
                    config.audience_id,
                    segment_names(config)
                ),
            )?;
        }
        Some(old) if old == *config => {}
        Some(old) => {
            state.replace_export(config)?;
            audit(
                state,
                actor,
                "export.update",
                &config.name,
                &describe_change(&old, config),
            )?;
        }
    }
    Ok(())
}

fn segment_names(e: &ExportConfig) -> String {
    e.segments
        .iter()
        .map(|s| s.segment.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short description of what changed between two configurations, for the audit log.
pub fn describe_change(old: &ExportConfig, new: &ExportConfig) -> String {
    let mut what = Vec::new();
    if old.connection != new.connection {
        what.push(format!(
            "connection {} -> {}",
            old.connection, new.connection
        ));
    }
    if old.audience_id != new.audience_id {
        what.push(format!(
            "audience {} -> {}",
            old.audience_id, new.audience_id
        ));
    }
    if old.email_field != new.email_field || old.fields != new.fields {
        what.push("field mapping".into());
    }
    if old.segments != new.segments {
        what.push(format!("segments {}", segment_names(new)));
    }
    if old.schedule != new.schedule {
        what.push(format!(
            "schedule {}",
            crate::schedule::describe(&new.schedule)
        ));
    }
    if old.paused != new.paused {
        what.push(if new.paused { "paused" } else { "resumed" }.into());
    }
    if old.status_if_new != new.status_if_new
        || old.removal != new.removal
        || old.max_profiles != new.max_profiles
        || old.create_merge_fields != new.create_merge_fields
        || old.updated_at_field != new.updated_at_field
    {
        what.push("options".into());
    }
    what.join("; ")
}

/// Pauses or resumes an export's schedule.
pub fn set_paused(app: &App, actor: &Actor, name: &str, paused: bool) -> OpResult<ExportConfig> {
    require(actor, Role::Contributor, "pausing an export")?;
    let mut state = app.state()?;
    let mut e = state.export(name)?;
    check_export_access(&state, actor, &e)?;
    if e.paused != paused {
        e.paused = paused;
        state.replace_export(&e)?;
        audit(
            &state,
            actor,
            if paused {
                "export.pause"
            } else {
                "export.resume"
            },
            name,
            "",
        )?;
    }
    Ok(e)
}

/// Refuses a contributor an export on a connection kept for admins.
pub fn check_export_access(state: &StateStore, actor: &Actor, e: &ExportConfig) -> OpResult<()> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    match state.connection(&e.connection) {
        Ok(c) if can_use(actor, &c) => Ok(()),
        Ok(_) => Err(OpError::Forbidden(format!(
            "export \"{}\" runs on connection \"{}\", which is for admins only",
            e.name, e.connection
        ))),
        // Its connection is gone: anyone allowed to manage exports may fix or remove it.
        Err(_) => Ok(()),
    }
}

pub fn remove_export(app: &App, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Contributor, "removing an export")?;
    let mut state = app.state()?;
    let e = state.export(name)?;
    check_export_access(&state, actor, &e)?;
    state.remove_export(name)?;
    audit(
        &state,
        actor,
        "export.remove",
        name,
        "snapshot dropped; run history kept",
    )?;
    Ok(())
}
