//! Issuing and revoking API keys.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::catalogue::api_key::ApiKeyIssued;
use tenet_events::envelope::now;
use tenet_events::ids::{ApiKeyId, WorkspaceId};
use tenet_http::auth::api_key::{digest, new_api_key};
use tenet_http::auth::{ApiKeysDelete, ApiKeysWrite, Scoped};
use tenet_http::{ApiError, Checks, Json, Path, RequestId, Scope, Scopes};
use tenet_projections::access::ApiKeyView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{ApiKey, ApiKeyCommand, ApiKeyError, decide};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::{AddErrors, RevokeErrors};
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(issue_api_key))
        .routes(routes!(revoke_api_key))
}

/// The prefix of every key secret.
/// Characters of the secret kept, in the clear, to recognise a key.
const SHOWN: usize = 12;
/// Most scopes one key lists.
const SCOPES_MAX: usize = 32;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueApiKey {
    /// 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// Scopes (`tasks:write`, `projects:*`, `*`): a subset of the caller's own.
    pub scopes: Vec<String>,
    /// When the key stops working (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Send as `Authorization: Bearer <secret>`. Stored only as a digest:
    /// it cannot be shown again, so a response replayed for an
    /// `Idempotency-Key` lacks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KeyPath {
    pub workspace_id: WorkspaceId,
    pub key_id: ApiKeyId,
}

impl Refusal for ApiKeyError {
    fn problem(self) -> ApiError {
        match self {
            ApiKeyError::NotFound => ApiError::not_found("No such API key"),
            other => ApiError::conflict(other.to_string()),
        }
    }
}

/// `POST /api/v1/workspaces/{workspace_id}/api-keys`: issues a key bound to
/// this workspace, with scopes the caller holds. Its effective scopes are
/// also capped, on every request, by what its issuer may do at that time.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/api-keys",
    tag = "api-keys",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h), without the secret"),
    ),
    request_body = IssueApiKey,
    responses(
        (status = 201, description = "Issued; the secret is in the body, once", body = IssuedApiKey,
            headers(("Location" = String), ("X-Consistency-Token" = String))),
        AddErrors,
    ),
    security(("bearer" = ["api_keys:write"]))
)]
pub async fn issue_api_key(
    State(state): State<CommandState>,
    access: Scoped<ApiKeysWrite>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<IssueApiKey>,
) -> Result<Written<IssuedApiKey>, ApiError> {
    let mut checks = Checks::new();
    let name = checks.line("name", &body.name, 100);
    let mut scopes = Vec::new();
    if body.scopes.is_empty() {
        checks.add("scopes", "must list at least one scope");
    } else if body.scopes.len() > SCOPES_MAX {
        checks.add("scopes", format!("must list at most {SCOPES_MAX} scopes"));
    }
    for (index, text) in body.scopes.iter().enumerate() {
        match text.parse::<Scope>() {
            Ok(scope) => scopes.push(scope),
            Err(message) => checks.add(format!("scopes[{index}]"), message),
        }
    }
    if body.expires_at.is_some_and(|expires| expires <= now()) {
        checks.add("expires_at", "must be in the future");
    }
    checks.finish()?;
    let wanted = Scopes::new(scopes);
    if !access.scopes.contains_all(&wanted) {
        return Err(ApiError::forbidden(
            "A key can only carry scopes its issuer holds in this workspace",
        ));
    }
    let secret = new_api_key();
    let id = ApiKeyId::generate();
    let issued = ApiKeyIssued {
        name,
        scopes: wanted.to_strings(),
        key_hash: digest(&secret),
        prefix: secret.chars().take(SHOWN).collect(),
        expires_at: body.expires_at,
        issued_by: access.principal.user_id,
    };
    let (workspace, issuer) = (access.workspace_id, access.principal.user_id);
    let mut answer = state
        .repository
        .by(&access.principal, &request_id)
        .on::<ApiKey>(access.tenant(), id)
        .new_stream()
        .decide(|key| decide(key, ApiKeyCommand::Issue(issued.clone())))
        // Without the secret: the stored (replayable) response never holds it.
        .reply(move |committed| {
            let key = &committed.state;
            Reply::created(
                IssuedApiKey {
                    key: ApiKeyView {
                        id,
                        name: key.name.clone(),
                        prefix: key.prefix.clone(),
                        scopes: key.scopes.clone(),
                        issued_by: issuer,
                        created_at: key.created_at.unwrap_or_else(now),
                        expires_at: key.expires_at,
                        last_used_at: None,
                        revoked_at: None,
                    },
                    secret: None,
                },
                Some(committed.version),
                format!("/api/v1/workspaces/{workspace}/api-keys/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await?;
    answer.body.secret = Some(secret);
    Ok(answer)
}

/// `DELETE /api/v1/workspaces/{workspace_id}/api-keys/{key_id}`: revokes a
/// key; the next request made with it is refused, on every instance.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/api-keys/{key_id}",
    tag = "api-keys",
    params(("workspace_id" = uuid::Uuid, Path), ("key_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Revoked", body = Deleted, headers(("X-Consistency-Token" = String))),
        RevokeErrors,
    ),
    security(("bearer" = ["api_keys:delete"]))
)]
pub async fn revoke_api_key(
    State(state): State<CommandState>,
    access: Scoped<ApiKeysDelete>,
    Path(path): Path<KeyPath>,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<ApiKey>(access.tenant(), path.key_id)
        .decide(|key| decide(key, ApiKeyCommand::Revoke))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
