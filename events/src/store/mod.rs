//! The event store: an append-only, tenant-partitioned log of events with
//! optimistic concurrency per stream and one global, gap-free order.
//!
//! [`EventStore`] is the narrow interface the rest of Tenet sees. Both
//! backends ([`postgres`], [`sqlite`]) commit appends through the same
//! group-commit loop ([`commit`]): concurrent appends share one transaction
//! and one fsync, and positions are handed out under the log's single lock,
//! so they are dense and commit in order.
//!
//! What the backends agree on is written once: one store handle answers
//! for both (`handle`), its reads are one set of SQL (`reads`), rows decode
//! in one place (`rows`), and the batch writers share inline projections
//! and conflict detection (`batch`). A backend module holds only what
//! differs: how it opens, and how its writer commits a batch.

mod batch;
pub mod commit;
mod handle;
pub mod postgres;
mod reads;
mod rows;
pub mod sqlite;

pub use rows::{EVENT_COLUMNS, EventRow};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::db::Db;
use crate::envelope::{Metadata, NewEvent, RecordedEvent};
use crate::ids::{Position, StreamId, TenantId};
use crate::projection::Projector;

/// What the appender believes the stream's current version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the current version is.
    Any,
    /// The stream must be at exactly this version (0: it must not exist).
    Exact(i64),
}

impl ExpectedVersion {
    pub const NO_STREAM: ExpectedVersion = ExpectedVersion::Exact(0);
}

/// A value that must be unique within its scope across all streams, such as
/// a user's email or a project slug within a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    pub scope: String,
    pub value: String,
}

impl Claim {
    pub fn new(scope: impl Into<String>, value: impl Into<String>) -> Self {
        Claim {
            scope: scope.into(),
            value: value.into(),
        }
    }
}

/// The response of a command sent with an `Idempotency-Key`, stored in the
/// same transaction as the command's events.
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyRecord {
    /// Whose key it is (keys of different principals never collide).
    pub scope: String,
    pub key: String,
    /// A digest of what was asked (method, route, body): the same key with a
    /// different request is refused.
    pub fingerprint: String,
    pub response: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// A stored idempotent response and the log position its command reached.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub response: serde_json::Value,
    pub position: Position,
}

/// One atomic append: events of one stream, and optionally of other
/// streams of the same tenant (see [`StreamAppend`]).
#[derive(Clone, Debug)]
pub struct AppendRequest {
    pub tenant_id: TenantId,
    pub stream_id: StreamId,
    /// The aggregate type of the stream (`task`, `workspace`, ...).
    pub stream_type: &'static str,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub metadata: Metadata,
    pub occurred_at: DateTime<Utc>,
    /// Values this stream takes (already held by this stream: no-op).
    pub claims: Vec<Claim>,
    /// Values this stream gives up.
    pub releases: Vec<Claim>,
    pub idempotency: Option<IdempotencyRecord>,
    /// The caller generated the stream id for this append, so the stream
    /// cannot exist: its version is not looked up (0 is assumed). The
    /// unique key on (tenant, stream, version) still refuses a duplicate.
    pub new_stream: bool,
    /// Other streams written, or only checked, in the same transaction.
    pub also: Vec<StreamAppend>,
    /// Appends of this process, still pending, whose outcome this one was
    /// decided on (it chained on the state they promised): it commits only
    /// if they did. A version check alone cannot tell: another process
    /// may have filled the version a failed predecessor promised.
    pub after: Vec<AppendId>,
    /// Given by the store on submit.
    pub(crate) id: AppendId,
}

/// Identifies a submitted append within its process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppendId(pub(crate) u64);

/// Another stream of the request's tenant, appended to atomically with the
/// primary one (creating a task advances its project's task counter), or,
/// with no events, only checked to still be at `expected` (a decision that
/// read it holds only if it did not change meanwhile).
#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub stream_id: StreamId,
    pub stream_type: &'static str,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub new_stream: bool,
}

/// A stream of a request, as the append path walks them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment<'a> {
    pub stream_id: StreamId,
    pub stream_type: &'static str,
    pub expected: ExpectedVersion,
    pub events: &'a [NewEvent],
    pub new_stream: bool,
}

impl AppendRequest {
    /// The streams this request writes or checks, the primary first.
    pub(crate) fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        std::iter::once(Segment {
            stream_id: self.stream_id,
            stream_type: self.stream_type,
            expected: self.expected,
            events: &self.events,
            new_stream: self.new_stream,
        })
        .chain(self.also.iter().map(|also| Segment {
            stream_id: also.stream_id,
            stream_type: also.stream_type,
            expected: also.expected,
            events: &also.events,
            new_stream: also.new_stream,
        }))
    }

    pub(crate) fn event_count(&self) -> usize {
        self.segments().map(|segment| segment.events.len()).sum()
    }
}

impl AppendRequest {
    pub fn new(
        tenant_id: TenantId,
        stream_id: StreamId,
        stream_type: &'static str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: Metadata,
    ) -> Self {
        AppendRequest {
            tenant_id,
            stream_id,
            stream_type,
            expected,
            events,
            metadata,
            occurred_at: crate::envelope::now(),
            claims: Vec::new(),
            releases: Vec::new(),
            idempotency: None,
            new_stream: false,
            also: Vec::new(),
            after: Vec::new(),
            id: AppendId::default(),
        }
    }
}

/// What an append committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The primary stream's version after the append.
    pub stream_version: i64,
    /// The position of the last appended event: the consistency token.
    pub position: Position,
    /// The version of each `also` stream after the append.
    pub also_versions: Vec<i64>,
}

/// An append that is queued or committing.
pub struct PendingAppend(
    pub(crate) tokio::sync::oneshot::Receiver<Result<Appended, AppendError>>,
    pub(crate) AppendId,
);

impl PendingAppend {
    /// What later appends that chain on this one name in `after`.
    pub fn id(&self) -> AppendId {
        self.1
    }

    pub async fn outcome(self) -> Result<Appended, AppendError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}

/// Why an append was refused. Nothing of a refused append is written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    WrongExpectedVersion {
        stream_id: StreamId,
        expected: i64,
        actual: i64,
    },
    #[error("{} {:?} is already taken", claim.scope, claim.value)]
    ClaimTaken { claim: Claim },
    #[error("idempotency key {key:?} was already used")]
    IdempotencyKeyUsed { key: String },
    #[error("an append needs at least one event")]
    Empty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the store itself (not of the caller's request). Cloneable:
/// when a batch fails, every request in it gets the same error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Arc<sqlx::Error>),
    #[error("database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    #[error("an inline projection failed: {0}")]
    Projection(String),
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: i64, reason: String },
    /// The log head was not where the batch read it under the append lock
    /// (a writer that did not take the lock): nothing is written, rather
    /// than positions duplicated.
    #[error("the log head moved under the append lock; refusing to write")]
    HeadMoved,
    /// A batch writer panicked (an inline projector's bug): the batch is
    /// not written, and the loop goes on.
    #[error("append panicked: {0}")]
    Panicked(String),
    #[error("the event store is shutting down")]
    Closed,
    #[error("the database did not answer in time ({0})")]
    TimedOut(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_transient(&error) {
            StoreError::Unavailable(Arc::new(error))
        } else {
            StoreError::Database(Arc::new(error))
        }
    }
}

/// Which slice of the global log to read.
#[derive(Clone, Copy, Debug)]
pub struct LogQuery {
    /// Read events strictly after this position.
    pub after: Position,
    /// Only this tenant's events, or every tenant's.
    pub tenant_id: Option<TenantId>,
    pub limit: usize,
}

impl LogQuery {
    pub fn all_after(after: Position, limit: usize) -> Self {
        LogQuery {
            after,
            tenant_id: None,
            limit,
        }
    }
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends atomically: all events of the request, its claims and its
    /// idempotency record, or nothing.
    async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        self.submit(request).await?.outcome().await
    }

    /// Queues an append and answers a handle to await its outcome. Appends
    /// queued one after another commit in that order, so a later one may
    /// expect the versions an earlier one will leave (pipelining commands
    /// on one stream without waiting for each commit).
    async fn submit(&self, request: AppendRequest) -> Result<PendingAppend, AppendError>;

    /// Events of one stream with a version above `after_version`, in order.
    async fn read_stream(
        &self,
        tenant_id: TenantId,
        stream_id: StreamId,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of the log in position order. Never skips an event: a
    /// position is visible only once every lower position is.
    async fn read_log(&self, query: LogQuery) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last committed event.
    async fn head(&self) -> Result<Position, StoreError>;

    /// The stored response for an idempotency key, if any.
    async fn find_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError>;

    /// Which stream holds a claimed value, if any.
    async fn find_claim(&self, claim: &Claim) -> Result<Option<(TenantId, StreamId)>, StoreError>;

    /// Watches the head as this process commits (and, on Postgres, as other
    /// processes commit): the wake-up for in-process tails.
    fn watch_head(&self) -> watch::Receiver<Position>;
}

/// Settings of the append path.
#[derive(Clone)]
pub struct StoreOptions {
    /// Most events one group-commit transaction carries.
    pub max_batch_events: usize,
    /// Projectors run inside the append transaction (read models that must
    /// never lag the log, such as access control).
    pub inline: Vec<Arc<dyn Projector>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch_events: 2_000,
            inline: Vec::new(),
        }
    }
}

/// Deletes idempotency records past their expiry (they are no longer
/// replayed, whatever is kept); answers how many went.
pub async fn purge_expired_responses(db: &Db) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let deleted = crate::with_tx!(&mut tx, conn => {
        sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(crate::envelope::now())
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    tx.commit().await?;
    Ok(deleted)
}

/// Holds back every append until `tx` ends: an inline projection's
/// blue/green swap needs the log to stand still while it catches up and
/// flips. SQLite needs nothing: a write transaction holds the database.
pub async fn hold_appends(tx: &mut crate::db::Tx<'_>) -> Result<(), sqlx::Error> {
    if let crate::db::Tx::Postgres(conn) = tx {
        sqlx::query(postgres::LOG_LOCK).execute(&mut **conn).await?;
    }
    Ok(())
}

/// Opens the event store of a database.
pub async fn open(db: Db, options: StoreOptions) -> Result<Arc<dyn EventStore>, StoreError> {
    Ok(match db {
        Db::Postgres(pool) => Arc::new(postgres::open(pool, options).await?),
        Db::Sqlite(sqlite) => Arc::new(sqlite::open(sqlite, options).await?),
    })
}
