//! The shape of a command's response, in one home for the handlers that
//! answer it and the idempotency layer that stores and replays it: the
//! [`Reply`] a handler renders from the state its command commits, and the
//! [`Written`] response it becomes once the command has a position
//! (status, body, `ETag`, `X-Consistency-Token`, `Location`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
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

    pub(crate) fn stored(&self) -> Value {
        json!({
            "status": self.status.as_u16(),
            "body": serde_json::to_value(&self.body).unwrap_or(Value::Null),
            "version": self.version,
            "location": self.location,
        })
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
