//! Registration and login.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::catalogue::session::RevokeReason;
use tenet_events::catalogue::user::EMAIL_CLAIM;
use tenet_events::envelope::now;
use tenet_events::ids::SessionId;
use tenet_events::ids::{TenantId, UserId};
use tenet_events::store::Claim;
use tenet_http::auth::api_key::{self, digest};
use tenet_http::auth::{Credential, Principal};
use tenet_http::{ApiError, Checks, Json, RequestId};
use tenet_projections::access::UserView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::session::{self, Session, SessionCommand, SessionError};
use super::user::{User, UserCommand, UserError, decide};
use crate::http::CommandState;
use crate::openapi::{LogoutErrors, RegisterErrors, TokenErrors};
use crate::pipeline::{Refusal, metadata, metadata_of_user};
use crate::reply::{Deleted, Reply, Written};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// Passwords shorter than this are refused.
pub const PASSWORD_MIN: usize = 10;
/// Longer ones too: hashing cost must stay bounded.
pub const PASSWORD_MAX: usize = 256;

/// The rule every new password meets (registration, a password change).
pub fn check_new_password(checks: &mut Checks, field: &str, password: &str) {
    let length = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
        checks.add(
            field,
            format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
        );
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Unique; compared case-insensitively.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// 10 to 256 characters.
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
}

/// `POST /api/v1/auth/register`: creates an account.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = Register,
    responses(
        (status = 201, description = "Registered", body = UserView),
        RegisterErrors,
    )
)]
pub async fn register(
    State(state): State<CommandState>,
    request_id: RequestId,
    Json(body): Json<Register>,
) -> Result<Written<UserView>, ApiError> {
    let mut checks = Checks::new();
    let email = checks.email("email", &body.email);
    let name = checks.line("name", &body.name, 100);
    check_new_password(&mut checks, "password", &body.password);
    checks.finish()?;
    let taken = Claim::new(EMAIL_CLAIM, &email);
    if state.repository.store().find_claim(&taken).await?.is_some() {
        return Err(email_taken());
    }
    let password_hash = state
        .passwords
        .hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let id = UserId::generate();
    state
        .repository
        .recorded_as(metadata(None, &request_id))
        .on::<User>(TenantId::PLATFORM, id)
        .new_stream()
        .decide(|user| {
            decide(
                user,
                UserCommand::Register {
                    email: email.clone(),
                    name: name.clone(),
                    password_hash: password_hash.clone(),
                },
            )
        })
        .reply(move |user| {
            Reply::created(
                UserView {
                    id,
                    email: user.state.email.clone(),
                    name: user.state.name.clone(),
                    created_at: user.state.registered_at.unwrap_or_else(now),
                },
                Some(user.version),
                "/api/v1/auth/me".to_owned(),
            )
        })
        .await
}

impl Refusal for UserError {
    fn problem(self) -> ApiError {
        match self {
            UserError::NotFound => ApiError::not_found("No such user"),
            other => ApiError::conflict(other.to_string()),
        }
    }

    /// A user claims their email.
    fn claim_taken(_claim: &Claim) -> ApiError {
        email_taken()
    }
}

impl Refusal for SessionError {
    fn problem(self) -> ApiError {
        ApiError::conflict(self.to_string())
    }
}

fn email_taken() -> ApiError {
    ApiError::conflict("An account with this email already exists")
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT to send as `Authorization: Bearer ...`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub expires_at: DateTime<Utc>,
    /// Opaque; exchange it at `/auth/refresh` for a new pair. Each refresh
    /// token works once: presenting a used one revokes the session.
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// Issues a token pair for a session whose current refresh token is
/// `refresh_token`.
fn pair(
    state: &CommandState,
    user: UserId,
    session: SessionId,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
) -> TokenPair {
    let (access_token, expires_at) = state.jwt.issue(user, Some(session), now());
    TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl.as_secs(),
        expires_at,
        refresh_token,
        refresh_expires_at,
    }
}

fn refresh_expiry(state: &CommandState) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(state.refresh_ttl).unwrap_or(chrono::Duration::days(30))
}

/// `POST /api/v1/auth/login`: exchanges email and password for an access
/// token and a refresh token (a new session). A wrong email and a wrong
/// password answer the same 401, in the same time.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = TokenPair, headers(("X-Consistency-Token" = String))),
        TokenErrors,
    )
)]
pub async fn login(
    State(state): State<CommandState>,
    request_id: RequestId,
    headers: axum::http::HeaderMap,
    Json(body): Json<Login>,
) -> Result<Written<TokenPair>, ApiError> {
    let email = body.email.trim().to_lowercase();
    // What no account can have is refused before the database is asked
    // (which would refuse a NUL byte itself, as an error).
    let impossible = email.len() > 254 || email.chars().any(char::is_control);
    if impossible || body.password.chars().count() > PASSWORD_MAX {
        return Err(ApiError::unauthenticated("Invalid email or password"));
    }
    let credentials = state.access.credentials(&email).await?;
    let matches = state
        .passwords
        .verify(
            body.password,
            credentials.as_ref().map(|c| c.password_hash.clone()),
        )
        .await
        .map_err(ApiError::internal)?;
    let Some(credentials) = credentials.filter(|_| matches) else {
        return Err(ApiError::unauthenticated("Invalid email or password"));
    };
    // Said only to whoever knows the password.
    if credentials.deactivated {
        return Err(ApiError::forbidden("This account is deactivated")
            .with_code(tenet_http::auth::ACCOUNT_DEACTIVATED));
    }
    let session = SessionId::generate();
    let refresh_token = api_key::new_refresh_token();
    let expires_at = refresh_expiry(&state);
    let user = credentials.id;
    let refresh_hash = digest(&refresh_token);
    let user_agent = user_agent(&headers);
    // The tokens are issued once the session is recorded; never stored.
    let done = state
        .repository
        .recorded_as(metadata_of_user(user, &request_id))
        .on::<Session>(TenantId::PLATFORM, session)
        .new_stream()
        .decide(|session| {
            session::decide(
                session,
                SessionCommand::Start {
                    user,
                    refresh_hash: refresh_hash.clone(),
                    expires_at,
                    user_agent: user_agent.clone(),
                },
            )
        })
        .commit()
        .await?;
    Ok(done.reply(|_| Reply::ok(pair(&state, user, session, refresh_token, expires_at), None)))
}

/// The longest `User-Agent` a session keeps.
pub const USER_AGENT_MAX: usize = 256;

/// The request's `User-Agent`, as a session keeps it: printable, at most
/// [`USER_AGENT_MAX`] characters.
fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::USER_AGENT)?.to_str().ok()?;
    let kept: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(USER_AGENT_MAX)
        .collect();
    (!kept.trim().is_empty()).then_some(kept)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

fn invalid_refresh() -> ApiError {
    ApiError::unauthenticated("Invalid, expired or revoked refresh token")
}

/// A refresh the session refuses, for whatever reason: the caller learns
/// only that its token does not work.
struct RefreshRefused;

impl Refusal for RefreshRefused {
    fn problem(self) -> ApiError {
        invalid_refresh()
    }
}

/// `POST /api/v1/auth/refresh`: exchanges a refresh token for a new token
/// pair; the presented token stops working. Presenting a token that was
/// already exchanged revokes the whole session (someone else holds a
/// copy): every token of it is refused from then on.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = Refresh,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair, headers(("X-Consistency-Token" = String))),
        TokenErrors,
    )
)]
pub async fn refresh(
    State(state): State<CommandState>,
    request_id: RequestId,
    Json(body): Json<Refresh>,
) -> Result<Written<TokenPair>, ApiError> {
    if !api_key::looks_like_refresh_token(&body.refresh_token) {
        return Err(invalid_refresh());
    }
    let presented_hash = digest(&body.refresh_token);
    let record = state
        .access
        .session_of_refresh_token(&presented_hash)
        .await?
        .ok_or_else(invalid_refresh)?;
    // A deactivated account's sessions, and those it had before a
    // deactivation, are never refreshed.
    if !record.usable {
        return Err(invalid_refresh());
    }
    let refresh_token = api_key::new_refresh_token();
    let new_hash = digest(&refresh_token);
    let expires_at = refresh_expiry(&state);
    let done = state
        .repository
        .recorded_as(metadata_of_user(record.user_id, &request_id))
        .on::<Session>(TenantId::PLATFORM, record.id)
        .decide(|session| {
            session::decide(
                session,
                SessionCommand::Refresh {
                    presented_hash: presented_hash.clone(),
                    new_hash: new_hash.clone(),
                    expires_at,
                    now: now(),
                },
            )
            .map_err(|_: SessionError| RefreshRefused)
        })
        .commit()
        .await?;
    if done.committed.state.revoked.is_some() {
        tracing::warn!(session = %record.id, "refresh token reuse: session revoked");
        return Err(ApiError::unauthenticated(
            "This refresh token was already used; the session is revoked. Log in again",
        ));
    }
    Ok(done.reply(|_| {
        let pair = pair(&state, record.user_id, record.id, refresh_token, expires_at);
        Reply::ok(pair, None)
    }))
}

/// `POST /api/v1/auth/logout`: revokes the caller's session (its refresh
/// token and every access token issued from it).
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    responses(
        (status = 200, description = "Logged out", body = Deleted),
        LogoutErrors,
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    State(state): State<CommandState>,
    principal: Principal,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    let Credential::Token {
        session: Some(session),
    } = principal.credential
    else {
        return Err(ApiError::field(
            "Authorization",
            "logging out needs an access token from /auth/login (API keys are revoked instead)",
        ));
    };
    state
        .repository
        .by(&principal, &request_id)
        .on::<Session>(TenantId::PLATFORM, session)
        .decide(|session| {
            session::decide(
                session,
                SessionCommand::Revoke {
                    reason: RevokeReason::Logout,
                },
            )
        })
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
