//! The OpenAPI document as the server enforces it: every protected
//! operation answers 401 to a caller without valid credentials before it
//! looks at anything else, and query parameters an operation does not
//! document are 422 naming them. (Schemathesis checks the rest from
//! `.ci/schemathesis`.)

use crate::common::{Backing, Board, Client, User, start};
use serde_json::Value;

/// Every operation of the document that names a security requirement, as
/// method and path, each path parameter filled with `fill`.
async fn protected_operations(client: &Client, fill: &str) -> Vec<(reqwest::Method, String)> {
    let document = client.get("/openapi.json").await.assert_status(200).clone();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let filled = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    fill
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().expect("path item") {
            let requires = operation["security"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
            });
            if !requires {
                continue;
            }
            if let Ok(method) = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            {
                operations.push((method, filled.clone()));
            }
        }
    }
    operations
}

async fn every_protected_operation_authenticates_before_it_validates(backing: Backing) {
    let tenet = start(&backing).await;
    let anonymous = Client::anonymous(&tenet);
    let malformed = protected_operations(&anonymous, "not-a-uuid").await;
    let well_formed =
        protected_operations(&anonymous, "01900000-0000-7000-8000-000000000000").await;
    assert!(malformed.len() >= 60, "{malformed:?}");
    let forged = anonymous.with_token("forged.token.value");
    for (method, path) in malformed.iter().chain(&well_formed) {
        for (who, client) in [("anonymous", &anonymous), ("a forged token", &forged)] {
            // Everything else wrong at once: path, query, headers, body.
            let request = client
                .request(method.clone(), &format!("{path}?limit=0&offset=-1&skip=3"))
                .header("Idempotency-Key", "k".repeat(300))
                .header("If-Match", "not a version")
                .header("X-Consistency-Token", "not a token")
                .header("Content-Type", "application/json")
                .body("{\"name\": [");
            let reply = client.send(request).await;
            assert_eq!(
                (reply.status, reply.body["code"].as_str()),
                (401, Some("AUTHENTICATION_ERROR")),
                "{who}: {method} {path}: {:#}",
                reply.body
            );
        }
    }
}

/// The 422's field errors as (field, message).
fn errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| {
            (
                error["field"].as_str().unwrap_or_default().to_owned(),
                error["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn unknown_query_parameters_and_bad_values_are_named(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "contract").await;
    let owner: &User = &board.owner;
    let projects = format!("/api/v1/workspaces/{}/projects", board.workspace);

    let other_convention = owner
        .client
        .get(&format!("{projects}?page=2&page_size=10&skip=5&limit=5"))
        .await;
    assert_eq!(other_convention.status, 422, "{:#}", other_convention.body);
    let named: Vec<String> = errors(&other_convention.body)
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(named, ["page", "page_size", "skip"]);

    // An operation without a query extractor refuses them just the same.
    let workspace = owner
        .client
        .get(&format!(
            "/api/v1/workspaces/{}?expand=members",
            board.workspace
        ))
        .await;
    assert_eq!(workspace.status, 422, "{:#}", workspace.body);
    assert_eq!(errors(&workspace.body)[0].0, "expand");

    let negative = owner.client.get(&format!("{projects}?offset=-1")).await;
    assert_eq!(
        errors(&negative.assert_status(422).clone()),
        [("offset".to_owned(), "must be 0 or more".to_owned())]
    );
    let audit = format!("/api/v1/workspaces/{}/audit-log", board.workspace);
    let stream = owner.client.get(&format!("{audit}?stream_id=nope")).await;
    assert_eq!(
        errors(&stream.assert_status(422).clone()),
        [("stream_id".to_owned(), "must be a UUID".to_owned())]
    );
    let path = owner.client.get(&format!("{projects}/not-a-uuid")).await;
    let path_errors = errors(&path.assert_status(422).clone());
    assert_eq!(path_errors[0].0, "project_id");
    assert!(!path_errors[0].1.contains("invalid"), "{path_errors:?}");

    // Documented parameters pass.
    owner
        .client
        .get(&format!(
            "{projects}?offset=0&limit=5&sort=-name&status=all"
        ))
        .await
        .assert_status(200);
}

in_both_modes!(
    every_protected_operation_authenticates_before_it_validates,
    unknown_query_parameters_and_bad_values_are_named,
);
