//! Identifier newtypes. Each is parsed once at the edge (path, body, row) and
//! carried typed from then on, so a task id can never be passed where a
//! project id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, sqlx::Type,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUID v7) id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// The tenant that owns an event, a stream or a read-model row. A
    /// workspace is a tenant; platform-wide streams (users, sessions) live
    /// under [`TenantId::PLATFORM`].
    TenantId
);
uuid_id!(
    /// One event, unique across the whole log (also the JetStream `Nats-Msg-Id`).
    EventId
);
uuid_id!(
    /// One stream of events: the history of one aggregate instance.
    StreamId
);
uuid_id!(UserId);
uuid_id!(WorkspaceId);
uuid_id!(ProjectId);
uuid_id!(TaskId);
uuid_id!(CommentId);
uuid_id!(ApiKeyId);
uuid_id!(AutomationId);
uuid_id!(
    /// One run of an automation; derived from the automation and the
    /// event that triggered it, so a run is recorded once.
    ExecutionId
);
uuid_id!(
    /// A refresh-token family: one login and every rotation that follows it.
    SessionId
);
uuid_id!(
    /// A platform admin acting as a user, for a short while.
    ImpersonationId
);
uuid_id!(
    /// A feature flag's stream, named after its key (see the command side).
    FeatureFlagId
);

impl TenantId {
    /// The tenant of platform-wide streams: users, sessions, platform admins.
    /// No workspace has the nil id, so nothing can collide with it.
    pub const PLATFORM: TenantId = TenantId(Uuid::nil());

    pub fn is_platform(&self) -> bool {
        *self == Self::PLATFORM
    }
}

impl From<WorkspaceId> for TenantId {
    fn from(id: WorkspaceId) -> Self {
        TenantId(id.0)
    }
}

impl From<TenantId> for WorkspaceId {
    fn from(id: TenantId) -> Self {
        WorkspaceId(id.0)
    }
}

/// Every aggregate id is also the id of its stream.
macro_rules! stream_of {
    ($($id:ident),*) => {$(
        impl From<$id> for StreamId {
            fn from(id: $id) -> Self {
                StreamId(id.0)
            }
        }
    )*};
}
stream_of!(
    UserId,
    WorkspaceId,
    ProjectId,
    TaskId,
    CommentId,
    ApiKeyId,
    SessionId,
    AutomationId,
    ExecutionId,
    ImpersonationId,
    FeatureFlagId
);

/// A place in the global log. Positions are dense (1, 2, 3, ...) and handed
/// out in commit order, so "everything up to N" is a complete prefix.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    sqlx::Type,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Position(pub i64);

impl Position {
    pub const START: Position = Position(0);

    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = TaskId::generate();
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }

    #[test]
    fn generated_ids_are_time_ordered() {
        let first = EventId::generate();
        let second = EventId::generate();
        assert!(first < second);
    }

    #[test]
    fn the_platform_tenant_is_never_a_workspace() {
        assert!(TenantId::PLATFORM.is_platform());
        assert!(!TenantId::from(WorkspaceId::generate()).is_platform());
    }
}
