//! A policy on the log: when a member leaves a workspace, their open tasks
//! there are unassigned.
//!
//! It reacts to `workspace.member_removed`, never to the request that
//! removed the member, so it runs whichever process or path removed them
//! and survives crashes:
//!
//! 1. [`DepartedMembers`], a projector, records each removal as a row of
//!    `unassign_work` in the same transaction that advances its checkpoint:
//!    every removal is recorded exactly once.
//! 2. [`run`] works the rows off: it waits until the tasks read model has
//!    applied the log up to the removal (so it knows every task assigned to
//!    the member by then), then unassigns each of their open tasks with a
//!    command whose actor is this policy and whose causation is the
//!    removal, and deletes the row.
//!
//! Running a row twice (a crash before its delete, two workers) changes
//! nothing more: the decision unassigns a task only if it is still open,
//! still theirs, and they are still not a member at the workspace version
//! it reads, which must be unchanged when the unassignment commits. The
//! same check keeps a member who rejoined in the meantime assigned.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::workspace::WorkspaceEvent;
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::{Actor, Metadata, RecordedEvent};
use tenet_events::ids::{EventId, Position, TaskId, TenantId, UserId, WorkspaceId};
use tenet_events::leader::Leadership;
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::{with_pool, with_tx};
use tenet_projections::checkpoints::{Checkpoints, WaitError};
use tokio_util::sync::CancellationToken;

use super::aggregate::{Task, TaskCommand, TaskError, decide};
use crate::repository::{ExecuteError, Repository};
use crate::wake::Wake;
use crate::workspace::aggregate::Workspace;

/// The policy's name: its actor name on the events it causes, and the
/// name of the projector that records its work.
pub const NAME: &str = "unassign-departed-members";

/// Rows taken per round.
const ROUND: i64 = 100;

pub struct DepartedMembers;

#[async_trait]
impl Projector for DepartedMembers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == "workspace.member_removed"
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        _generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events.iter().filter(|e| self.handles(&e.event_type)) {
            let WorkspaceEvent::MemberRemoved(removed) = WorkspaceEvent::from_recorded(event)
                .map_err(|e| ProjectionError::event(event, e))?
            else {
                continue;
            };
            with_tx!(tx, conn => {
                sqlx::query(
                    "INSERT INTO unassign_work \
                       (event_id, tenant_id, user_id, position, correlation_id, created_at, \
                        traceparent, tracestate) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(event.event_id)
                .bind(event.tenant_id)
                .bind(removed.user_id)
                .bind(event.position.0)
                .bind(event.metadata.correlation_id)
                .bind(event.occurred_at)
                .bind(event.metadata.traceparent.as_deref())
                .bind(event.metadata.tracestate.as_deref())
                .execute(&mut *conn)
                .await?;
            });
        }
        Ok(())
    }

    async fn clear(&self, _tx: &mut Tx<'_>, _generation: i32) -> Result<(), ProjectionError> {
        // The work is not a read model of one generation: a rebuild (or the
        // retirement of the generation it replaces) must not drop removals
        // still to be worked off. A rebuild records the old ones again
        // (`ON CONFLICT DO NOTHING` on the event id), and working a removal
        // twice changes nothing.
        Ok(())
    }
}

/// One recorded removal.
#[derive(Debug, sqlx::FromRow)]
struct Work {
    event_id: EventId,
    tenant_id: TenantId,
    user_id: UserId,
    position: i64,
    correlation_id: Option<uuid::Uuid>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// What the worker needs.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub repository: Arc<Repository>,
    pub checkpoints: Checkpoints,
}

/// Why a round, or one removal, was not worked off (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the tasks read model has not reached position {0} yet")]
    NotCaughtUp(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("cannot unassign task {task}: {error:?}")]
    Unassign {
        task: TaskId,
        error: ExecuteError<TaskError>,
    },
}

/// Whether this process may work the rows off now.
enum Lead {
    /// Elected (Postgres): until the lock goes with its connection.
    Elected(Leadership),
    /// The only process on its database (SQLite).
    Sole,
    /// Another process leads, or the election failed: try again later.
    NotNow,
}

/// Works off recorded removals until shutdown. On Postgres, one process
/// at a time (elected); correctness does not rest on it.
pub async fn run(worker: Worker, shutdown: CancellationToken) {
    let mut wake = Wake::new(
        worker.repository.store().as_ref(),
        &worker.checkpoints,
        NAME,
    );
    while !shutdown.is_cancelled() {
        let leadership = match worker.run_for_leader().await {
            Lead::Elected(leadership) => Some(leadership),
            Lead::Sole => None,
            Lead::NotNow => {
                pause(&shutdown, Duration::from_secs(2)).await;
                continue;
            }
        };
        worker.lead(leadership, &mut wake, &shutdown).await;
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

impl Worker {
    async fn run_for_leader(&self) -> Lead {
        let Db::Postgres(pool) = &self.db else {
            return Lead::Sole;
        };
        match Leadership::try_acquire(pool, "tenet.policy.unassign").await {
            Ok(Some(leadership)) => Lead::Elected(leadership),
            Ok(None) => Lead::NotNow,
            Err(error) => {
                tracing::warn!(policy = NAME, %error, "cannot run for leader");
                Lead::NotNow
            }
        }
    }

    /// Works rounds off while this process leads (`None`: alone), woken by
    /// new commits; gives the leadership up at shutdown or when it is lost.
    async fn lead(
        &self,
        mut leadership: Option<Leadership>,
        wake: &mut Wake,
        shutdown: &CancellationToken,
    ) {
        while !shutdown.is_cancelled() {
            if let Some(held) = leadership.as_mut()
                && held.confirm().await.is_err()
            {
                // The lock went with its connection: run for leader again.
                break;
            }
            match self.round().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(policy = NAME, %error, "policy round failed; retrying")
                }
            }
            // Woken by new commits or recorded removals, or now and then
            // to retry.
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = wake.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if let Some(leadership) = leadership {
            let _ = leadership.release().await;
        }
    }

    /// Works off one round of rows; answers whether a full round was taken
    /// (more may wait).
    async fn round(&self) -> Result<bool, PolicyError> {
        let rows: Vec<Work> = with_pool!(self.db, pool => {
            sqlx::query_as(
                "SELECT event_id, tenant_id, user_id, position, correlation_id, traceparent, \
                   tracestate \
                 FROM unassign_work ORDER BY position LIMIT $1",
            )
            .bind(ROUND)
            .fetch_all(pool)
            .await
        })?;
        let full = rows.len() as i64 == ROUND;
        let mut stuck = 0;
        for work in rows {
            // One removal that cannot be worked off yet (its tenant's task
            // stream contended, the tasks read model failed) must not hold
            // up the others: it stays and is tried again next round.
            if let Err(error) = self.work(&work).await {
                stuck += 1;
                tracing::warn!(policy = NAME, event = %work.event_id, %error, "removal not worked off yet");
            }
        }
        Ok(full && stuck < ROUND)
    }

    async fn work(&self, work: &Work) -> Result<(), PolicyError> {
        // Every task assigned to them up to the removal must be in the
        // read model before it is asked.
        match self
            .checkpoints
            .wait_for(
                &self.db,
                tenet_projections::tasks::NAME,
                Position(work.position),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(()) => {}
            Err(WaitError::TimedOut { .. }) => return Err(PolicyError::NotCaughtUp(work.position)),
            Err(WaitError::Database(error)) => return Err(error.into()),
        }
        let tasks =
            tenet_projections::tasks::open_tasks_of(&self.db, work.tenant_id, work.user_id).await?;
        for task in tasks {
            self.unassign(work, task).await?;
        }
        let mut tx = self.db.begin().await?;
        with_tx!(&mut tx, conn => {
            sqlx::query("DELETE FROM unassign_work WHERE event_id = $1")
                .bind(work.event_id)
                .execute(&mut *conn)
                .await?;
        });
        Ok(tx.commit().await?)
    }

    async fn unassign(&self, work: &Work, task: TaskId) -> Result<(), PolicyError> {
        let metadata = Metadata {
            actor: Actor::Policy {
                name: NAME.to_owned(),
            },
            request_id: None,
            correlation_id: work.correlation_id,
            causation_id: Some(work.event_id.as_uuid()),
            impersonated_by: None,
            // The unassignment continues the trace of the removal.
            traceparent: work.traceparent.clone(),
            tracestate: work.tracestate.clone(),
        };
        let user = work.user_id;
        let outcome = self
            .repository
            .recorded_as(metadata)
            .on::<Task>(work.tenant_id, task)
            .checking::<Workspace>(WorkspaceId::from(work.tenant_id))
            .decide(|task, workspace| {
                decide(task, workspace, TaskCommand::UnassignDeparted { user })
            })
            .outcome()
            .await;
        match outcome {
            Ok(_) | Err(ExecuteError::Rejected(TaskError::NotFound)) => Ok(()),
            Err(error) => Err(PolicyError::Unassign { task, error }),
        }
    }
}
