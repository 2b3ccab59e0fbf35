//! The envelope every event travels in, from the command that decided it to
//! the projector, the relay, the audit log and the WebSocket feed.

use std::borrow::Cow;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{EventId, Position, StreamId, TenantId};

/// The current time at the precision the stores keep (microseconds), so a
/// value read back from Postgres or SQLite equals the value that was written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    User {
        id: Uuid,
    },
    /// An API key acting for the user who issued it.
    ApiKey {
        id: Uuid,
        user_id: Uuid,
    },
    /// A process that reacts to the log (for example "unassign tasks of a
    /// removed member"); `name` identifies it.
    Policy {
        name: String,
    },
    /// The service itself or an operator at the CLI.
    System {
        name: String,
    },
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ApiKey { .. } => "api_key",
            Actor::Policy { .. } => "policy",
            Actor::System { .. } => "system",
        }
    }

    /// The id stored in the `actor_id` column (what audit filters match on).
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id } | Actor::ApiKey { id, .. } => Some(*id),
            Actor::Policy { .. } | Actor::System { .. } => None,
        }
    }

    /// The name stored in the `actor_name` column.
    pub fn name(&self) -> Option<&str> {
        match self {
            Actor::Policy { name } | Actor::System { name } => Some(name),
            Actor::User { .. } | Actor::ApiKey { .. } => None,
        }
    }

    /// The user on whose behalf the actor acted, if any.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id } => Some(*id),
            Actor::ApiKey { user_id, .. } => Some(*user_id),
            Actor::Policy { .. } | Actor::System { .. } => None,
        }
    }

    /// Rebuilds an actor from its stored columns.
    pub fn from_columns(
        kind: &str,
        id: Option<Uuid>,
        name: Option<String>,
        user_id: Option<Uuid>,
    ) -> Option<Actor> {
        Some(match kind {
            "user" => Actor::User { id: id? },
            "api_key" => Actor::ApiKey {
                id: id?,
                user_id: user_id?,
            },
            "policy" => Actor::Policy { name: name? },
            "system" => Actor::System { name: name? },
            _ => return None,
        })
    }
}

/// Context recorded with every event of one append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: Actor,
    pub request_id: Option<String>,
    /// The conversation an event belongs to (the first request's id flows
    /// through every reaction it causes).
    pub correlation_id: Option<Uuid>,
    /// The event or request that directly caused this one.
    pub causation_id: Option<Uuid>,
    /// The platform admin who acted as `actor` (a user) with an
    /// impersonation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_by: Option<Uuid>,
    /// The W3C trace context the events were appended in (`crate::trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl Metadata {
    pub fn new(actor: Actor) -> Self {
        Metadata {
            actor,
            request_id: None,
            correlation_id: None,
            causation_id: None,
            impersonated_by: None,
            traceparent: None,
            tracestate: None,
        }
    }
}

/// An event decided by a command, not yet in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: EventId,
    /// The wire name, `<aggregate>.<fact>` (for example `task.status_changed`).
    pub event_type: Cow<'static, str>,
    pub schema_version: i32,
    pub data: serde_json::Value,
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub event_id: EventId,
    pub tenant_id: TenantId,
    pub stream_id: StreamId,
    pub stream_type: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: serde_json::Value,
    pub metadata: Metadata,
    pub occurred_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The aggregate part of the wire name (`task` in `task.created`).
    pub fn aggregate(&self) -> &str {
        self.event_type
            .split_once('.')
            .map_or(self.event_type.as_str(), |(aggregate, _)| aggregate)
    }

    /// The fact part of the wire name (`created` in `task.created`).
    pub fn fact(&self) -> &str {
        self.event_type
            .split_once('.')
            .map_or(self.event_type.as_str(), |(_, fact)| fact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_survive_their_column_form() {
        let user = Uuid::now_v7();
        let actors = [
            Actor::User { id: user },
            Actor::ApiKey {
                id: Uuid::now_v7(),
                user_id: user,
            },
            Actor::Policy {
                name: "unassign_removed_member".into(),
            },
            Actor::System { name: "cli".into() },
        ];
        for actor in actors {
            let back = Actor::from_columns(
                actor.kind(),
                actor.id(),
                actor.name().map(str::to_owned),
                actor.user_id(),
            );
            assert_eq!(back, Some(actor));
        }
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
