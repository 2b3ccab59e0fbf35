//! The analytics projector: per workspace and project, tasks created and
//! completed per 15-minute slot, open tasks by status and priority,
//! completions per assignee, and each done task's cycle time (first move
//! to `in_progress` to its move to `done`), kept from `task.*` events so a
//! query sums counters instead of scanning tasks ([`reads`]).
//!
//! The figures describe the live tasks, as the tasks read model does: a
//! task counts as completed once, at its latest move to done and while it
//! is done (reopening it takes its completion back), and a deleted task
//! leaves every figure. It records nothing for the realtime feed.

pub mod reads;
pub mod tables;

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::task::{TaskEvent, TaskStatus};
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{ProjectId, TaskId, TenantId, UserId};
use tenet_events::projection::{ProjectionError, Projector};

use crate::batch::{self, Counts, Rows, follows};
use crate::feed::Recorder;
use crate::table::{self, Table};

pub use reads::{Analytics, CycleTimes, Range};
pub use tables::{ActivityRow, AnalyticsTaskRow, CompletionRow, OpenRow};

pub const NAME: &str = "analytics";

/// The generation queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'analytics')";

/// The width of a time bucket.
pub const SLOT_MINUTES: i64 = 15;

/// The start of the 15-minute slot holding `at`.
pub fn slot(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(SLOT_MINUTES))
        .unwrap_or(at)
}

pub struct AnalyticsProjector;

type Key = <AnalyticsTaskRow as Table>::Key;

#[derive(Default)]
struct Working {
    tasks: Rows<AnalyticsTaskRow>,
    activity: Counts<ActivityRow>,
    open: Counts<OpenRow>,
    completions: Counts<CompletionRow>,
}

/// A task whose first event in the batch is its creation has no row yet.
#[derive(Default)]
struct Keys {
    seen: HashSet<Key>,
    existing: HashSet<Key>,
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = false;

    type Change = (Key, TaskEvent);
    type Keys = Keys;

    fn handles(event_type: &str) -> bool {
        matches!(
            event_type,
            "task.created"
                | "task.updated"
                | "task.assigned"
                | "task.unassigned"
                | "task.status_changed"
                | "task.deleted"
        )
    }

    fn decode(event: &RecordedEvent) -> Result<Self::Change, ProjectionError> {
        let key = (
            event.tenant_id,
            TaskId::from_uuid(event.stream_id.as_uuid()),
        );
        let decoded =
            TaskEvent::from_recorded(event).map_err(|e| ProjectionError::event(event, e))?;
        Ok((key, decoded))
    }

    fn keys(keys: &mut Keys, _event: &RecordedEvent, (key, change): &Self::Change) {
        let creates = matches!(change, TaskEvent::Created(_));
        if keys.seen.insert(*key) && !creates {
            keys.existing.insert(*key);
        }
    }

    async fn load(tx: &mut Tx<'_>, generation: i32, keys: Keys) -> Result<Self, ProjectionError> {
        Ok(Working {
            tasks: Rows::load(tx, generation, keys.existing).await?,
            ..Working::default()
        })
    }

    fn apply(
        &mut self,
        _feed: &mut Recorder,
        event: &RecordedEvent,
        (key, decoded): Self::Change,
    ) -> Result<(), ProjectionError> {
        if self.tasks.was_removed(&key) {
            return Ok(());
        }
        let current = self.tasks.get(&key).map_or(0, |row| row.version);
        if !follows(current, event)? {
            return Ok(());
        }
        let at = event.occurred_at;
        if let TaskEvent::Created(created) = decoded {
            let row = AnalyticsTaskRow {
                tenant_id: key.0,
                id: key.1,
                project_id: created.project_id,
                created_at: at,
                status: TaskStatus::Todo.as_str().to_owned(),
                priority: created.priority.as_str().to_owned(),
                assignee_id: created.assignee_id,
                started_at: None,
                completed_at: None,
                cycle_ms: None,
                version: event.stream_version,
            };
            self.activity.add(activity(&row, at, "created"), 1);
            self.open.add(open(&row), 1);
            self.tasks.insert(row);
            return Ok(());
        }
        let Some(mut row) = self.tasks.get(&key).cloned() else {
            return Err(ProjectionError::event(event, "no task.created before it"));
        };
        row.version = event.stream_version;
        match decoded {
            TaskEvent::Created(_) => {}
            TaskEvent::Updated(updated) => {
                if let Some(priority) = updated.priority
                    && priority.as_str() != row.priority
                {
                    if is_open(&row) {
                        self.open.add(open(&row), -1);
                    }
                    row.priority = priority.as_str().to_owned();
                    if is_open(&row) {
                        self.open.add(open(&row), 1);
                    }
                }
            }
            TaskEvent::Assigned(assigned) => {
                self.reassign(&mut row, Some(assigned.assignee_id));
            }
            TaskEvent::Unassigned(_) => self.reassign(&mut row, None),
            TaskEvent::StatusChanged(changed) => {
                if is_open(&row) {
                    self.open.add(open(&row), -1);
                }
                self.retract_completion(&mut row);
                row.status = changed.to.as_str().to_owned();
                if changed.to == TaskStatus::InProgress && row.started_at.is_none() {
                    row.started_at = Some(at);
                }
                if changed.to == TaskStatus::Done {
                    row.completed_at = Some(at);
                    row.cycle_ms = row
                        .started_at
                        .map(|started| (at - started).num_milliseconds());
                    self.activity.add(activity(&row, at, "completed"), 1);
                    self.completions.add(completion(&row, at), 1);
                }
                if is_open(&row) {
                    self.open.add(open(&row), 1);
                }
            }
            TaskEvent::Deleted(_) => {
                if is_open(&row) {
                    self.open.add(open(&row), -1);
                }
                self.retract_completion(&mut row);
                self.activity
                    .add(activity(&row, row.created_at, "created"), -1);
                self.tasks.remove(&key);
                return Ok(());
            }
        }
        self.tasks.insert(row);
        Ok(())
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.tasks.save(tx, generation).await?;
        self.activity.save(tx, generation).await?;
        self.open.save(tx, generation).await?;
        self.completions.save(tx, generation).await?;
        Ok(())
    }
}

impl Working {
    /// A done task's completion moves to its new assignee.
    fn reassign(&mut self, row: &mut AnalyticsTaskRow, assignee: Option<UserId>) {
        if let Some(done) = row.completed_at {
            self.completions.add(completion(row, done), -1);
            row.assignee_id = assignee;
            self.completions.add(completion(row, done), 1);
        } else {
            row.assignee_id = assignee;
        }
    }

    /// Takes back a task's completion (it leaves done, or is deleted).
    fn retract_completion(&mut self, row: &mut AnalyticsTaskRow) {
        if let Some(done) = row.completed_at.take() {
            self.activity.add(activity(row, done, "completed"), -1);
            self.completions.add(completion(row, done), -1);
            row.cycle_ms = None;
        }
    }
}

fn is_open(row: &AnalyticsTaskRow) -> bool {
    TaskStatus::parse(&row.status).is_some_and(TaskStatus::is_open)
}

fn activity(
    row: &AnalyticsTaskRow,
    at: DateTime<Utc>,
    kind: &str,
) -> (TenantId, ProjectId, DateTime<Utc>, String) {
    (row.tenant_id, row.project_id, slot(at), kind.to_owned())
}

fn open(row: &AnalyticsTaskRow) -> (TenantId, ProjectId, String, String) {
    (
        row.tenant_id,
        row.project_id,
        row.status.clone(),
        row.priority.clone(),
    )
}

fn completion(
    row: &AnalyticsTaskRow,
    at: DateTime<Utc>,
) -> (TenantId, ProjectId, UserId, DateTime<Utc>) {
    (
        row.tenant_id,
        row.project_id,
        row.assignee_id
            .unwrap_or(UserId::from_uuid(uuid::Uuid::nil())),
        slot(at),
    )
}

#[async_trait]
impl Projector for AnalyticsProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        <Working as batch::Batch>::handles(event_type)
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        batch::apply::<Working>(tx, generation, events).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        table::clear::<AnalyticsTaskRow>(tx, generation).await?;
        table::clear::<ActivityRow>(tx, generation).await?;
        table::clear::<OpenRow>(tx, generation).await?;
        table::clear::<CompletionRow>(tx, generation).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_instant_falls_in_the_quarter_hour_that_holds_it() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 44, 59).unwrap();
        assert_eq!(
            slot(at),
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 30, 0).unwrap()
        );
        let edge = Utc.with_ymd_and_hms(2026, 12, 3, 16, 45, 0).unwrap();
        assert_eq!(slot(edge), edge);
    }
}
