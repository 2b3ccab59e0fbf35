//! The service as an operator meets it: start, health, readiness, errors,
//! configuration mistakes and shutdown.

use crate::common::{Backing, Mode, Tenet, command};
use serde_json::Value;

async fn health_is_ok_and_every_response_carries_a_request_id(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let response = tenet
        .http
        .get(tenet.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let echoed = tenet
        .http
        .get(tenet.url("/api/v1/health"))
        .header("X-Request-ID", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");

    let unusable = tenet
        .http
        .get(tenet.url("/api/v1/health"))
        .header("X-Request-ID", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert_ne!(unusable.headers()["x-request-id"], "x".repeat(500).as_str());
}

async fn readiness_checks_the_database_and_nats(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let response = tenet
        .http
        .get(tenet.url("/api/v1/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["ok"], true);
    match backing.mode {
        Mode::Distributed => assert_eq!(body["nats"]["ok"], true),
        Mode::Embedded => assert!(body.get("nats").is_none()),
    }
}

async fn unknown_routes_and_methods_answer_problem_json(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let missing = tenet
        .http
        .get(tenet.url("/api/v1/no-such-thing"))
        .header("X-Request-ID", "req-404")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["code"], "NOT_FOUND");
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["request_id"], "req-404");

    let wrong_method = tenet
        .http
        .delete(tenet.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let problem: Value = wrong_method.json().await.unwrap();
    assert_eq!(problem["code"], "METHOD_NOT_ALLOWED");
}

async fn sigterm_stops_the_service_cleanly(backing: Backing) {
    let mut tenet = Tenet::start(&backing, &[]).await;
    let status = tenet.stop_with("-TERM").await;
    assert!(status.success(), "exit status {status}");
}

async fn metrics_are_exposed_for_prometheus(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    tenet
        .http
        .get(tenet.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    let metrics = tenet.http.get(tenet.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("tenet_http_requests_total"), "{text}");
}

in_both_modes!(
    health_is_ok_and_every_response_carries_a_request_id,
    readiness_checks_the_database_and_nats,
    unknown_routes_and_methods_answer_problem_json,
    sigterm_stops_the_service_cleanly,
    metrics_are_exposed_for_prometheus,
);

/// Starts with an otherwise valid configuration plus `env`, and answers
/// the last line of stderr of the failed start.
async fn failed_start(env: &[(&str, &str)]) -> String {
    let output = command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TENET_JWT_SECRET", "a-secret-of-at-least-thirty-two-bytes")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.lines().last().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_with_a_one_line_reason() {
    let line = failed_start(&[("DATABASE_URL", "postgres://tenet:secret@127.0.0.1:1/tenet")]).await;
    assert!(
        line.starts_with("error: cannot connect to the database"),
        "{line}"
    );
    assert!(
        !line.contains("secret"),
        "the password must not be printed: {line}"
    );
}

#[tokio::test]
async fn an_unreachable_nats_fails_fast_with_a_one_line_reason() {
    let Some(database) = tenet_events::testing::TestDatabase::postgres_empty().await else {
        return;
    };
    let url = database.url.clone().unwrap();
    let line = failed_start(&[("DATABASE_URL", &url), ("NATS_URL", "nats://127.0.0.1:1")]).await;
    assert!(line.starts_with("error: cannot reach NATS"), "{line}");
}

#[tokio::test]
async fn nats_without_postgres_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let line = failed_start(&[
        ("NATS_URL", "nats://127.0.0.1:4222"),
        ("TENET_DATA_DIR", &data),
    ])
    .await;
    assert!(line.contains("NATS_URL needs DATABASE_URL"), "{line}");
}

#[tokio::test]
async fn migrate_applies_the_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = command()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("tenet.db").exists());
}

#[tokio::test]
async fn postgres_without_a_shared_signing_secret_is_refused() {
    let output = command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("TENET_JWT_SECRET is required"), "{stderr}");
}
