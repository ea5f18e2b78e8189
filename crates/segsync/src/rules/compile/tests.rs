//! The SQL each rule compiles to, exactly; that it passes both dialects' predicate scans; and
//! what is refused, with where and why. (`tests/segment_rules.rs` runs the compiled SQL over
//! real profiles, on SQLite and PostgreSQL.)

use super::*;
use crate::profiles::ColumnType;
use serde_json::json;

fn columns() -> Vec<Column> {
    [
        ("country", ColumnType::Text),
        ("Lifetime value", ColumnType::Real),
        ("orders", ColumnType::Integer),
        ("last order", ColumnType::Date),
        ("seen_at", ColumnType::Timestamp),
        ("vip", ColumnType::Boolean),
        ("prefs", ColumnType::Json),
        ("we\"ird", ColumnType::Text),
    ]
    .into_iter()
    .map(|(n, k)| Column {
        name: n.into(),
        kind: k,
    })
    .collect()
}

fn cond(column: &str, op: Op, value: Option<serde_json::Value>) -> Rule {
    Rule::Condition(Condition {
        column: column.into(),
        op,
        value,
    })
}

fn sql(rule: &Rule, d: Dialect) -> String {
    let s = compile(rule, &columns(), d).unwrap_or_else(|e| panic!("{e}"));
    crate::profiles::predicate::scan(&s).unwrap_or_else(|e| panic!("SQLite scan: {e}: {s}"));
    crate::profiles::postgres::scan(&s).unwrap_or_else(|e| panic!("PostgreSQL scan: {e}: {s}"));
    s
}

fn both(rule: Rule, expected: &str) {
    assert_eq!(sql(&rule, Dialect::Sqlite), expected);
    assert_eq!(sql(&rule, Dialect::Postgres), expected);
}

fn refused(rule: Rule) -> String {
    compile(&rule, &columns(), Dialect::Sqlite)
        .unwrap_err()
        .to_string()
}

#[test]
fn text_operators() {
    use Op::*;
    let c = |op, v| cond("country", op, v);
    both(c(Is, Some(json!("RO"))), r#""country" = 'RO'"#);
    both(
        c(IsNot, Some(json!("RO"))),
        r#"("country" IS NULL OR "country" <> 'RO')"#,
    );
    both(
        c(OneOf, Some(json!(["RO", "FR"]))),
        r#""country" IN ('RO', 'FR')"#,
    );
    both(
        c(NoneOf, Some(json!(["RO"]))),
        r#"("country" IS NULL OR "country" NOT IN ('RO'))"#,
    );
    both(
        c(Contains, Some(json!("Ro"))),
        r#"lower("country") LIKE '%ro%' ESCAPE '!'"#,
    );
    both(
        c(NotContains, Some(json!("x"))),
        r#"("country" IS NULL OR NOT lower("country") LIKE '%x%' ESCAPE '!')"#,
    );
    both(
        c(StartsWith, Some(json!("R"))),
        r#"lower("country") LIKE 'r%' ESCAPE '!'"#,
    );
    both(
        c(EndsWith, Some(json!("O"))),
        r#"lower("country") LIKE '%o' ESCAPE '!'"#,
    );
    both(c(IsEmpty, None), r#"("country" IS NULL OR "country" = '')"#);
    both(
        c(IsNotEmpty, None),
        r#"("country" IS NOT NULL AND "country" <> '')"#,
    );
}

#[test]
fn identifiers_and_values_are_quoted() {
    both(
        cond("we\"ird", Op::Is, Some(json!("O'Brien"))),
        r#""we""ird" = 'O''Brien'"#,
    );
    both(
        cond("country", Op::Contains, Some(json!("50%_off!"))),
        r#"lower("country") LIKE '%50!%!_off!!%' ESCAPE '!'"#,
    );
    // A value that tries to end the string and the WHERE stays one string.
    both(
        cond("country", Op::Is, Some(json!("x') OR 1=1 --"))),
        r#""country" = 'x'') OR 1=1 --'"#,
    );
    let r = cond("country", Op::Is, Some(json!(r"a\'b")));
    assert_eq!(sql(&r, Dialect::Sqlite), r#""country" = 'a\''b'"#);
    assert_eq!(sql(&r, Dialect::Postgres), r#""country" = E'a\\''b'"#);
    assert!(refused(cond("country", Op::Is, Some(json!("a\u{0}b")))).contains("control character"));
}

#[test]
fn number_operators() {
    use Op::*;
    let c = |op, v| cond("Lifetime value", op, v);
    both(c(Eq, Some(json!(500))), r#""Lifetime value" = 500"#);
    both(
        c(Ne, Some(json!(500))),
        r#"("Lifetime value" IS NULL OR "Lifetime value" <> 500)"#,
    );
    both(c(Gt, Some(json!(500.5))), r#""Lifetime value" > 500.5"#);
    both(c(Gte, Some(json!("-3"))), r#""Lifetime value" >= -3"#);
    both(c(Lt, Some(json!("0.25"))), r#""Lifetime value" < 0.25"#);
    both(cond("orders", Lte, Some(json!(2))), r#""orders" <= 2"#);
    both(
        c(Between, Some(json!([10, "99.5"]))),
        r#"("Lifetime value" >= 10 AND "Lifetime value" <= 99.5)"#,
    );
    both(c(IsEmpty, None), r#""Lifetime value" IS NULL"#);
    both(c(IsNotEmpty, None), r#""Lifetime value" IS NOT NULL"#);
    assert!(refused(c(Gt, Some(json!("1,5")))).contains("expected a number, got \"1,5\""));
    assert!(refused(c(Gt, Some(json!("NaN")))).contains("expected a number"));
    assert!(refused(c(Between, Some(json!([5, 1])))).contains("the first is the larger"));
}

#[test]
fn absolute_dates() {
    use Op::*;
    let c = |op, v| cond("last order", op, v);
    both(
        c(On, Some(json!("2024-02-29"))),
        r#"("last order" >= '2024-02-29' AND "last order" < '2024-03-01')"#,
    );
    both(
        c(Before, Some(json!("2024-01-01"))),
        r#""last order" < '2024-01-01'"#,
    );
    both(
        c(After, Some(json!("2024-12-31"))),
        r#""last order" >= '2025-01-01'"#,
    );
    both(
        cond(
            "seen_at",
            Between,
            Some(json!(["2024-01-01", "2024-01-31"])),
        ),
        r#"("seen_at" >= '2024-01-01' AND "seen_at" < '2024-02-01')"#,
    );
    assert!(refused(c(On, Some(json!("31/12/2024")))).contains("expected a date as YYYY-MM-DD"));
    assert!(refused(c(Between, Some(json!(["2024-02-01", "2024-01-01"])))).contains("the later"));
}

#[test]
fn relative_dates_are_left_to_the_database() {
    let span = |n, unit: &str| Some(json!({"amount": n, "unit": unit}));
    let r = cond("last order", Op::InLast, span(90, "days"));
    assert_eq!(
        sql(&r, Dialect::Sqlite),
        r#"("last order" >= date('now', '-90 days') AND "last order" < date('now', '+1 days'))"#
    );
    assert_eq!(
        sql(&r, Dialect::Postgres),
        r#"("last order" >= (CURRENT_DATE - INTERVAL '90 days') AND "last order" < (CURRENT_DATE + INTERVAL '1 days'))"#
    );
    let r = cond("last order", Op::MoreThanAgo, span(2, "weeks"));
    assert_eq!(
        sql(&r, Dialect::Sqlite),
        r#""last order" < date('now', '-14 days')"#
    );
    assert_eq!(
        sql(&r, Dialect::Postgres),
        r#""last order" < (CURRENT_DATE - INTERVAL '14 days')"#
    );
    let r = cond("seen_at", Op::InNext, span(1, "months"));
    assert_eq!(
        sql(&r, Dialect::Sqlite),
        r#"("seen_at" >= date('now') AND "seen_at" < date('now', '+1 months', '+1 days'))"#
    );
    assert_eq!(
        sql(&r, Dialect::Postgres),
        r#"("seen_at" >= CURRENT_DATE AND "seen_at" < (CURRENT_DATE + INTERVAL '1 months' + INTERVAL '1 days'))"#
    );
    let r = cond("last order", Op::InLast, span(1, "year"));
    assert!(sql(&r, Dialect::Sqlite).contains("date('now', '-1 years')"));
    assert!(refused(cond("last order", Op::InLast, span(0, "days"))).contains("from 1 to"));
    assert!(
        refused(cond("last order", Op::InLast, span(3, "fortnights"))).contains("unknown unit")
    );
    assert!(refused(cond("last order", Op::InLast, Some(json!(90)))).contains("needs a span"));
}

#[test]
fn boolean_operators() {
    both(cond("vip", Op::IsTrue, None), r#""vip" = TRUE"#);
    both(cond("vip", Op::IsFalse, None), r#""vip" = FALSE"#);
    both(cond("vip", Op::IsEmpty, None), r#""vip" IS NULL"#);
    assert!(refused(cond("vip", Op::IsTrue, Some(json!(1)))).contains("takes no value"));
}

#[test]
fn groups_not_and_raw_sql() {
    let rule = Rule::All(vec![
        cond("country", Op::Is, Some(json!("RO"))),
        Rule::Any(vec![
            cond("orders", Op::Gt, Some(json!(3))),
            Rule::Sql("\"Lifetime value\" > 100 -- big".into()),
        ]),
        Rule::Not(Box::new(cond("vip", Op::IsTrue, None))),
    ]);
    both(
        rule,
        "(\"country\" = 'RO' AND (\"orders\" > 3 OR (\n\"Lifetime value\" > 100 -- big\n)) AND NOT COALESCE(\"vip\" = TRUE, FALSE))",
    );
    both(
        Rule::Any(vec![cond("orders", Op::Gt, Some(json!(3)))]),
        r#""orders" > 3"#,
    );
}

#[test]
fn mistakes_say_where_and_what() {
    let rule = Rule::All(vec![
        cond("country", Op::Is, Some(json!("RO"))),
        Rule::Any(vec![cond("country", Op::Gt, Some(json!(3)))]),
    ]);
    assert_eq!(
        refused(rule),
        "rule, at all[1].any[0] (condition on \"country\"): \"gt\" does not apply to a text column (it takes is, is_not, one_of, none_of, contains, not_contains, starts_with, ends_with, is_empty, is_not_empty)"
    );
    assert_eq!(
        refused(cond("nope", Op::Is, Some(json!("x")))),
        "rule, at condition on \"nope\": no column named \"nope\" (columns: country, Lifetime value, orders, last order, seen_at, vip, prefs, we\"ird)"
    );
    assert!(refused(cond("prefs", Op::IsEmpty, None)).contains("nested values (JSON)"));
    assert!(refused(Rule::All(vec![])).contains("an empty AND group"));
    assert!(refused(Rule::Sql("  ".into())).contains("the SQL condition is empty"));
    assert!(refused(cond("country", Op::Is, None)).contains("\"is\" needs a value"));
    assert!(
        refused(cond("country", Op::OneOf, Some(json!([])))).contains("list of values is empty")
    );
    let mut deep = cond("vip", Op::IsTrue, None);
    for _ in 0..20 {
        deep = Rule::Not(Box::new(deep));
    }
    assert!(refused(deep).contains("nested deeper than"));
}

#[test]
fn rules_read_from_json_say_where_they_are_wrong() {
    let r = crate::rules::parse(
        r#"{"all":[{"condition":{"column":"country","op":"is","value":"RO"}},{"not":{"sql":"1 = 1"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        crate::rules::parse(&crate::rules::to_json(&r)).unwrap(),
        r,
        "round trip"
    );
    let e =
        crate::rules::parse(r#"{"all":[{"condition":{"column":"c","op":"bigger"}}]}"#).unwrap_err();
    assert!(
        e.starts_with("rule, at all[0].condition.op: unknown variant `bigger`"),
        "{e}"
    );
}

#[test]
fn mysql_quotes_with_backticks_and_doubles_backslashes() {
    let c = |column: &str, op, v| {
        compile(&cond(column, op, v), &columns(), Dialect::MySql).unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        c("we\"ird", Op::Is, Some(json!(r"O'B\x"))),
        r#"`we"ird` = CAST('O''B\\x' AS BINARY)"#
    );
    assert_eq!(
        c("last order", Op::InLast, Some(json!({"amount": 2, "unit": "weeks"}))),
        "(`last order` >= (CURRENT_DATE - INTERVAL 14 DAY) AND `last order` < (CURRENT_DATE + INTERVAL 1 DAY))"
    );
    assert_eq!(
        c("seen_at", Op::InNext, Some(json!({"amount": 3, "unit": "months"}))),
        "(`seen_at` >= CURRENT_DATE AND `seen_at` < (CURRENT_DATE + INTERVAL 3 MONTH + INTERVAL 1 DAY))"
    );
    assert_eq!(
        c("country", Op::Contains, Some(json!("50%"))),
        "lower(`country`) LIKE '%50!%%' ESCAPE '!'"
    );
}
