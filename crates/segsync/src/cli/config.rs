//! `segsync apply FILE.toml` and `segsync dump`: configuration as code (the format, the
//! validation and the plan are in [`crate::config_file`]).
//!
//! `apply` runs in four phases, and changes nothing before the last:
//!
//! 1. parse the file (every syntax and shape error, located as `FILE:LINE:COLUMN`);
//! 2. validate it against the installation and plan the changes (names, references, profile
//!    columns, predicates, cron schedules, secret sources, credentials' form);
//! 3. check with Mailchimp, reading only: new or rotated credentials are pinged, the audience
//!    of every export to create or update is looked up and its merge fields checked;
//! 4. apply, through [`crate::ops`], connections, then segments, then exports, printing one
//!    line per object as it is done. A failure here (Mailchimp changed its mind between 3
//!    and 4, the network went away) stops the apply; the output says what was applied before.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use secrecy::SecretString;
use serde::Serialize;

use super::{usage, Failure, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::app::App;
use crate::config_file::{self, Action, ConfigFile, Installation, Op, Plan, Problem, Step};
use crate::engine::{self, RunSettings};
use crate::mailchimp::{self, Client, ClientConfig};
use crate::ops::{self, Actor};
use crate::state::StateStore;

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The TOML file: [[connection]], [[segment]] and [[export]] tables (the format of
    /// `segsync dump`; an example is examples/segsync.toml).
    pub file: PathBuf,
    /// Check the file and print what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove the exports and segments the file does not declare (never connections).
    #[arg(long)]
    pub prune: bool,
    /// Replace the credentials of existing connections from the secret sources the file
    /// names (otherwise existing secrets are kept).
    #[arg(long)]
    pub rotate_secrets: bool,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// One object in the JSON outcome.
#[derive(Serialize)]
struct StepReport {
    kind: config_file::Kind,
    name: String,
    action: Action,
    changes: Vec<String>,
    notes: Vec<String>,
    /// Whether the change was made (false for a dry run, an unchanged object, a refusal, or
    /// an object after a failure).
    applied: bool,
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct Summary {
    create: usize,
    update: usize,
    unchanged: usize,
    remove: usize,
    not_in_file: usize,
}

/// The JSON outcome of `apply --json`.
#[derive(Serialize)]
struct Report {
    file: String,
    dry_run: bool,
    /// `applied`, `unchanged` (nothing to do), `planned` (dry run), `refused` (nothing
    /// changed) or `failed` (stopped midway: see `applied` of each step).
    outcome: &'static str,
    steps: Vec<StepReport>,
    problems: Vec<Problem>,
    summary: Summary,
    error: Option<String>,
}

fn summary(plan: &Plan) -> Summary {
    Summary {
        create: plan.count(Action::Create),
        update: plan.count(Action::Update),
        unchanged: plan.count(Action::Unchanged),
        remove: plan.count(Action::Remove),
        not_in_file: plan.count(Action::NotInFile),
    }
}

/// One line of output: `+ connection mailchimp (created; secret from api_key_env X)`.
fn line(step: &Step, done: bool, extra: Option<&str>) -> String {
    let what = match (step.action, done) {
        (Action::Create, false) => "create".to_string(),
        (Action::Create, true) => "created".to_string(),
        (Action::Update, false) => format!("update: {}", step.changes.join(", ")),
        (Action::Update, true) => format!("updated: {}", step.changes.join(", ")),
        (Action::Unchanged, _) => "unchanged".to_string(),
        (Action::Remove, false) => "remove".to_string(),
        (Action::Remove, true) => "removed".to_string(),
        (Action::NotInFile, _) if step.kind == config_file::Kind::Connection => {
            "not in the file: left alone".to_string()
        }
        (Action::NotInFile, _) => "not in the file: left alone; --prune removes it".to_string(),
    };
    let mut parts = vec![what];
    parts.extend(extra.map(str::to_string));
    parts.extend(step.notes.iter().cloned());
    format!(
        "{} {} {} ({})",
        step.action.symbol(),
        step.kind.as_str(),
        super::printable(&step.name),
        parts.join("; ")
    )
}

fn refused(
    args: &ApplyArgs,
    label: &str,
    problems: Vec<Problem>,
    code: i32,
) -> Result<i32, Failure> {
    if args.json {
        let report = Report {
            file: label.to_string(),
            dry_run: args.dry_run,
            outcome: "refused",
            steps: vec![],
            problems: problems.clone(),
            summary: Summary::default(),
            error: None,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
        for p in &problems {
            eprintln!("{p}");
        }
        return Ok(code);
    }
    let n = problems.len();
    let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    Err(Failure {
        code,
        error: anyhow!(
            "{label} refused ({n} problem{}); nothing was changed:\n{}",
            if n == 1 { "" } else { "s" },
            list.join("\n")
        ),
    })
}

/// The sources the file declares that the installation does not have yet, opened from the
/// URL their variable holds, so that the segments on them can be checked before anything is
/// created (a source that cannot be opened is left out: its step says why when applied).
fn declared_sources(
    file: &config_file::ConfigFile,
    inst: &Installation,
) -> std::collections::HashMap<String, crate::sources::Profiles> {
    use secrecy::ExposeSecret;
    let mut out = std::collections::HashMap::new();
    for s in &file.sources {
        let name = s.name.get_ref();
        if inst.sources.iter().any(|x| &x.name == name) {
            continue;
        }
        let Ok(url) = s.read_url() else { continue };
        let relation = match (&s.table, &s.query) {
            (Some(t), None) => crate::profiles::PgRelation::Table(t.get_ref().clone()),
            (None, Some(q)) => crate::profiles::PgRelation::Query(q.get_ref().clone()),
            _ => continue,
        };
        let key = s.key.get_ref();
        let opened = match s.kind.get_ref().as_str() {
            "mysql" => crate::profiles::MySqlSource::connect(url.expose_secret(), relation, key)
                .map(crate::sources::Profiles::MySql)
                .ok(),
            "postgres" => crate::profiles::PgSource::connect(url.expose_secret(), relation, key)
                .map(crate::sources::Profiles::Postgres)
                .ok(),
            _ => continue,
        };
        if let Some(p) = opened {
            out.insert(name.clone(), p);
        }
    }
    out
}

/// The installation as the plan sees it.
fn installation(app: &App, state: &StateStore, actor: &Actor) -> Result<Installation, Failure> {
    Ok(Installation {
        connections: ops::connections(state, actor).map_err(super::op_failure)?,
        sources: ops::list_sources(app, actor).map_err(super::op_failure)?,
        segments: state.segments()?,
        exports: state.exports()?,
        columns: app
            .profiles()?
            .columns()
            .map_err(anyhow::Error::from)?
            .into_iter()
            .map(|c| c.name)
            .collect(),
        source_columns: state
            .profile_sources()?
            .into_iter()
            .map(|r| {
                let columns = app
                    .profiles_of(Some(&r.name))
                    .and_then(|p| p.columns())
                    .map(|c| c.into_iter().map(|c| c.name).collect())
                    .unwrap_or_default();
                (r.name, columns)
            })
            .collect(),
        rule_columns: rule_columns(app, state)?,
    })
}

/// The typed columns and dialect of the imported profiles and of each profile source, for
/// the rules of the file's segments (a source that cannot be read is left out: its rules
/// are refused, saying so).
fn rule_columns(app: &App, state: &StateStore) -> Result<config_file::RuleColumns, Failure> {
    let mut out = BTreeMap::new();
    let mut names = vec![None];
    names.extend(state.profile_sources()?.into_iter().map(|r| Some(r.name)));
    for name in names {
        if let Ok(p) = app.profiles_of(name.as_deref()) {
            if let Ok(columns) = p.columns() {
                out.insert(name, (columns, p.dialect()));
            }
        }
    }
    Ok(out)
}

pub async fn apply(app: &App, args: ApplyArgs) -> Result<i32, Failure> {
    let label = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| usage(anyhow!("{label}: cannot read it: {e}")))?;
    let dir = args
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let file = match config_file::parse(config_file::Source::new(&label, dir, text)) {
        Ok(f) => f,
        Err(problems) => return refused(&args, &label, problems, EXIT_USAGE),
    };

    let actor = Actor::cli();
    let state = app.state()?;
    let mut inst = installation(app, &state, &actor)?;
    let declared = declared_sources(&file, &inst);
    for (name, p) in &declared {
        if let Ok(columns) = p.columns() {
            inst.source_columns
                .insert(name.clone(), columns.into_iter().map(|c| c.name).collect());
        }
    }
    let predicate = |p: &str, source: Option<&str>| {
        let declared = source.and_then(|s| declared.get(s));
        let opened;
        let profiles = match declared {
            Some(d) => d,
            None => {
                opened = app.profiles_of(source).map_err(|e| format!("{e:#}"))?;
                &opened
            }
        };
        profiles.check_predicate(p).map_err(|e| e.to_string())
    };
    let master_key = if args.rotate_secrets {
        Some(app.master_key()?)
    } else {
        None
    };
    let stored_secret = |name: &str| -> Option<SecretString> {
        let key = master_key.as_ref()?;
        let c = state.connection(name).ok()?;
        key.open(&c.name, &c.sealed_secret).ok()
    };
    let options = config_file::Options {
        prune: args.prune,
        rotate_secrets: args.rotate_secrets,
    };
    let checks = config_file::Checks {
        predicate: &predicate,
        stored_secret: &stored_secret,
    };
    let plan = match config_file::plan(&file, &inst, options, &checks) {
        Ok(p) => p,
        Err(problems) => return refused(&args, &label, problems, EXIT_USAGE),
    };

    let (problems, mailchimp_failed) = preflight(app, &state, &file, &plan).await;
    drop(state);
    if !problems.is_empty() {
        let code = if mailchimp_failed {
            EXIT_FAILED
        } else {
            EXIT_USAGE
        };
        return refused(&args, &label, problems, code);
    }

    if args.dry_run {
        return print_dry_run(&args, &label, &plan);
    }
    execute(app, &actor, &args, &label, plan).await
}

fn print_dry_run(args: &ApplyArgs, label: &str, plan: &Plan) -> Result<i32, Failure> {
    let s = summary(plan);
    if args.json {
        let report = Report {
            file: label.to_string(),
            dry_run: true,
            outcome: "planned",
            steps: plan
                .steps
                .iter()
                .map(|st| StepReport {
                    kind: st.kind,
                    name: st.name.clone(),
                    action: st.action,
                    changes: st.changes.clone(),
                    notes: st.notes.clone(),
                    applied: false,
                    error: None,
                })
                .collect(),
            problems: vec![],
            summary: s,
            error: None,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
        return Ok(EXIT_OK);
    }
    println!("dry run of {label}: nothing is changed");
    for st in &plan.steps {
        println!("{}", line(st, false, None));
    }
    println!(
        "dry run: {} to create, {} to update, {} unchanged, {} to remove, {} not in the file",
        s.create, s.update, s.unchanged, s.remove, s.not_in_file
    );
    Ok(EXIT_OK)
}

/// Phase 4: the changes, in order, through ops; stops at the first failure.
async fn execute(
    app: &App,
    actor: &Actor,
    args: &ApplyArgs,
    label: &str,
    plan: Plan,
) -> Result<i32, Failure> {
    let s = summary(&plan);
    let anything = plan.changes_anything();
    let (reports, failure) = apply_steps(app, actor, args, plan.steps).await;
    report_outcome(args, label, s, anything, reports, failure)
}

/// Makes each step's change, printing a line per step as it is done, until one fails; the
/// steps after it are reported as not applied. Returns the report of every step and the
/// failure (the step, the message), if any.
async fn apply_steps(
    app: &App,
    actor: &Actor,
    args: &ApplyArgs,
    steps: Vec<Step>,
) -> (Vec<StepReport>, Option<(String, String)>) {
    let mut reports: Vec<StepReport> = Vec::new();
    let mut failure: Option<(String, String)> = None;
    let mut stdout = std::io::stdout();
    for st in steps {
        let Step {
            kind,
            name,
            action,
            changes,
            notes,
            op,
            blame: _,
        } = st;
        let shown = Step {
            kind,
            name: name.clone(),
            action,
            changes: changes.clone(),
            notes: notes.clone(),
            op: Op::None,
            blame: None,
        };
        if failure.is_some() {
            reports.push(StepReport {
                kind,
                name,
                action,
                changes,
                notes,
                applied: false,
                error: None,
            });
            continue;
        }
        let result = perform(app, actor, &name, op).await;
        let changed = matches!(action, Action::Create | Action::Update | Action::Remove);
        match result {
            Ok(extra) => {
                if !args.json {
                    let _ = writeln!(stdout, "{}", line(&shown, true, extra.as_deref()));
                    let _ = stdout.flush();
                }
                let mut notes = notes;
                notes.extend(extra);
                reports.push(StepReport {
                    kind,
                    name,
                    action,
                    changes,
                    notes,
                    applied: changed,
                    error: None,
                });
            }
            Err(e) => {
                let message = e.to_string();
                if !args.json {
                    let _ = writeln!(
                        stdout,
                        "! {} {} (failed: {})",
                        kind.as_str(),
                        super::printable(&name),
                        message.replace('\n', " ")
                    );
                }
                failure = Some((format!("{} {}", kind.as_str(), name), message.clone()));
                reports.push(StepReport {
                    kind,
                    name,
                    action,
                    changes,
                    notes,
                    applied: false,
                    error: Some(message),
                });
            }
        }
    }
    (reports, failure)
}

/// A planned segment's definition: its rule when it has one (compiled again, to the same
/// SQL), else its SQL.
fn definition(predicate: String, rule: Option<String>) -> Result<ops::Definition, ops::OpError> {
    match rule {
        Some(r) => crate::rules::parse(&r)
            .map(ops::Definition::Rule)
            .map_err(ops::OpError::Invalid),
        None => Ok(ops::Definition::Sql(predicate)),
    }
}

/// One step's change through ops; for a segment, how many profiles it matches.
async fn perform(
    app: &App,
    actor: &Actor,
    name: &str,
    op: Op,
) -> Result<Option<String>, ops::OpError> {
    match op {
        Op::None => Ok(None),
        Op::AddConnection(c) => ops::add_connection(app, actor, *c).await.map(|_| None),
        Op::UpdateConnection(c) => ops::update_connection(app, actor, name, *c)
            .await
            .map(|_| None),
        Op::AddSource(input) => ops::add_source(app, actor, *input)
            .map(|a| Some(format!("{} columns", a.columns.len()))),
        Op::RemoveSource => ops::remove_source(app, actor, name).map(|_| None),
        Op::AddSegment(p, source, rule) => {
            ops::add_segment_defined(app, actor, name, &definition(p, rule)?, source.as_deref())
                .map(|c| Some(c.to_string()))
        }
        Op::UpdateSegment(p, rule) => {
            ops::update_segment_defined(app, actor, name, &definition(p, rule)?)
                .map(|c| Some(c.to_string()))
        }
        Op::SaveExport(input, mode) => ops::save_export(app, actor, *input, mode)
            .await
            .map(|_| None),
        Op::RemoveExport => ops::remove_export(app, actor, name).map(|_| None),
        Op::RemoveSegment => ops::remove_segment(app, actor, name).map(|_| None),
    }
}

/// Says how the apply went: the JSON report, or a line for a person; a failure midway
/// names what was applied before it and what was not.
fn report_outcome(
    args: &ApplyArgs,
    label: &str,
    s: Summary,
    anything: bool,
    reports: Vec<StepReport>,
    failure: Option<(String, String)>,
) -> Result<i32, Failure> {
    let applied: Vec<String> = reports
        .iter()
        .filter(|r| r.applied)
        .map(|r| format!("{} {}", r.kind.as_str(), r.name))
        .collect();
    if args.json {
        let report = Report {
            file: label.to_string(),
            dry_run: false,
            outcome: match (&failure, anything) {
                (Some(_), _) => "failed",
                (None, true) => "applied",
                (None, false) => "unchanged",
            },
            error: failure.as_ref().map(|(_, m)| m.clone()),
            steps: reports,
            problems: vec![],
            summary: s,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
        if let Some((at, message)) = &failure {
            eprintln!("segsync: applying {label} stopped at {at}: {message}");
        }
        return Ok(if failure.is_some() {
            EXIT_FAILED
        } else {
            EXIT_OK
        });
    }
    if let Some((at, message)) = failure {
        let not_applied: Vec<String> = reports
            .iter()
            .skip_while(|r| format!("{} {}", r.kind.as_str(), r.name) != at)
            .filter(|r| matches!(r.action, Action::Create | Action::Update | Action::Remove))
            .map(|r| format!("{} {}", r.kind.as_str(), r.name))
            .collect();
        return Err(Failure {
            code: EXIT_FAILED,
            error: anyhow!(
                "applying {label} stopped at {at}: {message}\n  applied before it: {}\n  not applied: {}",
                if applied.is_empty() {
                    "nothing".to_string()
                } else {
                    applied.join(", ")
                },
                not_applied.join(", ")
            ),
        });
    }
    if anything {
        println!(
            "applied {label}: {} created, {} updated, {} unchanged, {} removed, {} not in the file",
            s.create, s.update, s.unchanged, s.remove, s.not_in_file
        );
    } else {
        println!(
            "{label}: nothing to change ({} unchanged, {} not in the file)",
            s.unchanged, s.not_in_file
        );
    }
    Ok(EXIT_OK)
}

/// A client for a credential the file supplies, as `ops` builds one to check it.
fn client_for_secret(
    app: &App,
    secret: &SecretString,
    kind: mailchimp::CredentialKind,
    base_url: Option<&str>,
) -> Result<Client, Box<mailchimp::Error>> {
    let mut config = ClientConfig::for_credential(kind, secret.clone(), base_url)?;
    config.timeout = Duration::from_secs(30);
    config.allow_private_targets = app.private_targets();
    Ok(Client::new(config)?)
}

/// Whether a Mailchimp error is the file's to fix (an audience id, a key of the wrong
/// account), rather than Mailchimp's or the network's.
fn file_problem(e: &mailchimp::Error) -> bool {
    matches!(
        e,
        mailchimp::Error::AudienceNotFound { .. }
            | mailchimp::Error::InvalidCredential(_)
            | mailchimp::Error::InvalidConfig(_)
            | mailchimp::Error::NotFound { .. }
            | mailchimp::Error::Rejected { .. }
    )
}

/// Phase 3: what only Mailchimp can tell, asked before anything changes (reads only). Returns
/// the problems, and whether one of them is Mailchimp failing rather than the file.
async fn preflight(
    app: &App,
    state: &StateStore,
    file: &ConfigFile,
    plan: &Plan,
) -> (Vec<Problem>, bool) {
    let source = &file.source;
    let mut problems = Vec::new();
    let mut mailchimp_failed = false;
    // Connections to create or whose credential is replaced: the new credential's client.
    let mut clients: HashMap<&str, Option<Client>> = HashMap::new();
    for st in &plan.steps {
        let (secret, kind, base_url) = match &st.op {
            Op::AddConnection(c) => (&c.credential.secret, c.credential.kind, c.base_url.clone()),
            Op::UpdateConnection(c) => match &c.credential {
                Some(cred) => (
                    &cred.secret,
                    cred.kind,
                    c.base_url
                        .clone()
                        .or_else(|| state.connection(&st.name).ok().map(|c| c.base_url)),
                ),
                None => continue,
            },
            _ => continue,
        };
        let checked = match client_for_secret(app, secret, kind, base_url.as_deref()) {
            Ok(client) => match client.ping().await {
                Ok(()) => Ok(client),
                Err(e) => Err(Box::new(e)),
            },
            Err(e) => Err(e),
        };
        match checked {
            Ok(client) => {
                clients.insert(&st.name, Some(client));
            }
            Err(e) => {
                mailchimp_failed |= !file_problem(&e);
                problems.push(source.problem(
                    st.blame.clone(),
                    format!(
                        "connection \"{}\": checking the credential with Mailchimp: {e}",
                        st.name
                    ),
                ));
                clients.insert(&st.name, None);
            }
        }
    }
    for st in &plan.steps {
        let Op::SaveExport(input, _) = &st.op else {
            continue;
        };
        let what = format!("export \"{}\"", st.name);
        let stored;
        let client = match clients.get(input.connection.as_str()) {
            Some(Some(c)) => c,
            // Its connection's credential failed: reported above.
            Some(None) => continue,
            None => {
                match engine::client_for(state, app, &input.connection, &RunSettings::default()) {
                    Ok(c) => {
                        stored = c;
                        &stored
                    }
                    Err(e) => {
                        mailchimp_failed = true;
                        problems.push(source.problem(
                            st.blame.clone(),
                            format!("{what}: connection \"{}\": {e}", input.connection),
                        ));
                        continue;
                    }
                }
            }
        };
        let list = match client.list(&input.audience).await {
            Ok(l) => l,
            Err(e) => {
                mailchimp_failed |= !file_problem(&e);
                problems.push(source.problem(st.blame.clone(), format!("{what}: {e}")));
                continue;
            }
        };
        let merge_fields = match client.merge_fields(&input.audience).await {
            Ok(m) => m,
            Err(e) => {
                mailchimp_failed |= !file_problem(&e);
                problems.push(source.problem(st.blame.clone(), format!("{what}: {e}")));
                continue;
            }
        };
        // The mapping must fit the audience, as `ops::save_export` will check again.
        let mut tags: Vec<String> = Vec::new();
        tags.extend(input.first_name.iter().map(|_| "FNAME".to_string()));
        tags.extend(input.last_name.iter().map(|_| "LNAME".to_string()));
        tags.extend(input.merge.iter().map(|m| m.tag.trim().to_uppercase()));
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        for p in
            engine::mapping_problems(&list.name, &tags, input.create_merge_fields, &merge_fields)
        {
            problems.push(source.problem(st.blame.clone(), format!("{what}: {p}")));
        }
    }
    (problems, mailchimp_failed)
}

pub fn dump(app: &App, args: DumpArgs) -> Result<i32, Failure> {
    let actor = Actor::cli();
    let state = app.state()?;
    let connections = ops::connections(&state, &actor).map_err(super::op_failure)?;
    let sources = ops::list_sources(app, &actor).map_err(super::op_failure)?;
    let segments = state.segments()?;
    let exports = state.exports()?;
    let text = config_file::render(&connections, &sources, &segments, &exports);
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("writing the dump")?;
            out.flush().context("writing the dump")?;
        }
        Some(path) => {
            // Written beside, then renamed: a reader never sees half a file.
            let tmp = path.with_extension("toml.tmp");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} connection(s), {}{} segment(s), {} export(s) to {}",
                connections.len(),
                if sources.is_empty() {
                    String::new()
                } else {
                    format!("{} source(s), ", sources.len())
                },
                segments.len(),
                exports.len(),
                path.display()
            );
        }
    }
    Ok(EXIT_OK)
}
