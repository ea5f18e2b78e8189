//! From a [`Rule`] to the SQL predicate the engine runs, in the dialect of the profiles.
//!
//! Identifiers are always quoted (`"Lifetime value"`, quotes doubled); text values are SQL
//! strings with quotes doubled (on PostgreSQL, a value holding a backslash is written as an
//! `E'…'` string, right whatever `standard_conforming_strings` says); `LIKE` patterns escape
//! `%`, `_` and their escape character `!`. Control characters are refused in values.
//! On MySQL, identifiers are in backticks and backslashes in strings are doubled (its
//! sessions read them as escapes). Relative dates are left to the database (`date('now',
//! '-90 days')` on SQLite, `CURRENT_DATE - INTERVAL '90 days'` on PostgreSQL,
//! `CURRENT_DATE - INTERVAL 90 DAY` on MySQL), so that "in the last 90 days" means the
//! 90 days before each run, in UTC on SQLite and in the session's time zone on PostgreSQL.

use chrono::NaiveDate;
use serde_json::Value;

use super::{Condition, Kind, Op, Rule, RuleError};
use crate::profiles::Column;

/// The deepest nesting of groups and NOTs a rule may have.
const MAX_DEPTH: usize = 16;
/// The most conditions (and SQL parts) a rule may have.
const MAX_CONDITIONS: usize = 200;
/// The most values a `one_of` / `none_of` list may have.
const MAX_LIST: usize = 1000;
/// The largest relative span (`in_last` 3650 days, 520 weeks, 120 months, 10 years...).
const MAX_AMOUNT: i64 = 100_000;

/// Where the predicate runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded profile store.
    Sqlite,
    /// A PostgreSQL profile source.
    Postgres,
    /// A MySQL or MariaDB profile source (its sessions read identifiers in backticks and
    /// backslashes in strings as escapes).
    MySql,
}

/// The SQL predicate of `rule` over profiles with `columns`, for `dialect`.
pub fn compile(rule: &Rule, columns: &[Column], dialect: Dialect) -> Result<String, RuleError> {
    let mut c = Compiler {
        columns,
        dialect,
        conditions: 0,
    };
    c.rule(rule, "", 0)
}

struct Compiler<'a> {
    columns: &'a [Column],
    dialect: Dialect,
    conditions: usize,
}

fn err(at: &str, message: impl Into<String>) -> RuleError {
    RuleError {
        at: at.to_string(),
        message: message.into(),
    }
}

fn child(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

impl Compiler<'_> {
    fn rule(&mut self, rule: &Rule, at: &str, depth: usize) -> Result<String, RuleError> {
        if depth > MAX_DEPTH {
            return Err(err(
                at,
                format!("groups nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        match rule {
            Rule::All(rules) => self.group(rules, "all", " AND ", at, depth),
            Rule::Any(rules) => self.group(rules, "any", " OR ", at, depth),
            Rule::Not(inner) => {
                let sql = self.rule(inner, &child(at, "not"), depth + 1)?;
                // A missing value makes SQL's NOT unknown, and the profile would be in
                // neither the rule nor its negation: NOT means "not matched".
                Ok(format!("NOT COALESCE({sql}, FALSE)"))
            }
            Rule::Condition(c) => {
                self.count(at)?;
                condition(c, self.columns, self.dialect).map_err(|m| {
                    let what = format!("condition on \"{}\"", c.column);
                    err(
                        if at.is_empty() {
                            what
                        } else {
                            format!("{at} ({what})")
                        }
                        .as_str(),
                        m,
                    )
                })
            }
            Rule::Sql(sql) => {
                self.count(at)?;
                if sql.trim().is_empty() {
                    return Err(err(at, "the SQL condition is empty"));
                }
                // On its own line, so that a trailing `--` comment ends there.
                Ok(format!("(\n{sql}\n)"))
            }
        }
    }

    fn count(&mut self, at: &str) -> Result<(), RuleError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(err(
                at,
                format!("more than {MAX_CONDITIONS} conditions in one rule"),
            ));
        }
        Ok(())
    }

    fn group(
        &mut self,
        rules: &[Rule],
        name: &str,
        joiner: &str,
        at: &str,
        depth: usize,
    ) -> Result<String, RuleError> {
        if rules.is_empty() {
            let what = if name == "all" { "AND" } else { "OR" };
            return Err(err(
                at,
                format!("an empty {what} group: add a condition to it or remove it"),
            ));
        }
        let parts = rules
            .iter()
            .enumerate()
            .map(|(i, r)| self.rule(r, &child(at, &format!("{name}[{i}]")), depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one part"));
        }
        Ok(format!("({})", parts.join(joiner)))
    }
}

/// One condition's SQL, or what is wrong with it.
fn condition(c: &Condition, columns: &[Column], dialect: Dialect) -> Result<String, String> {
    let column = columns.iter().find(|x| x.name == c.column).ok_or_else(|| {
        let names: Vec<&str> = columns.iter().map(|x| x.name.as_str()).collect();
        if names.is_empty() {
            "there are no profile columns yet (import profiles first)".to_string()
        } else {
            format!(
                "no column named \"{}\" (columns: {})",
                c.column,
                names.join(", ")
            )
        }
    })?;
    let kind = Kind::of(column.kind).ok_or_else(|| {
        "the column holds nested values (JSON): write a SQL condition for it".to_string()
    })?;
    if !kind.ops().contains(&c.op) {
        let names: Vec<&str> = kind.ops().iter().map(|o| o.as_str()).collect();
        return Err(format!(
            "\"{}\" does not apply to a {} column (it takes {})",
            c.op.as_str(),
            kind.as_str(),
            names.join(", ")
        ));
    }
    let col = ident(&c.column, dialect);
    let v = Values {
        value: c.value.as_ref(),
        op: c.op,
        dialect,
    };
    let sql = match (kind, c.op) {
        (_, Op::IsEmpty) => {
            v.none()?;
            if kind == Kind::Text {
                format!("({col} IS NULL OR {col} = '')")
            } else {
                format!("{col} IS NULL")
            }
        }
        (_, Op::IsNotEmpty) => {
            v.none()?;
            if kind == Kind::Text {
                format!("({col} IS NOT NULL AND {col} <> '')")
            } else {
                format!("{col} IS NOT NULL")
            }
        }
        (Kind::Text, op) => text(&col, op, &v)?,
        (Kind::Number, op) => number(&col, op, &v)?,
        (Kind::Date, op) => date(&col, op, &v)?,
        (Kind::Boolean, Op::IsTrue) => {
            v.none()?;
            format!("{col} = TRUE")
        }
        (Kind::Boolean, _) => {
            v.none()?;
            format!("{col} = FALSE")
        }
    };
    Ok(sql)
}

fn text(col: &str, op: Op, v: &Values<'_>) -> Result<String, String> {
    Ok(match op {
        Op::Is => format!("{col} = {}", v.text()?),
        Op::IsNot => format!("({col} IS NULL OR {col} <> {})", v.text()?),
        Op::OneOf => format!("{col} IN ({})", v.text_list()?.join(", ")),
        Op::NoneOf => format!(
            "({col} IS NULL OR {col} NOT IN ({}))",
            v.text_list()?.join(", ")
        ),
        Op::Contains => like(col, &format!("%{}%", v.pattern()?), v.dialect),
        Op::NotContains => format!(
            "({col} IS NULL OR NOT {})",
            like(col, &format!("%{}%", v.pattern()?), v.dialect)
        ),
        Op::StartsWith => like(col, &format!("{}%", v.pattern()?), v.dialect),
        _ => like(col, &format!("%{}", v.pattern()?), v.dialect),
    })
}

/// A case-insensitive `LIKE` (on SQLite, `lower` folds ASCII letters only).
fn like(col: &str, pattern: &str, dialect: Dialect) -> String {
    format!(
        "lower({col}) LIKE {} ESCAPE '!'",
        string(&pattern.to_lowercase(), dialect)
    )
}

fn number(col: &str, op: Op, v: &Values<'_>) -> Result<String, String> {
    Ok(match op {
        Op::Eq => format!("{col} = {}", v.number()?),
        Op::Ne => format!("({col} IS NULL OR {col} <> {})", v.number()?),
        Op::Gt => format!("{col} > {}", v.number()?),
        Op::Gte => format!("{col} >= {}", v.number()?),
        Op::Lt => format!("{col} < {}", v.number()?),
        Op::Lte => format!("{col} <= {}", v.number()?),
        _ => {
            let (lo, hi) = v.pair()?;
            let (lo, hi) = (number_literal(lo)?, number_literal(hi)?);
            if lo.parse::<f64>().ok() > hi.parse::<f64>().ok() {
                return Err(format!("between {lo} and {hi}: the first is the larger"));
            }
            format!("({col} >= {lo} AND {col} <= {hi})")
        }
    })
}

fn date(col: &str, op: Op, v: &Values<'_>) -> Result<String, String> {
    let d = v.dialect;
    let day = |x: NaiveDate| string(&x.format("%Y-%m-%d").to_string(), d);
    Ok(match op {
        Op::On => {
            let x = v.date()?;
            format!("({col} >= {} AND {col} < {})", day(x), day(next(x)?))
        }
        Op::Before => format!("{col} < {}", day(v.date()?)),
        Op::After => format!("{col} >= {}", day(next(v.date()?)?)),
        Op::Between => {
            let (lo, hi) = v.pair()?;
            let (lo, hi) = (date_literal(lo)?, date_literal(hi)?);
            if lo > hi {
                return Err(format!("between {lo} and {hi}: the first is the later"));
            }
            format!("({col} >= {} AND {col} < {})", day(lo), day(next(hi)?))
        }
        Op::InLast => {
            let (n, unit) = v.span()?;
            format!(
                "({col} >= {} AND {col} < {})",
                today_plus(d, -n, unit),
                today_plus(d, 1, Unit::Days)
            )
        }
        Op::MoreThanAgo => {
            let (n, unit) = v.span()?;
            format!("{col} < {}", today_plus(d, -n, unit))
        }
        _ => {
            let (n, unit) = v.span()?;
            format!(
                "({col} >= {} AND {col} < {})",
                today_plus(d, 0, Unit::Days),
                after_span_and_a_day(d, n, unit)
            )
        }
    })
}

fn next(x: NaiveDate) -> Result<NaiveDate, String> {
    x.succ_opt()
        .ok_or_else(|| format!("{x} is the last date there is"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Days,
    Weeks,
    Months,
    Years,
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        match s {
            "day" | "days" => Some(Unit::Days),
            "week" | "weeks" => Some(Unit::Weeks),
            "month" | "months" => Some(Unit::Months),
            "year" | "years" => Some(Unit::Years),
            _ => None,
        }
    }

    /// `n` of this unit as SQLite date modifier and PostgreSQL interval text (`90 days`).
    fn amount(self, n: i64) -> String {
        match self {
            Unit::Days => format!("{n} days"),
            Unit::Weeks => format!("{} days", n * 7),
            Unit::Months => format!("{n} months"),
            Unit::Years => format!("{n} years"),
        }
    }

    /// `n` of this unit as a MySQL interval (`90 DAY`).
    fn mysql(self, n: i64) -> String {
        match self {
            Unit::Days => format!("{n} DAY"),
            Unit::Weeks => format!("{} DAY", n * 7),
            Unit::Months => format!("{n} MONTH"),
            Unit::Years => format!("{n} YEAR"),
        }
    }
}

/// Today (at each run) moved by `n` units, as a date.
fn today_plus(d: Dialect, n: i64, unit: Unit) -> String {
    match (d, n) {
        (Dialect::Sqlite, 0) => "date('now')".into(),
        (Dialect::Sqlite, n) => format!("date('now', '{}{}')", sign(n), unit.amount(n.abs())),
        (Dialect::Postgres, 0) => "CURRENT_DATE".into(),
        (Dialect::Postgres, n) => {
            format!(
                "(CURRENT_DATE {} INTERVAL '{}')",
                sign(n),
                unit.amount(n.abs())
            )
        }
        (Dialect::MySql, 0) => "CURRENT_DATE".into(),
        (Dialect::MySql, n) => format!(
            "(CURRENT_DATE {} INTERVAL {})",
            sign(n),
            unit.mysql(n.abs())
        ),
    }
}

/// The day after today moved `n` units ahead (the end, excluded, of `in_next`).
fn after_span_and_a_day(d: Dialect, n: i64, unit: Unit) -> String {
    match d {
        Dialect::Sqlite => format!("date('now', '+{}', '+1 days')", unit.amount(n)),
        Dialect::Postgres => format!(
            "(CURRENT_DATE + INTERVAL '{}' + INTERVAL '1 days')",
            unit.amount(n)
        ),
        Dialect::MySql => format!(
            "(CURRENT_DATE + INTERVAL {} + INTERVAL 1 DAY)",
            unit.mysql(n)
        ),
    }
}

fn sign(n: i64) -> &'static str {
    if n < 0 {
        "-"
    } else {
        "+"
    }
}

/// `"name"`, quotes doubled: safe as an identifier in SQLite and PostgreSQL; on MySQL,
/// `` `name` ``, backticks doubled.
pub(crate) fn ident(name: &str, d: Dialect) -> String {
    match d {
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// A SQL string literal of `s` (already checked for control characters).
fn string(s: &str, d: Dialect) -> String {
    if d == Dialect::MySql {
        return format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    }
    let quoted = s.replace('\'', "''");
    if d == Dialect::Postgres && s.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A string literal that compares exactly: SQLite and PostgreSQL compare text byte for byte
/// by default; MySQL compares with the column's collation unless one side is binary.
fn exact(s: &str, d: Dialect) -> String {
    match d {
        Dialect::MySql => format!("CAST({} AS BINARY)", string(s, d)),
        _ => string(s, d),
    }
}

/// The value of a condition, read as its operator wants it.
struct Values<'a> {
    value: Option<&'a Value>,
    op: Op,
    dialect: Dialect,
}

impl Values<'_> {
    fn some(&self, what: &str) -> Result<&Value, String> {
        match self.value {
            None | Some(Value::Null) => Err(format!("\"{}\" needs {what}", self.op.as_str())),
            Some(v) => Ok(v),
        }
    }

    fn none(&self) -> Result<(), String> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(v) => Err(format!("\"{}\" takes no value (got {v})", self.op.as_str())),
        }
    }

    /// The value as a literal compared exactly (`is`, `one_of`, ...): byte for byte on
    /// MySQL too, whose usual collations would call `RO` and `ro`, or `é` and `e`, equal.
    fn text(&self) -> Result<String, String> {
        Ok(exact(&text_value(self.some("a value")?)?, self.dialect))
    }

    fn text_list(&self) -> Result<Vec<String>, String> {
        let Value::Array(items) = self.some("a list of values")? else {
            return Err(format!("\"{}\" needs a list of values", self.op.as_str()));
        };
        if items.is_empty() {
            return Err("the list of values is empty".into());
        }
        if items.len() > MAX_LIST {
            return Err(format!("more than {MAX_LIST} values in the list"));
        }
        items
            .iter()
            .map(|v| Ok(exact(&text_value(v)?, self.dialect)))
            .collect()
    }

    /// The value as a `LIKE` pattern's literal part (`!`, `%`, `_` escaped).
    fn pattern(&self) -> Result<String, String> {
        let s = text_value(self.some("a value")?)?;
        if s.is_empty() {
            return Err(format!("\"{}\" needs some text", self.op.as_str()));
        }
        Ok(s.replace('!', "!!").replace('%', "!%").replace('_', "!_"))
    }

    fn number(&self) -> Result<String, String> {
        number_literal(self.some("a number")?)
    }

    fn date(&self) -> Result<NaiveDate, String> {
        date_literal(self.some("a date (YYYY-MM-DD)")?)
    }

    fn pair(&self) -> Result<(&Value, &Value), String> {
        match self.some("two values, [low, high]")? {
            Value::Array(a) if a.len() == 2 => Ok((&a[0], &a[1])),
            other => Err(format!(
                "\"between\" needs two values, [low, high] (got {other})"
            )),
        }
    }

    fn span(&self) -> Result<(i64, Unit), String> {
        let v = self.some("a span such as {\"amount\": 90, \"unit\": \"days\"}")?;
        let amount = v.get("amount").and_then(Value::as_i64);
        let unit = v.get("unit").and_then(Value::as_str).map(Unit::parse);
        let extra = v
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != "amount" && k != "unit"));
        match (amount, unit) {
            (Some(n), Some(Some(u))) if (1..=MAX_AMOUNT).contains(&n) && !extra => Ok((n, u)),
            (Some(n), Some(Some(_))) if !extra => Err(format!(
                "the amount must be a whole number from 1 to {MAX_AMOUNT} (got {n})"
            )),
            (_, Some(None)) => Err(format!(
                "unknown unit {} (days, weeks, months or years)",
                v["unit"]
            )),
            _ => Err(format!(
                "\"{}\" needs a span such as {{\"amount\": 90, \"unit\": \"days\"}} (got {v})",
                self.op.as_str()
            )),
        }
    }
}

/// Text from a string (or a number or boolean, written as text), without control characters.
fn text_value(v: &Value) -> Result<String, String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("expected text, got {other}")),
    };
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the value {:?} holds a control character (U+{:04X})",
            s, c as u32
        ));
    }
    Ok(s)
}

/// A number as SQL: a JSON number, or a string holding one (`12.5`, `-3`, `1e3`).
fn number_literal(v: &Value) -> Result<String, String> {
    let n = match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => return Ok(n.to_string()),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return Ok(i.to_string());
            }
            t.parse::<f64>().ok()
        }
        _ => None,
    };
    match n {
        Some(f) if f.is_finite() => Ok(format!("{f:?}")),
        _ => Err(format!("expected a number, got {v}")),
    }
}

fn date_literal(v: &Value) -> Result<NaiveDate, String> {
    v.as_str()
        .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
        .ok_or_else(|| format!("expected a date as YYYY-MM-DD, got {v}"))
}

#[cfg(test)]
mod tests;
