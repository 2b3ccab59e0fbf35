//! Webhooks through the real binary, in both modes: the resource (CRUD,
//! the secret shown once and never again, rotation, who may do what,
//! validation, tenant isolation).

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Backing, Board, Client, User, start};

fn webhooks_url(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/webhooks")
}

fn webhook_url(workspace: &str, webhook: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/webhooks/{webhook}")
}

/// The bytes of a `whsec_` secret (the Standard Webhooks key).
fn secret_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 after whsec_")
}

/// Every page of the workspace's audit log and event feed, as text.
async fn log_text(client: &Client, workspace: &str) -> String {
    let audit = client
        .get(&format!(
            "/api/v1/workspaces/{workspace}/audit-log?limit=100"
        ))
        .await;
    let feed = client
        .get(&format!("/api/v1/workspaces/{workspace}/events?limit=100"))
        .await;
    format!("{}\n{}", audit.assert_status(200), feed.assert_status(200))
}

async fn a_webhook_is_created_read_changed_and_deleted_with_its_secret_shown_once(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Hooks").await;
    let owner = board.client();
    let created = owner
        .post(
            &webhooks_url(&board.workspace),
            json!({
                "url": "https://localhost/tenet",
                "description": "CI",
                "event_types": ["task.", "comment.added"],
            }),
        )
        .await;
    let body = created.assert_status(201).clone();
    let id = body["id"].as_str().expect("id").to_owned();
    let secret = body["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    assert!(secret_key(&secret).len() >= 24);
    assert_eq!(body["enabled"], true);
    assert_eq!(body["event_types"], json!(["comment.added", "task."]));
    assert_eq!(
        created.header("location").as_deref(),
        Some(webhook_url(&board.workspace, &id).as_str())
    );

    let read = owner
        .get_after(&webhook_url(&board.workspace, &id), &created.token())
        .await;
    let shown = read.assert_status(200);
    assert_eq!(shown["url"], "https://localhost/tenet");
    assert!(shown.get("secret").is_none());
    assert_eq!(read.etag(), created.etag());
    let listed = owner.get(&webhooks_url(&board.workspace)).await;
    assert_eq!(listed.assert_status(200)["total"], 1);
    assert!(!listed.body.to_string().contains(&secret));

    let changed = owner
        .patch(
            &webhook_url(&board.workspace, &id),
            json!({ "enabled": false, "event_types": [] }),
        )
        .await;
    assert_eq!(changed.assert_status(200)["enabled"], false);
    assert_eq!(changed.body["event_types"], json!([]));

    // Rotation: a new secret, once; the old one signs for a day more.
    let rotated = owner
        .post(
            &format!("{}/rotate-secret", webhook_url(&board.workspace, &id)),
            json!({}),
        )
        .await;
    let rotated_body = rotated.assert_status(200).clone();
    let second = rotated_body["secret"].as_str().expect("new secret");
    assert_ne!(second, secret);
    let until = rotated_body["previous_secret_until"]
        .as_str()
        .expect("until");
    let until: chrono::DateTime<chrono::Utc> = until.parse().expect("RFC 3339");
    let hours = (until - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.0..=24.1).contains(&hours), "{hours} h");

    // Neither secret ever shows again: not in reads, the audit log or the feed.
    let logged = log_text(owner, &board.workspace).await;
    assert!(logged.contains("webhook.created") && logged.contains("webhook.secret_rotated"));
    for secret in [secret.as_str(), second] {
        let key = secret.trim_start_matches("whsec_");
        assert!(!logged.contains(key), "a secret leaked into the log");
    }
    assert!(!logged.contains("v1."), "no sealed secret is shown either");

    let deleted = owner.delete(&webhook_url(&board.workspace, &id)).await;
    deleted.assert_status(200);
    owner
        .get_after(&webhook_url(&board.workspace, &id), &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    owner
        .delete(&webhook_url(&board.workspace, &id))
        .await
        .assert_status(200);
}

async fn members_neither_read_nor_write_webhooks_and_other_tenants_see_none(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Hooks").await;
    let created = board
        .client()
        .post(
            &webhooks_url(&board.workspace),
            json!({ "url": "https://localhost/in" }),
        )
        .await;
    let id = created.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let admin = board.add_member(&tenet, "admin").await;
    admin
        .client
        .get_after(&webhook_url(&board.workspace, &id), &created.token())
        .await
        .assert_status(200);
    let member = board.add_member(&tenet, "member").await;
    member
        .client
        .get(&webhooks_url(&board.workspace))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    member
        .client
        .post(
            &webhooks_url(&board.workspace),
            json!({ "url": "https://localhost/in" }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    let stranger = User::register(&tenet, "stranger").await;
    let theirs = stranger.workspace("Theirs").await;
    let url = webhook_url(&board.workspace, &id);
    stranger
        .client
        .get(&url)
        .await
        .assert_problem(404, "NOT_FOUND");
    stranger
        .client
        .patch(&url, json!({ "enabled": false }))
        .await
        .assert_problem(404, "NOT_FOUND");
    stranger
        .client
        .delete(&url)
        .await
        .assert_problem(404, "NOT_FOUND");
    // Their own workspace, our webhook's id: not found either.
    let crossed = webhook_url(&theirs, &id);
    stranger
        .client
        .get(&crossed)
        .await
        .assert_problem(404, "NOT_FOUND");
    stranger
        .client
        .post(&format!("{crossed}/test"), json!({}))
        .await
        .assert_problem(404, "NOT_FOUND");
    stranger
        .client
        .post(&format!("{crossed}/rotate-secret"), json!({}))
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn unsafe_or_malformed_webhooks_are_refused_naming_the_field(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Hooks").await;
    let refused = |body: Value, field: &'static str| {
        let client = board.client().clone();
        let url = webhooks_url(&board.workspace);
        async move {
            let reply = client.post(&url, body.clone()).await;
            reply.assert_problem(422, "VALIDATION_ERROR");
            assert_eq!(reply.fields(), [field], "{body}");
        }
    };
    for url in [
        "http://localhost/in",
        "https://127.0.0.1/in",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/in",
        "https://[::1]/in",
        "https://user:secret@localhost/in",
        "localhost/in",
    ] {
        refused(json!({ "url": url }), "url").await;
    }
    refused(
        json!({ "url": "https://localhost", "event_types": ["Task Created"] }),
        "event_types[0]",
    )
    .await;
    refused(
        json!({ "url": "https://localhost", "description": "x".repeat(1001) }),
        "description",
    )
    .await;
    let unknown = board
        .client()
        .post(
            &webhooks_url(&board.workspace),
            json!({ "url": "https://localhost", "secret": "mine" }),
        )
        .await;
    assert_eq!(unknown.status, 422);
    // Nothing was created.
    let listed = board.client().get(&webhooks_url(&board.workspace)).await;
    assert_eq!(listed.assert_status(200)["total"], 0);
}

in_both_modes!(
    a_webhook_is_created_read_changed_and_deleted_with_its_secret_shown_once,
    members_neither_read_nor_write_webhooks_and_other_tenants_see_none,
    unsafe_or_malformed_webhooks_are_refused_naming_the_field,
);
