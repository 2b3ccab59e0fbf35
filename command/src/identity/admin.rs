//! What platform admins do to an account: rename it, deactivate it (with a
//! reason) and reactivate it. Each is an event on the user's stream; the
//! inline access model commits with it, so a deactivated user's tokens,
//! refresh tokens and API keys are refused on the very next request, on
//! every instance.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::envelope::now;
use tenet_events::ids::{ImpersonationId, TenantId, UserId};
use tenet_http::auth::PlatformAdmin;
use tenet_http::openapi::ChangeErrors;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::access::{AdminUserDetail, admin_user};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::impersonation::{self, Impersonation, ImpersonationCommand, ImpersonationError};
use super::user::{User, UserCommand, decide};
use crate::http::CommandState;
use crate::openapi::{LifecycleErrors, RevokeErrors};
use crate::pipeline::{Done, Refusal};
use crate::reply::{Reply, Written};
use crate::repository::Committed;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(update_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(start_impersonation))
        .routes(routes!(end_impersonation))
}

/// How long an impersonation token lives at most (less if access tokens
/// live less).
pub const IMPERSONATION_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How many of a user's workspaces a detail lists.
pub const DETAIL_WORKSPACES: i64 = 100;
/// The longest deactivation reason.
pub const REASON_MAX: usize = 500;

#[derive(Debug, Deserialize)]
pub struct UserPath {
    pub user_id: UserId,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// 1 to 100 characters.
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateUser {
    /// Why, for the audit log: 1 to 500 characters.
    pub reason: String,
}

/// The detail of a user once their command committed (the access model is
/// inline: it is current).
async fn detail(
    state: &CommandState,
    id: UserId,
    done: Done<User>,
) -> Result<Written<AdminUserDetail>, ApiError> {
    let detail = admin_user(&state.db, id, DETAIL_WORKSPACES)
        .await?
        .ok_or_else(|| ApiError::not_found("No such user"))?;
    let version = detail.version;
    Ok(done.reply(move |_| Reply::ok(detail, Some(version))))
}

/// `PATCH /api/v1/admin/users/{user_id}`: changes a user's name.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{user_id}",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on")),
    request_body(content((UpdateUser = "application/json"), (UpdateUser = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = AdminUserDetail,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn update_user(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    Path(path): Path<UserPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateUser>,
) -> Result<Written<AdminUserDetail>, ApiError> {
    let mut checks = Checks::new();
    let name = body
        .name
        .as_deref()
        .map(|name| checks.line("name", name, 100));
    checks.finish()?;
    let done = state
        .repository
        .by(&admin.0, &request_id)
        .on::<User>(TenantId::PLATFORM, path.user_id)
        .if_match(if_match)
        .decide(|user| match &name {
            Some(name) => decide(user, UserCommand::Rename { name: name.clone() }),
            None => decide(
                user,
                UserCommand::Rename {
                    name: user.name.clone(),
                },
            ),
        })
        .commit()
        .await?;
    detail(&state, path.user_id, done).await
}

/// `POST /api/v1/admin/users/{user_id}/deactivate`: shuts an account with
/// a reason. Its login answers 403 `ACCOUNT_DEACTIVATED`; its access
/// tokens, refresh tokens and API keys answer 401 `ACCOUNT_DEACTIVATED`
/// from the next request on, on every instance; its WebSockets are closed
/// with that code. Deactivating a deactivated account changes nothing; an
/// admin cannot deactivate their own account (409).
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{user_id}/deactivate",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path)),
    request_body = DeactivateUser,
    responses(
        (status = 200, description = "Deactivated", body = AdminUserDetail,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        LifecycleErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn deactivate_user(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    Path(path): Path<UserPath>,
    request_id: RequestId,
    Json(body): Json<DeactivateUser>,
) -> Result<Written<AdminUserDetail>, ApiError> {
    let mut checks = Checks::new();
    let reason = checks.line("reason", &body.reason, REASON_MAX);
    checks.finish()?;
    if path.user_id == admin.0.user_id {
        return Err(ApiError::conflict("You cannot deactivate your own account"));
    }
    let done = state
        .repository
        .by(&admin.0, &request_id)
        .on::<User>(TenantId::PLATFORM, path.user_id)
        .decide(|user| {
            decide(
                user,
                UserCommand::Deactivate {
                    reason: reason.clone(),
                },
            )
        })
        .commit()
        .await?;
    detail(&state, path.user_id, done).await
}

/// `POST /api/v1/admin/users/{user_id}/reactivate`: lets a deactivated
/// account log in again. Sessions and API keys from before the
/// deactivation stay dead. Reactivating an active account changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{user_id}/reactivate",
    tag = "admin",
    params(("user_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Reactivated", body = AdminUserDetail,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        LifecycleErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn reactivate_user(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    Path(path): Path<UserPath>,
    request_id: RequestId,
) -> Result<Written<AdminUserDetail>, ApiError> {
    let done = state
        .repository
        .by(&admin.0, &request_id)
        .on::<User>(TenantId::PLATFORM, path.user_id)
        .decide(|user| decide(user, UserCommand::Reactivate))
        .commit()
        .await?;
    detail(&state, path.user_id, done).await
}

impl Refusal for ImpersonationError {
    fn problem(self) -> ApiError {
        match self {
            ImpersonationError::NoSuchUser => ApiError::field("user_id", "no such user"),
            ImpersonationError::TargetIsAdmin => {
                ApiError::forbidden("Platform admins cannot be impersonated")
            }
            ImpersonationError::TargetDeactivated => ApiError::conflict(self.to_string()),
            ImpersonationError::NotFound => ApiError::not_found("No such impersonation"),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartImpersonation {
    /// The user to act as (never a platform admin, never a deactivated
    /// account).
    pub user_id: UserId,
    /// Why, for the audit log: 1 to 500 characters.
    pub reason: String,
}

/// An impersonation's token: shown once, never refreshable.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpersonationToken {
    /// A JWT to send as `Authorization: Bearer ...`: it acts as the user,
    /// with their roles (never the platform-admin tier), and every event
    /// written with it records the user as actor and the admin as
    /// `impersonated_by`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub impersonation_id: ImpersonationId,
    pub user_id: UserId,
}

/// An impersonation, as its end answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndedImpersonation {
    pub id: ImpersonationId,
    pub user_id: Option<UserId>,
    pub admin_id: Option<UserId>,
    pub reason: String,
    pub started_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

fn ended_view(id: ImpersonationId, committed: &Committed<Impersonation>) -> EndedImpersonation {
    let state = &committed.state;
    EndedImpersonation {
        id,
        user_id: state.user,
        admin_id: state.admin,
        reason: state.reason.clone(),
        started_at: state.started_at,
        expires_at: state.expires_at,
        ended_at: state.ended_at,
    }
}

/// `POST /api/v1/admin/impersonations`: acts as a user, with a reason.
/// Answers a short-lived access token (15 minutes at most, no refresh
/// token) for the user; the user's own sessions are untouched. Platform
/// admins are never impersonated (403); a deactivated account is 409.
/// Starting and ending are events on the impersonation's stream.
#[utoipa::path(
    post,
    path = "/api/v1/admin/impersonations",
    tag = "admin",
    request_body = StartImpersonation,
    responses(
        (status = 201, description = "Started", body = ImpersonationToken,
            headers(("Location" = String), ("X-Consistency-Token" = String))),
        LifecycleErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn start_impersonation(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    request_id: RequestId,
    Json(body): Json<StartImpersonation>,
) -> Result<Written<ImpersonationToken>, ApiError> {
    let mut checks = Checks::new();
    let reason = checks.line("reason", &body.reason, REASON_MAX);
    checks.finish()?;
    let id = ImpersonationId::generate();
    let started = now();
    let expires_at = started
        + chrono::Duration::from_std(IMPERSONATION_TTL.min(state.jwt.ttl))
            .unwrap_or(chrono::Duration::minutes(15));
    let (user, by) = (body.user_id, admin.0.user_id);
    let done = state
        .repository
        .by(&admin.0, &request_id)
        .on::<Impersonation>(TenantId::PLATFORM, id)
        .checking::<User>(user)
        .new_stream()
        .decide(|impersonation, target| {
            impersonation::decide(
                impersonation,
                target,
                ImpersonationCommand::Start {
                    user,
                    admin: by,
                    reason: reason.clone(),
                    expires_at,
                },
            )
        })
        .commit()
        .await?;
    // Minted once the impersonation is recorded; never stored.
    let access_token = state.jwt.issue_impersonation(user, id, started, expires_at);
    Ok(done.reply(|_| Reply {
        status: StatusCode::CREATED,
        body: ImpersonationToken {
            access_token,
            token_type: "Bearer",
            expires_at,
            impersonation_id: id,
            user_id: user,
        },
        version: None,
        location: Some(format!("/api/v1/admin/impersonations/{id}")),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ImpersonationPath {
    pub impersonation_id: ImpersonationId,
}

/// `DELETE /api/v1/admin/impersonations/{impersonation_id}`: ends an
/// impersonation; its token is refused from the next request on
/// (`IMPERSONATION_ENDED`), on every instance. Ending an ended one changes
/// nothing.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/impersonations/{impersonation_id}",
    tag = "admin",
    params(("impersonation_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Ended", body = EndedImpersonation, headers(("X-Consistency-Token" = String))),
        RevokeErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn end_impersonation(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    Path(path): Path<ImpersonationPath>,
    request_id: RequestId,
) -> Result<Written<EndedImpersonation>, ApiError> {
    let id = path.impersonation_id;
    state
        .repository
        .by(&admin.0, &request_id)
        .on::<Impersonation>(TenantId::PLATFORM, id)
        .decide(|impersonation| {
            impersonation::decide(impersonation, &User::default(), ImpersonationCommand::End)
        })
        .reply(move |committed| Reply::ok(ended_view(id, committed), None))
        .await
}
