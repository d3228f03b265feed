//! Statements that write many rows at once: `VALUES` lists of typed placeholders, portable
//! between SQLite and PostgreSQL. On PostgreSQL every statement is a round trip, so a group
//! commit of hundreds of rows written one statement each spent most of its time waiting.

/// Column types as both engines spell them in `CAST`.
pub(super) const TEXT: &str = "TEXT";
pub(super) const BIGINT: &str = "BIGINT";

use std::sync::OnceLock;

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `$first, $first+1, ...`: `count` placeholders for an `IN (...)` list.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How an engine numbers placeholders. SQLite looks each `$N` up by name in a list, at
/// prepare and again at every bind (sqlx asks each parameter's name), so a statement of
/// 4,608 `$N` cost as much as 40 single-row updates; a plain `?` is a number without a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(super) fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }
}

/// `(CAST($1 AS T1), ..., CAST($k AS Tk)), (...)`: `rows` rows of `types.len()` placeholders,
/// numbered in order from $1 (plain `?` in the same order on SQLite). The casts give every
/// column its type (a NULL bound alone has none on PostgreSQL).
pub(super) fn values(rows: usize, types: &[&str], dialect: Dialect) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(rows * types.len() * 20);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, ty) in types.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = match dialect {
                Dialect::Postgres => write!(sql, "CAST(${} AS {ty})", row * types.len() + i + 1),
                Dialect::Sqlite => write!(sql, "CAST(? AS {ty})"),
            };
        }
        sql.push(')');
    }
    sql
}

/// The texts of one bulk statement for every power-of-two row count up to 512 and both
/// dialects, each built on first use and kept: batches are padded to a power of two, so a
/// few texts (each prepared once per connection) serve every batch size.
pub(super) struct BulkStatement {
    types: &'static [&'static str],
    /// The statement around its `VALUES` list.
    build: fn(&str) -> String,
    texts: [[OnceLock<String>; 10]; 2],
}

impl BulkStatement {
    pub(super) const fn new(types: &'static [&'static str], build: fn(&str) -> String) -> Self {
        Self {
            types,
            build,
            texts: [const { [const { OnceLock::new() }; 10] }; 2],
        }
    }

    /// The text for `rows` (a power of two, at most 512) rows.
    pub(super) fn text(&'static self, dialect: Dialect, rows: usize) -> &'static str {
        debug_assert!(rows.is_power_of_two() && rows <= 512);
        let slot = &self.texts[dialect as usize][rows.trailing_zeros() as usize];
        slot.get_or_init(|| (self.build)(&values(rows, self.types, dialect)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_start_where_asked() {
        assert_eq!(placeholders(3, 2), "$3, $4");
    }

    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(
            values(2, &[TEXT, BIGINT], Dialect::Postgres),
            "(CAST($1 AS TEXT), CAST($2 AS BIGINT)), (CAST($3 AS TEXT), CAST($4 AS BIGINT))"
        );
        assert_eq!(
            values(2, &[TEXT, BIGINT], Dialect::Sqlite),
            "(CAST(? AS TEXT), CAST(? AS BIGINT)), (CAST(? AS TEXT), CAST(? AS BIGINT))"
        );
    }
}
