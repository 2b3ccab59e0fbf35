//! What a user does to their own account: rename it, change its password
//! (ending every other session) and end one of their sessions. Each is an
//! event on the user's (or the session's) stream; the inline access model
//! commits with it, so a session ended here is refused on the very next
//! request, on every instance.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::catalogue::session::RevokeReason;
use tenet_events::envelope::now;
use tenet_events::ids::{SessionId, TenantId};
use tenet_http::auth::{Credential, Principal};
use tenet_http::patch;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::access::UserView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::routes::{PASSWORD_MAX, check_new_password};
use super::session::{self, Session, SessionCommand, SessionError};
use super::user::{User, UserCommand, decide};
use crate::http::CommandState;
use crate::openapi::{LifecycleErrors, RevokeErrors};
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(update_me))
        .routes(routes!(change_password))
        .routes(routes!(end_session))
}

/// A change to one's own account (JSON merge patch: an absent field is
/// unchanged; `name` cannot be cleared).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// 1 to 100 characters.
    #[serde(default, deserialize_with = "patch::required")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: Option<String>,
}

/// The caller's own account, refused for an impersonation: an admin acting
/// as a user never changes the user's account itself.
fn own(principal: &Principal) -> Result<(), ApiError> {
    match principal.credential {
        Credential::Impersonation { .. } => Err(ApiError::forbidden(
            "An impersonation cannot change the impersonated account",
        )),
        Credential::Token { .. } | Credential::ApiKey { .. } => Ok(()),
    }
}

/// `PATCH /api/v1/auth/me`: changes the caller's name.
#[utoipa::path(
    patch,
    path = "/api/v1/auth/me",
    tag = "auth",
    params(("If-Match" = Option<String>, Header, description = "The version (ETag) of the account this change is based on")),
    request_body(content((UpdateMe = "application/json"), (UpdateMe = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = UserView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        LifecycleErrors,
    ),
    security(("bearer" = []))
)]
pub async fn update_me(
    State(state): State<CommandState>,
    principal: Principal,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateMe>,
) -> Result<Written<UserView>, ApiError> {
    own(&principal)?;
    let mut checks = Checks::new();
    let name = body.name.map(|name| checks.line("name", &name, 100));
    checks.finish()?;
    let id = principal.user_id;
    state
        .repository
        .by(&principal, &request_id)
        .on::<User>(TenantId::PLATFORM, id)
        .if_match(if_match)
        .decide(|user| {
            let name = name.clone().unwrap_or_else(|| user.name.clone());
            decide(user, UserCommand::Rename { name })
        })
        .reply(move |user| {
            Reply::ok(
                UserView {
                    id,
                    email: user.state.email.clone(),
                    name: user.state.name.clone(),
                    created_at: user.state.registered_at.unwrap_or_else(now),
                },
                Some(user.version),
            )
        })
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The password the account has now.
    pub current_password: String,
    /// 10 to 256 characters.
    #[schema(min_length = 10, max_length = 256)]
    pub new_password: String,
}

/// `POST /api/v1/auth/password`: changes the caller's password. Every
/// other session of theirs (and its refresh token) stops working at once,
/// on every instance; the session this request comes from stays. Needs an
/// access token from `/auth/login`. A wrong `current_password` is 403
/// `WRONG_PASSWORD` naming it (and counts against the login rate limit).
#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "auth",
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; every other session ended", body = Deleted,
            headers(("X-Consistency-Token" = String))),
        LifecycleErrors,
    ),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(state): State<CommandState>,
    principal: Principal,
    request_id: RequestId,
    Json(body): Json<ChangePassword>,
) -> Result<Written<Deleted>, ApiError> {
    let Credential::Token {
        session: Some(kept),
    } = principal.credential
    else {
        return Err(ApiError::forbidden(
            "Changing the password needs an access token from /auth/login (not an API key, an impersonation or an external identity)",
        ));
    };
    let mut checks = Checks::new();
    check_new_password(&mut checks, "new_password", &body.new_password);
    checks.finish()?;
    if body.current_password.chars().count() > PASSWORD_MAX {
        return Err(wrong_password());
    }
    let credentials = state
        .access
        .credentials_of(principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("Invalid or expired access token"))?;
    let matches = state
        .passwords
        .verify(body.current_password, Some(credentials.password_hash))
        .await
        .map_err(ApiError::internal)?;
    if !matches {
        // Well formed, and refused: the caller did not prove they hold the
        // account (403, not 401, which would tell a client its token is bad).
        return Err(wrong_password());
    }
    let password_hash = state
        .passwords
        .hash(body.new_password)
        .await
        .map_err(ApiError::internal)?;
    state
        .repository
        .by(&principal, &request_id)
        .on::<User>(TenantId::PLATFORM, principal.user_id)
        .decide(|user| {
            decide(
                user,
                UserCommand::ChangePassword {
                    password_hash: password_hash.clone(),
                    kept_session: Some(kept),
                },
            )
        })
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}

/// A `current_password` that is not the account's: 403 naming the field.
fn wrong_password() -> ApiError {
    ApiError::forbidden("current_password: does not match the account's password")
        .with_code("WRONG_PASSWORD")
        .with_field("current_password", "does not match the account's password")
}

#[derive(Debug, Deserialize)]
pub struct SessionPath {
    pub session_id: SessionId,
}

/// Someone else's session answers as if it did not exist.
struct NoSuchSession;

impl Refusal for NoSuchSession {
    fn problem(self) -> ApiError {
        ApiError::not_found("No such session")
    }
}

/// `DELETE /api/v1/auth/sessions/{session_id}`: ends one of the caller's
/// sessions (its refresh token and every access token issued from it are
/// refused from the next request on). Another user's session is 404.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{session_id}",
    tag = "auth",
    params(("session_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Ended", body = Deleted, headers(("X-Consistency-Token" = String))),
        RevokeErrors,
    ),
    security(("bearer" = []))
)]
pub async fn end_session(
    State(state): State<CommandState>,
    principal: Principal,
    Path(path): Path<SessionPath>,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    own(&principal)?;
    let me = principal.user_id;
    state
        .repository
        .by(&principal, &request_id)
        .on::<Session>(TenantId::PLATFORM, path.session_id)
        .decide(move |session| {
            if session.user != Some(me) {
                return Err(NoSuchSession);
            }
            session::decide(
                session,
                SessionCommand::Revoke {
                    reason: RevokeReason::RevokedByUser,
                },
            )
            .map_err(|_: SessionError| NoSuchSession)
        })
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
