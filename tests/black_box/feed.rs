//! The workspace event feed through the real binary, in both modes: pages
//! by `after`, redaction, tenant isolation, and Server-Sent Events (live,
//! resumed with `Last-Event-ID` across a restart, ended when the member
//! is removed).

use std::time::Duration;

use serde_json::Value;

use crate::common::{Backing, Board, Client, User, issue_key, start};

fn events_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/events")
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: Value,
}

/// A stream of Server-Sent Events, read chunk by chunk.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(client: &Client, workspace: &str, last_event_id: Option<i64>) -> Stream {
        let mut request = client
            .request(reqwest::Method::GET, &events_url(workspace))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("open the stream");
        assert_eq!(response.status(), 200);
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"))
        );
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (heartbeats skipped), or `None` once the stream
    /// ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(Sse {
                    id,
                    event,
                    data: serde_json::from_str(&data).expect("JSON data"),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event within 20 s")
                .expect("read the stream")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The next event, which must come.
    async fn event(&mut self) -> Sse {
        self.next().await.expect("the stream goes on")
    }

    /// The next event of type `kind` (others skipped).
    async fn next_of(&mut self, kind: &str) -> Sse {
        loop {
            let event = self.event().await;
            if event.data["type"] == kind {
                return event;
            }
        }
    }
}

/// Every event of the feed after `after`, page by page (`limit` each).
async fn all_pages(client: &Client, workspace: &str, limit: u64) -> Vec<Value> {
    let mut after = 0;
    let mut items = Vec::new();
    loop {
        let page = client
            .get(&format!(
                "{}?after={after}&limit={limit}",
                events_url(workspace)
            ))
            .await;
        let body = page.assert_status(200).clone();
        let got = body["items"].as_array().expect("items").clone();
        assert!(got.len() as u64 <= limit);
        after = body["last_position"].as_i64().expect("last_position");
        items.extend(got);
        if !body["has_more"].as_bool().expect("has_more") {
            return items;
        }
    }
}

fn positions(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|item| item["position"].as_i64().expect("position"))
        .collect()
}

async fn pages_follow_the_log_by_after_with_secrets_redacted(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Feed").await;
    let member = board.add_member(&tenet, "member").await;
    for n in 0..5 {
        board.add_task(&format!("task {n}")).await;
    }
    issue_key(board.client(), &board.workspace, "ci", &["tasks:read"]).await;
    // Another workspace's events never show.
    let stranger = User::register(&tenet, "stranger").await;
    let theirs = stranger.workspace("Elsewhere").await;

    // Every role reads the feed: a plain member pages through it.
    let items = all_pages(&member.client, &board.workspace, 3).await;
    let seen = positions(&items);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "log order: {seen:?}");
    let types: Vec<&str> = items
        .iter()
        .map(|item| item["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types[0], "workspace.created");
    assert_eq!(types.iter().filter(|t| **t == "task.created").count(), 5);
    assert!(types.contains(&"workspace.member_added"));
    for item in &items {
        for field in ["id", "stream_id", "occurred_at", "actor", "data"] {
            assert!(!item[field].is_null(), "{field} in {item:#}");
        }
        assert_ne!(item["stream_id"], theirs.as_str());
    }
    let issued = items
        .iter()
        .find(|item| item["type"] == "api_key.issued")
        .expect("the key's issue");
    assert_eq!(issued["data"]["key_hash"], "[redacted]");
    assert_eq!(issued["actor"]["type"], "user");

    // One page from the middle continues exactly after `after`.
    let middle = seen[3];
    let page = member
        .client
        .get(&format!(
            "{}?after={middle}&limit=2",
            events_url(&board.workspace)
        ))
        .await;
    assert_eq!(
        positions(&page.body["items"].as_array().unwrap().clone()),
        seen[4..6]
    );

    // Bad paging parameters are 422 naming the field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("after=-1", "after"),
        ("after=99999999", "after"),
        ("after=x", "after"),
    ] {
        let reply = member
            .client
            .get(&format!("{}?{query}", events_url(&board.workspace)))
            .await;
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields(), [field], "{query}");
    }
}

async fn another_tenants_feed_is_not_found(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Feed").await;
    let stranger = User::register(&tenet, "stranger").await;
    stranger.workspace("Theirs").await;
    stranger
        .client
        .get(&events_url(&board.workspace))
        .await
        .assert_problem(404, "NOT_FOUND");
    let streamed = stranger
        .client
        .send(
            stranger
                .client
                .request(reqwest::Method::GET, &events_url(&board.workspace))
                .header("accept", "text/event-stream"),
        )
        .await;
    streamed.assert_problem(404, "NOT_FOUND");
    Client::anonymous(&tenet)
        .get(&events_url(&board.workspace))
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
}

async fn a_stream_is_live_and_resumes_after_last_event_id_across_a_restart(backing: Backing) {
    let mut tenet = start(&backing).await;
    let board = Board::new(&tenet, "Feed").await;
    let mut stream = Stream::open(board.client(), &board.workspace, Some(0)).await;
    // From the start of the log: the workspace's history first.
    let first = stream.event().await;
    assert_eq!(first.event.as_deref(), Some("workspace.created"));
    assert_eq!(
        first.id.as_deref(),
        Some(first.data["position"].to_string().as_str())
    );
    assert_eq!(stream.event().await.data["type"], "project.created");
    // Then live.
    let live = board.add_task("live").await;
    // A task is created with its number taken on the project's stream.
    let created = stream.next_of("task.created").await;
    assert_eq!(created.data["stream_id"], live.as_str());
    assert_eq!(
        created.id.as_deref(),
        Some(created.data["position"].to_string().as_str())
    );
    // Stop in the middle of a command's events (the task before its
    // number, or after it): the resume picks up whatever follows.
    board.add_task("seen before the restart").await;
    let seen = stream.next_of("task.created").await;
    let last = seen.data["position"].as_i64().expect("position");
    drop(stream);

    tenet.stop_with("-TERM").await;
    let restarted = start(&backing).await;
    tenet = restarted;
    let client = Client {
        base: tenet.base.clone(),
        http: tenet.http.clone(),
        ..board.client().clone()
    };
    let owner = Board {
        owner: User {
            client: client.clone(),
            ..board.owner.clone()
        },
        ..board
    };
    let missed = owner.add_task("while away").await;
    let mut resumed = Stream::open(&client, &owner.workspace, Some(last)).await;
    let next = resumed.event().await;
    assert_eq!(
        next.data["position"].as_i64(),
        Some(last + 1),
        "no gap, no duplicate"
    );
    let mut positions = vec![last + 1];
    let mut missed_seen = next.data["stream_id"] == missed.as_str();
    while !missed_seen {
        let event = resumed.event().await;
        positions.push(event.data["position"].as_i64().expect("position"));
        missed_seen = event.data["stream_id"] == missed.as_str();
    }
    let after = owner.add_task("after the resume").await;
    loop {
        let event = resumed.event().await;
        positions.push(event.data["position"].as_i64().expect("position"));
        if event.data["stream_id"] == after.as_str() {
            break;
        }
    }
    // Everything the page feed shows after `last` is what the stream showed.
    let pages = all_pages(&client, &owner.workspace, 100).await;
    let paged: Vec<i64> = pages
        .iter()
        .map(|item| item["position"].as_i64().unwrap())
        .filter(|p| *p > last)
        .collect();
    while positions.last() < paged.last() {
        let event = resumed.event().await;
        positions.push(event.data["position"].as_i64().expect("position"));
    }
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "dense positions once each: {positions:?}"
    );
    assert_eq!(paged, positions);
    drop(tenet);
}

async fn a_removed_members_stream_ends(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Feed").await;
    let member = board.add_member(&tenet, "member").await;
    let mut stream = Stream::open(&member.client, &board.workspace, None).await;
    board.add_task("seen").await;
    stream.next_of("task.created").await;
    board
        .client()
        .delete(&format!(
            "/api/v1/workspaces/{}/members/{}",
            board.workspace, member.id
        ))
        .await
        .assert_status(200);
    let ended = loop {
        let event = stream.event().await;
        if event.event.as_deref() == Some("error") {
            break event;
        }
        // What happened up to the removal may arrive first.
        assert_ne!(event.data["type"], "task.created", "{event:?}");
    };
    assert_eq!(ended.data["code"], "NOT_FOUND");
    assert!(stream.next().await.is_none(), "the stream ended");
    member
        .client
        .get(&events_url(&board.workspace))
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn a_quiet_stream_sends_heartbeats(backing: Backing) {
    let tenet = crate::common::start_with(&backing, &[("TENET_WS_HEARTBEAT_SECS", "1")]).await;
    let board = Board::new(&tenet, "Feed").await;
    let mut stream = Stream::open(board.client(), &board.workspace, None).await;
    // Nothing happens: within a few seconds a comment line still arrives.
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.response.chunk())
        .await
        .expect("a heartbeat within 5 s")
        .expect("read the stream")
        .expect("the stream goes on");
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with(':'), "{text:?}");
}

in_both_modes!(
    a_quiet_stream_sends_heartbeats,
    pages_follow_the_log_by_after_with_secrets_redacted,
    another_tenants_feed_is_not_found,
    a_stream_is_live_and_resumes_after_last_event_id_across_a_restart,
    a_removed_members_stream_ends,
);
