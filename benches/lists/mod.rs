//! Filtered task lists over a workspace of 100,000 tasks
//! (`TENET_BENCH_TASKS`), over HTTP, beside the naive way to answer the
//! same page: `OFFSET`/`LIMIT` plus a `count(*)` of every matching row,
//! straight against the same read model, from as many connections.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::json;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::task::{Priority, TaskCreated, TaskEvent};
use tenet_events::db::Db;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{ProjectId, TaskId, TenantId, UserId};
use tenet_events::store::{self, AppendRequest, EventStore, ExpectedVersion, StoreOptions};

use crate::common::{Backing, User};
use crate::support::{Row, run_for};

fn task_count() -> usize {
    std::env::var("TENET_BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// Writes `count` task creations into `project` straight into the log (as
/// the service would have), from 32 writers; answers the last position.
async fn seed(
    store: &Arc<dyn EventStore>,
    workspace: TenantId,
    project: ProjectId,
    assignee: UserId,
    count: usize,
) -> i64 {
    let writers = 32;
    let tasks = (0..writers).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut n = writer;
            while n < count {
                let created = TaskEvent::Created(TaskCreated {
                    project_id: project,
                    number: n as i64 + 1,
                    key: format!("SEED-{}", n + 1),
                    title: format!(
                        "Seeded task {n} about the {} module",
                        ["login", "billing", "search", "export"][n % 4]
                    ),
                    description: "Realistic words describing what is to be done.".into(),
                    priority: [
                        Priority::Low,
                        Priority::Medium,
                        Priority::High,
                        Priority::Urgent,
                    ][n % 4],
                    assignee_id: (n % 5 == 0).then_some(assignee),
                    labels: vec![format!("label-{}", n % 10)],
                    due_date: None,
                });
                let mut request = AppendRequest::new(
                    workspace,
                    TaskId::generate().into(),
                    "task",
                    ExpectedVersion::NO_STREAM,
                    vec![created.to_new_event()],
                    Metadata::new(Actor::User {
                        id: assignee.as_uuid(),
                    }),
                );
                request.new_stream = true;
                last = store.append(request).await.expect("seed").position.0;
                n += writers;
            }
            last
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|last| last.expect("seeder"))
        .max()
        .unwrap_or(0)
}

/// `connections` clients reading `path` back to back: requests/s and p99.
pub async fn read_loop(user: &User, path: &str, connections: usize) -> (f64, Histogram<u64>) {
    let until = Instant::now() + run_for();
    let started = Instant::now();
    let tasks = (0..connections).map(|_| {
        let http = user.client.clone();
        let path = path.to_owned();
        tokio::spawn(async move {
            let mut latencies = crate::histogram();
            while Instant::now() < until {
                let sent = Instant::now();
                let reply = http.get(&path).await;
                assert_eq!(reply.status, 200, "{:#}", reply.body);
                latencies.record(sent.elapsed().as_micros() as u64).ok();
            }
            latencies
        })
    });
    let mut all = crate::histogram();
    for task in futures::future::join_all(tasks).await {
        all.add(task.expect("reader")).ok();
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), all)
}

/// The naive page: the rows at an offset, and a count of every match.
async fn naive_loop(db: &Db, tenant: TenantId, filter: &'static str, connections: usize) -> f64 {
    let until = Instant::now() + run_for();
    let started = Instant::now();
    let generation = "(SELECT active_generation FROM projections WHERE name = 'tasks')";
    // Planned per call on Postgres, as the service plans its lists: a
    // cached generic plan misjudges one large tenant among small ones.
    let reuse_plans = db.backend() == tenet_events::db::Backend::Sqlite;
    let tasks = (0..connections).map(|client| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut pages = 0u64;
            while Instant::now() < until {
                let offset = (client as i64 * 50) % 1_000;
                tenet_events::with_pool!(db, pool => {
                    let _: Vec<(uuid::Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT id, title FROM tasks_view WHERE generation = {generation} AND tenant_id = $1 \
                         AND {filter} ORDER BY created_at, id LIMIT 50 OFFSET $2"
                    )))
                    .persistent(reuse_plans)
                    .bind(tenant)
                    .bind(offset)
                    .fetch_all(pool)
                    .await
                    .expect("page");
                    let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT count(*) FROM tasks_view WHERE generation = {generation} AND tenant_id = $1 AND {filter}"
                    )))
                    .persistent(reuse_plans)
                    .bind(tenant)
                    .fetch_one(pool)
                    .await
                    .expect("count");
                });
                pages += 1;
            }
            pages
        })
    });
    let pages: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|pages| pages.expect("naive reader"))
        .sum();
    pages as f64 / started.elapsed().as_secs_f64()
}

/// Answers the workspace it filled.
pub async fn bench(
    backing: &Backing,
    user: &User,
    backend: &'static str,
    rows: &mut Vec<Row>,
) -> String {
    let workspace = user.workspace("Lists").await;
    let project = user
        .client
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Seeded" }),
        )
        .await;
    let project: ProjectId = project.body["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let tenant = TenantId::from_uuid(workspace.parse().expect("uuid"));
    let db = backing.open_db().await;
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .expect("store");
    let assignee = UserId::from_uuid(user.id.parse().expect("uuid"));
    let count = task_count();
    let seeding = Instant::now();
    let last = seed(&store, tenant, project, assignee, count).await;
    // Wait until the read model has them all.
    let base = format!("/api/v1/workspaces/{workspace}/tasks");
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let page = user
            .client
            .get_after(&format!("{base}?limit=1"), &last.to_string())
            .await;
        if page.status == 200 && page.body["total"].as_u64() == Some(count as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the seeded tasks never showed: {:#}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "{backend}: {count} tasks seeded and projected in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    // A database that grew to this size over days has statistics on it;
    // one seeded a moment ago has autovacuum's next round to wait for, and
    // until then the planner takes the tenant for empty.
    if let tenet_events::db::Pool::Postgres(pool) = db.pool() {
        sqlx::query("ANALYZE tasks_view")
            .execute(pool)
            .await
            .expect("analyze");
    }
    // Seeded task n carries label n % 10 and module word n % 4: label-3
    // with "billing" matches one task in twenty; "4242" a few dozen.
    let cases: [(&str, &str, &'static str); 3] = [
        (
            "status + priority, total from the counts",
            "status=todo&priority=high&limit=50",
            "status = 'todo' AND priority = 'high'",
        ),
        (
            "label + common word, counted",
            "label=label-3&search=billing&limit=50",
            "search LIKE '%billing%' AND CAST(labels AS TEXT) LIKE '%\"label-3\"%'",
        ),
        (
            "rare word, counted",
            "search=4242&limit=50",
            "search LIKE '%4242%'",
        ),
    ];
    for (what, query, filter) in cases {
        let (rate, latencies) = read_loop(user, &format!("{base}?{query}"), 16).await;
        let naive = naive_loop(&db, tenant, filter, 16).await;
        rows.push(
            Row::new(
                format!(
                    "task list of {count}, {what}, 16 connections (p99 {:.1} ms)",
                    crate::ms(&latencies, 0.99)
                ),
                backend,
                rate,
                "req/s",
            )
            .against(naive, "naive OFFSET + count(*) pages, SQL only"),
        );
    }
    db.close().await;
    workspace
}
