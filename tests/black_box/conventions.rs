//! Conventions every answer keeps: W3C trace context answered and recorded
//! in the log, health with version and uptime, HSTS when configured, actors
//! named alike everywhere, idempotent replays byte for byte.

use serde_json::{Value, json};

use crate::common::{Backing, Board, Tenet, start, start_with};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The trace id of a `traceparent` (asserting its shape).
#[track_caller]
fn trace_id_of(traceparent: &str) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(
        (parts[0].len(), parts[1].len(), parts[2].len()),
        (2, 32, 16)
    );
    assert_ne!(parts[1], "0".repeat(32));
    parts[1].to_owned()
}

async fn a_traceparent_is_answered_and_travels_into_the_log(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Traced").await;
    let created = board
        .client()
        .send(
            board
                .client()
                .request(reqwest::Method::POST, &board.tasks())
                .header("traceparent", SENT)
                .header("tracestate", "vendor=opaque")
                .json(&json!({ "title": "Follow me" })),
        )
        .await;
    created.assert_status(201);
    let answered = created.header("traceparent").expect("traceparent answered");
    assert_eq!(trace_id_of(&answered), TRACE_ID);
    assert_ne!(answered, SENT, "the answer names the server's own span");
    assert_eq!(
        created.header("tracestate").as_deref(),
        Some("vendor=opaque")
    );

    let audit = board
        .client()
        .get_after(
            &format!(
                "/api/v1/workspaces/{}/audit-log?event_type=task.created",
                board.workspace
            ),
            &created.token(),
        )
        .await;
    audit.assert_status(200);
    let items = audit.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{:#}", audit.body);
    let recorded = items[0]["traceparent"]
        .as_str()
        .expect("traceparent recorded");
    assert_eq!(trace_id_of(recorded), TRACE_ID);

    // No traceparent, or a malformed one: a new trace, answered all the same.
    for sent in [None, Some("00-not-a-trace-01")] {
        let mut request = tenet.http.get(tenet.url("/api/v1/health"));
        if let Some(sent) = sent {
            request = request.header("traceparent", sent);
        }
        let response = request.send().await.unwrap();
        let answered = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(trace_id_of(&answered), TRACE_ID);
    }
}

async fn health_answers_its_version_and_uptime(backing: Backing) {
    let tenet = start(&backing).await;
    let response = tenet
        .http
        .get(tenet.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("strict-transport-security"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_seconds"].is_u64(), "{body:#}");

    let doc: Value = tenet
        .http
        .get(tenet.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let health = &doc["components"]["schemas"]["Health"]["properties"];
    assert!(health["version"].is_object() && health["uptime_seconds"].is_object());
}

async fn hsts_is_sent_when_the_service_is_behind_tls(backing: Backing) {
    let tenet = start_with(&backing, &[("TENET_HSTS", "31536000")]).await;
    for path in ["/api/v1/health", "/api/v1/no-such-route"] {
        let response = tenet.http.get(tenet.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}

async fn a_task_history_names_actors_as_the_audit_log_does(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Named").await;
    let task = board.add_task("Who did it").await;
    let changed = board
        .client()
        .patch(&board.task(&task), json!({ "title": "Who did it, again" }))
        .await;
    changed.assert_status(200);
    let history = board
        .client()
        .get_after(&format!("{}/history", board.task(&task)), &changed.token())
        .await;
    history.assert_status(200);
    let audit = board
        .client()
        .get_after(
            &format!(
                "/api/v1/workspaces/{}/audit-log?stream_id={task}",
                board.workspace
            ),
            &changed.token(),
        )
        .await;
    audit.assert_status(200);
    let actors = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["actor"].clone())
            .collect()
    };
    let (in_history, in_audit) = (actors(&history.body), actors(&audit.body));
    assert_eq!(in_history.len(), 2, "{:#}", history.body);
    assert_eq!(in_history, in_audit);
    let display = in_history[0]["display"].as_str().unwrap();
    assert_eq!(display, format!("owner <{}>", board.owner.email));
}

async fn an_idempotent_replay_is_the_first_answer_byte_for_byte(backing: Backing) {
    let tenet: Tenet = start(&backing).await;
    let board = Board::new(&tenet, "Replayed").await;
    let token = board.client().token.clone().expect("token");
    let body = r#"{"title":"Once","description":"keys in the order sent","labels":["b","a"],"priority":"high"}"#;
    let send = || async {
        let response = tenet
            .http
            .post(tenet.url(&board.tasks()))
            .bearer_auth(&token)
            .header("Idempotency-Key", "bytes-1")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let replayed = response.headers().get("idempotent-replayed").cloned();
        (status, replayed, response.bytes().await.unwrap())
    };
    let (status, replayed, first) = send().await;
    assert_eq!((status.as_u16(), replayed), (201, None));
    let (status, replayed, again) = send().await;
    assert_eq!(status, 201);
    assert_eq!(replayed.unwrap(), "true");
    assert_eq!(again, first, "{}", String::from_utf8_lossy(&again));
}

in_both_modes!(
    a_traceparent_is_answered_and_travels_into_the_log,
    health_answers_its_version_and_uptime,
    hsts_is_sent_when_the_service_is_behind_tls,
    a_task_history_names_actors_as_the_audit_log_does,
    an_idempotent_replay_is_the_first_answer_byte_for_byte,
);
