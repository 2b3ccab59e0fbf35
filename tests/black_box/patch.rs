//! Every PATCH route is a JSON merge patch (RFC 7396), in both modes: for
//! each one, `null` on a field that cannot be empty is 422 naming it and
//! changes nothing, `null` on a clearable field clears it, and a field left
//! out is unchanged; `application/merge-patch+json` is accepted beside
//! `application/json`.

use serde_json::{Value, json};

use crate::common::{Backing, Board, Client, Reply, User, start};

/// One PATCH route, with a resource of its own to change.
struct Route {
    name: &'static str,
    /// Where the PATCH goes.
    patch: String,
    /// Where the resource is read back (`None`: only the PATCH answers it).
    read: Option<String>,
    /// A field that may not be cleared.
    required: &'static str,
    /// A field `null` clears, with the value it is set to first and the
    /// value it reads as once cleared.
    clearable: Option<(&'static str, Value, Value)>,
}

/// `{field: value}`.
fn one(field: &str, value: Value) -> Value {
    let mut object = serde_json::Map::new();
    object.insert(field.to_owned(), value);
    Value::Object(object)
}

async fn merge_patch(client: &Client, path: &str, body: &Value) -> Reply {
    client
        .send(
            client
                .request(reqwest::Method::PATCH, path)
                .header("content-type", "application/merge-patch+json")
                .body(body.to_string()),
        )
        .await
}

async fn read(client: &Client, path: &str, token: &str) -> Value {
    client
        .get_after(path, token)
        .await
        .assert_status(200)
        .clone()
}

async fn every_patch_is_a_json_merge_patch(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "patch").await;
    let root = User::register(&tenet, "root").await;
    backing.grant_platform_admin(&root.email).await;
    let client = board.client().clone();
    let ws = format!("/api/v1/workspaces/{}", board.workspace);

    let task = board.add_task("Patch me").await;
    let comment = client
        .post(
            &format!("{}/comments", board.task(&task)),
            json!({ "body": "first" }),
        )
        .await;
    let comment = crate::common::id(&comment, 201);
    let member = board.add_member(&tenet, "member").await;
    let webhook = client
        .post(
            &format!("{ws}/webhooks"),
            json!({ "url": "https://example.com/hook", "event_types": ["task."] }),
        )
        .await;
    let webhook = crate::common::id(&webhook, 201);
    let template = client
        .post(
            &format!("{ws}/templates"),
            json!({ "name": "T", "parameters": [], "project": { "name": "P", "tasks": [] } }),
        )
        .await;
    let template = crate::common::id(&template, 201);
    let automation = client
        .post(
            &format!("{}/automations", board.project_url()),
            json!({
                "name": "A",
                "trigger": { "event": "task.created" },
                "actions": [{ "type": "add_label", "label": "new" }],
            }),
        )
        .await;
    let automation = crate::common::id(&automation, 201);
    let flag = root
        .client
        .post(
            "/api/v1/admin/feature-flags",
            json!({ "key": "patchable", "description": "a flag" }),
        )
        .await;
    flag.assert_status(201);
    // The last write so far: reads after it see every resource above.
    let mut token = flag.token();

    let routes = [
        Route {
            name: "workspace",
            patch: ws.clone(),
            read: Some(ws.clone()),
            required: "name",
            clearable: None,
        },
        Route {
            name: "project",
            patch: board.project_url(),
            read: Some(board.project_url()),
            required: "name",
            clearable: Some(("description", json!("words"), json!(""))),
        },
        Route {
            name: "task",
            patch: board.task(&task),
            read: Some(board.task(&task)),
            required: "title",
            clearable: Some(("assignee_id", json!(board.owner.id), Value::Null)),
        },
        Route {
            name: "task due date",
            patch: board.task(&task),
            read: Some(board.task(&task)),
            required: "priority",
            clearable: Some(("due_date", json!("2030-01-31"), Value::Null)),
        },
        Route {
            name: "task labels",
            patch: board.task(&task),
            read: Some(board.task(&task)),
            required: "title",
            clearable: Some(("labels", json!(["a", "b"]), json!([]))),
        },
        Route {
            name: "comment",
            patch: format!("{}/comments/{comment}", board.task(&task)),
            read: None,
            required: "body",
            clearable: None,
        },
        Route {
            name: "member",
            patch: format!("{ws}/members/{}", member.id),
            read: None,
            required: "role",
            clearable: None,
        },
        Route {
            name: "webhook",
            patch: format!("{ws}/webhooks/{webhook}"),
            read: Some(format!("{ws}/webhooks/{webhook}")),
            required: "url",
            clearable: Some(("description", json!("hooked"), json!(""))),
        },
        Route {
            name: "template",
            patch: format!("{ws}/templates/{template}"),
            read: Some(format!("{ws}/templates/{template}")),
            required: "name",
            clearable: None,
        },
        Route {
            name: "automation",
            patch: format!("{}/automations/{automation}", board.project_url()),
            read: Some(format!("{}/automations/{automation}", board.project_url())),
            required: "actions",
            clearable: None,
        },
        Route {
            name: "feature flag",
            patch: "/api/v1/admin/feature-flags/patchable".to_owned(),
            read: Some("/api/v1/admin/feature-flags/patchable".to_owned()),
            required: "rollout_percent",
            clearable: Some(("description", json!("again"), json!(""))),
        },
        Route {
            name: "admin user",
            patch: format!("/api/v1/admin/users/{}", member.id),
            read: Some(format!("/api/v1/admin/users/{}", member.id)),
            required: "name",
            clearable: None,
        },
        Route {
            name: "me",
            patch: "/api/v1/auth/me".to_owned(),
            read: Some("/api/v1/auth/me".to_owned()),
            required: "name",
            clearable: None,
        },
    ];

    for route in &routes {
        let caller = if route.patch.starts_with("/api/v1/admin") {
            &root.client
        } else {
            &client
        };
        let before = match &route.read {
            Some(path) => Some(read(caller, path, &token).await),
            None => None,
        };

        // Null on a field that cannot be empty: 422 naming it, nothing changed.
        for refused in [
            caller
                .patch(&route.patch, one(route.required, Value::Null))
                .await,
            merge_patch(caller, &route.patch, &one(route.required, Value::Null)).await,
        ] {
            assert_eq!(refused.status, 422, "{}: {:#}", route.name, refused.body);
            refused.assert_problem(422, "VALIDATION_ERROR");
            assert_eq!(refused.fields(), [route.required], "{}", route.name);
        }
        if let (Some(path), Some(before)) = (&route.read, &before) {
            assert_eq!(&read(caller, path, &token).await, before, "{}", route.name);
        }

        // Left out: unchanged (an empty patch changes nothing).
        if let Some(before) = &before {
            let unchanged = caller.patch(&route.patch, json!({})).await;
            let body = unchanged.assert_status(200).clone();
            token = unchanged.token();
            if body.get(route.required).is_some() {
                assert_eq!(
                    body[route.required], before[route.required],
                    "{}",
                    route.name
                );
            }
        }

        // Null on a clearable field: cleared, the rest unchanged.
        if let Some((field, value, cleared)) = &route.clearable {
            let set = caller.patch(&route.patch, one(field, value.clone())).await;
            assert_eq!(&set.assert_status(200)[*field], value, "{}", route.name);
            let cleared_reply = merge_patch(caller, &route.patch, &one(field, Value::Null)).await;
            let body = cleared_reply.assert_status(200).clone();
            assert_eq!(&body[*field], cleared, "{}", route.name);
            token = cleared_reply.token();
            let after = read(
                caller,
                route.read.as_deref().unwrap_or(&route.patch),
                &token,
            )
            .await;
            assert_eq!(&after[*field], cleared, "{}", route.name);
            let before = before.as_ref().expect("a readable resource");
            assert_eq!(
                after[route.required], before[route.required],
                "{}",
                route.name
            );
        }
    }
}

in_both_modes!(every_patch_is_a_json_merge_patch);
