//! Workspace analytics over a workspace of 100,000 tasks
//! (`TENET_BENCH_TASKS`), over HTTP, beside the naive way to answer the
//! same figures: aggregate queries over `tasks_view` on every request
//! (created and completed per day, open by status and priority, completed
//! per assignee, and the cycle-time percentiles from each task's
//! `started_at` and `completed_at`), straight against the database.
//!
//! The history is written straight into the log, as the service would
//! have written it, over 50 projects, with instants spread over the 90
//! days before the run:
//! each task's creation, and for seven in ten a move to in progress and,
//! hours later, to done (the HTTP path would take many minutes to seed
//! as much). The appends are pipelined into the store's group commit.
//!
//! Each figure is measured in UTC (whole UTC days: one counter row per
//! day) and in Asia/Kathmandu (+05:45: every day 23 hours and 4 slots,
//! the most a zone reads), at 1 and 4 connections, beside the naive
//! aggregate (UTC days; it is no cheaper in a zone) in the same run.
//!
//! `cargo bench --bench analytics` (`TENET_BENCH_SECONDS` sets run length).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::{Backing, Mode, Tenet, User};
use hdrhistogram::Histogram;
use serde_json::json;
use support::{Row, print_table, run_for};
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::task::{
    Priority, TaskCreated, TaskEvent, TaskStatus, TaskStatusChanged,
};
use tenet_events::db::{Backend, Db};
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{ProjectId, TaskId, TenantId, UserId};
use tenet_events::store::{
    self, AppendRequest, EventStore, ExpectedVersion, PendingAppend, StoreOptions,
};

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

fn task_count() -> usize {
    std::env::var("TENET_BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// The range the history covers and the queries ask for.
const DAYS: i64 = 90;

fn changed(project: ProjectId, from: TaskStatus, to: TaskStatus) -> TaskEvent {
    TaskEvent::StatusChanged(TaskStatusChanged {
        project_id: project,
        from,
        to,
    })
}

/// Appends queued before their outcomes are awaited: enough for the
/// store's group commit to fill its transactions (up to 2,000 events).
const IN_FLIGHT: usize = 4_000;

/// Projects the tasks are spread over: a workspace of 100,000 tasks holds
/// many, and its figures must not cost a read per project.
const PROJECTS: usize = 50;

/// Writes the history of `count` tasks over `projects`; answers the last
/// position. Appends are pipelined (submitted without waiting for each
/// commit, each task's move to done chained on its creation), so seeding
/// costs a few thousand group-commit transactions, not one per task.
async fn seed(
    store: &Arc<dyn EventStore>,
    workspace: TenantId,
    projects: &[ProjectId],
    assignees: Vec<UserId>,
    count: usize,
) -> i64 {
    let start = Utc::now() - TimeDelta::days(DAYS);
    let mut pending: Vec<PendingAppend> = Vec::with_capacity(IN_FLIGHT);
    let mut last = 0;
    for n in 0..count {
        let assignee = assignees[n % assignees.len()];
        let project = projects[n % projects.len()];
        let created_at = start + TimeDelta::seconds((n as i64 * 7_717) % (DAYS * 86_400 - 86_400));
        let metadata = Metadata::new(Actor::User {
            id: assignee.as_uuid(),
        });
        let mut events = vec![TaskEvent::Created(TaskCreated {
            project_id: project,
            number: n as i64 + 1,
            key: format!("SEED-{}", n + 1),
            title: format!("Seeded task {n}"),
            description: String::new(),
            priority: Priority::ALL[n % 4],
            assignee_id: (n % 7 != 0).then_some(assignee),
            labels: vec![],
            due_date: None,
        })];
        let finishes = n % 10 < 7;
        if finishes || n % 10 == 7 {
            events.push(changed(project, TaskStatus::Todo, TaskStatus::InProgress));
        }
        let stream = TaskId::generate();
        let mut request = AppendRequest::new(
            workspace,
            stream.into(),
            "task",
            ExpectedVersion::NO_STREAM,
            events.iter().map(DomainEvent::to_new_event).collect(),
            metadata.clone(),
        );
        request.new_stream = true;
        request.occurred_at = created_at;
        let created = store.submit(request).await.expect("seed");
        let created_id = created.id();
        pending.push(created);
        if finishes {
            let mut done = AppendRequest::new(
                workspace,
                stream.into(),
                "task",
                ExpectedVersion::Exact(2),
                vec![changed(project, TaskStatus::InProgress, TaskStatus::Done).to_new_event()],
                metadata,
            );
            done.after = vec![created_id];
            // Hours to a few days of work, varied.
            done.occurred_at = created_at + TimeDelta::seconds(600 + (n as i64 * 3_331) % 259_200);
            pending.push(store.submit(done).await.expect("seed done"));
        }
        if pending.len() >= IN_FLIGHT {
            last = last.max(settle(&mut pending).await);
        }
    }
    last.max(settle(&mut pending).await)
}

/// Awaits every pending append; answers the highest position.
async fn settle(pending: &mut Vec<PendingAppend>) -> i64 {
    let outcomes = futures::future::join_all(pending.drain(..).map(PendingAppend::outcome)).await;
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("seed append").position.0)
        .max()
        .unwrap_or(0)
}

/// `connections` clients reading `path` back to back: the latencies.
async fn read_loop(user: &User, path: &str, connections: usize) -> Histogram<u64> {
    let until = Instant::now() + run_for();
    let tasks = (0..connections).map(|_| {
        let http = user.client.clone();
        let path = path.to_owned();
        tokio::spawn(async move {
            let mut latencies = histogram();
            while Instant::now() < until {
                let sent = Instant::now();
                let reply = http.get(&path).await;
                assert_eq!(reply.status, 200, "{:#}", reply.body);
                latencies.record(sent.elapsed().as_micros() as u64).ok();
            }
            latencies
        })
    });
    let mut all = histogram();
    for task in futures::future::join_all(tasks).await {
        all.add(task.expect("reader")).ok();
    }
    all
}

/// The naive answer: every figure aggregated from `tasks_view` per request.
async fn naive_loop(db: &Db, tenant: TenantId, connections: usize) -> Histogram<u64> {
    let until = Instant::now() + run_for();
    let generation = "(SELECT active_generation FROM projections WHERE name = 'tasks')";
    let from = Utc::now() - TimeDelta::days(DAYS + 1);
    let to = Utc::now() + TimeDelta::days(1);
    let (day_created, day_completed, cycle) = match db.backend() {
        Backend::Postgres => (
            "date_trunc('day', created_at)::text",
            "date_trunc('day', completed_at)::text",
            "CAST(EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000 AS BIGINT)",
        ),
        Backend::Sqlite => (
            "substr(created_at, 1, 10)",
            "substr(completed_at, 1, 10)",
            "CAST((julianday(completed_at) - julianday(started_at)) * 86400000 AS INTEGER)",
        ),
    };
    let statements = [
        format!(
            "SELECT {day_created}, count(*) FROM tasks_view WHERE generation = {generation} AND tenant_id = $1 \
             AND created_at >= $2 AND created_at < $3 GROUP BY 1"
        ),
        format!(
            "SELECT {day_completed}, count(*) FROM tasks_view WHERE generation = {generation} AND tenant_id = $1 \
             AND completed_at >= $2 AND completed_at < $3 GROUP BY 1"
        ),
        format!(
            "SELECT status || '/' || priority, count(*) FROM tasks_view WHERE generation = {generation} AND tenant_id = $1 \
             AND status IN ('todo', 'in_progress', 'in_review') AND created_at >= $2 AND created_at < $3 GROUP BY 1"
        ),
        format!(
            "SELECT 'assignee', count(*) FROM tasks_view WHERE generation = {generation} \
             AND tenant_id = $1 AND completed_at >= $2 AND completed_at < $3 GROUP BY assignee_id"
        ),
    ];
    let cycles = format!(
        "SELECT {cycle} AS ms FROM tasks_view WHERE generation = {generation} AND tenant_id = $1 \
         AND completed_at >= $2 AND completed_at < $3 AND started_at IS NOT NULL ORDER BY ms"
    );
    let tasks = (0..connections).map(|_| {
        let db = db.clone();
        let statements = statements.clone();
        let cycles = cycles.clone();
        tokio::spawn(async move {
            let mut latencies = histogram();
            while Instant::now() < until {
                let sent = Instant::now();
                tenet_events::with_pool!(db, pool => {
                    for statement in &statements {
                        let _: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(statement.clone()))
                            .bind(tenant)
                            .bind(from)
                            .bind(to)
                            .fetch_all(pool)
                            .await
                            .expect("aggregate");
                    }
                    // The percentiles: every cycle time, sorted, two picked.
                    let sorted: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(cycles.clone()))
                        .bind(tenant)
                        .bind(from)
                        .bind(to)
                        .fetch_all(pool)
                        .await
                        .expect("cycles");
                    std::hint::black_box(sorted.get(sorted.len() / 2));
                });
                latencies.record(sent.elapsed().as_micros() as u64).ok();
            }
            latencies
        })
    });
    let mut all = histogram();
    for task in futures::future::join_all(tasks).await {
        all.add(task.expect("naive reader")).ok();
    }
    all
}

async fn bench(mode: Mode, rows: &mut Vec<Row>) {
    let Some(backing) = Backing::new(mode).await else {
        eprintln!("skipping {mode:?}: no Postgres/NATS");
        return;
    };
    let backend = match mode {
        Mode::Embedded => "SQLite",
        Mode::Distributed => "Postgres+NATS",
    };
    let tenet = Tenet::start(
        &backing,
        &[("RUST_LOG", "warn"), ("TENET_RATE_LIMIT", "100000000")],
    )
    .await;
    let user = User::register(&tenet, "bench").await;
    let workspace = user.workspace("Analytics").await;
    let mut projects = Vec::with_capacity(PROJECTS);
    for n in 0..PROJECTS {
        let project = user
            .client
            .post(
                &format!("/api/v1/workspaces/{workspace}/projects"),
                json!({ "name": format!("Seeded {n}") }),
            )
            .await;
        let project: ProjectId = project.body["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        projects.push(project);
    }
    let tenant = TenantId::from_uuid(workspace.parse().expect("uuid"));
    let db = backing.open_db().await;
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .expect("store");
    let assignees: Vec<UserId> = (0..20).map(|_| UserId::generate()).collect();
    let count = task_count();
    let seeding = Instant::now();
    let last = seed(&store, tenant, &projects, assignees, count).await;
    let today = Utc::now().date_naive();
    let from = today - TimeDelta::days(DAYS);
    let path = format!("/api/v1/workspaces/{workspace}/analytics?from={from}&to={today}");
    // Wait until the analytics and the tasks read model have it all.
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let answer = user.client.get_after(&path, &last.to_string()).await;
        let tasks = user
            .client
            .get_after(
                &format!("/api/v1/workspaces/{workspace}/tasks?limit=1"),
                &last.to_string(),
            )
            .await;
        let created: i64 = answer.body["days"]
            .as_array()
            .map(|days| {
                days.iter()
                    .map(|d| d["created"].as_i64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if answer.status == 200
            && created == count as i64
            && tasks.body["total"].as_u64() == Some(count as u64)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the seeded tasks never showed: {:#}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{backend}: {count} tasks seeded and projected in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    // As autovacuum leaves a workspace whose history is days old: its
    // statistics current and its pages of past days all-visible, so
    // index-only reads stay index-only (a seeding of minutes would
    // otherwise be measured mid-way to that).
    if let tenet_events::db::Pool::Postgres(pool) = db.pool() {
        for table in [
            "tasks_view",
            "analytics_tasks",
            "analytics_activity",
            "analytics_open",
            "analytics_completions",
            "analytics_cycle_days",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .execute(pool)
                .await
                .expect("analyze");
        }
    }
    let zoned = format!("{path}&tz=Asia/Kathmandu");
    for connections in [1, 4] {
        let naive = naive_loop(&db, tenant, connections).await;
        for (zone, path) in [("UTC", &path), ("Asia/Kathmandu", &zoned)] {
            let served = read_loop(&user, path, connections).await;
            rows.push(
                Row::new(
                    format!(
                        "analytics of {count} tasks in {PROJECTS} projects over {DAYS} days in {zone}, {connections} connection(s), p99 (p50 {:.2} ms; {} requests)",
                        ms(&served, 0.5),
                        served.len()
                    ),
                    backend,
                    ms(&served, 0.99),
                    "ms",
                )
                .against(
                    ms(&naive, 0.99),
                    format!(
                        "naive aggregates over tasks_view, SQL only, p99 (p50 {:.1} ms)",
                        ms(&naive, 0.5)
                    ),
                ),
            );
        }
    }
    db.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Each backend's table as soon as it is measured: seeding takes
        // minutes, and a failure in the second must not lose the first.
        // `TENET_BENCH_MODES=distributed` (or `embedded`) runs one backend.
        let modes = std::env::var("TENET_BENCH_MODES")
            .unwrap_or_else(|_| "embedded,distributed".to_owned());
        for (mode, title) in [
            (Mode::Embedded, "Analytics, embedded"),
            (Mode::Distributed, "Analytics, distributed"),
        ] {
            let name = match mode {
                Mode::Embedded => "embedded",
                Mode::Distributed => "distributed",
            };
            if !modes.contains(name) {
                continue;
            }
            let mut rows = Vec::new();
            bench(mode, &mut rows).await;
            print_table(title, &rows);
        }
    });
}
