//! Where the control store's statements run: this node's SQLite file, or
//! the PostgreSQL every node shares (`control_store = "postgres"`). Each
//! statement is written once, in SQL both understand, with `?N`
//! parameters (PostgreSQL gets `$N`), and reads rows of [`Value`]s, so the
//! records mean the same on either.
//!
//! The store's interface is synchronous, as it was over SQLite, and it is
//! called from async handlers as well as from worker threads. PostgreSQL
//! statements run on the store's own runtime; a caller inside another
//! runtime hands its work to a scoped thread, since a runtime may not
//! block inside another.

use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Column as _, Row as _, TypeInfo as _};

use crate::control::ControlError;
use crate::source::postgres::{ServiceRuntime, connect_pool_waiting, service_runtime};

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// PostgreSQL types its parameters, so a null says what it stands for.
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Bool,
}

/// What may be bound to a statement.
pub trait ToValue {
    const KIND: Kind;
    fn to_value(&self) -> Value;
}

impl ToValue for i64 {
    const KIND: Kind = Kind::Int;
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

impl ToValue for u32 {
    const KIND: Kind = Kind::Int;
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for f64 {
    const KIND: Kind = Kind::Real;
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for bool {
    const KIND: Kind = Kind::Bool;
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

/// PostgreSQL's text cannot hold NUL, which a guest may put in the
/// message of a fault: both homes keep it as U+FFFD, so a record reads
/// the same wherever it is kept and never fails to be written.
impl ToValue for str {
    const KIND: Kind = Kind::Text;
    fn to_value(&self) -> Value {
        if self.contains('\0') { Value::Text(self.replace('\0', "\u{FFFD}")) } else { Value::Text(self.to_string()) }
    }
}

impl ToValue for String {
    const KIND: Kind = Kind::Text;
    fn to_value(&self) -> Value {
        self.as_str().to_value()
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    const KIND: Kind = T::KIND;
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    const KIND: Kind = T::KIND;
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null(T::KIND), ToValue::to_value)
    }
}

/// The values of a statement's `?1`, `?2`, … in order.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::control_sql::ToValue::to_value(&$value)),*]
    };
}
pub(crate) use args;

/// What a column may be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(n) => Ok(*n),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl FromValue for u32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let n = i64::from_value(value)?;
        u32::try_from(n).map_err(|_| format!("{n} is out of range"))
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(x) => Ok(*x),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(n) => Ok(*n as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Int(n) => Ok(*n != 0),
            other => Err(format!("expected a truth value, found {other:?}")),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null(_) => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One row a statement read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `column` as it was read.
    pub fn value(&self, column: usize) -> Value {
        self.0.get(column).cloned().unwrap_or(Value::Null(Kind::Int))
    }

    pub fn get<T: FromValue>(&self, column: usize) -> Result<T, SqlError> {
        let value = self.0.get(column).ok_or(SqlError::Decode { column, message: "no such column".into() })?;
        T::from_value(value).map_err(|message| SqlError::Decode { column, message })
    }
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error("column {column}: {message}")]
    Decode { column: usize, message: String },
    #[error("the statement found no row")]
    NoRow,
    #[error("the PostgreSQL worker thread panicked")]
    Panicked,
    #[error("{0}")]
    Connect(String),
}

impl SqlError {
    /// Whether a row referred to one that is gone (a token of a tenant
    /// deleted meanwhile): a race another writer won, not a fault.
    pub fn is_foreign_key(&self) -> bool {
        match self {
            SqlError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            }
            SqlError::Postgres(sqlx::Error::Database(db)) => db.code().as_deref() == Some("23503"),
            _ => false,
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Real(x) => ToSqlOutput::Borrowed(ValueRef::Real(*x)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
        })
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> Result<Row, SqlError> {
    let mut values = Vec::with_capacity(columns);
    for column in 0..columns {
        values.push(match row.get_ref(column)? {
            ValueRef::Null => Value::Null(Kind::Int),
            ValueRef::Integer(n) => Value::Int(n),
            ValueRef::Real(x) => Value::Real(x),
            ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(_) => return Err(SqlError::Decode { column, message: "a blob".into() }),
        });
    }
    Ok(Row(values))
}

fn pg_row(row: &PgRow) -> Result<Row, SqlError> {
    let mut values = Vec::with_capacity(row.len());
    for (column, info) in row.columns().iter().enumerate() {
        let value = match info.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(column)?.map(Value::Int),
            "INT4" => row.try_get::<Option<i32>, _>(column)?.map(|n| Value::Int(i64::from(n))),
            "INT2" => row.try_get::<Option<i16>, _>(column)?.map(|n| Value::Int(i64::from(n))),
            "BOOL" => row.try_get::<Option<bool>, _>(column)?.map(Value::Bool),
            "FLOAT8" => row.try_get::<Option<f64>, _>(column)?.map(Value::Real),
            "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => row.try_get::<Option<String>, _>(column)?.map(Value::Text),
            other => return Err(SqlError::Decode { column, message: format!("type {other} is not read") }),
        };
        values.push(value.unwrap_or(Value::Null(Kind::Int)));
    }
    Ok(Row(values))
}

/// `?N` parameters as PostgreSQL's `$N`. The control store's statements
/// hold no `?` in their text but as parameters.
fn postgres_text(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A connection the control store's statements run on, for one call.
pub enum Db<'a> {
    Sqlite(&'a Connection),
    Postgres { handle: &'a tokio::runtime::Handle, conn: &'a mut sqlx::PgConnection },
}

impl Db<'_> {
    /// Runs a statement; the rows it changed.
    pub fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, SqlError> {
        match self {
            Db::Sqlite(conn) => {
                let changed = conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(args))?;
                Ok(u64::try_from(changed).unwrap_or(u64::MAX))
            }
            Db::Postgres { handle, conn } => {
                let text = postgres_text(sql);
                let query = bind(sqlx::query(&text), args);
                Ok(handle.block_on(query.execute(&mut **conn))?.rows_affected())
            }
        }
    }

    /// Every row a query reads, each turned into a `T` by `each`.
    pub fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        mut each: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let columns = statement.column_count();
                let mut rows = statement.query(rusqlite::params_from_iter(args))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(each(&sqlite_row(row, columns)?)?);
                }
                Ok(out)
            }
            Db::Postgres { handle, conn } => {
                let text = postgres_text(sql);
                let query = bind(sqlx::query(&text), args);
                let rows = handle.block_on(query.fetch_all(&mut **conn))?;
                rows.iter().map(|row| each(&pg_row(row)?)).collect()
            }
        }
    }

    /// The first row a query reads, if any.
    pub fn first<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        each: impl FnOnce(&Row) -> Result<T, SqlError>,
    ) -> Result<Option<T>, SqlError> {
        let found = self.rows(sql, args, |row| Ok(row.clone()))?;
        found.first().map(each).transpose()
    }

    /// The one row a query must read.
    pub fn one<T>(
        &mut self,
        sql: &str,
        args: &[Value],
        each: impl FnOnce(&Row) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.first(sql, args, each)?.ok_or(SqlError::NoRow)
    }

    /// Whether a query reads any row.
    pub fn exists(&mut self, sql: &str, args: &[Value]) -> Result<bool, SqlError> {
        Ok(self.first(sql, args, |_| Ok(()))?.is_some())
    }
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    args: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for value in args {
        query = match value {
            Value::Null(Kind::Int) => query.bind(None::<i64>),
            Value::Null(Kind::Real) => query.bind(None::<f64>),
            Value::Null(Kind::Text) => query.bind(None::<String>),
            Value::Null(Kind::Bool) => query.bind(None::<bool>),
            Value::Int(n) => query.bind(*n),
            Value::Real(x) => query.bind(*x),
            Value::Text(text) => query.bind(text.as_str()),
            Value::Bool(b) => query.bind(*b),
        };
    }
    query
}

/// The control store's connections to the shared PostgreSQL.
#[derive(Debug)]
pub struct PgControl {
    runtime: ServiceRuntime,
    pool: PgPool,
    /// Until when (Unix ms) the server is taken to be unreachable: after a
    /// wait for a connection ran out, the calls of the next moment fail at
    /// once instead of each waiting as long, so a burst of requests during
    /// an outage is answered 503 together rather than two at a time.
    down_until_ms: std::sync::atomic::AtomicI64,
    /// What errors name: the server and schema, never the password.
    pub(crate) label: String,
}

/// How long calls fail at once after a wait for a connection ran out.
const OUTAGE_PAUSE_MS: i64 = 1_000;

/// Connections the control store keeps: a request holds one for a few
/// statements, and tokens are cached, so a few serve a busy node.
const CONTROL_CONNECTIONS: u32 = 4;

impl PgControl {
    /// Connects to `url` (in `schema`, when given) and brings the tables
    /// up to date.
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Arc<PgControl>, ControlError> {
        let label = format!("postgres{}", schema.map(|s| format!(" (schema {s})")).unwrap_or_default());
        let failed = |source: SqlError| ControlError::Db { path: label.clone(), source };
        let runtime = service_runtime("mcp-control").map_err(|e| failed(SqlError::Connect(e.to_string())))?;
        // A request waits at most this for a connection, so an outage
        // answers 503 within seconds; a transaction a stopped process left
        // open is ended, with its locks, after the idle limit.
        let wait = std::time::Duration::from_secs(3);
        let idle = Some(std::time::Duration::from_secs(10));
        let pool = connect_pool_waiting(&runtime, url, schema, CONTROL_CONNECTIONS, idle, wait, true).map_err(|e| {
            let why = match e {
                crate::source::SourceError::Postgres { context, source } => format!("{context}{source}"),
                other => other.to_string(),
            };
            failed(SqlError::Connect(why))
        })?;
        runtime
            .block_on(crate::source::postgres::MIGRATIONS.run(&pool))
            .map_err(|e| failed(SqlError::Postgres(sqlx::Error::Migrate(Box::new(e)))))?;
        Ok(Arc::new(PgControl { runtime, pool, label, down_until_ms: std::sync::atomic::AtomicI64::new(0) }))
    }

    /// Runs `work` on one connection, inside a transaction when `atomic`:
    /// committed when `work` succeeds, rolled back when it fails.
    pub(crate) fn run<T: Send>(
        &self,
        atomic: bool,
        work: impl FnOnce(&mut Db<'_>) -> Result<T, ControlError> + Send,
    ) -> Result<T, ControlError> {
        use std::sync::atomic::Ordering;
        let failed = |source: SqlError| ControlError::Db { path: self.label.clone(), source };
        let now = crate::jobstatus::now_ms();
        if now < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(failed(SqlError::Connect(
                "PostgreSQL gave no connection a moment ago; trying again shortly".into(),
            )));
        }
        let here = || -> Result<T, ControlError> {
            let handle: &tokio::runtime::Handle = &self.runtime;
            // A pooled connection goes back to the pool through a task of
            // the runtime it is dropped in: this one, entered before it.
            let _inside = handle.enter();
            let mut conn = handle.block_on(self.pool.acquire()).map_err(|e| {
                self.down_until_ms.store(crate::jobstatus::now_ms() + OUTAGE_PAUSE_MS, Ordering::Relaxed);
                failed(e.into())
            })?;
            let mut db = Db::Postgres { handle, conn: &mut conn };
            if atomic {
                db.execute("BEGIN", &[]).map_err(failed)?;
            }
            let outcome = work(&mut db);
            if atomic {
                let end = if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let ended = db.execute(end, &[]).map_err(failed);
                if outcome.is_ok() {
                    ended?;
                }
            }
            outcome.map_err(|e| e.named(&self.label))
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return here();
        }
        std::thread::scope(|scope| scope.spawn(here).join()).unwrap_or_else(|_| Err(failed(SqlError::Panicked)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars_and_nothing_else_changes() {
        assert_eq!(
            postgres_text("SELECT a FROM t WHERE b = ?1 AND c < ?12 AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c < $12 AND d = '?'"
        );
    }

    #[test]
    fn a_null_keeps_the_kind_of_what_it_stands_for() {
        let none: Option<i64> = None;
        let text: Option<&str> = None;
        assert_eq!(
            args![none, text, Some(3_i64), "x", true],
            [
                Value::Null(Kind::Int),
                Value::Null(Kind::Text),
                Value::Int(3),
                Value::Text("x".into()),
                Value::Bool(true)
            ]
        );
    }
}
