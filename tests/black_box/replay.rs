//! Rebuilding read models from the log, through the real binary, in both
//! modes: a rebuild of every projection equals the live read models row
//! for row while queries keep answering in full; a failing projection
//! stops alone; events in an older schema are read and rebuilt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Backing, Client, Tenet, User, id, start};
use serde_json::{Value, json};
use tenet_events::db::{Backend, Db};
use tenet_events::envelope::{Actor, Metadata, NewEvent};
use tenet_events::ids::{EventId, StreamId, TenantId};
use tenet_events::store::{self, AppendRequest, ExpectedVersion, StoreOptions};

/// The read-model tables of each projection.
const TABLES: [(&str, &[&str]); 3] = [
    (
        "access",
        &[
            "access_users",
            "access_workspaces",
            "access_members",
            "access_api_keys",
            "access_sessions",
            "access_refresh_tokens",
        ],
    ),
    ("projects", &["projects_view", "project_counts"]),
    ("tasks", &["tasks_view", "task_counts", "comments_view"]),
];

/// Every row of the active generation of `projection` in `table`, as
/// sorted JSON text without the generation column.
async fn rows(db: &Db, projection: &str, table: &str) -> Vec<String> {
    let generation: i32 = tenet_events::with_pool!(db, pool => {
        sqlx::query_scalar("SELECT active_generation FROM projections WHERE name = $1")
            .bind(projection)
            .fetch_one(pool)
            .await
            .expect("active generation")
    });
    let mut rows: Vec<String> = match (db.backend(), db.pool()) {
        (Backend::Postgres, tenet_events::db::Pool::Postgres(pool)) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT (to_jsonb(t) - 'generation')::text FROM {table} t WHERE generation = $1"
            )))
            .bind(generation)
            .fetch_all(pool)
            .await
            .expect("rows")
        }
        (_, tenet_events::db::Pool::Sqlite(pool)) => {
            let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}') WHERE name <> 'generation'"
            )))
            .fetch_all(pool)
            .await
            .expect("columns");
            let pairs: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!("'{c}', CASE WHEN typeof({c}) = 'blob' THEN hex({c}) ELSE {c} END")
                })
                .collect();
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT json_object({}) FROM {table} WHERE generation = $1",
                pairs.join(", ")
            )))
            .bind(generation)
            .fetch_all(pool)
            .await
            .expect("rows")
        }
        _ => unreachable!("a pool of the backend"),
    };
    rows.sort();
    rows
}

async fn all_rows(db: &Db) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for (projection, tables) in TABLES {
        for table in tables {
            all.push((table.to_string(), rows(db, projection, table).await));
        }
    }
    all
}

/// A tenant with some of everything: members (added, changed, removed),
/// API keys (one revoked), projects (one archived and restored), tasks
/// (edited, moved, one deleted) and comments (one edited, one deleted).
async fn mixed_workload(tenet: &Tenet, owner: &User, n: usize) -> String {
    let workspace = owner.workspace(&format!("Mixed {n}")).await;
    let base = format!("/api/v1/workspaces/{workspace}");
    let client = &owner.client;
    client
        .patch(&base, json!({ "name": format!("Renamed {n}") }))
        .await
        .assert_status(200);
    let member = User::register(tenet, "member").await;
    let leaver = User::register(tenet, "leaver").await;
    for (user, role) in [(&member, "member"), (&leaver, "viewer")] {
        client
            .post(
                &format!("{base}/members"),
                json!({ "email": user.email, "role": role }),
            )
            .await
            .assert_status(201);
    }
    client
        .patch(
            &format!("{base}/members/{}", member.id),
            json!({ "role": "admin" }),
        )
        .await
        .assert_status(200);
    let key = id(
        &client
            .post(
                &format!("{base}/api-keys"),
                json!({ "name": "k1", "scopes": ["tasks:*"] }),
            )
            .await,
        201,
    );
    client
        .post(
            &format!("{base}/api-keys"),
            json!({ "name": "k2", "scopes": ["projects:read"] }),
        )
        .await
        .assert_status(201);
    client
        .delete(&format!("{base}/api-keys/{key}"))
        .await
        .assert_status(200);
    let mut projects = Vec::new();
    for p in 0..3 {
        projects.push(id(
            &client
                .post(
                    &format!("{base}/projects"),
                    json!({ "name": format!("P{p}"), "description": "d" }),
                )
                .await,
            201,
        ));
    }
    client
        .patch(
            &format!("{base}/projects/{}", projects[0]),
            json!({ "description": "changed" }),
        )
        .await
        .assert_status(200);
    client
        .delete(&format!("{base}/projects/{}", projects[1]))
        .await
        .assert_status(200);
    client
        .post(
            &format!("{base}/projects/{}/restore", projects[1]),
            json!({}),
        )
        .await
        .assert_status(200);
    client
        .delete(&format!("{base}/projects/{}", projects[2]))
        .await
        .assert_status(200);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let project = &projects[t % 2];
        let priority = ["low", "medium", "high", "urgent"][t % 4];
        tasks.push(id(
            &client
                .post(
                    &format!("{base}/projects/{project}/tasks"),
                    json!({
                        "title": format!("Task {t}"),
                        "priority": priority,
                        "labels": [format!("l{}", t % 3)],
                        "assignee_id": if t % 2 == 0 { Some(&leaver.id) } else { None },
                    }),
                )
                .await,
            201,
        ));
    }
    for (t, task) in tasks.iter().enumerate() {
        let path = format!("{base}/tasks/{task}");
        client
            .patch(
                &path,
                json!({ "description": format!("About {t}"), "due_date": format!("2027-01-0{}", t % 9 + 1) }),
            )
            .await
            .assert_status(200);
        for to in ["in_progress", "in_review", "done"].iter().take(t % 4) {
            client
                .post(&format!("{path}/transitions"), json!({ "to": to }))
                .await
                .assert_status(200);
        }
        let comment = id(
            &client
                .post(
                    &format!("{path}/comments"),
                    json!({ "body": format!("On {t}") }),
                )
                .await,
            201,
        );
        if t % 3 == 0 {
            client
                .patch(
                    &format!("{path}/comments/{comment}"),
                    json!({ "body": "Edited" }),
                )
                .await
                .assert_status(200);
        }
        if t % 3 == 1 {
            client
                .delete(&format!("{path}/comments/{comment}"))
                .await
                .assert_status(200);
        }
    }
    client
        .delete(&format!("{base}/tasks/{}", tasks[7]))
        .await
        .assert_status(200);
    // The leaver goes: the policy unassigns their open tasks.
    client
        .delete(&format!("{base}/members/{}", leaver.id))
        .await
        .assert_status(200);
    // A session rotated and one ended.
    let login = Client::anonymous(tenet)
        .post(
            "/api/v1/auth/login",
            json!({ "email": member.email, "password": member.password }),
        )
        .await;
    let refresh = login.assert_status(200)["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let refreshed = Client::anonymous(tenet)
        .post("/api/v1/auth/refresh", json!({ "refresh_token": refresh }))
        .await;
    let access = refreshed.assert_status(200)["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    Client::anonymous(tenet)
        .with_token(&access)
        .post("/api/v1/auth/logout", json!({}))
        .await;
    workspace
}

/// Waits until every projection is live and has applied the whole log.
async fn caught_up(admin: &Client) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = admin.get("/api/v1/admin/projections").await;
        let projections = page.assert_status(200)["items"]
            .as_array()
            .expect("items")
            .clone();
        let done = projections
            .iter()
            .all(|p| p["lag_events"] == 0 && p["state"] == "live");
        // The policy's work is done too (its unassignments are in the log).
        if done {
            return projections;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projections never caught up: {projections:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, up to 30 s, until `count` (a `SELECT count(*) …`) answers 0.
async fn until_none(db: &Db, count: &'static str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = tenet_events::with_pool!(db, pool => {
            sqlx::query_scalar(count).fetch_one(pool).await.expect("count")
        });
        if left == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}: {left} left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_job(admin: &Client, location: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = admin.get(location).await;
        let job = job.assert_status(200).clone();
        if job["state"] != "running" {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuild never finished: {job:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rebuilding_every_projection_equals_the_live_read_models_and_reads_never_fail(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let root = User::register(&tenet, "root").await;
    backing.grant_platform_admin(&root.email).await;
    let mut owners = Vec::new();
    let mut workspaces = Vec::new();
    for n in 0..3 {
        let owner = User::register(&tenet, "owner").await;
        workspaces.push(mixed_workload(&tenet, &owner, n).await);
        owners.push(owner);
    }
    let db = backing.open_db().await;
    // The policy's unassignments are commands too: they land before its
    // work row goes, and the read models apply them before the snapshot.
    caught_up(&root.client).await;
    until_none(
        &db,
        "SELECT count(*) FROM unassign_work",
        "departed members' tasks unassigned",
    )
    .await;
    let before_states = caught_up(&root.client).await;
    let before = all_rows(&db).await;
    assert!(
        before.iter().all(|(_, rows)| !rows.is_empty()),
        "every table has rows"
    );

    // Reads keep going, in full, for the whole rebuild.
    let reading = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for (owner, workspace) in owners.iter().zip(&workspaces) {
        let base = format!("/api/v1/workspaces/{workspace}");
        let expected: Vec<(String, Value)> = {
            let mut expected = Vec::new();
            for path in [
                format!("{base}/projects?status=all&limit=100"),
                format!("{base}/tasks?limit=100"),
                format!("{base}/members?limit=100"),
                format!("{base}/api-keys?status=all&limit=100"),
            ] {
                let page = owner.client.get(&path).await;
                expected.push((path, page.assert_status(200).clone()));
            }
            expected
        };
        let client = owner.client.clone();
        let (reading, reads) = (reading.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while reading.load(Ordering::Relaxed) {
                for (path, expected) in &expected {
                    let page = client.get(path).await;
                    reads.fetch_add(1, Ordering::Relaxed);
                    if page.status != 200 {
                        failures.push(format!("{path}: {}", page.status));
                    } else if page.body["total"] != expected["total"]
                        || page.body["items"].as_array().map(Vec::len)
                            != expected["items"].as_array().map(Vec::len)
                    {
                        failures.push(format!("{path}: a partial page {:#}", page.body));
                    }
                }
            }
            failures
        }));
    }

    let mut jobs = Vec::new();
    for (index, projection) in before_states.iter().enumerate() {
        let name = projection["name"].as_str().expect("name");
        let started = root
            .client
            .post(
                &format!("/api/v1/admin/projections/{name}/replay"),
                json!({}),
            )
            .await;
        started.assert_status(202);
        assert_eq!(started.body["state"], "running");
        let location = started.header("location").expect("Location");
        if index == 0 {
            root.client
                .post(
                    &format!("/api/v1/admin/projections/{name}/replay"),
                    json!({}),
                )
                .await
                .assert_problem(409, "CONFLICT");
        }
        jobs.push((name.to_owned(), location));
    }
    root.client
        .post("/api/v1/admin/projections/no-such-thing/replay", json!({}))
        .await
        .assert_problem(404, "NOT_FOUND");
    for (name, location) in &jobs {
        let job = wait_for_job(&root.client, location).await;
        assert_eq!(job["state"], "completed", "{name}: {job:#}");
        assert_eq!(job["progress"], 1.0);
    }
    reading.store(false, Ordering::Relaxed);
    for reader in readers {
        let failures = reader.await.expect("reader");
        assert!(
            failures.is_empty(),
            "reads during the rebuild: {failures:#?}"
        );
    }
    assert!(reads.load(Ordering::Relaxed) > 0);

    let after_states = caught_up(&root.client).await;
    for (before, after) in before_states.iter().zip(&after_states) {
        assert_eq!(before["name"], after["name"]);
        assert_eq!(
            after["generation"].as_i64(),
            before["generation"].as_i64().map(|g| g + 1),
            "{} swapped to a new generation",
            after["name"]
        );
    }
    let after = all_rows(&db).await;
    for ((table, live), (_, rebuilt)) in before.iter().zip(&after) {
        assert_eq!(
            live, rebuilt,
            "{table}: the rebuild differs from the live model"
        );
    }
    // The old generations' rows are removed.
    until_none(
        &db,
        "SELECT count(*) FROM projection_checkpoints WHERE status = 'retired'",
        "retired generations removed",
    )
    .await;
    // Writes after the swap land in the new generation.
    let base = format!("/api/v1/workspaces/{}", workspaces[0]);
    let created = owners[0]
        .client
        .post(
            &format!("{base}/projects"),
            json!({ "name": "After the swap" }),
        )
        .await;
    let project = id(&created, 201);
    owners[0]
        .client
        .get_after(&format!("{base}/projects/{project}"), &created.token())
        .await
        .assert_status(200);
    db.close().await;
}

/// Appends one event the way another writer (an older binary, a buggy
/// one) would have: straight into the log.
async fn append_raw(
    db: &Db,
    tenant: TenantId,
    stream: StreamId,
    stream_type: &'static str,
    event_type: &'static str,
    version: i32,
    data: Value,
) {
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .expect("open the store");
    store
        .append(AppendRequest::new(
            tenant,
            stream,
            stream_type,
            ExpectedVersion::NO_STREAM,
            vec![NewEvent {
                event_id: EventId::generate(),
                event_type: event_type.into(),
                schema_version: version,
                data,
            }],
            Metadata::new(Actor::System {
                name: "older-binary".into(),
            }),
        ))
        .await
        .expect("append");
}

async fn projection(admin: &Client, name: &str) -> Value {
    let page = admin.get("/api/v1/admin/projections").await;
    page.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .expect("the projection")
}

async fn a_poison_event_fails_its_projection_alone_and_shows_in_readiness(backing: Backing) {
    let tenet = start(&backing).await;
    let root = User::register(&tenet, "root").await;
    backing.grant_platform_admin(&root.email).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Poisoned").await;
    let db = backing.open_db().await;
    append_raw(
        &db,
        TenantId::from_uuid(workspace.parse().expect("uuid")),
        StreamId::generate(),
        "comment",
        "comment.added",
        1,
        json!({ "no": "such payload" }),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let tasks = projection(&root.client, "tasks").await;
        if tasks["state"] == "failed" {
            break tasks;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed: {tasks:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("comment.added"))
    );
    assert!(failed["error_position"].as_i64().is_some());

    // The others go on.
    let created = owner
        .client
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Still works" }),
        )
        .await;
    let project = id(&created, 201);
    owner
        .client
        .get_after(
            &format!("/api/v1/workspaces/{workspace}/projects/{project}"),
            &created.token(),
        )
        .await
        .assert_status(200);
    assert_eq!(projection(&root.client, "projects").await["state"], "live");

    let ready = Client::anonymous(&tenet).get("/api/v1/health/ready").await;
    assert_eq!(ready.status, 503);
    let tasks = ready.body["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .find(|p| p["name"] == "tasks")
        .expect("tasks in readiness")
        .clone();
    assert_eq!(
        (tasks["status"].clone(), tasks["ok"].clone()),
        (json!("failed"), json!(false))
    );
    let metrics = Client::anonymous(&tenet).get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(
        text.contains("tenet_projection_failures_total{projection=\"tasks\"}"),
        "{text}"
    );

    // A rebuild by the same binary meets the same event and says so.
    let started = root
        .client
        .post("/api/v1/admin/projections/tasks/replay", json!({}))
        .await;
    started.assert_status(202);
    let job = wait_for_job(&root.client, &started.header("location").expect("Location")).await;
    assert_eq!(job["state"], "failed");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("comment.added"))
    );
    // Queries still answer from the failed generation meanwhile.
    owner
        .client
        .get(&format!("/api/v1/workspaces/{workspace}/tasks"))
        .await
        .assert_status(200);
    db.close().await;
}

async fn events_of_an_older_schema_are_read_and_rebuilt(backing: Backing) {
    let tenet = start(&backing).await;
    let root = User::register(&tenet, "root").await;
    backing.grant_platform_admin(&root.email).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Legacy").await;
    let db = backing.open_db().await;
    // project.created v1, as the binary before task keys wrote it: no key.
    let project = StreamId::generate();
    append_raw(
        &db,
        TenantId::from_uuid(workspace.parse().expect("uuid")),
        project,
        "project",
        "project.created",
        1,
        json!({ "name": "Old project", "slug": "old-app", "description": "From v1" }),
    )
    .await;
    let path = format!("/api/v1/workspaces/{workspace}/projects/{project}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let read = loop {
        let reply = owner.client.get(&path).await;
        if reply.status == 200 {
            break reply.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the v1 project never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(read["key"], "OLD-APP");
    assert_eq!(read["name"], "Old project");
    // The write side reads it too: its tasks take the upcast key.
    let task = owner
        .client
        .post(
            &format!("{path}/tasks"),
            json!({ "title": "New work on old data" }),
        )
        .await;
    assert_eq!(task.assert_status(201)["key"], "OLD-APP-1");

    let started = root
        .client
        .post("/api/v1/admin/projections/projects/replay", json!({}))
        .await;
    let job = wait_for_job(&root.client, &started.header("location").expect("Location")).await;
    assert_eq!(job["state"], "completed", "{job:#}");
    let rebuilt = owner.client.get(&path).await;
    let rebuilt = rebuilt.assert_status(200);
    assert_eq!(rebuilt["key"], "OLD-APP");
    assert_eq!(rebuilt["open_tasks"], 1);
    let audit = owner
        .client
        .get(&format!(
            "/api/v1/workspaces/{workspace}/audit-log?stream_id={project}"
        ))
        .await;
    assert_eq!(audit.assert_status(200)["items"][0]["schema_version"], 1);
    db.close().await;
}

async fn the_cli_lists_projections_and_replays_one_against_a_running_deployment(backing: Backing) {
    let tenet = start(&backing).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Cli").await;
    let created = owner
        .client
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Cli" }),
        )
        .await;
    let project = id(&created, 201);
    let listed = backing.cli(&["projections", "list"]).await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    for name in ["access", "projects", "tasks", "unassign-departed-members"] {
        assert!(text.contains(name), "{name} in {text}");
    }
    let replayed = backing.cli(&["projections", "replay", "projects"]).await;
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let text = String::from_utf8_lossy(&replayed.stdout);
    assert!(text.contains("projects rebuilt: generation 2"), "{text}");
    owner
        .client
        .get(&format!(
            "/api/v1/workspaces/{workspace}/projects/{project}"
        ))
        .await
        .assert_status(200);
    let unknown = backing.cli(&["projections", "replay", "nothing"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no projection is named"));
}

in_both_modes!(
    the_cli_lists_projections_and_replays_one_against_a_running_deployment,
    rebuilding_every_projection_equals_the_live_read_models_and_reads_never_fail,
    a_poison_event_fails_its_projection_alone_and_shows_in_readiness,
    events_of_an_older_schema_are_read_and_rebuilt,
);
