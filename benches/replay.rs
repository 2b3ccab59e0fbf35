//! Rebuilding a read model from a long log, on both backends: the tasks
//! projection replayed through the real blue/green path (a rebuild
//! requested as admins request it, carried out by a supervisor) over a log
//! of task and comment events, beside the physical ceiling measured in the
//! same run: a raw read of the events table in position order, decoding
//! every column.
//!
//! `cargo bench --bench replay` (`TENET_BENCH_REPLAY_EVENTS` sets the log
//! length, default 1,000,000).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Row, print_table};
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::comment::{CommentAdded, CommentEvent};
use tenet_events::catalogue::task::{
    Priority, TaskCreated, TaskEvent, TaskStatus, TaskStatusChanged, TaskUpdated,
};
use tenet_events::db::Db;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{CommentId, Position, ProjectId, TaskId, TenantId, UserId};
use tenet_events::projection::Projector;
use tenet_events::store::{
    self, AppendRequest, EventStore, ExpectedVersion, LogQuery, StoreOptions, StreamAppend,
};
use tenet_events::testing::TestDatabase;
use tenet_projections::runtime::Supervisor;
use tenet_projections::tasks::TasksProjector;
use tenet_projections::{Checkpoints, Runtime, SourceKind, checkpoints, replay};
use tokio_util::sync::CancellationToken;

fn log_length() -> usize {
    std::env::var("TENET_BENCH_REPLAY_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// One task's life in four events: created, edited, started, commented.
fn task_request(tenant: TenantId, project: ProjectId, number: i64) -> AppendRequest {
    let task = TaskId::generate();
    let user = UserId::generate();
    let events = [
        TaskEvent::Created(TaskCreated {
            project_id: project,
            number,
            key: format!("BENCH-{number}"),
            title: format!("Task number {number} of the replay bench"),
            description: "Some words about the work, long enough to be realistic.".repeat(3),
            priority: [
                Priority::Low,
                Priority::Medium,
                Priority::High,
                Priority::Urgent,
            ][number as usize % 4],
            assignee_id: (number % 3 == 0).then_some(user),
            labels: vec![format!("label-{}", number % 7)],
            due_date: None,
        }),
        TaskEvent::Updated(TaskUpdated {
            title: Some(format!("Task {number}, renamed")),
            ..TaskUpdated::of(project)
        }),
        TaskEvent::StatusChanged(TaskStatusChanged {
            project_id: project,
            from: TaskStatus::Todo,
            to: TaskStatus::InProgress,
        }),
    ];
    let mut request = AppendRequest::new(
        tenant,
        task.into(),
        "task",
        ExpectedVersion::NO_STREAM,
        events.iter().map(DomainEvent::to_new_event).collect(),
        Metadata::new(Actor::User { id: user.as_uuid() }),
    );
    request.new_stream = true;
    request.also.push(StreamAppend {
        stream_id: CommentId::generate().into(),
        stream_type: "comment",
        expected: ExpectedVersion::NO_STREAM,
        events: vec![
            CommentEvent::Added(CommentAdded {
                task_id: task,
                author_id: user,
                body: "Looks good to me.".into(),
            })
            .to_new_event(),
        ],
        new_stream: true,
    });
    request
}

/// Appends `events` events (four per task) from 32 writers.
async fn fill(store: &Arc<dyn EventStore>, events: usize) -> Position {
    let requests = events / 4;
    let writers = 32;
    let tasks = (0..writers).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            // A hundred tenants of one project each.
            let tenants: Vec<(TenantId, ProjectId)> = (0..100)
                .map(|_| (TenantId::generate(), ProjectId::generate()))
                .collect();
            let mut n = writer;
            while n < requests {
                let (tenant, project) = tenants[n % tenants.len()];
                store
                    .append(task_request(tenant, project, n as i64 + 1))
                    .await
                    .expect("append");
                n += writers;
            }
        })
    });
    futures::future::join_all(tasks).await;
    store.head().await.expect("head")
}

async fn raw_read(store: &Arc<dyn EventStore>, head: Position) -> f64 {
    let started = Instant::now();
    let mut after = Position::START;
    let mut read = 0usize;
    while after < head {
        let events = store
            .read_log(LogQuery::all_after(after, 1_000))
            .await
            .expect("read");
        read += events.len();
        after = events.last().expect("events up to the head").position;
    }
    read as f64 / started.elapsed().as_secs_f64()
}

/// Replays the tasks projection over the whole log: requests a rebuild
/// and times it until the rebuilt generation is live at the head.
async fn replay_rate(db: &Db, store: &Arc<dyn EventStore>, head: Position) -> f64 {
    let projector: Arc<dyn Projector> = Arc::new(TasksProjector);
    tenet_events::projection::register(db, projector.name())
        .await
        .expect("register");
    // The live generation stands at the head, as in a running deployment:
    // the rebuild has it to catch up with (and records no feed updates the
    // live one already did).
    let mut tx = db.begin().await.expect("begin");
    tenet_events::with_tx!(&mut tx, conn => {
        sqlx::query("UPDATE projection_checkpoints SET position = $2 WHERE name = $1 AND generation = 1")
            .bind(projector.name())
            .bind(head.0)
            .execute(&mut *conn)
            .await
            .expect("live at the head");
    });
    tx.commit().await.expect("commit");
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let job = replay::request(db, head, projector.name(), "bench")
        .await
        .expect("request a rebuild");
    let supervisor = Supervisor {
        runtime: Runtime {
            db: db.clone(),
            store: store.clone(),
            source: SourceKind::Log,
            checkpoints: Checkpoints::default(),
        },
        projector: projector.clone(),
        rebuilds_only: false,
    };
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    loop {
        let live = checkpoints::load(db, projector.name(), job.generation)
            .await
            .expect("checkpoint")
            .is_some_and(|c| c.position >= head.0 && c.status == "live");
        if live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = head.0 as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = running.await;
    rate
}

async fn bench(database: TestDatabase, rows: &mut Vec<Row>) {
    let backend = database.db.backend().as_str();
    // Projector commits skip the fsync, as the service configures them.
    let db = database.db.without_fsync(8);
    let store = store::open(database.db.clone(), StoreOptions::default())
        .await
        .expect("store");
    let length = log_length();
    let filling = Instant::now();
    let head = fill(&store, length).await;
    eprintln!(
        "{backend}: {} events appended in {:.1} s",
        head.0,
        filling.elapsed().as_secs_f64()
    );
    let ceiling = raw_read(&store, head).await;
    let rate = replay_rate(&db, &store, head).await;
    rows.push(
        Row::new(
            format!("replay the tasks projection over {} events", head.0),
            backend,
            rate,
            "events/s",
        )
        .against(ceiling, "raw read of the log in position order"),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        bench(TestDatabase::sqlite().await, &mut rows).await;
        if let Some(database) = TestDatabase::postgres().await {
            bench(database, &mut rows).await;
        }
        print_table("Replay", &rows);
    });
}
