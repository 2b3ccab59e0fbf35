//! Project templates through the real binary, in both modes: versions,
//! instantiation (every parameter error named, all or nothing, idempotent,
//! numbered without gaps under concurrency), templates made from projects,
//! and tenant isolation.

use std::collections::BTreeSet;

use crate::common::{Backing, Board, Client, User, id, start, strings};
use serde_json::{Value, json};

fn templates_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/templates")
}

fn template_url(workspace: &str, template: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/templates/{template}")
}

fn instantiate_url(workspace: &str, template: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/templates/{template}/instantiate")
}

/// A launch template: a product name, a platform, a launch date and an
/// owner, and three tasks.
fn launch() -> Value {
    json!({
        "name": "Launch",
        "parameters": [
            { "name": "product", "type": "string", "required": true },
            { "name": "platform", "type": "enum", "required": true, "values": ["web", "mobile"] },
            { "name": "launch", "type": "date", "required": false },
            { "name": "owner", "type": "member", "required": true },
        ],
        "project": {
            "name": "Launch {{product}}",
            "description": "Ship {{product}} on {{platform}} by {{launch}}",
            "tasks": [
                { "title": "Plan {{product}}", "priority": "high", "labels": ["plan"], "due_in_days": 7, "assignee": "owner" },
                { "title": "Build for {{platform}}", "description": "The {{platform}} build" },
                { "title": "Announce", "labels": ["marketing", "plan"] },
            ],
        },
    })
}

async fn create_template(client: &Client, workspace: &str, body: Value) -> String {
    id(&client.post(&templates_url(workspace), body).await, 201)
}

/// The projects of a workspace, once the read model has passed `token`.
async fn projects(client: &Client, workspace: &str, token: &str) -> Vec<Value> {
    let page = client
        .get_after(&format!("/api/v1/workspaces/{workspace}/projects"), token)
        .await;
    page.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .clone()
}

/// The tasks of a project, by number, once the read model has passed `token`.
async fn tasks_of(client: &Client, workspace: &str, project: &str, token: &str) -> Vec<Value> {
    let page = client
        .get_after(
            &format!(
                "/api/v1/workspaces/{workspace}/projects/{project}/tasks?sort=number&limit=100"
            ),
            token,
        )
        .await;
    page.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn a_template_is_versioned_and_each_change_is_a_new_version(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let client = board.client();
    let created = client
        .post(&templates_url(&board.workspace), launch())
        .await;
    let template = id(&created, 201);
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.etag(), "\"1\"");
    assert_eq!(
        created.body["parameters"][1]["values"],
        json!(["web", "mobile"])
    );
    assert_eq!(created.body["project"]["tasks"][1]["priority"], "medium");
    let url = template_url(&board.workspace, &template);
    let read = client.get_after(&url, &created.token()).await;
    assert_eq!(read.assert_status(200), &created.body);

    let renamed = client.patch(&url, json!({ "name": "Launch v2" })).await;
    assert_eq!(renamed.assert_status(200)["version"], 2);
    assert_eq!(renamed.body["project"], created.body["project"]);
    // The same definition again changes nothing: no new version.
    let same = client.patch(&url, json!({ "name": "Launch v2" })).await;
    assert_eq!(same.assert_status(200)["version"], 2);
    let read = client.get_after(&url, &same.token()).await;
    assert_eq!(read.assert_status(200)["name"], "Launch v2");
    assert_eq!(read.etag(), "\"2\"");
    let listed = client
        .get_after(&templates_url(&board.workspace), &same.token())
        .await;
    assert_eq!(
        strings(listed.assert_status(200), "id"),
        vec![template.clone()]
    );

    let deleted = client.delete(&url).await;
    deleted.assert_status(200);
    client
        .get_after(&url, &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    client
        .post(&instantiate_url(&board.workspace, &template), json!({}))
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn a_definition_that_names_what_it_does_not_declare_is_refused_by_field(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let refused = board
        .client()
        .post(
            &templates_url(&board.workspace),
            json!({
                "name": "Broken",
                "parameters": [
                    { "name": "Bad Name", "type": "string" },
                    { "name": "kind", "type": "enum" },
                    { "name": "day", "type": "date", "default": "tomorrow" },
                ],
                "project": {
                    "name": "{{missing}}",
                    "tasks": [{ "title": "T", "assignee": "day", "due_in_days": 99999 }],
                },
            }),
        )
        .await;
    refused.assert_problem(422, "VALIDATION_ERROR");
    let fields: BTreeSet<String> = refused.fields().into_iter().collect();
    let expected: BTreeSet<String> = [
        "parameters[0].name",
        "parameters[1].values",
        "parameters[2].default",
        "project.name",
        "project.tasks[0].assignee",
        "project.tasks[0].due_in_days",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(fields, expected, "{:#}", refused.body);
}

async fn every_parameter_error_is_named_and_a_refused_instantiation_creates_nothing(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let client = board.client();
    let template = create_template(client, &board.workspace, launch()).await;
    let url = instantiate_url(&board.workspace, &template);

    let missing = client.post(&url, json!({ "parameters": {} })).await;
    missing.assert_problem(422, "VALIDATION_ERROR");
    let fields: BTreeSet<String> = missing.fields().into_iter().collect();
    assert_eq!(
        fields,
        [
            "parameters.owner",
            "parameters.platform",
            "parameters.product"
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
    );

    let wrong = client
        .post(
            &url,
            json!({ "parameters": {
                "product": 42,
                "platform": "desktop",
                "launch": "2027-13-40",
                "owner": "not-a-user",
                "colour": "red",
            } }),
        )
        .await;
    wrong.assert_problem(422, "VALIDATION_ERROR");
    let fields: BTreeSet<String> = wrong.fields().into_iter().collect();
    assert_eq!(
        fields,
        [
            "parameters.colour",
            "parameters.launch",
            "parameters.owner",
            "parameters.platform",
            "parameters.product",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<BTreeSet<_>>(),
        "{:#}",
        wrong.body
    );

    // A registered user who is not a member: refused by the decision,
    // which read the workspace.
    let stranger = User::register(&tenet, "stranger").await;
    let not_member = client
        .post(
            &url,
            json!({ "parameters": { "product": "Tenet", "platform": "web", "owner": stranger.id } }),
        )
        .await;
    not_member.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(not_member.fields(), vec!["parameters.owner"]);

    // Nothing of any attempt exists: only the board's own project, and no
    // task anywhere.
    let head = client
        .post(&templates_url(&board.workspace), launch())
        .await;
    let token = head.token();
    let names: Vec<String> = projects(client, &board.workspace, &token)
        .await
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, vec!["Web"]);
    let all = client.get_after(&board.all_tasks(), &token).await;
    assert_eq!(all.assert_status(200)["total"], 0);
}

async fn an_instantiation_creates_the_project_and_its_tasks_with_the_version_it_used(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let client = board.client();
    let member = board.add_member(&tenet, "member").await;
    let template = create_template(client, &board.workspace, launch()).await;
    client
        .patch(
            &template_url(&board.workspace, &template),
            json!({ "name": "Launch, second version" }),
        )
        .await
        .assert_status(200);
    let before = chrono::Utc::now().date_naive();
    let made = client
        .post(
            &instantiate_url(&board.workspace, &template),
            json!({ "parameters": {
                "product": "Tenet",
                "platform": "mobile",
                "launch": "2027-05-01",
                "owner": member.id,
            } }),
        )
        .await;
    let project = id(&made, 201);
    let body = &made.body;
    assert_eq!(body["name"], "Launch Tenet");
    assert_eq!(body["slug"], "launch-tenet");
    assert_eq!(body["key"], "LAUNCH-TENET");
    assert_eq!(body["description"], "Ship Tenet on mobile by 2027-05-01");
    assert_eq!(body["template_id"], template);
    assert_eq!(body["template_version"], 2);
    assert_eq!(body["open_tasks"], 3);
    let token = made.token();
    let read = client
        .get_after(
            &format!("/api/v1/workspaces/{}/projects/{project}", board.workspace),
            &token,
        )
        .await;
    let read = read.assert_status(200);
    assert_eq!(read["template_id"], template);
    assert_eq!(read["template_version"], 2);
    assert_eq!(read["open_tasks"], 3);

    let tasks = tasks_of(client, &board.workspace, &project, &token).await;
    let titles: Vec<&str> = tasks
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, vec!["Plan Tenet", "Build for mobile", "Announce"]);
    let keys: Vec<&str> = tasks
        .iter()
        .map(|t| t["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        vec!["LAUNCH-TENET-1", "LAUNCH-TENET-2", "LAUNCH-TENET-3"]
    );
    assert_eq!(tasks[0]["assignee_id"], member.id);
    assert_eq!(tasks[0]["priority"], "high");
    // Due seven days after the day of instantiation (the day may have
    // turned since the request).
    let due: BTreeSet<String> = [before, chrono::Utc::now().date_naive()]
        .into_iter()
        .map(|day| (day + chrono::Days::new(7)).to_string())
        .collect();
    assert!(
        due.contains(tasks[0]["due_date"].as_str().unwrap_or_default()),
        "{:#}",
        tasks[0]
    );
    assert_eq!(tasks[1]["description"], "The mobile build");
    assert_eq!(tasks[1]["assignee_id"], Value::Null);
    assert_eq!(tasks[2]["labels"], json!(["marketing", "plan"]));

    // The same name again gets the next free slug.
    let again = client
        .post(
            &instantiate_url(&board.workspace, &template),
            json!({ "parameters": { "product": "Tenet", "platform": "web", "owner": member.id } }),
        )
        .await;
    again.assert_status(201);
    assert_eq!(again.body["slug"], "launch-tenet-2");
    assert_eq!(again.body["key"], "LAUNCH-TENET-2");
}

async fn a_retried_instantiation_replays_its_first_project(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let client = board.client();
    let template = create_template(client, &board.workspace, launch()).await;
    let body =
        json!({ "parameters": { "product": "Once", "platform": "web", "owner": board.owner.id } });
    let url = instantiate_url(&board.workspace, &template);
    let send = || {
        client.send(
            client
                .request(reqwest::Method::POST, &url)
                .header("Idempotency-Key", "instantiate-once")
                .json(&body),
        )
    };
    let first = send().await;
    let project = id(&first, 201);
    let second = send().await;
    assert_eq!(second.assert_status(201)["id"], project);
    assert_eq!(
        second.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(second.body, first.body);
    let listed = projects(client, &board.workspace, &second.token()).await;
    assert_eq!(listed.len(), 2, "the board's project and one instantiation");
    let all = client.get_after(&board.all_tasks(), &second.token()).await;
    assert_eq!(all.assert_status(200)["total"], 3);
}

async fn concurrent_instantiations_number_each_projects_tasks_without_gaps(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let client = board.client();
    let tasks: Vec<Value> = (1..=12)
        .map(|n| json!({ "title": format!("Step {n} of {{{{name}}}}") }))
        .collect();
    let template = create_template(
        client,
        &board.workspace,
        json!({
            "name": "Twelve steps",
            "parameters": [{ "name": "name", "type": "string", "required": true }],
            "project": { "name": "{{name}}", "tasks": tasks },
        }),
    )
    .await;
    let url = instantiate_url(&board.workspace, &template);
    let made = futures::future::join_all((0..8).map(|n| {
        let url = url.clone();
        async move {
            client
                .post(
                    &url,
                    json!({ "parameters": { "name": format!("Run {n}") } }),
                )
                .await
        }
    }))
    .await;
    let token = made
        .iter()
        .map(|reply| reply.token().parse::<i64>().expect("token"))
        .max()
        .expect("tokens")
        .to_string();
    for reply in &made {
        let project = id(reply, 201);
        let tasks = tasks_of(client, &board.workspace, &project, &token).await;
        let numbers: Vec<i64> = tasks
            .iter()
            .map(|t| t["number"].as_i64().unwrap_or(0))
            .collect();
        assert_eq!(numbers, (1..=12).collect::<Vec<i64>>());
        let name = reply.body["name"].as_str().expect("name");
        assert_eq!(tasks[11]["title"], format!("Step 12 of {name}"));
    }
    let all = client.get_after(&board.all_tasks(), &token).await;
    assert_eq!(all.assert_status(200)["total"], 96);
}

async fn a_template_made_from_a_project_copies_its_tasks(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Templates").await;
    let client = board.client();
    board
        .create(json!({ "title": "First", "priority": "urgent", "labels": ["a"] }))
        .await
        .assert_status(201);
    let gone = board.add_task("Deleted").await;
    client.delete(&board.task(&gone)).await.assert_status(200);
    board.add_task("Third {{not a placeholder}}").await;
    let made = client
        .post(
            &templates_url(&board.workspace),
            json!({ "from_project_id": board.project }),
        )
        .await;
    made.assert_status(201);
    assert_eq!(made.body["name"], "Web");
    assert_eq!(made.body["from_project_id"], board.project);
    let tasks = made.body["project"]["tasks"].as_array().expect("tasks");
    let titles: Vec<&str> = tasks
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, vec!["First", "Third { {not a placeholder}}"]);
    assert_eq!(tasks[0]["priority"], "urgent");
    assert_eq!(tasks[0]["labels"], json!(["a"]));
    let instantiated = client
        .post(&instantiate_url(&board.workspace, &made.id()), json!({}))
        .await;
    assert_eq!(instantiated.assert_status(201)["open_tasks"], 2);

    // Another workspace's project is no project of this one.
    let other = Board::new(&tenet, "Other").await;
    let refused = client
        .post(
            &templates_url(&board.workspace),
            json!({ "from_project_id": other.project }),
        )
        .await;
    refused.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(refused.fields(), vec!["from_project_id"]);
}

async fn another_workspaces_template_is_not_found(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Mine").await;
    let other = Board::new(&tenet, "Theirs").await;
    let created = other
        .client()
        .post(&templates_url(&other.workspace), launch())
        .await;
    let theirs = id(&created, 201);
    // Visible to its workspace first, so the refusals below are isolation,
    // not a read model that has not caught up.
    other
        .client()
        .get_after(&template_url(&other.workspace, &theirs), &created.token())
        .await
        .assert_status(200);
    let client = board.client();
    // Their template under my workspace, and my client in theirs.
    for reply in [
        client.get(&template_url(&board.workspace, &theirs)).await,
        client
            .patch(
                &template_url(&board.workspace, &theirs),
                json!({ "name": "Mine now" }),
            )
            .await,
        client
            .delete(&template_url(&board.workspace, &theirs))
            .await,
        client
            .post(&instantiate_url(&board.workspace, &theirs), json!({}))
            .await,
        client.get(&template_url(&other.workspace, &theirs)).await,
        client.get(&templates_url(&other.workspace)).await,
    ] {
        reply.assert_problem(404, "NOT_FOUND");
    }
    let still = other
        .client()
        .get(&template_url(&other.workspace, &theirs))
        .await;
    assert_eq!(still.assert_status(200)["version"], 1);
}

in_both_modes!(
    a_template_is_versioned_and_each_change_is_a_new_version,
    a_definition_that_names_what_it_does_not_declare_is_refused_by_field,
    every_parameter_error_is_named_and_a_refused_instantiation_creates_nothing,
    an_instantiation_creates_the_project_and_its_tasks_with_the_version_it_used,
    a_retried_instantiation_replays_its_first_project,
    concurrent_instantiations_number_each_projects_tasks_without_gaps,
    a_template_made_from_a_project_copies_its_tasks,
    another_workspaces_template_is_not_found,
);
