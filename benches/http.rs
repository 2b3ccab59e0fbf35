//! Commands and lists over HTTP against the real binary, both backends:
//! create-project throughput at 64 connections and create-task throughput
//! at 16 and 64 connections (all into one project, whose stream hands out
//! the numbers) beside the durable-append ceiling of the same run; how soon
//! an acknowledged command is visible to reads (command ack → a GET
//! carrying its consistency token answers) at steady 200 and 1,000
//! commands/s; and filtered task lists over a workspace of 100,000 tasks
//! beside the naive `OFFSET` + `count(*)` of the same page on the same
//! data; single-resource GETs in a workspace of one and one of 100,000
//! tasks and 25,000 projects beside the primary-key read ceiling.
//!
//! `cargo bench --bench http` (`TENET_BENCH_SECONDS` sets run length,
//! `TENET_BENCH_MODES` the backends, `TENET_BENCH_STATEMENTS` counts SQL
//! statements per command instead: see [`statements`]).

#[path = "../tests/common/mod.rs"]
mod common;
mod lists;
mod reads;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backing, Mode, Tenet, User};
use hdrhistogram::Histogram;
use serde_json::json;
use support::{Row, print_table, run_for};

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

/// Closed loop: `connections` clients each creating projects back to back.
async fn create_projects(
    user: &User,
    workspace: &str,
    connections: usize,
) -> (f64, Histogram<u64>) {
    let path = format!("/api/v1/workspaces/{workspace}/projects");
    closed_loop(user, &path, connections, |client, n| {
        json!({ "name": format!("Bench {client}-{n}-{}", uuid::Uuid::new_v4().simple()) })
    })
    .await
}

/// Closed loop: `connections` clients each creating tasks in one project.
async fn create_tasks(
    user: &User,
    workspace: &str,
    project: &str,
    connections: usize,
) -> (f64, Histogram<u64>) {
    let path = format!("/api/v1/workspaces/{workspace}/projects/{project}/tasks");
    closed_loop(user, &path, connections, |client, n| {
        json!({ "title": format!("Task {client}-{n}"), "priority": "high", "labels": ["bench"] })
    })
    .await
}

/// `connections` clients each POSTing `body(client, n)` to `path` back to
/// back for the run; answers requests/s and their latencies.
async fn closed_loop(
    user: &User,
    path: &str,
    connections: usize,
    body: fn(usize, u64) -> serde_json::Value,
) -> (f64, Histogram<u64>) {
    let until = Instant::now() + run_for();
    let started = Instant::now();
    let tasks = (0..connections).map(|client| {
        let http = user.client.clone();
        let path = path.to_owned();
        tokio::spawn(async move {
            let mut latencies = histogram();
            let mut n = 0u64;
            while Instant::now() < until {
                let sent = Instant::now();
                let reply = http.post(&path, body(client, n)).await;
                assert_eq!(reply.status, 201, "{:#}", reply.body);
                latencies.record(sent.elapsed().as_micros() as u64).ok();
                n += 1;
            }
            latencies
        })
    });
    let mut all = histogram();
    for task in futures::future::join_all(tasks).await {
        all.add(task.expect("client task")).ok();
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), all)
}

/// Open loop at `rate` commands/s. Every `rate / 100`th acknowledged command
/// is followed by a GET with its consistency token (≤ 100 probes/s, so the
/// probes do not double the load they measure); records ack → GET answered.
async fn visibility(user: &User, workspace: &str, rate: u64) -> Histogram<u64> {
    let count = (rate as f64 * run_for().as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let results = Arc::new(tokio::sync::Mutex::new(histogram()));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(count as usize);
    let probe_every = (rate / 100).max(1);
    for n in 0..count {
        ticker.tick().await;
        let http = user.client.clone();
        let results = results.clone();
        let path = format!("/api/v1/workspaces/{workspace}/projects");
        tasks.push(tokio::spawn(async move {
            let created = http
                .post(
                    &path,
                    json!({ "name": format!("Lag {n}-{}", uuid::Uuid::new_v4().simple()) }),
                )
                .await;
            assert_eq!(created.status, 201, "{:#}", created.body);
            if n % probe_every != 0 {
                return;
            }
            let acked = Instant::now();
            let id = created.body["id"].as_str().expect("id").to_owned();
            let read = http
                .get_after(&format!("{path}/{id}"), &created.token())
                .await;
            assert_eq!(read.status, 200, "{:#}", read.body);
            results
                .lock()
                .await
                .record(acked.elapsed().as_micros() as u64)
                .ok();
        }));
    }
    futures::future::join_all(tasks).await;
    let results = results.lock().await;
    results.clone()
}

/// SQL statements Postgres executes per create task and per GET, end to
/// end (the command, the relay, every projector, the outbox), counted from
/// the server's log with `log_statement = all` set on the bench's database
/// only. Opt-in: `TENET_BENCH_STATEMENTS=<path of the Postgres log>`
/// (readable by the bench); runs only this measurement.
async fn statements(log: &str, rows: &mut Vec<Row>) {
    let Some(backing) = Backing::new(Mode::Distributed).await else {
        return;
    };
    let url = backing
        .database
        .as_ref()
        .and_then(|database| database.url.clone())
        .expect("a Postgres URL");
    let name = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .expect("a database name")
        .to_owned();
    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} SET log_statement = 'all'"
    )))
    .execute(&admin)
    .await
    .expect("log statements");
    admin.close().await;
    let tenet = Tenet::start(&backing, &[("RUST_LOG", "warn")]).await;
    let user = User::register(&tenet, "statements").await;
    let workspace = user.workspace("Statements").await;
    let project = user
        .client
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Counted" }),
        )
        .await;
    let project = project.body["id"].as_str().expect("project id").to_owned();
    let count = |from: u64| -> u64 {
        let text = std::fs::read(log).expect("the Postgres log");
        let text = String::from_utf8_lossy(&text[from as usize..]);
        let mine = format!("@{name} LOG:  ");
        text.lines()
            .filter(|line| {
                line.split_once(&mine).is_some_and(|(_, rest)| {
                    rest.starts_with("statement: ") || rest.starts_with("execute ")
                })
            })
            .count() as u64
    };
    let size = || std::fs::metadata(log).expect("the Postgres log").len();
    let settle = || tokio::time::sleep(Duration::from_secs(2));
    settle().await;
    // What the service runs on its own meanwhile (polls, leases), over a
    // window as long as the measured one, is taken off.
    let n = 50;
    let window = Duration::from_millis(50 * n + 2_000);
    let start = size();
    tokio::time::sleep(window).await;
    let idle = count(start) as f64;
    let started = Instant::now();
    let start = size();
    let mut last = None;
    for i in 0..n {
        let created = user
            .client
            .post(
                &format!("/api/v1/workspaces/{workspace}/projects/{project}/tasks"),
                json!({ "title": format!("Counted {i}") }),
            )
            .await;
        assert_eq!(created.status, 201, "{:#}", created.body);
        last = Some(created.body["id"].as_str().expect("id").to_owned());
        // One at a time, each fully projected: no batching flatters it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle().await;
    let idle_share = idle * started.elapsed().as_secs_f64() / window.as_secs_f64();
    let per_create = (count(start) as f64 - idle_share) / n as f64;
    let path = format!(
        "/api/v1/workspaces/{workspace}/tasks/{}",
        last.expect("a task")
    );
    let started = Instant::now();
    let start = size();
    for _ in 0..n {
        assert_eq!(user.client.get(&path).await.status, 200);
    }
    settle().await;
    let idle_share = idle * started.elapsed().as_secs_f64() / window.as_secs_f64();
    let per_get = (count(start) as f64 - idle_share) / n as f64;
    rows.push(Row::new(
        "SQL statements per second of an idle service",
        "postgres+nats",
        idle / window.as_secs_f64(),
        "statements/s",
    ));
    rows.push(Row::new(
        "SQL statements per create task, one at a time, end to end",
        "postgres+nats",
        per_create,
        "statements",
    ));
    rows.push(Row::new(
        "SQL statements per GET task",
        "postgres+nats",
        per_get,
        "statements",
    ));
}

async fn bench(mode: Mode, rows: &mut Vec<Row>) {
    let Some(backing) = Backing::new(mode).await else {
        return;
    };
    let backend = match mode {
        Mode::Embedded => "sqlite",
        Mode::Distributed => "postgres+nats",
    };
    let ceiling = match &backing.database {
        Some(database) => {
            let url = database.url.clone().expect("url");
            // The ceiling is a separate database, so its rows do not slow
            // the service's.
            let sixteen = support::pgbench_append_ceiling(&url, 16).await;
            let sixty_four = support::pgbench_append_ceiling(&url, 64).await;
            sixteen.into_iter().chain(sixty_four).reduce(f64::max)
        }
        None => None,
    };
    // One user drives all the load: lift the per-principal rate limit.
    let tenet = Tenet::start(
        &backing,
        &[("RUST_LOG", "warn"), ("TENET_RATE_LIMIT", "100000000")],
    )
    .await;
    let user = User::register(&tenet, "bench").await;
    let workspace = user.workspace("Bench").await;

    let (rate, latencies) = create_projects(&user, &workspace, 64).await;
    let what = format!(
        "create project over HTTP, 64 connections (p50 {:.1} ms, p99 {:.1} ms)",
        ms(&latencies, 0.5),
        ms(&latencies, 0.99)
    );
    let mut row = Row::new(what, backend, rate, "req/s");
    if let Some(ceiling) = ceiling {
        row = row.against(ceiling, "pgbench append, best of 16/64 clients");
    }
    rows.push(row);

    let project = user
        .client
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Task bench" }),
        )
        .await;
    let project = project.body["id"].as_str().expect("project id").to_owned();
    for connections in [16, 64] {
        let (rate, latencies) = create_tasks(&user, &workspace, &project, connections).await;
        let what = format!(
            "create task over HTTP (one project), {connections} connections (p50 {:.1} ms, p99 {:.1} ms)",
            ms(&latencies, 0.5),
            ms(&latencies, 0.99)
        );
        let mut row = Row::new(what, backend, rate, "req/s");
        if let Some(ceiling) = ceiling {
            row = row.against(ceiling, "pgbench append, best of 16/64 clients");
        }
        rows.push(row);
    }

    let big = lists::bench(&backing, &user, backend, rows).await;
    reads::bench(&backing, &tenet, &user, &big, backend, rows).await;

    for rate in [200, 1_000] {
        let lag = visibility(&user, &workspace, rate).await;
        if std::env::var("TENET_BENCH_METRICS").is_ok() {
            // Where the time goes, by the service's own stage histograms.
            let metrics = tenet
                .http
                .get(tenet.url("/metrics"))
                .send()
                .await
                .expect("metrics");
            let text = metrics.text().await.expect("metrics text");
            let stages: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.contains("_seconds{")
                        && (l.contains("quantile=\"0.5\"") || l.contains("quantile=\"0.99\""))
                })
                .filter(|l| l.contains("relay") || l.contains("projection") || l.contains("append"))
                .collect();
            eprintln!("after {rate}/s:\n{}", stages.join("\n"));
        }
        rows.push(Row::new(
            format!("ack → visible to reads at {rate}/s, p50"),
            backend,
            ms(&lag, 0.5),
            "ms",
        ));
        rows.push(Row::new(
            format!("ack → visible to reads at {rate}/s, p99"),
            backend,
            ms(&lag, 0.99),
            "ms",
        ));
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        if let Ok(log) = std::env::var("TENET_BENCH_STATEMENTS") {
            statements(&log, &mut rows).await;
            print_table("Statements", &rows);
            return;
        }
        // `TENET_BENCH_MODES=distributed` (or `embedded`) runs one backend.
        let modes = std::env::var("TENET_BENCH_MODES")
            .unwrap_or_else(|_| "embedded,distributed".to_owned());
        if modes.contains("embedded") {
            bench(Mode::Embedded, &mut rows).await;
        }
        if modes.contains("distributed") {
            bench(Mode::Distributed, &mut rows).await;
        }
        print_table("Commands over HTTP", &rows);
    });
}
