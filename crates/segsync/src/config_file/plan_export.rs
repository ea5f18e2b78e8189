//! How an `[[export]]` of the file becomes a step: its connection, segments, columns and
//! merge tags checked, its declaration normalised as the installation stores it, and the
//! keys that change named.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use segsync_core::{NewStatus, RemovalPolicy};
use toml::Spanned;

use crate::ops::{self, ExportInput};
use crate::state::{ExportConfig, FieldMap, SegmentTag};

use super::model::{ExportSpec, DEFAULT_MAX_PROFILES};
use super::plan::{step, Action, Installation, Kind, Op, Options, Problems, Step};

pub(super) fn plan_export(
    e: &ExportSpec,
    inst: &Installation,
    options: Options,
    file_connections: &BTreeSet<&str>,
    file_segments: &BTreeMap<&str, Option<&str>>,
    p: &mut Problems<'_>,
) -> Option<Step> {
    let name = e.name.get_ref();
    if let Err(err) = ops::check_name("export", name) {
        p.op(e.name.span(), "export", err);
        return None;
    }
    let what = format!("export \"{name}\"");
    let before = p.list.len();

    let connection = e.connection.get_ref();
    if !file_connections.contains(connection.as_str())
        && !inst.connections.iter().any(|c| &c.name == connection)
    {
        p.at(
            e.connection.span(),
            format!(
                "{what}: connection \"{connection}\" is neither in the file nor in the installation"
            ),
        );
    }
    if e.audience.get_ref().trim().is_empty() {
        p.at(
            e.audience.span(),
            format!("{what}: the audience id is empty: give the id shown in Mailchimp under Audience > Settings"),
        );
    }
    check_columns(e, inst, file_segments, &what, p);
    check_merge_tags(e, &what, p);
    check_segment_choices(e, inst, options, file_segments, &what, p);

    if let Some(s) = &e.schedule {
        if let Err(err) = ops::check_schedule(&s.get_ref().0) {
            p.op(s.span(), &format!("{what}: schedule"), err);
        }
    }
    if let Some(m) = &e.max_profiles {
        if *m.get_ref() == 0 {
            p.at(m.span(), format!("{what}: max_profiles must be at least 1"));
        }
    }
    if p.list.len() > before {
        return None;
    }

    Some(export_step(e, inst))
}

/// The profile source of the export's segments (one for all), and the columns the export
/// maps checked against it.
fn check_columns(
    e: &ExportSpec,
    inst: &Installation,
    file_segments: &BTreeMap<&str, Option<&str>>,
    what: &str,
    p: &mut Problems<'_>,
) {
    let source_of = |segment: &str| -> Option<Option<String>> {
        match file_segments.get(segment) {
            Some(src) => Some(src.map(str::to_string)),
            None => inst
                .segments
                .iter()
                .find(|x| x.name == segment)
                .map(|x| x.source.clone()),
        }
    };
    let sources: BTreeSet<Option<String>> = e
        .segments
        .get_ref()
        .iter()
        .filter_map(|s| source_of(s.segment.get_ref()))
        .collect();
    if sources.len() > 1 {
        p.at(
            e.segments.span(),
            format!("{what}: its segments read different profile sources; an export's segments all come from one source"),
        );
    }
    let source = sources.into_iter().next().flatten();
    let (known, from) = match &source {
        None => (&inst.columns, "profiles imported yet".to_string()),
        Some(src) => match inst.source_columns.get(src) {
            Some(c) => (c, format!("columns in profile source \"{src}\"")),
            None => (&inst.columns, format!("profile source \"{src}\"")),
        },
    };

    // Columns.
    let mut columns: Vec<&Spanned<String>> = vec![&e.email_field];
    columns.extend(e.first_name.iter());
    columns.extend(e.last_name.iter());
    columns.extend(e.merge.iter().flat_map(|m| m.values()));
    columns.extend(e.updated_at_field.iter());
    if source.is_some() && known.is_empty() {
        p.at(
            e.email_field.span(),
            format!("{what}: no {from}, so no column can be checked"),
        );
    } else if known.is_empty() {
        p.at(
            e.email_field.span(),
            format!("{what}: no profiles imported yet, so no column can be checked: import them first (`segsync profiles import FILE --key COLUMN`)"),
        );
    } else {
        for c in columns {
            let col = c.get_ref().trim();
            if !known.iter().any(|x| x == col) {
                p.at(
                    c.span(),
                    format!(
                        "{what}: no profile column \"{col}\" (columns: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// Merge tags as Mailchimp takes them, each mapped once (FNAME and LNAME by first_name
/// and last_name).
fn check_merge_tags(e: &ExportSpec, what: &str, p: &mut Problems<'_>) {
    let mut tags: Vec<String> = Vec::new();
    tags.extend(e.first_name.iter().map(|_| "FNAME".to_string()));
    tags.extend(e.last_name.iter().map(|_| "LNAME".to_string()));
    for (tag, column) in e.merge.iter().flatten() {
        let t = tag.trim().to_uppercase();
        if t.is_empty() || t.len() > 10 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            p.at(
                column.span(),
                format!("{what}: merge field {tag:?}: a merge tag is 1 to 10 letters, digits or underscores"),
            );
        } else if tags.contains(&t) {
            let hint = match t.as_str() {
                "FNAME" => " (first_name maps it already)",
                "LNAME" => " (last_name maps it already)",
                _ => "",
            };
            p.at(
                column.span(),
                format!("{what}: merge field {t} is mapped twice{hint}"),
            );
        } else {
            tags.push(t);
        }
    }
}

/// The segments the export sends: at least one, each once, each in the file or the
/// installation (in the file, with `--prune`, which removes the others).
fn check_segment_choices(
    e: &ExportSpec,
    inst: &Installation,
    options: Options,
    file_segments: &BTreeMap<&str, Option<&str>>,
    what: &str,
    p: &mut Problems<'_>,
) {
    if e.segments.get_ref().is_empty() {
        p.at(
            e.segments.span(),
            format!("{what}: an export sends at least one segment"),
        );
    }
    let mut chosen = HashSet::new();
    for s in e.segments.get_ref() {
        let seg = s.segment.get_ref();
        let in_file = file_segments.contains_key(seg.as_str());
        let in_inst = inst.segments.iter().any(|x| &x.name == seg);
        if !in_file && !in_inst {
            p.at(
                s.segment.span(),
                format!("{what}: segment \"{seg}\" is neither in the file nor in the installation"),
            );
        } else if !in_file && options.prune {
            p.at(
                s.segment.span(),
                format!("{what}: segment \"{seg}\" is not in the file, and --prune removes it: declare it in the file"),
            );
        }
        if !chosen.insert(seg.as_str()) {
            p.at(
                s.segment.span(),
                format!("{what}: segment \"{seg}\" is chosen twice"),
            );
        }
        if let Some(t) = &s.tag {
            if let Err(err) = ops::check_name("tag", t.get_ref()) {
                p.op(t.span(), what, err);
            }
        }
    }
}

/// The step of an export whose declaration is right: what it changes in the installation.
fn export_step(e: &ExportSpec, inst: &Installation) -> Step {
    let name = e.name.get_ref();
    let current = inst.exports.iter().find(|x| &x.name == name);
    let mut desired = desired_export(e, current);
    let mut st = match current {
        None => step(Kind::Export, name, Action::Create, Op::None),
        Some(cur) => {
            // The order of merge fields and segments means nothing: keep the stored one.
            if field_set(cur) == field_set(&desired) {
                desired.fields = cur.fields.clone();
            }
            if segment_set(cur) == segment_set(&desired) {
                desired.segments = cur.segments.clone();
            }
            let changes = export_changes(cur, &desired);
            let mut st = step(
                Kind::Export,
                name,
                if changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Update
                },
                Op::None,
            );
            if cur.connection != desired.connection || cur.audience_id != desired.audience_id {
                st.notes
                    .push("it starts afresh: its snapshot of the old audience is dropped".into());
            }
            st.changes = changes;
            st
        }
    };
    st.blame = Some(e.audience.span());
    let mode = match st.action {
        Action::Create => Some(ops::SaveMode::Create),
        Action::Update => Some(ops::SaveMode::Replace),
        _ => None,
    };
    if let Some(mode) = mode {
        st.op = Op::SaveExport(Box::new(ExportInput::from_config(&desired)), mode);
    }
    st
}

/// The configuration an `[[export]]` declares, normalised as [`ops::save_export`] stores it.
/// `current` supplies what the file leaves to the installation (`paused`).
fn desired_export(e: &ExportSpec, current: Option<&ExportConfig>) -> ExportConfig {
    let mut fields = Vec::new();
    if let Some(f) = &e.first_name {
        fields.push(FieldMap {
            tag: "FNAME".into(),
            column: f.get_ref().clone(),
            kind: None,
        });
    }
    if let Some(l) = &e.last_name {
        fields.push(FieldMap {
            tag: "LNAME".into(),
            column: l.get_ref().clone(),
            kind: None,
        });
    }
    for (tag, column) in e.merge.iter().flatten() {
        fields.push(FieldMap {
            tag: tag.trim().to_uppercase(),
            column: column.get_ref().trim().to_string(),
            kind: None,
        });
    }
    let segments = e
        .segments
        .get_ref()
        .iter()
        .map(|s| SegmentTag {
            segment: s.segment.get_ref().clone(),
            tag: s
                .tag
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_else(|| s.segment.get_ref().clone()),
        })
        .collect();
    ExportConfig {
        name: e.name.get_ref().clone(),
        connection: e.connection.get_ref().clone(),
        audience_id: e.audience.get_ref().trim().to_string(),
        email_field: e.email_field.get_ref().clone(),
        fields,
        segments,
        status_if_new: e.status_if_new.unwrap_or(NewStatus::Subscribed),
        removal: e.removal.unwrap_or(RemovalPolicy::Untag),
        max_profiles: e
            .max_profiles
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or(DEFAULT_MAX_PROFILES),
        create_merge_fields: e.create_merge_fields.unwrap_or(false),
        updated_at_field: e.updated_at_field.as_ref().map(|u| u.get_ref().clone()),
        schedule: e
            .schedule
            .as_ref()
            .map(|s| s.get_ref().0.clone())
            .unwrap_or_default(),
        paused: e.paused.or(current.map(|c| c.paused)).unwrap_or(false),
        audience_name: current.and_then(|c| c.audience_name.clone()),
    }
}

fn field_set(c: &ExportConfig) -> BTreeSet<(&str, &str)> {
    c.fields
        .iter()
        .map(|f| (f.tag.as_str(), f.column.as_str()))
        .collect()
}

fn segment_set(c: &ExportConfig) -> BTreeSet<(&str, &str)> {
    c.segments
        .iter()
        .map(|s| (s.segment.as_str(), s.tag.as_str()))
        .collect()
}

/// The keys of the file whose values differ between two configurations of an export.
pub fn export_changes(old: &ExportConfig, new: &ExportConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |changed: bool, key: &str| {
        if changed {
            out.push(key.to_string());
        }
    };
    let column = |c: &ExportConfig, tag: &str| -> Option<String> {
        c.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| f.column.clone())
    };
    let others = |c: &ExportConfig| -> BTreeSet<(String, String)> {
        c.fields
            .iter()
            .filter(|f| f.tag != "FNAME" && f.tag != "LNAME")
            .map(|f| (f.tag.clone(), f.column.clone()))
            .collect()
    };
    push(old.connection != new.connection, "connection");
    push(old.audience_id != new.audience_id, "audience");
    push(old.email_field != new.email_field, "email_field");
    push(column(old, "FNAME") != column(new, "FNAME"), "first_name");
    push(column(old, "LNAME") != column(new, "LNAME"), "last_name");
    push(others(old) != others(new), "merge");
    push(segment_set(old) != segment_set(new), "segments");
    push(old.status_if_new != new.status_if_new, "status_if_new");
    push(old.removal != new.removal, "removal");
    push(old.max_profiles != new.max_profiles, "max_profiles");
    push(
        old.create_merge_fields != new.create_merge_fields,
        "create_merge_fields",
    );
    push(
        old.updated_at_field != new.updated_at_field,
        "updated_at_field",
    );
    push(old.schedule != new.schedule, "schedule");
    push(old.paused != new.paused, "paused");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::render;
    use crate::config_file::testkit::{installation, plan_of};

    #[test]
    fn a_changed_export_names_the_keys_that_change() {
        let inst = installation();
        let mut text = render(
            &inst.connections,
            &inst.sources,
            &inst.segments,
            &inst.exports,
        );
        text = text.replace(
            "schedule = { cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }",
            "schedule = \"after_refresh\"",
        );
        text = text.replace(
            "{ segment = \"romania\" }",
            "{ segment = \"romania\", tag = \"RO\" }",
        );
        let plan = plan_of(&text, &inst, Options::default()).unwrap();
        let e = plan.steps.iter().find(|s| s.kind == Kind::Export).unwrap();
        assert_eq!(e.action, Action::Update);
        assert_eq!(e.changes, ["segments", "schedule"]);
        // Only the export changes.
        assert_eq!(plan.count(Action::Update), 1);
        // The stored order of merge fields is kept (nothing in the audit about the mapping).
        let Op::SaveExport(input, ops::SaveMode::Replace) = &e.op else {
            panic!("a replace")
        };
        assert_eq!(
            input
                .merge
                .iter()
                .map(|m| m.tag.as_str())
                .collect::<Vec<_>>(),
            ["LTV", "CITY"]
        );
        // `paused` left out: the installation's value stays.
        let text2 = text.replace("paused = true\n", "");
        let plan = plan_of(&text2, &inst, Options::default()).unwrap();
        let e = plan.steps.iter().find(|s| s.kind == Kind::Export).unwrap();
        assert_eq!(e.changes, ["segments", "schedule"]);
    }
}
