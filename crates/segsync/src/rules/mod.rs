//! Segment rules: the structured form of a segment's condition that the segment builder, the
//! API and `segsync apply` speak (conditions on one column each, AND/OR groups, NOT, and a
//! raw SQL condition for data teams), and its compiler to the SQL predicate the engine runs.
//!
//! Pure: no I/O. The compiler is given the profile columns (with their types) and the SQL
//! dialect of the profiles (SQLite for the embedded store, PostgreSQL for a PostgreSQL
//! source); the SQL it writes is then checked and counted where the profiles are, like any
//! predicate. [`stats`] summarises column values for the builder's pickers; [`sizes`] counts
//! the distinct members chosen segments give, as the engine merges them.
//!
//! ```json
//! {"all": [
//!   {"condition": {"column": "country", "op": "one_of", "value": ["RO", "FR"]}},
//!   {"condition": {"column": "last order", "op": "in_last", "value": {"amount": 90, "unit": "days"}}},
//!   {"not": {"condition": {"column": "unsubscribed", "op": "is_true"}}}
//! ]}
//! ```

mod compile;
pub mod sizes;
pub mod stats;

pub use compile::{compile, Dialect};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::profiles::ColumnType;

/// A segment rule: a condition, a group of rules, a negation, or raw SQL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schema(no_recursion)]
pub enum Rule {
    /// Every rule in the list holds (AND).
    All(Vec<Rule>),
    /// At least one rule in the list holds (OR).
    Any(Vec<Rule>),
    /// The rule does not hold: profiles for which it is false or cannot be told (a value
    /// missing).
    Not(Box<Rule>),
    /// A condition on one profile column.
    Condition(Condition),
    /// A SQL boolean expression over the profile columns, as written by a data team.
    Sql(String),
}

/// A condition on one column: `column op value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub column: String,
    pub op: Op,
    /// What `op` compares with: text (a string), a number, a date (`YYYY-MM-DD`), a list
    /// (`one_of`, `none_of`), a pair `[low, high]` (`between`, both included), or a relative
    /// span `{"amount": 90, "unit": "days"}` (`in_last`, `more_than_ago`, `in_next`); absent
    /// for `is_true`, `is_false`, `is_empty`, `is_not_empty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<serde_json::Value>,
}

/// An operator. Which apply depends on the column's kind (see [`Kind::ops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    // Text.
    Is,
    IsNot,
    OneOf,
    NoneOf,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    // Numbers.
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    // Numbers and dates.
    Between,
    // Dates.
    On,
    Before,
    After,
    InLast,
    MoreThanAgo,
    InNext,
    // Booleans.
    IsTrue,
    IsFalse,
    // Any kind.
    IsEmpty,
    IsNotEmpty,
}

impl Op {
    /// Its name as written in rules (`one_of`).
    pub fn as_str(self) -> &'static str {
        use Op::*;
        match self {
            Is => "is",
            IsNot => "is_not",
            OneOf => "one_of",
            NoneOf => "none_of",
            Contains => "contains",
            NotContains => "not_contains",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
            Eq => "eq",
            Ne => "ne",
            Gt => "gt",
            Gte => "gte",
            Lt => "lt",
            Lte => "lte",
            Between => "between",
            On => "on",
            Before => "before",
            After => "after",
            InLast => "in_last",
            MoreThanAgo => "more_than_ago",
            InNext => "in_next",
            IsTrue => "is_true",
            IsFalse => "is_false",
            IsEmpty => "is_empty",
            IsNotEmpty => "is_not_empty",
        }
    }
}

/// What a column holds, as the builder sees it: its operators and pickers follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Text,
    Number,
    Date,
    Boolean,
}

impl Kind {
    /// The kind of a column type; `None` for nested JSON values, which only raw SQL reads.
    pub fn of(t: ColumnType) -> Option<Kind> {
        match t {
            ColumnType::Text => Some(Kind::Text),
            ColumnType::Integer | ColumnType::Real => Some(Kind::Number),
            ColumnType::Date | ColumnType::Timestamp => Some(Kind::Date),
            ColumnType::Boolean => Some(Kind::Boolean),
            ColumnType::Json => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Number => "number",
            Kind::Date => "date",
            Kind::Boolean => "boolean",
        }
    }

    /// The operators that apply to this kind, in the order the builder offers them.
    pub fn ops(self) -> &'static [Op] {
        use Op::*;
        match self {
            Kind::Text => &[
                Is,
                IsNot,
                OneOf,
                NoneOf,
                Contains,
                NotContains,
                StartsWith,
                EndsWith,
                IsEmpty,
                IsNotEmpty,
            ],
            Kind::Number => &[Eq, Ne, Gt, Gte, Lt, Lte, Between, IsEmpty, IsNotEmpty],
            Kind::Date => &[
                InLast,
                MoreThanAgo,
                InNext,
                On,
                Before,
                After,
                Between,
                IsEmpty,
                IsNotEmpty,
            ],
            Kind::Boolean => &[IsTrue, IsFalse, IsEmpty, IsNotEmpty],
        }
    }
}

/// Why a rule cannot be compiled: where in the rule (`all[1].any[0]`) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            write!(f, "rule: {}", self.message)
        } else {
            write!(f, "rule, at {}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for RuleError {}

/// Reads a rule from JSON text (as stored next to a segment's SQL), with the place of a
/// mistake in the message.
pub fn parse(json: &str) -> Result<Rule, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("rule: {}", e.inner())
        } else {
            format!("rule, at {path}: {}", e.inner())
        }
    })
}

/// The rule as JSON text, to store next to its SQL.
pub fn to_json(rule: &Rule) -> String {
    serde_json::to_string(rule).expect("rules serialise")
}
