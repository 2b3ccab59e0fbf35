//! The log: append throughput on both backends beside the durable-append
//! ceiling, relay throughput to JetStream beside raw JetStream publishing,
//! and the projector apply rate beside a raw read of the log.
//!
//! `cargo bench --bench log` (needs the Postgres and NATS of the test
//! setup for the distributed rows; `TENET_BENCH_SECONDS` sets run length).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use support::{Row, deadline, print_table, rate};
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::{Actor, Metadata, NewEvent, RecordedEvent};
use tenet_events::ids::{EventId, Position, StreamId, TenantId};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::relay::Relay;
use tenet_events::store::{
    self, AppendRequest, EventStore, ExpectedVersion, LogQuery, StoreOptions,
};
use tenet_events::testing::{TestBus, TestDatabase};
use tenet_events::with_tx;
use tenet_projections::{Checkpoints, Runtime, SourceKind};
use tokio_util::sync::CancellationToken;

fn payload() -> serde_json::Value {
    json!({ "title": "x".repeat(420), "priority": "high", "labels": ["bench", "log"] })
}

fn event() -> NewEvent {
    NewEvent {
        event_id: EventId::generate(),
        event_type: "bench.appended".into(),
        schema_version: 1,
        data: payload(),
    }
}

fn request(tenant: TenantId, stream: StreamId, expected: ExpectedVersion) -> AppendRequest {
    AppendRequest::new(
        tenant,
        stream,
        "bench",
        expected,
        vec![event()],
        Metadata::new(Actor::User {
            id: uuid::Uuid::now_v7(),
        }),
    )
}

/// Appends for the bench duration from `writers` tasks; with `hot`, each
/// writer cycles over its share of 100 existing streams at exact versions.
async fn append_throughput(store: Arc<dyn EventStore>, writers: usize, hot: bool) -> f64 {
    let tenant = TenantId::generate();
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = deadline();
    let tasks = (0..writers).map(|writer| {
        let store = store.clone();
        let count = count.clone();
        tokio::spawn(async move {
            let share = (100 / writers).max(1);
            let mut streams: Vec<(StreamId, i64)> =
                (0..share).map(|_| (StreamId::generate(), 0)).collect();
            let mut n = writer;
            while Instant::now() < until {
                let appended = if hot {
                    let slot = n % streams.len();
                    let (stream, version) = streams[slot];
                    let appended = store
                        .append(request(tenant, stream, ExpectedVersion::Exact(version)))
                        .await
                        .expect("append");
                    streams[slot].1 = appended.stream_version;
                    appended
                } else {
                    store
                        .append(request(
                            tenant,
                            StreamId::generate(),
                            ExpectedVersion::NO_STREAM,
                        ))
                        .await
                        .expect("append")
                };
                let _ = appended;
                count.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        })
    });
    futures::future::join_all(tasks).await;
    rate(count.load(Ordering::Relaxed), started.elapsed())
}

/// Fills the log quickly (many events per append) for the relay and
/// projector runs.
async fn fill(store: &Arc<dyn EventStore>, events: usize) -> Position {
    let tenant = TenantId::generate();
    let per_append = 50;
    let tasks = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..events / per_append / 16 {
                let mut request = request(tenant, StreamId::generate(), ExpectedVersion::NO_STREAM);
                request.events = (0..per_append).map(|_| event()).collect();
                store.append(request).await.expect("append");
            }
        })
    });
    futures::future::join_all(tasks).await;
    store.head().await.expect("head")
}

/// A projector as cheap as a real one can be: one small upsert per event.
struct Tally;

#[async_trait]
impl Projector for Tally {
    fn name(&self) -> &'static str {
        "bench_tally"
    }
    fn handles(&self, _event_type: &str) -> bool {
        true
    }
    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        _generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let last = events.last().map_or(0, |e| e.position.0);
        with_tx!(tx, conn => {
            sqlx::query(
                "INSERT INTO bench_tally (id, events, last) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET events = bench_tally.events + $1, last = $2",
            )
            .bind(events.len() as i64)
            .bind(last)
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }
    async fn clear(&self, _tx: &mut Tx<'_>, _generation: i32) -> Result<(), ProjectionError> {
        Ok(())
    }
}

async fn raw_log_read(store: &Arc<dyn EventStore>, head: Position) -> f64 {
    let started = Instant::now();
    let mut after = Position::START;
    let mut count = 0u64;
    while after < head {
        let batch = store
            .read_log(LogQuery::all_after(after, 1_000))
            .await
            .expect("read");
        count += batch.len() as u64;
        after = batch.last().map_or(head, |e| e.position);
    }
    rate(count, started.elapsed())
}

async fn projector_rate(
    database: &TestDatabase,
    store: &Arc<dyn EventStore>,
    head: Position,
) -> f64 {
    let mut tx = database.db.begin().await.expect("begin");
    with_tx!(&mut tx, conn => {
        sqlx::query("CREATE TABLE bench_tally (id INTEGER PRIMARY KEY, events BIGINT NOT NULL, last BIGINT NOT NULL)")
            .execute(&mut *conn)
            .await
            .expect("create");
    });
    tx.commit().await.expect("commit");
    let runtime = Runtime {
        db: database.db.clone(),
        store: store.clone(),
        source: SourceKind::Log,
        checkpoints: Checkpoints::default(),
    };
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let _runners = runtime
        .start(&[Arc::new(Tally)], &[], shutdown.clone())
        .await
        .expect("start");
    runtime
        .checkpoints
        .wait_for(&database.db, "bench_tally", head, Duration::from_secs(600))
        .await
        .expect("caught up");
    let elapsed = started.elapsed();
    shutdown.cancel();
    rate(head.0 as u64, elapsed)
}

/// Raw JetStream publishing of messages shaped like the relay's (an event
/// envelope, a message id), 256 in flight.
async fn raw_jetstream_publish(bus: &TestBus, store: &Arc<dyn EventStore>, messages: usize) -> f64 {
    use async_nats::jetstream::message::PublishMessage;
    bus.bus.ensure_events_stream().await.expect("stream");
    let sample = store
        .read_log(LogQuery::all_after(Position::START, 1))
        .await
        .expect("read");
    let payload = bytes::Bytes::from(serde_json::to_vec(&sample[0]).expect("json"));
    let subject = format!("{}.events.raw.bench.published", bus.prefix());
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for _ in 0..messages {
        let message = PublishMessage::build()
            .payload(payload.clone())
            .message_id(uuid::Uuid::now_v7().to_string());
        acks.push_back(
            bus.bus
                .jetstream
                .send_publish(subject.clone(), message)
                .await
                .expect("publish"),
        );
        if acks.len() >= 256
            && let Some(ack) = acks.pop_front()
        {
            ack.await.expect("ack");
        }
    }
    for ack in acks {
        ack.await.expect("ack");
    }
    rate(messages as u64, started.elapsed())
}

async fn relay_rate(
    database: &TestDatabase,
    bus: &TestBus,
    store: &Arc<dyn EventStore>,
    head: Position,
) -> f64 {
    let Db::Postgres(pool) = &database.db else {
        unreachable!("relay runs on Postgres")
    };
    bus.bus.ensure_events_stream().await.expect("stream");
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    tokio::spawn(Relay::new(pool.clone(), store.clone(), bus.bus.clone()).run(shutdown.clone()));
    loop {
        let reached: Option<i64> = sqlx::query_scalar("SELECT position FROM relay_checkpoints")
            .fetch_optional(pool)
            .await
            .expect("checkpoint");
        if reached >= Some(head.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    rate(head.0 as u64, elapsed)
}

async fn bench_backend(database: TestDatabase, rows: &mut Vec<Row>) {
    let backend = database.db.backend().as_str();
    let ceilings = match (&database.db, &database.url) {
        (Db::Postgres(_), Some(url)) => {
            let mut ceilings = Vec::new();
            for clients in [1, 16, 64] {
                ceilings.push(support::pgbench_append_ceiling(url, clients).await);
            }
            ceilings
        }
        _ => vec![None; 3],
    };
    let store = store::open(database.db.clone(), StoreOptions::default())
        .await
        .expect("store");
    for (index, writers) in [1usize, 16, 64].into_iter().enumerate() {
        for hot in [false, true] {
            let figure = append_throughput(store.clone(), writers, hot).await;
            let shape = if hot {
                "100 hot streams"
            } else {
                "new stream each"
            };
            let mut row = Row::new(
                format!("append, {writers} writer(s), {shape}"),
                backend,
                figure,
                "events/s",
            );
            if let Some(ceiling) = ceilings[index] {
                row = row.against(ceiling, format!("pgbench, {writers} client(s)"));
            }
            rows.push(row);
        }
    }
    let events = if database.db.backend() == tenet_events::Backend::Postgres {
        100_000
    } else {
        50_000
    };
    let extra = fill(&store, events).await;
    let read = raw_log_read(&store, extra).await;
    let apply = projector_rate(&database, &store, extra).await;
    rows.push(
        Row::new("projector apply (log tail)", backend, apply, "events/s")
            .against(read, "raw log read"),
    );
    if let (Db::Postgres(_), Some(bus)) = (&database.db, TestBus::connect().await) {
        let publish = raw_jetstream_publish(&bus, &store, 50_000).await;
        let relay = relay_rate(&database, &bus, &store, extra).await;
        rows.push(
            Row::new("relay to JetStream", backend, relay, "events/s")
                .against(publish, "raw publish, 256 in flight"),
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        bench_backend(TestDatabase::sqlite().await, &mut rows).await;
        if let Some(database) = TestDatabase::postgres().await {
            bench_backend(database, &mut rows).await;
        }
        print_table("The log", &rows);
    });
}
