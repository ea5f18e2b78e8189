//! Configuration as code: connections (never their secrets), segments and exports declared in
//! a TOML file that lives in git next to the segment SQL. `segsync apply FILE` makes an
//! installation match the file; `segsync dump` writes an installation's configuration in the
//! same format. This module is the file's model, its parsing (every error located as
//! `FILE:LINE:COLUMN`), its validation, the plan of changes against the installation, and the
//! dump. Changes themselves go through [`crate::ops`], like every other change; the commands
//! are in `cli/config.rs`.
//!
//! A complete, realistic file is `examples/segsync.toml` at the root of the repository (the
//! demo's shop); the end-to-end tests apply it.
//!
//! # The format
//!
//! ```toml
//! [[connection]]
//! name = "mailchimp"
//! display_name = "Mailchimp (marketing)"   # default: the name
//! api_key_env = "MAILCHIMP_API_KEY"        # where the secret comes from: one of api_key_env,
//!                                          # api_key_file, oauth_token_env; never the secret
//! base_url = "https://us6.api.mailchimp.com/3.0"   # default: from the key's data center
//! share_with_contributors = true           # default: admins only
//! export_user = "ana"                      # default: whoever applies the file
//! accept_privacy_terms = true              # required to create it (the data privacy statement)
//!
//! [[segment]]
//! name = "high-value"
//! where = "lifetime_value > 500"           # a SQL predicate over the profile columns
//! # source = "crm"                         # a PostgreSQL profile source (default: imported profiles)
//!
//! [[export]]
//! name = "newsletter"
//! connection = "mailchimp"                 # in this file or already in the installation
//! audience = "a1b2c3d4e5"                  # the Mailchimp audience id
//! email_field = "email"
//! first_name = "first_name"                # FNAME (optional)
//! last_name = "last_name"                  # LNAME (optional)
//! merge = { CITY = "city", LTV = "lifetime_value" }   # further merge fields: TAG = column
//! segments = [
//!   { segment = "high-value", tag = "High value" },   # the tag members get (default: the name)
//!   { segment = "romania" },
//! ]
//! status_if_new = "subscribed"             # subscribed (default), pending, transactional
//! removal = "untag"                        # untag (default), archive, unsubscribe
//! create_merge_fields = true               # create mapped merge fields the audience lacks
//! updated_at_field = "updated_at"          # picks among profiles sharing an address
//! max_profiles = 1000000                   # the default
//! schedule = { cron = "0 6 * * *", timezone = "Europe/Bucharest" }
//!                                          # or "after_refresh", or "manual" (the default)
//! paused = false                           # absent: left as it is in the installation
//! ```
//!
//! Rules:
//!
//! - Nothing changes unless the whole file is right, and every problem is listed with its
//!   place, in two rounds: first the form (TOML syntax, unknown keys and sections, missing
//!   keys, values of the wrong type or not among the allowed words), then, once the form is
//!   right, the content: duplicate names, an export whose connection or segments are neither
//!   in the file nor in the installation, a profile column that does not exist, a predicate
//!   that does not compile, a cron expression or time zone that does not parse, a secret
//!   source that cannot be read, a secret that cannot be a Mailchimp credential. Then
//!   `apply` asks Mailchimp, reading only, what only it knows (whether new credentials work,
//!   whether the audiences exist and have the mapped merge fields).
//! - A secret is read only when it is needed: to create a connection, or to replace an
//!   existing one's credential with `--rotate-secrets`. `api_key_file` is relative to the
//!   folder of the TOML file. An existing connection changes only in what the file says
//!   (display name, sharing, export user); its credential and API root change only with
//!   `--rotate-secrets`.
//! - An export is the whole of its declaration: an optional key that is absent takes its
//!   default (above), except `paused`, an operational switch left as it is unless the file
//!   says. The order of `merge` and `segments` carries no meaning.
//! - Objects of the installation that the file does not declare are left alone and listed;
//!   `--prune` removes such exports and segments, never connections.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use segsync_core::{NewStatus, RemovalPolicy};
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

use crate::mailchimp::{ClientConfig, Credential};
use crate::ops::{self, ConnectionView, ExportInput};
use crate::state::{ExportConfig, FieldMap, Schedule, SegmentRecord, SegmentTag};
use crate::PRIVACY_STATEMENT;

const DEFAULT_MAX_PROFILES: u64 = 1_000_000;

// --- where things are in the file ---

/// The text of a configuration file, with what it takes to say where a problem is.
pub struct Source {
    /// How the file is named in messages (the path as given).
    label: String,
    /// The folder relative `api_key_file` paths start from.
    dir: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl Source {
    /// `label` names the file in messages; `dir` is the folder relative paths start from.
    pub fn new(label: impl Into<String>, dir: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            label: label.into(),
            dir: dir.into(),
            text,
            line_starts,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Line and column (1-based; the column counts characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, column + 1)
    }

    /// A problem at `span` (or of the whole file).
    pub fn problem(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Problem {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Problem {
            file: self.label.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Something wrong with the file, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COLUMN: message`, as compilers say it (editors jump there).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

// --- the model ---

/// A `[[connection]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub display_name: Option<Spanned<String>>,
    #[serde(default)]
    pub api_key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub api_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub oauth_token_env: Option<Spanned<String>>,
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub share_with_contributors: Option<bool>,
    #[serde(default)]
    pub export_user: Option<Spanned<String>>,
    #[serde(default)]
    pub accept_privacy_terms: Option<Spanned<bool>>,
}

/// A `[[segment]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    pub name: Spanned<String>,
    #[serde(rename = "where")]
    pub predicate: Spanned<String>,
    /// A PostgreSQL profile source (`segsync profiles source add`); absent: the imported
    /// profiles.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
}

/// One of an export's `segments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    pub segment: Spanned<String>,
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
}

/// An `[[export]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    pub name: Spanned<String>,
    pub connection: Spanned<String>,
    pub audience: Spanned<String>,
    pub email_field: Spanned<String>,
    #[serde(default)]
    pub first_name: Option<Spanned<String>>,
    #[serde(default)]
    pub last_name: Option<Spanned<String>>,
    /// Merge tag → profile column.
    #[serde(default)]
    pub merge: Option<BTreeMap<String, Spanned<String>>>,
    pub segments: Spanned<Vec<SegmentRef>>,
    #[serde(default)]
    pub status_if_new: Option<NewStatus>,
    #[serde(default)]
    pub removal: Option<RemovalPolicy>,
    #[serde(default)]
    pub max_profiles: Option<Spanned<u64>>,
    #[serde(default)]
    pub create_merge_fields: Option<bool>,
    #[serde(default)]
    pub updated_at_field: Option<Spanned<String>>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleSpec>>,
    #[serde(default)]
    pub paused: Option<bool>,
}

/// `schedule = "manual" | "after_refresh" | { cron = "...", timezone = "..." }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec(pub Schedule);

impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const HOW: &str =
            "\"manual\", \"after_refresh\", or { cron = \"0 6 * * *\", timezone = \"Europe/Bucharest\" }";
        impl<'de> Visitor<'de> for V {
            type Value = ScheduleSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a schedule: {HOW}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ScheduleSpec, E> {
                match s {
                    "manual" => Ok(ScheduleSpec(Schedule::Manual)),
                    "after_refresh" => Ok(ScheduleSpec(Schedule::AfterRefresh)),
                    other => Err(E::custom(format!(
                        "unknown schedule \"{other}\": use {HOW}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScheduleSpec, A::Error> {
                let mut cron: Option<String> = None;
                let mut timezone: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "cron" if cron.is_none() => cron = Some(map.next_value()?),
                        "timezone" if timezone.is_none() => timezone = Some(map.next_value()?),
                        "cron" | "timezone" => return Err(de::Error::duplicate_field("cron")),
                        other => {
                            return Err(de::Error::unknown_field(other, &["cron", "timezone"]))
                        }
                    }
                }
                let cron = cron.ok_or_else(|| de::Error::missing_field("cron"))?;
                Ok(ScheduleSpec(Schedule::Cron {
                    cron,
                    timezone: timezone.unwrap_or_else(|| "UTC".into()),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// A parsed file: its objects in file order, and its source for messages.
pub struct ConfigFile {
    pub source: Source,
    pub connections: Vec<ConnectionSpec>,
    pub segments: Vec<SegmentSpec>,
    pub exports: Vec<ExportSpec>,
}

/// Parses a file. Syntax errors are all reported (the parser recovers); then every object is
/// read on its own, so that a mistake in one does not hide the mistakes of the others.
pub fn parse(source: Source) -> Result<ConfigFile, Vec<Problem>> {
    let text = source.text.clone();
    let (root, errors) = toml::de::DeTable::parse_recoverable(&text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| source.problem(e.span(), e.message()))
            .collect());
    }
    let mut problems = Vec::new();
    let mut connections = Vec::new();
    let mut segments = Vec::new();
    let mut exports = Vec::new();
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "connection" => read_tables(&source, "connection", value, &mut connections, &mut problems),
            "segment" => read_tables(&source, "segment", value, &mut segments, &mut problems),
            "export" => read_tables(&source, "export", value, &mut exports, &mut problems),
            other => problems.push(source.problem(
                Some(key.span()),
                format!(
                    "unknown key `{other}`: a file holds [[connection]], [[segment]] and [[export]] tables"
                ),
            )),
        }
    }
    if !problems.is_empty() {
        sort_problems(&mut problems);
        return Err(problems);
    }
    Ok(ConfigFile {
        source,
        connections,
        segments,
        exports,
    })
}

fn read_tables<T: DeserializeOwned>(
    source: &Source,
    what: &str,
    value: Spanned<DeValue<'_>>,
    out: &mut Vec<T>,
    problems: &mut Vec<Problem>,
) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => {
            for item in items {
                let item_span = item.span();
                if !item.get_ref().is_table() {
                    problems.push(source.problem(
                        Some(item_span),
                        format!("each {what} is a table: write [[{what}]] and its keys below it"),
                    ));
                    continue;
                }
                // Named in messages when its name can be read, whatever else is wrong.
                let named = item
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == "name"))
                    .and_then(|(_, v)| v.get_ref().as_str())
                    .map(|n| format!("{what} \"{n}\""))
                    .unwrap_or_else(|| what.to_string());
                match T::deserialize(ValueDeserializer::from(item)) {
                    Ok(t) => out.push(t),
                    Err(e) => problems.push(source.problem(
                        e.span().or(Some(item_span)),
                        format!("{named}: {}", e.message()),
                    )),
                }
            }
        }
        _ => problems.push(source.problem(
            Some(span),
            format!("write [[{what}]] (double brackets: there may be several), not [{what}]"),
        )),
    }
}

fn sort_problems(problems: &mut [Problem]) {
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
}

// --- secrets ---

/// Where a connection's secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable holding an API key (`kind` api_key) or an OAuth token (oauth).
    Env { var: String, kind: &'static str },
    /// A file holding an API key; `path` as written, `resolved` from the file's folder.
    File { path: String, resolved: PathBuf },
}

impl SecretSource {
    /// `api_key` or `oauth`.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretSource::Env { kind, .. } => kind,
            SecretSource::File { .. } => "api_key",
        }
    }

    /// As the file says it: `api_key_env MAILCHIMP_API_KEY`.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env { var, kind } => format!(
                "{} {var}",
                if *kind == "oauth" {
                    "oauth_token_env"
                } else {
                    "api_key_env"
                }
            ),
            SecretSource::File { path, .. } => format!("api_key_file {path}"),
        }
    }

    /// Reads the secret (trimmed). The error never contains it.
    pub fn read(&self) -> Result<SecretString, String> {
        let text = match self {
            SecretSource::Env { var, .. } => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("{}: the variable is not set", self.describe()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!(
                        "{}: the variable is not valid UTF-8",
                        self.describe()
                    ))
                }
            },
            SecretSource::File { path, resolved } => {
                std::fs::read_to_string(resolved).map_err(|e| {
                    if Path::new(path).is_absolute() {
                        format!("api_key_file {path}: cannot read it: {e}")
                    } else {
                        format!(
                            "api_key_file {path} ({}): cannot read it: {e}",
                            resolved.display()
                        )
                    }
                })?
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!("{}: it is empty", self.describe()));
        }
        Ok(SecretString::from(trimmed.to_string()))
    }
}

impl ConnectionSpec {
    /// The secret source the file names, if any (a problem if it names several).
    fn secret_source(
        &self,
        source: &Source,
    ) -> Result<Option<(SecretSource, Range<usize>)>, Problem> {
        let mut found = Vec::new();
        if let Some(v) = &self.api_key_env {
            found.push((
                SecretSource::Env {
                    var: v.get_ref().clone(),
                    kind: "api_key",
                },
                v.span(),
            ));
        }
        if let Some(v) = &self.api_key_file {
            found.push((
                SecretSource::File {
                    path: v.get_ref().clone(),
                    resolved: source.dir.join(v.get_ref()),
                },
                v.span(),
            ));
        }
        if let Some(v) = &self.oauth_token_env {
            found.push((
                SecretSource::Env {
                    var: v.get_ref().clone(),
                    kind: "oauth",
                },
                v.span(),
            ));
        }
        if found.len() > 1 {
            return Err(source.problem(
                Some(found[1].1.clone()),
                format!(
                    "connection \"{}\": give one secret source (api_key_env, api_key_file or oauth_token_env), not {}",
                    self.name.get_ref(),
                    found.len()
                ),
            ));
        }
        for (s, span) in &found {
            let empty = match s {
                SecretSource::Env { var, .. } => var.trim().is_empty(),
                SecretSource::File { path, .. } => path.trim().is_empty(),
            };
            if empty {
                return Err(source.problem(
                    Some(span.clone()),
                    format!(
                        "connection \"{}\": the secret source is empty: name an environment variable or a file",
                        self.name.get_ref()
                    ),
                ));
            }
        }
        Ok(found.pop())
    }
}

/// Checks a secret as a credential of its kind, and the API root it would be used with,
/// without sending anything. The message never contains the secret.
pub fn check_credential(
    secret: &SecretString,
    kind: &str,
    base_url: Option<&str>,
) -> Result<(), String> {
    let credential = if kind == "oauth" {
        Credential::oauth_token(secret.clone())
    } else {
        Credential::api_key(secret.clone())
    }
    .map_err(|e| e.to_string())?;
    let mut config = ClientConfig::new(credential);
    if let Some(u) = base_url {
        config.base_url =
            url::Url::parse(u).map_err(|e| format!("base_url \"{u}\" is not a URL: {e}"))?;
    }
    config.validate().map_err(|e| e.to_string())
}

// --- the installation as the plan sees it ---

/// What the installation holds now.
#[derive(Clone, Debug, Default)]
pub struct Installation {
    pub connections: Vec<ConnectionView>,
    pub segments: Vec<SegmentRecord>,
    pub exports: Vec<ExportConfig>,
    /// The profile columns (empty: no profiles imported yet).
    pub columns: Vec<String>,
    /// The columns of each PostgreSQL profile source, by name.
    pub source_columns: BTreeMap<String, Vec<String>>,
}

/// How `apply` was asked to behave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Remove exports and segments the file does not declare (never connections).
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
    Segment,
    Export,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
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
    /// The predicate and the profile source.
    AddSegment(String, Option<String>),
    UpdateSegment(String),
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

/// The steps of an apply, in the order they run: connections, segments, exports, then the
/// segments the file no longer declares (after the exports that used them).
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

struct Problems<'a> {
    source: &'a Source,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.list.push(self.source.problem(Some(span), message));
    }
    fn op(&mut self, span: Range<usize>, what: &str, e: ops::OpError) {
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
    duplicates(
        &mut p,
        "connection",
        file.connections.iter().map(|c| &c.name),
    );
    duplicates(&mut p, "segment", file.segments.iter().map(|s| &s.name));
    duplicates(&mut p, "export", file.exports.iter().map(|e| &e.name));
    if options.prune && file.segments.is_empty() && file.exports.is_empty() {
        p.list.push(file.source.problem(
            None,
            "--prune with a file that declares no segment and no export would remove every export and segment: refused",
        ));
    }

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
        let name = s.name.get_ref();
        if let Err(e) = ops::check_name("segment", name) {
            p.op(s.name.span(), "segment", e);
            continue;
        }
        let predicate = s.predicate.get_ref();
        let source = s.source.as_ref().map(|x| x.get_ref().as_str());
        if let Some(src) = &s.source {
            if !inst.source_columns.contains_key(src.get_ref()) {
                p.at(
                    src.span(),
                    format!(
                        "segment \"{name}\": no profile source named \"{}\" (an admin adds it with `segsync profiles source add`)",
                        src.get_ref()
                    ),
                );
                continue;
            }
        }
        let current = inst.segments.iter().find(|x| &x.name == name);
        if let Some(c) = current {
            if c.source.as_deref() != source {
                let from = |s: Option<&str>| match s {
                    Some(src) => format!("profile source \"{src}\""),
                    None => "the imported profiles".to_string(),
                };
                p.at(
                    s.source.as_ref().map_or(s.name.span(), |x| x.span()),
                    format!(
                        "segment \"{name}\" reads {} and the file says {}: a segment keeps its source (remove it, or give the new one another name)",
                        from(c.source.as_deref()),
                        from(source)
                    ),
                );
                continue;
            }
        }
        if current.is_some_and(|c| &c.predicate == predicate) {
            steps.push(step(Kind::Segment, name, Action::Unchanged, Op::None));
            continue;
        }
        if let Err(e) = (checks.predicate)(predicate, source) {
            p.at(
                s.predicate.span(),
                format!("segment \"{name}\": invalid predicate: {e}"),
            );
            continue;
        }
        let mut st = match current {
            None => step(
                Kind::Segment,
                name,
                Action::Create,
                Op::AddSegment(predicate.clone(), source.map(str::to_string)),
            ),
            Some(_) => step(
                Kind::Segment,
                name,
                Action::Update,
                Op::UpdateSegment(predicate.clone()),
            ),
        };
        if st.action == Action::Update {
            st.changes.push("where".into());
        }
        steps.push(st);
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
            let (action, op) = if options.prune {
                (Action::Remove, Op::RemoveExport)
            } else {
                (Action::NotInFile, Op::None)
            };
            steps.push(step(Kind::Export, &e.name, action, op));
        }
    }

    // Segments the file does not declare: after the exports (pruned ones used them).
    for s in &inst.segments {
        if !file_segments.contains_key(s.name.as_str()) {
            let (action, op) = if options.prune {
                (Action::Remove, Op::RemoveSegment)
            } else {
                (Action::NotInFile, Op::None)
            };
            steps.push(step(Kind::Segment, &s.name, action, op));
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

fn step(kind: Kind, name: &str, action: Action, op: Op) -> Step {
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

fn plan_connection(
    c: &ConnectionSpec,
    inst: &Installation,
    options: Options,
    checks: &Checks<'_>,
    p: &mut Problems<'_>,
) -> Option<Step> {
    let name = c.name.get_ref();
    let span = c.name.span();
    let what = format!("connection \"{name}\"");
    let mut ok = true;
    if let Err(e) = ops::check_name("connection", name) {
        p.op(span, "connection", e);
        return None;
    }
    if let Some(d) = &c.display_name {
        if let Err(e) = ops::check_name("display", d.get_ref()) {
            p.op(d.span(), &what, e);
            ok = false;
        }
    }
    if let Some(u) = &c.export_user {
        if let Err(e) = ops::check_name("export user", u.get_ref()) {
            p.op(u.span(), &what, e);
            ok = false;
        }
    }
    let base_url = match &c.base_url {
        Some(u) => match url::Url::parse(u.get_ref().trim()) {
            Ok(parsed) => Some((parsed.to_string(), u.span())),
            Err(e) => {
                p.at(
                    u.span(),
                    format!("{what}: base_url \"{}\" is not a URL: {e}", u.get_ref()),
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let secret_source = match c.secret_source(p.source) {
        Ok(s) => s,
        Err(problem) => {
            p.list.push(problem);
            return None;
        }
    };
    // Reads and checks the secret, locally; a problem at the source's place otherwise.
    let read_secret = |p: &mut Problems<'_>, (s, sspan): &(SecretSource, Range<usize>)| {
        let secret = match s.read() {
            Ok(v) => v,
            Err(e) => {
                p.at(sspan.clone(), format!("{what}: {e}"));
                return None;
            }
        };
        if let Err(e) = check_credential(&secret, s.kind(), base_url.as_ref().map(|b| b.0.as_str()))
        {
            let at = match (&base_url, e.contains("base URL")) {
                (Some((_, bspan)), true) => bspan.clone(),
                _ => sspan.clone(),
            };
            p.at(at, format!("{what}: {e}"));
            return None;
        }
        Some(secret)
    };

    let Some(current) = inst.connections.iter().find(|x| &x.name == name) else {
        // A new connection: consent, a secret, checked before anything is sent.
        if !c
            .accept_privacy_terms
            .as_ref()
            .is_some_and(|a| *a.get_ref())
        {
            let at = c
                .accept_privacy_terms
                .as_ref()
                .map(|a| a.span())
                .unwrap_or(span.clone());
            p.at(
                at,
                format!(
                    "{what} is new: creating it needs accept_privacy_terms = true, your agreement to this statement: {PRIVACY_STATEMENT}"
                ),
            );
            ok = false;
        }
        let Some(source) = secret_source else {
            p.at(
                span,
                format!(
                    "{what} is new: name where its secret comes from (api_key_env, api_key_file or oauth_token_env)"
                ),
            );
            return None;
        };
        let secret = read_secret(p, &source)?;
        if !ok {
            return None;
        }
        let mut st = step(
            Kind::Connection,
            name,
            Action::Create,
            Op::AddConnection(Box::new(ops::NewConnection {
                name: name.clone(),
                display_name: c.display_name.as_ref().map(|d| d.get_ref().clone()),
                credential: ops::CredentialInput {
                    secret,
                    kind: source.0.kind(),
                },
                base_url: base_url.map(|b| b.0),
                accept_privacy_terms: true,
                share_with_contributors: c.share_with_contributors.unwrap_or(false),
                export_user: c.export_user.as_ref().map(|u| u.get_ref().clone()),
            })),
        );
        st.notes
            .push(format!("secret from {}", source.0.describe()));
        st.blame = Some(source.1);
        return Some(st);
    };

    // An existing connection changes only in what the file says.
    let mut change = ops::ConnectionChange::default();
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    if let Some(d) = &c.display_name {
        if d.get_ref() != &current.display_name {
            change.display_name = Some(d.get_ref().clone());
            changes.push("display_name".to_string());
        }
    }
    if let Some(s) = c.share_with_contributors {
        if s != current.shared_with_contributors {
            change.share_with_contributors = Some(s);
            changes.push("share_with_contributors".to_string());
        }
    }
    if let Some(u) = &c.export_user {
        if Some(u.get_ref()) != current.export_user.as_ref() {
            change.export_user = Some(u.get_ref().clone());
            changes.push("export_user".to_string());
        }
    }
    let base_url_changes = base_url
        .as_ref()
        .is_some_and(|(b, _)| *b != current.base_url);
    let mut blame = None;
    match (&secret_source, options.rotate_secrets) {
        (Some(source), true) => {
            let secret = read_secret(p, source)?;
            let same = (checks.stored_secret)(name)
                .is_some_and(|old| old.expose_secret() == secret.expose_secret())
                && source.0.kind() == current.credential_kind;
            if !same || base_url_changes {
                if base_url_changes {
                    changes.push("base_url".to_string());
                }
                if !same {
                    changes.push("credential".to_string());
                }
                change.base_url = base_url.as_ref().map(|b| b.0.clone());
                change.credential = Some(ops::CredentialInput {
                    secret,
                    kind: source.0.kind(),
                });
                notes.push(format!("secret from {}", source.0.describe()));
                blame = Some(source.1.clone());
            } else {
                notes.push(format!(
                    "secret from {} is the one stored",
                    source.0.describe()
                ));
            }
        }
        (Some(source), false) => {
            notes.push(format!(
                "secret kept: --rotate-secrets replaces it from {}",
                source.0.describe()
            ));
        }
        (None, _) => notes.push("secret kept".into()),
    }
    if base_url_changes && change.credential.is_none() {
        let (b, bspan) = base_url.as_ref().expect("base_url_changes");
        p.at(
            bspan.clone(),
            format!(
                "{what}: base_url {b} differs from the installation's ({}): the API root changes only with a new credential (name its secret source and use --rotate-secrets)",
                current.base_url
            ),
        );
        return None;
    }
    if !ok {
        return None;
    }
    let (action, op) = if changes.is_empty() {
        (Action::Unchanged, Op::None)
    } else {
        (Action::Update, Op::UpdateConnection(Box::new(change)))
    };
    Some(Step {
        kind: Kind::Connection,
        name: name.clone(),
        action,
        changes,
        notes,
        op,
        blame,
    })
}

/// The configuration an `[[export]]` declares, normalised as [`ops::save_export`] stores it.
/// `current` supplies what the file leaves to the installation (`paused`).
fn desired_export(e: &ExportSpec, current: Option<&ExportConfig>) -> ExportConfig {
    let mut fields = Vec::new();
    if let Some(f) = &e.first_name {
        fields.push(FieldMap {
            tag: "FNAME".into(),
            column: f.get_ref().clone(),
        });
    }
    if let Some(l) = &e.last_name {
        fields.push(FieldMap {
            tag: "LNAME".into(),
            column: l.get_ref().clone(),
        });
    }
    for (tag, column) in e.merge.iter().flatten() {
        fields.push(FieldMap {
            tag: tag.trim().to_uppercase(),
            column: column.get_ref().trim().to_string(),
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

fn plan_export(
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

    // The profile source of the export's segments (one for all), and its columns.
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

    // Merge tags.
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

    // Segments.
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
                p.op(t.span(), &what, err);
            }
        }
    }

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
    Some(st)
}

// --- dump ---

/// A TOML basic string: quoted, with `\`, `"` and control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key as TOML allows it bare (`CITY`), else quoted.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

fn status_word(s: NewStatus) -> &'static str {
    match s {
        NewStatus::Subscribed => "subscribed",
        NewStatus::Pending => "pending",
        NewStatus::Transactional => "transactional",
    }
}

fn removal_word(r: RemovalPolicy) -> &'static str {
    match r {
        RemovalPolicy::Untag => "untag",
        RemovalPolicy::Archive => "archive",
        RemovalPolicy::Unsubscribe => "unsubscribe",
    }
}

/// The configuration of an installation as a file `apply` takes, secrets left out. Objects
/// are sorted by name, and merge fields and segments within an export too, so that two dumps
/// of the same configuration are the same bytes and dumps diff well in git.
pub fn render(
    connections: &[ConnectionView],
    segments: &[SegmentRecord],
    exports: &[ExportConfig],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str(
        "# segsync configuration, written by `segsync dump`; apply it with `segsync apply FILE`.\n\
         # Secrets are never written. To create a connection on another installation, uncomment\n\
         # its secret source (an environment variable or a file) and accept_privacy_terms.\n",
    );
    let mut connections: Vec<&ConnectionView> = connections.iter().collect();
    connections.sort_by(|a, b| a.name.cmp(&b.name));
    for c in connections {
        let _ = writeln!(out, "\n[[connection]]");
        let _ = writeln!(out, "name = {}", quote(&c.name));
        let _ = writeln!(out, "display_name = {}", quote(&c.display_name));
        let _ = writeln!(out, "base_url = {}", quote(&c.base_url));
        let _ = writeln!(
            out,
            "share_with_contributors = {}",
            c.shared_with_contributors
        );
        if let Some(u) = &c.export_user {
            let _ = writeln!(out, "export_user = {}", quote(u));
        }
        let source = if c.credential_kind == "oauth" {
            "oauth_token_env"
        } else {
            "api_key_env"
        };
        let _ = writeln!(
            out,
            "# {:<29} # the secret stays in the installation",
            format!("{source} = \"...\"")
        );
        let _ = writeln!(
            out,
            "# {:<29} # agreed by {} at {}",
            "accept_privacy_terms = true",
            c.consent_by.replace('\n', " "),
            c.consent_at.replace('\n', " ")
        );
    }
    let mut segments: Vec<&SegmentRecord> = segments.iter().collect();
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    for s in segments {
        let _ = writeln!(out, "\n[[segment]]");
        let _ = writeln!(out, "name = {}", quote(&s.name));
        let _ = writeln!(out, "where = {}", quote(&s.predicate));
        if let Some(src) = &s.source {
            let _ = writeln!(out, "source = {}", quote(src));
        }
    }
    let mut exports: Vec<&ExportConfig> = exports.iter().collect();
    exports.sort_by(|a, b| a.name.cmp(&b.name));
    for e in exports {
        let input = ExportInput::from_config(e);
        let _ = writeln!(out, "\n[[export]]");
        let _ = writeln!(out, "name = {}", quote(&e.name));
        let _ = writeln!(out, "connection = {}", quote(&e.connection));
        let _ = writeln!(out, "audience = {}", quote(&e.audience_id));
        let _ = writeln!(out, "email_field = {}", quote(&e.email_field));
        if let Some(f) = &input.first_name {
            let _ = writeln!(out, "first_name = {}", quote(f));
        }
        if let Some(l) = &input.last_name {
            let _ = writeln!(out, "last_name = {}", quote(l));
        }
        let mut merge = input.merge.clone();
        merge.sort_by(|a, b| a.tag.cmp(&b.tag));
        if !merge.is_empty() {
            let pairs: Vec<String> = merge
                .iter()
                .map(|m| format!("{} = {}", key(&m.tag), quote(&m.column)))
                .collect();
            let _ = writeln!(out, "merge = {{ {} }}", pairs.join(", "));
        }
        let mut segs = input.segments.clone();
        segs.sort_by(|a, b| a.segment.cmp(&b.segment));
        let seg = |s: &ops::SegmentChoice| match &s.tag {
            Some(t) => format!("{{ segment = {}, tag = {} }}", quote(&s.segment), quote(t)),
            None => format!("{{ segment = {} }}", quote(&s.segment)),
        };
        if segs.len() == 1 {
            let _ = writeln!(out, "segments = [{}]", seg(&segs[0]));
        } else {
            let _ = writeln!(out, "segments = [");
            for s in &segs {
                let _ = writeln!(out, "  {},", seg(s));
            }
            let _ = writeln!(out, "]");
        }
        let _ = writeln!(
            out,
            "status_if_new = {}",
            quote(status_word(e.status_if_new))
        );
        let _ = writeln!(out, "removal = {}", quote(removal_word(e.removal)));
        let _ = writeln!(out, "create_merge_fields = {}", e.create_merge_fields);
        if let Some(u) = &e.updated_at_field {
            let _ = writeln!(out, "updated_at_field = {}", quote(u));
        }
        if e.max_profiles != DEFAULT_MAX_PROFILES {
            let _ = writeln!(out, "max_profiles = {}", e.max_profiles);
        }
        let schedule = match &e.schedule {
            Schedule::Manual => quote("manual"),
            Schedule::AfterRefresh => quote("after_refresh"),
            Schedule::Cron { cron, timezone } => format!(
                "{{ cron = {}, timezone = {} }}",
                quote(cron),
                quote(timezone)
            ),
        };
        let _ = writeln!(out, "schedule = {schedule}");
        if e.paused {
            let _ = writeln!(out, "paused = true");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::new("segsync.toml", "/nonexistent", text)
    }

    fn no_checks() -> (
        Box<PredicateCheck<'static>>,
        impl Fn(&str) -> Option<SecretString>,
    ) {
        (Box::new(|_: &str, _: Option<&str>| Ok(())), |_: &str| None)
    }

    fn plan_of(text: &str, inst: &Installation, options: Options) -> Result<Plan, Vec<Problem>> {
        let file = parse(src(text)).map_err(|e| e.to_vec())?;
        let (pred, secret) = no_checks();
        plan(
            &file,
            inst,
            options,
            &Checks {
                predicate: &pred,
                stored_secret: &secret,
            },
        )
    }

    fn messages(r: Result<Plan, Vec<Problem>>) -> Vec<String> {
        match r {
            Ok(_) => panic!("the file should be refused"),
            Err(ps) => ps.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn installation() -> Installation {
        Installation {
            connections: vec![ConnectionView {
                name: "mailchimp".into(),
                display_name: "Mailchimp (marketing)".into(),
                base_url: "https://us6.api.mailchimp.com/3.0".into(),
                credential_kind: "api_key".into(),
                consent_by: "ana".into(),
                consent_at: "2026-11-22T10:00:00Z".into(),
                shared_with_contributors: true,
                export_user: Some("ana".into()),
                created_at: "2026-11-22T10:00:00Z".into(),
            }],
            segments: vec![
                SegmentRecord {
                    name: "romania".into(),
                    predicate: "country = 'RO'".into(),
                    source: None,
                    created_at: "x".into(),
                },
                SegmentRecord {
                    name: "high-value".into(),
                    predicate: "lifetime_value > 500 AND note <> \"a\\b\"".into(),
                    source: None,
                    created_at: "x".into(),
                },
            ],
            exports: vec![ExportConfig {
                name: "newsletter".into(),
                connection: "mailchimp".into(),
                audience_id: "a1b2c3d4e5".into(),
                email_field: "email".into(),
                fields: vec![
                    FieldMap {
                        tag: "FNAME".into(),
                        column: "first_name".into(),
                    },
                    FieldMap {
                        tag: "LTV".into(),
                        column: "lifetime_value".into(),
                    },
                    FieldMap {
                        tag: "CITY".into(),
                        column: "city".into(),
                    },
                ],
                segments: vec![
                    SegmentTag {
                        segment: "romania".into(),
                        tag: "romania".into(),
                    },
                    SegmentTag {
                        segment: "high-value".into(),
                        tag: "High value".into(),
                    },
                ],
                status_if_new: NewStatus::Pending,
                removal: RemovalPolicy::Archive,
                max_profiles: 5000,
                create_merge_fields: true,
                updated_at_field: Some("updated_at".into()),
                schedule: Schedule::Cron {
                    cron: "0 6 * * *".into(),
                    timezone: "Europe/Bucharest".into(),
                },
                paused: true,
            }],
            columns: [
                "customer_id",
                "email",
                "first_name",
                "last_name",
                "city",
                "lifetime_value",
                "updated_at",
                "country",
                "note",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            source_columns: BTreeMap::new(),
        }
    }

    #[test]
    fn a_dump_parses_back_and_plans_nothing() {
        let inst = installation();
        let text = render(&inst.connections, &inst.segments, &inst.exports);
        let plan = plan_of(&text, &inst, Options::default()).unwrap_or_else(|e| {
            panic!("{text}\n{e:?}");
        });
        assert!(!plan.changes_anything(), "{text}");
        assert_eq!(plan.count(Action::Unchanged), 4, "{text}");
        // Sorted by name, whatever the installation's order.
        let hv = text.find("name = \"high-value\"").unwrap();
        let ro = text.find("name = \"romania\"").unwrap();
        assert!(hv < ro, "{text}");
        assert!(
            text.contains("merge = { CITY = \"city\", LTV = \"lifetime_value\" }"),
            "{text}"
        );
        assert!(text.contains("paused = true"), "{text}");
        assert!(text.contains("max_profiles = 5000"), "{text}");
        assert!(text.contains("# api_key_env = \"...\""), "{text}");
        // The same configuration in another order renders the same bytes.
        let mut shuffled = inst.clone();
        shuffled.segments.reverse();
        shuffled.exports[0].fields.reverse();
        assert_eq!(
            render(&shuffled.connections, &shuffled.segments, &shuffled.exports),
            text
        );
    }

    #[test]
    fn errors_say_file_line_and_column() {
        let text = "[[segment]]\nname = \"a\"\nwher = \"x > 1\"\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("segsync.toml:3:1: segment \"a\": unknown field `wher`"),
            "{m:?}"
        );

        // Every object is read: two mistakes in two objects are both reported.
        let text = "[[segment]]\nname = \"a\"\nwhere = 1\n\n[[connection]]\nname = \"c\"\napi_key = \"x\"\n[nope]\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].starts_with("segsync.toml:3:9: segment \"a\": invalid type"),
            "{m:?}"
        );
        assert!(
            m[1].starts_with("segsync.toml:7:1: connection \"c\": unknown field `api_key`"),
            "{m:?}"
        );
        assert!(
            m[2].starts_with("segsync.toml:8:2: unknown key `nope`"),
            "{m:?}"
        );

        // Syntax.
        let m = messages(plan_of(
            "[[segment]\nname = 1",
            &Installation::default(),
            Options::default(),
        ));
        assert!(m[0].starts_with("segsync.toml:1:"), "{m:?}");

        // A single table where an array of tables belongs.
        let m = messages(plan_of(
            "[segment]\nname = \"a\"\nwhere = \"1\"\n",
            &Installation::default(),
            Options::default(),
        ));
        assert!(m[0].contains("write [[segment]]"), "{m:?}");
    }

    #[test]
    fn columns_count_characters() {
        let s = src("# Ștefan\nmerge = 1\n");
        assert_eq!(s.line_col(0), (1, 1));
        // "Ș" is two bytes: the "t" of "Ștefan" is byte 4, the 4th character.
        assert_eq!(s.line_col(4), (1, 4));
        assert_eq!(s.line_col(5), (1, 5));
        let off = "# Ștefan\n".len();
        assert_eq!(s.line_col(off + 8), (2, 9));
    }

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
    fn a_changed_export_names_the_keys_that_change() {
        let inst = installation();
        let mut text = render(&inst.connections, &inst.segments, &inst.exports);
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

    #[test]
    fn existing_connections_change_only_in_what_the_file_says() {
        let inst = installation();
        let text = "[[connection]]\nname = \"mailchimp\"\napi_key_env = \"SEGSYNC_TEST_NEVER_SET_1\"\n[[segment]]\nname = \"romania\"\nwhere = \"country = 'RO'\"\n";
        let plan = plan_of(text, &inst, Options::default()).unwrap();
        let c = &plan.steps[0];
        assert_eq!((c.kind, c.action), (Kind::Connection, Action::Unchanged));
        assert_eq!(
            c.notes,
            ["secret kept: --rotate-secrets replaces it from api_key_env SEGSYNC_TEST_NEVER_SET_1"]
        );
        // Rotating needs the secret: the variable is not set.
        let m = messages(plan_of(
            text,
            &inst,
            Options {
                rotate_secrets: true,
                prune: false,
            },
        ));
        assert_eq!(
            m,
            ["segsync.toml:3:15: connection \"mailchimp\": api_key_env SEGSYNC_TEST_NEVER_SET_1: the variable is not set"]
        );
        // A new API root needs a new credential.
        let text = "[[connection]]\nname = \"mailchimp\"\nbase_url = \"https://us7.api.mailchimp.com/3.0\"\n";
        let m = messages(plan_of(text, &inst, Options::default()));
        assert!(
            m[0].contains("the API root changes only with a new credential"),
            "{m:?}"
        );
        // Prune never removes connections; it needs a file that declares something.
        let text = "[[connection]]\nname = \"mailchimp\"\n";
        let m = messages(plan_of(
            text,
            &inst,
            Options {
                prune: true,
                rotate_secrets: false,
            },
        ));
        assert!(
            m[0].contains("would remove every export and segment"),
            "{m:?}"
        );
    }

    #[test]
    fn a_new_connection_needs_consent_and_a_readable_well_formed_secret() {
        let text = "[[connection]]\nname = \"new\"\napi_key_file = \"missing-key\"\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("segsync.toml:2:8: connection \"new\" is new: creating it needs accept_privacy_terms = true"), "{m:?}");
        assert!(m[1].starts_with("segsync.toml:3:16: connection \"new\": api_key_file missing-key (/nonexistent/missing-key): cannot read it"), "{m:?}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "not-a-key\n").unwrap();
        let text =
            "[[connection]]\nname = \"new\"\napi_key_file = \"key\"\naccept_privacy_terms = true\n";
        let file = parse(Source::new("f.toml", dir.path(), text)).unwrap();
        let (pred, secret) = no_checks();
        let m = plan(
            &file,
            &Installation::default(),
            Options::default(),
            &Checks {
                predicate: &pred,
                stored_secret: &secret,
            },
        )
        .err()
        .unwrap();
        assert!(
            m[0].to_string().contains("invalid Mailchimp credential"),
            "{m:?}"
        );
        assert!(
            !m[0].to_string().contains("not-a-key"),
            "the secret is never echoed: {m:?}"
        );

        let text = "[[connection]]\nname = \"new\"\napi_key_env = \"A\"\noauth_token_env = \"B\"\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert!(
            m[0].starts_with("segsync.toml:4:19:") && m[0].contains("give one secret source"),
            "{m:?}"
        );
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

    #[test]
    fn schedules_take_three_forms() {
        let parse_one = |s: &str| -> Result<Schedule, String> {
            #[derive(Deserialize)]
            struct T {
                schedule: ScheduleSpec,
            }
            toml::from_str::<T>(&format!("schedule = {s}"))
                .map(|t| t.schedule.0)
                .map_err(|e| e.message().to_string())
        };
        assert_eq!(parse_one("\"manual\""), Ok(Schedule::Manual));
        assert_eq!(parse_one("\"after_refresh\""), Ok(Schedule::AfterRefresh));
        assert_eq!(
            parse_one("{ cron = \"0 6 * * *\" }"),
            Ok(Schedule::Cron {
                cron: "0 6 * * *".into(),
                timezone: "UTC".into()
            })
        );
        assert!(parse_one("\"daily\"")
            .unwrap_err()
            .contains("unknown schedule \"daily\""));
        assert!(parse_one("{ cron = \"x\", tz = \"UTC\" }")
            .unwrap_err()
            .contains("unknown field `tz`"));
        assert!(parse_one("{ timezone = \"UTC\" }")
            .unwrap_err()
            .contains("missing field `cron`"));
    }

    #[test]
    fn quoting_round_trips() {
        for s in [
            "plain",
            "a \"b\" \\ c",
            "line\nbreak\ttab",
            "\u{1b}[31m",
            "Ștefan’s",
        ] {
            let text = format!("v = {}", quote(s));
            let t: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(t["v"].as_str(), Some(s), "{text}");
        }
    }
}
