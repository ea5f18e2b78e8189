//! The imported profiles: importing a file (remembered for "refresh") or an upload, and
//! refreshing from the remembered file.

use serde::{Deserialize, Serialize};

use super::{audit, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::state::Role;

/// Where the profiles were last imported from, for "refresh".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProfileSource {
    pub path: String,
    /// csv, ndjson or parquet (by default from the extension).
    pub format: Option<String>,
    pub key: String,
    /// How the CSV file is written, when detection should not decide; what to do with
    /// values that do not fit their column's type.
    #[serde(default)]
    pub options: crate::profiles::ImportOptions,
}

const PROFILE_SOURCE: &str = "profiles.source";

fn parse_format(f: Option<&str>) -> OpResult<Option<crate::profiles::Format>> {
    f.map(|f| f.parse().map_err(OpError::Invalid)).transpose()
}

/// Imports the profiles from a file the server can read, replacing what was there
/// (atomically), and remembers it as the source that "refresh" reads again.
pub fn import_profiles(
    app: &App,
    actor: &Actor,
    source: &ProfileSource,
) -> OpResult<crate::profiles::ImportReport> {
    require(actor, Role::Admin, "importing profiles from a file")?;
    let report = import_quietly(app, source)?;
    let state = app.state()?;
    state.set_setting(
        PROFILE_SOURCE,
        Some(&serde_json::to_string(source).expect("source serialises")),
    )?;
    audit(
        &state,
        actor,
        "profiles.import",
        &source.path,
        &format!("{} profiles, key {}", report.rows, source.key),
    )?;
    Ok(report)
}

fn import_quietly(app: &App, source: &ProfileSource) -> OpResult<crate::profiles::ImportReport> {
    let format = parse_format(source.format.as_deref())?;
    app.profiles()?
        .import_with(
            std::path::Path::new(&source.path),
            format,
            &source.key,
            &source.options,
        )
        .map_err(|e| OpError::Invalid(e.to_string()))
}

/// Imports an uploaded file (already saved at `path`); it is not remembered as a source.
pub fn import_upload(
    app: &App,
    actor: &Actor,
    path: &std::path::Path,
    format: Option<&str>,
    key: &str,
    options: &crate::profiles::ImportOptions,
    label: &str,
) -> OpResult<crate::profiles::ImportReport> {
    require(actor, Role::Admin, "importing profiles")?;
    let report = app
        .profiles()?
        .import_with(path, parse_format(format)?, key, options)
        .map_err(|e| OpError::Invalid(e.to_string().replace(&path.display().to_string(), label)))?;
    let state = app.state()?;
    audit(
        &state,
        actor,
        "profiles.import",
        label,
        &format!("{} profiles, key {key}", report.rows),
    )?;
    Ok(report)
}

/// The remembered profile source, if any.
pub fn profile_source(app: &App) -> OpResult<Option<ProfileSource>> {
    let state = app.state()?;
    Ok(state
        .setting(PROFILE_SOURCE)?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// Imports the remembered source again ("refresh").
pub fn refresh_profiles(app: &App, actor: &Actor) -> OpResult<crate::profiles::ImportReport> {
    require(actor, Role::Contributor, "refreshing the profiles")?;
    let source = profile_source(app)?.ok_or_else(|| {
        OpError::Invalid("no profile source to refresh: an admin imports a file first".into())
    })?;
    let report = import_quietly(app, &source)?;
    let state = app.state()?;
    audit(
        &state,
        actor,
        "profiles.refresh",
        &source.path,
        &format!("{} profiles", report.rows),
    )?;
    Ok(report)
}

/// What an import of an uploaded file would do, read the way the import reads it (into a
/// scratch store at `scratch`, removed afterwards): the profile store is not touched.
/// Values that do not fit their column are listed even when the import would refuse them.
pub fn preview_upload(
    actor: &Actor,
    upload: &UploadFile<'_>,
    scratch: &std::path::Path,
) -> OpResult<(crate::profiles::ImportReport, crate::profiles::Preview)> {
    require(actor, Role::Admin, "previewing an import")?;
    let mut options = upload.options.clone();
    if options.on_bad_value == crate::profiles::OnBadValue::Refuse {
        options.on_bad_value = crate::profiles::OnBadValue::Empty;
    }
    let result = (|| {
        let store = crate::profiles::ProfileStore::open(scratch)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        let report = store
            .import_with(
                upload.path,
                parse_format(upload.format)?,
                upload.key,
                &options,
            )
            .map_err(|e| upload.invalid(e))?;
        let first = store
            .preview("1 = 1", PREVIEW_ROWS)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok((report, first))
    })();
    for end in ["", "-wal", "-shm"] {
        let mut p = scratch.as_os_str().to_owned();
        p.push(end);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
    result
}

/// Rows shown in an upload's preview.
pub const PREVIEW_ROWS: usize = 10;

/// An uploaded file saved by the server, with what the person importing says about it.
pub struct UploadFile<'a> {
    pub path: &'a std::path::Path,
    pub format: Option<&'a str>,
    pub key: &'a str,
    pub options: &'a crate::profiles::ImportOptions,
    /// How messages name the file (its name on the uploader's computer).
    pub label: &'a str,
}

impl UploadFile<'_> {
    fn invalid(&self, e: impl std::fmt::Display) -> OpError {
        OpError::Invalid(
            e.to_string()
                .replace(&self.path.display().to_string(), self.label),
        )
    }
}

/// Records an upload being kept for a preview or discarded (admins), in the audit log.
pub fn audit_upload(
    app: &App,
    actor: &Actor,
    action: &str,
    label: &str,
    detail: &str,
) -> OpResult<()> {
    require(actor, Role::Admin, "uploading profiles")?;
    audit(&app.state()?, actor, action, label, detail)
}
