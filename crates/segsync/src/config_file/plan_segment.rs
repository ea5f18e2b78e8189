//! How a `[[segment]]` of the file becomes a step: its profile source must exist and stay
//! the one the installation's segment reads, and its predicate must compile against it.

use crate::ops;

use super::model::SegmentSpec;
use super::plan::{step, Action, Checks, Installation, Kind, Op, Problems, Step};

pub(super) fn plan_segment(
    s: &SegmentSpec,
    inst: &Installation,
    file_sources: &std::collections::BTreeSet<&str>,
    checks: &Checks<'_>,
    p: &mut Problems<'_>,
) -> Option<Step> {
    let name = s.name.get_ref();
    if let Err(e) = ops::check_name("segment", name) {
        p.op(s.name.span(), "segment", e);
        return None;
    }
    let source = s.source.as_ref().map(|x| x.get_ref().as_str());
    if let Some(src) = &s.source {
        if !inst.source_columns.contains_key(src.get_ref()) {
            if file_sources.contains(src.get_ref().as_str()) {
                // Declared in the file and not readable: its own step says why.
                return None;
            }
            p.at(
                src.span(),
                format!(
                    "segment \"{name}\": no profile source named \"{}\" (declare it in a [[source]] of the file, or an admin adds it with `segsync profiles source add`)",
                    src.get_ref()
                ),
            );
            return None;
        }
    }
    let (predicate, rule, span) = definition(s, source, inst, p)?;
    let predicate = &predicate;
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
            return None;
        }
    }
    if current.is_some_and(|c| &c.predicate == predicate && c.rule == rule) {
        return Some(step(Kind::Segment, name, Action::Unchanged, Op::None));
    }
    if let Err(e) = (checks.predicate)(predicate, source) {
        p.at(span, format!("segment \"{name}\": invalid predicate: {e}"));
        return None;
    }
    let mut st = match current {
        None => step(
            Kind::Segment,
            name,
            Action::Create,
            Op::AddSegment(predicate.clone(), source.map(str::to_string), rule),
        ),
        Some(_) => step(
            Kind::Segment,
            name,
            Action::Update,
            Op::UpdateSegment(predicate.clone(), rule),
        ),
    };
    if st.action == Action::Update {
        st.changes.push("where".into());
    }
    Some(st)
}

/// The segment's predicate (written as `where`, or compiled from `rule` for the profiles of
/// its source), the rule's JSON, and where in the file they are.
fn definition(
    s: &SegmentSpec,
    source: Option<&str>,
    inst: &Installation,
    p: &mut Problems<'_>,
) -> Option<(String, Option<String>, std::ops::Range<usize>)> {
    let name = s.name.get_ref();
    match (&s.predicate, &s.rule) {
        (Some(w), None) => Some((w.get_ref().clone(), None, w.span())),
        (None, Some(r)) => {
            let key = source.map(str::to_string);
            let Some((columns, dialect)) = inst.rule_columns.get(&key) else {
                p.at(
                    r.span(),
                    format!("segment \"{name}\": the profile columns could not be read to compile its rule"),
                );
                return None;
            };
            match crate::rules::compile(r.get_ref(), columns, *dialect) {
                Ok(sql) => Some((sql, Some(crate::rules::to_json(r.get_ref())), r.span())),
                Err(e) => {
                    p.at(r.span(), format!("segment \"{name}\": {e}"));
                    None
                }
            }
        }
        (Some(w), Some(_)) => {
            p.at(
                w.span(),
                format!("segment \"{name}\": give either `where` or `rule`, not both"),
            );
            None
        }
        (None, None) => {
            p.at(
                s.name.span(),
                format!("segment \"{name}\": give its condition as `where` (SQL) or `rule`"),
            );
            None
        }
    }
}
