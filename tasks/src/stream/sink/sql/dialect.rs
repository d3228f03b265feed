//! The SQL text a sink sends, for PostgreSQL or MySQL/MariaDB: quoting, column types,
//! placeholders, `CREATE TABLE IF NOT EXISTS` and multi-row upserts.

use crate::stream::SqlKind;

/// What a column holds; each dialect names its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnType {
    /// A primary key of text (MySQL needs a length there).
    Key,
    /// A short name inside a primary key (group id, table, topic).
    Name,
    Text,
    BigInt,
    Double,
    Bool,
    Time,
    Json,
}

/// A column of a table the sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub name: String,
    pub ty: ColumnType,
}

impl Column {
    pub(super) fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Self {
            name: name.into(),
            ty,
        }
    }
}

/// A table: its columns and the ones forming the primary key (the upsert target).
#[derive(Debug, Clone)]
pub(super) struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dialect(pub SqlKind);

impl Dialect {
    pub(super) fn quote(self, name: &str) -> String {
        match self.0 {
            SqlKind::Postgres => format!("\"{name}\""),
            SqlKind::Mysql => format!("`{name}`"),
        }
    }

    /// A table name, `name` or `schema.name`, each part quoted.
    pub(super) fn quote_table(self, table: &str) -> String {
        table
            .split('.')
            .map(|part| self.quote(part))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn type_name(self, ty: ColumnType) -> &'static str {
        use ColumnType::*;
        match (self.0, ty) {
            (SqlKind::Postgres, Key | Name | Text) => "TEXT",
            (SqlKind::Postgres, Double) => "DOUBLE PRECISION",
            (SqlKind::Postgres, Time) => "TIMESTAMPTZ",
            (SqlKind::Postgres, Json) => "JSONB",
            // utf8mb4 keys may take 3072 bytes: 700 + 3 x 255 characters fit.
            (SqlKind::Mysql, Key) => "VARCHAR(700)",
            (SqlKind::Mysql, Name) => "VARCHAR(255)",
            (SqlKind::Mysql, Text) => "TEXT",
            (SqlKind::Mysql, Double) => "DOUBLE",
            (SqlKind::Mysql, Time) => "DATETIME(3)",
            (SqlKind::Mysql, Json) => "JSON",
            (_, BigInt) => "BIGINT",
            (_, Bool) => "BOOLEAN",
        }
    }

    /// The `n`th (from 1) parameter of a statement, for a column of type `ty`.
    fn placeholder(self, n: usize, ty: ColumnType) -> String {
        match (self.0, ty) {
            (SqlKind::Postgres, ColumnType::Json) => format!("${n}::jsonb"),
            (SqlKind::Postgres, _) => format!("${n}"),
            (SqlKind::Mysql, _) => "?".into(),
        }
    }

    pub(super) fn create_table(self, table: &TableSpec) -> String {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let not_null = if table.primary_key.contains(&c.name.as_str()) {
                    " NOT NULL"
                } else {
                    ""
                };
                format!("{} {}{not_null}", self.quote(&c.name), self.type_name(c.ty))
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.quote_table(&table.name),
            columns.join(", "),
            self.quoted_list(table.primary_key.iter().copied())
        )
    }

    /// An insert of `rows` rows that replaces the non-key columns of rows already there.
    pub(super) fn upsert(self, table: &TableSpec, rows: usize) -> String {
        let width = table.columns.len();
        let tuples: Vec<String> = (0..rows)
            .map(|row| {
                let values: Vec<String> = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.placeholder(row * width + i + 1, c.ty))
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        let updated = table
            .columns
            .iter()
            .filter(|c| !table.primary_key.contains(&c.name.as_str()));
        let assignments: Vec<String> = updated
            .map(|c| {
                let column = self.quote(&c.name);
                match self.0 {
                    SqlKind::Postgres => format!("{column} = EXCLUDED.{column}"),
                    SqlKind::Mysql => format!("{column} = VALUES({column})"),
                }
            })
            .collect();
        let conflict = match self.0 {
            SqlKind::Postgres => format!(
                "ON CONFLICT ({}) DO UPDATE SET",
                self.quoted_list(table.primary_key.iter().copied())
            ),
            SqlKind::Mysql => "ON DUPLICATE KEY UPDATE".into(),
        };
        format!(
            "INSERT INTO {} ({}) VALUES {} {conflict} {}",
            self.quote_table(&table.name),
            self.quoted_list(table.columns.iter().map(|c| c.name.as_str())),
            tuples.join(", "),
            assignments.join(", ")
        )
    }

    /// `SELECT columns FROM table WHERE a = ? AND b = ?`.
    pub(super) fn select(self, table: &str, columns: &[&str], filters: &[&str]) -> String {
        let conditions: Vec<String> = filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                format!(
                    "{} = {}",
                    self.quote(f),
                    self.placeholder(i + 1, ColumnType::Text)
                )
            })
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}",
            self.quoted_list(columns.iter().copied()),
            self.quote_table(table)
        );
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql
    }

    /// The query of a table's column names, and its parameters: the schema (database) and
    /// table of `schema.name`, or the table of `name` in the current one.
    pub(super) fn columns_of(self, table: &str) -> (String, Vec<String>) {
        let column = match self.0 {
            SqlKind::Postgres => "column_name::text",
            SqlKind::Mysql => "CAST(column_name AS CHAR)",
        };
        let (schema, params) = match (table.split_once('.'), self.0) {
            (Some((schema, name)), _) => (
                self.placeholder(1, ColumnType::Text),
                vec![schema.to_owned(), name.to_owned()],
            ),
            (None, SqlKind::Postgres) => ("current_schema()".into(), vec![table.to_owned()]),
            (None, SqlKind::Mysql) => ("DATABASE()".into(), vec![table.to_owned()]),
        };
        let name = self.placeholder(params.len(), ColumnType::Text);
        let sql = format!(
            "SELECT {column} FROM information_schema.columns WHERE table_schema = {schema} AND table_name = {name}"
        );
        (sql, params)
    }

    fn quoted_list<'a>(self, names: impl Iterator<Item = &'a str>) -> String {
        names.map(|n| self.quote(n)).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets() -> TableSpec {
        TableSpec {
            name: "offsets".into(),
            columns: vec![
                Column::new("group_id", ColumnType::Name),
                Column::new("next_offset", ColumnType::BigInt),
                Column::new("state", ColumnType::Json),
            ],
            primary_key: vec!["group_id"],
        }
    }

    #[test]
    fn postgres_upserts_with_numbered_parameters() {
        let sql = Dialect(SqlKind::Postgres).upsert(&offsets(), 2);
        assert_eq!(
            sql,
            r#"INSERT INTO "offsets" ("group_id", "next_offset", "state") VALUES ($1, $2, $3::jsonb), ($4, $5, $6::jsonb) ON CONFLICT ("group_id") DO UPDATE SET "next_offset" = EXCLUDED."next_offset", "state" = EXCLUDED."state""#
        );
    }

    #[test]
    fn a_table_in_a_schema_is_quoted_and_looked_up_there() {
        let table = TableSpec {
            name: "analytics.counts".into(),
            ..offsets()
        };
        let create = Dialect(SqlKind::Postgres).create_table(&table);
        assert!(
            create.starts_with(r#"CREATE TABLE IF NOT EXISTS "analytics"."counts" ("#),
            "{create}"
        );
        let select = Dialect(SqlKind::Mysql).select(&table.name, &["state"], &[]);
        assert_eq!(select, "SELECT `state` FROM `analytics`.`counts`");
        let (sql, params) = Dialect(SqlKind::Postgres).columns_of(&table.name);
        assert!(
            sql.contains("table_schema = $1 AND table_name = $2"),
            "{sql}"
        );
        assert_eq!(params, ["analytics", "counts"]);
        let (sql, params) = Dialect(SqlKind::Mysql).columns_of("counts");
        assert!(sql.contains("table_schema = DATABASE()"), "{sql}");
        assert_eq!(params, ["counts"]);
    }

    #[test]
    fn mysql_upserts_on_duplicate_keys() {
        let sql = Dialect(SqlKind::Mysql).upsert(&offsets(), 1);
        assert_eq!(
            sql,
            "INSERT INTO `offsets` (`group_id`, `next_offset`, `state`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE `next_offset` = VALUES(`next_offset`), `state` = VALUES(`state`)"
        );
        assert_eq!(
            Dialect(SqlKind::Mysql).create_table(&offsets()),
            "CREATE TABLE IF NOT EXISTS `offsets` (`group_id` VARCHAR(255) NOT NULL, `next_offset` BIGINT, `state` JSON, PRIMARY KEY (`group_id`))"
        );
    }
}
