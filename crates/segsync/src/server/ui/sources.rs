//! Data > Sources: where segments read profiles. The imported profiles (the embedded store)
//! and every database source (PostgreSQL, MySQL / MariaDB) with its kind and status now
//! (reachable with its row count and columns, or why not), checked in the server's predicate
//! slots so that a slow database cannot stall the server; a source's page with its status,
//! columns and the segments that read it. Admins add sources (the URL is sealed and never
//! shown again, not even in a refused form) and remove those no segment reads.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use secrecy::SecretString;
use serde::Deserialize;

use super::layout::{self, csrf, Nav, Page};
use super::{num, redirect_notice, seg, state_of, when, FormData, OrPage, PageResult, User};
use crate::ops::{self, SourceStatus};
use crate::profiles::PgRelation;
use crate::server::auth::Authed;
use crate::server::{ApiError, AppState};
use crate::sources::SourceView;
use crate::state::Role;

#[derive(Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// What the "Add source" form holds (never the URL: it is not sent back).
#[derive(Default)]
struct AddForm {
    name: String,
    kind: String,
    relation_kind: String,
    relation: String,
    key: String,
    cursor: String,
    allow_superuser: bool,
}

fn status_badge(s: &SourceStatus) -> Markup {
    if s.reachable {
        html! { span class="badge badge-ok" data-status="reachable" { "reachable" } }
    } else {
        html! { span class="badge badge-error" data-status="unreachable" { "unreachable" } }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "mysql" => "MySQL / MariaDB",
        "postgres" => "PostgreSQL",
        _ => "imported",
    }
}

fn columns_line(s: &SourceStatus) -> Markup {
    html! {
        @for (i, c) in s.columns.iter().enumerate() {
            @if i > 0 { " " }
            code title=(c.kind.as_str()) { (c.name) }
        }
    }
}

/// The status of the imported profiles and of each source, read in one predicate slot.
async fn statuses(
    app: &AppState,
    sources: &[SourceView],
) -> Result<(SourceStatus, Vec<SourceStatus>), ApiError> {
    let installation = app.app.clone();
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    app.predicates
        .run(move || {
            let embedded = ops::status_of(&installation, None);
            let each = names
                .iter()
                .map(|n| ops::status_of(&installation, Some(n)))
                .collect();
            (embedded, each)
        })
        .await
}

async fn list_page(
    app: &AppState,
    who: &Authed,
    add: &AddForm,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let sources = ops::list_sources(&app.app, &who.actor).or_page(who)?;
    let (embedded, each) = statuses(app, &sources).await.or_page(who)?;
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        div class="toolbar" {
            p class="muted" { "Where segments read customer profiles: the imported profiles, or a PostgreSQL or MySQL / MariaDB table or query, read where it is." }
        }
        div class="card table-wrap" {
            table class="stack" id="sources" {
                thead { tr {
                    th { "Source" } th { "Kind" } th { "Status" } th class="num" { "Profiles" }
                    th { "Columns" } th { "Reads" }
                } }
                tbody {
                    tr data-source="" {
                        td data-label="Source" {
                            strong { "Imported profiles" }
                            @if who.actor.role == Role::Admin {
                                br; a href="/profiles" id="upload-profiles" class="small" { "Upload a file" }
                            }
                        }
                        td data-label="Kind" { "embedded store" }
                        td data-label="Status" { (status_badge(&embedded)) }
                        td data-label="Profiles" class="num" { @if let Some(n) = embedded.count { (num(n)) } @else { "—" } }
                        td data-label="Columns" class="small" { (columns_line(&embedded)) }
                        td data-label="Reads" class="small muted" { "profiles imported from files" }
                    }
                    @for (s, st) in sources.iter().zip(&each) {
                        tr data-source=(s.name) {
                            td data-label="Source" { a href=(format!("/sources/{}", seg(&s.name))) { strong { (s.name) } } }
                            td data-label="Kind" { span class="badge badge-muted" data-kind=(s.kind) { (kind_label(&s.kind)) } }
                            td data-label="Status" {
                                (status_badge(st))
                                @if let Some(e) = &st.error { br; span class="small" { (e) } }
                            }
                            td data-label="Profiles" class="num" { @if let Some(n) = st.count { (num(n)) } @else { "—" } }
                            td data-label="Columns" class="small" { (columns_line(st)) }
                            td data-label="Reads" class="small" {
                                (s.relation_kind) " " code { (s.relation) }
                                @if let Some(c) = &s.cursor_column { br; span class="muted" { "re-runs read rows past " code { (c) } } }
                            }
                        }
                    }
                }
            }
        }
        @if who.actor.role == Role::Admin {
            (add_form(who, add, error.as_ref().map(|(_, e)| e.as_str())))
        }
    };
    let page = Page::new(Some(who), Nav::Sources, "Sources")
        .notice(notice)
        .render(body);
    Ok((status, page).into_response())
}

fn add_form(who: &Authed, add: &AddForm, error: Option<&str>) -> Markup {
    let query = add.relation_kind == "query";
    html! {
        div class="card" id="add-source" {
            h2 { "Add source" }
            @if let Some(e) = error {
                div class="flash flash-error" role="alert" id="source-error" { (e) }
            }
            form method="post" action="/sources" autocomplete="off" {
                (csrf(who))
                div class="field" {
                    label for="src-name" { "Name" }
                    input id="src-name" name="name" type="text" value=(add.name) required placeholder="crm";
                }
                div class="field" {
                    label for="src-kind" { "Kind" }
                    select id="src-kind" name="kind" {
                        option value="postgres" selected[add.kind != "mysql"] { "PostgreSQL" }
                        option value="mysql" selected[add.kind == "mysql"] { "MySQL / MariaDB" }
                    }
                }
                div class="field" {
                    label for="src-url" { "URL" }
                    input id="src-url" name="url" type="password" required placeholder="postgres://reader:PASSWORD@db.example:5432/crm";
                    span class="hint" { "Sealed like a credential and never shown again (lists show it without its password). Give a user that can read only the profiles." }
                }
                div class="field" {
                    label for="src-relation-kind" { "Read" }
                    select id="src-relation-kind" name="relation_kind" {
                        option value="table" selected[!query] { "a table" }
                        option value="query" selected[query] { "a query" }
                    }
                }
                div class="field" {
                    label for="src-relation" { "Table or query" }
                    textarea id="src-relation" name="relation" required placeholder="customers" { (add.relation) }
                }
                div class="field" {
                    label for="src-key" { "Key column" }
                    input id="src-key" name="key" type="text" value=(add.key) required placeholder="customer_id";
                }
                div class="field" {
                    label for="src-cursor" { "Changed-at column (optional)" }
                    input id="src-cursor" name="cursor" type="text" value=(add.cursor) placeholder="updated_at";
                    span class="hint" { "A timestamp or number the database sets whenever a row is written. With it, re-runs read only the rows written since the last run (and the keys, to find removed rows) instead of every row." }
                }
                div class="field" {
                    label class="check" {
                        input type="checkbox" name="allow_superuser" value="1" checked[add.allow_superuser];
                        " Allow a user that can read every table (segment conditions would run with its rights)"
                    }
                }
                button type="submit" class="btn btn-primary" { "Add source" }
            }
        }
    }
}

pub async fn list(
    State(app): State<AppState>,
    User(who): User,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    list_page(&app, &who, &AddForm::default(), q.notice, None).await
}

pub async fn add(State(app): State<AppState>, User(who): User, form: FormData) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    who.require(Role::Admin, "adding a profile source")
        .or_page(&who)?;
    let add = AddForm {
        name: form.text("name"),
        kind: form.text("kind"),
        relation_kind: form.text("relation_kind"),
        relation: form.text("relation"),
        key: form.text("key"),
        cursor: form.text("cursor").trim().to_string(),
        allow_superuser: form.has("allow_superuser"),
    };
    let input = ops::SourceInput {
        name: add.name.clone(),
        kind: if add.kind == "mysql" {
            ops::SourceKind::MySql
        } else {
            ops::SourceKind::Postgres
        },
        url: SecretString::from(form.text("url")),
        relation: if add.relation_kind == "query" {
            PgRelation::Query(add.relation.clone())
        } else {
            PgRelation::Table(add.relation.clone())
        },
        key_column: add.key.clone(),
        cursor_column: Some(add.cursor.clone()).filter(|c| !c.is_empty()),
        allow_superuser: add.allow_superuser,
    };
    let (installation, actor) = (app.app.clone(), who.actor.clone());
    let result = app
        .predicates
        .run(move || ops::add_source(&installation, &actor, input))
        .await
        .or_page(&who)?;
    match result {
        Ok(added) => Ok(redirect_notice(
            &format!("/sources/{}", seg(&add.name)),
            &format!(
                "Source \"{}\" added: {} columns.{}",
                add.name,
                added.columns.len(),
                added
                    .warnings
                    .iter()
                    .map(|w| format!(" Warning: {w}."))
                    .collect::<String>()
            ),
        )),
        Err(e) => {
            let e = ApiError::from(e);
            Err(
                match list_page(&app, &who, &add, None, Some((e.status, e.message))).await {
                    Ok(r) | Err(r) => r,
                },
            )
        }
    }
}

pub async fn show(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let state = state_of(&app).or_page(&who)?;
    let record = state.profile_source(&name).or_page(&who)?;
    let readers: Vec<_> = state
        .segments()
        .or_page(&who)?
        .into_iter()
        .filter(|s| s.source.as_deref() == Some(name.as_str()))
        .collect();
    drop(state);
    let view = crate::sources::view(&app.app, &record);
    let (installation, actor, n) = (app.app.clone(), who.actor.clone(), name.clone());
    let status = app
        .predicates
        .run(move || ops::source_status(&installation, &actor, &n))
        .await
        .or_page(&who)?
        .or_page(&who)?;
    let base = format!("/sources/{}", seg(&name));
    let body = html! {
        div class="card" {
            div class="card-head" {
                h2 { (kind_label(&view.kind)) " source" }
                @if who.actor.role == Role::Admin {
                    a class="btn btn-secondary btn-small" href=(format!("{base}/remove")) { "Remove" }
                }
            }
            dl class="summary" {
                dt { "URL" } dd { code id="source-url" { (view.url) } }
                dt { "Reads" } dd { (view.relation_kind) " " code { (view.relation) } }
                dt { "Key column" } dd { code { (view.key_column) } }
                dt { "Added" } dd { (when(&view.created_at)) }
                dt { "Status" } dd id="source-status" { (status_badge(&status)) }
                dt { "Profiles" } dd id="source-count" { @if let Some(c) = status.count { (num(c)) } @else { "—" } }
            }
            @if let Some(e) = &status.error {
                div class="flash flash-error" role="alert" id="source-error" { "This source cannot be read now: " (e) }
            }
        }
        @if !status.columns.is_empty() {
            div class="card table-wrap" {
                h2 { "Columns" }
                table class="stack" id="columns" {
                    thead { tr { th { "Column" } th { "Type" } } }
                    tbody {
                        @for c in &status.columns {
                            tr { td data-label="Column" { code { (c.name) } } td data-label="Type" { (c.kind.as_str()) } }
                        }
                    }
                }
            }
        }
        div class="card table-wrap" {
            h2 { "Segments that read it" }
            @if readers.is_empty() {
                p class="muted" { "No segment reads this source yet." }
            } @else {
                table class="stack" id="source-segments" {
                    thead { tr { th { "Segment" } th { "Condition" } } }
                    tbody {
                        @for s in &readers {
                            tr data-segment=(s.name) {
                                td data-label="Segment" { a href=(format!("/segments/{}", seg(&s.name))) { (s.name) } }
                                td data-label="Condition" { code { (s.predicate) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(
        Page::new(Some(&who), Nav::Sources, format!("Source {name}"))
            .notice(q.notice)
            .render(body)
            .into_response(),
    )
}

pub async fn remove_confirm(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
) -> PageResult {
    who.require(Role::Admin, "removing a profile source")
        .or_page(&who)?;
    let s = state_of(&app)
        .and_then(|st| Ok(st.profile_source(&name)?))
        .or_page(&who)?;
    Ok(layout::removal_page(
        &who,
        layout::Removal {
            nav: Nav::Sources,
            what: "source",
            object: html! { strong { (s.name) } },
            consequences: "Its sealed URL is forgotten. A source that segments read cannot be removed: remove those segments first.",
            warning: None,
            action: format!("/sources/{}/remove", seg(&s.name)),
            back: format!("/sources/{}", seg(&s.name)),
        },
    )
    .into_response())
}

pub async fn remove(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    if let Err(e) = form.check_csrf(&who) {
        return super::error_page(Some(&who), &e);
    }
    match ops::remove_source(&app.app, &who.actor, &name) {
        Ok(()) => redirect_notice("/sources", &format!("Source \"{name}\" removed.")),
        Err(e) => super::error_page(Some(&who), &e.into()),
    }
}
