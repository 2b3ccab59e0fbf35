//! The log as an audit trail, through the real binary, in both modes:
//! workspace and platform audit logs with their filters, tenant scoping
//! and redaction; stream history; time travel and task history.

use std::time::Duration;

use crate::common::{Backing, Client, Tenet, User, add_member, id, keys_url, start, strings};
use serde_json::{Value, json};

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

/// A workspace with a project, a task moved along, a comment, a member and
/// an API key; answers (workspace, project, task, member).
async fn busy_workspace(tenet: &Tenet, owner: &User) -> (String, String, String, User) {
    let workspace = owner.workspace("Audited").await;
    let base = format!("/api/v1/workspaces/{workspace}");
    let project = id(
        &owner
            .client
            .post(&format!("{base}/projects"), json!({ "name": "Audit" }))
            .await,
        201,
    );
    let task = id(
        &owner
            .client
            .post(
                &format!("{base}/projects/{project}/tasks"),
                json!({ "title": "Audited task" }),
            )
            .await,
        201,
    );
    owner
        .client
        .post(
            &format!("{base}/tasks/{task}/transitions"),
            json!({ "to": "in_progress" }),
        )
        .await
        .assert_status(200);
    owner
        .client
        .post(
            &format!("{base}/tasks/{task}/comments"),
            json!({ "body": "Noted" }),
        )
        .await
        .assert_status(201);
    let member = User::register(tenet, "member").await;
    add_member(&owner.client, &workspace, &member.email, "member")
        .await
        .assert_status(201);
    owner
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "ci", "scopes": ["tasks:read"] }),
        )
        .await
        .assert_status(201);
    (workspace, project, task, member)
}

async fn the_workspace_audit_log_filters_its_own_events_and_redacts_secrets(backing: Backing) {
    let tenet = start(&backing).await;
    let owner = User::register(&tenet, "owner").await;
    let (workspace, project, task, member) = busy_workspace(&tenet, &owner).await;
    let other = User::register(&tenet, "other").await;
    let (elsewhere, ..) = busy_workspace(&tenet, &other).await;
    let log = format!("/api/v1/workspaces/{workspace}/audit-log");

    let all = owner.client.get(&format!("{log}?limit=100")).await;
    let all = all.assert_status(200);
    let types = strings(all, "event_type");
    assert_eq!(
        types,
        vec![
            "workspace.created",
            "project.created",
            "task.created",
            "project.task_added",
            "task.status_changed",
            "comment.added",
            "workspace.member_added",
            "api_key.issued",
        ]
    );
    let positions: Vec<i64> = items(all)
        .iter()
        .map(|item| item["position"].as_i64().expect("position"))
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "log order"
    );
    for item in items(all) {
        assert_eq!(item["tenant_id"], workspace, "only this tenant's events");
        assert_eq!(item["actor"]["type"], "user");
        assert_eq!(item["actor"]["id"], owner.id);
        let display = item["actor"]["display"].as_str().unwrap_or_default();
        assert!(display.contains(&owner.email), "{display}");
        assert!(item["request_id"].is_string());
        assert!(item["correlation_id"].is_string());
        assert_eq!(item["schema_version"].as_i64().map(|v| v >= 1), Some(true));
    }
    let issued = items(all)
        .iter()
        .find(|item| item["event_type"] == "api_key.issued")
        .expect("api_key.issued");
    assert_eq!(issued["data"]["key_hash"], "[redacted]");
    assert_eq!(issued["data"]["name"], "ci");
    assert!(!all.to_string().contains(&elsewhere));

    let filtered = |query: &str| {
        let client = owner.client.clone();
        let path = format!("{log}?{query}");
        async move {
            let page = client.get(&path).await;
            page.assert_status(200).clone()
        }
    };
    assert_eq!(
        strings(&filtered("event_type=task.").await, "event_type"),
        vec!["task.created", "task.status_changed"]
    );
    assert_eq!(
        strings(&filtered("event_type=comment.added").await, "event_type"),
        vec!["comment.added"]
    );
    assert_eq!(
        strings(&filtered(&format!("stream_id={task}")).await, "event_type"),
        vec!["task.created", "task.status_changed"]
    );
    assert_eq!(
        strings(
            &filtered(&format!("stream_id={project}")).await,
            "event_type"
        ),
        vec!["project.created", "project.task_added"]
    );
    assert_eq!(
        filtered(&format!("actor_id={}", member.id)).await["total"],
        0
    );
    assert_eq!(
        filtered(&format!("actor_id={}", owner.id)).await["total"],
        8
    );
    let after = positions[5];
    assert_eq!(
        strings(
            &filtered(&format!("after_position={after}")).await,
            "event_type"
        ),
        vec!["workspace.member_added", "api_key.issued"]
    );
    let paged = filtered("limit=3&offset=3").await;
    assert_eq!(paged["total"], 8);
    assert_eq!(paged["has_more"], true);
    assert_eq!(items(&paged).len(), 3);
    let first_at = items(all)[0]["occurred_at"]
        .as_str()
        .expect("time")
        .to_owned();
    let last_at = items(all)[7]["occurred_at"]
        .as_str()
        .expect("time")
        .to_owned();
    let window = filtered(&format!(
        "from={}&to={}",
        urlencode(&first_at),
        urlencode(&last_at)
    ))
    .await;
    assert!(
        window["total"]
            .as_i64()
            .is_some_and(|n| (1..8).contains(&n))
    );
    assert_eq!(filtered("from=2100-01-01T00:00:00Z").await["total"], 0);

    for (query, field) in [
        ("event_type=Task%20created", "event_type"),
        ("actor_id=someone", "actor_id"),
        ("from=yesterday", "from"),
        ("after_position=-1", "after_position"),
        ("limit=0", "limit"),
    ] {
        let refused = owner.client.get(&format!("{log}?{query}")).await;
        refused.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(refused.fields(), vec![field], "{query}");
    }
    // Members do not read the audit log; other tenants do not see it.
    member
        .client
        .get(&log)
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    other
        .client
        .get(&log)
        .await
        .assert_problem(404, "NOT_FOUND");
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

async fn platform_admins_read_every_tenant_and_never_a_secret(backing: Backing) {
    let tenet = start(&backing).await;
    let root = User::register(&tenet, "root").await;
    let owner = User::register(&tenet, "owner").await;
    let (workspace, ..) = busy_workspace(&tenet, &owner).await;
    // A refresh rotates the session's token: another secret in the log.
    let login = Client::anonymous(&tenet)
        .post(
            "/api/v1/auth/login",
            json!({ "email": owner.email, "password": owner.password }),
        )
        .await;
    let refresh = login.assert_status(200)["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    Client::anonymous(&tenet)
        .post("/api/v1/auth/refresh", json!({ "refresh_token": refresh }))
        .await
        .assert_status(200);

    owner
        .client
        .get("/api/v1/admin/audit-log")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    backing.grant_platform_admin(&root.email).await;
    let mut everything = Vec::new();
    let mut offset = 0;
    loop {
        let page = root
            .client
            .get(&format!(
                "/api/v1/admin/audit-log?limit=100&offset={offset}"
            ))
            .await;
        let page = page.assert_status(200).clone();
        everything.extend(items(&page).iter().cloned());
        if page["has_more"] != true {
            break;
        }
        offset += 100;
    }
    let text = serde_json::to_string(&everything).expect("json");
    for secret_field in ["password_hash", "refresh_hash", "key_hash"] {
        let shown: Vec<&Value> = everything
            .iter()
            .filter_map(|item| item["data"].get(secret_field))
            .collect();
        assert!(!shown.is_empty(), "the log has {secret_field} fields");
        assert!(
            shown.iter().all(|value| *value == "[redacted]"),
            "{secret_field}: {shown:?}"
        );
    }
    assert!(!text.contains("$argon2"), "no password hash anywhere");
    assert!(!text.contains(&refresh), "no refresh token anywhere");
    let types: Vec<&str> = everything
        .iter()
        .filter_map(|item| item["event_type"].as_str())
        .collect();
    for kind in [
        "user.registered",
        "session.started",
        "session.refreshed",
        "user.platform_admin_granted",
    ] {
        assert!(types.contains(&kind), "{kind} in {types:?}");
    }
    let granted = everything
        .iter()
        .find(|item| item["event_type"] == "user.platform_admin_granted")
        .expect("the grant is audited");
    assert_eq!(granted["actor"]["type"], "system");
    assert_eq!(granted["actor"]["display"], "cli");

    let theirs = root
        .client
        .get(&format!(
            "/api/v1/admin/audit-log?tenant_id={workspace}&limit=100"
        ))
        .await;
    let theirs = theirs.assert_status(200);
    assert_eq!(theirs["total"], 8);
    assert!(
        items(theirs)
            .iter()
            .all(|item| item["tenant_id"] == workspace)
    );

    // One stream, by id alone.
    let user_stream = root
        .client
        .get(&format!("/api/v1/admin/streams/{}/events", owner.id))
        .await;
    let user_stream = user_stream.assert_status(200);
    assert_eq!(items(user_stream)[0]["event_type"], "user.registered");
    assert_eq!(items(user_stream)[0]["data"]["password_hash"], "[redacted]");
    root.client
        .get(&format!(
            "/api/v1/admin/streams/{}/events",
            uuid::Uuid::new_v4()
        ))
        .await
        .assert_problem(404, "NOT_FOUND");
    owner
        .client
        .get(&format!("/api/v1/admin/streams/{}/events", owner.id))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
}

async fn the_departed_member_policy_is_the_actor_of_its_unassignments(backing: Backing) {
    let tenet = start(&backing).await;
    let owner = User::register(&tenet, "owner").await;
    let (workspace, project, _, member) = busy_workspace(&tenet, &owner).await;
    let base = format!("/api/v1/workspaces/{workspace}");
    let task = id(
        &owner
            .client
            .post(
                &format!("{base}/projects/{project}/tasks"),
                json!({ "title": "Theirs", "assignee_id": member.id }),
            )
            .await,
        201,
    );
    owner
        .client
        .delete(&format!("{base}/members/{}", member.id))
        .await
        .assert_status(200);
    let log = format!("{base}/audit-log?event_type=task.unassigned");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let unassigned = loop {
        let page = owner.client.get(&log).await;
        if page.body["total"] == 1 {
            break items(&page.body)[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never unassigned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(unassigned["stream_id"], task);
    assert_eq!(unassigned["actor"]["type"], "policy");
    assert_eq!(unassigned["actor"]["display"], "unassign-departed-members");
    let removed = owner
        .client
        .get(&format!(
            "{base}/audit-log?event_type=workspace.member_removed"
        ))
        .await;
    let removed = &items(removed.assert_status(200))[0];
    assert_eq!(unassigned["causation_id"], removed["event_id"]);
    assert_eq!(unassigned["correlation_id"], removed["correlation_id"]);
    // And the trace: the reaction's events are in the removal's trace.
    let trace = |item: &Value| item["traceparent"].as_str().expect("traceparent")[3..35].to_owned();
    assert_eq!(trace(&unassigned), trace(removed));
}

/// Waits until `time` is in the past by a little, so the next write is
/// strictly after it.
async fn tick() -> chrono::DateTime<chrono::Utc> {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let now = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(15)).await;
    now
}

async fn as_of_and_history_show_every_version_of_a_task_changed_ten_times(backing: Backing) {
    let tenet = start(&backing).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Travel").await;
    let base = format!("/api/v1/workspaces/{workspace}");
    let project = id(
        &owner
            .client
            .post(
                &format!("{base}/projects"),
                json!({ "name": "Travel", "slug": "trv" }),
            )
            .await,
        201,
    );
    let before_anything = tick().await;
    let created = owner
        .client
        .post(
            &format!("{base}/projects/{project}/tasks"),
            json!({ "title": "Version 1" }),
        )
        .await;
    let task = id(&created, 201);
    let path = format!("{base}/tasks/{task}");
    let mut snapshots = vec![(tick().await, created.body.clone())];
    let changes = [
        json!({ "title": "Version 2" }),
        json!({ "priority": "high" }),
        json!({ "labels": ["a"] }),
        json!({ "description": "Now with words" }),
        json!({ "due_date": "2027-05-01" }),
        json!({ "assignee_id": owner.id }),
        json!({ "labels": ["a", "b"] }),
        json!({ "title": "Version 8" }),
        json!({ "assignee_id": null }),
    ];
    for change in changes {
        let patched = owner.client.patch(&path, change).await;
        snapshots.push((tick().await, patched.assert_status(200).clone()));
    }
    let moved = owner
        .client
        .post(
            &format!("{path}/transitions"),
            json!({ "to": "in_progress" }),
        )
        .await;
    snapshots.push((tick().await, moved.assert_status(200).clone()));
    assert_eq!(snapshots.len(), 11);
    assert_eq!(snapshots[10].1["version"], 11);

    for (at, expected) in &snapshots {
        let then = owner
            .client
            .get(&format!("{path}?as_of={}", urlencode(&at.to_rfc3339())))
            .await;
        let then = then.assert_status(200);
        for field in [
            "version",
            "title",
            "description",
            "priority",
            "labels",
            "assignee_id",
            "due_date",
            "status",
            "key",
        ] {
            assert_eq!(
                then[field], expected[field],
                "{field} at version {}",
                expected["version"]
            );
        }
        assert_eq!(then["updated_at"], expected["updated_at"]);
    }
    owner
        .client
        .get(&format!(
            "{path}?as_of={}",
            urlencode(&before_anything.to_rfc3339())
        ))
        .await
        .assert_problem(404, "NOT_FOUND");
    owner
        .client
        .get(&format!("{path}?as_of=last-tuesday"))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    // The project as it was: before any task, and with one.
    let project_path = format!("{base}/projects/{project}");
    let empty = owner
        .client
        .get(&format!(
            "{project_path}?as_of={}",
            urlencode(&before_anything.to_rfc3339())
        ))
        .await;
    assert_eq!(empty.assert_status(200)["open_tasks"], 0);
    let busy = owner
        .client
        .get(&format!(
            "{project_path}?as_of={}",
            urlencode(&snapshots[0].0.to_rfc3339())
        ))
        .await;
    assert_eq!(busy.assert_status(200)["open_tasks"], 1);

    let history = owner.client.get(&format!("{path}/history")).await;
    let history = history.assert_status(200);
    assert_eq!(history["total"], 11);
    let versions = items(history);
    let fields = |index: usize| -> Vec<String> {
        versions[index]["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|change| change["field"].as_str().expect("field").to_owned())
            .collect()
    };
    assert_eq!(versions[0]["event_type"], "task.created");
    assert!(fields(0).contains(&"title".to_owned()));
    let expected = [
        vec!["title"],
        vec!["priority"],
        vec!["labels"],
        vec!["description"],
        vec!["due_date"],
        vec!["assignee_id"],
        vec!["labels"],
        vec!["title"],
        vec!["assignee_id"],
        vec!["status"],
    ];
    for (index, expected) in expected.iter().enumerate() {
        assert_eq!(fields(index + 1), *expected, "version {}", index + 2);
    }
    let renamed = &versions[1]["changes"][0];
    assert_eq!(
        (renamed["from"].clone(), renamed["to"].clone()),
        (json!("Version 1"), json!("Version 2"))
    );
    assert_eq!(versions[10]["changes"][0]["to"], "in_progress");
    for version in versions {
        assert_eq!(version["actor"]["id"], owner.id);
    }
    assert_eq!(versions[6]["task"]["assignee_id"], owner.id);
    let page = owner
        .client
        .get(&format!("{path}/history?limit=4&offset=8"))
        .await;
    assert_eq!(
        items(page.assert_status(200))
            .iter()
            .map(|v| v["version"].as_i64().expect("version"))
            .collect::<Vec<_>>(),
        vec![9, 10, 11]
    );
    let stranger = User::register(&tenet, "stranger").await;
    stranger.workspace("Own").await;
    stranger
        .client
        .get(&format!("{path}/history"))
        .await
        .assert_problem(404, "NOT_FOUND");
}

in_both_modes!(
    the_workspace_audit_log_filters_its_own_events_and_redacts_secrets,
    platform_admins_read_every_tenant_and_never_a_secret,
    the_departed_member_policy_is_the_actor_of_its_unassignments,
    as_of_and_history_show_every_version_of_a_task_changed_ten_times,
);
