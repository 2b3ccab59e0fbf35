//! The OpenAPI document, enforced where handlers cannot forget it: one
//! route layer reads, per operation, whether it needs credentials and
//! which query parameters it takes, and answers before any extractor of
//! the handler runs.
//!
//! - An operation with a security requirement authenticates first: a
//!   request without valid credentials is 401 whatever else is wrong with
//!   it (a malformed body, path, query or `Idempotency-Key`), so an
//!   anonymous caller learns nothing about the shape a request must have.
//!   On a workspace's routes the caller's access to it is resolved in the
//!   same read (404 for a workspace they are not in), and handlers reuse
//!   it.
//! - A query parameter the operation does not document is 422 naming it:
//!   a client written to another convention (`page`, `skip`) must not get
//!   page 1 forever.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{Access, Auth, Principal};
use super::problem::{ApiError, FieldError};

/// What the document says of one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rules {
    /// It names a security requirement.
    authenticated: bool,
    /// Its path names a workspace the caller must be in (not `/admin`'s:
    /// platform admins reach workspaces they are not members of).
    workspace: bool,
    /// It takes the token as `?token=` too (the WebSocket): without an
    /// `Authorization` header, its handler authenticates.
    query_token: bool,
    /// The query parameters it documents.
    query: BTreeSet<String>,
}

/// The rules of every operation of a document, by path template (as axum
/// matches it) and method.
#[derive(Debug, Default)]
pub struct Contract {
    operations: HashMap<String, Vec<(Method, Rules)>>,
}

impl Contract {
    pub fn new(document: &utoipa::openapi::OpenApi) -> Contract {
        // The serialised form: what a client reads, so what is enforced.
        let document = serde_json::to_value(document).unwrap_or_default();
        let global_security = non_empty(&document["security"]);
        let mut operations: HashMap<String, Vec<(Method, Rules)>> = HashMap::new();
        let Some(paths) = document["paths"].as_object() else {
            return Contract::default();
        };
        for (path, item) in paths {
            let shared = item["parameters"].as_array().cloned().unwrap_or_default();
            let Some(methods) = item.as_object() else {
                continue;
            };
            for (method, operation) in methods {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let parameters = operation["parameters"].as_array().cloned();
                let query: BTreeSet<String> = shared
                    .iter()
                    .chain(parameters.iter().flatten())
                    .filter(|parameter| parameter["in"] == "query")
                    .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
                    .collect();
                let authenticated = match operation.get("security") {
                    Some(security) => non_empty(security),
                    None => global_security,
                };
                let rules = Rules {
                    authenticated,
                    workspace: path.contains("{workspace_id}")
                        && !path.starts_with("/api/v1/admin"),
                    query_token: query.contains("token"),
                    query,
                };
                operations
                    .entry(path.clone())
                    .or_default()
                    .push((method, rules));
            }
        }
        Contract { operations }
    }

    fn rules(&self, method: &Method, path: &str) -> Option<&Rules> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.operations
            .get(path)?
            .iter()
            .find(|(candidate, _)| candidate == method)
            .map(|(_, rules)| rules)
    }
}

/// A security requirement list that requires something: `[]` and `[{}]`
/// (anonymous allowed) do not.
fn non_empty(security: &serde_json::Value) -> bool {
    security.as_array().is_some_and(|requirements| {
        !requirements.is_empty()
            && requirements
                .iter()
                .all(|requirement| requirement.as_object().is_some_and(|r| !r.is_empty()))
    })
}

/// What [`layer`] works with.
#[derive(Clone)]
pub struct ContractState {
    pub contract: Arc<Contract>,
    pub auth: Auth,
}

impl FromRef<ContractState> for Auth {
    fn from_ref(state: &ContractState) -> Auth {
        state.auth.clone()
    }
}

/// The route layer; see the module documentation. Outside every other
/// route layer (the idempotency layer parses its header after this).
pub async fn layer(State(state): State<ContractState>, request: Request, next: Next) -> Response {
    let rules = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| state.contract.rules(request.method(), path.as_str()));
    let Some(rules) = rules else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let handler_authenticates = rules.query_token
        && !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        && parts.uri.query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some("token"))
        });
    if rules.authenticated && !handler_authenticates {
        let authenticated = if rules.workspace {
            Access::from_request_parts(&mut parts, &state)
                .await
                .map(drop)
        } else {
            Principal::from_request_parts(&mut parts, &state)
                .await
                .map(drop)
        };
        if let Err(error) = authenticated {
            return error.into_response();
        }
    }
    if let Err(error) = check_query(parts.uri.query(), &rules.query) {
        return error.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// 422 naming each query parameter the operation does not take.
fn check_query(query: Option<&str>, allowed: &BTreeSet<String>) -> Result<(), ApiError> {
    let Some(query) = query.filter(|query| !query.is_empty()) else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = serde_html_form::from_str(query)
        .map_err(|_| ApiError::bad_request("The query string cannot be parsed"))?;
    let unknown: BTreeSet<&str> = pairs
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !allowed.contains(*name))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let takes = if allowed.is_empty() {
        "this operation takes no query parameters".to_owned()
    } else {
        format!(
            "this operation takes {}",
            allowed
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(ApiError::validation(
        unknown
            .into_iter()
            .map(|name| FieldError::new(name, format!("is not a query parameter ({takes})")))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn unknown_query_parameters_are_named() {
        let page = allowed(&["offset", "limit"]);
        assert!(check_query(None, &page).is_ok());
        assert!(check_query(Some("offset=1&limit=2&limit=3"), &page).is_ok());
        let error = check_query(Some("page=2&skip=1&limit=5&page_size=3"), &page).unwrap_err();
        assert_eq!(error.status, 422);
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["page", "page_size", "skip"]);
        assert!(
            error.errors[0].message.contains("offset, limit")
                || error.errors[0].message.contains("limit, offset")
        );
        let none = check_query(Some("x=1"), &allowed(&[])).unwrap_err();
        assert!(none.errors[0].message.contains("no query parameters"));
    }

    #[test]
    fn rules_come_from_the_document() {
        let document: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/api/v1/workspaces/{workspace_id}/things": {
                    "get": {
                        "parameters": [
                            {"name": "workspace_id", "in": "path", "required": true, "schema": {"type": "string"}},
                            {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer"}}
                        ],
                        "security": [{"bearer": ["things:read"]}],
                        "responses": {}
                    }
                },
                "/api/v1/admin/workspaces/{workspace_id}": {
                    "get": {"security": [{"bearer": []}], "responses": {}}
                },
                "/api/v1/auth/login": {"post": {"responses": {}}},
                "/api/v1/ws": {
                    "get": {
                        "parameters": [{"name": "token", "in": "query", "required": false, "schema": {"type": "string"}}],
                        "security": [{"bearer": []}],
                        "responses": {}
                    }
                }
            }
        }))
        .expect("document");
        let contract = Contract::new(&document);
        let things = contract
            .rules(&Method::GET, "/api/v1/workspaces/{workspace_id}/things")
            .expect("things");
        assert!(things.authenticated && things.workspace && !things.query_token);
        assert_eq!(things.query, allowed(&["limit"]));
        assert!(
            contract
                .rules(&Method::HEAD, "/api/v1/workspaces/{workspace_id}/things")
                .is_some()
        );
        let admin = contract
            .rules(&Method::GET, "/api/v1/admin/workspaces/{workspace_id}")
            .expect("admin");
        assert!(admin.authenticated && !admin.workspace);
        let login = contract
            .rules(&Method::POST, "/api/v1/auth/login")
            .expect("login");
        assert!(!login.authenticated);
        assert!(contract.rules(&Method::GET, "/api/v1/auth/login").is_none());
        let ws = contract.rules(&Method::GET, "/api/v1/ws").expect("ws");
        assert!(ws.authenticated && ws.query_token);
    }
}
