//! Data > Exports > "Add destination", and an export's "Edit": the seed's form, in two steps
//! that work without JavaScript.
//!
//! 1. The connection for the export, among those the person may use.
//! 2. The rest: the audience (from those the connection can see in Mailchimp), data
//!    matching (the email column, "Add attribute" rows of merge tag and profile column),
//!    the segments with their member counts and tags, the options and the schedule.
//!
//! "Add attribute" and "Remove" are submit buttons that re-render the form with everything
//! the person typed; "Save" hands the form to [`ops::save_export`], and a refusal re-renders
//! it with the message.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use segsync_core::{NewStatus, RemovalPolicy};
use serde::Deserialize;

use super::export_help::{self, Picker};
use super::layout::{csrf, kind_label, Nav, Page};
use super::segments::{columns, counted};
use super::{num, redirect_notice, seg, state_of, FormData, OrPage, PageResult, User};
use crate::mailchimp::ListInfo;
use crate::merge_type::MergeType;
use crate::ops::{self, ConnectionView, ExportInput, SaveMode, SegmentChoice};
use crate::profiles::ColumnType;
use crate::server::api::segments::{sizes_view, SizesView};
use crate::server::auth::Authed;
use crate::server::{ApiError, AppState};
use crate::state::{FieldMap, Role, Schedule};

/// Merge tags offered while typing (Mailchimp's defaults); any other tag may be typed.
const MERGE_TAGS: [(&str, &str); 5] = [
    ("FNAME", "first name"),
    ("LNAME", "last name"),
    ("ADDRESS", "address"),
    ("PHONE", "phone number"),
    ("BIRTHDAY", "birthday"),
];

const DEFAULT_MAX_PROFILES: u64 = 1_000_000;

/// Adding a new export, or editing the one named.
enum Mode {
    New,
    Edit(String),
}

impl Mode {
    fn url(&self) -> String {
        match self {
            Mode::New => "/exports/new".into(),
            Mode::Edit(name) => format!("/exports/{}/edit", seg(name)),
        }
    }

    fn title(&self) -> String {
        match self {
            Mode::New => "Add destination".into(),
            Mode::Edit(name) => format!("Edit export {name}"),
        }
    }

    fn save_mode(&self) -> SaveMode {
        match self {
            Mode::New => SaveMode::Create,
            Mode::Edit(_) => SaveMode::Replace,
        }
    }
}

/// The form as the person filled it, kept across re-renders.
#[derive(Clone, Debug, Default)]
struct ExportForm {
    name: String,
    connection: String,
    audience: String,
    email_field: String,
    /// Attribute rows: merge tag, profile column.
    attrs: Vec<(String, String)>,
    /// Each row's merge field type when created ("" for the one that fits the column).
    attr_types: Vec<String>,
    /// Why the email column was preselected.
    email_hint: Option<String>,
    create_merge_fields: bool,
    /// The segments ticked.
    chosen: Vec<String>,
    /// The tag typed for each segment (ticked or not, so unticking loses nothing).
    tags: HashMap<String, String>,
    status_if_new: String,
    removal: String,
    max_profiles: String,
    updated_at_field: String,
    /// `manual`, `cron` or `after_refresh`.
    schedule: String,
    cron: String,
    timezone: String,
    picker: Picker,
    paused: bool,
}

fn status_value(s: NewStatus) -> &'static str {
    match s {
        NewStatus::Subscribed => "subscribed",
        NewStatus::Pending => "pending",
        NewStatus::Transactional => "transactional",
    }
}

fn removal_value(r: RemovalPolicy) -> &'static str {
    match r {
        RemovalPolicy::Untag => "untag",
        RemovalPolicy::Archive => "archive",
        RemovalPolicy::Unsubscribe => "unsubscribe",
    }
}

impl ExportForm {
    fn fresh(connection: &str) -> ExportForm {
        ExportForm {
            connection: connection.to_string(),
            status_if_new: "subscribed".into(),
            removal: "untag".into(),
            max_profiles: DEFAULT_MAX_PROFILES.to_string(),
            schedule: "manual".into(),
            timezone: "UTC".into(),
            picker: Picker::from_cron("0 6 * * *"),
            ..Default::default()
        }
    }

    fn from_input(i: &ExportInput) -> ExportForm {
        let mut attrs = Vec::new();
        if let Some(c) = &i.first_name {
            attrs.push(("FNAME".to_string(), c.clone()));
        }
        if let Some(c) = &i.last_name {
            attrs.push(("LNAME".to_string(), c.clone()));
        }
        attrs.extend(i.merge.iter().map(|m| (m.tag.clone(), m.column.clone())));
        let mut attr_types = vec![String::new(); attrs.len() - i.merge.len()];
        attr_types.extend(
            i.merge
                .iter()
                .map(|m| m.kind.map_or("", |k| k.as_str()).to_string()),
        );
        let (schedule, cron, timezone) = match &i.schedule {
            Schedule::Manual => ("manual", String::new(), "UTC".to_string()),
            Schedule::Cron { cron, timezone } => ("cron", cron.clone(), timezone.clone()),
            Schedule::AfterRefresh => ("after_refresh", String::new(), "UTC".to_string()),
        };
        ExportForm {
            name: i.name.clone(),
            connection: i.connection.clone(),
            audience: i.audience.clone(),
            email_field: i.email_field.clone(),
            attrs,
            attr_types,
            email_hint: None,
            create_merge_fields: i.create_merge_fields,
            chosen: i.segments.iter().map(|s| s.segment.clone()).collect(),
            tags: i
                .segments
                .iter()
                .map(|s| {
                    (
                        s.segment.clone(),
                        s.tag.clone().unwrap_or_else(|| s.segment.clone()),
                    )
                })
                .collect(),
            status_if_new: status_value(i.status_if_new).into(),
            removal: removal_value(i.removal).into(),
            max_profiles: i.max_profiles.to_string(),
            updated_at_field: i.updated_at_field.clone().unwrap_or_default(),
            schedule: schedule.into(),
            picker: Picker::from_cron(if cron.is_empty() { "0 6 * * *" } else { &cron }),
            cron,
            timezone,
            paused: i.paused,
        }
    }

    fn from_form(f: &FormData) -> ExportForm {
        let attrs = f
            .all("attr_tag")
            .into_iter()
            .zip(f.all("attr_column"))
            .map(|(t, c)| (t.trim().to_string(), c.trim().to_string()))
            .collect();
        let tags =
            f.0.iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("tag:")
                        .map(|s| (s.to_string(), v.trim().to_string()))
                })
                .collect();
        ExportForm {
            name: f.text("name"),
            connection: f.text("connection"),
            audience: f.text("audience"),
            email_field: f.text("email_field"),
            attrs,
            attr_types: f.all("attr_type").into_iter().map(str::to_string).collect(),
            email_hint: None,
            create_merge_fields: f.has("create_merge_fields"),
            chosen: f.all("segment").into_iter().map(str::to_string).collect(),
            tags,
            status_if_new: f.text("status_if_new"),
            removal: f.text("removal"),
            max_profiles: f.text("max_profiles"),
            updated_at_field: f.text("updated_at_field"),
            schedule: f.text("schedule"),
            cron: f.text("cron"),
            timezone: f.text("timezone"),
            picker: Picker {
                every: f.text("every"),
                weekday: f.text("weekday"),
                at: f.text("at"),
            },
            paused: f.get("paused") == Some("true"),
        }
    }

    fn max_profiles(&self) -> Result<u64, String> {
        let digits: String = self
            .max_profiles
            .chars()
            .filter(|c| !matches!(c, ',' | '_' | ' '))
            .collect();
        if digits.is_empty() {
            return Ok(DEFAULT_MAX_PROFILES);
        }
        digits.parse().map_err(|_| {
            format!(
                "Profile limit \"{}\": enter a whole number of profiles, such as 1000000.",
                self.max_profiles
            )
        })
    }

    /// The input [`ops::save_export`] checks. Only what the form itself must read is refused
    /// here (a number, a choice); every rule about exports is ops's.
    fn to_input(&self) -> Result<ExportInput, String> {
        let status_if_new = match self.status_if_new.as_str() {
            "subscribed" | "" => NewStatus::Subscribed,
            "pending" => NewStatus::Pending,
            "transactional" => NewStatus::Transactional,
            other => return Err(format!("Unknown status for new members \"{other}\".")),
        };
        let removal = match self.removal.as_str() {
            "untag" | "" => RemovalPolicy::Untag,
            "archive" => RemovalPolicy::Archive,
            "unsubscribe" => RemovalPolicy::Unsubscribe,
            other => return Err(format!("Unknown removal policy \"{other}\".")),
        };
        let schedule = match self.schedule.as_str() {
            "manual" | "" => Schedule::Manual,
            "cron" => Schedule::Cron {
                cron: self.picker.to_cron()?.unwrap_or_else(|| self.cron.clone()),
                timezone: if self.timezone.is_empty() {
                    "UTC".into()
                } else {
                    self.timezone.clone()
                },
            },
            "after_refresh" => Schedule::AfterRefresh,
            other => return Err(format!("Unknown schedule \"{other}\".")),
        };
        let (mut first_name, mut last_name, mut merge) = (None, None, Vec::new());
        for (i, (tag, column)) in self.attrs.iter().enumerate() {
            if tag.is_empty() && column.is_empty() {
                continue;
            }
            match tag.to_uppercase().as_str() {
                "FNAME" if first_name.is_none() => first_name = Some(column.clone()),
                "LNAME" if last_name.is_none() => last_name = Some(column.clone()),
                _ => merge.push(FieldMap {
                    tag: tag.clone(),
                    column: column.clone(),
                    kind: self.attr_types.get(i).and_then(|t| MergeType::parse(t)),
                }),
            }
        }
        Ok(ExportInput {
            name: self.name.clone(),
            connection: self.connection.clone(),
            audience: self.audience.clone(),
            email_field: self.email_field.clone(),
            first_name,
            last_name,
            merge,
            segments: self
                .chosen
                .iter()
                .map(|s| SegmentChoice {
                    segment: s.clone(),
                    tag: self.tags.get(s).filter(|t| !t.is_empty()).cloned(),
                })
                .collect(),
            status_if_new,
            removal,
            max_profiles: self.max_profiles()?,
            create_merge_fields: self.create_merge_fields,
            updated_at_field: Some(self.updated_at_field.clone()).filter(|f| !f.is_empty()),
            schedule,
            paused: self.paused,
        })
    }
}

/// The connections `who` may export with.
fn usable_connections(app: &AppState, who: &Authed) -> Result<Vec<ConnectionView>, ApiError> {
    Ok(state_of(app)?
        .connections()?
        .iter()
        .filter(|c| ops::can_use(&who.actor, c))
        .map(ConnectionView::from)
        .collect())
}

/// Step 1: the connection for the export.
fn connection_step(
    app: &AppState,
    who: &Authed,
    mode: &Mode,
    selected: &str,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    let conns = usable_connections(app, who).or_page(who)?;
    let body = html! {
        div class="card" {
            h2 { "Connection for export" }
            @if conns.is_empty() {
                p { "There is no connection you may use." }
                p class="muted" {
                    @if who.actor.role == Role::Admin {
                        "Add one first in " a href="/admin/connections/new" { "Admin > Connections" } "."
                    } @else {
                        "An admin adds connections to Mailchimp (Admin > Connections) and can let contributors use them."
                    }
                }
            } @else {
                form method="get" action=(mode.url()) {
                    div class="field" {
                        label for="connection" { "Connection for export" }
                        select id="connection" name="connection" {
                            optgroup label="Mailchimp" {
                                @for c in &conns {
                                    option value=(c.name) selected[c.name == selected] {
                                        (c.display_name) " (" (kind_label(&c.credential_kind)) ")"
                                    }
                                }
                            }
                        }
                        span class="hint" { "Only the connections you may use are listed." }
                    }
                    div class="actions" {
                        button type="submit" class="btn btn-primary" { "Next" }
                        a class="btn btn-secondary" href="/exports" { "Cancel" }
                    }
                }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Exports, mode.title())
        .error(error)
        .render(body);
    Ok((status, page).into_response())
}

/// What step 2 shows besides the form: read from the state, the profiles and Mailchimp.
struct Context {
    connection: Option<ConnectionView>,
    audiences: Result<Vec<ListInfo>, String>,
    columns: Vec<String>,
    /// Each column's type, for the merge field types that fit.
    kinds: HashMap<String, ColumnType>,
    segments: Vec<(String, Result<u64, String>)>,
    /// The distinct members the chosen segments give (none chosen: `None`).
    sizes: Option<Result<SizesView, String>>,
}

/// The members the chosen segments give over the email column, as a run counts them.
async fn sizes(
    app: &AppState,
    f: &ExportForm,
) -> Result<Option<Result<SizesView, String>>, ApiError> {
    if f.chosen.is_empty() || f.email_field.is_empty() {
        return Ok(None);
    }
    let (installation, chosen, email) = (app.app.clone(), f.chosen.clone(), f.email_field.clone());
    let names = chosen.clone();
    let counted = app
        .predicates
        .run(move || ops::builder::segment_sizes(&installation, &chosen, &email))
        .await?;
    let max = f.max_profiles().ok();
    Ok(Some(
        counted
            .map(|c| sizes_view(&names, c, max))
            .map_err(|e| ApiError::from(e).message),
    ))
}

/// Step 2: everything else. `None` when the connection cannot be used (the answer to send).
async fn context(app: &AppState, who: &Authed, f: &ExportForm) -> Result<Context, ApiError> {
    let state = state_of(app)?;
    let connection = state
        .connection(&f.connection)
        .ok()
        .map(|c| ConnectionView::from(&c));
    let segments = state.segments()?;
    drop(state);
    let audiences = match ops::audiences(&app.app, &who.actor, &f.connection).await {
        Ok(a) => Ok(a),
        Err(e) => match ApiError::from(e) {
            e if e.status == StatusCode::BAD_GATEWAY => Err(e.message),
            e => return Err(e),
        },
    };
    let typed = columns(app).await?;
    let kinds = typed.iter().map(|c| (c.name.clone(), c.kind)).collect();
    let columns = typed.into_iter().map(|c| c.name).collect();
    let segments = counted(app, segments)
        .await?
        .into_iter()
        .map(|(s, c)| (s.name, c))
        .collect();
    Ok(Context {
        connection,
        audiences,
        columns,
        kinds,
        segments,
        sizes: sizes(app, f).await?,
    })
}

fn column_options(columns: &[String], selected: &str, none: Option<&str>) -> Markup {
    html! {
        @if let Some(label) = none {
            option value="" selected[selected.is_empty()] { (label) }
        }
        @if !selected.is_empty() && !columns.iter().any(|c| c == selected) {
            option value=(selected) selected { (selected) " (not a profile column)" }
        }
        @for c in columns {
            option value=(c) selected[c == selected] { (c) }
        }
    }
}

fn form_page(
    who: &Authed,
    mode: &Mode,
    f: &ExportForm,
    cx: &Context,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let max = f.max_profiles().unwrap_or(DEFAULT_MAX_PROFILES);
    let sized = cx.sizes.as_ref().and_then(|s| s.as_ref().ok());
    let total = sized.map_or(0, |s| s.members);
    let over = total > max;
    let change_connection = match mode {
        Mode::New => format!(
            "/exports/new?step=connection&connection={}",
            super::query_enc(&f.connection)
        ),
        Mode::Edit(_) => format!("{}?step=connection", mode.url()),
    };
    // Adding or removing a row comes back to the rows, not to the top of the page.
    let rows_url = format!("{}#attributes-section", mode.url());
    let body = html! {
        form method="post" action=(mode.url()) id="export-form" {
            (csrf(who))
            // Enter in a text field saves (the first submit button of a form is its default).
            button type="submit" name="save" value="1" class="default-submit" tabindex="-1" aria-hidden="true" { "Save" }
            input type="hidden" name="connection" value=(f.connection);
            input type="hidden" name="paused" value=(f.paused);
            div class="card" {
                h2 { "Export" }
                div class="grid2" {
                    div class="field" {
                        @match mode {
                            Mode::New => {
                                label for="export_name" { "Export name" }
                                input id="export_name" name="name" type="text" value=(f.name) required placeholder="newsletter";
                                span class="hint" { "How the export is called in lists, the API and the command line." }
                            }
                            Mode::Edit(name) => {
                                span class="label" { "Export name" }
                                input type="hidden" name="name" value=(name);
                                p { strong { (name) } }
                            }
                        }
                    }
                    div class="field" {
                        span class="label" { "Connection for export" }
                        p id="chosen-connection" {
                            @match &cx.connection {
                                Some(c) => { strong { (c.display_name) } " " span class="muted" { "(" (kind_label(&c.credential_kind)) ")" } }
                                None => { code { (f.connection) } }
                            }
                            " · " a href=(change_connection) { "Change" }
                        }
                    }
                }
            }
            div class="card" {
                h2 { "Audience" }
                @match &cx.audiences {
                    Ok(lists) if !lists.is_empty() => {
                        div class="field" {
                            label for="audience" { "Mailchimp audience" }
                            select id="audience" name="audience" {
                                @if !f.audience.is_empty() && !lists.iter().any(|l| l.id == f.audience) {
                                    option value=(f.audience) selected { (f.audience) " (not among this connection's audiences)" }
                                }
                                @for l in lists {
                                    option value=(l.id) selected[l.id == f.audience] {
                                        (l.name) " · " (num(l.member_count)) " subscribed · " (l.id)
                                    }
                                }
                            }
                            span class="hint" { "The audiences this connection can see in Mailchimp." }
                        }
                        @if matches!(mode, Mode::Edit(_)) {
                            p class="hint" { "Another audience or connection starts the export afresh there." }
                        }
                    }
                    Ok(_) => {
                        div class="flash flash-warn" { "This Mailchimp account has no audience yet: create one in Mailchimp first, or enter its id." }
                        (audience_id_field(f))
                    }
                    Err(e) => {
                        div class="flash flash-error" { "Mailchimp did not list the audiences: " (e) }
                        (audience_id_field(f))
                    }
                }
            }
            div class="card" {
                h2 { "Data matching" }
                @if cx.columns.is_empty() {
                    div class="flash flash-warn" { "No profiles yet: an admin imports them first (segsync profiles import)." }
                }
                div class="field" {
                    label for="email_field" { "Email" }
                    select id="email_field" name="email_field" {
                        (column_options(&cx.columns, &f.email_field, None))
                    }
                    span class="hint" { "The profile column that holds each customer's email address." }
                    @if let Some(h) = &f.email_hint { span class="hint" id="email-hint" { (h) } }
                }
                h3 id="attributes-section" { "Attributes" }
                p class="muted small" { "Send more profile columns as Mailchimp merge fields, such as FNAME (first name) and LNAME (last name)." }
                @if f.attrs.is_empty() {
                    p class="muted" id="no-attributes" { "No attribute: only the email address is sent." }
                } @else {
                    div class="table-wrap" {
                        table id="attributes" {
                            thead { tr { th { "Mailchimp merge field" } th { "Profile column" } th { "Type if created" } th {} } }
                            tbody {
                                @for (i, (tag, column)) in f.attrs.iter().enumerate() {
                                    tr {
                                        td { input type="text" name="attr_tag" value=(tag) list="merge-tags" aria-label=(format!("Merge tag {}", i + 1)) placeholder="FNAME"; }
                                        td {
                                            select name="attr_column" aria-label=(format!("Profile column {}", i + 1)) {
                                                (column_options(&cx.columns, column, Some("— choose a column —")))
                                            }
                                        }
                                        td { (export_help::merge_type_select(i, column, cx.kinds.get(column).copied(), f.attr_types.get(i).map_or("", String::as_str))) }
                                        td { button type="submit" name="remove_attribute" value=(i) formaction=(rows_url) class="btn btn-secondary btn-small" aria-label=(format!("Remove attribute {}", i + 1)) { "Remove" } }
                                    }
                                }
                            }
                        }
                    }
                }
                datalist id="merge-tags" {
                    @for (t, what) in MERGE_TAGS { option value=(t) { (what) } }
                }
                p { button type="submit" name="add_attribute" value="1" formaction=(rows_url) class="btn btn-secondary" id="add-attribute" { "Add attribute" } }
                label class="check" {
                    input type="checkbox" name="create_merge_fields" value="yes" checked[f.create_merge_fields];
                    span { "Create the merge fields the audience lacks" span class="hint" { "Otherwise a merge field missing in Mailchimp refuses the export." } }
                }
                div class="field" {
                    label for="updated_at_field" { "When two profiles share an address, keep the most recently updated by" }
                    select id="updated_at_field" name="updated_at_field" {
                        (column_options(&cx.columns, &f.updated_at_field, Some("— the first profile read —")))
                    }
                }
            }
            div class="card" {
                h2 { "Segments" }
                @if cx.segments.is_empty() {
                    div class="flash flash-warn" { "No segment yet: add one in " a href="/segments" { "Data > Segments" } "." }
                } @else {
                    p class="muted small" { "Each chosen segment becomes a tag on its members in Mailchimp." }
                    div class="table-wrap" {
                        table id="segment-choice" {
                            thead { tr { th { "Send" } th class="num" { "Profiles" } th class="num" { "Members" } th { "Tag in Mailchimp" } } }
                            tbody {
                                @for (name, count) in &cx.segments {
                                    tr data-segment=(name) {
                                        td {
                                            label class="check" {
                                                input type="checkbox" name="segment" value=(name) checked[f.chosen.contains(name)] data-count=(count.as_ref().copied().unwrap_or(0));
                                                span { (name) }
                                            }
                                        }
                                        td class="num" {
                                            @match count {
                                                Ok(n) => (num(*n)),
                                                Err(e) => span class="badge badge-error" title=(e) { "cannot count" },
                                            }
                                        }
                                        td class="num" data-members=(name) {
                                            @match sized.and_then(|s| s.segments.iter().find(|x| &x.segment == name)) {
                                                Some(x) => (num(x.members)),
                                                None => span class="muted" { "—" },
                                            }
                                        }
                                        td {
                                            input type="text" name=(format!("tag:{name}")) value=(f.tags.get(name).map_or(name.as_str(), String::as_str)) aria-label=(format!("Tag for {name}"));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p class="small" id="segment-sizes" {
                        "Chosen segments: " strong id="segment-total" { (num(total)) } " members"
                        span class="muted" {
                            " (distinct addresses, after merging profiles that share one; "
                            span id="segment-profiles" { (num(sized.map_or(0, |s| s.profiles))) } " profiles, "
                            span id="segment-refused" { (num(sized.map_or(0, |s| s.refused))) } " without a valid address) · limit "
                            span id="limit-value" { (num(max)) }
                        }
                    }
                    @if let Some(Err(e)) = &cx.sizes {
                        div class="flash flash-error" id="sizes-error" role="alert" { "The chosen segments cannot be counted: " (e) }
                    }
                    ul class="overlaps small" id="segment-overlaps" {
                        @for o in sized.map_or(&[][..], |s| s.overlaps.as_slice()) {
                            li { "In both " strong { (o.a) } " and " strong { (o.b) } ": " (num(o.members)) " members" }
                        }
                    }
                    div class="flash flash-warn" id="limit-warning" role="alert" hidden[!over] {
                        "The chosen segments give more members than this export's limit: a run is refused before anything is sent. Choose fewer segments or raise the limit."
                    }
                }
            }
            div class="card" {
                h2 { "Options" }
                div class="grid2" {
                    div class="field" {
                        label for="status_if_new" { "Status of new members" }
                        select id="status_if_new" name="status_if_new" {
                            @for (v, l) in [("subscribed", "Subscribed"), ("pending", "Pending (double opt-in: Mailchimp sends a confirmation)"), ("transactional", "Transactional (no marketing consent)")] {
                                option value=(v) selected[f.status_if_new == v] { (l) }
                            }
                        }
                        span class="hint" { "Existing members keep their status: nobody who unsubscribed is resubscribed." }
                    }
                    div class="field" {
                        label for="removal" { "When a member leaves every chosen segment" }
                        select id="removal" name="removal" {
                            @for (v, l) in [("untag", "Remove the tags"), ("archive", "Remove the tags and archive"), ("unsubscribe", "Remove the tags and unsubscribe")] {
                                option value=(v) selected[f.removal == v] { (l) }
                            }
                        }
                        span class="hint" { "Archiving and unsubscribing apply only to members this export added." }
                    }
                }
                div class="field" {
                    label for="max_profiles" { "Profile limit" }
                    input id="max_profiles" name="max_profiles" type="number" min="1" step="1" value=(f.max_profiles);
                    span class="hint" { "A run with more members is refused before anything is sent (Mailchimp's connector allows up to 1,000,000)." }
                }
            }
            div class="card" {
                h2 { "Schedule" }
                fieldset {
                    legend { "Run" }
                    label class="check" {
                        input type="radio" name="schedule" value="manual" checked[f.schedule == "manual" || f.schedule.is_empty()];
                        span { "On demand" span class="hint" { "Only with Run now." } }
                    }
                    label class="check" {
                        input type="radio" name="schedule" value="after_refresh" checked[f.schedule == "after_refresh"];
                        span { "After every profile refresh" }
                    }
                    label class="check" {
                        input type="radio" name="schedule" value="cron" checked[f.schedule == "cron"];
                        span { "On a schedule" span class="hint" { "Every day, weekday, week or hour, at a time in a time zone." } }
                    }
                }
                (export_help::schedule_fields(&f.picker, &f.cron, &f.timezone))
            }
            div class="actions" {
                button type="submit" name="save" value="1" class="btn btn-primary" id="save" { "Save" }
                a class="btn btn-secondary" href=(match mode { Mode::New => "/exports".to_string(), Mode::Edit(n) => format!("/exports/{}", seg(n)) }) { "Cancel" }
                span class="muted small" { "Saving does not run the export: use Run now, or let its schedule run it." }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Exports, mode.title())
        .error(error)
        .with_script()
        .render(body);
    (status, page).into_response()
}

fn audience_id_field(f: &ExportForm) -> Markup {
    html! {
        div class="field" {
            label for="audience" { "Mailchimp audience id" }
            input id="audience" name="audience" type="text" value=(f.audience) placeholder="a1b2c3d4e5";
            span class="hint" { "In Mailchimp: Audience > Settings > Audience name and defaults." }
        }
    }
}

/// Step 2 for `f`, or step 1 again when its connection is unknown.
async fn render(
    app: &AppState,
    who: &Authed,
    mode: &Mode,
    f: &ExportForm,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    match context(app, who, f).await {
        Ok(cx) => Ok(form_page(who, mode, f, &cx, error, status)),
        Err(e)
            if e.status == StatusCode::NOT_FOUND
                || e.status == StatusCode::UNPROCESSABLE_ENTITY =>
        {
            connection_step(
                app,
                who,
                mode,
                &f.connection,
                Some(format!("{} Choose a connection.", e.message)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => Err(super::error_page(Some(who), &e)),
    }
}

/// The email column to preselect, and why: by its name, else by its values.
async fn suggest_email(app: &AppState) -> Result<Option<(String, String)>, ApiError> {
    let names: Vec<String> = columns(app).await?.into_iter().map(|c| c.name).collect();
    if let Some(found) = export_help::email_by_name(&names) {
        return Ok(Some(found));
    }
    if names.is_empty() {
        return Ok(None);
    }
    let installation = app.app.clone();
    let stats = app
        .predicates
        .run(move || ops::builder::column_stats(&installation, None))
        .await?
        .unwrap_or_default();
    Ok(export_help::email_by_content(&stats))
}

#[derive(Deserialize)]
pub struct StepQuery {
    connection: Option<String>,
    step: Option<String>,
}

pub async fn new_form(
    State(app): State<AppState>,
    User(who): User,
    Query(q): Query<StepQuery>,
) -> PageResult {
    who.require(Role::Contributor, "adding an export")
        .or_page(&who)?;
    let mode = Mode::New;
    match q.connection.filter(|c| !c.is_empty()) {
        Some(c) if q.step.as_deref() != Some("connection") => {
            let mut f = ExportForm::fresh(&c);
            if let Some((column, why)) = suggest_email(&app).await.or_page(&who)? {
                f.email_field = column;
                f.email_hint = Some(why);
            }
            render(&app, &who, &mode, &f, None, StatusCode::OK).await
        }
        selected => connection_step(
            &app,
            &who,
            &mode,
            selected.as_deref().unwrap_or(""),
            None,
            StatusCode::OK,
        ),
    }
}

pub async fn new_submit(
    State(app): State<AppState>,
    User(who): User,
    form: FormData,
) -> PageResult {
    submit(&app, &who, Mode::New, form).await
}

/// Checks that `who` may edit export `name` (the API's rule); its input.
fn editable(app: &AppState, who: &Authed, name: &str) -> Result<ExportInput, ApiError> {
    who.require(Role::Contributor, "changing an export")?;
    let state = state_of(app)?;
    let e = state.export(name)?;
    ops::check_export_access(&state, &who.actor, &e)?;
    Ok(ExportInput::from_config(&e))
}

pub async fn edit_form(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    Query(q): Query<StepQuery>,
) -> PageResult {
    let input = editable(&app, &who, &name).or_page(&who)?;
    let mode = Mode::Edit(name);
    let mut f = ExportForm::from_input(&input);
    if q.step.as_deref() == Some("connection") {
        return connection_step(&app, &who, &mode, &f.connection, None, StatusCode::OK);
    }
    if let Some(c) = q.connection.filter(|c| !c.is_empty() && *c != f.connection) {
        f.connection = c;
    }
    render(&app, &who, &mode, &f, None, StatusCode::OK).await
}

pub async fn edit_submit(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    editable(&app, &who, &name).or_page(&who)?;
    submit(&app, &who, Mode::Edit(name), form).await
}

/// A form sent: re-rendered with one more or one fewer attribute row, or saved.
async fn submit(app: &AppState, who: &Authed, mode: Mode, form: FormData) -> PageResult {
    form.check_csrf(who).or_page(who)?;
    who.require(Role::Contributor, "configuring an export")
        .or_page(who)?;
    let mut f = ExportForm::from_form(&form);
    if let Mode::Edit(name) = &mode {
        // An export cannot be renamed: its name is the page's.
        f.name = name.clone();
    }
    if form.has("add_attribute") && !form.has("save") {
        f.attrs.push(Default::default());
        f.attr_types.push(String::new());
        return render(app, who, &mode, &f, None, StatusCode::OK).await;
    }
    if let Some(i) = form
        .get("remove_attribute")
        .filter(|_| !form.has("save"))
        .and_then(|i| i.parse::<usize>().ok())
    {
        if i < f.attrs.len() {
            f.attrs.remove(i);
        }
        if i < f.attr_types.len() {
            f.attr_types.remove(i);
        }
        return render(app, who, &mode, &f, None, StatusCode::OK).await;
    }
    let input = match f.to_input() {
        Ok(i) => i,
        Err(m) => {
            return render(
                app,
                who,
                &mode,
                &f,
                Some(m),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    match ops::save_export(&app.app, &who.actor, input, mode.save_mode()).await {
        Ok(e) => Ok(redirect_notice(
            &format!("/exports/{}", seg(&e.name)),
            &format!(
                "Export \"{}\" saved. Saving does not run it: use Run now, or let its schedule run it.",
                e.name
            ),
        )),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status == StatusCode::FORBIDDEN {
                return Err(super::error_page(Some(who), &e));
            }
            render(app, who, &mode, &f, Some(e.message), e.status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_filled_form_becomes_the_input_ops_checks() {
        let f = ExportForm::from_form(&form(&[
            ("name", " newsletter "),
            ("connection", "mc"),
            ("audience", "a1b2"),
            ("email_field", "email"),
            ("attr_tag", "fname"),
            ("attr_column", "first_name"),
            ("attr_tag", "LNAME"),
            ("attr_column", "last_name"),
            ("attr_tag", ""),
            ("attr_column", ""),
            ("attr_tag", "CITY"),
            ("attr_column", "city"),
            ("segment", "high_value"),
            ("tag:high_value", "High value"),
            ("segment", "romania"),
            ("tag:romania", ""),
            ("tag:unticked", "x"),
            ("status_if_new", "pending"),
            ("removal", "archive"),
            ("max_profiles", "1,000"),
            ("schedule", "cron"),
            ("cron", "0 6 * * *"),
            ("timezone", ""),
            ("create_merge_fields", "yes"),
        ]));
        let i = f.to_input().unwrap();
        assert_eq!(i.name, "newsletter");
        assert_eq!(i.first_name.as_deref(), Some("first_name"));
        assert_eq!(i.last_name.as_deref(), Some("last_name"));
        assert_eq!(
            i.merge,
            vec![FieldMap {
                tag: "CITY".into(),
                column: "city".into(),
                kind: None,
            }]
        );
        assert_eq!(
            i.segments,
            vec![
                SegmentChoice {
                    segment: "high_value".into(),
                    tag: Some("High value".into())
                },
                SegmentChoice {
                    segment: "romania".into(),
                    tag: None
                },
            ]
        );
        assert_eq!(i.status_if_new, NewStatus::Pending);
        assert_eq!(i.removal, RemovalPolicy::Archive);
        assert_eq!(i.max_profiles, 1000);
        assert!(i.create_merge_fields);
        assert_eq!(
            i.schedule,
            Schedule::Cron {
                cron: "0 6 * * *".into(),
                timezone: "UTC".into()
            }
        );
    }

    #[test]
    fn an_export_round_trips_through_the_form() {
        let input = ExportInput {
            name: "n".into(),
            connection: "c".into(),
            audience: "a".into(),
            email_field: "email".into(),
            first_name: Some("first".into()),
            last_name: None,
            merge: vec![FieldMap {
                tag: "CITY".into(),
                column: "city".into(),
                kind: None,
            }],
            segments: vec![SegmentChoice {
                segment: "s".into(),
                tag: Some("S tag".into()),
            }],
            status_if_new: NewStatus::Transactional,
            removal: RemovalPolicy::Unsubscribe,
            max_profiles: 42,
            create_merge_fields: false,
            updated_at_field: Some("updated_at".into()),
            schedule: Schedule::AfterRefresh,
            paused: true,
        };
        assert_eq!(ExportForm::from_input(&input).to_input().unwrap(), input);
    }

    #[test]
    fn what_the_form_cannot_read_is_said() {
        let mut f = ExportForm::fresh("c");
        f.max_profiles = "lots".into();
        assert!(f.to_input().unwrap_err().contains("whole number"));
    }
}
