//! Automations through the real binary, in both modes: a rule's execution
//! and its steps, causation, a failing step, no self-trigger loop, chains
//! stopped at the depth limit, disabled automations, a crash in the middle
//! of an execution, validation and tenant isolation.

use std::time::Duration;

use crate::common::{Backing, Board, Client, Mode, Tenet, User, id, start, start_with, strings};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn automations_url(board: &Board) -> String {
    format!("{}/automations", board.project_url())
}

fn automation_url(board: &Board, automation: &str) -> String {
    format!("{}/{automation}", automations_url(board))
}

fn executions_url(board: &Board, automation: &str) -> String {
    format!("{}/executions", automation_url(board, automation))
}

fn execution_url(board: &Board, execution: &str) -> String {
    format!(
        "/api/v1/workspaces/{}/executions/{execution}",
        board.workspace
    )
}

/// Creates an automation of the board's project; answers its id.
async fn automation(board: &Board, body: Value) -> String {
    id(
        &board.client().post(&automations_url(board), body).await,
        201,
    )
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

/// The automation's executions once `count` of them have finished.
async fn finished(board: &Board, automation: &str, count: usize) -> Vec<Value> {
    let page = eventually(board.client(), &executions_url(board, automation), |page| {
        let items = page["items"].as_array().cloned().unwrap_or_default();
        items.len() == count && items.iter().all(|e| e["finished_at"].is_string())
    })
    .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// A consistency token at the head of the log: a change to the board's
/// project that changes nothing answers the head, so a read that waits
/// for it sees everything written so far (an execution's task changes
/// included).
async fn head(board: &Board) -> String {
    let unchanged = board
        .client()
        .patch(&board.project_url(), json!({ "description": "" }))
        .await;
    unchanged.assert_status(200);
    unchanged.token()
}

/// Moves a task through the workflow to done.
async fn finish_task(board: &Board, task: &str) {
    for to in ["in_progress", "in_review", "done"] {
        board.move_to(task, to).await.assert_status(200);
    }
}

/// The id of the task's last event of `event_type`, from the audit log.
async fn last_event(board: &Board, stream: &str, event_type: &str) -> String {
    let log = board
        .client()
        .get(&format!(
            "/api/v1/workspaces/{}/audit-log?stream_id={stream}&event_type={event_type}&limit=100",
            board.workspace
        ))
        .await;
    let items = log.assert_status(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    items.last().expect("an event")["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned()
}

/// The events of a stream, in order.
async fn stream_events(board: &Board, stream: &str) -> Vec<Value> {
    let log = board
        .client()
        .get(&format!(
            "/api/v1/workspaces/{}/audit-log?stream_id={stream}&limit=100",
            board.workspace
        ))
        .await;
    log.assert_status(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn statuses(execution: &Value) -> Vec<String> {
    strings(&json!({ "items": execution["steps"] }), "status")
}

/// The follow-up rule these tests share: when a task is done, label it,
/// comment on it, and create its review.
fn follow_up_rule() -> Value {
    json!({
        "name": "Review what is done",
        "trigger": { "event": "task.status_changed", "to": "done" },
        "actions": [
            { "type": "add_label", "label": "shipped" },
            { "type": "comment", "body": "Closed {{task.key}}" },
            { "type": "create_task", "title": "Review {{task.title}}", "labels": ["review"], "priority": "high" },
        ],
    })
}

async fn marking_a_task_done_runs_every_step_caused_by_the_transition(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let rule = automation(&board, follow_up_rule()).await;
    let task = board.add_task("Login page").await;
    finish_task(&board, &task).await;

    let executions = finished(&board, &rule, 1).await;
    let execution = &executions[0];
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    assert_eq!(
        statuses(execution),
        vec!["succeeded", "succeeded", "succeeded"]
    );
    assert_eq!(execution["task_id"], task.as_str());
    assert_eq!(execution["automation_id"], rule.as_str());
    assert_eq!(execution["depth"], 1);
    let transition = last_event(&board, &task, "task.status_changed").await;
    assert_eq!(execution["causation_id"], transition.as_str());
    let shown = board
        .client()
        .get(&execution_url(&board, execution["id"].as_str().unwrap()))
        .await;
    assert_eq!(shown.assert_status(200), execution);

    // Every event of the execution, and every change its steps made, is
    // caused by the transition and written as the automation.
    let execution_id = execution["id"].as_str().unwrap();
    let events = stream_events(&board, execution_id).await;
    assert_eq!(events[0]["event_type"], "automation.execution_started");
    assert_eq!(
        events.last().unwrap()["event_type"],
        "automation.execution_finished"
    );
    for event in &events {
        assert_eq!(event["causation_id"], transition.as_str());
        assert_eq!(
            event["actor"]["display"],
            format!("automation:{rule}").as_str()
        );
    }

    let follow_up = execution["steps"][2]["result"]["task_id"]
        .as_str()
        .expect("the follow-up's id");
    let follow_up = board
        .client()
        .get_after(&board.task(follow_up), &head(&board).await)
        .await;
    let follow_up = follow_up.assert_status(200);
    assert_eq!(follow_up["title"], "Review Login page");
    assert_eq!(follow_up["labels"], json!(["review"]));
    assert_eq!(follow_up["priority"], "high");
    let labelled = board
        .client()
        .get_after(&board.task(&task), &head(&board).await)
        .await;
    assert_eq!(labelled.assert_status(200)["labels"], json!(["shipped"]));
    let comments = board
        .client()
        .get_after(
            &format!("{}/comments", board.task(&task)),
            &head(&board).await,
        )
        .await;
    let comments = comments.assert_status(200);
    assert_eq!(comments["total"], 1);
    assert_eq!(comments["items"][0]["body"], "Closed WEB-1");
    assert_eq!(comments["items"][0]["author_id"], rule.as_str());
    for change in stream_events(&board, follow_up["id"].as_str().unwrap()).await {
        assert_eq!(change["causation_id"], transition.as_str());
    }
}

async fn a_failing_step_stops_the_execution_and_says_why(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    // A member who left: the assignment must fail, not assign them.
    let departed = board.add_member(&tenet, "member").await;
    board
        .client()
        .delete(&format!(
            "/api/v1/workspaces/{}/members/{}",
            board.workspace, departed.id
        ))
        .await
        .assert_status(200);
    let rule = automation(
        &board,
        json!({
            "name": "Hand over",
            "trigger": { "event": "task.status_changed", "to": "in_progress" },
            "actions": [
                { "type": "set_priority", "priority": "urgent" },
                { "type": "assign", "user_id": departed.id },
                { "type": "add_label", "label": "handed-over" },
            ],
        }),
    )
    .await;
    let task = board.add_task("Thing").await;
    board.move_to(&task, "in_progress").await.assert_status(200);

    let executions = finished(&board, &rule, 1).await;
    let execution = &executions[0];
    assert_eq!(execution["status"], "failed");
    assert_eq!(statuses(execution), vec!["succeeded", "failed", "skipped"]);
    let error = execution["steps"][1]["error"].as_str().unwrap_or_default();
    assert!(error.contains("not a member"), "{error}");
    assert!(
        execution["error"]
            .as_str()
            .unwrap_or_default()
            .contains("step 1 (assign) failed"),
        "{execution:#}"
    );
    assert_eq!(execution["steps"][2]["error"], "an earlier step failed");
    let read = board
        .client()
        .get_after(&board.task(&task), &head(&board).await)
        .await;
    let read = read.assert_status(200);
    assert_eq!(read["priority"], "urgent");
    assert!(read["assignee_id"].is_null());
    assert_eq!(read["labels"], json!([]));
}

async fn an_automation_never_triggers_itself(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let rule = automation(
        &board,
        json!({
            "name": "Triage bugs",
            "trigger": { "event": "task.created", "label": "bug" },
            "actions": [
                { "type": "create_task", "title": "Triage {{task.key}}", "labels": ["bug"] },
            ],
        }),
    )
    .await;
    // Another automation sees every creation: once it has run for the
    // follow-up too, the follow-up's creation has been evaluated.
    let witness = automation(
        &board,
        json!({
            "name": "Witness",
            "trigger": { "event": "task.created" },
            "actions": [{ "type": "add_label", "label": "seen" }],
        }),
    )
    .await;
    board
        .create(json!({ "title": "Crash", "labels": ["bug"] }))
        .await
        .assert_status(201);

    let witnessed = finished(&board, &witness, 2).await;
    assert!(witnessed.iter().all(|e| e["status"] == "succeeded"));
    let depths: Vec<i64> = witnessed
        .iter()
        .filter_map(|e| e["depth"].as_i64())
        .collect();
    assert_eq!(depths.iter().max(), Some(&2), "{witnessed:#?}");
    let own = finished(&board, &rule, 1).await;
    assert_eq!(own[0]["status"], "succeeded");
    let tasks = board
        .client()
        .get_after(&board.tasks(), &head(&board).await)
        .await;
    assert_eq!(tasks.assert_status(200)["total"], 2);
}

async fn a_chain_of_automations_stops_at_the_depth_limit(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let mut rules = Vec::new();
    for n in 1..=4 {
        rules.push(
            automation(
                &board,
                json!({
                    "name": format!("Step {n}"),
                    "trigger": { "event": "task.created", "label": format!("l{n}") },
                    "actions": [
                        { "type": "create_task", "title": format!("From {n}"), "labels": [format!("l{}", n + 1)] },
                    ],
                }),
            )
            .await,
        );
    }
    board
        .create(json!({ "title": "Start", "labels": ["l1"] }))
        .await
        .assert_status(201);
    for (depth, rule) in rules.iter().enumerate().take(3) {
        let executions = finished(&board, rule, 1).await;
        assert_eq!(executions[0]["status"], "succeeded");
        assert_eq!(executions[0]["depth"], depth as i64 + 1);
    }
    let too_deep = finished(&board, &rules[3], 1).await;
    assert_eq!(too_deep[0]["status"], "skipped", "{too_deep:#?}");
    assert_eq!(too_deep[0]["depth"], 4);
    assert_eq!(statuses(&too_deep[0]), vec!["skipped"]);
    assert!(
        too_deep[0]["steps"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("depth limit")
    );
    // The start and three follow-ups: the fourth was never made.
    let tasks = board
        .client()
        .get_after(&board.tasks(), &head(&board).await)
        .await;
    assert_eq!(tasks.assert_status(200)["total"], 4);
}

async fn a_disabled_automation_does_nothing(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let off = automation(
        &board,
        json!({
            "name": "Off from the start",
            "trigger": { "event": "task.created" },
            "actions": [{ "type": "add_label", "label": "off" }],
            "enabled": false,
        }),
    )
    .await;
    let switched = automation(
        &board,
        json!({
            "name": "Switched off",
            "trigger": { "event": "task.created" },
            "actions": [{ "type": "set_priority", "priority": "urgent" }],
        }),
    )
    .await;
    let patched = board
        .client()
        .patch(
            &automation_url(&board, &switched),
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!(patched.assert_status(200)["enabled"], false);
    let witness = automation(
        &board,
        json!({
            "name": "Witness",
            "trigger": { "event": "task.created" },
            "actions": [{ "type": "add_label", "label": "seen" }],
        }),
    )
    .await;
    let task = board.add_task("Quiet").await;
    finished(&board, &witness, 1).await;
    for rule in [&off, &switched] {
        let page = board.client().get(&executions_url(&board, rule)).await;
        assert_eq!(page.assert_status(200)["total"], 0);
    }
    let read = board
        .client()
        .get_after(&board.task(&task), &head(&board).await)
        .await;
    let read = read.assert_status(200);
    assert_eq!(read["labels"], json!(["seen"]));
    assert_eq!(read["priority"], "medium");
}

async fn an_execution_interrupted_by_kill_9_completes_exactly_once_after_restart(backing: Backing) {
    // Each step pauses between `running` and its action, so the process
    // can be killed inside one.
    let mut tenet = start_with(&backing, &[("TENET_AUTOMATION_STEP_DELAY_MS", "1500")]).await;
    let board = Board::new(&tenet, "Board").await;
    let rule = automation(&board, follow_up_rule()).await;
    let task = board.add_task("Crash me").await;
    finish_task(&board, &task).await;
    let running = eventually(board.client(), &executions_url(&board, &rule), |page| {
        page["items"][0]["steps"][0]["status"] == "running"
    })
    .await;
    let execution = running["items"][0]["id"].as_str().unwrap().to_owned();
    tenet.stop_with("-KILL").await;

    let tenet = start(&backing).await;
    let board = Board {
        owner: User {
            client: Client {
                base: tenet.base.clone(),
                ..board.owner.client.clone()
            },
            ..board.owner
        },
        ..board
    };
    let executions = finished(&board, &rule, 1).await;
    assert_eq!(executions[0]["id"], execution.as_str());
    assert_eq!(executions[0]["status"], "succeeded", "{executions:#?}");
    assert_eq!(
        statuses(&executions[0]),
        vec!["succeeded", "succeeded", "succeeded"]
    );
    // Once: one start, one success per step, one label, one comment, one
    // follow-up.
    let events = stream_events(&board, &execution).await;
    let count = |event_type: &str| {
        events
            .iter()
            .filter(|e| e["event_type"] == event_type)
            .count()
    };
    assert_eq!(count("automation.execution_started"), 1);
    assert_eq!(count("automation.execution_finished"), 1);
    let succeeded = events
        .iter()
        .filter(|e| e["data"]["to"] == "succeeded")
        .count();
    assert_eq!(succeeded, 3);
    let tasks = board
        .client()
        .get_after(&board.tasks(), &head(&board).await)
        .await;
    assert_eq!(tasks.assert_status(200)["total"], 2);
    let comments = board
        .client()
        .get_after(
            &format!("{}/comments", board.task(&task)),
            &head(&board).await,
        )
        .await;
    assert_eq!(comments.assert_status(200)["total"], 1);
    let read = board
        .client()
        .get_after(&board.task(&task), &head(&board).await)
        .await;
    assert_eq!(read.assert_status(200)["labels"], json!(["shipped"]));
}

async fn invalid_automations_are_refused_naming_the_field(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let cases = [
        (
            json!({ "name": "x", "trigger": { "event": "task.deleted" }, "actions": [{ "type": "add_label", "label": "a" }] }),
            "trigger.event",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.status_changed", "to": "finished" }, "actions": [{ "type": "add_label", "label": "a" }] }),
            "trigger.to",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.status_changed" }, "actions": [{ "type": "add_label", "label": "a" }] }),
            "trigger.to",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.created" }, "actions": [] }),
            "actions",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.created" }, "actions": [{ "type": "launch" }] }),
            "actions[0].type",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.created" }, "actions": [{ "type": "add_label", "label": "a" }, { "type": "set_priority", "priority": "asap" }] }),
            "actions[1].priority",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.created" }, "actions": [{ "type": "assign" }] }),
            "actions[0].user_id",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "task.created" }, "actions": [{ "type": "create_task", "label": "a", "title": "t" }] }),
            "actions[0].label",
        ),
        (
            json!({ "name": "", "trigger": { "event": "task.created" }, "actions": [{ "type": "comment", "body": "hi" }] }),
            "name",
        ),
    ];
    for (body, field) in cases {
        let refused = board.client().post(&automations_url(&board), body).await;
        refused.assert_problem(422, "VALIDATION_ERROR");
        assert!(
            refused.fields().contains(&field.to_owned()),
            "{field}: {:#}",
            refused.body
        );
    }
    let list = board
        .client()
        .get_after(&automations_url(&board), &board.token)
        .await;
    assert_eq!(list.assert_status(200)["total"], 0);
    let missing = format!(
        "/api/v1/workspaces/{}/projects/{}/automations",
        board.workspace,
        uuid::Uuid::now_v7()
    );
    board
        .client()
        .post(&missing, follow_up_rule())
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn automations_and_executions_of_another_tenant_are_not_found(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let rule = automation(&board, follow_up_rule()).await;
    let task = board.add_task("Mine").await;
    finish_task(&board, &task).await;
    let executions = finished(&board, &rule, 1).await;
    let execution = executions[0]["id"].as_str().unwrap();

    let other = Board::new(&tenet, "Other").await;
    let theirs = [
        format!(
            "/api/v1/workspaces/{}/projects/{}/automations/{rule}",
            other.workspace, other.project
        ),
        format!(
            "/api/v1/workspaces/{}/projects/{}/automations/{rule}/executions",
            other.workspace, other.project
        ),
        format!(
            "/api/v1/workspaces/{}/executions/{execution}",
            other.workspace
        ),
    ];
    for path in &theirs {
        other
            .client()
            .get(path)
            .await
            .assert_problem(404, "NOT_FOUND");
    }
    other
        .client()
        .patch(&theirs[0], json!({ "enabled": false }))
        .await
        .assert_problem(404, "NOT_FOUND");
    other
        .client()
        .delete(&theirs[0])
        .await
        .assert_problem(404, "NOT_FOUND");
    // And in the right workspace but another project, also not found.
    let second = board
        .client()
        .post(
            &crate::common::projects_url(&board.workspace),
            json!({ "name": "Second", "slug": "second" }),
        )
        .await;
    let second = id(&second, 201);
    board
        .client()
        .get(&format!(
            "/api/v1/workspaces/{}/projects/{second}/automations/{rule}",
            board.workspace
        ))
        .await
        .assert_problem(404, "NOT_FOUND");
    let still = board.client().get(&automation_url(&board, &rule)).await;
    assert_eq!(still.assert_status(200)["enabled"], true);
}

async fn a_deleted_automation_runs_no_more(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let rule = automation(&board, follow_up_rule()).await;
    let deleted = board.client().delete(&automation_url(&board, &rule)).await;
    deleted.assert_status(200);
    board
        .client()
        .get_after(&automation_url(&board, &rule), &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    let witness = automation(
        &board,
        json!({
            "name": "Witness",
            "trigger": { "event": "task.status_changed", "to": "done" },
            "actions": [{ "type": "add_label", "label": "seen" }],
        }),
    )
    .await;
    let task = board.add_task("Gone").await;
    finish_task(&board, &task).await;
    finished(&board, &witness, 1).await;
    let tasks = board
        .client()
        .get_after(&board.tasks(), &head(&board).await)
        .await;
    assert_eq!(tasks.assert_status(200)["total"], 1);
}

async fn a_passed_due_date_triggers_its_automation_once(backing: Backing) {
    let tenet = start_with(&backing, &[("TENET_AUTOMATION_DUE_SCAN_MS", "100")]).await;
    let board = Board::new(&tenet, "Board").await;
    let today = chrono::Utc::now().date_naive();
    let yesterday = (today - chrono::Duration::days(1)).to_string();
    let tomorrow = (today + chrono::Duration::days(1)).to_string();
    let late = id(
        &board
            .create(json!({ "title": "Late", "due_date": yesterday }))
            .await,
        201,
    );
    let finished_late = id(
        &board
            .create(json!({ "title": "Done anyway", "due_date": yesterday }))
            .await,
        201,
    );
    finish_task(&board, &finished_late).await;
    let future = board
        .create(json!({ "title": "Not yet", "due_date": tomorrow }))
        .await;
    let future_id = id(&future, 201);
    // The tasks read model knows all three before the automation exists.
    board
        .client()
        .get_after(&board.task(&future_id), &future.token())
        .await
        .assert_status(200);
    let rule = automation(
        &board,
        json!({
            "name": "Chase late work",
            "trigger": { "event": "task.due_date_passed" },
            "actions": [
                { "type": "set_priority", "priority": "urgent" },
                { "type": "comment", "body": "{{task.key}} is overdue" },
            ],
        }),
    )
    .await;
    let executions = finished(&board, &rule, 1).await;
    assert_eq!(executions[0]["status"], "succeeded", "{executions:#?}");
    assert_eq!(executions[0]["task_id"], late.as_str());
    assert_eq!(executions[0]["trigger_event_type"], "due_date.passed");
    let read = board
        .client()
        .get_after(&board.task(&late), &head(&board).await)
        .await;
    assert_eq!(read.assert_status(200)["priority"], "urgent");

    // A task that becomes late later is chased by a later scan; the first
    // is not chased again.
    let later = id(
        &board
            .create(json!({ "title": "Later", "due_date": yesterday }))
            .await,
        201,
    );
    let executions = finished(&board, &rule, 2).await;
    let chased: Vec<&str> = executions
        .iter()
        .filter_map(|e| e["task_id"].as_str())
        .collect();
    assert!(chased.contains(&later.as_str()), "{executions:#?}");
    assert!(chased.contains(&late.as_str()));
    for quiet in [&finished_late, &future_id] {
        let read = board
            .client()
            .get_after(&board.task(quiet), &head(&board).await)
            .await;
        assert_eq!(read.assert_status(200)["priority"], "medium");
    }
}

/// The WebSocket messages of a subscription to `channel`, as `client`,
/// until `done` holds.
async fn watch(
    tenet: &Tenet,
    client: &Client,
    channel: &str,
    ready: impl AsyncFnOnce(),
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    use futures::SinkExt;
    let url = format!("{}/api/v1/ws", tenet.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    let token = client.token.as_deref().expect("a token");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut stream, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let subscribe = json!({ "type": "subscribe", "channel": channel });
    stream
        .send(Message::text(subscribe.to_string()))
        .await
        .expect("send");
    let mut seen: Vec<Value> = Vec::new();
    let mut ready = Some(ready);
    while !done(&seen) {
        let frame = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no message in time after {seen:#?}"));
        let Some(Ok(Message::Text(text))) = frame else {
            continue;
        };
        let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
        if message["type"] == "subscribed" {
            if let Some(ready) = ready.take() {
                ready().await;
            }
            continue;
        }
        seen.push(message);
    }
    seen
}

async fn executions_are_pushed_on_the_websocket_step_by_step(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Board").await;
    let rule = automation(&board, follow_up_rule()).await;
    let task = board.add_task("Watched").await;
    let messages = watch(
        &tenet,
        board.client(),
        &format!("task:{task}"),
        async || finish_task(&board, &task).await,
        |seen| {
            seen.iter()
                .any(|m| m["resource"] == "execution" && m["data"]["status"] == "succeeded")
        },
    )
    .await;
    let executions: Vec<&Value> = messages
        .iter()
        .filter(|m| m["resource"] == "execution")
        .collect();
    let first = &executions[0]["data"];
    assert_eq!(executions[0]["event_type"], "automation.execution_started");
    assert_eq!(statuses(first), vec!["pending", "pending", "pending"]);
    assert_eq!(first["automation_id"], rule.as_str());
    // pending → running → succeeded for each step, then the finish.
    let moves = executions
        .iter()
        .filter(|m| m["event_type"] == "automation.step_status_changed")
        .count();
    assert_eq!(moves, 6, "{executions:#?}");
    let versions: Vec<i64> = executions
        .iter()
        .filter_map(|m| m["data"]["version"].as_i64())
        .collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );
    let last = &executions.last().expect("an update")["data"];
    let id = last["id"].as_str().expect("id");
    let shown = board.client().get(&execution_url(&board, id)).await;
    assert_eq!(shown.assert_status(200), last);
}

in_both_modes!(
    a_passed_due_date_triggers_its_automation_once,
    executions_are_pushed_on_the_websocket_step_by_step,
    marking_a_task_done_runs_every_step_caused_by_the_transition,
    a_failing_step_stops_the_execution_and_says_why,
    an_automation_never_triggers_itself,
    a_chain_of_automations_stops_at_the_depth_limit,
    a_disabled_automation_does_nothing,
    an_execution_interrupted_by_kill_9_completes_exactly_once_after_restart,
    invalid_automations_are_refused_naming_the_field,
    automations_and_executions_of_another_tenant_are_not_found,
    a_deleted_automation_runs_no_more,
);

/// Two processes on one Postgres and one NATS, each able to run
/// automations (one at a time, elected), and the one that may be running
/// them killed in the middle of an execution: every execution still runs
/// once, its steps once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_processes_and_one_killed_each_execution_runs_once() {
    let Some(backing) = Backing::new(Mode::Distributed).await else {
        return;
    };
    let slow = [("TENET_AUTOMATION_STEP_DELAY_MS", "300")];
    let mut first = start_with(&backing, &slow).await;
    let second = start_with(&backing, &slow).await;
    let board = Board::new(&second, "Shared").await;
    let rule = automation(&board, follow_up_rule()).await;
    let mut tasks = Vec::new();
    for n in 0..3 {
        let task = board.add_task(&format!("Task {n}")).await;
        finish_task(&board, &task).await;
        tasks.push(task);
    }
    // Once an execution is under way, kill the first process (the leader,
    // or not: either way the survivor must finish the work exactly once).
    eventually(board.client(), &executions_url(&board, &rule), |page| {
        page["total"].as_i64().is_some_and(|total| total >= 1)
    })
    .await;
    first.stop_with("-KILL").await;

    let executions = finished(&board, &rule, 3).await;
    for execution in &executions {
        assert_eq!(execution["status"], "succeeded", "{executions:#?}");
        assert_eq!(
            statuses(execution),
            vec!["succeeded", "succeeded", "succeeded"]
        );
        let events = stream_events(&board, execution["id"].as_str().unwrap()).await;
        let starts = events
            .iter()
            .filter(|e| e["event_type"] == "automation.execution_started")
            .count();
        assert_eq!(starts, 1);
    }
    let triggered: std::collections::BTreeSet<&str> = executions
        .iter()
        .filter_map(|e| e["task_id"].as_str())
        .collect();
    assert_eq!(triggered.len(), 3);
    let listed = board
        .client()
        .get_after(&board.tasks(), &head(&board).await)
        .await;
    assert_eq!(listed.assert_status(200)["total"], 6, "one follow-up each");
    for task in &tasks {
        let comments = board
            .client()
            .get_after(
                &format!("{}/comments", board.task(task)),
                &head(&board).await,
            )
            .await;
        assert_eq!(comments.assert_status(200)["total"], 1);
    }
}
