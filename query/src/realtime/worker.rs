//! The feed worker of a query process: follows the outbox in log order and
//! hands each update to the hub, and tells the hub which connections an
//! access-control event of the log may concern.
//!
//! It reads only below the **watermark**, the lowest checkpoint among the
//! outbox's writers: each writer's outbox is complete below its own
//! checkpoint, so below all of them the feed is complete and in log order
//! across projections (a project update at 100 is never delivered after a
//! task update at 105). It is woken by the checkpoint registry, which local
//! runners, the Postgres checkpoint notifications and the NATS
//! announcements of other projector processes all advance; the registry's
//! own fallback polls the database once a second if all of those are silent.

use std::sync::Arc;
use std::time::Duration;

use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::workspace::WorkspaceEvent;
use tenet_events::db::Db;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ApiKeyId, ImpersonationId, Position, SessionId, UserId};
use tenet_events::store::{EventStore, LogQuery, StoreError};
use tenet_projections::Checkpoints;
use tenet_projections::{FEED_WRITERS as WRITERS, feed};
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, Recheck};

/// Most positions read at once: bounds the memory of a catch-up.
const SPAN: i64 = 1_000;

pub struct Worker {
    pub hub: Arc<Hub>,
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub checkpoints: Checkpoints,
}

impl Worker {
    fn watermark(&self) -> Position {
        WRITERS
            .iter()
            .map(|name| self.checkpoints.current(name))
            .min()
            .unwrap_or(Position::START)
    }

    /// Runs until shutdown. Starts at the current watermark: a process
    /// that just started has no subscribers to catch up.
    pub async fn run(self, shutdown: CancellationToken) {
        let start = loop {
            match feed::watermark(&self.db, &WRITERS).await {
                Ok(position) => break position,
                Err(error) => {
                    tracing::warn!(%error, "feed worker cannot read checkpoints; retrying");
                    if pause(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        for name in WRITERS {
            self.checkpoints.advance(name, start);
        }
        self.hub.skip_if_idle(start);
        let mut last = start;
        while !shutdown.is_cancelled() {
            let watermark = self.watermark();
            if watermark > last {
                let through = watermark.min(Position(last.0 + SPAN));
                match self.deliver(last, through).await {
                    Ok(()) => last = through,
                    Err(error) => {
                        tracing::warn!(%error, "feed worker cannot read the outbox; retrying");
                        if pause(&shutdown, Duration::from_secs(1)).await {
                            return;
                        }
                    }
                }
                continue;
            }
            let Some(lagging) = WRITERS
                .iter()
                .find(|name| self.checkpoints.current(name) <= last)
            else {
                continue;
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                // A timeout or an error only means: look again.
                _ = self.checkpoints.follow_to(&self.db, lagging, last.next(), Duration::from_secs(5)) => {}
            }
        }
    }

    /// Delivers `(after, through]`.
    async fn deliver(&self, after: Position, through: Position) -> Result<(), DeliverError> {
        if self.hub.skip_if_idle(through) {
            return Ok(());
        }
        let updates = feed::read_range(&self.db, after, through).await?;
        let limit = usize::try_from(through.0 - after.0).unwrap_or(usize::MAX);
        let events = self
            .store
            .read_log(LogQuery::all_after(after, limit))
            .await?;
        let rechecks: Vec<Recheck> = events
            .iter()
            .filter(|event| event.position <= through)
            .filter_map(recheck_of)
            .collect();
        // Each trace whose changes reach the hub sees them pushed.
        let pushed: std::collections::HashSet<Position> =
            updates.iter().map(|update| update.position).collect();
        let _spans = tenet_events::trace::follow(
            events
                .iter()
                .filter(|event| pushed.contains(&event.position)),
            |event| {
                tracing::debug_span!(
                    target: tenet_events::trace::TARGET,
                    "ws.push",
                    log.position = event.position.0,
                    feed.updates = updates.len(),
                )
            },
        );
        self.hub.dispatch(&updates, through);
        self.hub.recheck(&rechecks);
        Ok(())
    }
}

/// Why a span of the feed could not be delivered (it is tried again).
#[derive(Debug, thiserror::Error)]
enum DeliverError {
    #[error("cannot read the outbox: {0}")]
    Outbox(#[from] sqlx::Error),
    #[error("cannot read the log: {0}")]
    Log(#[from] StoreError),
}

/// Which connections an access-control event may take access from.
fn recheck_of(event: &RecordedEvent) -> Option<Recheck> {
    match event.event_type.as_str() {
        "workspace.deleted" | "workspace.member_removed" | "workspace.member_role_changed" => {
            match WorkspaceEvent::from_recorded(event) {
                Ok(WorkspaceEvent::MemberRemoved(removed)) => {
                    Some(Recheck::Member(event.tenant_id, removed.user_id))
                }
                Ok(WorkspaceEvent::MemberRoleChanged(changed)) => {
                    Some(Recheck::Member(event.tenant_id, changed.user_id))
                }
                // Undecodable: check everyone of the workspace rather
                // than no one.
                _ => Some(Recheck::Tenant(event.tenant_id)),
            }
        }
        "api_key.revoked" => Some(Recheck::ApiKey(ApiKeyId::from_uuid(
            event.stream_id.as_uuid(),
        ))),
        "session.revoked" => Some(Recheck::Session(SessionId::from_uuid(
            event.stream_id.as_uuid(),
        ))),
        "user.deactivated" | "user.password_changed" => {
            Some(Recheck::User(UserId::from_uuid(event.stream_id.as_uuid())))
        }
        "impersonation.ended" => Some(Recheck::Impersonation(ImpersonationId::from_uuid(
            event.stream_id.as_uuid(),
        ))),
        _ => None,
    }
}

/// Waits `duration` or until shutdown; answers whether it is shutting down.
async fn pause(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
