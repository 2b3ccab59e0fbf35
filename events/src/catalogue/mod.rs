//! The event catalogue: every fact Tenet records, with its wire name and
//! schema version.
//!
//! Wire names (`project.created`) and payload shapes are a contract with the
//! log: events are never rewritten, so an old shape stays readable forever.
//! A payload that changes shape gets a new schema version, and decoding
//! upcasts older versions to the current one (see `decode` in each module).
//! Events carry every derived value a projector needs, so projectors hold no
//! business logic.

pub mod api_key;
pub mod automation;
pub mod comment;
pub mod feature_flag;
pub mod impersonation;
pub mod project;
pub mod session;
pub mod task;
pub mod template;
pub mod user;
pub mod webhook;
pub mod workspace;

use crate::envelope::{NewEvent, RecordedEvent};
use crate::ids::EventId;

/// `Option<Option<T>>` in payloads: absent (unchanged) vs `null` (cleared)
/// vs a value.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Payload fields that hold secrets (password hashes, key and refresh-token
/// digests, webhook signing secrets even sealed), by event type: the log
/// keeps them (the access model is folded from it), the audit log never
/// shows them.
pub const SECRET_FIELDS: &[(&str, &[&str])] = &[
    ("user.registered", &["password_hash"]),
    ("user.password_changed", &["password_hash"]),
    ("session.started", &["refresh_hash"]),
    ("session.refreshed", &["refresh_hash"]),
    ("api_key.issued", &["key_hash"]),
    ("webhook.created", &["sealed_secret"]),
    (
        "webhook.secret_rotated",
        &["sealed_secret", "sealed_previous"],
    ),
];

/// What may be shown of an event's payload: its secret fields replaced by
/// `"[redacted]"`.
pub fn redacted(event_type: &str, data: &serde_json::Value) -> serde_json::Value {
    let mut shown = data.clone();
    let secrets = SECRET_FIELDS
        .iter()
        .find(|(kind, _)| *kind == event_type)
        .map_or(&[][..], |(_, fields)| *fields);
    if let Some(object) = shown.as_object_mut() {
        for field in secrets {
            if let Some(value) = object.get_mut(*field) {
                *value = serde_json::Value::String("[redacted]".to_owned());
            }
        }
    }
    shown
}

/// A family of events (one aggregate's), encodable to and decodable from the
/// log.
pub trait DomainEvent: Sized + Clone + Send + Sync + 'static {
    /// The wire name of this event.
    fn event_type(&self) -> &'static str;
    /// The schema version this build writes.
    fn schema_version(&self) -> i32;
    fn to_data(&self) -> serde_json::Value;
    /// Decodes a stored event, upcasting older schema versions.
    fn decode(
        event_type: &str,
        schema_version: i32,
        data: &serde_json::Value,
    ) -> Result<Self, DecodeError>;

    fn to_new_event(&self) -> NewEvent {
        NewEvent {
            event_id: EventId::generate(),
            event_type: self.event_type().into(),
            schema_version: self.schema_version(),
            data: self.to_data(),
        }
    }

    fn from_recorded(event: &RecordedEvent) -> Result<Self, DecodeError> {
        Self::decode(&event.event_type, event.schema_version, &event.data)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: i32 },
    #[error("{event_type} payload does not decode: {source}")]
    Payload {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Defines an event family: an enum with one variant per fact, each holding
/// its payload struct, with its wire name and current schema version.
/// Upcasters for older versions are passed as `upcast` functions taking the
/// old payload and its version.
#[macro_export]
macro_rules! event_family {
    (
        $(#[$meta:meta])*
        pub enum $family:ident {
            $( $variant:ident($payload:ty) = $wire:literal v $version:literal $(, upcast $upcast:path)? ; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub enum $family {
            $( $variant($payload), )*
        }

        impl $family {
            /// Every wire name of this family.
            pub const TYPES: &'static [&'static str] = &[$($wire),*];
        }

        impl $crate::catalogue::DomainEvent for $family {
            fn event_type(&self) -> &'static str {
                match self {
                    $( $family::$variant(_) => $wire, )*
                }
            }

            fn schema_version(&self) -> i32 {
                match self {
                    $( $family::$variant(_) => $version, )*
                }
            }

            fn to_data(&self) -> serde_json::Value {
                // Serialising plain structs to a JSON value cannot fail.
                match self {
                    $( $family::$variant(payload) => serde_json::to_value(payload).unwrap_or_default(), )*
                }
            }

            fn decode(
                event_type: &str,
                schema_version: i32,
                data: &serde_json::Value,
            ) -> Result<Self, $crate::catalogue::DecodeError> {
                match event_type {
                    $(
                        $wire => {
                            #[allow(unused_mut)]
                            let mut data = std::borrow::Cow::Borrowed(data);
                            if schema_version != $version {
                                $(
                                    if schema_version < $version {
                                        data = std::borrow::Cow::Owned($upcast(data.into_owned(), schema_version)?);
                                    } else
                                )?
                                {
                                    return Err($crate::catalogue::DecodeError::UnknownVersion {
                                        event_type: event_type.to_owned(),
                                        version: schema_version,
                                    });
                                }
                            }
                            serde_json::from_value::<$payload>(data.into_owned())
                                .map($family::$variant)
                                .map_err(|source| $crate::catalogue::DecodeError::Payload {
                                    event_type: event_type.to_owned(),
                                    source,
                                })
                        }
                    )*
                    other => Err($crate::catalogue::DecodeError::UnknownType(other.to_owned())),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_are_redacted_and_the_rest_kept() {
        let data = serde_json::json!({ "email": "a@b.c", "password_hash": "$argon2id$..." });
        assert_eq!(
            redacted("user.registered", &data),
            serde_json::json!({ "email": "a@b.c", "password_hash": "[redacted]" })
        );
        assert_eq!(redacted("user.platform_admin_granted", &data), data);
    }
}
