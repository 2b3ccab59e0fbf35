//! PATCH bodies are JSON merge patches (RFC 7396): a field left out is
//! unchanged, a field with a value is set, and `null` clears a field that
//! may be empty. A field that may not be empty refuses `null` (422 naming
//! it) instead of ignoring it.
//!
//! Each PATCH body declares its fields with the two types here, each with
//! `#[serde(default)]` so that a missing field is [`Change::Unchanged`] /
//! [`Patch::Unchanged`]:
//!
//! ```text
//! #[derive(Deserialize, ToSchema)]
//! #[serde(deny_unknown_fields)]
//! struct UpdateTask {
//!     #[serde(default)]
//!     #[schema(value_type = String, required = false)]
//!     title: Change<String>,              // required: null is 422
//!     #[serde(default)]
//!     #[schema(value_type = Option<String>, required = false)]
//!     description: Patch<String>,         // clearable: null clears it
//! }
//! ```
//!
//! In the OpenAPI document a `Change` field is optional and not nullable,
//! a `Patch` field optional and nullable; PATCH operations accept
//! `application/merge-patch+json` as well as `application/json`.

use serde::de::{Deserialize, Deserializer, Error};

/// What a `null` for a required field answers (the field is named beside
/// it by the body extractor).
pub const NOT_NULL: &str = "may not be null (leave the field out to keep it unchanged)";

/// A field of a merge patch that cannot be cleared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Change<T> {
    /// Left out: unchanged.
    #[default]
    Unchanged,
    /// A new value.
    To(T),
}

impl<T> Change<T> {
    /// The new value, if the patch has one.
    pub fn into_option(self) -> Option<T> {
        match self {
            Change::Unchanged => None,
            Change::To(value) => Some(value),
        }
    }

    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Change::Unchanged => None,
            Change::To(value) => Some(value),
        }
    }

    pub fn is_unchanged(&self) -> bool {
        matches!(self, Change::Unchanged)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Change<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<T>::deserialize(deserializer)? {
            Some(value) => Ok(Change::To(value)),
            None => Err(D::Error::custom(NOT_NULL)),
        }
    }
}

/// A field of a merge patch that may be cleared with `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Left out: unchanged.
    #[default]
    Unchanged,
    /// `null`: cleared.
    Clear,
    /// A new value.
    To(T),
}

impl<T> Patch<T> {
    /// `None` when unchanged, `Some(None)` when cleared, `Some(Some(v))`
    /// when set: the shape commands take.
    pub fn into_option(self) -> Option<Option<T>> {
        match self {
            Patch::Unchanged => None,
            Patch::Clear => Some(None),
            Patch::To(value) => Some(Some(value)),
        }
    }

    pub fn as_ref(&self) -> Patch<&T> {
        match self {
            Patch::Unchanged => Patch::Unchanged,
            Patch::Clear => Patch::Clear,
            Patch::To(value) => Patch::To(value),
        }
    }

    /// The patch with its value mapped (a validated or parsed one).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Unchanged => Patch::Unchanged,
            Patch::Clear => Patch::Clear,
            Patch::To(value) => Patch::To(f(value)),
        }
    }

    pub fn is_unchanged(&self) -> bool {
        matches!(self, Patch::Unchanged)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Patch::To(value),
            None => Patch::Clear,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        title: Change<String>,
        #[serde(default)]
        note: Patch<String>,
    }

    fn parse(json: &str) -> Result<Body, crate::ApiError> {
        crate::extract::parse_json(json.as_bytes())
    }

    #[test]
    fn absent_fields_are_unchanged() {
        let body = parse("{}").unwrap();
        assert!(body.title.is_unchanged() && body.note.is_unchanged());
    }

    #[test]
    fn values_are_set_and_null_clears_a_clearable_field() {
        let body = parse(r#"{"title": "t", "note": null}"#).unwrap();
        assert_eq!(body.title, Change::To("t".to_owned()));
        assert_eq!(body.note.into_option(), Some(None));
        let body = parse(r#"{"note": "n"}"#).unwrap();
        assert_eq!(body.note, Patch::To("n".to_owned()));
    }

    #[test]
    fn null_for_a_required_field_is_refused_naming_it() {
        let error = parse(r#"{"title": null}"#).unwrap_err();
        assert_eq!(error.status.as_u16(), 422);
        assert_eq!(error.errors[0].field, "title");
        assert_eq!(error.errors[0].message, NOT_NULL);
    }
}
