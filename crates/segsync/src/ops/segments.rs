//! Segments: a named predicate over the imported profiles or a PostgreSQL profile source,
//! checked and counted where the profiles are before anything is saved.

use super::{audit, check_export_access, check_name, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::rules::Rule;
use crate::sources::Profiles;
use crate::state::{Role, StateStore};

/// What a segment is defined by: a predicate written as SQL, or a rule compiled to one.
#[derive(Clone, Debug, PartialEq)]
pub enum Definition {
    Sql(String),
    Rule(Rule),
}

/// A definition made ready to save: the SQL predicate, and the rule's JSON if it has one.
struct Compiled {
    predicate: String,
    rule: Option<String>,
}

/// The SQL of `def` over `profiles` (a rule compiled for their columns and dialect).
fn compile_for(profiles: &Profiles, name: &str, def: &Definition) -> OpResult<Compiled> {
    match def {
        Definition::Sql(sql) => Ok(Compiled {
            predicate: sql.clone(),
            rule: None,
        }),
        Definition::Rule(rule) => {
            let columns = profiles
                .columns()
                .map_err(|e| OpError::Invalid(format!("segment \"{name}\": {e:#}")))?;
            let predicate = crate::rules::compile(rule, &columns, profiles.dialect())
                .map_err(|e| OpError::Invalid(format!("segment \"{name}\": {e}")))?;
            Ok(Compiled {
                predicate,
                rule: Some(crate::rules::to_json(rule)),
            })
        }
    }
}

/// A segment counted when it was added or changed, with what people should know about it
/// (the profile source's role can read more than the profiles; the predicate compares a text
/// column with a number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    pub count: u64,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for Counted {
    /// `12 profiles match`, then `; warning: …` for each warning.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} profiles match", self.count)?;
        for w in &self.warnings {
            write!(f, "; warning: {w}")?;
        }
        Ok(())
    }
}

/// Adds a segment over the imported profiles (`source` None) or a PostgreSQL profile source:
/// checked where the profiles are (PostgreSQL's own message when it refuses the predicate),
/// then counted, and only then saved (a predicate that fails or runs out of time while
/// counting is refused and leaves nothing behind). Returns its count.
pub fn add_segment(
    app: &App,
    actor: &Actor,
    name: &str,
    predicate: &str,
    source: Option<&str>,
) -> OpResult<Counted> {
    add_segment_defined(
        app,
        actor,
        name,
        &Definition::Sql(predicate.to_string()),
        source,
    )
}

/// Adds a segment defined by SQL or by a rule (compiled for the profiles of `source`, and
/// kept next to its SQL); see [`add_segment`].
pub fn add_segment_defined(
    app: &App,
    actor: &Actor,
    name: &str,
    def: &Definition,
    source: Option<&str>,
) -> OpResult<Counted> {
    require(actor, Role::Contributor, "adding a segment")?;
    check_name("segment", name)?;
    let (counted, c) = count_segment(app, name, def, source)?;
    let state = app.state()?;
    state.add_segment_with(name, &c.predicate, c.rule.as_deref(), source)?;
    let predicate = &c.predicate;
    let detail = match source {
        Some(src) => format!("{predicate} (profile source {src})"),
        None => predicate.to_string(),
    };
    audit(&state, actor, "segment.add", name, &detail)?;
    Ok(counted)
}

/// Checks `predicate` where the profiles of `source` are, and counts its members; warns when
/// the source's role can read more than the profiles.
fn count_segment(
    app: &App,
    name: &str,
    def: &Definition,
    source: Option<&str>,
) -> OpResult<(Counted, Compiled)> {
    if let Some(src) = source {
        app.state()?.profile_source(src).map_err(|_| {
            OpError::Invalid(format!(
                "segment \"{name}\": no profile source named \"{src}\" (see `segsync profiles source list`)"
            ))
        })?;
    }
    let store = app
        .profiles_of(source)
        .map_err(|e| OpError::Invalid(format!("segment \"{name}\": {e:#}")))?;
    let c = compile_for(&store, name, def)?;
    let predicate = c.predicate.as_str();
    let refused = |e: crate::profiles::PredicateError| {
        OpError::Invalid(format!("segment \"{name}\" refused: {e}"))
    };
    store.check_predicate(predicate).map_err(refused)?;
    let count = store.preview(predicate, 0).map_err(refused)?.count;
    let mut warnings = store.warnings();
    match store.columns() {
        Ok(columns) => warnings.extend(crate::profiles::comparison_warnings(predicate, &columns)),
        Err(e) => tracing::debug!(error = %e, "no column types to check the predicate against"),
    }
    Ok((Counted { count, warnings }, c))
}

/// Changes a segment's predicate (checked and counted first). Returns its new count.
pub fn update_segment(app: &App, actor: &Actor, name: &str, predicate: &str) -> OpResult<Counted> {
    update_segment_defined(app, actor, name, &Definition::Sql(predicate.to_string()))
}

/// Changes a segment's definition (SQL, or a rule compiled to SQL; checked and counted
/// first). Returns its new count.
pub fn update_segment_defined(
    app: &App,
    actor: &Actor,
    name: &str,
    def: &Definition,
) -> OpResult<Counted> {
    require(actor, Role::Contributor, "changing a segment")?;
    let state = app.state()?;
    let old = state.segment(name)?;
    check_segment_access(&state, actor, name, "changing")?;
    let (counted, c) = count_segment(app, name, def, old.source.as_deref())?;
    if old.predicate != c.predicate || old.rule != c.rule {
        state.set_segment_definition(name, &c.predicate, c.rule.as_deref())?;
        audit(&state, actor, "segment.update", name, &c.predicate)?;
    }
    Ok(counted)
}

pub fn remove_segment(app: &App, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Contributor, "removing a segment")?;
    let state = app.state()?;
    check_segment_access(&state, actor, name, "removing")?;
    state.remove_segment(name)?;
    audit(&state, actor, "segment.remove", name, "")?;
    Ok(())
}

/// Refuses `actor` a change (`doing`: "changing", "removing") of segment `name` unless they
/// may manage every export that uses it: changing a segment changes the audience of each of
/// them, and an export on a connection kept for admins is for admins to change. The refusal
/// names those exports.
fn check_segment_access(
    state: &StateStore,
    actor: &Actor,
    name: &str,
    doing: &str,
) -> OpResult<()> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    let closed: Vec<String> = state
        .exports()?
        .into_iter()
        .filter(|e| e.segments.iter().any(|s| s.segment == name))
        .filter(|e| check_export_access(state, actor, e).is_err())
        .map(|e| format!("\"{}\" (connection \"{}\")", e.name, e.connection))
        .collect();
    if closed.is_empty() {
        return Ok(());
    }
    Err(OpError::Forbidden(format!(
        "{doing} segment \"{name}\" changes every export that uses it, and {} may not change \
         export(s) {}, on connections kept for admins: ask an admin, or use a segment of your \
         own",
        actor.name,
        closed.join(", ")
    )))
}
