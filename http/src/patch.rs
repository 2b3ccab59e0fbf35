//! PATCH bodies are JSON merge patches (RFC 7396): a field left out is
//! unchanged, a field with a value is set, and `null` clears a field that
//! may be empty. A field that may not be empty refuses `null` (422 naming
//! it) instead of ignoring it.
//!
//! Every PATCH body declares each field with one of the deserializers
//! here, so the rule is written once:
//!
//! ```text
//! #[derive(Deserialize, ToSchema)]
//! #[serde(deny_unknown_fields)]
//! struct UpdateTask {
//!     #[serde(default, deserialize_with = "patch::required")]
//!     #[schema(nullable = false)]
//!     title: Option<String>,            // None: unchanged; null: 422
//!     #[serde(default, deserialize_with = "patch::clearable")]
//!     #[schema(value_type = Option<String>)]
//!     due_date: Option<Option<NaiveDate>>,  // Some(None): cleared
//!     #[serde(default, deserialize_with = "patch::emptied")]
//!     description: Option<String>,      // null: Some(""), emptied
//! }
//! ```
//!
//! In the OpenAPI document a required field is optional and not
//! nullable, a clearable one optional and nullable; PATCH operations
//! accept `application/merge-patch+json` as well as `application/json`
//! (the body extractor takes any `application/*+json`).

use serde::de::{Deserialize, Deserializer, Error};

/// What a `null` for a required field answers (the body extractor names
/// the field beside it).
pub const NOT_NULL: &str = "may not be null (leave the field out to keep it unchanged)";

/// A field that cannot be cleared: `Some(value)`, and `null` refused
/// (left out, `#[serde(default)]` makes it `None`: unchanged).
pub fn required<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(D::Error::custom(NOT_NULL)),
    }
}

/// A field every PATCH of its resource must carry (a member's role): its
/// value, and `null` refused like a missing field.
pub fn present<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)?.ok_or_else(|| D::Error::custom("may not be null"))
}

/// A field that `null` clears: `Some(None)` for `null`, `Some(Some(v))`
/// for a value (left out: `None`, unchanged).
pub fn clearable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field whose empty value is its cleared one (a description, a list of
/// labels): `null` is the same as `""` or `[]`.
pub fn emptied<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default, deserialize_with = "required")]
        title: Option<String>,
        #[serde(default, deserialize_with = "clearable")]
        due: Option<Option<u32>>,
        #[serde(default, deserialize_with = "emptied")]
        note: Option<String>,
    }

    fn parse(json: &str) -> Result<Body, crate::ApiError> {
        crate::extract::parse_json(json.as_bytes())
    }

    #[test]
    fn absent_fields_are_unchanged() {
        let body = parse("{}").unwrap();
        assert!(body.title.is_none() && body.due.is_none() && body.note.is_none());
    }

    #[test]
    fn values_are_set_and_null_clears_a_clearable_field() {
        let body = parse(r#"{"title": "t", "due": null, "note": null}"#).unwrap();
        assert_eq!(body.title.as_deref(), Some("t"));
        assert_eq!(body.due, Some(None));
        assert_eq!(body.note.as_deref(), Some(""));
        let body = parse(r#"{"due": 3, "note": "n"}"#).unwrap();
        assert_eq!(body.due, Some(Some(3)));
        assert_eq!(body.note.as_deref(), Some("n"));
    }

    #[test]
    fn null_for_a_required_field_is_refused_naming_it() {
        let error = parse(r#"{"title": null}"#).unwrap_err();
        assert_eq!(error.status.as_u16(), 422);
        assert_eq!(error.errors[0].field, "title");
        assert_eq!(error.errors[0].message, NOT_NULL);
    }
}
