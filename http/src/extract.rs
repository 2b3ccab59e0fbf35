//! Request extractors that answer problem+json, naming the field at fault,
//! instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, FieldError};

/// A JSON request body. Not JSON at all: 415. Malformed JSON: 400. A field
/// of the wrong type, missing or unknown: 422 naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "The request body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document into `T`, with the same errors as [`Json`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("The body is not valid JSON: {inner}"))
        } else {
            let message = clean_message(&inner.to_string());
            ApiError::validation(vec![FieldError::new(field_at(&path, &message), message)])
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("The body is not valid JSON: {error}")))?;
    Ok(value)
}

/// The field an error names: its path, or, for a missing field (reported
/// at the enclosing object), that field within the path.
fn field_at(path: &str, message: &str) -> String {
    let named = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(field)) => field.to_owned(),
        (".", None) => "body".to_owned(),
        (path, Some(field)) => format!("{path}.{field}"),
        (path, None) => path.to_owned(),
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    match rejection {
        BytesRejection::FailedToBufferBody(_) => {
            ApiError::payload_too_large("The request body is over the limit")
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

/// serde's messages end with " at line 1 column 12": useless to a client
/// once the field is named.
fn clean_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Path parameters; a parameter that does not parse (a malformed UUID) is a
/// 422 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                use axum::extract::path::ErrorKind;
                Err(match error.into_kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => ApiError::field(
                        key,
                        format!("must be a valid {}", type_name(expected_type)),
                    ),
                    ErrorKind::ParseErrorAtIndex {
                        index,
                        expected_type,
                        ..
                    } => ApiError::field(
                        format!("path[{index}]"),
                        format!("must be a valid {}", type_name(expected_type)),
                    ),
                    ErrorKind::DeserializeError { key, message, .. } => {
                        let message = if message.to_ascii_lowercase().contains("uuid") {
                            "must be a valid UUID".to_owned()
                        } else {
                            message
                        };
                        ApiError::field(key, message)
                    }
                    other => ApiError::field("path", other.to_string()),
                })
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// `uuid::Uuid` for a client is "UUID".
fn type_name(rust_type: &str) -> &str {
    if rust_type.contains("Uuid") || rust_type.ends_with("Id") {
        "UUID"
    } else {
        rust_type.rsplit("::").next().unwrap_or(rust_type)
    }
}

/// Query-string parameters (repeated keys fill a `Vec`); a value that does
/// not parse is a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer = serde_html_form::Deserializer::from_bytes(query.as_bytes());
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." {
            "query".to_owned()
        } else {
            path
        };
        ApiError::field(field, clean_message(&error.into_inner().to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        labels: Vec<String>,
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        let error = parse_json::<Body>(br#"{"title": 1, "labels": []}"#).unwrap_err();
        assert_eq!(error.status, 422);
        assert_eq!(error.errors[0].field, "title");
        let nested = parse_json::<Body>(br#"{"title": "a", "labels": ["x", 2]}"#).unwrap_err();
        assert_eq!(nested.errors[0].field, "labels[1]");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let missing = parse_json::<Body>(br#"{"labels": []}"#).unwrap_err();
        assert_eq!(missing.status, 422);
        assert_eq!(missing.errors[0].field, "title");
        let unknown =
            parse_json::<Body>(br#"{"title": "a", "labels": [], "titel": "b"}"#).unwrap_err();
        assert_eq!(unknown.errors[0].field, "titel");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert_eq!(
            parse_json::<Body>(br#"{"title": "#).unwrap_err().status,
            400
        );
        assert_eq!(
            parse_json::<Body>(br#"{"title": "a", "labels": []} x"#)
                .unwrap_err()
                .status,
            400
        );
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Filters {
        limit: Option<u32>,
        #[serde(default)]
        status: Vec<String>,
    }

    #[test]
    fn query_errors_name_the_parameter_and_repeats_fill_lists() {
        let error = parse_query::<Filters>("limit=ten").unwrap_err();
        assert_eq!(error.errors[0].field, "limit");
        let filters = parse_query::<Filters>("status=todo&status=done").unwrap();
        assert_eq!(filters.status, vec!["todo", "done"]);
    }
}
