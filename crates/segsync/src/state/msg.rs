//! The words of the errors both backends give, so that they give the same.

use super::{ExportConfig, Result, StateError};

pub(crate) fn connection_exists(name: &str) -> StateError {
    StateError::Conflict(format!("a connection named \"{name}\" exists already"))
}

pub(crate) fn no_connection_listed(name: &str) -> StateError {
    StateError::NotFound(format!(
        "no connection named \"{name}\" (see `segsync connection list`)"
    ))
}

pub(crate) fn no_connection(name: &str) -> StateError {
    StateError::NotFound(format!("no connection named \"{name}\""))
}

pub(crate) fn segment_exists(name: &str) -> StateError {
    StateError::Conflict(format!(
        "a segment named \"{name}\" exists already (remove it first to change it)"
    ))
}

pub(crate) fn no_segment_listed(name: &str) -> StateError {
    StateError::NotFound(format!(
        "no segment named \"{name}\" (see `segsync segments list`)"
    ))
}

pub(crate) fn no_segment(name: &str) -> StateError {
    StateError::NotFound(format!("no segment named \"{name}\""))
}

/// Refuses to remove a segment that exports still use.
pub(crate) fn check_segment_unused(name: &str, exports: &[ExportConfig]) -> Result<()> {
    let users: Vec<&str> = exports
        .iter()
        .filter(|e| e.segments.iter().any(|s| s.segment == name))
        .map(|e| e.name.as_str())
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(StateError::Conflict(format!(
        "segment \"{name}\" is used by export(s) {}: remove it from them first",
        users.join(", ")
    )))
}

pub(crate) fn profile_source_exists(name: &str) -> StateError {
    StateError::Conflict(format!("a profile source named \"{name}\" exists already"))
}

pub(crate) fn no_profile_source(name: &str) -> StateError {
    StateError::NotFound(format!("no profile source named \"{name}\""))
}

pub(crate) fn profile_source_in_use(name: &str, segments: &[String]) -> StateError {
    StateError::Conflict(format!(
        "profile source \"{name}\" is used by segment(s) {}: remove them first",
        segments.join(", ")
    ))
}

pub(crate) fn export_exists(name: &str) -> StateError {
    StateError::Conflict(format!("an export named \"{name}\" exists already"))
}

pub(crate) fn no_export_listed(name: &str) -> StateError {
    StateError::NotFound(format!(
        "no export named \"{name}\" (see `segsync export list`)"
    ))
}

pub(crate) fn no_export(name: &str) -> StateError {
    StateError::NotFound(format!("no export named \"{name}\""))
}

pub(crate) fn parse_export(name: &str, config: &str) -> Result<ExportConfig> {
    serde_json::from_str(config).map_err(|e| StateError::Corrupt(format!("export {name}: {e}")))
}

pub(crate) fn too_many_tags(export: &str) -> StateError {
    StateError::Conflict(format!(
        "export \"{export}\" has used {} tag names; create a new export",
        segsync_core::TagSet::MAX
    ))
}

pub(crate) fn no_run(id: i64) -> StateError {
    StateError::NotFound(format!("no run {id} (see `segsync runs`)"))
}

pub(crate) fn user_exists(name: &str) -> StateError {
    StateError::Conflict(format!("a user named \"{name}\" exists already"))
}

pub(crate) fn no_user(name: &str) -> StateError {
    StateError::NotFound(format!("no user named \"{name}\""))
}

pub(crate) fn no_token(id: i64) -> StateError {
    StateError::NotFound(format!("no API token {id}"))
}

pub(crate) fn no_queued_run(id: i64) -> StateError {
    StateError::NotFound(format!("no queued run {id}"))
}

pub(crate) fn queued_run_not_held(id: i64, worker: &str) -> StateError {
    StateError::Conflict(format!(
        "queued run {id} is not held by worker \"{worker}\" (its lease ran out and another \
         worker took it over, or it is done)"
    ))
}

pub(crate) fn bad_key(what: &str) -> StateError {
    StateError::Corrupt(format!("{what} key"))
}

/// A profile source reads a table or a query.
pub(crate) fn check_relation_kind(kind: &str) -> Result<()> {
    match kind {
        "table" | "query" => Ok(()),
        other => Err(StateError::Conflict(format!(
            "a profile source reads a table or a query, not {other:?}"
        ))),
    }
}

pub(crate) fn suppression_exists(export: Option<&str>, kind: &str, value: &str) -> StateError {
    StateError::Conflict(format!(
        "{kind} {value:?} is on {} already",
        super::suppressions::list_name(export)
    ))
}

pub(crate) fn no_suppression(export: Option<&str>, kind: &str, value: &str) -> StateError {
    StateError::NotFound(format!(
        "{kind} {value:?} is not on {}",
        super::suppressions::list_name(export)
    ))
}

pub(crate) fn bad_suppression_kind(kind: &str) -> StateError {
    StateError::Corrupt(format!("suppression kind {kind:?}"))
}
