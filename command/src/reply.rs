//! The shape of a command's response, in one home for the handlers that
//! answer it and the idempotency layer that stores and replays it: the
//! [`Reply`] a handler renders from the state its command commits, and the
//! [`Written`] response it becomes once the command has a position
//! (status, body, `ETag`, `X-Consistency-Token`, `Location`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenet_events::ids::Position;
use tenet_http::headers::{CONSISTENCY_TOKEN, consistency_token, etag};
use utoipa::ToSchema;

/// A command's response before its position is known: what is stored
/// under an idempotency key and what the handler answers.
pub struct Reply<T> {
    pub status: StatusCode,
    pub body: T,
    /// The resource's version after the command (`ETag`).
    pub version: Option<i64>,
    pub location: Option<String>,
}

impl<T: Serialize> Reply<T> {
    pub fn ok(body: T, version: Option<i64>) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
            version,
            location: None,
        }
    }

    pub fn created(body: T, version: Option<i64>, location: String) -> Self {
        Reply {
            status: StatusCode::CREATED,
            body,
            version,
            location: Some(location),
        }
    }

    /// The response, once the command has a position.
    pub fn written(self, position: Position) -> Written<T> {
        Written {
            status: self.status,
            body: self.body,
            version: self.version,
            position,
            location: self.location,
        }
    }

    /// The reply as stored under an idempotency key: the body as the bytes
    /// a client is sent.
    pub fn stored(&self) -> StoredReply {
        StoredReply {
            status: self.status.as_u16(),
            // A body that cannot be serialised fails the first response
            // too (500); the stored one must still be a record.
            body: StoredBody::Exact(
                serde_json::to_string(&self.body).unwrap_or_else(|_| "null".to_owned()),
            ),
            version: self.version,
            location: self.location.clone(),
        }
    }
}

/// A reply as the store keeps it, with the command's events, to replay
/// to a retry of the same request.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredReply {
    pub status: u16,
    #[serde(flatten)]
    pub body: StoredBody,
    /// The `ETag`.
    pub version: Option<i64>,
    pub location: Option<String>,
}

/// A stored reply's body.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum StoredBody {
    /// The body exactly as first sent. A string, not a JSON value: the
    /// store's JSON column keeps neither the key order nor the spacing of
    /// a value, and a replay must be the first answer byte for byte.
    #[serde(rename = "body_text")]
    Exact(String),
    /// A body stored as a JSON value, as versions before the exact body
    /// stored it (records live 24 hours): replayed re-serialised, as they
    /// were then.
    #[serde(rename = "body")]
    Value(Value),
}

impl StoredReply {
    /// The record for the store.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A record as the store gave it back.
    pub fn from_value(value: &Value) -> Result<StoredReply, serde_json::Error> {
        StoredReply::deserialize(value)
    }

    /// The response again, with the position its command reached.
    pub fn into_response(self, position: Position) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = match self.body {
            StoredBody::Exact(text) => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                text,
            )
                .into_response(),
            StoredBody::Value(value) => (status, Json(value)).into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(CONSISTENCY_TOKEN, consistency_token(position));
        if let Some(version) = self.version {
            headers.insert(header::ETAG, etag(version));
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

/// A command's response.
pub struct Written<T> {
    pub status: StatusCode,
    pub body: T,
    /// The resource's version after the command (`ETag`).
    pub version: Option<i64>,
    /// The position to wait for to read this write (`X-Consistency-Token`).
    pub position: Position,
    pub location: Option<String>,
}

impl<T: Serialize> IntoResponse for Written<T> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(CONSISTENCY_TOKEN, consistency_token(self.position));
        if let Some(version) = self.version {
            headers.insert(header::ETAG, etag(version));
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

/// The body of a successful DELETE.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Always `true`.
    pub ok: bool,
}

impl Deleted {
    pub fn ok() -> Self {
        Deleted { ok: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn bytes(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn a_record_stored_before_the_exact_body_replays_as_it_did() {
        let record = json!({
            "status": 201,
            "body": { "id": 1, "name": "web" },
            "version": 3,
            "location": "/things/1",
        });
        let stored = StoredReply::from_value(&record).unwrap();
        assert_eq!(
            stored.body,
            StoredBody::Value(json!({ "id": 1, "name": "web" }))
        );
        let response = stored.into_response(Position(42));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::ETAG], "\"3\"");
        assert_eq!(response.headers()[header::LOCATION], "/things/1");
        assert_eq!(response.headers()[CONSISTENCY_TOKEN], "42");
        assert_eq!(bytes(response).await, br#"{"id":1,"name":"web"}"#);
    }

    #[test]
    fn a_stored_reply_is_a_typed_record() {
        let stored = Reply::ok(json!({ "ok": true }), None).stored();
        assert_eq!(
            stored.to_value(),
            json!({ "status": 200, "body_text": "{\"ok\":true}", "version": null, "location": null })
        );
    }
}
