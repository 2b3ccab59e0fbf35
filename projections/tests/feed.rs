//! The feed outbox against both backends: only the active generation
//! records, a re-applied event adds nothing, resume pages keep feed order
//! across rows of one position, and pruning moves the horizon but never
//! past the writers' checkpoints.

use chrono::Duration;
use serde_json::json;
use tenet_events::db::Db;
use tenet_events::envelope::{Actor, Metadata, RecordedEvent};
use tenet_events::ids::{CommentId, EventId, Position, ProjectId, StreamId, TaskId, TenantId};
use tenet_events::projection;
use tenet_events::testing::TestDatabase;
use tenet_projections::FEED_WRITERS as WRITERS;
use tenet_projections::feed::{self, Cursor, FeedUpdate, Recorder, Resource, Scope};

fn event(tenant: TenantId, position: i64, event_type: &str) -> RecordedEvent {
    RecordedEvent {
        position: Position(position),
        event_id: EventId::generate(),
        tenant_id: tenant,
        stream_id: StreamId::generate(),
        stream_type: "task".to_owned(),
        stream_version: 1,
        event_type: event_type.to_owned(),
        schema_version: 1,
        data: json!({}),
        metadata: Metadata::new(Actor::System {
            name: "test".to_owned(),
        }),
        occurred_at: tenet_events::envelope::now(),
    }
}

/// Records, as the `tasks` projector would in `generation`, a comment and
/// its task's new count for each event.
async fn record(
    db: &Db,
    generation: i32,
    events: &[RecordedEvent],
    project: ProjectId,
    task: TaskId,
) {
    let mut tx = db.begin().await.expect("begin");
    let mut recorder = Recorder::for_batch(&mut tx, "tasks", generation)
        .await
        .expect("recorder");
    for event in events {
        // The same event always makes the same rows.
        let comment = CommentId::from_uuid(uuid::Uuid::from_u128(event.position.0 as u128));
        recorder
            .update(
                event,
                Resource::Comment(comment),
                Some(project),
                Some(task),
                &json!({ "id": comment, "at": event.position.0 }),
            )
            .expect("comment");
        recorder
            .update(
                event,
                Resource::Task(task),
                Some(project),
                Some(task),
                &json!({ "id": task, "at": event.position.0 }),
            )
            .expect("task");
    }
    recorder.save(&mut tx, "tasks").await.expect("save");
    tx.commit().await.expect("commit");
}

async fn set_checkpoint(db: &Db, name: &str, position: i64) {
    let mut tx = db.begin().await.expect("begin");
    tenet_events::with_tx!(&mut tx, conn => {
        sqlx::query("UPDATE projection_checkpoints SET position = $2 WHERE name = $1")
            .bind(name)
            .bind(position)
            .execute(&mut *conn)
            .await
            .expect("checkpoint");
    });
    tx.commit().await.expect("commit");
}

async fn outbox_contract(db: Db) {
    for name in WRITERS {
        projection::register(&db, name).await.expect("register");
    }
    let (tenant, other) = (TenantId::generate(), TenantId::generate());
    let (project, task) = (ProjectId::generate(), TaskId::generate());
    let events: Vec<RecordedEvent> = (1..=5).map(|p| event(tenant, p, "comment.added")).collect();
    record(&db, 1, &events, project, task).await;
    // Applied again (a retried batch), and by a generation being rebuilt:
    // it records only what the active generation has not reached (a
    // rebuild that overtakes the live one before the swap leaves no hole).
    record(&db, 1, &events[..2], project, task).await;
    set_checkpoint(&db, "tasks", 5).await;
    record(&db, 2, &events[2..], project, task).await;
    record(&db, 2, &[event(tenant, 6, "comment.added")], project, task).await;
    record(&db, 1, &[event(other, 7, "comment.added")], project, task).await;

    let all = feed::read_range(&db, Position(0), Position(10))
        .await
        .expect("range");
    assert_eq!(
        all.len(),
        14,
        "two rows per event, once; a rebuild adds only what the active generation has not reached"
    );
    assert!(all.iter().any(|u| u.position == Position(6)));
    let positions: Vec<i64> = all.iter().map(|u| u.position.0).collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]));
    // Within a position, the order the projector recorded.
    assert!(matches!(all[0].resource, Resource::Comment(_)));
    assert!(matches!(all[1].resource, Resource::Task(_)));

    // Pages of 3 split positions and still return each row once, in order.
    let mut cursor = Cursor::after(Position(1));
    let mut paged: Vec<FeedUpdate> = Vec::new();
    loop {
        let (page, next) =
            feed::read_tenant(&db, tenant, Scope::Task(task), &cursor, Position(4), 3)
                .await
                .expect("page");
        paged.extend(page);
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let expected: Vec<FeedUpdate> = all
        .iter()
        .filter(|u| u.tenant_id == tenant && u.position > Position(1) && u.position <= Position(4))
        .cloned()
        .collect();
    assert_eq!(paged, expected);
    let (elsewhere, _) = feed::read_tenant(
        &db,
        tenant,
        Scope::Project(ProjectId::generate()),
        &Cursor::after(Position(0)),
        Position(10),
        100,
    )
    .await
    .expect("page");
    assert!(elsewhere.is_empty());

    // Pruning stops at the lowest writer's checkpoint and moves the horizon.
    set_checkpoint(&db, "tasks", 7).await;
    set_checkpoint(&db, "automations", 7).await;
    set_checkpoint(&db, "projects", 3).await;
    set_checkpoint(&db, "feature_flags", 9).await;
    set_checkpoint(&db, "automations", 9).await;
    assert_eq!(feed::horizon(&db).await.expect("horizon"), Position(0));
    let cutoff = tenet_events::envelope::now() + Duration::seconds(1);
    let pruned = feed::prune(&db, &WRITERS, cutoff).await.expect("prune");
    assert_eq!(pruned, 6, "positions 1 to 3");
    assert_eq!(feed::horizon(&db).await.expect("horizon"), Position(3));
    let left = feed::read_range(&db, Position(0), Position(10))
        .await
        .expect("range");
    assert!(left.iter().all(|u| u.position > Position(3)));
}

#[tokio::test]
async fn the_outbox_keeps_its_contract_on_sqlite() {
    let database = TestDatabase::sqlite().await;
    outbox_contract(database.db.clone()).await;
}

#[tokio::test]
async fn the_outbox_keeps_its_contract_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    outbox_contract(database.db.clone()).await;
}
