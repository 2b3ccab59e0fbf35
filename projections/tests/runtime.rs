//! The projection runtime against both backends: exactly once, in order,
//! through duplicates, gaps, rivals and poison.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::{Actor, Metadata, NewEvent, RecordedEvent};
use tenet_events::ids::{EventId, Position, StreamId, TenantId};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::store::{
    self, AppendRequest, EventStore, ExpectedVersion, LogQuery, StoreOptions,
};
use tenet_events::testing::TestDatabase;
use tenet_events::{with_pool, with_tx};
use tenet_projections::checkpoints::{self, Checkpoints};
use tenet_projections::runtime::{Runner, Runtime};
use tenet_projections::source::SourceKind;
use tenet_projections::source::{Delivery, EventSource, SourceError};
use tokio_util::sync::CancellationToken;

/// Records each event it applies in a table whose primary key is the
/// position: applying one twice would fail the transaction.
struct Seen {
    name: &'static str,
    /// While set, refuses events whose data says `{"poison": true}`
    /// (clearing it is the "fix" a new release would bring).
    strict: Arc<AtomicBool>,
}

#[async_trait]
impl Projector for Seen {
    fn name(&self) -> &'static str {
        self.name
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("test.")
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            if self.strict.load(Ordering::SeqCst) && event.data["poison"] == json!(true) {
                return Err(ProjectionError::event(event, "poisoned"));
            }
            with_tx!(&mut *tx, conn => {
                sqlx::query(
                    "INSERT INTO test_seen (projection, generation, position, stream_id, stream_version) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(self.name)
                .bind(generation)
                .bind(event.position.0)
                .bind(event.stream_id)
                .bind(event.stream_version)
                .execute(&mut *conn)
                .await?;
            });
        }
        Ok(())
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        with_tx!(tx, conn => {
            sqlx::query("DELETE FROM test_seen WHERE projection = $1 AND generation = $2")
                .bind(self.name)
                .bind(generation)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }
}

async fn create_table(db: &Db) {
    let uuid = match db {
        Db::Postgres(_) => "uuid",
        Db::Sqlite(_) => "BLOB",
    };
    let ddl = format!(
        "CREATE TABLE test_seen (projection TEXT NOT NULL, generation INTEGER NOT NULL, \
         position BIGINT NOT NULL, stream_id {uuid} NOT NULL, stream_version BIGINT NOT NULL, \
         PRIMARY KEY (projection, generation, position))"
    );
    let mut tx = db.begin().await.unwrap();
    with_tx!(&mut tx, conn => {
        sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *conn).await.unwrap();
    });
    tx.commit().await.unwrap();
}

async fn seen(db: &Db, name: &str) -> Vec<(i64, StreamId, i64)> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT position, stream_id, stream_version FROM test_seen WHERE projection = $1 ORDER BY position",
        )
        .bind(name)
        .fetch_all(pool)
        .await
        .unwrap()
    })
}

fn test_event(poison: bool) -> NewEvent {
    NewEvent {
        event_id: EventId::generate(),
        event_type: "test.happened".into(),
        schema_version: 1,
        data: json!({ "poison": poison }),
    }
}

async fn append_many(store: &Arc<dyn EventStore>, appends: usize) -> Position {
    let tenant = TenantId::generate();
    let streams: Vec<StreamId> = (0..7).map(|_| StreamId::generate()).collect();
    let tasks = (0..appends).map(|n| {
        let store = store.clone();
        let stream = streams[n % streams.len()];
        tokio::spawn(async move {
            store
                .append(AppendRequest::new(
                    tenant,
                    stream,
                    "test",
                    ExpectedVersion::Any,
                    vec![test_event(false)],
                    Metadata::new(Actor::System {
                        name: "test".into(),
                    }),
                ))
                .await
                .unwrap()
        })
    });
    futures::future::join_all(tasks).await;
    store.head().await.unwrap()
}

fn runtime(database: &TestDatabase, store: Arc<dyn EventStore>) -> Runtime {
    Runtime {
        db: database.db.clone(),
        store,
        source: SourceKind::Log,
        checkpoints: Checkpoints::default(),
    }
}

async fn open_store(database: &TestDatabase) -> Arc<dyn EventStore> {
    create_table(&database.db).await;
    store::open(database.db.clone(), StoreOptions::default())
        .await
        .unwrap()
}

/// Every position from 1 to `head` once, in order (reporting the first
/// discrepancy, not the whole list).
fn assert_dense_and_ordered(rows: &[(i64, StreamId, i64)], head: Position) {
    for (index, (position, _, _)) in rows.iter().enumerate() {
        assert_eq!(
            *position,
            index as i64 + 1,
            "row {index} holds position {position}"
        );
    }
    assert_eq!(
        rows.len() as i64,
        head.0,
        "applied {} of {} events",
        rows.len(),
        head.0
    );
    let mut versions = std::collections::HashMap::new();
    for (_, stream, version) in rows {
        let last = versions.entry(*stream).or_insert(0);
        assert_eq!(*version, *last + 1);
        *last = *version;
    }
}

async fn a_runner_applies_every_event_once_and_checkpoints(database: TestDatabase) {
    let store = open_store(&database).await;
    let runtime = runtime(&database, store.clone());
    let projector: Arc<dyn Projector> = Arc::new(Seen {
        name: "seen",
        strict: Arc::new(AtomicBool::new(false)),
    });
    let shutdown = CancellationToken::new();
    let mut runners = runtime
        .start(&[projector], &[], shutdown.clone())
        .await
        .unwrap();

    let head = append_many(&store, 600).await;
    runtime
        .checkpoints
        .wait_for(&database.db, "seen", head, Duration::from_secs(30))
        .await
        .unwrap();
    assert_dense_and_ordered(&seen(&database.db, "seen").await, head);

    shutdown.cancel();
    while runners.join_next().await.is_some() {}
    let checkpoint = checkpoints::load(&database.db, "seen", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.position, head.0);
    assert_eq!(checkpoint.status, "live");
}

/// Delivers a fixed script of batches, then nothing.
struct Scripted {
    batches: std::collections::VecDeque<Vec<RecordedEvent>>,
    done: CancellationToken,
}

#[async_trait]
impl EventSource for Scripted {
    async fn next(&mut self, _after: Position) -> Result<Delivery, SourceError> {
        match self.batches.pop_front() {
            Some(batch) => Ok(Delivery::new(batch)),
            None => {
                self.done.cancel();
                std::future::pending().await
            }
        }
    }
}

async fn duplicates_and_gaps_from_the_source_change_nothing(database: TestDatabase) {
    let store = open_store(&database).await;
    let head = append_many(&store, 40).await;
    let log = store
        .read_log(LogQuery::all_after(Position::START, 100))
        .await
        .unwrap();
    let pick = |positions: &[usize]| {
        positions
            .iter()
            .map(|p| log[p - 1].clone())
            .collect::<Vec<_>>()
    };
    // Duplicates, reordering inside a batch, holes (3-4, 11-29, 36-40 never
    // delivered: the runner must read them from the log).
    let batches = vec![
        pick(&[2, 1]),
        pick(&[1, 2, 5]),
        pick(&[5, 6, 7, 8, 9, 10]),
        pick(&[1, 30, 31]),
        pick(&[31, 32, 33, 34, 35]),
        pick(&[3, 4]),
    ];
    let done = CancellationToken::new();
    let source = Box::new(Scripted {
        batches: batches.into(),
        done: done.clone(),
    });
    let runner = Runner {
        runtime: runtime(&database, store.clone()),
        projector: Arc::new(Seen {
            name: "seen",
            strict: Arc::new(AtomicBool::new(false)),
        }),
        generation: tenet_events::projection::register(&database.db, "seen")
            .await
            .unwrap(),
    };
    runner.drive(source, &done).await.unwrap();
    let rows = seen(&database.db, "seen").await;
    assert_dense_and_ordered(&rows, Position(35));
    assert!(head >= Position(35));
}

async fn a_large_gap_is_closed_in_bounded_steps(database: TestDatabase) {
    let store = open_store(&database).await;
    let head = append_many(&store, 1_300).await;
    let log = store
        .read_log(LogQuery::all_after(Position(head.0 - 1), 1))
        .await
        .unwrap();
    // The source hands over only the newest event: 1,299 are missing.
    let done = CancellationToken::new();
    let source = Box::new(Scripted {
        batches: vec![log].into(),
        done: done.clone(),
    });
    let runner = Runner {
        runtime: runtime(&database, store.clone()),
        projector: Arc::new(Seen {
            name: "seen",
            strict: Arc::new(AtomicBool::new(false)),
        }),
        generation: tenet_events::projection::register(&database.db, "seen")
            .await
            .unwrap(),
    };
    runner.drive(source, &done).await.unwrap();
    assert_dense_and_ordered(&seen(&database.db, "seen").await, head);
}

async fn two_runners_of_one_projection_apply_each_event_once(database: TestDatabase) {
    let store = open_store(&database).await;
    let generation = tenet_events::projection::register(&database.db, "seen")
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let drivers: Vec<_> = (0..2)
        .map(|_| {
            let runner = Runner {
                runtime: runtime(&database, store.clone()),
                projector: Arc::new(Seen {
                    name: "seen",
                    strict: Arc::new(AtomicBool::new(false)),
                }),
                generation,
            };
            let store = store.clone();
            let shutdown = shutdown.clone();
            // Bypass leader election: both apply at once, and the
            // compare-and-set checkpoint alone must keep them apart.
            tokio::spawn(async move {
                let source = Box::new(tenet_projections::source::LogTail::new(store));
                runner.drive(source, &shutdown).await
            })
        })
        .collect();
    let head = append_many(&store, 400).await;
    Checkpoints::default()
        .wait_for(&database.db, "seen", head, Duration::from_secs(30))
        .await
        .unwrap();
    shutdown.cancel();
    for driver in drivers {
        driver.await.unwrap().unwrap();
    }
    assert_dense_and_ordered(&seen(&database.db, "seen").await, head);
}

/// Generation 1 of `name` once it is marked failed (within 30 seconds).
async fn failed_checkpoint(
    db: &Db,
    name: &str,
) -> Result<checkpoints::Checkpoint, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(checkpoint) = checkpoints::load(db, name, 1).await.unwrap()
                && checkpoint.status == "failed"
            {
                return checkpoint;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Rebuild job `id` once it is no longer running (within 30 seconds).
async fn finished_job(
    db: &Db,
    head: Position,
    id: uuid::Uuid,
) -> Result<tenet_projections::replay::Job, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let job = tenet_projections::replay::job(db, head, id)
                .await
                .unwrap()
                .unwrap();
            if job.state != "running" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn a_poison_event_fails_its_projection_alone(database: TestDatabase) {
    let store = open_store(&database).await;
    let runtime = runtime(&database, store.clone());
    let strict: Arc<dyn Projector> = Arc::new(Seen {
        name: "strict",
        strict: Arc::new(AtomicBool::new(true)),
    });
    let lenient: Arc<dyn Projector> = Arc::new(Seen {
        name: "lenient",
        strict: Arc::new(AtomicBool::new(false)),
    });
    let shutdown = CancellationToken::new();
    let _runners = runtime
        .start(&[strict, lenient], &[], shutdown.clone())
        .await
        .unwrap();

    let tenant = TenantId::generate();
    let mut poison_at = Position::START;
    for n in 0..20 {
        let appended = store
            .append(AppendRequest::new(
                tenant,
                StreamId::generate(),
                "test",
                ExpectedVersion::NO_STREAM,
                vec![test_event(n == 12)],
                Metadata::new(Actor::System {
                    name: "test".into(),
                }),
            ))
            .await
            .unwrap();
        if n == 12 {
            poison_at = appended.position;
        }
    }
    let head = store.head().await.unwrap();
    runtime
        .checkpoints
        .wait_for(&database.db, "lenient", head, Duration::from_secs(30))
        .await
        .unwrap();
    let failed = failed_checkpoint(&database.db, "strict")
        .await
        .expect("the strict projection is marked failed");
    assert_eq!(failed.error_position, Some(poison_at.0));
    assert_eq!(
        failed.position,
        poison_at.0 - 1,
        "everything before the poison is applied"
    );
    assert!(failed.last_error.unwrap().contains("poisoned"));
    assert_eq!(
        seen(&database.db, "strict").await.len() as i64,
        poison_at.0 - 1
    );
    assert_eq!(seen(&database.db, "lenient").await.len() as i64, head.0);
    shutdown.cancel();
}

async fn a_failed_projection_resumes_after_a_fix_and_a_replay(database: TestDatabase) {
    let store = open_store(&database).await;
    let runtime = runtime(&database, store.clone());
    let strict = Arc::new(AtomicBool::new(true));
    let projector: Arc<dyn Projector> = Arc::new(Seen {
        name: "fixable",
        strict: strict.clone(),
    });
    let shutdown = CancellationToken::new();
    let _supervisors = runtime
        .start(&[projector], &[], shutdown.clone())
        .await
        .unwrap();
    let tenant = TenantId::generate();
    let append = |poison: bool| {
        store.append(AppendRequest::new(
            tenant,
            StreamId::generate(),
            "test",
            ExpectedVersion::NO_STREAM,
            vec![test_event(poison)],
            Metadata::new(Actor::System {
                name: "test".into(),
            }),
        ))
    };
    for n in 0..10 {
        append(n == 4).await.unwrap();
    }
    failed_checkpoint(&database.db, "fixable")
        .await
        .expect("the projection fails at the poison");

    // The fix ships; a replay rebuilds past the event and swaps in.
    strict.store(false, Ordering::SeqCst);
    let head = store.head().await.unwrap();
    let job = tenet_projections::replay::request(&database.db, head, "fixable", "test")
        .await
        .unwrap();
    assert_eq!(job.generation, 2);
    let again = tenet_projections::replay::request(&database.db, head, "fixable", "test").await;
    assert!(matches!(
        again,
        Err(tenet_projections::replay::ReplayError::AlreadyRunning { .. })
    ));
    let done = finished_job(&database.db, head, job.id)
        .await
        .expect("the rebuild finishes");
    assert_eq!(done.state, "completed");
    assert_eq!(
        tenet_events::projection::register(&database.db, "fixable")
            .await
            .unwrap(),
        2,
        "the rebuilt generation is active"
    );
    // It goes on live, and the failed generation's rows are gone.
    for _ in 0..5 {
        append(false).await.unwrap();
    }
    let head = store.head().await.unwrap();
    runtime
        .checkpoints
        .wait_for(&database.db, "fixable", head, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen(&database.db, "fixable").await.len() as i64 != head.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the old generation's rows are removed");
    assert_dense_and_ordered(&seen(&database.db, "fixable").await, head);
    shutdown.cancel();
}

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::TestDatabase::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(database) = super::TestDatabase::postgres().await else { return };
                    super::$test(database).await;
                }
            )*
        }
    };
}

both_backends!(
    a_runner_applies_every_event_once_and_checkpoints,
    duplicates_and_gaps_from_the_source_change_nothing,
    two_runners_of_one_projection_apply_each_event_once,
    a_poison_event_fails_its_projection_alone,
    a_large_gap_is_closed_in_bounded_steps,
    a_failed_projection_resumes_after_a_fix_and_a_replay,
);
