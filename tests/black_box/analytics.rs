//! Workspace analytics through the real binary, in both modes: a scripted
//! history gives exact figures (per day in a time zone, cycle-time
//! percentiles, open tasks, completions per assignee), a rebuild of the
//! projection gives the same answer, bad queries are refused by field, and
//! another tenant's workspace or project is not found.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::{Value, json};

use crate::common::{Backing, Board, Client, User, start};

fn analytics_url(workspace: &str, query: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/analytics?{query}")
}

fn instant(value: &Value) -> Option<DateTime<FixedOffset>> {
    value
        .as_str()
        .map(|text| DateTime::parse_from_rfc3339(text).expect("an RFC 3339 instant"))
}

/// The value at nearest rank ⌈p·n⌉ of `sorted`.
fn percentile(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// What the analytics must say of `tasks` (the live tasks as GET shows
/// them), in the zone of `offset`.
fn expected(tasks: &[Value], offset: FixedOffset) -> Value {
    let day = |at: DateTime<FixedOffset>| at.with_timezone(&offset).date_naive();
    let mut days: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
    let mut cycles = Vec::new();
    let mut by_status: BTreeMap<String, i64> = ["todo", "in_progress", "in_review"]
        .map(|s| (s.to_owned(), 0))
        .into_iter()
        .collect();
    let mut by_priority: BTreeMap<String, i64> = ["low", "medium", "high", "urgent"]
        .map(|s| (s.to_owned(), 0))
        .into_iter()
        .collect();
    let mut assignees: BTreeMap<String, i64> = BTreeMap::new();
    for task in tasks {
        days.entry(day(instant(&task["created_at"]).expect("created_at")))
            .or_default()
            .0 += 1;
        if let Some(done) = instant(&task["completed_at"]) {
            days.entry(day(done)).or_default().1 += 1;
            *assignees
                .entry(task["assignee_id"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
            if let Some(started) = instant(&task["started_at"]) {
                cycles.push((done - started).num_milliseconds());
            }
        }
        let status = task["status"].as_str().unwrap_or_default();
        if matches!(status, "todo" | "in_progress" | "in_review") {
            *by_status.entry(status.to_owned()).or_default() += 1;
            *by_priority
                .entry(task["priority"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    cycles.sort_unstable();
    let (first, last) = (
        *days.keys().next().expect("a day"),
        *days.keys().last().expect("a day"),
    );
    let all_days: Vec<Value> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| {
            let (created, completed) = days.get(&d).copied().unwrap_or_default();
            json!({ "date": d.to_string(), "created": created, "completed": completed })
        })
        .collect();
    let mut completed_by: Vec<(String, i64)> = assignees.into_iter().collect();
    completed_by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    json!({
        "from": first.to_string(),
        "to": last.to_string(),
        "days": all_days,
        "cycle_time": {
            "count": cycles.len(),
            "p50_ms": percentile(&cycles, 50),
            "p85_ms": percentile(&cycles, 85),
        },
        "open": {
            "total": by_status.values().sum::<i64>(),
            "by_status": by_status,
            "by_priority": by_priority,
        },
        "completed_by_assignee": completed_by
            .into_iter()
            .map(|(assignee, completed)| json!({
                "assignee_id": if assignee.is_empty() { Value::Null } else { json!(assignee) },
                "completed": completed,
            }))
            .collect::<Vec<_>>(),
    })
}

/// The fields [`expected`] speaks of, from an analytics answer.
fn figures(answer: &Value) -> Value {
    let mut shown = serde_json::Map::new();
    for field in [
        "from",
        "to",
        "days",
        "cycle_time",
        "open",
        "completed_by_assignee",
    ] {
        shown.insert(field.to_owned(), answer[field].clone());
    }
    Value::Object(shown)
}

/// Moves `task` through `statuses`, answering the last reply's token.
async fn walk(board: &Board, task: &str, statuses: &[&str]) -> String {
    let mut token = String::new();
    for to in statuses {
        let moved = board.move_to(task, to).await;
        moved.assert_status(200);
        token = moved.token();
    }
    token
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

async fn a_scripted_history_gives_exact_figures_and_a_rebuild_gives_the_same(backing: Backing) {
    let tenet = start(&backing).await;
    let root = User::register(&tenet, "root").await;
    backing.grant_platform_admin(&root.email).await;
    let board = Board::new(&tenet, "Analytics").await;
    let member = board.add_member(&tenet, "member").await;
    let client = board.client();

    let mut ids = Vec::new();
    for (n, (priority, assignee)) in [
        ("high", Some(&member.id)),
        ("low", Some(&member.id)),
        ("medium", None),
        ("urgent", Some(&board.owner.id)),
        ("high", Some(&member.id)),
        ("medium", None),
        ("urgent", None),
        ("low", Some(&board.owner.id)),
        ("medium", None),
    ]
    .into_iter()
    .enumerate()
    {
        let created = board
            .create(json!({ "title": format!("Task {n}"), "priority": priority, "assignee_id": assignee }))
            .await;
        ids.push(
            created.assert_status(201)["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // Straight through, five times over.
    for task in &ids[0..3] {
        walk(&board, task, &["in_progress", "in_review", "done"]).await;
    }
    // Back from review before done: the first move to in_progress counts.
    walk(
        &board,
        &ids[3],
        &[
            "in_progress",
            "in_review",
            "in_progress",
            "in_review",
            "done",
        ],
    )
    .await;
    // Done, reopened, done again: one completion, at the last move.
    walk(
        &board,
        &ids[4],
        &[
            "in_progress",
            "in_review",
            "done",
            "todo",
            "in_progress",
            "in_review",
            "done",
        ],
    )
    .await;
    // Reassigned after it was done: its completion moves with it.
    walk(&board, &ids[5], &["in_progress", "in_review", "done"]).await;
    client
        .patch(&board.task(&ids[5]), json!({ "assignee_id": member.id }))
        .await
        .assert_status(200);
    // Cancelled, in progress, in review, and one deleted while done.
    walk(&board, &ids[6], &["cancelled"]).await;
    walk(&board, &ids[7], &["in_progress"]).await;
    client
        .patch(&board.task(&ids[7]), json!({ "priority": "urgent" }))
        .await
        .assert_status(200);
    walk(&board, &ids[8], &["in_progress", "in_review", "done"]).await;
    let deleted = client.delete(&board.task(&ids[8])).await;
    deleted.assert_status(200);
    let token = deleted.token();

    let mut live = Vec::new();
    for task in &ids[..8] {
        let read = client.get_after(&board.task(task), &token).await;
        live.push(read.assert_status(200).clone());
    }
    // Another project's done task is in the workspace's figures only.
    let other = client
        .post(
            &format!("/api/v1/workspaces/{}/projects", board.workspace),
            json!({ "name": "Other" }),
        )
        .await;
    let other_project = other.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let elsewhere = client
        .post(
            &format!(
                "/api/v1/workspaces/{}/projects/{other_project}/tasks",
                board.workspace
            ),
            json!({ "title": "Elsewhere" }),
        )
        .await;
    let elsewhere = elsewhere.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let token = walk(&board, &elsewhere, &["in_progress", "in_review", "done"]).await;
    let mut everywhere = live.clone();
    everywhere.push(
        client
            .get_after(&board.task(&elsewhere), &token)
            .await
            .assert_status(200)
            .clone(),
    );

    for (zone, offset) in [
        ("UTC", 0),
        ("Etc/GMT-14", 14 * 3600),
        ("America/Caracas", -4 * 3600),
        // A quarter-hour zone: its days begin and end inside UTC hours.
        ("Asia/Kathmandu", 5 * 3600 + 45 * 60),
    ] {
        let offset = FixedOffset::east_opt(offset).expect("offset");
        for (project, tasks) in [(Some(&board.project), &live), (None, &everywhere)] {
            let want = expected(tasks, offset);
            let mut query = format!(
                "from={}&to={}&tz={zone}",
                want["from"].as_str().expect("from"),
                want["to"].as_str().expect("to")
            );
            if let Some(project) = project {
                query.push_str(&format!("&project_id={project}"));
            }
            let answer = client
                .get_after(&analytics_url(&board.workspace, &query), &token)
                .await;
            let answer = answer.assert_status(200);
            assert_eq!(figures(answer), want, "{zone}, project {project:?}");
            assert_eq!(answer["tz"], zone);
        }
    }
    let cycle = &expected(&live, FixedOffset::east_opt(0).expect("utc"))["cycle_time"];
    assert_eq!(
        cycle["count"], 6,
        "the tasks done, ever in progress, not deleted"
    );

    // A rebuild from the log answers exactly the same.
    let query = {
        let want = expected(&everywhere, FixedOffset::east_opt(0).expect("utc"));
        format!(
            "from={}&to={}",
            want["from"].as_str().expect("from"),
            want["to"].as_str().expect("to")
        )
    };
    let before = client
        .get_after(&analytics_url(&board.workspace, &query), &token)
        .await
        .assert_status(200)
        .clone();
    let started = root
        .client
        .post("/api/v1/admin/projections/analytics/replay", json!({}))
        .await;
    started.assert_status(202);
    let job = wait_for_job(&root.client, &started.header("location").expect("Location")).await;
    assert_eq!(job["state"], "completed", "{job:#}");
    let after = client
        .get_after(&analytics_url(&board.workspace, &query), &token)
        .await;
    assert_eq!(after.assert_status(200), &before);
}

async fn a_query_out_of_bounds_is_refused_by_field(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Analytics").await;
    let client = board.client();
    for (query, field) in [
        ("tz=Mars/Olympus", "tz"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-03-02&to=2026-03-01", "from"),
        ("from=2025-01-01&to=2026-12-31", "to"),
        ("project_id=nope", "project_id"),
    ] {
        let refused = client.get(&analytics_url(&board.workspace, query)).await;
        refused.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(refused.fields(), vec![field], "{query}");
    }
    // Without a range: the last 30 days, today included, all zero.
    let answer = client.get(&analytics_url(&board.workspace, "")).await;
    let answer = answer.assert_status(200);
    assert_eq!(answer["days"].as_array().map(Vec::len), Some(30));
    assert_eq!(answer["open"]["total"], 0);
    assert_eq!(
        answer["cycle_time"],
        json!({ "count": 0, "p50_ms": null, "p85_ms": null })
    );
}

async fn another_workspaces_analytics_and_projects_are_not_found(backing: Backing) {
    let tenet = start(&backing).await;
    let mine = Board::new(&tenet, "Mine").await;
    let theirs = Board::new(&tenet, "Theirs").await;
    let task = theirs.add_task("Secret").await;
    let token = walk(&theirs, &task, &["in_progress", "in_review", "done"]).await;
    let client = mine.client();
    client
        .get(&analytics_url(&theirs.workspace, ""))
        .await
        .assert_problem(404, "NOT_FOUND");
    client
        .get_after(
            &analytics_url(&mine.workspace, &format!("project_id={}", theirs.project)),
            &token,
        )
        .await
        .assert_problem(404, "NOT_FOUND");
    // My figures hold none of theirs.
    let answer = client
        .get_after(&analytics_url(&mine.workspace, ""), &token)
        .await;
    let answer = answer.assert_status(200);
    assert_eq!(answer["cycle_time"]["count"], 0);
    assert_eq!(answer["completed_by_assignee"], json!([]));
    let created: i64 = answer["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["created"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(created, 0);
}

in_both_modes!(
    a_scripted_history_gives_exact_figures_and_a_rebuild_gives_the_same,
    a_query_out_of_bounds_is_refused_by_field,
    another_workspaces_analytics_and_projects_are_not_found,
);
