//! Column statistics for the segment builder's value pickers: the most frequent values of
//! text (and boolean) columns, the minimum, maximum and percentiles of numbers, the earliest
//! and latest dates. Gathered in one pass over the profiles (fed row by row); memory stays
//! bounded for text (at most [`MAX_DISTINCT`] values are counted per column) and holds one
//! float per profile per number column.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Kind;
use crate::profiles::{Column, ColumnType};

/// Distinct values counted per text column; values first seen after that are not counted.
pub const MAX_DISTINCT: usize = 10_000;
/// Most frequent values reported per column.
pub const TOP: usize = 20;
/// The percentiles reported for number columns.
pub const PERCENTILES: [u8; 5] = [10, 25, 50, 75, 90];

/// What one column holds.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ColumnStats {
    pub name: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub column_type: &'static str,
    /// The builder's kind (absent: nested JSON values, for SQL conditions only).
    pub kind: Option<Kind>,
    /// Profiles with a value.
    pub values: u64,
    /// Profiles without one.
    pub empty: u64,
    /// Distinct values (text and booleans; at least this many when `distinct_capped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub distinct_capped: bool,
    /// The most frequent values, most frequent first (text and booleans).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopValue>,
    /// The smallest and largest value (numbers and dates).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub min: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub max: Option<Value>,
    /// Numbers: the 10th, 25th, 50th, 75th and 90th percentiles (nearest rank).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percentiles: Vec<Percentile>,
}

/// A value as a column holds it, as the OpenAPI document describes [`TopValue::value`].
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only described, never built.
pub enum ColumnValue {
    Text(String),
    Number(f64),
    Boolean(bool),
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TopValue {
    /// The value as the column holds it: text, a number or a boolean.
    #[schema(value_type = ColumnValue)]
    pub value: Value,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Percentile {
    pub p: u8,
    pub value: f64,
}

/// Statistics being gathered, one accumulator per column.
pub struct Gatherer {
    columns: Vec<Acc>,
}

struct Acc {
    column: Column,
    kind: Option<Kind>,
    values: u64,
    empty: u64,
    counts: HashMap<String, u64>,
    capped: bool,
    numbers: Vec<f64>,
    min: Option<Value>,
    max: Option<Value>,
}

impl Gatherer {
    pub fn new(columns: &[Column]) -> Gatherer {
        Gatherer {
            columns: columns
                .iter()
                .map(|c| Acc {
                    column: c.clone(),
                    kind: Kind::of(c.kind),
                    values: 0,
                    empty: 0,
                    counts: HashMap::new(),
                    capped: false,
                    numbers: Vec::new(),
                    min: None,
                    max: None,
                })
                .collect(),
        }
    }

    /// One profile's values, in the order of the columns given to [`Gatherer::new`].
    pub fn add(&mut self, values: &[Value]) {
        for (acc, v) in self.columns.iter_mut().zip(values) {
            acc.add(v);
        }
    }

    pub fn finish(self) -> Vec<ColumnStats> {
        self.columns.into_iter().map(Acc::finish).collect()
    }
}

impl Acc {
    fn add(&mut self, v: &Value) {
        let blank = matches!(v, Value::Null) || v.as_str().is_some_and(|s| s.is_empty());
        if blank {
            self.empty += 1;
            return;
        }
        self.values += 1;
        match self.kind {
            Some(Kind::Number) => {
                if let Some(f) = v.as_f64() {
                    self.numbers.push(f);
                }
            }
            Some(Kind::Date) => {
                if let Some(s) = v.as_str() {
                    let s = Value::String(s.to_string());
                    if self.min.as_ref().is_none_or(|m| s.as_str() < m.as_str()) {
                        self.min = Some(s.clone());
                    }
                    if self.max.as_ref().is_none_or(|m| s.as_str() > m.as_str()) {
                        self.max = Some(s);
                    }
                }
            }
            Some(Kind::Text) | Some(Kind::Boolean) => {
                let key = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(n) = self.counts.get_mut(&key) {
                    *n += 1;
                } else if self.counts.len() < MAX_DISTINCT {
                    self.counts.insert(key, 1);
                } else {
                    self.capped = true;
                }
            }
            None => {}
        }
    }

    fn finish(mut self) -> ColumnStats {
        let counted = matches!(self.kind, Some(Kind::Text) | Some(Kind::Boolean));
        let mut top: Vec<(String, u64)> = self.counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let distinct = counted.then_some(top.len() as u64);
        top.truncate(TOP);
        let boolean = self.column.kind == ColumnType::Boolean;
        let top = top
            .into_iter()
            .map(|(value, count)| TopValue {
                value: if boolean {
                    Value::Bool(value == "true")
                } else {
                    Value::String(value)
                },
                count,
            })
            .collect();
        let mut percentiles = Vec::new();
        if !self.numbers.is_empty() {
            self.numbers.sort_by(f64::total_cmp);
            let n = self.numbers.len();
            self.min = Some(number(self.numbers[0]));
            self.max = Some(number(self.numbers[n - 1]));
            percentiles = PERCENTILES
                .iter()
                .map(|&p| Percentile {
                    p,
                    value: self.numbers[nearest_rank(p, n)],
                })
                .collect();
        }
        ColumnStats {
            name: self.column.name,
            column_type: self.column.kind.as_str(),
            kind: self.kind,
            values: self.values,
            empty: self.empty,
            distinct,
            distinct_capped: self.capped,
            top,
            min: self.min,
            max: self.max,
            percentiles,
        }
    }
}

/// The index of the `p`th percentile among `n` sorted values (nearest rank: the smallest
/// value with at least p% of the values at or below it).
fn nearest_rank(p: u8, n: usize) -> usize {
    let rank = (p as usize * n).div_ceil(100);
    rank.clamp(1, n) - 1
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(name: &str, kind: ColumnType) -> Column {
        Column {
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn text_numbers_dates_and_booleans() {
        let mut g = Gatherer::new(&[
            col("country", ColumnType::Text),
            col("ltv", ColumnType::Real),
            col("last", ColumnType::Date),
            col("vip", ColumnType::Boolean),
        ]);
        for i in 1..=10 {
            let country = match i % 3 {
                0 => json!("RO"),
                1 => json!("FR"),
                _ => json!(null),
            };
            let last = if i == 4 {
                json!("")
            } else {
                json!(format!("2024-01-{i:02}"))
            };
            g.add(&[country, json!(i as f64 * 10.0), last, json!(i % 2 == 0)]);
        }
        let s = g.finish();
        assert_eq!(s[0].kind, Some(Kind::Text));
        assert_eq!((s[0].values, s[0].empty, s[0].distinct), (7, 3, Some(2)));
        assert_eq!(
            s[0].top,
            vec![
                TopValue {
                    value: json!("FR"),
                    count: 4
                },
                TopValue {
                    value: json!("RO"),
                    count: 3
                }
            ]
        );
        assert_eq!(
            (s[1].min.clone(), s[1].max.clone()),
            (Some(json!(10)), Some(json!(100)))
        );
        let p: Vec<(u8, f64)> = s[1].percentiles.iter().map(|p| (p.p, p.value)).collect();
        assert_eq!(
            p,
            vec![(10, 10.0), (25, 30.0), (50, 50.0), (75, 80.0), (90, 90.0)]
        );
        assert_eq!(s[2].min, Some(json!("2024-01-01")));
        assert_eq!(s[2].max, Some(json!("2024-01-10")));
        assert_eq!(s[2].empty, 1);
        assert_eq!(s[3].top.len(), 2);
        assert_eq!(s[3].top[0].value, json!(false));
    }

    #[test]
    fn distinct_text_values_are_capped() {
        let mut g = Gatherer::new(&[col("email", ColumnType::Text)]);
        for i in 0..MAX_DISTINCT + 5 {
            g.add(&[json!(format!("v{i}"))]);
        }
        g.add(&[json!("v0")]);
        let s = g.finish();
        assert!(s[0].distinct_capped);
        assert_eq!(s[0].distinct, Some(MAX_DISTINCT as u64));
        assert_eq!(s[0].top.len(), TOP);
        assert_eq!(
            s[0].top[0],
            TopValue {
                value: json!("v0"),
                count: 2
            }
        );
    }
}
