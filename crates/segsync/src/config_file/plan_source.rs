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
        let cursor = s.cursor.as_ref().map(|c| c.get_ref().as_str());
        let same = current.kind == kind.as_str()
            && current.relation_kind == relation_kind
            && current.relation == relation_text
            && &current.key_column == s.key.get_ref()
            && current.cursor_column.as_deref() == cursor;
        if !same {
            let with_cursor =
                |c: Option<&str>| c.map(|c| format!(" and cursor {c}")).unwrap_or_default();
            p.at(
                s.name.span(),
                format!(
                    "source \"{name}\" reads {} {} {} with key {}{} and the file says {} {} {} with key {}{}: \
                     a source keeps its definition (remove it, or give the new one another name)",
                    current.kind, current.relation_kind, current.relation, current.key_column,
                    with_cursor(current.cursor_column.as_deref()),
                    kind.as_str(), relation_kind, relation_text, s.key.get_ref(), with_cursor(cursor)
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
            cursor_column: s.cursor.as_ref().map(|c| c.get_ref().clone()),
            allow_superuser: s.allow_superuser.unwrap_or(false),
        })),
    );
    st.blame = Some(s.name.span());
    Some(st)
}

#[cfg(test)]
mod tests {
    use crate::config_file::testkit::{installation, messages, plan_of};
    use crate::config_file::{Action, Kind, Options};
    use crate::sources::SourceView;

    const SOURCE: &str = "[[source]]\nname = \"shop\"\nkind = \"mysql\"\nurl = \"URL\"\ntable = \"customers\"\nkey = \"customer_id\"\n";

    fn shop() -> SourceView {
        SourceView {
            name: "shop".into(),
            kind: "mysql".into(),
            url: "mysql://r:***@db/shop".into(),
            relation_kind: "table".into(),
            relation: "customers".into(),
            key_column: "customer_id".into(),
            cursor_column: None,
            created_at: "x".into(),
        }
    }

    #[test]
    fn a_password_in_the_file_is_refused_without_showing_it() {
        let text = SOURCE.replace("URL", "mysql://reader:Pw-in-git-99@db:3306/shop");
        let m = messages(plan_of(&text, &installation(), Options::default()));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].starts_with("segsync.toml:4:7: source \"shop\": the url mysql://reader:***@db:3306/shop holds a password"), "{m:?}");
        assert!(m[0].contains("url = \"env:VAR\""), "{m:?}");
        assert!(!m[0].contains("Pw-in-git-99"), "{m:?}");
        // Without a password a URL may be written in the file.
        let text = SOURCE.replace("URL", "mysql://reader@db:3306/shop");
        let plan = plan_of(&text, &installation(), Options::default()).unwrap();
        let st = plan.steps.iter().find(|s| s.kind == Kind::Source).unwrap();
        assert_eq!(st.action, Action::Create);
    }

    #[test]
    fn kinds_relations_and_definitions_are_checked() {
        let text = SOURCE
            .replace("URL", "env:SEGSYNC_TEST_UNSET_VARIABLE_X")
            .replace("kind = \"mysql\"", "kind = \"oracle\"");
        let m = messages(plan_of(&text, &installation(), Options::default()));
        assert!(
            m[0].contains("unknown kind \"oracle\": use \"postgres\" or \"mysql\""),
            "{m:?}"
        );
        let text = SOURCE.replace("table = \"customers\"\n", "");
        let m = messages(plan_of(&text, &installation(), Options::default()));
        assert!(m[0].contains("give its `table` or its `query`"), "{m:?}");
        let text = SOURCE.replace("URL", "env:SEGSYNC_TEST_UNSET_VARIABLE_X");
        let m = messages(plan_of(&text, &installation(), Options::default()));
        assert!(
            m[0].contains("url env:SEGSYNC_TEST_UNSET_VARIABLE_X: the variable is not set"),
            "{m:?}"
        );

        // An existing source: unchanged without reading its variable, refused if redefined.
        let mut inst = installation();
        inst.sources.push(shop());
        let text = SOURCE.replace("URL", "env:SEGSYNC_TEST_UNSET_VARIABLE_X");
        let plan = plan_of(&text, &inst, Options::default()).unwrap();
        let st = plan.steps.iter().find(|s| s.kind == Kind::Source).unwrap();
        assert_eq!(st.action, Action::Unchanged);
        let text = text.replace("key = \"customer_id\"", "key = \"email\"");
        let m = messages(plan_of(&text, &inst, Options::default()));
        assert!(m[0].contains("a source keeps its definition"), "{m:?}");
    }

    #[test]
    fn prune_removes_sources_after_the_segments_that_read_them() {
        let mut inst = installation();
        inst.sources.push(shop());
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
        let last = plan.steps.last().unwrap();
        assert_eq!(
            (last.kind, last.name.as_str(), last.action),
            (Kind::Source, "shop", Action::Remove)
        );
        let plan = plan_of(text, &inst, Options::default()).unwrap();
        let last = plan.steps.last().unwrap();
        assert_eq!((last.kind, last.action), (Kind::Source, Action::NotInFile));
    }
}
