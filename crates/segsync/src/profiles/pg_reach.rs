//! What a PostgreSQL source's role can read besides its profiles. Segment predicates are
//! written by contributors and run with the source's role, so whatever it can read, a
//! predicate can read too (and show in a preview's sample). `segsync profiles source add`
//! refuses a superuser (unless told otherwise) and warns about the rest; adding or changing a
//! segment over the source repeats the warning.

use super::{begin, Fault, PgRelation, PgSource, PgSourceError};
use ::postgres::Client;
use serde_json::Value;
use std::collections::BTreeSet;

/// Names of readable relations shown in a warning; the rest are counted.
const SHOWN: usize = 5;

/// What the source's role can read beyond the relation of its profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// The role (`current_user`).
    pub role: String,
    /// A superuser reads everything (and more).
    pub superuser: bool,
    /// Predefined roles it is a member of that read everything: `pg_read_all_data`,
    /// `pg_read_server_files`.
    pub read_all: Vec<String>,
    /// Other tables and views it may `SELECT` (`schema.name`, sorted), outside the system
    /// catalogs.
    pub other_relations: Vec<String>,
}

impl Reach {
    /// What a person should be told, one sentence each (nothing when the role reads only
    /// the profiles).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let role = &self.role;
        if self.superuser {
            w.push(format!(
                "the source's role \"{role}\" is a PostgreSQL superuser: segment predicates \
                 (which contributors write) run with its rights and can read every table, \
                 password hashes included"
            ));
        }
        for r in &self.read_all {
            w.push(format!(
                "the source's role \"{role}\" is a member of {r}: segment predicates can read \
                 every table of the database"
            ));
        }
        if !self.other_relations.is_empty() {
            let n = self.other_relations.len();
            let mut names = self.other_relations[..n.min(SHOWN)].join(", ");
            if n > SHOWN {
                names.push_str(&format!(" and {} more", n - SHOWN));
            }
            w.push(format!(
                "the source's role \"{role}\" can also read {n} other table(s) or view(s) \
                 ({names}): segment predicates can read them too and show them in previews; \
                 give the source a role that can read only the profiles"
            ));
        }
        w
    }
}

impl PgSource {
    /// What the source's role can read beyond its profiles (see [`Reach`]).
    pub fn reach(&self) -> Result<Reach, PgSourceError> {
        let from = self.from.clone();
        let own_table = match &self.relation {
            PgRelation::Table(_) => Some(self.from.clone()),
            PgRelation::Query(_) => None,
        };
        let limit = self.limits.check_timeout;
        self.call(move |client| reach(client, &from, own_table.as_deref(), limit))?
            .map_err(|f| self.source_error(f, limit))
    }
}

fn reach(
    client: &mut Client,
    from: &str,
    own_table: Option<&str>,
    limit: std::time::Duration,
) -> Result<Reach, Fault> {
    let mut tx = begin(client, limit)?;
    let row = tx.query_one(
        "SELECT current_user::text, r.rolsuper,
                ARRAY(SELECT p.rolname::text FROM pg_roles p
                      WHERE p.rolname IN ('pg_read_all_data', 'pg_read_server_files')
                        AND pg_has_role(current_user, p.oid, 'USAGE')
                      ORDER BY 1)
         FROM pg_roles r WHERE r.rolname = current_user",
        &[],
    )?;
    let mut reach = Reach {
        role: row.try_get(0)?,
        superuser: row.try_get(1)?,
        read_all: row.try_get(2)?,
        other_relations: Vec::new(),
    };
    if reach.superuser || !reach.read_all.is_empty() {
        return Ok(reach);
    }
    let mut own = plan_relations(&mut tx, from)?;
    if let Some(table) = own_table {
        let row = tx.query_one(
            "SELECT n.nspname::text || '.' || c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1::text)",
            &[&table],
        )?;
        own.insert(row.try_get(0)?);
    }
    reach.other_relations = tx
        .query(
            "SELECT n.nspname::text || '.' || c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_toast%'
               AND has_schema_privilege(n.oid, 'USAGE')
               AND has_any_column_privilege(c.oid, 'SELECT')
             ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|name| !own.contains(name))
        .collect();
    Ok(reach)
}

/// The tables the profiles' relation reads (`schema.name`), from its plan (nothing is run).
fn plan_relations(
    tx: &mut ::postgres::Transaction<'_>,
    from: &str,
) -> Result<BTreeSet<String>, Fault> {
    let row = tx.query_one(
        &format!("EXPLAIN (VERBOSE, FORMAT JSON) SELECT * FROM {from} AS profiles"),
        &[],
    )?;
    let plan: Value = row.try_get(0)?;
    let mut found = BTreeSet::new();
    collect_relations(&plan, &mut found);
    Ok(found)
}

fn collect_relations(v: &Value, found: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let (Some(Value::String(schema)), Some(Value::String(name))) =
                (o.get("Schema"), o.get("Relation Name"))
            {
                found.insert(format!("{schema}.{name}"));
            }
            o.values().for_each(|x| collect_relations(x, found));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_relations(x, found)),
        _ => {}
    }
}
