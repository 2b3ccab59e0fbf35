//! The realtime WebSocket feed through the real binary, in both modes, with
//! a real WebSocket client: updates equal to the REST bodies, order and
//! exactly-once under load, resume without gap or duplicate, tenant
//! isolation, slow consumers, lost membership, credentials, and (on
//! Postgres + NATS) two processes sharing one feed.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{Backing, Board, Client, Mode, Tenet, start, start_with};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one expected message may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// A WebSocket client of the feed.
struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

fn ws_url(tenet: &Tenet) -> String {
    format!("{}/api/v1/ws", tenet.base.replacen("http://", "ws://", 1))
}

impl Socket {
    /// Connects with `Authorization: Bearer`.
    async fn connect(tenet: &Tenet, client: &Client) -> Socket {
        let mut request = ws_url(tenet).into_client_request().expect("request");
        let token = client.token.as_deref().expect("a token");
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

    /// Connects with `?token=`, over a socket whose receive buffer is as
    /// small as the kernel allows when `tiny_buffer` (a client that cannot
    /// hold much unread).
    async fn connect_with_query(tenet: &Tenet, token: &str, tiny_buffer: bool) -> Socket {
        let url = format!("{}?token={token}", ws_url(tenet));
        let address: std::net::SocketAddr = tenet
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if tiny_buffer {
            socket.set_recv_buffer_size(4096).expect("buffer size");
        }
        let tcp = socket.connect(address).await.expect("connect");
        let (stream, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
        Socket { stream }
    }

    async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
    }

    /// The next JSON message, or `None` once the server closed.
    async fn try_next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a message in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("JSON message"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    async fn next(&mut self) -> Value {
        self.try_next().await.expect("the connection is open")
    }

    /// Subscribes and answers the `subscribed` message.
    async fn subscribe(&mut self, channel: &str, since: Option<i64>) -> Value {
        let mut message = json!({ "type": "subscribe", "channel": channel });
        if let Some(since) = since {
            message["since"] = json!(since);
        }
        self.send(message).await;
        let answer = self.next().await;
        assert_eq!(answer["type"], "subscribed", "{answer:#}");
        assert_eq!(answer["channel"], channel);
        answer
    }

    /// Subscribing answers an error with `code`.
    async fn refused(&mut self, channel: &str, since: Option<i64>, code: &str) -> Value {
        let mut message = json!({ "type": "subscribe", "channel": channel });
        if let Some(since) = since {
            message["since"] = json!(since);
        }
        self.send(message).await;
        let answer = self.next().await;
        assert_eq!(answer["type"], "error", "{answer:#}");
        assert_eq!(answer["code"], code, "{answer:#}");
        answer
    }

    /// The next message about a task (projects and comments skipped).
    async fn next_task(&mut self) -> Value {
        loop {
            let message = self.next().await;
            if message["resource"] == "task" {
                return message;
            }
        }
    }

    /// Messages until `done` says the list is complete.
    async fn collect(&mut self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        while !done(&seen) {
            seen.push(self.next().await);
        }
        seen
    }
}

/// Positions of messages as numbers.
fn position(message: &Value) -> i64 {
    message["position"].as_i64().expect("position")
}

/// Asserts updates come in log order and none twice.
#[track_caller]
fn assert_ordered_once(messages: &[Value]) {
    let mut seen = HashSet::new();
    for pair in messages.windows(2) {
        assert!(
            position(&pair[0]) <= position(&pair[1]),
            "out of order: {} then {}",
            pair[0],
            pair[1]
        );
    }
    for message in messages {
        let key = (
            position(message),
            message["resource"].to_string(),
            message["data"]["id"].to_string(),
        );
        assert!(seen.insert(key), "delivered twice: {message}");
    }
}

async fn task_changes_arrive_with_the_rest_body(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Live").await;
    let mut socket = Socket::connect(&tenet, &board.owner.client).await;
    let subscribed = socket
        .subscribe(&format!("project:{}", board.project), None)
        .await;
    assert_eq!(subscribed["workspace_id"], board.workspace.as_str());

    let client = &board.owner.client;
    let created = client
        .post(
            &board.tasks(),
            json!({ "title": "Ship it", "priority": "high", "labels": ["web"] }),
        )
        .await;
    let task = created.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let update = socket.next_task().await;
    assert_eq!(update["type"], "update");
    assert_eq!(update["event_type"], "task.created");
    assert_eq!(update["channel"], format!("project:{}", board.project));
    let read = client.get_after(&board.task(&task), &created.token()).await;
    assert_eq!(update["data"], *read.assert_status(200));
    // The command's token is the position of its last event.
    assert!(position(&update) <= created.token().parse::<i64>().expect("token"));

    let patched = client
        .patch(&board.task(&task), json!({ "title": "Ship it now" }))
        .await;
    patched.assert_status(200);
    let update = socket.next_task().await;
    assert_eq!(update["event_type"], "task.updated");
    let read = client.get_after(&board.task(&task), &patched.token()).await;
    assert_eq!(update["data"], *read.assert_status(200));

    let moved = client
        .post(
            &format!("{}/transitions", board.task(&task)),
            json!({ "to": "in_progress" }),
        )
        .await;
    moved.assert_status(200);
    let update = socket.next_task().await;
    assert_eq!(update["event_type"], "task.status_changed");
    assert_eq!(update["data"]["status"], "in_progress");
    let read = client.get_after(&board.task(&task), &moved.token()).await;
    assert_eq!(update["data"], *read.assert_status(200));

    // A comment reaches the task's channel, and changes its count.
    let mut on_task = Socket::connect(&tenet, client).await;
    on_task.subscribe(&format!("task:{task}"), None).await;
    let commented = client
        .post(
            &format!("{}/comments", board.task(&task)),
            json!({ "body": "On it" }),
        )
        .await;
    commented.assert_status(201);
    let comment = on_task.next().await;
    assert_eq!(comment["resource"], "comment");
    assert_eq!(comment["data"]["body"], "On it");
    let counted = on_task.next().await;
    assert_eq!(counted["resource"], "task");
    assert_eq!(counted["data"]["comment_count"], 1);
    assert_eq!(position(&comment), position(&counted));

    let counted = socket.next_task().await;
    assert_eq!(counted["data"]["comment_count"], 1);

    let deleted = client.delete(&board.task(&task)).await;
    deleted.assert_status(200);
    let removed = socket.next_task().await;
    assert_eq!(removed["type"], "removed");
    assert_eq!(removed["event_type"], "task.deleted");
    assert_eq!(removed["data"]["id"], task.as_str());
    assert_eq!(removed["data"]["project_id"], board.project.as_str());
    client
        .get_after(&board.task(&task), &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn five_hundred_rapid_changes_arrive_in_order_exactly_once(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Live").await;
    let mut socket = Socket::connect(&tenet, &board.owner.client).await;
    socket
        .subscribe(&format!("workspace:{}", board.workspace), None)
        .await;
    let task = board.add_task("Hot").await;
    // 500 changes from 8 writers at once: creates and edits interleaved.
    let writers = (0..8).map(|writer| {
        let client = board.owner.client.clone();
        let (tasks, one) = (board.tasks(), board.task(&task));
        tokio::spawn(async move {
            let mut created = Vec::new();
            for n in 0..(500 / 8 + usize::from(writer < 500 % 8)) {
                if n % 2 == 0 {
                    let reply = client
                        .post(&tasks, json!({ "title": format!("t{writer}-{n}") }))
                        .await;
                    created.push(
                        reply.assert_status(201)["id"]
                            .as_str()
                            .expect("id")
                            .to_owned(),
                    );
                } else {
                    client
                        .patch(&one, json!({ "title": format!("hot {writer}-{n}") }))
                        .await
                        .assert_status(200);
                }
            }
            created
        })
    });
    let mut created = HashSet::new();
    for writer in futures::future::join_all(writers).await {
        created.extend(writer.expect("writer"));
    }
    let changes = 500 + 1; // and the first create
    let messages = socket
        .collect(|seen| seen.iter().filter(|m| m["resource"] == "task").count() >= changes)
        .await;
    assert_ordered_once(&messages);
    let tasks: Vec<&Value> = messages
        .iter()
        .filter(|m| m["resource"] == "task")
        .collect();
    assert_eq!(tasks.len(), changes);
    let announced: HashSet<String> = tasks
        .iter()
        .filter(|m| m["event_type"] == "task.created")
        .map(|m| m["data"]["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(created.is_subset(&announced));
    assert_eq!(announced.len(), created.len() + 1);
    // The last update of the hot task is what the API answers now.
    let last = tasks
        .iter()
        .rev()
        .find(|m| m["data"]["id"] == task.as_str())
        .expect("the hot task");
    let read = board.owner.client.get(&board.task(&task)).await;
    assert_eq!(last["data"], *read.assert_status(200));
}

async fn a_resume_replays_what_was_missed_without_gap_or_duplicate(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Live").await;
    let channel = format!("workspace:{}", board.workspace);
    // A witness that never disconnects sees the whole history.
    let mut witness = Socket::connect(&tenet, &board.owner.client).await;
    witness.subscribe(&channel, None).await;
    let mut socket = Socket::connect(&tenet, &board.owner.client).await;
    socket.subscribe(&channel, None).await;

    board.add_task("before").await;
    let before = socket.next_task().await;
    let resume_from = position(&before);
    drop(socket);

    let mut away = Vec::new();
    for n in 0..5 {
        away.push(board.add_task(&format!("away {n}")).await);
    }
    let mut socket = Socket::connect(&tenet, &board.owner.client).await;
    let subscribed = socket.subscribe(&channel, Some(resume_from)).await;
    assert_eq!(subscribed["since"], resume_from);
    // Changes while the replay runs land on one side of the seam or the
    // other, never both.
    let client = board.owner.client.clone();
    let tasks = board.tasks();
    let during = tokio::spawn(async move {
        for n in 0..5 {
            client
                .post(&tasks, json!({ "title": format!("during {n}") }))
                .await
                .assert_status(201);
        }
    });
    during.await.expect("writer");
    let expected = witness
        .collect(|seen| seen.iter().filter(|m| m["resource"] == "task").count() >= 11)
        .await;
    let expected: Vec<Value> = expected
        .into_iter()
        .filter(|m| position(m) > resume_from)
        .collect();
    let resumed = socket.collect(|seen| seen.len() >= expected.len()).await;
    assert_ordered_once(&resumed);
    let strip = |m: &Value| json!([m["type"], position(m), m["resource"], m["data"]]);
    assert_eq!(
        resumed.iter().map(strip).collect::<Vec<_>>(),
        expected.iter().map(strip).collect::<Vec<_>>()
    );
    let replayed: HashSet<&str> = resumed
        .iter()
        .filter(|m| m["event_type"] == "task.created")
        .filter_map(|m| m["data"]["id"].as_str())
        .collect();
    for task in &away {
        assert!(replayed.contains(task.as_str()), "missed {task}");
    }
    // Nothing more is pending: the next answer is the pong.
    socket.send(json!({ "type": "ping" })).await;
    assert_eq!(socket.next().await["type"], "pong");
}

async fn resumes_the_server_cannot_answer_are_refused_clearly(backing: Backing) {
    let tenet = start_with(
        &backing,
        &[
            ("TENET_FEED_RETENTION_SECS", "0"),
            ("TENET_FEED_PRUNE_EVERY_MS", "100"),
        ],
    )
    .await;
    let board = Board::new(&tenet, "Live").await;
    let channel = format!("workspace:{}", board.workspace);
    let mut socket = Socket::connect(&tenet, &board.owner.client).await;
    socket.refused(&channel, Some(-1), "BAD_REQUEST").await;
    socket
        .refused(&channel, Some(i64::MAX / 2), "BAD_REQUEST")
        .await;
    board.add_task("soon pruned").await;
    // Nothing is kept: as soon as the pruner has passed the task, resuming
    // from before it is refused.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    'resumed: loop {
        socket
            .send(json!({ "type": "subscribe", "channel": channel, "since": 1 }))
            .await;
        let answer = socket.next().await;
        if answer["code"] == "SINCE_TOO_OLD" {
            assert_eq!(answer["type"], "error");
            assert_eq!(answer["channel"], channel.as_str());
            break;
        }
        assert_eq!(answer["type"], "subscribed", "{answer:#}");
        socket
            .send(json!({ "type": "unsubscribe", "channel": channel }))
            .await;
        // Skip whatever was replayed, up to the acknowledgement; the pruner
        // may pass the resume point during the replay, which then ends
        // the subscription with SINCE_TOO_OLD (and the unsubscribe finds
        // nothing to end).
        loop {
            let next = socket.next().await;
            if next["code"] == "SINCE_TOO_OLD" {
                assert_eq!(next["channel"], channel.as_str());
                // The unsubscribe that followed finds nothing to end.
                assert_eq!(socket.next().await["code"], "NOT_FOUND");
                break 'resumed;
            }
            if next["type"] == "unsubscribed" {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    socket.refused("workspace:nope", None, "BAD_REQUEST").await;
    socket.send(json!({ "type": "dance" })).await;
    assert_eq!(socket.next().await["code"], "BAD_REQUEST");
    socket.subscribe(&channel, None).await;
    socket.refused(&channel, None, "CONFLICT").await;
}

async fn another_tenants_updates_never_arrive_and_its_ids_are_not_found(backing: Backing) {
    let tenet = start(&backing).await;
    let mine = Board::new(&tenet, "Live").await;
    let theirs = Board::new(&tenet, "Live").await;
    let their_task = theirs.add_task("secret").await;
    let mut socket = Socket::connect(&tenet, &mine.owner.client).await;
    for channel in [
        format!("workspace:{}", theirs.workspace),
        format!("project:{}", theirs.project),
        format!("task:{their_task}"),
        format!("task:{}", uuid::Uuid::now_v7()),
        format!("project:{}", uuid::Uuid::now_v7()),
        format!("workspace:{}", uuid::Uuid::now_v7()),
    ] {
        let refused = socket.refused(&channel, None, "NOT_FOUND").await;
        assert_eq!(refused["channel"], channel.as_str());
    }
    socket
        .subscribe(&format!("workspace:{}", mine.workspace), None)
        .await;
    // Their changes, then mine: the first thing to arrive is mine.
    theirs.add_task("also secret").await;
    theirs
        .owner
        .client
        .patch(
            &theirs.task(&their_task),
            json!({ "title": "still secret" }),
        )
        .await
        .assert_status(200);
    let my_task = mine.add_task("mine").await;
    let first = socket.next_task().await;
    assert_eq!(first["data"]["id"], my_task.as_str());
    assert_eq!(first["data"]["workspace_id"], mine.workspace.as_str());

    // An API key bound to my workspace reaches nothing else either.
    let issued = mine
        .owner
        .client
        .post(
            &format!("/api/v1/workspaces/{}/api-keys", mine.workspace),
            json!({ "name": "bot", "scopes": ["tasks:read", "projects:read"] }),
        )
        .await;
    let secret = issued.assert_status(201)["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let mut bot = Socket::connect(&tenet, &mine.owner.client.with_token(&secret)).await;
    bot.refused(&format!("project:{}", theirs.project), None, "NOT_FOUND")
        .await;
    // It lacks workspace:read for the workspace channel, but may follow a
    // project of its own workspace.
    bot.refused(&format!("workspace:{}", mine.workspace), None, "FORBIDDEN")
        .await;
    bot.subscribe(&format!("project:{}", mine.project), None)
        .await;
}

async fn a_slow_consumer_is_cut_off_while_others_continue(backing: Backing) {
    let tenet = start_with(
        &backing,
        // Room for a burst (the feed hands over every update of a stretch
        // of the log at once, and the fast client may be a beat behind on
        // two busy cores), far short of the 400 the slow one never reads.
        &[("TENET_WS_SEND_BUFFER", "64")],
    )
    .await;
    let board = Board::new(&tenet, "Live").await;
    let client = &board.owner.client;
    // Every update of this task carries 20,000 characters of description.
    let created = client
        .post(
            &board.tasks(),
            json!({ "title": "big", "description": "x".repeat(20_000) }),
        )
        .await;
    let task = created.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let channel = format!("task:{task}");
    let token = client.token.clone().expect("token");
    let mut slow = Socket::connect_with_query(&tenet, &token, true).await;
    slow.subscribe(&channel, None).await;
    let mut fine = Socket::connect(&tenet, client).await;
    fine.subscribe(&channel, None).await;
    // Far more than the socket buffers on both sides can hold unread.
    let edits = 400;
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < edits {
            let message = fine.next().await;
            assert_eq!(message["type"], "update", "{message:#}");
            // The creation may pass the feed after the subscription (the
            // watermark waits for every outbox writer): it is no edit.
            if message["data"]["title"] != "big" {
                received += 1;
            }
        }
        fine
    });
    for n in 0..edits {
        client
            .patch(&board.task(&task), json!({ "title": format!("edit {n}") }))
            .await
            .assert_status(200);
    }
    let mut fine = reader.await.expect("the fast client got every update");
    fine.send(json!({ "type": "ping" })).await;
    assert_eq!(fine.next().await["type"], "pong");
    // The slow one was cut off: it ends (with SLOW_CONSUMER as its last
    // word, when it reads that far) before the last edit.
    let mut updates = 0;
    let mut told = false;
    while let Some(message) = slow.try_next().await {
        match message["type"].as_str() {
            Some("update") => updates += 1,
            Some("error") => {
                assert_eq!(message["code"], "SLOW_CONSUMER");
                told = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(updates < edits, "a slow consumer got all {updates} updates");
    assert!(told || updates > 0, "the slow client was closed");
}

async fn removing_a_member_ends_their_subscription(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Live").await;
    let member = board.add_member(&tenet, "member").await;
    let channel = format!("workspace:{}", board.workspace);
    let mut theirs = Socket::connect(&tenet, &member.client).await;
    theirs.subscribe(&channel, None).await;
    let mut owners = Socket::connect(&tenet, &board.owner.client).await;
    owners.subscribe(&channel, None).await;

    board.add_task("seen by both").await;
    assert_eq!(theirs.next_task().await["type"], "update");
    owners.next_task().await;

    board
        .owner
        .client
        .delete(&format!(
            "/api/v1/workspaces/{}/members/{}",
            board.workspace, member.id
        ))
        .await
        .assert_status(200);
    let ended = loop {
        let message = theirs.next().await;
        if message["type"] == "error" {
            break message;
        }
    };
    assert_eq!(ended["code"], "NOT_FOUND");
    assert_eq!(ended["channel"], channel.as_str());

    let unseen = board.add_task("after the removal").await;
    let seen = owners.next_task().await;
    assert_eq!(seen["data"]["id"], unseen.as_str());
    // The removed member's next message is the answer to its ping, not
    // the task.
    theirs.send(json!({ "type": "ping" })).await;
    assert_eq!(theirs.next().await["type"], "pong");
    theirs.refused(&channel, None, "NOT_FOUND").await;
}

async fn the_upgrade_needs_a_valid_credential(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Live").await;
    let anonymous = Client::anonymous(&tenet);
    anonymous
        .get("/api/v1/ws")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    anonymous
        .get("/api/v1/ws?token=forged")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    // A valid credential but no upgrade: refused, as problem+json.
    board
        .owner
        .client
        .get("/api/v1/ws")
        .await
        .assert_problem(400, "BAD_REQUEST");
    let mut request = ws_url(&tenet).into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        "Bearer not-a-token".parse().expect("header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    // The token in the query works as well as the header.
    let token = board.owner.client.token.clone().expect("token");
    let mut socket = Socket::connect_with_query(&tenet, &token, false).await;
    socket.send(json!({ "type": "ping" })).await;
    assert_eq!(socket.next().await["type"], "pong");
    // Logging out ends the connection at once.
    let logged_in = anonymous
        .post(
            "/api/v1/auth/login",
            json!({ "email": board.owner.email, "password": board.owner.password }),
        )
        .await;
    let body = logged_in.assert_status(200).clone();
    let session = anonymous.with_token(body["access_token"].as_str().expect("token"));
    let mut doomed = Socket::connect(&tenet, &session).await;
    doomed
        .subscribe(&format!("workspace:{}", board.workspace), None)
        .await;
    session
        .post(
            "/api/v1/auth/logout",
            json!({ "refresh_token": body["refresh_token"] }),
        )
        .await
        .assert_status(200);
    let last = doomed.next().await;
    assert_eq!(last["code"], "AUTHENTICATION_ERROR", "{last:#}");
    assert!(doomed.try_next().await.is_none());
}

async fn shutdown_closes_connections_as_going_away(backing: Backing) {
    let mut tenet = start(&backing).await;
    let board = Board::new(&tenet, "Live").await;
    let mut socket = Socket::connect(&tenet, &board.owner.client).await;
    socket
        .subscribe(&format!("workspace:{}", board.workspace), None)
        .await;
    let status = tenet.stop_with("-TERM").await;
    assert!(status.success(), "{status:?}");
    // Updates still in flight (the project's creation may pass the feed
    // after the subscription) may arrive first; then the close.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let closed = tokio::time::timeout_at(deadline, socket.stream.next())
            .await
            .expect("closed in time");
        match closed {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1001);
                break;
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => break,
            Some(Ok(Message::Text(text))) if text.contains("\"type\":\"update\"") => {}
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("expected the connection to close, got {other:?}"),
        }
    }
}

in_both_modes!(
    task_changes_arrive_with_the_rest_body,
    shutdown_closes_connections_as_going_away,
    five_hundred_rapid_changes_arrive_in_order_exactly_once,
    a_resume_replays_what_was_missed_without_gap_or_duplicate,
    resumes_the_server_cannot_answer_are_refused_clearly,
    another_tenants_updates_never_arrive_and_its_ids_are_not_found,
    a_slow_consumer_is_cut_off_while_others_continue,
    removing_a_member_ends_their_subscription,
    the_upgrade_needs_a_valid_credential,
);

/// Two processes on one Postgres and one NATS: a client of one sees the
/// writes made through the other, and can resume on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_feed() {
    let Some(backing) = Backing::new(Mode::Distributed).await else {
        return;
    };
    let reader = start(&backing).await;
    let writer = start(&backing).await;
    let board = Board::new(&writer, "Live").await;
    let mut socket = Socket::connect(&reader, &board.owner.client).await;
    socket
        .subscribe(&format!("workspace:{}", board.workspace), None)
        .await;
    let mut created = Vec::new();
    for n in 0..20 {
        created.push(board.add_task(&format!("elsewhere {n}")).await);
    }
    let messages = socket
        .collect(|seen| seen.iter().filter(|m| m["resource"] == "task").count() >= 20)
        .await;
    assert_ordered_once(&messages);
    let arrived: Vec<&str> = messages
        .iter()
        .filter(|m| m["resource"] == "task")
        .filter_map(|m| m["data"]["id"].as_str())
        .collect();
    assert_eq!(
        arrived,
        created.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Resuming on the writer's process answers the same history.
    let first = position(&messages[0]);
    let mut elsewhere = Socket::connect(&writer, &board.owner.client).await;
    elsewhere
        .subscribe(&format!("workspace:{}", board.workspace), Some(first - 1))
        .await;
    let replayed = elsewhere.collect(|seen| seen.len() >= messages.len()).await;
    assert_eq!(replayed, messages);
}
