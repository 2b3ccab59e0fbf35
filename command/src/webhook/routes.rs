//! Creating, changing, rotating the secret of, testing and deleting
//! webhooks.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use tenet_events::catalogue::webhook::{WebhookCreated, WebhookUpdated};
use tenet_events::envelope::now;
use tenet_events::ids::{UserId, WebhookId, WorkspaceId};
use tenet_http::auth::{Scoped, WebhooksDelete, WebhooksWrite};
use tenet_http::openapi::ChangeErrors;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::webhooks::WebhookView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Webhook, WebhookCommand, WebhookError, decide};
use super::new_secret;
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::{AddErrors, RevokeErrors, StateErrors};
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook))
        .routes(routes!(update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(retry_delivery))
}

/// Longest description.
const DESCRIPTION_MAX: usize = 1_000;
/// Most event-type filters per webhook.
const EVENT_TYPES_MAX: usize = 50;
/// Longest event-type filter.
const EVENT_TYPE_MAX: usize = 100;
/// How long the secret before a rotation still signs.
const PREVIOUS_SECRET_HOURS: i64 = 24;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: `https` (up to 2,000 characters).
    pub url: String,
    /// Up to 1,000 characters.
    pub description: Option<String>,
    /// Up to 50 event types (`task.created`) or prefixes ending in `.`
    /// (`task.`); absent or empty: every event.
    pub event_types: Option<Vec<String>>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::emptied")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "tenet_http::patch::required")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
}

/// A webhook with its signing secret: answered only at creation and
/// rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Shown
    /// once; a response replayed for an `Idempotency-Key` lacks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A test delivery, queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// Always `queued`: it is delivered like every event, from the log.
    pub status: &'static str,
}

#[derive(Debug, Deserialize)]
pub struct WebhookPath {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
}

impl Refusal for WebhookError {
    fn problem(self) -> ApiError {
        match self {
            WebhookError::NotFound => ApiError::not_found("No such webhook"),
            other => ApiError::conflict(other.to_string()),
        }
    }
}

fn view(workspace: WorkspaceId, id: WebhookId, committed: &Committed<Webhook>) -> WebhookView {
    let state = &committed.state;
    WebhookView {
        id,
        workspace_id: workspace,
        url: state.url.clone(),
        description: state.description.clone(),
        event_types: state.event_types.clone(),
        enabled: state.enabled,
        disabled_reason: state.disabled_reason.clone(),
        previous_secret_until: state.previous_until,
        created_by: state
            .created_by
            .unwrap_or_else(|| UserId::from_uuid(uuid::Uuid::nil())),
        created_at: state.created_at.unwrap_or_default(),
        updated_at: state.updated_at.unwrap_or_default(),
        version: committed.revision(),
    }
}

/// Checks the filters: each an event type or a prefix ending in `.`.
fn event_types(checks: &mut Checks, types: &[String]) -> Vec<String> {
    if types.len() > EVENT_TYPES_MAX {
        checks.add(
            "event_types",
            format!("must list at most {EVENT_TYPES_MAX} event types"),
        );
    }
    for (index, kind) in types.iter().enumerate() {
        let valid = !kind.is_empty()
            && kind.len() <= EVENT_TYPE_MAX
            && !kind.starts_with('.')
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !valid {
            checks.add(
                format!("event_types[{index}]"),
                "must be an event type (task.created) or a prefix ending in . (task.)",
            );
        }
    }
    let mut types = types.to_vec();
    types.sort();
    types.dedup();
    types
}

/// `POST /api/v1/workspaces/{workspace_id}/webhooks`: creates a webhook;
/// the answer holds its signing secret, the only time it is shown.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/webhooks",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h), without the secret"),
    ),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the secret is in the body, once", body = WebhookWithSecret,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        AddErrors,
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn create_webhook(
    State(state): State<CommandState>,
    access: Scoped<WebhooksWrite>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<CreateWebhook>,
) -> Result<Written<WebhookWithSecret>, ApiError> {
    let mut checks = Checks::new();
    if let Err(message) = state.webhooks.targets.check_url(&body.url) {
        checks.add("url", message);
    }
    let description = checks.text(
        "description",
        body.description.as_deref().unwrap_or_default(),
        DESCRIPTION_MAX,
    );
    let types = event_types(&mut checks, body.event_types.as_deref().unwrap_or_default());
    checks.finish()?;
    let secret = new_secret();
    let created = WebhookCreated {
        url: body.url,
        description,
        event_types: types,
        enabled: body.enabled.unwrap_or(true),
        sealed_secret: state.webhooks.secrets.seal(&secret),
        created_by: access.principal.user_id,
    };
    let (workspace, id) = (access.workspace_id, WebhookId::generate());
    let mut answer = state
        .repository
        .by(&access.principal, &request_id)
        .on::<Webhook>(access.tenant(), id)
        .new_stream()
        .decide(|webhook| decide(webhook, WebhookCommand::Create(created.clone())))
        // Without the secret: the stored (replayable) response never holds it.
        .reply(move |committed| {
            Reply::created(
                WebhookWithSecret {
                    webhook: view(workspace, id, committed),
                    secret: None,
                },
                Some(committed.revision()),
                format!("/api/v1/workspaces/{workspace}/webhooks/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await?;
    answer.body.secret = Some(secret);
    Ok(answer)
}

/// `PATCH /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}`:
/// changes the URL, description, filters or enabled flag. Enabling a
/// webhook again delivers the events from then on, not those in between.
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    request_body(content((UpdateWebhook = "application/json"), (UpdateWebhook = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Updated", body = WebhookView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        ChangeErrors,
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn update_webhook(
    State(state): State<CommandState>,
    access: Scoped<WebhooksWrite>,
    Path(path): Path<WebhookPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<UpdateWebhook>,
) -> Result<Written<WebhookView>, ApiError> {
    let mut checks = Checks::new();
    if let Some(url) = &body.url
        && let Err(message) = state.webhooks.targets.check_url(url)
    {
        checks.add("url", message);
    }
    let description = body
        .description
        .as_deref()
        .map(|description| checks.text("description", description, DESCRIPTION_MAX));
    let types = body
        .event_types
        .as_deref()
        .map(|types| event_types(&mut checks, types));
    checks.finish()?;
    let update = WebhookUpdated {
        url: body.url,
        description,
        event_types: types,
        enabled: body.enabled,
    };
    let (workspace, id) = (access.workspace_id, path.webhook_id);
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Webhook>(access.tenant(), id)
        .if_match(if_match)
        .decide(|webhook| decide(webhook, WebhookCommand::Update(update.clone())))
        .reply(move |committed| {
            Reply::ok(view(workspace, id, committed), Some(committed.revision()))
        })
        .await
}

/// `DELETE /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}`:
/// deletes a webhook; nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("X-Consistency-Token" = String))),
        StateErrors,
    ),
    security(("bearer" = ["webhooks:delete"]))
)]
pub async fn delete_webhook(
    State(state): State<CommandState>,
    access: Scoped<WebhooksDelete>,
    Path(path): Path<WebhookPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Webhook>(access.tenant(), path.webhook_id)
        .if_match(if_match)
        .decide(|webhook| decide(webhook, WebhookCommand::Delete))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}

/// `POST /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/rotate-secret`:
/// a new signing secret, shown once; for 24 hours deliveries carry a
/// signature with the previous one too, so receivers can switch over.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/rotate-secret",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h), without the secret"),
    ),
    responses(
        (status = 200, description = "Rotated; the new secret is in the body, once", body = WebhookWithSecret,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        StateErrors,
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn rotate_webhook_secret(
    State(state): State<CommandState>,
    access: Scoped<WebhooksWrite>,
    Path(path): Path<WebhookPath>,
    request_id: RequestId,
    idempotency: Idempotency,
) -> Result<Written<WebhookWithSecret>, ApiError> {
    let secret = new_secret();
    let sealed = state.webhooks.secrets.seal(&secret);
    let until = now() + Duration::hours(PREVIOUS_SECRET_HOURS);
    let (workspace, id) = (access.workspace_id, path.webhook_id);
    let mut answer = state
        .repository
        .by(&access.principal, &request_id)
        .on::<Webhook>(access.tenant(), id)
        .decide(|webhook| {
            decide(
                webhook,
                WebhookCommand::RotateSecret {
                    sealed_secret: sealed.clone(),
                    previous_until: until,
                },
            )
        })
        .reply(move |committed| {
            Reply::ok(
                WebhookWithSecret {
                    webhook: view(workspace, id, committed),
                    secret: None,
                },
                Some(committed.revision()),
            )
        })
        .idempotent(&idempotency)
        .await?;
    answer.body.secret = Some(secret);
    Ok(answer)
}

/// `POST /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/test`:
/// records a `webhook.test` event, which is delivered to this webhook
/// (whatever its filters) in log order like any other.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/test",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    responses(
        (status = 202, description = "Queued for delivery", body = TestQueued, headers(("X-Consistency-Token" = String))),
        StateErrors,
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn test_webhook(
    State(state): State<CommandState>,
    access: Scoped<WebhooksWrite>,
    Path(path): Path<WebhookPath>,
    request_id: RequestId,
    idempotency: Idempotency,
) -> Result<Written<TestQueued>, ApiError> {
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Webhook>(access.tenant(), path.webhook_id)
        .decide(|webhook| decide(webhook, WebhookCommand::Test))
        .reply(|_| Reply {
            status: StatusCode::ACCEPTED,
            body: TestQueued { status: "queued" },
            version: None,
            location: None,
        })
        .idempotent(&idempotency)
        .await
}

#[derive(Debug, Deserialize)]
pub struct DeliveryPath {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
    pub delivery_id: uuid::Uuid,
}

/// `POST /api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry`:
/// sends a delivery again now (a failed one too), with the same
/// `webhook-id` and body, in its place in log order.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("webhook_id" = uuid::Uuid, Path),
        ("delivery_id" = uuid::Uuid, Path),
    ),
    responses(
        (status = 202, description = "Queued for another attempt", body = TestQueued),
        RevokeErrors,
    ),
    security(("bearer" = ["webhooks:write"]))
)]
pub async fn retry_delivery(
    State(state): State<CommandState>,
    access: Scoped<WebhooksWrite>,
    Path(path): Path<DeliveryPath>,
) -> Result<(StatusCode, axum::Json<TestQueued>), ApiError> {
    let found = tenet_projections::webhooks::deliveries::retry(
        &state.db,
        access.tenant(),
        path.webhook_id,
        path.delivery_id,
    )
    .await?;
    if !found {
        return Err(ApiError::not_found("No such delivery"));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(TestQueued { status: "queued" }),
    ))
}
