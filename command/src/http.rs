//! What every command route shares: the state, the metadata recorded with
//! each event, and the mapping of failures to problem+json.

use std::sync::Arc;

use axum::extract::FromRef;
use tenet_events::envelope::Metadata;
use tenet_events::ids::Position;
use tenet_http::auth::jwt::Jwt;
use tenet_http::auth::{Auth, Principal};
use tenet_http::{ApiError, RequestId};
use tenet_projections::access::AccessModel;

use crate::idempotency::{KeysInFlight, Replays};
use crate::repository::{ExecuteError, Repository};
use tenet_http::auth::password::Passwords;

/// The state of the command routes.
#[derive(Clone)]
pub struct CommandState {
    pub repository: Arc<Repository>,
    /// For what a response shows beside the command's own state (a task's
    /// comment count), never for a decision.
    pub db: tenet_events::db::Db,
    pub auth: Auth,
    pub access: Arc<AccessModel>,
    pub jwt: Arc<Jwt>,
    pub passwords: Arc<Passwords>,
    /// How long a refresh token lives (renewed by each refresh).
    pub refresh_ttl: std::time::Duration,
    pub keys_in_flight: Arc<KeysInFlight>,
}

impl FromRef<CommandState> for Auth {
    fn from_ref(state: &CommandState) -> Auth {
        state.auth.clone()
    }
}

impl FromRef<CommandState> for Replays {
    fn from_ref(state: &CommandState) -> Replays {
        Replays {
            store: state.repository.store().clone(),
            auth: state.auth.clone(),
            in_flight: state.keys_in_flight.clone(),
        }
    }
}

/// The metadata of the events a request appends.
pub fn metadata(principal: Option<&Principal>, request_id: &RequestId) -> Metadata {
    let actor = match principal {
        Some(principal) => principal.actor(),
        None => tenet_events::envelope::Actor::System {
            name: "anonymous".to_owned(),
        },
    };
    Metadata {
        actor,
        request_id: Some(request_id.0.clone()),
        // The conversation a request starts: reactions to its events carry
        // the same correlation id.
        correlation_id: Some(
            uuid::Uuid::parse_str(&request_id.0).unwrap_or_else(|_| uuid::Uuid::now_v7()),
        ),
        causation_id: None,
    }
}

/// The metadata of events a user causes before holding a token (login).
pub fn metadata_of_user(user: tenet_events::ids::UserId, request_id: &RequestId) -> Metadata {
    Metadata {
        actor: tenet_events::envelope::Actor::User { id: user.as_uuid() },
        ..metadata(None, request_id)
    }
}

/// The position a command's response carries: the last event it appended,
/// or (when it changed nothing) the head of the log, which covers whatever
/// the client wrote before.
pub async fn position_of(
    repository: &Repository,
    appended: Option<Position>,
) -> Result<Position, ApiError> {
    match appended {
        Some(position) => Ok(position),
        None => Ok(repository.store().head().await?),
    }
}

/// Maps a failed command to problem+json; `rejected` maps the domain error.
pub fn failure<E>(error: ExecuteError<E>, rejected: impl FnOnce(E) -> ApiError) -> ApiError {
    match error {
        ExecuteError::Rejected(error) => rejected(error),
        ExecuteError::Stale { current } => ApiError::precondition_failed(format!(
            "The resource is at version {current}; re-read it and retry with If-Match: \"{current}\""
        )),
        ExecuteError::ClaimTaken(claim) => {
            ApiError::conflict(format!("{} is already taken", claim.value))
        }
        ExecuteError::IdempotencyKeyUsed => ApiError::conflict(
            "A request with this Idempotency-Key completed meanwhile; retry to get its response",
        ),
        ExecuteError::Contention => {
            ApiError::conflict("The resource is being changed by other requests; retry")
                .with_code("CONFLICT")
        }
        ExecuteError::Store(error) => ApiError::from(error),
    }
}
