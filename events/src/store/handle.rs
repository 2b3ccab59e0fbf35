//! The event store both backends open: one [`EventStore`] over a
//! database's reads ([`super::reads`], written once) and a backend's
//! group-commit writer, with the head watch that writer (and, on Postgres,
//! other processes' commit notifications) keeps current.

use async_trait::async_trait;
use tokio::sync::watch;

use super::commit::GroupCommit;
use super::{
    AppendError, AppendRequest, Claim, EventStore, LogQuery, PendingAppend, StoreError,
    StoredResponse, reads,
};
use crate::db::Db;
use crate::envelope::RecordedEvent;
use crate::ids::{Position, StreamId, TenantId};
use crate::task::AbortOnDrop;

pub(crate) struct Store {
    /// Reads go to its read pool.
    db: Db,
    commit: GroupCommit,
    head: watch::Sender<Position>,
    /// Keeps `head` current with other processes' commits (Postgres).
    _follower: Option<AbortOnDrop>,
}

impl Store {
    pub(super) fn new(
        db: Db,
        commit: GroupCommit,
        head: watch::Sender<Position>,
        follower: Option<AbortOnDrop>,
    ) -> Store {
        Store {
            db,
            commit,
            head,
            _follower: follower,
        }
    }
}

#[async_trait]
impl EventStore for Store {
    async fn submit(&self, request: AppendRequest) -> Result<PendingAppend, AppendError> {
        self.commit.submit(request).await
    }

    async fn read_stream(
        &self,
        tenant_id: TenantId,
        stream_id: StreamId,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        reads::read_stream(&self.db, tenant_id, stream_id, after_version, limit).await
    }

    async fn read_log(&self, query: LogQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        reads::read_log(&self.db, query).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        reads::head(&self.db).await
    }

    async fn find_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        reads::find_response(&self.db, scope, key).await
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<(TenantId, StreamId)>, StoreError> {
        reads::find_claim(&self.db, claim).await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}
