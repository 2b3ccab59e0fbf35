//! Registration and login.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenet_events::catalogue::user::EMAIL_CLAIM;
use tenet_events::envelope::now;
use tenet_events::http::openapi::{
    BadRequest, Conflict, Unauthenticated, Unprocessable, UnsupportedMediaType,
};
use tenet_events::http::{ApiError, Checks, Json, RequestId};
use tenet_events::ids::{TenantId, UserId};
use tenet_projections::access::UserView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::user::{User, UserCommand, UserError, decide};
use crate::http::{CommandState, Written, failure, metadata, position_of};
use crate::repository::{ExecuteError, Target};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

/// Passwords shorter than this are refused.
pub const PASSWORD_MIN: usize = 10;
/// Longer ones too: hashing cost must stay bounded.
pub const PASSWORD_MAX: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Unique; compared case-insensitively.
    pub email: String,
    /// 1 to 100 characters.
    pub name: String,
    /// 10 to 256 characters.
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
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
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
    let length = body.password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
        checks.add(
            "password",
            format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
        );
    }
    checks.finish()?;
    let taken = tenet_events::store::Claim::new(EMAIL_CLAIM, &email);
    if state.repository.store().find_claim(&taken).await?.is_some() {
        return Err(email_taken());
    }
    let password_hash = state
        .passwords
        .hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let id = UserId::generate();
    let target = Target {
        tenant: TenantId::PLATFORM,
        stream: id.into(),
        metadata: metadata(None, &request_id),
        if_match: None,
        idempotency: None,
        new_stream: true,
    };
    let committed = state
        .repository
        .execute::<User, _>(target, |user| {
            decide(
                user,
                UserCommand::Register {
                    email: email.clone(),
                    name: name.clone(),
                    password_hash: password_hash.clone(),
                },
            )
        })
        .await
        .map_err(|error| match error {
            ExecuteError::ClaimTaken(_) => email_taken(),
            other => failure(other, |e: UserError| ApiError::conflict(e.to_string())),
        })?;
    Ok(Written {
        status: StatusCode::CREATED,
        body: UserView {
            id,
            email: committed.state.email,
            name: committed.state.name,
            created_at: committed.state.registered_at.unwrap_or_else(now),
        },
        version: Some(committed.version),
        position: position_of(&state.repository, committed.position).await?,
        location: Some("/api/v1/auth/me".to_owned()),
    })
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
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /api/v1/auth/login`: exchanges email and password for an access
/// token. A wrong email and a wrong password answer the same 401, in the
/// same time.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = TokenPair),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
    )
)]
pub async fn login(
    State(state): State<CommandState>,
    Json(body): Json<Login>,
) -> Result<axum::Json<TokenPair>, ApiError> {
    let email = body.email.trim().to_lowercase();
    if body.password.chars().count() > PASSWORD_MAX {
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
    let (access_token, expires_at) = state.jwt.issue(credentials.id, None, now());
    Ok(axum::Json(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl.as_secs(),
        expires_at,
    }))
}
