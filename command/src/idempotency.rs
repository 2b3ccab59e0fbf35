//! `Idempotency-Key` on POST commands: a retried request gets the first
//! response, never a second effect.
//!
//! The [`layer`] runs in front of every command route. For a POST that
//! carries a key and a bearer token it reads the body, takes a digest of
//! method, path and body (the fingerprint), and looks the key up under the
//! caller's principal:
//!
//! - a stored response with the same fingerprint is replayed (status,
//!   the body byte for byte, `ETag`, `Location`, and the original
//!   `X-Consistency-Token`), marked `Idempotent-Replayed: true`;
//! - a stored response with another fingerprint is 422: a key names one
//!   request;
//! - otherwise the handler runs, and the response it renders from the
//!   state its command commits is stored in the same transaction as the
//!   command's events (the pipeline's `Replying::idempotent`), so
//!   the record can never disagree with the log.
//!
//! Two identical requests in flight at once on one instance take turns on
//! the key: the second waits for the first and replays its response. On
//! two instances both may decide, but only one append can store the key:
//! the other fails atomically (its events are not written) with a
//! conflict, which the layer turns into a replay of the winner's response.
//! A duplicate is therefore never applied twice, whichever finishes first.
//!
//! Only successful commands are stored: a refused command wrote nothing,
//! so retrying it runs it again. Keys live 24 hours. Routes that hand out
//! secrets (login, refresh, the secret of a new API key) never store
//! those: login and refresh ignore the key, and a replayed API key
//! creation answers without the secret.

use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tenet_events::store::{EventStore, StoredResponse};
use tenet_http::ApiError;
use tenet_http::auth::{Auth, Principal, bearer};

use crate::reply::StoredReply;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Longest key accepted.
pub const KEY_MAX: usize = 255;

/// How long a stored response is replayed.
pub const TTL: chrono::Duration = chrono::Duration::hours(24);

/// Bodies this large or larger are not buffered for a fingerprint (the
/// body limit refuses them anyway).
const BODY_MAX: usize = 1024 * 1024;

/// A POST's key, whose response the command stores with its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is (see `Principal::idempotency_scope`).
    pub scope: String,
    pub key: String,
    /// A digest of method, path and body.
    pub fingerprint: String,
}

/// The key of this request, if it sent one (set by [`layer`]).
#[derive(Clone, Debug, Default)]
pub struct Idempotency(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Idempotency(
            parts.extensions.get::<IdempotencyKey>().cloned(),
        ))
    }
}

/// What the [`layer`] works with: the stored responses, the callers'
/// credentials (a key belongs to a principal), the keys in flight here.
#[derive(Clone)]
pub struct Replays {
    pub store: Arc<dyn EventStore>,
    pub auth: Auth,
    pub in_flight: Arc<KeysInFlight>,
}

impl FromRef<Replays> for Auth {
    fn from_ref(replays: &Replays) -> Auth {
        replays.auth.clone()
    }
}

/// The middleware of command routes; see the module documentation.
pub async fn layer(State(state): State<Replays>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    if !request.headers().contains_key(&IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    // Keys belong to a principal; anonymous routes (register, login,
    // refresh) have none, and run as if no key were sent. Who is asking
    // is answered before the key is looked at.
    if bearer(&parts).is_none() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let principal = match Principal::from_request_parts(&mut parts, &state).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let key = match parts.headers.get(&IDEMPOTENCY_KEY).map(parse_key) {
        Some(Ok(key)) => key,
        Some(Err(error)) => return error.into_response(),
        None => return next.run(Request::from_parts(parts, body)).await,
    };
    let bytes = match axum::body::to_bytes(body, BODY_MAX).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::payload_too_large("The request body is over the limit")
                .into_response();
        }
    };
    let key = IdempotencyKey {
        scope: principal.idempotency_scope(),
        key,
        fingerprint: fingerprint(&parts, &bytes),
    };
    match lookup(&state, &key).await {
        Ok(Some(response)) => return response,
        Ok(None) => {}
        Err(error) => return error.into_response(),
    }
    let turn = state.in_flight.turn(&key).await;
    // The request this one waited for may have stored the answer.
    match lookup(&state, &key).await {
        Ok(Some(response)) => return response,
        Ok(None) => {}
        Err(error) => return error.into_response(),
    }
    parts.extensions.insert(key.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    // A conflict may be the loser of two identical requests in flight at
    // once: if the winner stored its response meanwhile, that is the answer.
    if response.status() == StatusCode::CONFLICT
        && let Ok(Some(replayed)) = lookup(&state, &key).await
    {
        return replayed;
    }
    drop(turn);
    response
}

/// Keys of requests running in this process: a duplicate waits for the
/// request it duplicates instead of racing it.
#[derive(Default)]
pub struct KeysInFlight {
    /// Held only to find or drop a key's lock, never across an await.
    keys: Mutex<HashMap<KeyId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A key and whose it is.
type KeyId = (String, String);

/// A request's turn on its key; the key is forgotten when nobody waits.
pub struct Turn<'a> {
    keys: &'a KeysInFlight,
    id: KeyId,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeysInFlight {
    pub async fn turn(&self, key: &IdempotencyKey) -> Turn<'_> {
        let id = (key.scope.clone(), key.key.clone());
        let lock = self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(id.clone())
            .or_default()
            .clone();
        Turn {
            keys: self,
            id,
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut keys = self
            .keys
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys
            .get(&self.id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            keys.remove(&self.id);
        }
    }
}

fn parse_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let invalid = |message: String| ApiError::field("Idempotency-Key", message);
    let text = raw
        .to_str()
        .map_err(|_| invalid("must be printable ASCII".to_owned()))?;
    if text.is_empty() || text.len() > KEY_MAX {
        return Err(invalid(format!("must be 1 to {KEY_MAX} characters")));
    }
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(invalid("must be printable ASCII".to_owned()));
    }
    Ok(text.to_owned())
}

/// What a key stands for: the method, the path with its query, the body.
fn fingerprint(parts: &Parts, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(parts.method.as_str().as_bytes());
    digest.update(b" ");
    digest.update(
        parts
            .uri
            .path_and_query()
            .map_or("", |path| path.as_str())
            .as_bytes(),
    );
    digest.update(b"\n");
    digest.update(body);
    digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The stored response for `key`: replayed, or 422 when the key was used
/// for another request.
async fn lookup(state: &Replays, key: &IdempotencyKey) -> Result<Option<Response>, ApiError> {
    let Some(stored) = state.store.find_response(&key.scope, &key.key).await? else {
        return Ok(None);
    };
    if stored.fingerprint != key.fingerprint {
        return Err(ApiError::field(
            "Idempotency-Key",
            "was already used for a different request",
        ));
    }
    replay(&stored).map(Some)
}

/// The stored response, marked as a replay. A record that does not decode
/// answers 500 rather than run the request a second time.
fn replay(stored: &StoredResponse) -> Result<Response, ApiError> {
    let reply = StoredReply::from_value(&stored.response).map_err(ApiError::internal)?;
    let mut replayed = reply.into_response(stored.position);
    replayed
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Reply;
    use axum::http::header;
    use serde_json::json;
    use tenet_events::ids::Position;
    use tenet_http::headers::CONSISTENCY_TOKEN;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert_eq!(
            parse_key(&HeaderValue::from_static("order-42")).unwrap(),
            "order-42"
        );
        for bad in ["", "tab\there"] {
            assert!(
                parse_key(&HeaderValue::from_str(bad).unwrap()).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_err());
        assert!(parse_key(&HeaderValue::from_str(&"k".repeat(255)).unwrap()).is_ok());
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let parts = |method: &str, uri: &str| {
            let (parts, ()) = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        let base = fingerprint(&parts("POST", "/a"), b"{}");
        assert_eq!(base, fingerprint(&parts("POST", "/a"), b"{}"));
        assert_ne!(base, fingerprint(&parts("POST", "/b"), b"{}"));
        assert_ne!(base, fingerprint(&parts("PUT", "/a"), b"{}"));
        assert_ne!(base, fingerprint(&parts("POST", "/a"), b"{ }"));
    }

    #[test]
    fn a_stored_response_replays_status_body_headers_and_token() {
        let reply = Reply::created(json!({ "id": 1 }), Some(3), "/things/1".to_owned());
        let stored = StoredResponse {
            fingerprint: String::new(),
            response: reply.stored().to_value(),
            position: Position(42),
        };
        let response = replay(&stored).unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let headers = response.headers();
        assert_eq!(headers[header::ETAG], "\"3\"");
        assert_eq!(headers[header::LOCATION], "/things/1");
        assert_eq!(headers[CONSISTENCY_TOKEN], "42");
        assert_eq!(headers[REPLAYED], "true");
    }

    /// Keys in an order no sorted map keeps.
    #[derive(serde::Serialize)]
    struct Body {
        zulu: i64,
        alpha: &'static str,
        mike: Vec<i64>,
    }

    #[tokio::test]
    async fn a_replay_is_the_first_response_byte_for_byte() {
        let reply = || {
            Reply::created(
                Body {
                    zulu: 1,
                    alpha: "é \"quoted\"",
                    mike: vec![3, 2],
                },
                Some(3),
                "/things/1".to_owned(),
            )
        };
        let first = reply().written(Position(42)).into_response();
        let content_type = first.headers()[header::CONTENT_TYPE].clone();
        let first = axum::body::to_bytes(first.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(first.starts_with(b"{\"zulu\""), "declaration order");
        // The record as the store's JSON column gives it back: its keys in
        // another order.
        let response = serde_json::from_str(&reply().stored().to_value().to_string()).unwrap();
        let stored = StoredResponse {
            fingerprint: String::new(),
            response,
            position: Position(42),
        };
        let replayed = replay(&stored).unwrap();
        assert_eq!(replayed.headers()[header::CONTENT_TYPE], content_type);
        let replayed = axum::body::to_bytes(replayed.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(replayed, first);
    }
}
