//! Webhook deliveries through the real binary, in both modes, to a
//! receiver on loopback that checks every signature with its own
//! implementation of the Standard Webhooks specification (HMAC-SHA256 of
//! `id.timestamp.body` under the bytes of the `whsec_` secret, base64,
//! `v1,` before it): retries through failures in log order with stable
//! ids, a crash mid-delivery, a hanging endpoint, addresses refused at
//! delivery and redirects not followed, the delivery log, test events and
//! manual retries.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{Backing, Board, Client, Tenet, start_with};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signatures: String,
    body: String,
    /// What the receiver answered.
    answered: u16,
}

impl Received {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Requests still to answer with 500.
    fail: AtomicUsize,
    /// Never answer.
    hang: AtomicBool,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicUsize,
}

/// A receiver on loopback; answers its base URL.
async fn receiver(inbox: Arc<Inbox>) -> String {
    async fn hook(
        axum::extract::State(inbox): axum::extract::State<Arc<Inbox>>,
        headers: HeaderMap,
        body: String,
    ) -> axum::response::Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        if inbox.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let delay = inbox.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay as u64)).await;
        }
        let failing = inbox
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let answered = if failing { 500 } else { 200 };
        inbox.received.lock().unwrap().push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signatures: header("webhook-signature"),
            body,
            answered,
        });
        StatusCode::from_u16(answered).unwrap().into_response()
    }
    async fn redirect() -> axum::response::Response {
        (StatusCode::TEMPORARY_REDIRECT, [("location", "/hook")]).into_response()
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .route("/redirect", axum::routing::post(redirect))
        .with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// Whether one of `signatures` (space-separated `v1,<base64>`) signs the
/// request with `secret`, per the Standard Webhooks specification.
fn verifies(secret: &str, received: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    received
        .signatures
        .split(' ')
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

/// Settings of a service whose webhooks may reach the loopback receiver.
const LOOPBACK: [(&str, &str); 3] = [
    ("TENET_WEBHOOK_ALLOW_HTTP", "true"),
    ("TENET_WEBHOOK_ALLOW_NETS", "127.0.0.0/8"),
    ("TENET_WEBHOOK_RETRY_BASE_MS", "50"),
];

/// Creates a webhook; answers its id and secret.
async fn webhook(client: &Client, workspace: &str, url: &str, types: &[&str]) -> (String, String) {
    let created = client
        .post(
            &format!("/api/v1/workspaces/{workspace}/webhooks"),
            json!({ "url": url, "event_types": types }),
        )
        .await;
    let body = created.assert_status(201);
    (
        body["id"].as_str().expect("id").to_owned(),
        body["secret"].as_str().expect("secret").to_owned(),
    )
}

/// Waits (bounded) until `done` holds for what the inbox received.
async fn until(inbox: &Inbox, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let received = inbox.received.lock().unwrap().clone();
        if done(&received) {
            return received;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: got {received:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of `kind` among the deliveries answered 2xx, in the order they
/// were accepted.
fn accepted(received: &[Received], prefix: &str) -> Vec<Value> {
    received
        .iter()
        .filter(|r| r.answered == 200)
        .map(Received::event)
        .filter(|event| {
            event["type"]
                .as_str()
                .unwrap_or_default()
                .starts_with(prefix)
        })
        .collect()
}

fn deliveries_url(workspace: &str, webhook: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/webhooks/{webhook}/deliveries")
}

async fn deliveries_arrive_signed_in_log_order_with_stable_ids_through_failures(backing: Backing) {
    let tenet = start_with(&backing, &LOOPBACK).await;
    let inbox = Arc::new(Inbox::default());
    inbox.fail.store(3, Ordering::SeqCst);
    let base = receiver(inbox.clone()).await;
    let board = Board::new(&tenet, "Hooked").await;
    let (hook, secret) = webhook(
        board.client(),
        &board.workspace,
        &format!("{base}/hook"),
        &["task."],
    )
    .await;
    let mut tasks = Vec::new();
    for n in 0..5 {
        tasks.push(board.add_task(&format!("task {n}")).await);
    }
    board
        .move_to(&tasks[0], "in_progress")
        .await
        .assert_status(200);

    let received = until(&inbox, "six task events accepted", |r| {
        accepted(r, "task.").len() >= 6
    })
    .await;
    for request in &received {
        assert!(verifies(&secret, request), "bad signature: {request:#?}");
        let sent: i64 = request.timestamp.parse().expect("a timestamp");
        assert!((chrono::Utc::now().timestamp() - sent).abs() < 300);
    }
    // Every event once accepted, in log order, and nothing it filters out.
    let events = accepted(&received, "");
    let positions: Vec<i64> = events
        .iter()
        .map(|event| event["position"].as_i64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(
        events
            .iter()
            .all(|e| e["type"].as_str().unwrap().starts_with("task."))
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "task.created")
            .count(),
        5
    );
    assert_eq!(events[5]["type"], "task.status_changed");
    assert_eq!(events[0]["stream_id"], tasks[0].as_str());
    // The failed attempts were the first event's, with its id and body.
    let first = received
        .iter()
        .find(|r| r.answered == 200)
        .expect("accepted");
    let failed: Vec<&Received> = received.iter().filter(|r| r.answered == 500).collect();
    assert_eq!(failed.len(), 3);
    for attempt in failed {
        assert_eq!(attempt.id, first.id);
        assert_eq!(attempt.body, first.body);
    }
    // The body is the event as the feed shows it.
    let feed = board
        .client()
        .get(&format!(
            "/api/v1/workspaces/{}/events?after={}&limit=1",
            board.workspace,
            positions[0] - 1
        ))
        .await;
    assert_eq!(feed.assert_status(200)["items"][0], events[0]);

    // The delivery log: the first delivery's four attempts.
    let log = board
        .client()
        .get(&deliveries_url(&board.workspace, &hook))
        .await;
    let log = log.assert_status(200).clone();
    let items = log["items"].as_array().expect("items");
    let oldest = items.last().expect("deliveries");
    assert_eq!(oldest["id"], first.id.as_str());
    assert_eq!(oldest["status"], "succeeded");
    let codes: Vec<i64> = oldest["attempt_log"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status_code"].as_i64().expect("code"))
        .collect();
    assert_eq!(codes, [500, 500, 500, 200]);
    assert!(oldest["attempt_log"][0]["duration_ms"].as_i64().is_some());

    // Deliveries by outcome, attempt latency and the oldest pending
    // delivery's age, with bounded labels.
    let metrics = tenet.http.get(tenet.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for series in [
        "tenet_webhook_deliveries_total{outcome=\"succeeded\"}",
        "tenet_webhook_deliveries_total{outcome=\"retried\"}",
        "tenet_webhook_attempt_seconds",
        "tenet_webhook_oldest_pending_seconds",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }

    // A test event reaches this webhook, whatever its filters.
    board
        .client()
        .post(
            &format!(
                "/api/v1/workspaces/{}/webhooks/{hook}/test",
                board.workspace
            ),
            json!({}),
        )
        .await
        .assert_status(202);
    let received = until(&inbox, "the test event", |r| {
        !accepted(r, "webhook.test").is_empty()
    })
    .await;
    assert!(received.iter().all(|r| verifies(&secret, r)));

    // After a rotation, deliveries carry a signature by each secret.
    let rotated = board
        .client()
        .post(
            &format!(
                "/api/v1/workspaces/{}/webhooks/{hook}/rotate-secret",
                board.workspace
            ),
            json!({}),
        )
        .await;
    let second = rotated.assert_status(200)["secret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    board.add_task("after the rotation").await;
    let received = until(&inbox, "a delivery after the rotation", |r| {
        r.iter()
            .any(|r| r.answered == 200 && r.event()["data"]["title"] == "after the rotation")
    })
    .await;
    let signed = received
        .iter()
        .find(|r| r.event()["data"]["title"] == "after the rotation")
        .expect("delivered");
    assert!(
        verifies(&second, signed) && verifies(&secret, signed),
        "{signed:#?}"
    );
    assert_eq!(signed.signatures.split(' ').count(), 2);

    // A retry by hand sends the same delivery again.
    let retried = board
        .client()
        .post(
            &format!(
                "{}/{}/retry",
                deliveries_url(&board.workspace, &hook),
                first.id
            ),
            json!({}),
        )
        .await;
    retried.assert_status(202);
    let received = until(&inbox, "the retried delivery", |r| {
        r.iter()
            .filter(|r| r.id == first.id && r.answered == 200)
            .count()
            == 2
    })
    .await;
    let again = received.iter().rev().find(|r| r.id == first.id).unwrap();
    assert_eq!(again.body, first.body);
    board
        .client()
        .post(
            &format!(
                "{}/{}/retry",
                deliveries_url(&board.workspace, &hook),
                uuid::Uuid::new_v4()
            ),
            json!({}),
        )
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn a_crash_mid_delivery_loses_nothing_and_repeats_only_with_the_same_id(backing: Backing) {
    let mut tenet = start_with(&backing, &LOOPBACK).await;
    let inbox = Arc::new(Inbox::default());
    inbox.delay_ms.store(100, Ordering::SeqCst);
    let base = receiver(inbox.clone()).await;
    let board = Board::new(&tenet, "Crash").await;
    let (_, secret) = webhook(
        board.client(),
        &board.workspace,
        &format!("{base}/hook"),
        &["task.created"],
    )
    .await;
    let mut tasks = Vec::new();
    for n in 0..12 {
        tasks.push(board.add_task(&format!("task {n}")).await);
    }
    until(&inbox, "a few deliveries before the crash", |r| {
        r.len() >= 3
    })
    .await;
    tenet.stop_with("-KILL").await;
    let restarted: Tenet = start_with(&backing, &LOOPBACK).await;
    tenet = restarted;

    let received = until(&inbox, "every task after the restart", |r| {
        let created: std::collections::HashSet<String> = accepted(r, "task.created")
            .iter()
            .map(|e| e["stream_id"].as_str().unwrap().to_owned())
            .collect();
        tasks.iter().all(|task| created.contains(task))
    })
    .await;
    let mut bodies: std::collections::HashMap<String, String> = Default::default();
    let mut ids_of_event: std::collections::HashMap<String, String> = Default::default();
    for request in &received {
        assert!(verifies(&secret, request));
        let event = request.event();
        let known = bodies
            .entry(request.id.clone())
            .or_insert(request.body.clone());
        assert_eq!(*known, request.body, "one webhook-id, one content");
        let event_id = event["id"].as_str().unwrap().to_owned();
        let id = ids_of_event.entry(event_id).or_insert(request.id.clone());
        assert_eq!(*id, request.id, "a repeated event repeats its webhook-id");
    }
    let positions: Vec<i64> = {
        let mut seen = Vec::new();
        for event in accepted(&received, "task.created") {
            let position = event["position"].as_i64().unwrap();
            if !seen.contains(&position) {
                seen.push(position);
            }
        }
        seen
    };
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    drop(tenet);
}

async fn a_hanging_endpoint_delays_no_other_webhook_and_no_read_model(backing: Backing) {
    let mut settings = LOOPBACK.to_vec();
    settings.push(("TENET_WEBHOOK_TIMEOUT_MS", "120000"));
    let tenet = start_with(&backing, &settings).await;
    let hanging = Arc::new(Inbox::default());
    hanging.hang.store(true, Ordering::SeqCst);
    let prompt = Arc::new(Inbox::default());
    let (slow, fast) = (
        receiver(hanging.clone()).await,
        receiver(prompt.clone()).await,
    );
    let board = Board::new(&tenet, "Hang").await;
    webhook(
        board.client(),
        &board.workspace,
        &format!("{slow}/hook"),
        &[],
    )
    .await;
    webhook(
        board.client(),
        &board.workspace,
        &format!("{fast}/hook"),
        &[],
    )
    .await;
    let mut tasks = Vec::new();
    for n in 0..3 {
        let created = board.create(json!({ "title": format!("task {n}") })).await;
        created.assert_status(201);
        // The read model is not held up.
        board
            .client()
            .get_after(&board.task(&created.id()), &created.token())
            .await
            .assert_status(200);
        tasks.push(created.id());
    }
    until(&prompt, "every task at the prompt endpoint", |r| {
        let created: Vec<String> = accepted(r, "task.created")
            .iter()
            .map(|e| e["stream_id"].as_str().unwrap().to_owned())
            .collect();
        tasks.iter().all(|task| created.contains(task))
    })
    .await;
    assert!(hanging.received.lock().unwrap().is_empty());
}

async fn refused_addresses_and_redirects_are_not_delivered_to(backing: Backing) {
    // Plain http is allowed, but no private network: a name that
    // resolves to loopback is refused when delivering.
    let tenet = start_with(
        &backing,
        &[
            ("TENET_WEBHOOK_ALLOW_HTTP", "true"),
            ("TENET_WEBHOOK_RETRY_BASE_MS", "50"),
        ],
    )
    .await;
    let inbox = Arc::new(Inbox::default());
    let base = receiver(inbox.clone()).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let board = Board::new(&tenet, "Guarded").await;
    for literal in ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]"] {
        let refused = board
            .client()
            .post(
                &format!("/api/v1/workspaces/{}/webhooks", board.workspace),
                json!({ "url": format!("http://{literal}:{port}/hook") }),
            )
            .await;
        refused.assert_problem(422, "VALIDATION_ERROR");
    }
    let (hook, _) = webhook(
        board.client(),
        &board.workspace,
        &format!("http://localhost:{port}/hook"),
        &[],
    )
    .await;
    board.add_task("never delivered").await;
    let error = poll_attempt(board.client(), &board.workspace, &hook).await;
    let error = error["error"].as_str().expect("an error").to_owned();
    assert!(error.contains("loopback"), "{error}");
    assert!(inbox.received.lock().unwrap().is_empty());
    let url = format!("/api/v1/workspaces/{}/webhooks/{hook}", board.workspace);
    let deleted = board.client().delete(&url).await;
    deleted.assert_status(200);
    // Gone from the read model before the next service starts.
    board
        .client()
        .get_after(&url, &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    drop(tenet);

    // Allowed to reach loopback, a redirect is answered but not followed.
    let tenet = start_with(&backing, &LOOPBACK).await;
    let client = Client {
        base: tenet.base.clone(),
        http: tenet.http.clone(),
        ..board.client().clone()
    };
    let (hook, _) = webhook(
        &client,
        &board.workspace,
        &format!("{base}/redirect"),
        &["task."],
    )
    .await;
    client
        .post(
            &format!(
                "/api/v1/workspaces/{}/projects/{}/tasks",
                board.workspace, board.project
            ),
            json!({ "title": "redirected" }),
        )
        .await
        .assert_status(201);
    let attempt = poll_attempt(&client, &board.workspace, &hook).await;
    assert_eq!(attempt["status_code"], 307);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        inbox.received.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

/// The first attempt in a webhook's delivery log, once there is one.
async fn poll_attempt(client: &Client, workspace: &str, hook: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt within 30 s"
        );
        let log = client.get(&deliveries_url(workspace, hook)).await;
        // A webhook created a moment ago may not be in the read model yet.
        if log.status == 404 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let log = log.assert_status(200).clone();
        if let Some(attempt) = log["items"]
            .as_array()
            .and_then(|items| items.last())
            .and_then(|delivery| delivery["attempt_log"].get(0))
        {
            return attempt.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt: {log:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_failing_delivery_is_given_up_and_a_failing_webhook_disabled(backing: Backing) {
    // Retried for a second, and disabled after a second without a success.
    let mut settings = LOOPBACK.to_vec();
    settings.push(("TENET_WEBHOOK_GIVE_UP_SECS", "1"));
    settings.push(("TENET_WEBHOOK_DISABLE_AFTER_SECS", "1"));
    let tenet = start_with(&backing, &settings).await;
    let inbox = Arc::new(Inbox::default());
    inbox.fail.store(usize::MAX, Ordering::SeqCst);
    let base = receiver(inbox.clone()).await;
    let board = Board::new(&tenet, "Failing").await;
    let (hook, _) = webhook(
        board.client(),
        &board.workspace,
        &format!("{base}/hook"),
        &["task."],
    )
    .await;
    board.add_task("first").await;
    board.add_task("second").await;
    let url = format!("/api/v1/workspaces/{}/webhooks/{hook}", board.workspace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let disabled = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not disabled in time"
        );
        let shown = board.client().get(&url).await;
        // Created a moment ago: the read model may not show it yet.
        if shown.status == 404 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let shown = shown.assert_status(200).clone();
        if shown["enabled"] == false {
            break shown;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not disabled: {shown:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = disabled["disabled_reason"].as_str().expect("a reason");
    assert!(reason.contains("failed"), "{reason}");
    // The first delivery was given up (marked failed) and the next one
    // attempted after it.
    let failed = board
        .client()
        .get(&format!(
            "{}?status=failed",
            deliveries_url(&board.workspace, &hook)
        ))
        .await;
    let failed = failed.assert_status(200).clone();
    assert!(failed["total"].as_u64().unwrap() >= 1, "{failed:#}");
    let received = inbox.received.lock().unwrap().clone();
    assert!(received.iter().all(|r| r.answered == 500));
    // The disabling is an event of the log, by the service.
    let audit = board
        .client()
        .get(&format!(
            "/api/v1/workspaces/{}/audit-log?event_type=webhook.disabled",
            board.workspace
        ))
        .await;
    let audit = audit.assert_status(200).clone();
    assert_eq!(audit["total"], 1, "{audit:#}");
    assert_eq!(audit["items"][0]["actor"]["type"], "system");
}

in_both_modes!(
    a_failing_delivery_is_given_up_and_a_failing_webhook_disabled,
    deliveries_arrive_signed_in_log_order_with_stable_ids_through_failures,
    a_crash_mid_delivery_loses_nothing_and_repeats_only_with_the_same_id,
    a_hanging_endpoint_delays_no_other_webhook_and_no_read_model,
    refused_addresses_and_redirects_are_not_delivered_to,
);
