//! Statements built at run time for PostgreSQL: arguments numbered as they
//! are added, and the embedded store's statements (`?` placeholders,
//! SQLite values) carried over, so both stores filter with one text.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;

/// One argument of a statement built at run time.
pub(super) enum Arg {
    Text(String),
    Float(f64),
    Int(i64),
    Null,
}

/// A statement's text and its arguments, numbered as they are added.
#[derive(Default)]
pub(super) struct Statement {
    args: Vec<Arg>,
}

impl Statement {
    /// Adds `arg` and gives its placeholder.
    pub(super) fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub(super) fn query<'q>(&'q self, sql: &'q str) -> Query<'q, sqlx::Postgres, PgArguments> {
        self.args.iter().fold(sqlx::query(sql), |query, arg| match arg {
            Arg::Text(text) => query.bind(text.as_str()),
            Arg::Float(value) => query.bind(*value),
            Arg::Int(value) => query.bind(*value),
            Arg::Null => query.bind(None::<String>),
        })
    }
}

impl Statement {
    /// `sql`'s `?` placeholders numbered as PostgreSQL's, with `args` bound
    /// to them in order. The text must hold no `?` but placeholders (the
    /// embedded store's generated filters hold none).
    pub(super) fn carried(&mut self, sql: &str, args: Vec<rusqlite::types::Value>) -> String {
        let mut args = args.into_iter();
        let mut text = String::with_capacity(sql.len() + 8);
        for c in sql.chars() {
            if c != '?' {
                text.push(c);
                continue;
            }
            let arg = match args.next() {
                Some(rusqlite::types::Value::Integer(value)) => Arg::Int(value),
                Some(rusqlite::types::Value::Real(value)) => Arg::Float(value),
                Some(rusqlite::types::Value::Text(value)) => Arg::Text(value),
                Some(rusqlite::types::Value::Null | rusqlite::types::Value::Blob(_)) | None => Arg::Null,
            };
            text.push_str(&self.bind(arg));
        }
        text
    }
}
