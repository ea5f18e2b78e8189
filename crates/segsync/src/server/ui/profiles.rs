//! Data > Sources > Imported profiles (admins): upload a file (or a new version of it, the
//! browser's "refresh"), see how it would be read (dialect, column types, first rows, the
//! values that do not fit, with their lines) without the profile store changing, then import
//! or discard it. The upload is kept by [`crate::server::uploads`]; import is the code path
//! of `segsync profiles import`.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::layout::{csrf, Nav, Page};
use super::sources::NoticeQuery;
use super::{num, redirect_notice, seg, when, Admin, FormData, OrPage, PageResult};
use crate::profiles::{DateFormat, ImportOptions, OnBadValue};
use crate::server::auth::Authed;
use crate::server::uploads::{self, Described, ProfileUpload, UploadPreview};
use crate::server::{ApiError, AppState};

/// The import options of a form (upload or "Preview again"), as the CLI's flags.
fn options_of(get: impl Fn(&str) -> Option<String>) -> Result<ImportOptions, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    let decimal = get("decimal").unwrap_or_default();
    Ok(ImportOptions {
        delimiter: get("delimiter")
            .map(|d| crate::profiles::parse_delimiter(&d))
            .transpose()
            .map_err(invalid)?,
        decimal_comma: match decimal.as_str() {
            "comma" => Some(true),
            "point" => Some(false),
            _ => None,
        },
        date_format: get("date_format")
            .map(|d| d.parse())
            .transpose()
            .map_err(invalid)?,
        on_bad_value: get("on_bad_value")
            .map(|d| d.parse())
            .transpose()
            .map_err(invalid)?
            .unwrap_or_default(),
        text_columns: get("text")
            .map(|t| {
                t.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The options fields, filled with `o` (the upload form and "Preview again").
fn option_fields(o: &ImportOptions, key: &str) -> Markup {
    let delimiter = o.delimiter.map(crate::profiles::delimiter_name);
    let decimal = match o.decimal_comma {
        Some(true) => "comma",
        Some(false) => "point",
        None => "",
    };
    let date = o.date_format.map(|d| d.as_str());
    html! {
        div class="grid2" {
            div class="field" {
                label for="up-key" { "Key column" }
                input id="up-key" name="key" type="text" value=(key) required placeholder="customer_id";
                span class="hint" { "The column that identifies a profile (unique, never empty)." }
            }
            div class="field" {
                label for="up-delimiter" { "Delimiter (CSV)" }
                select id="up-delimiter" name="delimiter" {
                    option value="" selected[delimiter.is_none()] { "detect" }
                    @for (v, label) in [(",", ", comma"), (";", "; semicolon"), ("tab", "tab"), ("|", "| pipe")] {
                        option value=(v) selected[delimiter.as_deref() == Some(v)] { (label) }
                    }
                }
            }
            div class="field" {
                label for="up-decimal" { "Numbers (CSV)" }
                select id="up-decimal" name="decimal" {
                    option value="" selected[decimal.is_empty()] { "detect" }
                    option value="point" selected[decimal == "point"] { "decimal point (1,234.50)" }
                    option value="comma" selected[decimal == "comma"] { "decimal comma (1.234,50)" }
                }
            }
            div class="field" {
                label for="up-date" { "Dates (CSV)" }
                select id="up-date" name="date_format" {
                    option value="" selected[date.is_none()] { "detect" }
                    @for d in [DateFormat::DayMonthYear, DateFormat::MonthDayYear, DateFormat::Iso] {
                        option value=(d.as_str()) selected[date == Some(d.as_str())] { (d.as_str()) }
                    }
                }
            }
            div class="field" {
                label for="up-bad" { "A value that does not fit its column (CSV)" }
                select id="up-bad" name="on_bad_value" {
                    @for (v, label) in [(OnBadValue::Empty, "keep the profile, that value empty"), (OnBadValue::Skip, "leave the profile out"), (OnBadValue::Refuse, "import nothing")] {
                        option value=(v.as_str()) selected[o.on_bad_value == v] { (label) }
                    }
                }
            }
            div class="field" {
                label for="up-text" { "Columns kept as text (CSV)" }
                input id="up-text" name="text" type="text" value=(o.text_columns.join(", ")) placeholder="Zip, Phone";
                span class="hint" { "Separated by commas: codes that look like numbers." }
            }
        }
    }
}

/// The page: the profiles now, and the upload form.
pub async fn page(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    upload_page(&app, &who, q.notice, None).await
}

async fn upload_page(
    app: &AppState,
    who: &Authed,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let installation = app.app.clone();
    let status = app
        .predicates
        .run(move || crate::ops::status_of(&installation, None))
        .await
        .or_page(who)?;
    let key = {
        let store = app
            .app
            .profiles()
            .map_err(ApiError::internal)
            .or_page(who)?;
        store.key_column().ok().flatten().unwrap_or_default()
    };
    let code = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        div class="card" {
            dl class="summary" {
                dt { "Profiles" } dd id="profile-count" { @if let Some(n) = status.count { (num(n)) } @else { "—" } }
                dt { "Key column" } dd { @if key.is_empty() { "— (nothing imported yet)" } @else { code { (key) } } }
                dt { "Columns" } dd class="small" {
                    @for (i, c) in status.columns.iter().enumerate() {
                        @if i > 0 { ", " }
                        code title=(c.kind.as_str()) { (c.name) } " " span class="muted" { (c.kind.as_str()) }
                    }
                }
            }
        }
        div class="card" id="upload" {
            h2 { @if key.is_empty() { "Upload a file" } @else { "Upload a new version" } }
            p class="muted" { "CSV (any delimiter, as Excel saves it), NDJSON or Parquet. You see how it will be read before anything changes; the import replaces every profile at once, or nothing if it fails." }
            @if let Some((_, e)) = &error {
                div class="flash flash-error" role="alert" id="upload-error" { (e) }
            }
            form method="post" action="/profiles/uploads" enctype="multipart/form-data" {
                (csrf(who))
                (option_fields(&ImportOptions::default(), &key))
                div class="field" {
                    label for="up-file" { "File" }
                    input id="up-file" name="file" type="file" required accept=".csv,.txt,.ndjson,.jsonl,.parquet";
                }
                button type="submit" class="btn btn-primary" id="preview-upload" { "Preview" }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Sources, "Imported profiles")
        .notice(notice)
        .render(body);
    Ok((code, page).into_response())
}

/// The upload form sent: its fields (the file last, streamed to disk), then the preview.
pub async fn upload(
    State(app): State<AppState>,
    Admin(who): Admin,
    mut form: Multipart,
) -> PageResult {
    match receive(&app, &who, &mut form).await {
        Ok(up) => Ok(Redirect::to(&format!("/profiles/uploads/{}", seg(&up.id))).into_response()),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN => {
            upload_page(&app, &who, None, Some((e.status, e.message))).await
        }
        Err(e) => Err(super::error_page(Some(&who), &e)),
    }
}

async fn receive(
    app: &AppState,
    who: &Authed,
    form: &mut Multipart,
) -> Result<ProfileUpload, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m);
    let mut fields: Vec<(String, String)> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        let name = field.name().unwrap_or("").to_string();
        if name != "file" {
            let value = field.text().await.map_err(|e| bad(e.body_text()))?;
            fields.push((name, value.chars().take(4096).collect()));
            continue;
        }
        let get = |n: &str| {
            fields
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        who.check_csrf(&get("csrf").unwrap_or_default())?;
        let file_name = field.file_name().unwrap_or("").to_string();
        if file_name.is_empty() {
            return Err(bad("choose a file to upload".into()));
        }
        let described = Described {
            file_name,
            format: None,
            key: get("key").unwrap_or_default(),
            options: options_of(get)?,
        };
        return uploads::receive(app, &who.actor, described, field).await;
    }
    Err(bad("choose a file to upload".into()))
}

/// An upload's preview, with "Import", "Discard" and "Preview again" with other options.
pub async fn show(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let up = uploads::load(&app, &id).await.or_page(&who)?;
    let body = html! {
        (summary(&up))
        @if let Some(p) = &up.problem {
            div class="flash flash-error" role="alert" id="upload-problem" { (p) }
        }
        @if let Some(p) = &up.preview { (preview_cards(p)) }
        (actions(&who, &up))
    };
    let page = Page::new(
        Some(&who),
        Nav::Sources,
        format!("Preview of {}", up.file_name),
    )
    .notice(q.notice)
    .render(body);
    Ok(page.into_response())
}

fn summary(up: &ProfileUpload) -> Markup {
    html! {
        div class="card" {
            dl class="summary" id="upload-summary" {
                dt { "File" } dd { (up.file_name) " (" (up.format.as_str()) ", " (num(up.bytes)) " bytes)" }
                dt { "Key column" } dd { code { (up.key) } }
                @if let Some(p) = &up.preview {
                    dt { "Profiles" } dd id="upload-rows" { (num(p.rows)) }
                    @if let Some(d) = &p.dialect {
                        dt { "Read as" } dd id="upload-dialect" {
                            "delimiter " code { (d.delimiter) } (if d.delimiter_detected { " (detected)" } else { " (given)" })
                            ", " (if d.decimal_comma { "decimal comma" } else { "decimal point" })
                            ", dates " (d.date_format.as_str())
                            ", " (d.line_ending) " line endings" (if d.bom { ", with a byte order mark" } else { "" })
                        }
                    }
                }
                dt { "Uploaded" } dd { (up.uploaded_by) ", " (when(&up.uploaded_at)) "; kept until " (when(&up.expires_at)) }
            }
        }
    }
}

fn preview_cards(p: &UploadPreview) -> Markup {
    html! {
        @for n in &p.notes { div class="flash flash-warn" { (n) } }
        @if p.refused {
            div class="flash flash-error" role="alert" id="upload-refused" {
                "The import would be refused: " (num(p.bad_value_count)) " values do not fit their column, and you chose to import nothing then."
            }
        }
        div class="card table-wrap" {
            h2 { "Columns and first profiles" }
            table class="stack" id="upload-rows-table" {
                thead { tr { @for c in &p.columns { th { (c.name) br; span class="badge badge-muted" data-type=(c.kind.as_str()) { (c.kind.as_str()) } } } } }
                tbody {
                    @for row in &p.first_rows {
                        tr { @for (c, v) in p.columns.iter().zip(row) {
                            td data-label=(c.name) { @if let Some(v) = v { (v) } @else { span class="muted" { "—" } } }
                        } }
                    }
                }
            }
        }
        @if p.bad_value_count > 0 {
            div class="card table-wrap" id="bad-values" {
                h2 { (num(p.bad_value_count)) " values do not fit their column" }
                @if p.skipped_rows > 0 { p { (num(p.skipped_rows)) " profiles would be left out." } }
                table class="stack" {
                    thead { tr { th class="num" { "Line" } th { "Column" } th { "Value" } th { "Why" } } }
                    tbody { @for b in &p.bad_values {
                        tr { td data-label="Line" class="num" { (b.line) } td data-label="Column" { (b.column) } td data-label="Value" { code { (b.value) } } td data-label="Why" { (b.problem) } }
                    } }
                }
            }
        }
    }
}

fn actions(who: &Authed, up: &ProfileUpload) -> Markup {
    let base = format!("/profiles/uploads/{}", seg(&up.id));
    html! {
        div class="card" {
            div class="actions" {
                @if up.preview.as_ref().is_some_and(|p| !p.refused) {
                    form method="post" action=(format!("{base}/commit")) class="inline" {
                        (csrf(who))
                        button type="submit" class="btn btn-primary" id="commit-upload" { "Import " (up.preview.as_ref().map_or(0, |p| p.rows)) " profiles" }
                    }
                }
                form method="post" action=(format!("{base}/discard")) class="inline" {
                    (csrf(who))
                    button type="submit" class="btn btn-secondary" id="discard-upload" { "Discard" }
                }
            }
            details id="preview-again" open[up.problem.is_some()] {
                summary { "Read it differently" }
                form method="post" action=(format!("{base}/preview")) {
                    (csrf(who))
                    (option_fields(&up.options, &up.key))
                    button type="submit" class="btn btn-secondary" { "Preview again" }
                }
            }
        }
    }
}

/// "Preview again" with other options.
pub async fn repreview(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let mut up = uploads::load(&app, &id).await.or_page(&who)?;
    let back = format!("/profiles/uploads/{}", seg(&id));
    match options_of(|n| form.opt(n)) {
        Ok(o) => up.options = o,
        Err(e) => return Ok(redirect_notice(&back, &e.message)),
    }
    if let Some(key) = form.opt("key") {
        up.key = key;
    }
    uploads::preview(&app, &who.actor, up).await.or_page(&who)?;
    Ok(Redirect::to(&back).into_response())
}

pub async fn commit(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let report = uploads::commit(&app, &who.actor, &id).await.or_page(&who)?;
    crate::server::api::profiles::after_refresh(&app).await;
    Ok(redirect_notice(
        "/profiles",
        &format!("Imported {} profiles.", num(report.rows)),
    ))
}

pub async fn discard(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, Response> {
    form.check_csrf(&who).or_page(&who)?;
    uploads::discard(&app, &who.actor, &id)
        .await
        .or_page(&who)?;
    Ok(redirect_notice("/profiles", "The upload was discarded."))
}
