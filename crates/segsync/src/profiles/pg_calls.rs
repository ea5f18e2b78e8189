//! The PostgreSQL functions a segment predicate may not call: those that change the session
//! (settings, locks that outlive the transaction), reach outside the profiles (files, other
//! connections, large objects), run SQL given as text (which would escape every check on the
//! predicate's own text), or act on the server (signals, configuration, replication).
//!
//! The read-only transaction a predicate runs in refuses writes, but not these: a
//! `set_config('standard_conforming_strings', 'off', …)` changed how the next statement of the
//! transaction was read, and a `pg_advisory_lock(…)` stayed held after the rollback.
//!
//! [`super::postgres::scan`] applies this list to every name written right before a `(` — a
//! function call, schema-qualified or not, quoted or not (names are compared without regard to
//! case). Function names written with Unicode escapes (`U&"…"(`) are refused too, since they
//! could spell any of these. The attribute notation (`x.f` for `f(x)`) applies only to
//! functions of one composite argument, which none of these is.

/// Names refused as they are.
const EXACT: &[&str] = &[
    "set_config",
    "ts_stat",
    "ts_rewrite",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_current_logfile",
    "pg_notify",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_promote",
    "pg_export_snapshot",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_drop_replication_slot",
    "loread",
    "lowrite",
    "setval",
    "nextval",
];

/// Names refused by their beginning (families of functions).
const PREFIXES: &[&str] = &[
    "pg_advisory",
    "pg_try_advisory",
    "dblink",
    "lo_",
    "pg_ls_",
    "pg_file_",
    "pg_stat_reset",
    "pg_backup_",
    "pg_create_",
    "pg_copy_",
    "pg_logical_",
    "pg_replication_",
    "pg_wal_replay_",
];

/// Names refused wherever this appears in them: the `*_to_xml*` functions run a query or read
/// a whole table given by name.
const INFIXES: &[&str] = &["_to_xml"];

/// Why calling `name` is refused, if it is; `name` as written (unquoted names are compared in
/// lower case, as PostgreSQL folds them).
pub(crate) fn refused(name: &str) -> Option<String> {
    let n = name.to_ascii_lowercase();
    let hit = EXACT.contains(&n.as_str())
        || PREFIXES.iter().any(|p| n.starts_with(p))
        || INFIXES.iter().any(|i| n.contains(i));
    hit.then(|| {
        format!(
            "calling {name}() (functions that change the session's settings or locks, read \
             files, open connections or run SQL text cannot be used)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::refused;

    #[test]
    fn session_changing_and_outside_reaching_functions_are_refused() {
        for name in [
            "set_config",
            "SET_CONFIG",
            "pg_advisory_lock",
            "pg_try_advisory_xact_lock_shared",
            "dblink_exec",
            "lo_import",
            "pg_read_file",
            "pg_ls_dir",
            "query_to_xml",
            "table_to_xml_and_xmlschema",
            "ts_stat",
        ] {
            assert!(refused(name).is_some(), "{name}");
        }
        for name in [
            "lower",
            "coalesce",
            "pg_sleep",
            "current_setting",
            "date_trunc",
            "jsonb_path_exists",
            "lots",
        ] {
            assert!(refused(name).is_none(), "{name}");
        }
    }
}
