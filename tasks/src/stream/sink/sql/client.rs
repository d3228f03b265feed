//! One pool for either database, statements with typed parameters, and the two things the
//! sink does with them: run several in one transaction, and read rows back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{
    Database, Encode, Type,
    mysql::{MySqlPool, MySqlPoolOptions},
    postgres::{PgPool, PgPoolOptions},
    query::Query,
};

use crate::{TaskError, stream::SqlKind};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parameter or a value read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// How to read a column back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadAs {
    Text,
    Int,
    Float,
    Bool,
    Time,
}

/// SQL text and its parameters in order.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl Statement {
    pub(crate) fn new(sql: impl Into<String>, params: Vec<SqlValue>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

#[derive(Clone)]
pub(crate) enum SqlPool {
    Postgres(PgPool),
    Mysql(MySqlPool),
}

/// A database error as a task error, saying what was being done.
pub(super) fn failed(doing: &str, error: &sqlx::Error) -> TaskError {
    TaskError::Failed(format!("SQL sink: {doing}: {error}"))
}

impl SqlPool {
    pub(crate) async fn connect(kind: SqlKind, url: &str) -> Result<Self, TaskError> {
        let refused =
            |e: sqlx::Error| TaskError::Failed(format!("cannot connect to {}: {e}", redact(url)));
        Ok(match kind {
            SqlKind::Postgres => Self::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(url)
                    .await
                    .map_err(refused)?,
            ),
            SqlKind::Mysql => Self::Mysql(
                MySqlPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(url)
                    .await
                    .map_err(refused)?,
            ),
        })
    }

    /// Runs `statements` in order in one transaction: all of them take effect, or none.
    pub(crate) async fn transaction(&self, statements: &[Statement]) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for statement in statements {
                    prepare(statement).execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            Self::Mysql(pool) => {
                let mut tx = pool.begin().await?;
                for statement in statements {
                    prepare(statement).execute(&mut *tx).await?;
                }
                tx.commit().await
            }
        }
    }

    /// The rows `statement` selects, each column read as `columns` says.
    pub(crate) async fn fetch(
        &self,
        statement: &Statement,
        columns: &[ReadAs],
    ) -> Result<Vec<Vec<SqlValue>>, sqlx::Error> {
        match self {
            Self::Postgres(pool) => {
                let rows = prepare(statement).fetch_all(pool).await?;
                rows.iter().map(|row| read_row(row, columns)).collect()
            }
            Self::Mysql(pool) => {
                let rows = prepare(statement).fetch_all(pool).await?;
                rows.iter().map(|row| read_row(row, columns)).collect()
            }
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn prepare<DB>(statement: &Statement) -> Query<'_, DB, DB::Arguments>
where
    DB: Database,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<f64>: for<'t> Encode<'t, DB> + Type<DB>,
    bool: for<'t> Encode<'t, DB> + Type<DB>,
    DateTime<Utc>: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.clone()));
    for param in &statement.params {
        query = match param {
            SqlValue::Text(v) => query.bind(v.clone()),
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Float(v) => query.bind(*v),
            SqlValue::Bool(v) => query.bind(*v),
            SqlValue::Time(v) => query.bind(*v),
        };
    }
    query
}

fn read_row<R>(row: &R, columns: &[ReadAs]) -> Result<Vec<SqlValue>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + Type<R::Database>,
{
    columns
        .iter()
        .enumerate()
        .map(|(i, read)| {
            Ok(match read {
                ReadAs::Text => SqlValue::Text(row.try_get(i)?),
                ReadAs::Int => SqlValue::Int(row.try_get(i)?),
                ReadAs::Float => SqlValue::Float(row.try_get(i)?),
                ReadAs::Bool => SqlValue::Bool(row.try_get(i)?),
                ReadAs::Time => SqlValue::Time(row.try_get(i)?),
            })
        })
        .collect()
}
