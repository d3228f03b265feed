//! Statements that write many rows at once: `VALUES` lists of typed placeholders, portable
//! between SQLite and PostgreSQL. On PostgreSQL every statement is a round trip, so a group
//! commit of hundreds of rows written one statement each spent most of its time waiting.

/// Column types as both engines spell them in `CAST`.
pub(super) const TEXT: &str = "TEXT";
pub(super) const BIGINT: &str = "BIGINT";

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `$first, $first+1, ...`: `count` placeholders for an `IN (...)` list.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(CAST($1 AS T1), ..., CAST($k AS Tk)), (...)`: `rows` rows of `types.len()` placeholders,
/// numbered in order from $1. The casts give every column its type (a NULL bound alone
/// has none on PostgreSQL).
pub(super) fn values(rows: usize, types: &[&str]) -> String {
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
            sql.push_str(&format!("CAST(${} AS {ty})", row * types.len() + i + 1));
        }
        sql.push(')');
    }
    sql
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
            values(2, &[TEXT, BIGINT]),
            "(CAST($1 AS TEXT), CAST($2 AS BIGINT)), (CAST($3 AS TEXT), CAST($4 AS BIGINT))"
        );
    }
}
