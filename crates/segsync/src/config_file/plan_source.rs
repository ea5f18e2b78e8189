//! How a `[[source]]` of the file becomes a step: a new source is created from the URL its
//! environment variable holds (checked against the database by [`crate::ops::add_source`]
//! when applied); an existing one must keep its kind, table or query and key (a source keeps
//! its definition: segments were checked against it).

use crate::ops::{self, SourceKind};
use crate::profiles::PgRelation;

use super::model::SourceSpec;
use super::plan::{step, Action, Installation, Kind, Op, Problems, Step};

pub(super) fn plan_source(
    s: &SourceSpec,
    inst: &Installation,
    p: &mut Problems<'_>,
) -> Option<Step> {
    let name = s.name.get_ref();
    if let Err(e) = ops::check_name("source", name) {
        p.op(s.name.span(), "source", e);
        return None;
    }
    let kind = match s.kind.get_ref().as_str() {
        "postgres" => SourceKind::Postgres,
        "mysql" => SourceKind::MySql,
        other => {
            p.at(
                s.kind.span(),
                format!(
                    "source \"{name}\": unknown kind \"{other}\": use \"postgres\" or \"mysql\""
                ),
            );
            return None;
        }
    };
    let relation = match (&s.table, &s.query) {
        (Some(t), None) => PgRelation::Table(t.get_ref().clone()),
        (None, Some(q)) => PgRelation::Query(q.get_ref().clone()),
        _ => {
            p.at(
                s.name.span(),
                format!("source \"{name}\": give its `table` or its `query` (one of them)"),
            );
            return None;
        }
    };
    let (relation_kind, relation_text) = match &relation {
        PgRelation::Table(t) => ("table", t.as_str()),
        PgRelation::Query(q) => ("query", q.as_str()),
    };
    // The URL is checked even for an existing source: a password written in the file is
    // refused whatever the installation holds.
    let url = s.read_url();
    if let Some(current) = inst.sources.iter().find(|x| &x.name == name) {
        if let Err(e) = &url {
            if !e.contains("not set") {
                p.at(s.url.span(), e.clone());
                return None;
            }
        }
        let same = current.kind == kind.as_str()
            && current.relation_kind == relation_kind
            && current.relation == relation_text
            && &current.key_column == s.key.get_ref();
        if !same {
            p.at(
                s.name.span(),
                format!(
                    "source \"{name}\" reads {} {} {} with key {} and the file says {} {} {} with key {}: \
                     a source keeps its definition (remove it, or give the new one another name)",
                    current.kind, current.relation_kind, current.relation, current.key_column,
                    kind.as_str(), relation_kind, relation_text, s.key.get_ref()
                ),
            );
            return None;
        }
        return Some(step(Kind::Source, name, Action::Unchanged, Op::None));
    }
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            p.at(s.url.span(), e);
            return None;
        }
    };
    let mut st = step(
        Kind::Source,
        name,
        Action::Create,
        Op::AddSource(Box::new(ops::SourceInput {
            name: name.clone(),
            kind,
            url,
            relation,
            key_column: s.key.get_ref().clone(),
            allow_superuser: s.allow_superuser.unwrap_or(false),
        })),
    );
    st.blame = Some(s.name.span());
    Some(st)
}
