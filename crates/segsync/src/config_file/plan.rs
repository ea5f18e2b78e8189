//! Checking the file against the installation and planning the changes: what the plan
//! starts from (the installation, the options of `apply`, the checks only the caller can
//! make), the steps it is made of, and their order. Each kind of object is checked and
//! planned in a file of its own: `plan_connection.rs`, `plan_segment.rs`, `plan_export.rs`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;

use secrecy::SecretString;
use serde::Serialize;
use toml::Spanned;

use crate::ops::{self, ConnectionView, ExportInput};
use crate::state::{ExportConfig, SegmentRecord};

use super::model::ConfigFile;
use super::plan_connection::plan_connection;
use super::plan_export::plan_export;
use super::plan_segment::plan_segment;
use super::plan_source::plan_source;
use super::source::{sort_problems, Problem, Source};

// --- the installation as the plan sees it ---

/// What the installation holds now.
#[derive(Clone, Debug, Default)]
pub struct Installation {
    pub connections: Vec<ConnectionView>,
    pub segments: Vec<SegmentRecord>,
    pub exports: Vec<ExportConfig>,
    /// The profile columns (empty: no profiles imported yet).
    pub columns: Vec<String>,
    /// The database profile sources.
    pub sources: Vec<crate::sources::SourceView>,
    /// The columns of each database profile source by name (and of each source the file
    /// declares, when it can be read).
    pub source_columns: BTreeMap<String, Vec<String>>,
    /// The typed columns and SQL dialect of each source's profiles (`None`: the imported
    /// ones), to compile segment rules.
    pub rule_columns: RuleColumns,
}

/// The typed columns and SQL dialect of each source's profiles (`None`: the imported ones).
pub type RuleColumns =
    BTreeMap<Option<String>, (Vec<crate::profiles::Column>, crate::rules::Dialect)>;

/// How `apply` was asked to behave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Remove exports, segments and sources the file does not declare (never connections).
    pub prune: bool,
    /// Replace existing connections' credentials from the secret sources the file names.
    pub rotate_secrets: bool,
}

/// Checks a segment's predicate against the profiles of its source (`None`: the imported
/// ones); the error says why it is refused.
pub type PredicateCheck<'a> = dyn Fn(&str, Option<&str>) -> Result<(), String> + 'a;

/// The checks the plan needs from outside: predicates against the profile store, and the
/// stored secret of a connection (to tell whether a rotation changes anything).
pub struct Checks<'a> {
    pub predicate: &'a PredicateCheck<'a>,
    pub stored_secret: &'a dyn Fn(&str) -> Option<SecretString>,
}

// --- the plan ---

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Connection,
    Source,
    Segment,
    Export,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
            Kind::Source => "source",
            Kind::Segment => "segment",
            Kind::Export => "export",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Remove,
    /// In the installation, not in the file, left alone.
    NotInFile,
}

impl Action {
    /// `+`, `~`, `=`, `-`, `?`: the first character of an output line.
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Unchanged => '=',
            Action::Remove => '-',
            Action::NotInFile => '?',
        }
    }
}

/// The operation that carries out one step, through [`crate::ops`].
pub enum Op {
    None,
    AddConnection(Box<ops::NewConnection>),
    UpdateConnection(Box<ops::ConnectionChange>),
    AddSource(Box<ops::SourceInput>),
    RemoveSource,
    /// The predicate and the profile source.
    /// Predicate, source, and the rule (JSON) it was compiled from.
    AddSegment(String, Option<String>, Option<String>),
    /// Predicate, and the rule (JSON) it was compiled from.
    UpdateSegment(String, Option<String>),
    SaveExport(Box<ExportInput>, ops::SaveMode),
    RemoveExport,
    RemoveSegment,
}

/// One object of the file or the installation, and what applying the file does to it.
pub struct Step {
    pub kind: Kind,
    pub name: String,
    pub action: Action,
    /// For an update: the keys of the file that change (`schedule`, `segments`, ...).
    pub changes: Vec<String>,
    /// What a reader should know (`secret kept`, ...).
    pub notes: Vec<String>,
    pub op: Op,
    /// Where in the file a problem found later (with Mailchimp) should point.
    pub blame: Option<Range<usize>>,
}

/// The steps of an apply, in the order they run: connections, sources, segments, exports,
/// then the segments the file no longer declares (after the exports that used them), then
/// such sources (after the segments that read them).
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.steps.iter().filter(|s| s.action == action).count()
    }

    /// Whether applying changes anything.
    pub fn changes_anything(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Create | Action::Update | Action::Remove))
    }
}

pub(super) struct Problems<'a> {
    pub(super) source: &'a Source,
    pub(super) list: Vec<Problem>,
}

impl Problems<'_> {
    pub(super) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.list.push(self.source.problem(Some(span), message));
    }
    pub(super) fn op(&mut self, span: Range<usize>, what: &str, e: ops::OpError) {
        self.at(span, format!("{what}: {e}"));
    }
}

/// Names declared twice in the file.
fn duplicates<'a>(
    problems: &mut Problems<'_>,
    kind: &str,
    names: impl Iterator<Item = &'a Spanned<String>>,
) {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n.get_ref().as_str()) {
            problems.at(
                n.span(),
                format!("{kind} \"{}\" is declared twice in the file", n.get_ref()),
            );
        }
    }
}

/// Problems of the file as a whole, before any object is compared with the installation.
fn whole_file_problems(file: &ConfigFile, options: Options, p: &mut Problems<'_>) {
    duplicates(p, "connection", file.connections.iter().map(|c| &c.name));
    duplicates(p, "source", file.sources.iter().map(|s| &s.name));
    duplicates(p, "segment", file.segments.iter().map(|s| &s.name));
    duplicates(p, "export", file.exports.iter().map(|e| &e.name));
    if options.prune && file.segments.is_empty() && file.exports.is_empty() {
        p.list.push(file.source.problem(
            None,
            "--prune with a file that declares no segment and no export would remove every export and segment: refused",
        ));
    }
}

/// Validates the file against the installation and plans the changes; every problem found
/// is returned, and then nothing must be changed.
pub fn plan(
    file: &ConfigFile,
    inst: &Installation,
    options: Options,
    checks: &Checks<'_>,
) -> Result<Plan, Vec<Problem>> {
    let mut p = Problems {
        source: &file.source,
        list: Vec::new(),
    };
    let mut steps = Vec::new();
    whole_file_problems(file, options, &mut p);

    // Connections.
    let file_connections: BTreeSet<&str> = file
        .connections
        .iter()
        .map(|c| c.name.get_ref().as_str())
        .collect();
    for c in &file.connections {
        if let Some(step) = plan_connection(c, inst, options, checks, &mut p) {
            steps.push(step);
        }
    }
    for c in &inst.connections {
        if !file_connections.contains(c.name.as_str()) {
            steps.push(Step {
                kind: Kind::Connection,
                name: c.name.clone(),
                action: Action::NotInFile,
                changes: vec![],
                notes: vec!["connections are never pruned".into()],
                op: Op::None,
                blame: None,
            });
        }
    }

    // Database profile sources.
    let file_sources: BTreeSet<&str> = file
        .sources
        .iter()
        .map(|s| s.name.get_ref().as_str())
        .collect();
    for s in &file.sources {
        if let Some(step) = plan_source(s, inst, &mut p) {
            steps.push(step);
        }
    }

    // Segments, with the profile source each reads.
    let file_segments: BTreeMap<&str, Option<&str>> = file
        .segments
        .iter()
        .map(|s| {
            (
                s.name.get_ref().as_str(),
                s.source.as_ref().map(|x| x.get_ref().as_str()),
            )
        })
        .collect();
    for s in &file.segments {
        if let Some(step) = plan_segment(s, inst, &file_sources, checks, &mut p) {
            steps.push(step);
        }
    }

    // Exports.
    let file_exports: BTreeSet<&str> = file
        .exports
        .iter()
        .map(|e| e.name.get_ref().as_str())
        .collect();
    for e in &file.exports {
        if let Some(step) = plan_export(e, inst, options, &file_connections, &file_segments, &mut p)
        {
            steps.push(step);
        }
    }
    for e in &inst.exports {
        if !file_exports.contains(e.name.as_str()) {
            steps.push(undeclared(Kind::Export, &e.name, options, Op::RemoveExport));
        }
    }

    // Segments the file does not declare: after the exports (pruned ones used them).
    for s in &inst.segments {
        if !file_segments.contains_key(s.name.as_str()) {
            steps.push(undeclared(
                Kind::Segment,
                &s.name,
                options,
                Op::RemoveSegment,
            ));
        }
    }

    // Sources the file does not declare: after the segments (pruned ones read them).
    for s in &inst.sources {
        if !file_sources.contains(s.name.as_str()) {
            steps.push(undeclared(Kind::Source, &s.name, options, Op::RemoveSource));
        }
    }

    if p.list.is_empty() {
        Ok(Plan { steps })
    } else {
        let mut list = p.list;
        sort_problems(&mut list);
        Err(list)
    }
}

pub(super) fn step(kind: Kind, name: &str, action: Action, op: Op) -> Step {
    Step {
        kind,
        name: name.to_string(),
        action,
        changes: vec![],
        notes: vec![],
        op,
        blame: None,
    }
}

/// An export or segment of the installation that the file does not declare: removed by
/// `removal` with `--prune`, else left alone and listed.
fn undeclared(kind: Kind, name: &str, options: Options, removal: Op) -> Step {
    let (action, op) = if options.prune {
        (Action::Remove, removal)
    } else {
        (Action::NotInFile, Op::None)
    };
    step(kind, name, action, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::testkit::{installation, messages, plan_of};

    #[test]
    fn semantic_problems_are_all_listed_with_their_place() {
        let inst = installation();
        let text = r#"
[[export]]
name = "weekly"
connection = "nope"
audience = "x1"
email_field = "mail"
merge = { FNAME = "first_name", "bad tag!" = "city" }
first_name = "first_name"
segments = [{ segment = "romnia" }, { segment = "romania" }, { segment = "romania" }]
schedule = { cron = "0 25 * * *", timezone = "Europe/Bucharest" }

[[segment]]
name = "x"
where = "1"

[[segment]]
name = "x"
where = "2"
"#;
        let m = messages(plan_of(text, &inst, Options::default()));
        let all = m.join("\n");
        for want in [
            "segsync.toml:4:14: export \"weekly\": connection \"nope\" is neither in the file nor in the installation",
            "segsync.toml:6:15: export \"weekly\": no profile column \"mail\"",
            "merge field FNAME is mapped twice (first_name maps it already)",
            "merge field \"bad tag!\": a merge tag is 1 to 10 letters",
            "segsync.toml:9:25: export \"weekly\": segment \"romnia\" is neither in the file nor in the installation",
            "segment \"romania\" is chosen twice",
            "segsync.toml:10:12: export \"weekly\": schedule: cron schedule \"0 25 * * *\"",
            "segsync.toml:17:8: segment \"x\" is declared twice in the file",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        // Sorted by place.
        let lines: Vec<usize> = m
            .iter()
            .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{all}");
    }

    #[test]
    fn prune_removes_exports_then_segments_and_lists_the_rest() {
        let inst = installation();
        let text = "[[segment]]\nname = \"romania\"\nwhere = \"country = 'RO'\"\n";
        let plan = plan_of(
            text,
            &inst,
            Options {
                prune: true,
                rotate_secrets: false,
            },
        )
        .unwrap();
        let seen: Vec<(Kind, &str, Action)> = plan
            .steps
            .iter()
            .map(|s| (s.kind, s.name.as_str(), s.action))
            .collect();
        assert_eq!(
            seen,
            [
                (Kind::Connection, "mailchimp", Action::NotInFile),
                (Kind::Segment, "romania", Action::Unchanged),
                (Kind::Export, "newsletter", Action::Remove),
                (Kind::Segment, "high-value", Action::Remove),
            ]
        );
        let plan = plan_of(text, &inst, Options::default()).unwrap();
        assert_eq!(plan.count(Action::NotInFile), 3);
        assert!(!plan.changes_anything());
    }
}
