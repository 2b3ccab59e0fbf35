//! Tasks and comments through the real binary, in both modes: numbering
//! under concurrent creates, the workflow, optimistic concurrency,
//! idempotent commands, the policy that unassigns departed members,
//! filters and sorts, comments.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{Backing, Board, Client, Reply, User, id, start, strings};
use serde_json::{Value, json};

/// The highest of several consistency tokens.
fn latest<'a>(tokens: impl IntoIterator<Item = &'a Reply>) -> String {
    tokens
        .into_iter()
        .map(|reply| reply.token().parse::<i64>().expect("numeric token"))
        .max()
        .expect("a token")
        .to_string()
}

async fn a_task_is_created_with_a_number_a_key_and_every_field(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let created = board
        .create(json!({
            "title": "  Ship the login page ",
            "description": "With\nline breaks",
            "priority": "urgent",
            "assignee_id": board.owner.id,
            "labels": ["frontend", "auth", "frontend"],
            "due_date": "2027-03-01",
        }))
        .await;
    let task = id(&created, 201);
    let body = &created.body;
    assert_eq!(body["number"], 1);
    assert_eq!(body["key"], "WEB-1");
    assert_eq!(body["title"], "Ship the login page");
    assert_eq!(body["status"], "todo");
    assert_eq!(body["priority"], "urgent");
    assert_eq!(body["assignee_id"], board.owner.id);
    assert_eq!(body["labels"], json!(["frontend", "auth"]));
    assert_eq!(body["due_date"], "2027-03-01");
    assert_eq!(body["comment_count"], 0);
    assert_eq!(body["version"], 1);
    assert_eq!(created.etag(), "\"1\"");
    assert_eq!(
        created.header("location").as_deref(),
        Some(board.task(&task).as_str())
    );
    let read = board
        .client()
        .get_after(&board.task(&task), &created.token())
        .await;
    assert_eq!(read.assert_status(200), body);
    assert_eq!(read.etag(), "\"1\"");

    let defaults = board.create(json!({ "title": "Second" })).await;
    defaults.assert_status(201);
    assert_eq!(defaults.body["number"], 2);
    assert_eq!(defaults.body["key"], "WEB-2");
    assert_eq!(defaults.body["priority"], "medium");
    assert_eq!(defaults.body["assignee_id"], Value::Null);
    assert_eq!(defaults.body["labels"], json!([]));
}

async fn fifty_concurrent_creates_in_one_project_number_one_to_fifty_exactly_once(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let creates = (0..50).map(|n| board.create(json!({ "title": format!("Task {n}") })));
    let replies = futures::future::join_all(creates).await;
    let numbers: BTreeSet<i64> = replies
        .iter()
        .map(|reply| reply.assert_status(201)["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(numbers, (1..=50).collect::<BTreeSet<i64>>());
    let keys: BTreeSet<String> = replies
        .iter()
        .map(|reply| reply.body["key"].as_str().expect("key").to_owned())
        .collect();
    assert_eq!(keys.len(), 50);

    let token = latest(&replies);
    let page = board
        .client()
        .get_after(&format!("{}?limit=100&sort=number", board.tasks()), &token)
        .await;
    let page = page.assert_status(200);
    assert_eq!(page["total"], 50);
    let listed: Vec<i64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|task| task["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(listed, (1..=50).collect::<Vec<i64>>());
    let project = board.client().get_after(&board.project_url(), &token).await;
    assert_eq!(project.assert_status(200)["open_tasks"], 50);
    // Handing out numbers is not a change to the project: its ETag stays.
    assert_eq!(project.etag(), "\"1\"");
    let renamed = board
        .client()
        .send(
            board
                .client()
                .request(reqwest::Method::PATCH, &board.project_url())
                .header("If-Match", "\"1\"")
                .json(&json!({ "name": "Web app" })),
        )
        .await;
    renamed.assert_status(200);
    assert_eq!(renamed.etag(), "\"2\"");
}

async fn twenty_concurrent_patches_without_if_match_are_all_applied(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let task = id(&board.create(json!({ "title": "Contended" })).await, 201);
    let path = board.task(&task);
    let patches = (0..20).map(|n| {
        board
            .client()
            .patch(&path, json!({ "title": format!("Title {n}") }))
    });
    let replies = futures::future::join_all(patches).await;
    let mut versions: Vec<i64> = replies
        .iter()
        .map(|reply| {
            reply.assert_status(200)["version"]
                .as_i64()
                .expect("version")
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=21).collect::<Vec<i64>>(),
        "every PATCH applied once"
    );
    let read = board
        .client()
        .get_after(&board.task(&task), &latest(&replies))
        .await;
    assert_eq!(read.assert_status(200)["version"], 21);
    // The last version holds the title of the reply that reached it.
    let last = replies
        .iter()
        .find(|reply| reply.body["version"] == 21)
        .expect("the last write");
    assert_eq!(read.body["title"], last.body["title"]);
}

async fn twenty_concurrent_patches_with_one_if_match_have_exactly_one_winner(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let created = board.create(json!({ "title": "Contended" })).await;
    let task = id(&created, 201);
    let etag = created.etag();
    let patches = (0..20).map(|n| {
        let client = board.client();
        client.send(
            client
                .request(reqwest::Method::PATCH, &board.task(&task))
                .header("If-Match", &etag)
                .json(&json!({ "title": format!("Title {n}") })),
        )
    });
    let replies = futures::future::join_all(patches).await;
    let won = replies.iter().filter(|reply| reply.status == 200).count();
    assert_eq!(won, 1, "exactly one PATCH wins");
    for reply in replies.iter().filter(|reply| reply.status != 200) {
        reply.assert_problem(412, "PRECONDITION_FAILED");
    }
}

async fn transitions_follow_the_workflow_and_others_are_refused_naming_the_status(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let task = id(&board.create(json!({ "title": "Flow" })).await, 201);

    let refused = board.move_to(&task, "done").await;
    refused.assert_problem(409, "INVALID_TRANSITION");
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("todo"), "{detail}");
    let same = board.move_to(&task, "todo").await;
    same.assert_problem(409, "INVALID_TRANSITION");

    for (to, version) in [
        ("in_progress", 2),
        ("in_review", 3),
        ("in_progress", 4),
        ("in_review", 5),
        ("done", 6),
    ] {
        let moved = board.move_to(&task, to).await;
        assert_eq!(moved.assert_status(200)["status"], to);
        assert_eq!(moved.body["version"], version);
        assert_eq!(moved.etag(), format!("\"{version}\""));
    }
    board
        .move_to(&task, "cancelled")
        .await
        .assert_problem(409, "INVALID_TRANSITION");
    let reopened = board.move_to(&task, "todo").await;
    assert_eq!(reopened.assert_status(200)["status"], "todo");
    let cancelled = board.move_to(&task, "cancelled").await;
    cancelled.assert_status(200);

    // A second task stays open, a third is done; the counts follow.
    board
        .create(json!({ "title": "Open" }))
        .await
        .assert_status(201);
    let done = id(&board.create(json!({ "title": "Done" })).await, 201);
    let mut last = None;
    for to in ["in_progress", "in_review", "done"] {
        let moved = board.move_to(&done, to).await;
        moved.assert_status(200);
        last = Some(moved);
    }
    board
        .move_to(&done, "done")
        .await
        .assert_problem(409, "INVALID_TRANSITION");
    let token = last.expect("moved").token();
    let project = board.client().get_after(&board.project_url(), &token).await;
    let project = project.assert_status(200);
    assert_eq!(project["open_tasks"], 1);
    assert_eq!(project["done_tasks"], 1);

    let bad = board.move_to(&task, "finished").await;
    bad.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bad.fields(), vec!["to"]);
}

async fn if_match_guards_patch_transitions_and_delete(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let task = id(&board.create(json!({ "title": "Guarded" })).await, 201);
    let client = board.client();
    let with_if_match = |method: reqwest::Method, path: String, etag: &str| {
        client
            .request(method, &path)
            .header("If-Match", etag.to_owned())
    };
    let stale = "\"7\"";
    for request in [
        with_if_match(reqwest::Method::PATCH, board.task(&task), stale)
            .json(&json!({ "title": "x" })),
        with_if_match(
            reqwest::Method::POST,
            format!("{}/transitions", board.task(&task)),
            stale,
        )
        .json(&json!({ "to": "in_progress" })),
        with_if_match(reqwest::Method::DELETE, board.task(&task), stale),
    ] {
        client
            .send(request)
            .await
            .assert_problem(412, "PRECONDITION_FAILED");
    }
    let moved = client
        .send(
            with_if_match(
                reqwest::Method::POST,
                format!("{}/transitions", board.task(&task)),
                "\"1\"",
            )
            .json(&json!({ "to": "in_progress" })),
        )
        .await;
    moved.assert_status(200);
    let deleted = client
        .send(with_if_match(
            reqwest::Method::DELETE,
            board.task(&task),
            "\"2\"",
        ))
        .await;
    assert_eq!(deleted.assert_status(200), &json!({ "ok": true }));
    client
        .get_after(&board.task(&task), &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    let list = client.get_after(&board.tasks(), &deleted.token()).await;
    assert_eq!(list.assert_status(200)["total"], 0);
    client
        .patch(&board.task(&task), json!({ "title": "Back?" }))
        .await
        .assert_problem(404, "NOT_FOUND");
    let project = client
        .get_after(&board.project_url(), &deleted.token())
        .await;
    assert_eq!(project.assert_status(200)["open_tasks"], 0);
}

async fn a_patch_changes_each_field_and_null_clears_assignee_and_due_date(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let member = board.add_member(&tenet, "member").await;
    let task = id(
        &board
            .create(json!({ "title": "Edit me", "due_date": "2027-01-01" }))
            .await,
        201,
    );
    let patched = board
        .client()
        .patch(
            &board.task(&task),
            json!({
                "title": "Edited",
                "description": "Now described",
                "priority": "low",
                "labels": ["a", "b"],
                "assignee_id": member.id,
                "due_date": "2027-02-02",
            }),
        )
        .await;
    let body = patched.assert_status(200);
    assert_eq!(body["title"], "Edited");
    assert_eq!(body["description"], "Now described");
    assert_eq!(body["priority"], "low");
    assert_eq!(body["labels"], json!(["a", "b"]));
    assert_eq!(body["assignee_id"], member.id);
    assert_eq!(body["due_date"], "2027-02-02");
    // One edit, one assignment.
    assert_eq!(body["version"], 3);

    let cleared = board
        .client()
        .patch(
            &board.task(&task),
            json!({ "assignee_id": null, "due_date": null }),
        )
        .await;
    let body = cleared.assert_status(200).clone();
    assert_eq!(body["assignee_id"], Value::Null);
    assert_eq!(body["due_date"], Value::Null);
    assert_eq!(body["title"], "Edited");
    let read = board
        .client()
        .get_after(&board.task(&task), &cleared.token())
        .await;
    assert_eq!(read.assert_status(200), &body);

    // Nothing changes: no new version.
    let same = board
        .client()
        .patch(&board.task(&task), json!({ "title": "Edited" }))
        .await;
    assert_eq!(same.assert_status(200)["version"], body["version"]);
}

async fn assignees_must_be_members_of_the_workspace(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let stranger = User::register(&tenet, "stranger").await;
    stranger.workspace("Elsewhere").await;
    for assignee in [stranger.id.clone(), uuid::Uuid::new_v4().to_string()] {
        let refused = board
            .create(json!({ "title": "Who?", "assignee_id": assignee }))
            .await;
        refused.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(refused.fields(), vec!["assignee_id"]);
    }
    let task = id(&board.create(json!({ "title": "Later" })).await, 201);
    let refused = board
        .client()
        .patch(&board.task(&task), json!({ "assignee_id": stranger.id }))
        .await;
    refused.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(refused.fields(), vec!["assignee_id"]);
}

async fn tasks_cannot_be_created_in_an_archived_or_unknown_project(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    board
        .client()
        .delete(&board.project_url())
        .await
        .assert_status(200);
    board
        .create(json!({ "title": "Too late" }))
        .await
        .assert_problem(409, "CONFLICT");
    let unknown = format!(
        "/api/v1/workspaces/{}/projects/{}/tasks",
        board.workspace,
        uuid::Uuid::new_v4()
    );
    board
        .client()
        .post(&unknown, json!({ "title": "Nowhere" }))
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn bad_task_input_is_422_naming_each_field(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let too_many: Vec<String> = (0..21).map(|n| format!("l{n}")).collect();
    let cases = [
        (json!({ "title": "" }), "title"),
        (json!({ "title": "x".repeat(201) }), "title"),
        (json!({ "title": "nul\u{0}" }), "title"),
        (
            json!({ "title": "ok", "description": "d".repeat(20_001) }),
            "description",
        ),
        (json!({ "title": "ok", "priority": "whenever" }), "priority"),
        (json!({ "title": "ok", "labels": too_many }), "labels"),
        (
            json!({ "title": "ok", "labels": ["l".repeat(51)] }),
            "labels[0]",
        ),
        (json!({ "title": "ok", "due_date": "tomorrow" }), "due_date"),
        (
            json!({ "title": "ok", "assignee_id": "nobody" }),
            "assignee_id",
        ),
        (json!({ "title": "ok", "status": "done" }), "status"),
    ];
    for (body, field) in cases {
        let refused = board.create(body.clone()).await;
        refused.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(refused.fields(), vec![field], "{body}");
    }
    let list = board.client().get_after(&board.tasks(), &board.token).await;
    assert_eq!(list.assert_status(200)["total"], 0);
}

async fn send_with_key(client: &Client, path: &str, key: &str, body: &Value) -> Reply {
    client
        .send(
            client
                .request(reqwest::Method::POST, path)
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
}

async fn a_retried_post_with_an_idempotency_key_replays_the_first_response(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let body = json!({ "title": "Exactly once" });
    let first = send_with_key(board.client(), &board.tasks(), "create-1", &body).await;
    first.assert_status(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = send_with_key(board.client(), &board.tasks(), "create-1", &body).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.token(), first.token());
    assert_eq!(again.etag(), first.etag());
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));

    let other = send_with_key(
        board.client(),
        &board.tasks(),
        "create-1",
        &json!({ "title": "Something else" }),
    )
    .await;
    other.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(other.fields(), vec!["Idempotency-Key"]);

    // Keys are per principal: another member's same key is theirs.
    let member = board.add_member(&tenet, "member").await;
    let theirs = send_with_key(&member.client, &board.tasks(), "create-1", &body).await;
    theirs.assert_status(201);
    assert_ne!(theirs.body["id"], first.body["id"]);

    let transition = json!({ "to": "in_progress" });
    let task = first.body["id"].as_str().expect("id");
    let path = format!("{}/transitions", board.task(task));
    let moved = send_with_key(board.client(), &path, "move-1", &transition).await;
    moved.assert_status(200);
    let replayed = send_with_key(board.client(), &path, "move-1", &transition).await;
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.body, moved.body);

    let long = send_with_key(board.client(), &board.tasks(), &"k".repeat(256), &body).await;
    long.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(long.fields(), vec!["Idempotency-Key"]);

    let token = latest([&theirs, &moved]);
    let list = board.client().get_after(&board.tasks(), &token).await;
    assert_eq!(
        list.assert_status(200)["total"],
        2,
        "two creates, one replayed"
    );
}

async fn concurrent_duplicates_of_an_idempotent_post_create_one_task(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let body = json!({ "title": "Racing" });
    let tasks = board.tasks();
    let sends = (0..10).map(|_| send_with_key(board.client(), &tasks, "race-1", &body));
    let replies = futures::future::join_all(sends).await;
    let ids: BTreeSet<String> = replies
        .iter()
        .map(|reply| {
            reply.assert_status(201);
            reply.body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every duplicate answers the one task");
    let list = board.client().get_after(&tasks, &latest(&replies)).await;
    assert_eq!(list.assert_status(200)["total"], 1);
    assert_eq!(list.body["items"][0]["number"], 1);
}

/// Polls `path` until `done` holds or the deadline passes.
async fn eventually(client: &Client, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = client.get(path).await;
        if reply.status == 200 && done(&reply.body) {
            return reply.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {:#}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn removing_a_member_unassigns_their_open_tasks(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let member = board.add_member(&tenet, "member").await;
    let assigned = json!({ "title": "Theirs", "assignee_id": member.id });
    let open = id(&board.create(assigned.clone()).await, 201);
    let in_progress = id(&board.create(assigned.clone()).await, 201);
    board
        .move_to(&in_progress, "in_progress")
        .await
        .assert_status(200);
    let done = id(&board.create(assigned.clone()).await, 201);
    for to in ["in_progress", "in_review", "done"] {
        board.move_to(&done, to).await.assert_status(200);
    }
    let mine = id(
        &board
            .create(json!({ "title": "Mine", "assignee_id": board.owner.id }))
            .await,
        201,
    );
    board
        .client()
        .delete(&format!(
            "/api/v1/workspaces/{}/members/{}",
            board.workspace, member.id
        ))
        .await
        .assert_status(200);

    for task in [&open, &in_progress] {
        let unassigned = eventually(board.client(), &board.task(task), |task| {
            task["assignee_id"].is_null()
        })
        .await;
        assert_eq!(unassigned["version"].as_i64().map(|v| v > 1), Some(true));
    }
    let listed = board
        .client()
        .get(&format!("{}?assignee_id={}", board.all_tasks(), member.id))
        .await;
    assert_eq!(strings(listed.assert_status(200), "id"), vec![done.clone()]);
    let kept = board.client().get(&board.task(&done)).await;
    assert_eq!(kept.assert_status(200)["assignee_id"], member.id);
    let others = board.client().get(&board.task(&mine)).await;
    assert_eq!(others.assert_status(200)["assignee_id"], board.owner.id);
}

/// A known data set for filters and sorts, in creation order.
async fn known_tasks(board: &Board, member: &User) -> (Vec<String>, String) {
    let specs = [
        json!({ "title": "Alpha login bug", "priority": "urgent", "labels": ["bug", "auth"], "due_date": "2027-01-10", "assignee_id": board.owner.id }),
        json!({ "title": "Beta signup page", "priority": "low", "labels": ["frontend"], "due_date": "2027-01-05", "assignee_id": member.id }),
        json!({ "title": "Gamma", "description": "Fix the LOGIN redirect", "priority": "high", "labels": ["bug"], "assignee_id": member.id }),
        json!({ "title": "Delta docs", "description": "100% of the été_plan", "priority": "medium", "due_date": "2027-02-01" }),
        json!({ "title": "Epsilon cleanup", "priority": "high", "labels": ["chore", "bug"], "due_date": "2026-12-24", "assignee_id": board.owner.id }),
    ];
    let mut ids = Vec::new();
    let mut last = String::new();
    for spec in specs {
        let created = board.create(spec).await;
        ids.push(id(&created, 201));
        last = created.token();
    }
    // Statuses: Alpha in progress, Gamma done, Delta cancelled.
    board
        .move_to(&ids[0], "in_progress")
        .await
        .assert_status(200);
    for to in ["in_progress", "in_review", "done"] {
        board.move_to(&ids[2], to).await.assert_status(200);
    }
    let cancelled = board.move_to(&ids[3], "cancelled").await;
    cancelled.assert_status(200);
    last = last.max(cancelled.token());
    (ids, last)
}

async fn filters_and_sorts_match_a_known_data_set(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let member = board.add_member(&tenet, "member").await;
    let (t, token) = known_tasks(&board, &member).await;
    let (alpha, beta, gamma, delta, epsilon) = (&t[0], &t[1], &t[2], &t[3], &t[4]);
    let ids = |list: &[&String]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let client = &board.owner.client;
    // The first read waits for every write; the rest follow it.
    client
        .get_after(&board.all_tasks(), &token)
        .await
        .assert_status(200);
    let cases: Vec<(String, Vec<String>)> = vec![
        ("".into(), ids(&[alpha, beta, gamma, delta, epsilon])),
        ("status=todo".into(), ids(&[beta, epsilon])),
        (
            "status=todo&status=done".into(),
            ids(&[beta, gamma, epsilon]),
        ),
        ("status=in_progress,cancelled".into(), ids(&[alpha, delta])),
        ("assignee_id=me".into(), ids(&[alpha, epsilon])),
        (format!("assignee_id={}", member.id), ids(&[beta, gamma])),
        ("assignee_id=none".into(), ids(&[delta])),
        ("priority=high".into(), ids(&[gamma, epsilon])),
        ("priority=low,urgent".into(), ids(&[alpha, beta])),
        ("label=bug".into(), ids(&[alpha, gamma, epsilon])),
        ("label=bug&label=auth".into(), ids(&[alpha])),
        ("due_before=2027-01-06".into(), ids(&[beta, epsilon])),
        ("search=login".into(), ids(&[alpha, gamma])),
        ("search=BUG%20alpha".into(), ids(&[alpha])),
        ("search=web-2".into(), ids(&[beta])),
        // LIKE's wildcards are plain characters to a search, words shorter
        // than a trigram still match, and case folds beyond ASCII.
        ("search=100%25".into(), ids(&[delta])),
        ("search=%25".into(), ids(&[delta])),
        ("search=_".into(), ids(&[delta])),
        ("search=do".into(), ids(&[delta])),
        ("search=%C3%89T%C3%89".into(), ids(&[delta])),
        ("status=todo&priority=high".into(), ids(&[epsilon])),
        ("label=bug&status=done".into(), ids(&[gamma])),
        (
            "sort=-created_at".into(),
            ids(&[epsilon, delta, gamma, beta, alpha]),
        ),
        (
            "sort=priority".into(),
            ids(&[beta, delta, gamma, epsilon, alpha]),
        ),
        (
            "sort=-priority".into(),
            ids(&[alpha, epsilon, gamma, delta, beta]),
        ),
        (
            "sort=due_date".into(),
            ids(&[epsilon, beta, alpha, delta, gamma]),
        ),
        (
            "sort=-due_date".into(),
            ids(&[delta, alpha, beta, epsilon, gamma]),
        ),
        (
            "sort=number".into(),
            ids(&[alpha, beta, gamma, delta, epsilon]),
        ),
        (
            "sort=-number".into(),
            ids(&[epsilon, delta, gamma, beta, alpha]),
        ),
        (
            "sort=-updated_at".into(),
            ids(&[delta, gamma, alpha, epsilon, beta]),
        ),
    ];
    for (query, expected) in cases {
        for base in [board.all_tasks(), board.tasks()] {
            let path = format!("{base}?{query}");
            let page = client.get(&path).await;
            let page = page.assert_status(200);
            assert_eq!(strings(page, "id"), expected, "{path}");
            assert_eq!(page["total"], expected.len(), "{path}");
        }
    }
    // Pages of a filtered list carry the filtered total.
    let page = client
        .get(&format!("{}?label=bug&limit=2&offset=1", board.all_tasks()))
        .await;
    let page = page.assert_status(200);
    assert_eq!(strings(page, "id"), ids(&[gamma, epsilon]));
    assert_eq!(
        (page["total"].clone(), page["has_more"].clone()),
        (json!(3), json!(false))
    );
    let page = client
        .get(&format!("{}?status=todo&limit=1", board.all_tasks()))
        .await;
    assert_eq!(
        (page.body["total"].clone(), page.body["has_more"].clone()),
        (json!(2), json!(true))
    );

    for (query, field) in [
        ("status=blocked", "status"),
        ("priority=meh", "priority"),
        ("assignee_id=someone", "assignee_id"),
        ("due_before=soon", "due_before"),
        ("sort=title", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
    ] {
        let refused = client.get(&format!("{}?{query}", board.all_tasks())).await;
        refused.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(refused.fields(), vec![field], "{query}");
    }
    // The project-scoped list knows only its project's tasks.
    let other = board
        .client()
        .post(
            &format!("/api/v1/workspaces/{}/projects", board.workspace),
            json!({ "name": "Other" }),
        )
        .await;
    let other = id(&other, 201);
    let elsewhere = board
        .client()
        .post(
            &format!(
                "/api/v1/workspaces/{}/projects/{other}/tasks",
                board.workspace
            ),
            json!({ "title": "Elsewhere" }),
        )
        .await;
    assert_eq!(elsewhere.assert_status(201)["key"], "OTHER-1");
    let project_list = client.get_after(&board.tasks(), &elsewhere.token()).await;
    assert_eq!(project_list.assert_status(200)["total"], 5);
    let everywhere = client.get(&board.all_tasks()).await;
    assert_eq!(everywhere.assert_status(200)["total"], 6);
    let by_project = client
        .get(&format!("{}?project_id={other}", board.all_tasks()))
        .await;
    assert_eq!(
        strings(by_project.assert_status(200), "key"),
        vec!["OTHER-1"]
    );
}

async fn comments_are_added_listed_edited_and_deleted(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let member = board.add_member(&tenet, "member").await;
    let task = id(&board.create(json!({ "title": "Discuss" })).await, 201);
    let comments = format!("{}/comments", board.task(&task));
    let first = board
        .client()
        .post(&comments, json!({ "body": "First!" }))
        .await;
    let first_id = id(&first, 201);
    assert_eq!(first.body["author_id"], board.owner.id);
    assert_eq!(first.body["edited_at"], Value::Null);
    assert_eq!(
        first.header("location").as_deref(),
        Some(format!("{comments}/{first_id}").as_str())
    );
    let second = member
        .client
        .post(&comments, json!({ "body": "Second\nwith two lines" }))
        .await;
    let second_id = id(&second, 201);

    let page = board.client().get_after(&comments, &second.token()).await;
    let page = page.assert_status(200);
    assert_eq!(
        strings(page, "id"),
        vec![first_id.clone(), second_id.clone()]
    );
    assert_eq!(page["total"], 2);
    let detail = board.client().get(&board.task(&task)).await;
    assert_eq!(detail.assert_status(200)["comment_count"], 2);

    let edited = member
        .client
        .patch(
            &format!("{comments}/{second_id}"),
            json!({ "body": "Second, edited" }),
        )
        .await;
    let edited_body = edited.assert_status(200);
    assert_eq!(edited_body["body"], "Second, edited");
    assert!(edited_body["edited_at"].is_string());
    assert_eq!(edited.etag(), "\"2\"");
    let page = board.client().get_after(&comments, &edited.token()).await;
    assert_eq!(page.body["items"][1], *edited_body);

    board
        .client()
        .patch(&format!("{comments}/{first_id}"), json!({ "body": "" }))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let stale = board
        .client()
        .send(
            board
                .client()
                .request(reqwest::Method::DELETE, &format!("{comments}/{first_id}"))
                .header("If-Match", "\"5\""),
        )
        .await;
    stale.assert_problem(412, "PRECONDITION_FAILED");
    let deleted = board
        .client()
        .delete(&format!("{comments}/{first_id}"))
        .await;
    deleted.assert_status(200);
    let page = board.client().get_after(&comments, &deleted.token()).await;
    assert_eq!(
        strings(page.assert_status(200), "id"),
        vec![second_id.clone()]
    );
    let detail = board.client().get(&board.task(&task)).await;
    assert_eq!(detail.assert_status(200)["comment_count"], 1);
    board
        .client()
        .delete(&format!("{comments}/{first_id}"))
        .await
        .assert_problem(404, "NOT_FOUND");

    // A comment is found only under its own task.
    let other = id(&board.create(json!({ "title": "Other" })).await, 201);
    board
        .client()
        .patch(
            &format!("{}/comments/{second_id}", board.task(&other)),
            json!({ "body": "Moved?" }),
        )
        .await
        .assert_problem(404, "NOT_FOUND");

    // A deleted task takes its comments with it.
    let gone = board.client().delete(&board.task(&task)).await;
    gone.assert_status(200);
    board
        .client()
        .get_after(&comments, &gone.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    board
        .client()
        .post(&comments, json!({ "body": "Too late" }))
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn ids_of_other_kinds_of_resources_are_404_and_task_keys_never_repeat(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let task = id(&board.create(json!({ "title": "Real" })).await, 201);
    // A project's or the workspace's id where a task's is expected.
    for wrong in [board.project.clone(), board.workspace.clone()] {
        board
            .client()
            .patch(&board.task(&wrong), json!({ "title": "x" }))
            .await
            .assert_problem(404, "NOT_FOUND");
        board
            .move_to(&wrong, "in_progress")
            .await
            .assert_problem(404, "NOT_FOUND");
        board
            .client()
            .get(&format!("{}/history", board.task(&wrong)))
            .await
            .assert_problem(404, "NOT_FOUND");
        board
            .client()
            .post(
                &format!("{}/comments", board.task(&wrong)),
                json!({ "body": "x" }),
            )
            .await
            .assert_problem(404, "NOT_FOUND");
    }
    // A task's id where a project's is expected.
    board
        .client()
        .post(
            &format!(
                "/api/v1/workspaces/{}/projects/{task}/tasks",
                board.workspace
            ),
            json!({ "title": "x" }),
        )
        .await
        .assert_problem(404, "NOT_FOUND");

    // The slug `web` is renamed away and taken again: the new project
    // gets another key, so WEB-1 is never handed out twice.
    board
        .client()
        .patch(&board.project_url(), json!({ "slug": "site" }))
        .await
        .assert_status(200);
    let again = board
        .client()
        .post(
            &format!("/api/v1/workspaces/{}/projects", board.workspace),
            json!({ "name": "Web again", "slug": "web" }),
        )
        .await;
    let again_id = id(&again, 201);
    assert_eq!(again.body["key"], "WEB2");
    let first = board
        .client()
        .post(
            &format!(
                "/api/v1/workspaces/{}/projects/{again_id}/tasks",
                board.workspace
            ),
            json!({ "title": "New project's first" }),
        )
        .await;
    assert_eq!(first.assert_status(201)["key"], "WEB2-1");
    let next = board.create(json!({ "title": "Still WEB" })).await;
    assert_eq!(next.assert_status(201)["key"], "WEB-2");
}

async fn started_at_is_the_first_start_and_completed_at_lasts_while_done(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let created = board.create(json!({ "title": "Timed" })).await;
    let task = id(&created, 201);
    assert_eq!(created.body["started_at"], Value::Null);
    assert_eq!(created.body["completed_at"], Value::Null);
    // The workflow goes to done through in_review.
    let mut moves = Vec::new();
    for to in [
        "in_progress",
        "in_review",
        "in_progress",
        "in_review",
        "done",
        "todo",
    ] {
        let moved = board.move_to(&task, to).await;
        assert_eq!(moved.assert_status(200)["status"], to);
        moves.push(moved);
    }
    let started = moves[0].body["updated_at"].clone();
    assert!(started.is_string());
    let done = &moves[4];
    let completed = done.body["updated_at"].clone();
    for (n, moved) in moves.iter().enumerate() {
        // The first start stays, through the second one and the reopening.
        assert_eq!(moved.body["started_at"], started, "after move {n}");
        let expected = if n == 4 {
            completed.clone()
        } else {
            Value::Null
        };
        assert_eq!(moved.body["completed_at"], expected, "after move {n}");
    }

    // The read model agrees with the command's answer.
    let reopened = &moves[5];
    let read = board
        .client()
        .get_after(&board.task(&task), &reopened.token())
        .await;
    assert_eq!(read.assert_status(200), &reopened.body);
    let listed = board
        .client()
        .get_after(&board.all_tasks(), &reopened.token())
        .await;
    assert_eq!(listed.assert_status(200)["items"][0]["started_at"], started);

    // Time travel: as of the move to done, and of the creation.
    let as_of = |at: &Value| {
        format!(
            "{}?as_of={}",
            board.task(&task),
            at.as_str().expect("a timestamp").replace(':', "%3A")
        )
    };
    let then = board.client().get(&as_of(&completed)).await;
    let then = then.assert_status(200);
    assert_eq!(then["status"], "done");
    assert_eq!(then["started_at"], started);
    assert_eq!(then["completed_at"], completed);
    let fresh = board
        .client()
        .get(&as_of(&created.body["updated_at"]))
        .await;
    assert_eq!(fresh.assert_status(200)["started_at"], Value::Null);

    // History: each version's task carries both.
    let history = board
        .client()
        .get(&format!("{}/history", board.task(&task)))
        .await;
    let versions = history.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .clone();
    assert_eq!(versions.len(), 7);
    assert_eq!(versions[0]["task"]["started_at"], Value::Null);
    for (n, version) in versions.iter().enumerate().skip(1) {
        assert_eq!(version["task"]["started_at"], started, "version {}", n + 1);
        assert_eq!(
            version["task"]["completed_at"],
            moves[n - 1].body["completed_at"],
            "version {}",
            n + 1
        );
    }
}

in_both_modes!(
    ids_of_other_kinds_of_resources_are_404_and_task_keys_never_repeat,
    a_task_is_created_with_a_number_a_key_and_every_field,
    fifty_concurrent_creates_in_one_project_number_one_to_fifty_exactly_once,
    twenty_concurrent_patches_without_if_match_are_all_applied,
    twenty_concurrent_patches_with_one_if_match_have_exactly_one_winner,
    transitions_follow_the_workflow_and_others_are_refused_naming_the_status,
    if_match_guards_patch_transitions_and_delete,
    a_patch_changes_each_field_and_null_clears_assignee_and_due_date,
    assignees_must_be_members_of_the_workspace,
    tasks_cannot_be_created_in_an_archived_or_unknown_project,
    bad_task_input_is_422_naming_each_field,
    a_retried_post_with_an_idempotency_key_replays_the_first_response,
    concurrent_duplicates_of_an_idempotent_post_create_one_task,
    removing_a_member_unassigns_their_open_tasks,
    filters_and_sorts_match_a_known_data_set,
    comments_are_added_listed_edited_and_deleted,
    started_at_is_the_first_start_and_completed_at_lasts_while_done,
);
