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
    let predicate = s.predicate.get_ref();
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
    if current.is_some_and(|c| &c.predicate == predicate) {
        return Some(step(Kind::Segment, name, Action::Unchanged, Op::None));
    }
    if let Err(e) = (checks.predicate)(predicate, source) {
        p.at(
            s.predicate.span(),
            format!("segment \"{name}\": invalid predicate: {e}"),
        );
        return None;
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
    Some(st)
}
