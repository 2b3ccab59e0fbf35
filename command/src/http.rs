//! The state every command route shares. What every command does is in
//! [`crate::pipeline`].

use std::sync::Arc;

use axum::extract::FromRef;
use tenet_http::auth::Auth;
use tenet_http::auth::jwt::Jwt;
use tenet_projections::access::AccessModel;

use crate::idempotency::{KeysInFlight, Replays};
use crate::repository::Repository;
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
    /// Seals webhook secrets and says where webhooks may point.
    pub webhooks: Arc<crate::webhook::WebhookSettings>,
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
