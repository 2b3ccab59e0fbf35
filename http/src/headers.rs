//! Conditional requests and read-your-writes: `ETag`/`If-Match` carry a
//! resource's stream version; `X-Consistency-Token` carries a log position.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};

use super::problem::ApiError;
use tenet_events::ids::Position;

pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("x-consistency-token");

/// The `ETag` of a resource at `version`.
pub fn etag(version: i64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

pub fn consistency_token(position: Position) -> HeaderValue {
    HeaderValue::from(position.0)
}

/// The version a write is conditioned on (`If-Match: "7"`), if any.
/// `If-Match: *` asks only that the resource exist, which every write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        // A value that is no version of ours can match nothing: 412, as
        // for a stale one.
        text.trim_start_matches("W/")
            .trim_matches('"')
            .parse::<i64>()
            .map(|version| IfMatch(Some(version)))
            .map_err(|_| {
                ApiError::precondition_failed(format!(
                    "If-Match {text:?} matches no version of this resource"
                ))
            })
    }
}

/// The consistency token a read waits for, if the client sent one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsistencyToken(pub Option<Position>);

impl<S: Send + Sync> FromRequestParts<S> for ConsistencyToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(&CONSISTENCY_TOKEN) else {
            return Ok(ConsistencyToken(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|position| *position >= 0)
            .map(|position| ConsistencyToken(Some(Position(position))))
            .ok_or_else(|| {
                ApiError::bad_request("X-Consistency-Token must be a token returned by a command")
                    .with_field("X-Consistency-Token", "not a consistency token")
            })
    }
}
