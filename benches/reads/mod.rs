//! Single-resource GETs over HTTP, 64 connections: one task and one
//! project in a workspace holding one of each, and in one holding 100,000
//! tasks (`TENET_BENCH_TASKS`, seeded by the lists bench) and 25,000
//! projects (`TENET_BENCH_PROJECTS`), beside the primary-key read ceiling
//! of the same run (pgbench, prepared `SELECT` of a ~300-byte row by its
//! key among 100,000, 16 clients) and beside each other. Prints the
//! service's resident set after the reads.

use std::sync::Arc;

use serde_json::json;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::project::{ProjectCreated, ProjectEvent};
use tenet_events::db::Db;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{ProjectId, TenantId, UserId};
use tenet_events::store::{self, AppendRequest, EventStore, ExpectedVersion, StoreOptions};

use crate::common::{Backing, Tenet, User};
use crate::support::Row;

fn project_count() -> usize {
    std::env::var("TENET_BENCH_PROJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25_000)
}

/// Writes `count` project creations straight into the log, from 32
/// writers; answers the last position and the last project.
async fn seed_projects(
    store: &Arc<dyn EventStore>,
    workspace: TenantId,
    actor: UserId,
    count: usize,
) -> (i64, ProjectId) {
    let writers = 32;
    let tasks = (0..writers).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = (0, ProjectId::generate());
            let mut n = writer;
            while n < count {
                let project = ProjectId::generate();
                let created = ProjectEvent::Created(ProjectCreated {
                    name: format!("Seeded project {n}"),
                    slug: format!("seeded-{n}"),
                    description: "A project among many, described in a sentence or two.".into(),
                    key: format!("S{n}"),
                    template_id: None,
                    template_version: None,
                });
                let mut request = AppendRequest::new(
                    workspace,
                    project.into(),
                    "project",
                    ExpectedVersion::NO_STREAM,
                    vec![created.to_new_event()],
                    Metadata::new(Actor::User {
                        id: actor.as_uuid(),
                    }),
                );
                request.new_stream = true;
                last = (
                    store.append(request).await.expect("seed").position.0,
                    project,
                );
                n += writers;
            }
            last
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|last| last.expect("seeder"))
        .max_by_key(|(position, _)| *position)
        .expect("at least one writer")
}

/// The resident set of a process, in MiB (Linux).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn analyze(db: &Db) {
    if let tenet_events::db::Pool::Postgres(pool) = db.pool() {
        // Seeded a moment ago: autovacuum has not analyzed it yet.
        sqlx::raw_sql("ANALYZE projects_view; ANALYZE tasks_view")
            .execute(pool)
            .await
            .expect("analyze");
    }
}

/// `big` is the workspace the lists bench filled with tasks.
pub async fn bench(
    backing: &Backing,
    tenet: &Tenet,
    user: &User,
    big: &str,
    backend: &'static str,
    rows: &mut Vec<Row>,
) {
    let ceiling = match &backing.database {
        Some(database) => {
            crate::support::pgbench_read_ceiling(database.url.as_deref().expect("url"), 16).await
        }
        None => None,
    };

    // A workspace of one project and one task.
    let tiny = user.workspace("Tiny").await;
    let project = user
        .client
        .post(
            &format!("/api/v1/workspaces/{tiny}/projects"),
            json!({ "name": "Only" }),
        )
        .await;
    assert_eq!(project.status, 201, "{:#}", project.body);
    let tiny_project = project.body["id"].as_str().expect("id").to_owned();
    let task = user
        .client
        .post(
            &format!("/api/v1/workspaces/{tiny}/projects/{tiny_project}/tasks"),
            json!({ "title": "Only task" }),
        )
        .await;
    assert_eq!(task.status, 201, "{:#}", task.body);
    let tiny_task = task.body["id"].as_str().expect("id").to_owned();
    let seen = user
        .client
        .get_after(
            &format!("/api/v1/workspaces/{tiny}/tasks/{tiny_task}"),
            &task.token(),
        )
        .await;
    assert_eq!(seen.status, 200, "{:#}", seen.body);

    // The big workspace: its tasks are there; add the projects.
    let tenant = TenantId::from_uuid(big.parse().expect("uuid"));
    let db = backing.open_db().await;
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .expect("store");
    let count = project_count();
    let started = std::time::Instant::now();
    let actor = UserId::from_uuid(user.id.parse().expect("uuid"));
    let (last, big_project) = seed_projects(&store, tenant, actor, count).await;
    let path = format!("/api/v1/workspaces/{big}/projects/{big_project}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while user.client.get_after(&path, &last.to_string()).await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the seeded projects never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "{backend}: {count} projects seeded and projected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    analyze(&db).await;
    let listed = user
        .client
        .get(&format!("/api/v1/workspaces/{big}/tasks?limit=1"))
        .await;
    let big_task = listed.body["items"][0]["id"]
        .as_str()
        .expect("a seeded task")
        .to_owned();
    let big_tasks = listed.body["total"].as_u64().unwrap_or_default();
    db.close().await;

    let reads = [
        (
            "one task",
            &tiny,
            &format!("tasks/{tiny_task}"),
            &format!("tasks/{big_task}"),
        ),
        (
            "one project",
            &tiny,
            &format!("projects/{tiny_project}"),
            &format!("projects/{big_project}"),
        ),
    ];
    for (what, tiny, small_path, big_path) in reads {
        let small = format!("/api/v1/workspaces/{tiny}/{small_path}");
        let large = format!("/api/v1/workspaces/{big}/{big_path}");
        let (small_rate, small_latencies) = crate::lists::read_loop(user, &small, 64).await;
        let (large_rate, large_latencies) = crate::lists::read_loop(user, &large, 64).await;
        let mut row = Row::new(
            format!(
                "GET {what}, workspace of 1 task + 1 project, 64 connections (p99 {:.1} ms)",
                crate::ms(&small_latencies, 0.99)
            ),
            backend,
            small_rate,
            "req/s",
        );
        if let Some(ceiling) = ceiling {
            row = row.against(ceiling, "pgbench primary-key read, 16 clients");
        }
        rows.push(row);
        let mut row = Row::new(
            format!(
                "GET {what}, workspace of {big_tasks} tasks + {count} projects, 64 connections (p99 {:.1} ms)",
                crate::ms(&large_latencies, 0.99)
            ),
            backend,
            large_rate,
            "req/s",
        );
        if let Some(ceiling) = ceiling {
            row = row.against(ceiling, "pgbench primary-key read, 16 clients");
        }
        rows.push(row);
        rows.push(
            Row::new(
                format!("GET {what}: big workspace beside small (target within 10 %)"),
                backend,
                large_rate,
                "req/s",
            )
            .against(small_rate, "the same GET in the workspace of 1"),
        );
    }
    if let Some(rss) = tenet.child.id().and_then(rss_mib) {
        rows.push(Row::new(
            "resident set of the service after the reads",
            backend,
            rss,
            "MiB",
        ));
    }
}
