//! What platform admins do to an account: rename it, deactivate it (with a
//! reason) and reactivate it. Each is an event on the user's stream; the
//! inline access model commits with it, so a deactivated user's tokens,
//! refresh tokens and API keys are refused on the very next request, on
//! every instance.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::ids::{TenantId, UserId};
use tenet_http::auth::PlatformAdmin;
use tenet_http::openapi::ChangeErrors;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::access::{AdminUserDetail, admin_user};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::user::{User, UserCommand, decide};
use crate::http::CommandState;
use crate::openapi::LifecycleErrors;
use crate::pipeline::Done;
use crate::reply::{Reply, Written};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(update_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
}

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
    request_body = UpdateUser,
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
