//! What the segment builder and the export form ask while people edit: a draft segment's
//! count (and sample), the statistics of the profile columns for the value pickers, the
//! distinct members chosen segments give (as the engine merges shared addresses) with their
//! overlaps, and how many members of each export would gain or lose a segment's tag if it
//! changed. Nothing here is saved.

use std::convert::Infallible;

use super::segments::Definition;
use super::{OpError, OpResult};
use crate::app::App;
use crate::profiles::Preview;
use crate::rules::sizes::{Counted, Counter};
use crate::rules::stats::{ColumnStats, Gatherer};
use crate::sources::Profiles;

/// A draft segment's SQL and its count, with up to `sample` matching profiles.
pub fn preview_draft(
    app: &App,
    def: &Definition,
    source: Option<&str>,
    sample: usize,
) -> OpResult<(String, Preview)> {
    let profiles = profiles(app, source)?;
    let predicate = match def {
        Definition::Sql(sql) => sql.clone(),
        Definition::Rule(rule) => {
            crate::rules::compile(rule, &profiles.columns()?, profiles.dialect())
                .map_err(|e| OpError::Invalid(e.to_string()))?
        }
    };
    let refused = |e: crate::profiles::PredicateError| OpError::Invalid(format!("refused: {e}"));
    profiles.check_predicate(&predicate).map_err(refused)?;
    let preview = profiles.preview(&predicate, sample).map_err(refused)?;
    Ok((predicate, preview))
}

/// The statistics of every profile column of `source` (one pass over the profiles).
pub fn column_stats(app: &App, source: Option<&str>) -> OpResult<Vec<ColumnStats>> {
    let profiles = profiles(app, source)?;
    let columns = profiles.columns()?;
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let mut g = Gatherer::new(&columns);
    profiles
        .select(
            &names,
            &["1 = 1".to_string()],
            |row| -> Result<(), Infallible> {
                g.add(&row.values);
                Ok(())
            },
        )
        .map_err(|e| OpError::Invalid(format!("reading the profiles: {e}")))?;
    Ok(g.finish())
}

/// The members `segments` give together over the address column `email_field`, as the
/// engine counts them. The segments must read the same profiles, as an export's do.
pub fn segment_sizes(app: &App, segments: &[String], email_field: &str) -> OpResult<Counted> {
    let state = app.state()?;
    let mut source: Option<Option<String>> = None;
    let mut predicates = Vec::new();
    for name in segments {
        let s = state.segment(name)?;
        match &source {
            Some(src) if *src != s.source => {
                return Err(OpError::Invalid(format!(
                    "the segments read different profiles (segment \"{name}\" reads {}): an \
                     export's segments must all come from the same source",
                    s.source
                        .as_deref()
                        .map_or("the imported profiles".to_string(), |n| format!(
                            "profile source \"{n}\""
                        ))
                )))
            }
            _ => source = Some(s.source.clone()),
        }
        predicates.push(s.predicate);
    }
    let profiles = profiles(app, source.flatten().as_deref())?;
    count(&profiles, email_field, &predicates)
}

/// How one export's members would change if a segment's predicate changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagChange {
    pub export: String,
    pub tag: String,
    /// Members that would carry the tag and do not now.
    pub gain: u64,
    /// Members that carry it now and would not.
    pub lose: u64,
}

/// For each export that uses `segment`: how many members would gain or lose its tag if its
/// predicate became `predicate` (the other segments of the export as they are).
pub fn tag_changes(app: &App, segment: &str, predicate: &str) -> OpResult<Vec<TagChange>> {
    let state = app.state()?;
    let seg = state.segment(segment)?;
    let exports: Vec<_> = state
        .exports()?
        .into_iter()
        .filter(|e| e.segments.iter().any(|s| s.segment == segment))
        .collect();
    if exports.is_empty() {
        return Ok(Vec::new());
    }
    let profiles = profiles(app, seg.source.as_deref())?;
    let mut changes = Vec::new();
    for e in exports {
        let mut predicates = Vec::new();
        let mut at = 0;
        let mut tag = String::new();
        for (i, s) in e.segments.iter().enumerate() {
            if s.segment == segment {
                (at, tag) = (i, s.tag.clone());
            }
            predicates.push(state.segment(&s.segment)?.predicate);
        }
        predicates.push(predicate.to_string());
        let counted = count(&profiles, &e.email_field, &predicates)?;
        let all: Vec<usize> = (0..predicates.len()).collect();
        let (gain, lose) = counted.moved(&all, at, predicates.len() - 1);
        changes.push(TagChange {
            export: e.name,
            tag,
            gain,
            lose,
        });
    }
    Ok(changes)
}

fn profiles(app: &App, source: Option<&str>) -> OpResult<Profiles> {
    app.profiles_of(source)
        .map_err(|e| OpError::Invalid(format!("{e:#}")))
}

/// One pass over the profiles: each profile's address and its predicates, counted.
fn count(profiles: &Profiles, email_field: &str, predicates: &[String]) -> OpResult<Counted> {
    let mut counter = Counter::new(predicates.len()).map_err(OpError::Invalid)?;
    let columns = profiles.columns()?;
    if !columns.iter().any(|c| c.name == email_field) {
        return Err(OpError::Invalid(format!(
            "no profile column named \"{email_field}\" for the email address"
        )));
    }
    profiles
        .select(
            &[email_field.to_string()],
            predicates,
            |row| -> Result<(), Infallible> {
                counter.add(&row.values[0], &row.in_segment);
                Ok(())
            },
        )
        .map_err(|e| OpError::Invalid(format!("reading the profiles: {e}")))?;
    Ok(counter.finish())
}
