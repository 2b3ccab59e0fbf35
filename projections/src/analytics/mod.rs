//! The analytics projector: per workspace and project, tasks created and
//! completed per 15-minute slot, hour and day (UTC), open tasks by status
//! and priority, completions per assignee (in the same buckets), each done
//! task's cycle time (first move to `in_progress` to its move to `done`)
//! and a histogram of cycle times per day, kept from `task.*` events so a
//! query sums a few counters instead of scanning tasks ([`reads`]).
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
use tables::{ActivityKey, CompletionKey, CycleKey};
pub use tables::{ActivityRow, AnalyticsTaskRow, CompletionRow, CycleDayRow, OpenRow};

pub const NAME: &str = "analytics";

/// The generation queries read, as a subquery.
pub(crate) const GENERATION: &str =
    "(SELECT active_generation FROM projections WHERE name = 'analytics')";

/// The width of the narrowest time bucket.
pub const SLOT_MINUTES: i32 = 15;
pub const HOUR_MINUTES: i32 = 60;
pub const DAY_MINUTES: i32 = 1440;
/// The widths every activity and completion is counted in.
pub const WIDTHS: [i32; 3] = [SLOT_MINUTES, HOUR_MINUTES, DAY_MINUTES];

/// The start of the bucket `minutes` wide (UTC) holding `at`.
pub fn bucket(at: DateTime<Utc>, minutes: i32) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(i64::from(minutes)))
        .unwrap_or(at)
}

/// The start of the 15-minute slot holding `at`.
pub fn slot(at: DateTime<Utc>) -> DateTime<Utc> {
    bucket(at, SLOT_MINUTES)
}

/// Histogram bins per doubling of the cycle time. Finer bins mean more
/// histogram rows per day to sum, coarser ones more task rows to step
/// over inside the bin that holds a percentile; four (bins about 19%
/// wide) balances the two for ranges of months.
const BINS_PER_OCTAVE_BITS: u32 = 2;

/// The histogram bin of a cycle time: log-scaled (a float with a 2-bit
/// mantissa), in integers so it never depends on rounding, and monotonic
/// (a longer cycle never falls in a lower bin), so the bins' counts in
/// order rank the cycle times. Zero and below (clocks that went back) are
/// bin 0.
pub fn cycle_bin(ms: i64) -> i32 {
    if ms <= 0 {
        return 0;
    }
    let octave = 63 - ms.leading_zeros();
    let bits = BINS_PER_OCTAVE_BITS;
    let mantissa = if octave >= bits {
        (ms >> (octave - bits)) & ((1 << bits) - 1)
    } else {
        (ms << (bits - octave)) & ((1 << bits) - 1)
    };
    // At most 1 + 62·4 + 3: well within an i32.
    1 + (octave << bits) as i32 + mantissa as i32
}

pub struct AnalyticsProjector;

type Key = <AnalyticsTaskRow as Table>::Key;

#[derive(Default)]
struct Working {
    tasks: Rows<AnalyticsTaskRow>,
    activity: Counts<ActivityRow>,
    open: Counts<OpenRow>,
    completions: Counts<CompletionRow>,
    cycles: Counts<CycleDayRow>,
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
                cycle_bin: None,
                version: event.stream_version,
            };
            self.count_activity(&row, at, "created", 1);
            self.open.add_all(open(&row), 1);
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
                        self.open.add_all(open(&row), -1);
                    }
                    row.priority = priority.as_str().to_owned();
                    if is_open(&row) {
                        self.open.add_all(open(&row), 1);
                    }
                }
            }
            TaskEvent::Assigned(assigned) => {
                self.reassign(&mut row, Some(assigned.assignee_id));
            }
            TaskEvent::Unassigned(_) => self.reassign(&mut row, None),
            TaskEvent::StatusChanged(changed) => {
                if is_open(&row) {
                    self.open.add_all(open(&row), -1);
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
                    row.cycle_bin = row.cycle_ms.map(cycle_bin);
                    self.count_activity(&row, at, "completed", 1);
                    self.count_completion(&row, at, 1);
                    if let Some(bin) = row.cycle_bin {
                        self.cycles.add_all(cycle(&row, at, bin), 1);
                    }
                }
                if is_open(&row) {
                    self.open.add_all(open(&row), 1);
                }
            }
            TaskEvent::Deleted(_) => {
                if is_open(&row) {
                    self.open.add_all(open(&row), -1);
                }
                self.retract_completion(&mut row);
                self.count_activity(&row, row.created_at, "created", -1);
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
        self.cycles.save(tx, generation).await?;
        Ok(())
    }
}

impl Working {
    /// Counts `delta` tasks of `kind` at `at`, in a bucket of every width.
    fn count_activity(
        &mut self,
        row: &AnalyticsTaskRow,
        at: DateTime<Utc>,
        kind: &str,
        delta: i64,
    ) {
        for minutes in WIDTHS {
            self.activity
                .add_all(activity(row, at, minutes, kind), delta);
        }
    }

    /// Counts `delta` completions of the task's assignee at `at`, in a
    /// bucket of every width.
    fn count_completion(&mut self, row: &AnalyticsTaskRow, at: DateTime<Utc>, delta: i64) {
        for minutes in WIDTHS {
            self.completions
                .add_all(completion(row, at, minutes), delta);
        }
    }

    /// A done task's completion moves to its new assignee.
    fn reassign(&mut self, row: &mut AnalyticsTaskRow, assignee: Option<UserId>) {
        if let Some(done) = row.completed_at {
            self.count_completion(row, done, -1);
            row.assignee_id = assignee;
            self.count_completion(row, done, 1);
        } else {
            row.assignee_id = assignee;
        }
    }

    /// Takes back a task's completion (it leaves done, or is deleted).
    fn retract_completion(&mut self, row: &mut AnalyticsTaskRow) {
        if let Some(done) = row.completed_at.take() {
            self.count_activity(row, done, "completed", -1);
            self.count_completion(row, done, -1);
            if let Some(bin) = row.cycle_bin.take() {
                self.cycles.add_all(cycle(row, done, bin), -1);
            }
            row.cycle_ms = None;
        }
    }
}

fn is_open(row: &AnalyticsTaskRow) -> bool {
    TaskStatus::parse(&row.status).is_some_and(TaskStatus::is_open)
}

/// The project id under which every counter is also kept for the whole
/// workspace, so a workspace's figures read as few rows as one project's
/// however many projects it has. No project has it: ids are generated
/// UUIDv7s.
pub const ALL_PROJECTS: ProjectId = ProjectId::from_uuid(uuid::Uuid::nil());

/// A counter's key for the task's project and for the whole workspace.
fn rolled<K>(row: &AnalyticsTaskRow, key: impl Fn(ProjectId) -> K) -> [K; 2] {
    [key(row.project_id), key(ALL_PROJECTS)]
}

fn activity(
    row: &AnalyticsTaskRow,
    at: DateTime<Utc>,
    minutes: i32,
    kind: &str,
) -> [ActivityKey; 2] {
    rolled(row, |project| {
        (
            row.tenant_id,
            project,
            minutes,
            bucket(at, minutes),
            kind.to_owned(),
        )
    })
}

fn open(row: &AnalyticsTaskRow) -> [(TenantId, ProjectId, String, String); 2] {
    rolled(row, |project| {
        (
            row.tenant_id,
            project,
            row.status.clone(),
            row.priority.clone(),
        )
    })
}

fn completion(row: &AnalyticsTaskRow, at: DateTime<Utc>, minutes: i32) -> [CompletionKey; 2] {
    rolled(row, |project| {
        (
            row.tenant_id,
            project,
            row.assignee_id
                .unwrap_or(UserId::from_uuid(uuid::Uuid::nil())),
            minutes,
            bucket(at, minutes),
        )
    })
}

fn cycle(row: &AnalyticsTaskRow, done: DateTime<Utc>, bin: i32) -> [CycleKey; 2] {
    rolled(row, |project| {
        (row.tenant_id, project, bucket(done, DAY_MINUTES), bin)
    })
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
        table::clear::<CycleDayRow>(tx, generation).await?;
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
        assert_eq!(
            bucket(at, HOUR_MINUTES),
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 0, 0).unwrap()
        );
        assert_eq!(
            bucket(at, DAY_MINUTES),
            Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn cycle_bins_are_log_scaled_and_never_decrease() {
        assert_eq!(cycle_bin(-5), 0);
        assert_eq!(cycle_bin(0), 0);
        assert_eq!(cycle_bin(1), 1);
        // Four bins per doubling: 1024..1279, 1280..1535, 1536..1791, 1792..2047.
        assert_eq!(cycle_bin(1024), cycle_bin(1279));
        assert_eq!(cycle_bin(1280), cycle_bin(1024) + 1);
        assert_eq!(cycle_bin(2047), cycle_bin(1024) + 3);
        assert_eq!(cycle_bin(2048), cycle_bin(1024) + 4);
        let mut values: Vec<i64> = (-10..100_000).collect();
        for bit in 17..63 {
            let power = 1i64 << bit;
            values.extend([power - 1, power, power + 1, power + power / 3]);
        }
        values.push(i64::MAX);
        for pair in values.windows(2) {
            assert!(cycle_bin(pair[0]) <= cycle_bin(pair[1]), "{pair:?}");
        }
        assert!(cycle_bin(i64::MAX) > cycle_bin(i64::MAX / 2));
    }
}
