//! The analytics read model against both backends: a history of tasks
//! spread over days (created, started, done, reopened, reassigned,
//! deleted, at instants down to the millisecond) folded by the projector,
//! then read for many ranges in zones whose days begin inside UTC hours
//! or change length. Every figure must equal the one computed from the
//! history itself.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::task::{
    Priority, TaskAssigned, TaskCreated, TaskDeleted, TaskEvent, TaskStatus, TaskStatusChanged,
};
use tenet_events::db::Db;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{Position, ProjectId, TaskId, TenantId, UserId};
use tenet_events::projection::{self, Projector};
use tenet_events::store::{
    self, AppendRequest, EventStore, ExpectedVersion, LogQuery, PendingAppend, StoreOptions,
};
use tenet_events::testing::TestDatabase;
use tenet_projections::analytics::reads::{self, Range};
use tenet_projections::analytics::{AnalyticsProjector, NAME};

/// A small deterministic generator (the figures must not depend on luck).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as i64
    }
}

/// What a task ends as, for the expected figures.
struct Truth {
    project: ProjectId,
    created_at: DateTime<Utc>,
    assignee: Option<UserId>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    deleted: bool,
}

/// The log's first day.
fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 20, 0, 0, 0).unwrap()
}

const DAYS: i64 = 16;

async fn write_history(
    store: &dyn EventStore,
    tenant: TenantId,
    projects: [ProjectId; 2],
    users: &[UserId],
) -> Vec<Truth> {
    let mut rng = Lcg(15);
    let mut truths = Vec::new();
    let mut pending: Vec<PendingAppend> = Vec::new();
    let span_ms = DAYS * 86_400_000;
    for n in 0..400usize {
        let project = projects[n % 2];
        let task = TaskId::generate();
        let mut at = base() + TimeDelta::milliseconds(rng.below(span_ms - 4 * 86_400_000));
        let mut assignee = (n % 5 != 0).then(|| users[n % users.len()]);
        let mut truth = Truth {
            project,
            created_at: at,
            assignee,
            started_at: None,
            completed_at: None,
            deleted: false,
        };
        let mut events: Vec<(DateTime<Utc>, TaskEvent)> = vec![(
            at,
            TaskEvent::Created(TaskCreated {
                project_id: project,
                number: n as i64 + 1,
                key: format!("T-{}", n + 1),
                title: format!("Task {n}"),
                description: String::new(),
                priority: Priority::ALL[n % 4],
                assignee_id: assignee,
                labels: vec![],
                due_date: None,
            }),
        )];
        let mut status = TaskStatus::Todo;
        let to = |status: &mut TaskStatus, next: TaskStatus| {
            let from = *status;
            *status = next;
            TaskEvent::StatusChanged(TaskStatusChanged {
                project_id: project,
                from,
                to: next,
            })
        };
        // Cycle times from a millisecond to days, some equal.
        let cycle = |rng: &mut Lcg| match rng.below(4) {
            0 => 1 + rng.below(1_000),
            1 => 60_000 * (1 + rng.below(20)),
            _ => 1 + rng.below(3 * 86_400_000),
        };
        if n % 6 != 5 {
            at += TimeDelta::milliseconds(rng.below(3_600_000));
            events.push((at, to(&mut status, TaskStatus::InProgress)));
            truth.started_at = Some(at);
        }
        if n % 6 < 4 {
            at += TimeDelta::milliseconds(cycle(&mut rng));
            events.push((at, to(&mut status, TaskStatus::Done)));
            truth.completed_at = Some(at);
            if n % 9 == 0 {
                // Reopened, then done again later (or left open).
                at += TimeDelta::milliseconds(rng.below(86_400_000));
                events.push((at, to(&mut status, TaskStatus::Todo)));
                truth.completed_at = None;
                if n % 2 == 0 {
                    at += TimeDelta::milliseconds(rng.below(86_400_000));
                    events.push((at, to(&mut status, TaskStatus::Done)));
                    truth.completed_at = Some(at);
                }
            }
            if n % 7 == 3 {
                let next = users[(n + 1) % users.len()];
                at += TimeDelta::milliseconds(rng.below(3_600_000));
                events.push((
                    at,
                    TaskEvent::Assigned(TaskAssigned {
                        project_id: project,
                        assignee_id: next,
                        previous: assignee,
                    }),
                ));
                assignee = Some(next);
                truth.assignee = assignee;
            }
        }
        if n % 13 == 4 {
            at += TimeDelta::milliseconds(rng.below(3_600_000));
            events.push((
                at,
                TaskEvent::Deleted(TaskDeleted {
                    project_id: project,
                    status,
                }),
            ));
            truth.deleted = true;
        }
        let mut previous = None;
        for (version, (at, event)) in events.into_iter().enumerate() {
            let mut request = AppendRequest::new(
                tenant,
                task.into(),
                "task",
                if version == 0 {
                    ExpectedVersion::NO_STREAM
                } else {
                    ExpectedVersion::Exact(version as i64)
                },
                vec![event.to_new_event()],
                Metadata::new(Actor::System {
                    name: "analytics test".to_owned(),
                }),
            );
            request.new_stream = version == 0;
            request.occurred_at = at;
            request.after = previous.into_iter().collect();
            let submitted = store.submit(request).await.expect("submit");
            previous = Some(submitted.id());
            pending.push(submitted);
        }
        truths.push(truth);
    }
    for append in pending {
        append.outcome().await.expect("append");
    }
    truths
}

/// Folds the log after `after` through the projector, in batches of an
/// odd size (a bucket's counts must not depend on how the log was
/// batched); answers the last position.
async fn project(db: &Db, store: &dyn EventStore, mut after: Position) -> Position {
    let generation = projection::register(db, NAME).await.expect("register");
    loop {
        let events = store
            .read_log(LogQuery::all_after(after, 37))
            .await
            .expect("read log");
        let Some(last) = events.last() else {
            break;
        };
        after = last.position;
        let mut tx = db.begin().await.expect("begin");
        AnalyticsProjector
            .apply(&mut tx, generation, &events)
            .await
            .expect("apply");
        tx.commit().await.expect("commit");
    }
    after
}

fn start_of(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .expect("a midnight that exists")
        .with_timezone(&Utc)
}

fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

async fn history_reads_exactly(database: TestDatabase) {
    let db = database.db.clone();
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .expect("store");
    let tenant = TenantId::generate();
    let projects = [ProjectId::generate(), ProjectId::generate()];
    let users: Vec<UserId> = (0..3).map(|_| UserId::generate()).collect();
    let truths = write_history(store.as_ref(), tenant, projects, &users).await;
    let done = project(&db, store.as_ref(), Position::START).await;
    // Another tenant's tasks stay out of every figure.
    write_history(store.as_ref(), TenantId::generate(), projects, &users).await;
    project(&db, store.as_ref(), done).await;

    let first = base().date_naive();
    let mut checked = 0;
    for zone in [
        "UTC",
        "Asia/Kathmandu",
        "America/St_Johns",
        "Europe/Paris",
        "Australia/Lord_Howe",
        "Pacific/Kiritimati",
        "America/Caracas",
    ] {
        let tz: Tz = zone.parse().unwrap();
        for (skip, length) in [(0, DAYS + 1), (3, 1), (5, 4), (8, 9), (1, 12)] {
            let from = first + TimeDelta::days(skip);
            let dates: Vec<NaiveDate> = (0..length).map(|d| from + TimeDelta::days(d)).collect();
            let bounds: Vec<DateTime<Utc>> = dates
                .iter()
                .chain([&(from + TimeDelta::days(length))])
                .map(|date| start_of(tz, *date))
                .collect();
            for project in [None, Some(projects[0]), Some(projects[1])] {
                let (start, end) = (bounds[0], bounds[bounds.len() - 1]);
                let live: Vec<&Truth> = truths
                    .iter()
                    .filter(|t| !t.deleted && project.is_none_or(|p| t.project == p))
                    .collect();
                let day = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
                let want_days: Vec<(i64, i64)> = dates
                    .iter()
                    .map(|date| {
                        let created = live.iter().filter(|t| day(t.created_at) == *date);
                        let done = live
                            .iter()
                            .filter(|t| t.completed_at.is_some_and(|at| day(at) == *date));
                        (created.count() as i64, done.count() as i64)
                    })
                    .collect();
                let in_range: Vec<&&Truth> = live
                    .iter()
                    .filter(|t| t.completed_at.is_some_and(|at| at >= start && at < end))
                    .collect();
                let mut by_assignee: BTreeMap<Option<UserId>, i64> = BTreeMap::new();
                for t in &in_range {
                    *by_assignee.entry(t.assignee).or_default() += 1;
                }
                let mut cycles: Vec<i64> = in_range
                    .iter()
                    .filter_map(|t| Some((t.completed_at? - t.started_at?).num_milliseconds()))
                    .collect();
                cycles.sort_unstable();

                let read = reads::read(
                    &db,
                    tenant,
                    &Range {
                        bounds: bounds.clone(),
                        project,
                    },
                )
                .await
                .expect("read");
                let what = format!("{zone}, {from} + {length} days, project {project:?}");
                assert_eq!(read.days, want_days, "{what}");
                let mut got: Vec<(Option<UserId>, i64)> = read
                    .completions
                    .iter()
                    .copied()
                    .filter(|(_, n)| *n > 0)
                    .collect();
                got.sort();
                let want: Vec<(Option<UserId>, i64)> = by_assignee.into_iter().collect();
                assert_eq!(got, want, "{what}");
                assert_eq!(read.cycle.count, cycles.len() as i64, "{what}");
                assert_eq!(read.cycle.p50_ms, nearest_rank(&cycles, 50), "{what}");
                assert_eq!(read.cycle.p85_ms, nearest_rank(&cycles, 85), "{what}");
                checked += cycles.len();
            }
        }
    }
    assert!(checked > 1_000, "the ranges hold done tasks");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_read_exactly_in_every_zone_embedded() {
    history_reads_exactly(TestDatabase::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_read_exactly_in_every_zone_distributed() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    history_reads_exactly(database).await;
}
