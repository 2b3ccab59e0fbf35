//! The database handle shared by the log, the projectors and the queries.
//!
//! Tenet runs on Postgres (distributed) or SQLite (embedded). Code that must
//! work on both writes its SQL once where the dialects agree and matches on
//! the backend where they do not; [`with_pool!`](crate::with_pool) and
//! [`with_tx!`](crate::with_tx) expand one body per backend so each copy is
//! type-checked against its own driver, without generic bounds spreading
//! through every signature. Placeholders are `$1, $2, ...` on both (SQLite
//! reads `$N` as positional).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A pool of connections to one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqliteDb),
}

/// SQLite allows one writer at a time. All writes go through a pool of one
/// connection, so writers queue in-process instead of failing with
/// `SQLITE_BUSY`; reads use their own pool and, in WAL mode, never wait for
/// the writer.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

/// A borrowed pool to read from.
pub enum Pool<'a> {
    Postgres(&'a PgPool),
    Sqlite(&'a SqlitePool),
}

/// A write transaction on either backend (`'static` when it owns a pooled
/// connection, shorter when it borrows a dedicated one).
pub enum Tx<'c> {
    Postgres(Transaction<'c, Postgres>),
    Sqlite(Transaction<'c, Sqlite>),
}

/// Runs `$body` with `$pool` bound to the read pool of either backend.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the connection of a `&mut Tx<'_>`.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(tx) => {
                let $conn: &mut $crate::sqlx::PgConnection = &mut **tx;
                $body
            }
            $crate::db::Tx::Sqlite(tx) => {
                let $conn: &mut $crate::sqlx::SqliteConnection = &mut **tx;
                $body
            }
        }
    };
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Upper bound of the Postgres pool (SQLite readers use a quarter of it).
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 32,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    /// Connects to Postgres. One connection is made up front, so a wrong
    /// URL or an unreachable server fails now, with the driver's reason
    /// (a pool would only report that it timed out).
    pub async fn connect_postgres(url: &str, options: &DbOptions) -> Result<Db, sqlx::Error> {
        let connect = PgConnectOptions::from_str(url)?.application_name("tenet");
        let first = tokio::time::timeout(options.acquire_timeout, connect.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        Ok(Db::Postgres(pool))
    }

    /// Opens (creating if needed) the embedded database file.
    pub async fn open_sqlite(path: &Path, options: &DbOptions) -> Result<Db, sqlx::Error> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // An acknowledged append survives power loss, as on Postgres;
            // group commit keeps the fsync per batch, not per command.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections((options.max_connections / 4).max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.pragma("query_only", "true"))
            .await?;
        Ok(Db::Sqlite(SqliteDb { writer, reader }))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The pool to read from.
    pub fn pool(&self) -> Pool<'_> {
        match self {
            Db::Postgres(pool) => Pool::Postgres(pool),
            Db::Sqlite(db) => Pool::Sqlite(&db.reader),
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads and then writes can
    /// never fail to upgrade its lock.
    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Sqlite(db) => Tx::Sqlite(db.writer.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
            Db::Sqlite(db) => sqlx::migrate!("../migrations/sqlite").run(&db.writer).await,
        }
    }

    /// A pool of its own whose sessions carry `settings` (Postgres); SQLite
    /// shares its pools. Projectors use one with `synchronous_commit = off`:
    /// what they write is rebuilt from the log, and their checkpoint commits
    /// (or is lost) with it, so an fsync per batch buys nothing.
    pub fn with_session(&self, settings: &[(&str, &str)], max_connections: u32) -> Db {
        match self {
            Db::Postgres(pool) => {
                let options = (*pool.connect_options())
                    .clone()
                    .options(settings.iter().copied());
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(max_connections.max(1))
                        .acquire_timeout(pool.options().get_acquire_timeout())
                        .connect_lazy_with(options),
                )
            }
            Db::Sqlite(db) => Db::Sqlite(db.clone()),
        }
    }

    /// A handle for writers whose work is rebuilt from the log (the
    /// projectors): their commits skip the fsync. Their checkpoint commits,
    /// or is lost, with their writes, so losing the last few to a power
    /// failure only means applying those events again. On Postgres that is
    /// `synchronous_commit = off`; on SQLite a writer connection of their
    /// own with `synchronous = NORMAL` (WAL keeps it consistent, and the
    /// log's next durable commit makes it durable too).
    pub fn without_fsync(&self, max_connections: u32) -> Db {
        match self {
            Db::Postgres(_) => self.with_session(&[("synchronous_commit", "off")], max_connections),
            Db::Sqlite(db) => {
                let options = (*db.writer.connect_options())
                    .clone()
                    .synchronous(SqliteSynchronous::Normal)
                    // Large batches dirty many pages: keep them in memory
                    // (64 MiB) until the commit writes them once.
                    .pragma("cache_size", "-65536");
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy_with(options);
                Db::Sqlite(SqliteDb {
                    writer,
                    reader: db.reader.clone(),
                })
            }
        }
    }

    /// Answers whether the database serves a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(db) => {
                db.reader.close().await;
                db.writer.close().await;
            }
        }
    }
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.rollback().await,
            Tx::Sqlite(tx) => tx.rollback().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Postgres(_) => Backend::Postgres,
            Tx::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Whether an error means "the database is unreachable or overloaded" (worth
/// retrying, and a 503 to clients) rather than a fault in the statement.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // Postgres: serialization failure, deadlock, connection
            // exceptions, insufficient resources, operator intervention,
            // lock timeout, read-only transaction (a failover).
            Some(code) if is_sqlstate(code) => {
                matches!(&code[..2], "08" | "40" | "53" | "57" | "58")
                    || matches!(code, "55P03" | "25006")
            }
            // SQLite reports extended codes; the low byte is the primary
            // one: 5 busy, 6 locked, 10 I/O, 13 full.
            Some(code) => code
                .parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 13)),
            None => false,
        },
        _ => false,
    }
}

/// Whether an error means the statement or its data is at fault (a
/// constraint, a bad value, a schema mismatch: a bug or a poison event),
/// so retrying the same work can never succeed.
pub fn is_fault(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::RowNotFound => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // Postgres: data exception, integrity violation, syntax or
            // access rule (a statement that can never run).
            Some(code) if is_sqlstate(code) => {
                matches!(&code[..2], "22" | "23" | "42")
            }
            // SQLite: generic SQL error, constraint, datatype mismatch, range.
            Some(code) => code
                .parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, 1 | 19 | 20 | 25)),
            None => false,
        },
        _ => false,
    }
}

/// Postgres reports five-character SQLSTATEs; SQLite's (extended) result
/// codes are at most four digits.
fn is_sqlstate(code: &str) -> bool {
    code.len() == 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn coded(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Coded(code)))
    }

    #[test]
    fn outages_are_transient_and_bad_statements_are_faults() {
        for code in [
            "40001", "40P01", "08006", "53100", "57P01", "25006", "55P03", "5", "517", "6", "262",
        ] {
            assert!(is_transient(&coded(code)), "{code} is transient");
            assert!(!is_fault(&coded(code)), "{code} is no fault");
        }
        for code in ["23505", "22P02", "42601", "42703", "1", "19", "2067", "20"] {
            assert!(is_fault(&coded(code)), "{code} is a fault");
            assert!(!is_transient(&coded(code)), "{code} is not transient");
        }
        // Neither: a timeout or an unknown code is retried, not a poison.
        assert!(!is_fault(&coded("57014")));
    }
}
