//! Accounts for the identities of an external identity provider: the user
//! with the identity's email, or, when the deployment allows it, a new
//! account registered on first sight (without a password: it logs in
//! through the provider only).

use std::sync::Arc;

use async_trait::async_trait;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{TenantId, UserId};
use tenet_http::auth::external::{ExternalAccounts, ExternalIdentity};
use tenet_http::{ApiError, RequestId};
use tenet_projections::access::AccessModel;

use super::user::{User, UserCommand, decide};
use crate::pipeline::metadata;
use crate::repository::{ExecuteError, Repository};

/// Maps external identities to users by email.
pub struct ExternalUsers {
    pub repository: Arc<Repository>,
    pub access: Arc<AccessModel>,
    /// Register an account for an identity no account has yet.
    pub auto_create: bool,
}

/// The hash of an account that has no password: no password verifies
/// against it, so it never logs in with one.
const NO_PASSWORD: &str = "";

#[async_trait]
impl ExternalAccounts for ExternalUsers {
    async fn user_for(&self, identity: &ExternalIdentity) -> Result<Option<UserId>, ApiError> {
        if let Some(user) = self.access.user_by_email(&identity.email).await? {
            return Ok(Some(user));
        }
        if !self.auto_create {
            return Ok(None);
        }
        let id = UserId::generate();
        let request = RequestId(uuid::Uuid::now_v7().to_string());
        let metadata = Metadata {
            actor: Actor::System {
                name: format!("identity provider {}", identity.issuer),
            },
            ..metadata(None, &request)
        };
        let registered = self
            .repository
            .recorded_as(metadata)
            .on::<User>(TenantId::PLATFORM, id)
            .new_stream()
            .decide(|user| {
                decide(
                    user,
                    UserCommand::Register {
                        email: identity.email.clone(),
                        name: identity.name.clone(),
                        password_hash: NO_PASSWORD.to_owned(),
                    },
                )
            })
            .outcome()
            .await;
        match registered {
            Ok(_) => {
                tracing::info!(user = %id, issuer = %identity.issuer, subject = %identity.subject, "account created for an external identity");
                Ok(Some(id))
            }
            // A concurrent first request registered it: that account.
            Err(ExecuteError::ClaimTaken(_)) => {
                Ok(self.access.user_by_email(&identity.email).await?)
            }
            Err(other) => Err(ApiError::from(other)),
        }
    }
}
