//! Request extractors that answer problem+json, naming the field at fault,
//! instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

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
/// not parse is a 422 naming the parameter, in the words of the document
/// (`T`'s parameters: "must be a UUID", "must be a whole number from 0"),
/// never a Rust parser's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned + IntoParams,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

pub fn parse_query<T: DeserializeOwned + IntoParams>(query: &str) -> Result<T, ApiError> {
    // `?limit=` would read as absent; the document says a number (a UUID, a
    // date...), so an empty one is refused like any other that is not.
    if let Ok(pairs) = serde_html_form::from_str::<Vec<(String, String)>>(query) {
        for (name, _) in pairs.iter().filter(|(_, value)| value.is_empty()) {
            let message = T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
                .into_iter()
                .find(|parameter| parameter.name == *name)
                .and_then(|parameter| serde_json::to_value(parameter.schema).ok())
                .and_then(|schema| expected(&schema, Some("")));
            if let Some(message) = message {
                return Err(ApiError::field(name.clone(), message));
            }
        }
    }
    let deserializer = serde_html_form::Deserializer::from_bytes(query.as_bytes());
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        // A list parameter's path is `name[index]`.
        let name = path.split('[').next().unwrap_or(&path).to_owned();
        if path == "." {
            return ApiError::field("query", clean_message(&error.into_inner().to_string()));
        }
        let documented = T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
            .into_iter()
            .find(|parameter| parameter.name == name)
            .and_then(|parameter| serde_json::to_value(parameter.schema).ok());
        let message = documented
            .as_ref()
            .and_then(|schema| expected(schema, raw_value(query, &name).as_deref()))
            .unwrap_or_else(|| clean_message(&error.into_inner().to_string()));
        ApiError::field(name, message)
    })
}

/// The first value a query string gives `name`.
fn raw_value(query: &str, name: &str) -> Option<String> {
    serde_html_form::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// What a parameter's schema says a value must be, as a field message.
fn expected(schema: &serde_json::Value, raw: Option<&str>) -> Option<String> {
    let schema = match schema.get("items") {
        Some(items) if items.is_object() => items,
        _ => schema,
    };
    let is = |kind: &str| match &schema["type"] {
        serde_json::Value::String(name) => name == kind,
        serde_json::Value::Array(names) => names.iter().any(|name| name == kind),
        _ => false,
    };
    if let Some(values) = schema["enum"].as_array() {
        let names: Vec<&str> = values.iter().filter_map(|value| value.as_str()).collect();
        return Some(format!("must be one of {}", names.join(", ")));
    }
    match schema["format"].as_str() {
        Some("uuid") => return Some("must be a UUID".to_owned()),
        Some("date-time") => {
            return Some("must be an RFC 3339 date-time, e.g. 2026-01-31T09:00:00Z".to_owned());
        }
        Some("date") => return Some("must be a date, YYYY-MM-DD".to_owned()),
        _ => {}
    }
    if is("integer") {
        let min = schema["minimum"].as_i64();
        let max = schema["maximum"].as_i64();
        let bounds = match (min, max) {
            (Some(min), Some(max)) => Some(format!("from {min} to {max}")),
            (Some(min), None) => Some(format!("{min} or more")),
            (None, Some(max)) => Some(format!("at most {max}")),
            (None, None) => None,
        };
        let whole = raw.is_some_and(|raw| raw.parse::<i128>().is_ok());
        return Some(match (whole, bounds) {
            (true, Some(bounds)) => format!("must be {bounds}"),
            (true, None) => "is out of range".to_owned(),
            (false, Some(bounds)) => format!("must be a whole number, {bounds}"),
            (false, None) => "must be a whole number".to_owned(),
        });
    }
    if is("boolean") {
        return Some("must be true or false".to_owned());
    }
    None
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

    #[derive(Debug, Deserialize, IntoParams)]
    #[allow(dead_code)]
    struct Filters {
        limit: Option<u32>,
        offset: Option<u64>,
        stream_id: Option<uuid::Uuid>,
        from: Option<chrono::DateTime<chrono::Utc>>,
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

    #[test]
    fn query_errors_say_what_the_document_says_not_rust() {
        let message = |query: &str| {
            let error = parse_query::<Filters>(query).unwrap_err();
            (
                error.errors[0].field.clone(),
                error.errors[0].message.clone(),
            )
        };
        assert_eq!(
            message("offset=-1"),
            ("offset".into(), "must be 0 or more".into())
        );
        assert_eq!(
            message("offset=ten"),
            ("offset".into(), "must be a whole number, 0 or more".into())
        );
        assert_eq!(
            message("stream_id=nope"),
            ("stream_id".into(), "must be a UUID".into())
        );
        let (field, text) = message("from=yesterday");
        assert_eq!(field, "from");
        assert!(text.starts_with("must be an RFC 3339 date-time"), "{text}");
    }

    #[test]
    fn an_empty_number_or_uuid_is_refused_an_empty_string_is_not() {
        let error = parse_query::<Filters>("offset=&limit=4").unwrap_err();
        assert_eq!(error.errors[0].field, "offset");
        let error = parse_query::<Filters>("stream_id=").unwrap_err();
        assert_eq!(error.errors[0].message, "must be a UUID");
        let filters = parse_query::<Filters>("status=&limit=4").unwrap();
        assert_eq!(filters.limit, Some(4));
    }
}
