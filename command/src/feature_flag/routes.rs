//! Creating, changing and deleting feature flags (platform admins).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::ids::{TenantId, WorkspaceId};
use tenet_http::auth::PlatformAdmin;
use tenet_http::openapi::{ChangeErrors, CreateErrors, DeleteErrors};
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{FeatureFlag, FlagChange, FlagCommand, FlagError, decide, stream_of};
use crate::http::CommandState;
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_flag))
        .routes(routes!(update_flag, delete_flag))
}

/// Keys are 1 to 64 characters.
pub const KEY_MAX: usize = 64;
/// Descriptions are up to 500 characters.
pub const DESCRIPTION_MAX: usize = 500;
/// At most this many overrides in one request.
pub const OVERRIDES_MAX: usize = 1_000;

impl Refusal for FlagError {
    fn problem(self) -> ApiError {
        match self {
            FlagError::Exists => ApiError::conflict(self.to_string()).with_field("key", "is taken"),
            FlagError::NotFound => ApiError::not_found("No such feature flag"),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlag {
    /// 1 to 64 characters: lower-case letters, digits, `-`, `_` and `.`,
    /// starting with a letter or digit. Fixed for the flag's life.
    pub key: String,
    /// Up to 500 characters (default empty).
    pub description: Option<String>,
    /// Default false.
    pub enabled: Option<bool>,
    /// 0 to 100 (default 100).
    pub rollout_percent: Option<i64>,
    /// Per workspace id: on or off, whatever the rollout says.
    pub overrides: Option<BTreeMap<WorkspaceId, bool>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFlag {
    #[serde(default, deserialize_with = "tenet_http::patch::emptied")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    /// 0 to 100.
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub rollout_percent: Option<i64>,
    /// Per workspace id: `true` or `false` sets the override, `null`
    /// removes it; workspaces not named keep theirs.
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(value_type = BTreeMap<String, Option<bool>>, nullable = false)]
    pub overrides: Option<BTreeMap<WorkspaceId, Option<bool>>>,
}

/// A feature flag, as its commands answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagReply {
    pub key: String,
    pub description: String,
    pub enabled: bool,
    pub rollout_percent: u8,
    pub overrides: BTreeMap<WorkspaceId, bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The flag stream's version; also the `ETag`.
    pub version: i64,
}

fn view(committed: &Committed<FeatureFlag>) -> FlagReply {
    let flag = &committed.state;
    FlagReply {
        key: flag.key.clone(),
        description: flag.description.clone(),
        enabled: flag.enabled,
        rollout_percent: flag.rollout_percent,
        overrides: flag.overrides.clone(),
        created_at: flag.created_at,
        updated_at: flag.updated_at,
        version: committed.version,
    }
}

/// Checks a key's grammar.
pub fn check_key(checks: &mut Checks, key: &str) {
    let mut chars = key.chars();
    let starts = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest = key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if !starts || !rest || key.len() > KEY_MAX {
        checks.add(
            "key",
            "must be 1 to 64 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit",
        );
    }
}

fn check_change(
    checks: &mut Checks,
    description: Option<&str>,
    rollout_percent: Option<i64>,
    overrides: usize,
) -> (Option<String>, Option<u8>) {
    let description = description.map(|d| checks.text("description", d, DESCRIPTION_MAX));
    let percent = rollout_percent.and_then(|p| match u8::try_from(p) {
        Ok(p) if p <= 100 => Some(p),
        _ => {
            checks.add("rollout_percent", "must be between 0 and 100");
            None
        }
    });
    if overrides > OVERRIDES_MAX {
        checks.add(
            "overrides",
            format!("must hold at most {OVERRIDES_MAX} workspaces"),
        );
    }
    (description, percent)
}

/// `POST /api/v1/admin/feature-flags`: creates a flag. 409 when the key
/// exists.
#[utoipa::path(
    post,
    path = "/api/v1/admin/feature-flags",
    tag = "feature-flags",
    request_body = CreateFlag,
    responses(
        (status = 201, description = "Created", body = FlagReply,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        CreateErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn create_flag(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    request_id: RequestId,
    Json(body): Json<CreateFlag>,
) -> Result<Written<FlagReply>, ApiError> {
    let mut checks = Checks::new();
    check_key(&mut checks, &body.key);
    let overrides = body.overrides.unwrap_or_default();
    let (description, rollout_percent) = check_change(
        &mut checks,
        body.description.as_deref(),
        body.rollout_percent,
        overrides.len(),
    );
    checks.finish()?;
    let key = body.key;
    let change = FlagChange {
        description,
        enabled: body.enabled,
        rollout_percent,
        overrides: overrides.into_iter().map(|(w, v)| (w, Some(v))).collect(),
    };
    let location = format!("/api/v1/admin/feature-flags/{key}");
    state
        .repository
        .by(&admin.0, &request_id)
        .on::<FeatureFlag>(TenantId::PLATFORM, stream_of(&key))
        .decide(|flag| {
            decide(
                flag,
                FlagCommand::Create {
                    key: key.clone(),
                    change: change.clone(),
                },
            )
        })
        .reply(move |flag| Reply::created(view(flag), Some(flag.version), location.clone()))
        .await
}

#[derive(Debug, Deserialize)]
pub struct FlagPath {
    pub key: String,
}

/// The flag's stream, once the path's key is known to be well-formed (an
/// ill-formed one names no flag).
fn flag_of(path: &FlagPath) -> Result<tenet_events::ids::FeatureFlagId, ApiError> {
    let mut checks = Checks::new();
    check_key(&mut checks, &path.key);
    checks
        .finish()
        .map_err(|_| ApiError::not_found("No such feature flag"))?;
    Ok(stream_of(&path.key))
}

/// `PATCH /api/v1/admin/feature-flags/{key}`: changes a flag's
/// description, switch, rollout or overrides; each is an event.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/feature-flags/{key}",
    tag = "feature-flags",
    params(("key" = String, Path), ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on")),
    request_body(content((UpdateFlag = "application/json"), (UpdateFlag = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = FlagReply,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn update_flag(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    Path(path): Path<FlagPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateFlag>,
) -> Result<Written<FlagReply>, ApiError> {
    let id = flag_of(&path)?;
    let mut checks = Checks::new();
    let overrides = body.overrides.unwrap_or_default();
    let (description, rollout_percent) = check_change(
        &mut checks,
        body.description.as_deref(),
        body.rollout_percent,
        overrides.len(),
    );
    checks.finish()?;
    let change = FlagChange {
        description,
        enabled: body.enabled,
        rollout_percent,
        overrides,
    };
    state
        .repository
        .by(&admin.0, &request_id)
        .on::<FeatureFlag>(TenantId::PLATFORM, id)
        .if_match(if_match)
        .decide(|flag| decide(flag, FlagCommand::Change(change.clone())))
        .reply(|flag| Reply::ok(view(flag), Some(flag.version)))
        .await
}

/// `DELETE /api/v1/admin/feature-flags/{key}`: deletes a flag; it is off
/// for every workspace from then on, and its key may be created again.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/feature-flags/{key}",
    tag = "feature-flags",
    params(("key" = String, Path), ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on")),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("X-Consistency-Token" = String))),
        DeleteErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn delete_flag(
    State(state): State<CommandState>,
    admin: PlatformAdmin,
    Path(path): Path<FlagPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    let id = flag_of(&path)?;
    state
        .repository
        .by(&admin.0, &request_id)
        .on::<FeatureFlag>(TenantId::PLATFORM, id)
        .if_match(if_match)
        .decide(|flag| decide(flag, FlagCommand::Delete))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
