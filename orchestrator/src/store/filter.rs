//! `WHERE` clauses built from optional filters, with their values bound in order: the list
//! queries of runs and task instances.

use super::{TimeRange, to_micros};

/// A value bound to a condition.
enum Value {
    Text(String),
    Int(i64),
}

/// Conditions joined by `AND`, numbered from `$1`.
#[derive(Default)]
pub(super) struct Conditions {
    clauses: Vec<String>,
    values: Vec<Value>,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Conditions {
    fn mark(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    /// `column IN (...)` unless `texts` is empty.
    pub(super) fn any_of(&mut self, column: &str, texts: impl IntoIterator<Item = String>) {
        let marks: Vec<String> = texts
            .into_iter()
            .map(|text| self.mark(Value::Text(text)))
            .collect();
        if !marks.is_empty() {
            self.clauses
                .push(format!("{column} IN ({})", marks.join(", ")));
        }
    }

    /// `column` (microseconds) within `range`.
    pub(super) fn within(&mut self, column: &str, range: TimeRange) {
        let (from, to) = (range.from.map(to_micros), range.to.map(to_micros));
        self.between(column, from, to);
    }

    /// `column` at least `from` and at most `to`, where given.
    pub(super) fn between(&mut self, column: &str, from: Option<i64>, to: Option<i64>) {
        for (bound, op) in [(from, ">="), (to, "<=")] {
            if let Some(bound) = bound {
                let mark = self.mark(Value::Int(bound));
                self.clauses.push(format!("{column} {op} {mark}"));
            }
        }
    }

    /// ` WHERE ...`, or nothing without conditions.
    pub(super) fn clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// ` WHERE first AND ...`: `first` (a join's condition, say) and these.
    pub(super) fn clause_with(&self, first: &str) -> String {
        let all: Vec<&str> = std::iter::once(first)
            .chain(self.clauses.iter().map(String::as_str))
            .collect();
        format!(" WHERE {}", all.join(" AND "))
    }

    /// `query` with the values bound, in order.
    pub(super) fn bind<'q>(&self, mut query: AnyQuery<'q>) -> AnyQuery<'q> {
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.clone()),
                Value::Int(number) => query.bind(*number),
            };
        }
        query
    }
}
