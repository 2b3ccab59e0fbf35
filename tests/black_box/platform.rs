//! Platform administration through the real binary, in both modes: the
//! account lifecycle (detail, rename, deactivate, reactivate) cutting off
//! every credential and WebSocket of a deactivated user (also across two
//! processes on Postgres + NATS).

use std::time::Duration;

use crate::common::{
    Backing, Board, Client, Mode, Tenet, User, add_member, issue_key, login, start,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one expected message may take.
const PATIENCE: Duration = Duration::from_secs(20);

fn user_url(user: &str) -> String {
    format!("/api/v1/admin/users/{user}")
}

/// A platform admin, granted from the CLI.
async fn admin(tenet: &Tenet, backing: &Backing) -> User {
    let root = User::register(tenet, "root").await;
    backing.grant_platform_admin(&root.email).await;
    root
}

/// A WebSocket client of the feed.
pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    pub async fn connect(tenet: &Tenet, token: &str) -> Socket {
        let url = format!("{}/api/v1/ws", tenet.base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgrade");
        assert_eq!(response.status().as_u16(), 101);
        Socket { stream }
    }

    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
    }

    /// The next JSON message, or the close frame's code and reason once
    /// the server closed.
    pub async fn next(&mut self) -> Result<Value, Option<(u16, String)>> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a message in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).expect("JSON message"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                None | Some(Err(_)) => return Err(None),
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn subscribe(&mut self, channel: &str) {
        self.send(json!({ "type": "subscribe", "channel": channel }))
            .await;
        let answer = self.next().await.expect("open");
        assert_eq!(answer["type"], "subscribed", "{answer:#}");
    }

    /// Reads past updates until an error arrives, then expects the close.
    pub async fn ended_with(&mut self) -> (Value, Option<(u16, String)>) {
        let error = loop {
            let message = self.next().await.expect("an error before the close");
            if message["type"] == "error" {
                break message;
            }
        };
        let closed = loop {
            match self.next().await {
                Ok(message) => assert_ne!(message["type"], "update", "{message:#}"),
                Err(frame) => break frame,
            }
        };
        (error, closed)
    }
}

async fn a_deactivated_user_is_refused_everywhere_and_reactivation_restores_only_login(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let root = admin(&tenet, &backing).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Team").await;
    let member = User::register(&tenet, "member").await;
    add_member(&owner.client, &workspace, &member.email, "admin")
        .await
        .assert_status(201);
    let key = issue_key(&member.client, &workspace, "ci", &["projects:read"]).await;
    let pair = member.new_session(&tenet).await;
    let refresh_token = pair["refresh_token"].as_str().expect("refresh").to_owned();
    let url = user_url(&member.id);

    // The detail.
    let detail = root.client.get(&url).await;
    let body = detail.assert_status(200).clone();
    assert_eq!(body["email"], member.email.as_str());
    assert_eq!(body["deactivated_at"], Value::Null);
    assert_eq!(body["sessions"], 2);
    assert_eq!(body["workspaces"][0]["id"], workspace.as_str());
    assert_eq!(body["workspaces"][0]["role"], "admin");
    assert_eq!(detail.etag(), format!("\"{}\"", body["version"]));
    root.client
        .get(&user_url(&uuid::Uuid::now_v7().to_string()))
        .await
        .assert_problem(404, "NOT_FOUND");
    root.client
        .get(&user_url("not-a-uuid"))
        .await
        .assert_problem(422, "VALIDATION_ERROR");

    // Renaming.
    let renamed = root
        .client
        .patch(&url, json!({ "name": "  Renamed " }))
        .await;
    assert_eq!(renamed.assert_status(200)["name"], "Renamed");
    root.client
        .patch(&url, json!({ "name": "" }))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let stale = root
        .client
        .request(reqwest::Method::PATCH, &url)
        .header("if-match", "\"1\"")
        .json(&json!({ "name": "Stale" }));
    root.client
        .send(stale)
        .await
        .assert_problem(412, "PRECONDITION_FAILED");
    owner
        .client
        .patch(&url, json!({ "name": "Hijacked" }))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    // A live connection, before the deactivation.
    let mut socket = Socket::connect(&tenet, member.client.token.as_deref().unwrap()).await;
    socket.subscribe(&format!("workspace:{workspace}")).await;

    let deactivate = format!("{url}/deactivate");
    root.client
        .post(&deactivate, json!({}))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let refused = root
        .client
        .post(&deactivate, json!({ "reason": " " }))
        .await;
    refused.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(refused.fields(), vec!["reason".to_owned()]);
    root.client
        .post(
            &format!("{}/deactivate", user_url(&root.id)),
            json!({ "reason": "oops" }),
        )
        .await
        .assert_problem(409, "CONFLICT");
    owner
        .client
        .post(&deactivate, json!({ "reason": "not mine to do" }))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    let done = root
        .client
        .post(&deactivate, json!({ "reason": "Chargeback fraud" }))
        .await;
    let body = done.assert_status(200).clone();
    assert!(body["deactivated_at"].is_string(), "{body:#}");
    assert_eq!(body["deactivation_reason"], "Chargeback fraud");
    assert_eq!(body["sessions"], 0);
    // Twice changes nothing.
    let again = root
        .client
        .post(&deactivate, json!({ "reason": "again" }))
        .await;
    assert_eq!(
        again.assert_status(200)["deactivation_reason"],
        "Chargeback fraud"
    );

    // Every credential is refused at once.
    member
        .client
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "ACCOUNT_DEACTIVATED");
    Client::anonymous(&tenet)
        .with_token(pair["access_token"].as_str().unwrap())
        .get(&format!("/api/v1/workspaces/{workspace}/projects"))
        .await
        .assert_problem(401, "ACCOUNT_DEACTIVATED");
    key.client
        .get(&format!("/api/v1/workspaces/{workspace}/projects"))
        .await
        .assert_problem(401, "ACCOUNT_DEACTIVATED");
    Client::anonymous(&tenet)
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    login(&tenet, &member.email, &member.password)
        .await
        .assert_problem(403, "ACCOUNT_DEACTIVATED");
    // A wrong password still says only that.
    login(&tenet, &member.email, "not the password at all")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    // The connection is closed, saying why.
    let (error, closed) = socket.ended_with().await;
    assert_eq!(error["code"], "ACCOUNT_DEACTIVATED", "{error:#}");
    let (code, reason) = closed.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "account deactivated"));
    // The platform's list shows it too.
    let listed = root
        .client
        .get(&format!("/api/v1/admin/users?search={}", member.email))
        .await;
    assert!(listed.assert_status(200)["items"][0]["deactivated_at"].is_string());

    // Reactivation restores login, and nothing older.
    let back = root
        .client
        .post(&format!("{url}/reactivate"), json!({}))
        .await;
    assert_eq!(back.assert_status(200)["deactivated_at"], Value::Null);
    member
        .client
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    key.client
        .get(&format!("/api/v1/workspaces/{workspace}/projects"))
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    Client::anonymous(&tenet)
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    let fresh = member.new_session(&tenet).await;
    let fresh = Client::anonymous(&tenet).with_token(fresh["access_token"].as_str().unwrap());
    fresh.get("/api/v1/auth/me").await.assert_status(200);
    fresh
        .get(&format!("/api/v1/workspaces/{workspace}/projects"))
        .await
        .assert_status(200);
    assert_eq!(
        root.client.get(&url).await.assert_status(200)["sessions"],
        1
    );

    // Both are in the audit log, with who did them and why.
    let audit = root
        .client
        .get(&format!("/api/v1/admin/audit-log?stream_id={}", member.id))
        .await;
    let types: Vec<&str> = audit.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert!(
        types.ends_with(&["user.renamed", "user.deactivated", "user.reactivated"]),
        "{types:?}"
    );
}

async fn an_admin_impersonates_a_user_and_the_log_names_both(backing: Backing) {
    let tenet = start(&backing).await;
    let root = admin(&tenet, &backing).await;
    let other_admin = admin(&tenet, &backing).await;
    let member = User::register(&tenet, "member").await;
    let workspace = member.workspace("Supported").await;
    let start_url = "/api/v1/admin/impersonations";

    // What is refused, and who may ask.
    root.client
        .post(start_url, json!({ "user_id": member.id }))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let unknown = root
        .client
        .post(
            start_url,
            json!({ "user_id": uuid::Uuid::now_v7(), "reason": "ticket" }),
        )
        .await;
    unknown.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(unknown.fields(), vec!["user_id".to_owned()]);
    root.client
        .post(
            start_url,
            json!({ "user_id": other_admin.id, "reason": "curious" }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    member
        .client
        .post(start_url, json!({ "user_id": member.id, "reason": "me" }))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    let started = root
        .client
        .post(
            start_url,
            json!({ "user_id": member.id, "reason": "Support ticket #4521" }),
        )
        .await;
    let body = started.assert_status(201).clone();
    assert!(body.get("refresh_token").is_none(), "{body:#}");
    assert_eq!(body["user_id"], member.id.as_str());
    let impersonation = body["impersonation_id"].as_str().expect("id").to_owned();
    assert_eq!(
        started.header("location"),
        Some(format!("{start_url}/{impersonation}"))
    );
    let expires: chrono::DateTime<chrono::Utc> =
        body["expires_at"].as_str().unwrap().parse().expect("time");
    assert!(expires <= chrono::Utc::now() + chrono::Duration::minutes(15));
    let token = body["access_token"].as_str().expect("token").to_owned();
    let acting = Client::anonymous(&tenet).with_token(&token);

    // It acts as the user, with their roles and nothing more.
    let me = acting.get("/api/v1/auth/me").await;
    assert_eq!(me.assert_status(200)["id"], member.id.as_str());
    acting
        .get("/api/v1/admin/users")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    acting
        .post("/api/v1/auth/logout", json!({}))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let created = acting
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Fixed for the user" }),
        )
        .await;
    let project = created.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // The audit log names both: the user as actor, the admin behind.
    let audit = member
        .client
        .get_after(
            &format!("/api/v1/workspaces/{workspace}/audit-log?stream_id={project}"),
            &created.token(),
        )
        .await;
    let event = audit.assert_status(200)["items"][0].clone();
    assert_eq!(event["event_type"], "project.created");
    assert_eq!(event["actor"]["type"], "user");
    assert_eq!(event["actor"]["id"], member.id.as_str());
    assert_eq!(
        event["impersonated_by"]["id"],
        root.id.as_str(),
        "{event:#}"
    );
    assert!(
        event["impersonated_by"]["display"]
            .as_str()
            .is_some_and(|d| d.contains(&root.email))
    );
    let own = member
        .client
        .get(&format!(
            "/api/v1/workspaces/{workspace}/audit-log?event_type=workspace.created"
        ))
        .await;
    assert_eq!(
        own.assert_status(200)["items"][0]["impersonated_by"],
        Value::Null
    );
    let platform = root
        .client
        .get(&format!(
            "/api/v1/admin/audit-log?stream_id={impersonation}"
        ))
        .await;
    let started_event = platform.assert_status(200)["items"][0].clone();
    assert_eq!(started_event["event_type"], "impersonation.started");
    assert_eq!(started_event["actor"]["id"], root.id.as_str());
    assert_eq!(started_event["data"]["reason"], "Support ticket #4521");
    assert_eq!(started_event["data"]["user_id"], member.id.as_str());

    // Ending it refuses its token at once and closes its connections; the
    // user's own session is untouched.
    let mut socket = Socket::connect(&tenet, &token).await;
    socket.subscribe(&format!("workspace:{workspace}")).await;
    let end_url = format!("{start_url}/{impersonation}");
    member
        .client
        .delete(&end_url)
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    let live = root.client.get(&end_url).await;
    let live = live.assert_status(200).clone();
    assert_eq!(
        (
            live["user_id"].clone(),
            live["admin_id"].clone(),
            live["ended_at"].clone()
        ),
        (json!(member.id), json!(root.id), Value::Null)
    );
    assert_eq!(live["reason"], "Support ticket #4521");
    let ended = root.client.delete(&end_url).await;
    assert!(ended.assert_status(200)["ended_at"].is_string());
    assert!(root.client.get(&end_url).await.assert_status(200)["ended_at"].is_string());
    acting
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "IMPERSONATION_ENDED");
    let (error, closed) = socket.ended_with().await;
    assert_eq!(error["code"], "IMPERSONATION_ENDED", "{error:#}");
    assert_eq!(closed.map(|(code, _)| code), Some(1008));
    member
        .client
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
    root.client.delete(&end_url).await.assert_status(200);
    root.client
        .delete(&format!("{start_url}/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(404, "NOT_FOUND");
    let log = root
        .client
        .get(&format!(
            "/api/v1/admin/audit-log?stream_id={impersonation}"
        ))
        .await;
    let types: Vec<&str> = log.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(types, ["impersonation.started", "impersonation.ended"]);
}

/// Waits until the job at `location` is no longer running.
async fn finished(admin: &Client, location: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = admin.get(location).await.assert_status(200).clone();
        if job["state"] != "running" {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {job:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Appends an event no projector of this build can apply (a payload of
/// the wrong shape), as a buggy writer would have.
async fn poison(backing: &Backing, workspace: &str) {
    use tenet_events::envelope::{Actor, Metadata, NewEvent};
    use tenet_events::ids::{EventId, StreamId, TenantId};
    use tenet_events::store::{self, AppendRequest, ExpectedVersion, StoreOptions};
    let db = backing.open_db().await;
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .expect("open the store");
    store
        .append(AppendRequest::new(
            TenantId::from_uuid(workspace.parse().expect("uuid")),
            StreamId::generate(),
            "comment",
            ExpectedVersion::NO_STREAM,
            vec![NewEvent {
                event_id: EventId::generate(),
                event_type: "comment.added".into(),
                schema_version: 1,
                data: json!({ "no": "such payload" }),
            }],
            Metadata::new(Actor::System {
                name: "buggy-writer".into(),
            }),
        ))
        .await
        .expect("append");
    db.close().await;
}

async fn jobs_are_listed_by_status_and_only_a_failed_one_is_retried(backing: Backing) {
    let tenet = start(&backing).await;
    let root = admin(&tenet, &backing).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Jobs").await;

    let replay = |name: &str| format!("/api/v1/admin/projections/{name}/replay");
    let done = root.client.post(&replay("projects"), json!({})).await;
    done.assert_status(202);
    let completed = finished(&root.client, &done.header("location").expect("Location")).await;
    assert_eq!(completed["state"], "completed");

    poison(&backing, &workspace).await;
    // The live projection meets it first; a rebuild then meets it too.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page = root.client.get("/api/v1/admin/projections").await;
        let failed = page.assert_status(200)["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|p| p["name"] == "tasks" && p["state"] == "failed");
        if failed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "tasks never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let broken = root.client.post(&replay("tasks"), json!({})).await;
    broken.assert_status(202);
    let failed = finished(&root.client, &broken.header("location").expect("Location")).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");

    let all = root.client.get("/api/v1/admin/jobs").await;
    let page = all.assert_status(200).clone();
    assert_eq!(page["total"], 2);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            failed["id"].as_str().unwrap(),
            completed["id"].as_str().unwrap()
        ]
    );
    let only = root
        .client
        .get("/api/v1/admin/jobs?status=completed&limit=1")
        .await;
    let only = only.assert_status(200).clone();
    assert_eq!(
        (only["total"].clone(), only["has_more"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(only["items"][0]["projection"], "projects");
    let bad = root.client.get("/api/v1/admin/jobs?status=stuck").await;
    bad.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bad.fields(), vec!["status".to_owned()]);
    owner
        .client
        .get("/api/v1/admin/jobs")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    let retry = |job: &Value| format!("/api/v1/admin/jobs/{}/retry", job["id"].as_str().unwrap());
    root.client
        .post(&retry(&completed), json!({}))
        .await
        .assert_problem(409, "CONFLICT");
    root.client
        .post(&retry(&json!({ "id": uuid::Uuid::now_v7() })), json!({}))
        .await
        .assert_problem(404, "NOT_FOUND");
    let retried = root.client.post(&retry(&failed), json!({})).await;
    let again = retried.assert_status(202).clone();
    assert_eq!(again["projection"], "tasks");
    assert_ne!(again["id"], failed["id"]);
    // The same build meets the same event again.
    let again = finished(&root.client, &retried.header("location").expect("Location")).await;
    assert_eq!(again["state"], "failed");
    let failures = root.client.get("/api/v1/admin/jobs?status=failed").await;
    assert_eq!(failures.assert_status(200)["total"], 2);
}

async fn stats_count_the_log_and_are_equal_after_a_rebuild(backing: Backing) {
    let tenet = start(&backing).await;
    let root = admin(&tenet, &backing).await;
    let board = Board::new(&tenet, "Counted").await;
    let mut tasks = Vec::new();
    for n in 0..3 {
        tasks.push(board.add_task(&format!("task {n}")).await);
    }
    for step in ["in_progress", "in_review"] {
        board.move_to(&tasks[0], step).await.assert_status(200);
    }
    board.move_to(&tasks[0], "done").await.assert_status(200);
    let deleted = board.client().delete(&board.task(&tasks[2])).await;
    deleted.assert_status(200);
    let token = deleted.token();

    let read = |token: String| {
        let client = root.client.clone();
        async move {
            let mut body = client
                .get_after("/api/v1/admin/stats", &token)
                .await
                .assert_status(200)
                .clone();
            body.as_object_mut().expect("object").remove("as_of");
            body
        }
    };
    let stats = read(token.clone()).await;
    assert_eq!(stats["users"], 2, "{stats:#}");
    assert_eq!(stats["active_users_7d"], 2);
    assert_eq!(stats["workspaces"], 1);
    assert_eq!(stats["projects"], 1);
    assert_eq!(stats["tasks"], 2);
    assert_eq!(stats["tasks_created_7d"], 3);
    assert_eq!(stats["tasks_done_7d"], 1);
    let series = stats["series"].as_array().expect("series");
    assert_eq!(series.len(), 30);
    let today = &series[29];
    assert_eq!(
        today["date"],
        chrono::Utc::now().date_naive().to_string().as_str()
    );
    assert_eq!(
        (today["tasks_created"].clone(), today["tasks_done"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(series[0]["events"], 0);
    let events = today["events"].as_i64().expect("events");
    assert!(events >= 10, "{today:#}");
    assert_eq!(stats["events_24h"], events);
    board
        .client()
        .get("/api/v1/admin/stats")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    // A rebuild from the log gives the same figures.
    let started = root
        .client
        .post("/api/v1/admin/projections/platform_stats/replay", json!({}))
        .await;
    started.assert_status(202);
    let job = finished(&root.client, &started.header("location").expect("Location")).await;
    assert_eq!(job["state"], "completed", "{job:#}");
    let again = read(token).await;
    assert_eq!(again, stats);
}

async fn flags_evaluate_stably_per_workspace_and_overrides_win(backing: Backing) {
    let tenet = start(&backing).await;
    let root = admin(&tenet, &backing).await;
    let owner = User::register(&tenet, "owner").await;
    let first = owner.workspace("First").await;
    let member = User::register(&tenet, "member").await;
    add_member(&owner.client, &first, &member.email, "member")
        .await
        .assert_status(201);
    let stranger = User::register(&tenet, "stranger").await;
    let second = stranger.workspace("Second").await;
    let flags = "/api/v1/admin/feature-flags";
    let flag = format!("{flags}/new-editor");

    // Bad input names the field; only platform admins manage flags.
    let bad = root
        .client
        .post(
            flags,
            json!({ "key": "New Editor", "rollout_percent": 101 }),
        )
        .await;
    bad.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(
        bad.fields(),
        vec!["key".to_owned(), "rollout_percent".to_owned()]
    );
    owner
        .client
        .post(flags, json!({ "key": "mine" }))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    let created = root
        .client
        .post(
            flags,
            json!({
                "key": "new-editor",
                "description": "The new editor",
                "enabled": true,
                "rollout_percent": 0,
                "overrides": { first.clone(): true },
            }),
        )
        .await;
    let body = created.assert_status(201).clone();
    assert_eq!(body["overrides"][&first], true);
    assert_eq!(created.header("location"), Some(flag.clone()));
    root.client
        .post(flags, json!({ "key": "new-editor" }))
        .await
        .assert_problem(409, "CONFLICT");

    let features = |client: Client, workspace: String, token: String| async move {
        client
            .get_after(&format!("/api/v1/workspaces/{workspace}/features"), &token)
            .await
            .assert_status(200)["flags"]
            .clone()
    };
    let token = created.token();
    // Any member reads their workspace's set; another tenant's is 404.
    let seen = features(member.client.clone(), first.clone(), token.clone()).await;
    assert_eq!(seen, json!({ "new-editor": true }));
    let seen = features(stranger.client.clone(), second.clone(), token.clone()).await;
    assert_eq!(seen, json!({ "new-editor": false }));
    stranger
        .client
        .get(&format!("/api/v1/workspaces/{first}/features"))
        .await
        .assert_problem(404, "NOT_FOUND");

    // Subscribers of each workspace hear of every change, evaluated for
    // their workspace.
    let mut theirs = Socket::connect(&tenet, member.client.token.as_deref().unwrap()).await;
    theirs.subscribe(&format!("workspace:{first}")).await;
    let mut strangers = Socket::connect(&tenet, stranger.client.token.as_deref().unwrap()).await;
    strangers.subscribe(&format!("workspace:{second}")).await;

    // The rollout decides for workspaces without an override; an override
    // wins even over 100 %.
    let changed = root
        .client
        .patch(
            &flag,
            json!({ "rollout_percent": 100, "overrides": { first.clone(): false } }),
        )
        .await;
    changed.assert_status(200);
    let token = changed.token();
    let seen = features(member.client.clone(), first.clone(), token.clone()).await;
    assert_eq!(seen, json!({ "new-editor": false }));
    let seen = features(stranger.client.clone(), second.clone(), token.clone()).await;
    assert_eq!(seen, json!({ "new-editor": true }));
    for (socket, workspace, after_override) in [
        (&mut theirs, &first, false),
        (&mut strangers, &second, true),
    ] {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let message = socket.next().await.expect("open");
            if message["resource"] == "feature_flag" {
                assert_eq!(
                    message["channel"],
                    format!("workspace:{workspace}").as_str()
                );
                seen.push((message["event_type"].clone(), message["data"].clone()));
            }
        }
        assert_eq!(
            seen,
            [
                (
                    json!("feature_flag.changed"),
                    json!({ "key": "new-editor", "enabled": true })
                ),
                (
                    json!("feature_flag.overridden"),
                    json!({ "key": "new-editor", "enabled": after_override })
                ),
            ]
        );
    }
    // Half the workspaces: whichever side each falls on, it stays there.
    let half = root
        .client
        .patch(
            &flag,
            json!({ "rollout_percent": 50, "overrides": { first.clone(): null } }),
        )
        .await;
    let token = half.token();
    assert_eq!(half.assert_status(200)["overrides"], json!({}));
    let once = features(owner.client.clone(), first.clone(), token.clone()).await;
    for _ in 0..3 {
        let again = features(member.client.clone(), first.clone(), token.clone()).await;
        assert_eq!(again, once);
    }
    root.client
        .patch(&flag, json!({ "rollout_percent": -1 }))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let read = root.client.get_after(&flag, &token).await;
    assert_eq!(read.assert_status(200)["rollout_percent"], 50);
    let listed = root.client.get_after(flags, &token).await;
    assert_eq!(listed.assert_status(200)["total"], 1);

    // Deleted: gone from every workspace's set, and the key is free again.
    let deleted = root.client.delete(&flag).await;
    deleted.assert_status(200);
    let seen = features(member.client.clone(), first.clone(), deleted.token()).await;
    assert_eq!(seen, json!({}));
    root.client
        .get_after(&flag, &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    root.client
        .patch(&flag, json!({ "enabled": false }))
        .await
        .assert_problem(404, "NOT_FOUND");
    root.client
        .post(flags, json!({ "key": "new-editor" }))
        .await
        .assert_status(201);

    // The audit log shows who flipped what.
    let audit = root
        .client
        .get("/api/v1/admin/audit-log?event_type=feature_flag.")
        .await;
    let items = audit.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .clone();
    let types: Vec<&str> = items
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "feature_flag.created",
            "feature_flag.overridden",
            "feature_flag.changed",
            "feature_flag.overridden",
            "feature_flag.changed",
            "feature_flag.overridden",
            "feature_flag.deleted",
            "feature_flag.created",
        ]
    );
    assert!(items.iter().all(|e| e["actor"]["id"] == root.id.as_str()));
}

/// Every `/admin` operation of the OpenAPI document, as method and path
/// with each parameter filled (a fresh UUID, or a plain name).
async fn admin_operations(tenet: &Tenet) -> Vec<(reqwest::Method, String)> {
    let reply = Client::anonymous(tenet).get("/openapi.json").await;
    let document = reply.assert_status(200).clone();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/admin/") {
            continue;
        }
        let filled = path
            .split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(param) if param.ends_with("_id}") => uuid::Uuid::now_v7().to_string(),
                Some(_) => "tasks".to_owned(),
                None => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().expect("path item").keys() {
            if let Ok(method) = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                && matches!(
                    method,
                    reqwest::Method::GET
                        | reqwest::Method::POST
                        | reqwest::Method::PATCH
                        | reqwest::Method::PUT
                        | reqwest::Method::DELETE
                )
            {
                operations.push((method, filled.clone()));
            }
        }
    }
    operations
}

async fn every_admin_operation_refuses_everyone_but_platform_admins(backing: Backing) {
    let tenet = start(&backing).await;
    let root = admin(&tenet, &backing).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Not admin").await;
    let key = issue_key(&owner.client, &workspace, "everything", &["*"]).await;
    let started = root
        .client
        .post(
            "/api/v1/admin/impersonations",
            json!({ "user_id": owner.id, "reason": "sweep" }),
        )
        .await;
    let impersonating = Client::anonymous(&tenet).with_token(
        started.assert_status(201)["access_token"]
            .as_str()
            .expect("token"),
    );
    let operations = admin_operations(&tenet).await;
    // Users, workspaces, the log, projections, jobs, stats, flags,
    // impersonations: the sweep must see them all.
    assert!(operations.len() >= 20, "{operations:?}");
    let callers = [
        ("a workspace owner", &owner.client),
        ("an owner's API key with every scope", &key.client),
        ("an impersonation token", &impersonating),
    ];
    for (method, path) in &operations {
        let anonymous = Client::anonymous(&tenet);
        let request = anonymous.request(method.clone(), path).json(&json!({}));
        let reply = anonymous.send(request).await;
        assert_eq!(
            reply.status, 401,
            "anonymous {method} {path}: {:#}",
            reply.body
        );
        for (who, client) in callers {
            let request = client.request(method.clone(), path).json(&json!({}));
            let reply = client.send(request).await;
            assert_eq!(
                (reply.status, reply.body["code"].as_str()),
                (403, Some("AUTHORIZATION_ERROR")),
                "{who}: {method} {path}: {:#}",
                reply.body
            );
        }
    }
}

in_both_modes!(
    every_admin_operation_refuses_everyone_but_platform_admins,
    flags_evaluate_stably_per_workspace_and_overrides_win,
    stats_count_the_log_and_are_equal_after_a_rebuild,
    a_deactivated_user_is_refused_everywhere_and_reactivation_restores_only_login,
    an_admin_impersonates_a_user_and_the_log_names_both,
    jobs_are_listed_by_status_and_only_a_failed_one_is_retried,
);

/// Two processes of one deployment (shared Postgres and NATS): deactivating
/// through one cuts off a live API key and a live WebSocket on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_cuts_off_a_key_and_a_websocket_on_another_instance() {
    let Some(backing) = Backing::new(Mode::Distributed).await else {
        return;
    };
    let first = start(&backing).await;
    let second = start(&backing).await;
    let root = admin(&first, &backing).await;
    let member = User::register(&first, "member").await;
    let workspace = member.workspace("Elsewhere").await;
    let key = issue_key(
        &member.client,
        &workspace,
        "ci",
        &["projects:read", "workspace:read"],
    )
    .await;
    let secret = key.client.token.clone().expect("secret");
    let on_second = Client::anonymous(&second).with_token(&secret);
    let projects = format!("/api/v1/workspaces/{workspace}/projects");
    on_second.get(&projects).await.assert_status(200);
    let mut socket = Socket::connect(&second, &secret).await;
    socket.subscribe(&format!("workspace:{workspace}")).await;

    root.client
        .post(
            &format!("{}/deactivate", user_url(&member.id)),
            json!({ "reason": "compromised" }),
        )
        .await
        .assert_status(200);
    on_second
        .get(&projects)
        .await
        .assert_problem(401, "ACCOUNT_DEACTIVATED");
    let (error, closed) = socket.ended_with().await;
    assert_eq!(error["code"], "ACCOUNT_DEACTIVATED", "{error:#}");
    assert_eq!(closed.map(|(code, _)| code), Some(1008));
}
