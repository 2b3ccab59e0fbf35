//! The audit log: the event log itself, as owners, admins and platform
//! admins browse it. Every item is one event, in log order, with who
//! caused it and why (request, correlation and causation ids); secrets in
//! payloads are redacted by event type (`catalogue::SECRET_FIELDS`).
//!
//! A workspace's audit log is its tenant's events only (filtered in SQL);
//! platform-wide streams (users, sessions) appear only in the platform
//! admins' log.

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::catalogue::redacted;
use tenet_events::db::Db;
use tenet_events::ids::{ApiKeyId, Position, StreamId, TenantId, UserId};
use tenet_http::auth::{AuditRead, PlatformAdmin, Scoped};
use tenet_http::openapi::ReadErrors;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, PageRequest, Path, Query};
use tenet_projections::access::{api_key_name, user_name};
use tenet_projections::listing::{Bind, Listing};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::responses::{AdminErrors, ScopedErrors};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(workspace_audit_log))
        .routes(routes!(platform_audit_log))
        .routes(routes!(stream_events))
}

/// Longest `event_type` filter accepted.
const EVENT_TYPE_MAX: usize = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilters {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// Events caused by this user (directly or through one of their API
    /// keys) or this API key.
    #[param(value_type = Option<String>, format = Uuid)]
    pub actor_id: Option<Uuid>,
    /// An event type (`task.created`), or a prefix ending in `.` (`task.`).
    pub event_type: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub stream_id: Option<Uuid>,
    /// Events that happened at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events that happened before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Events after this log position: tail a large log without offsets.
    pub after_position: Option<i64>,
    /// Platform admins only: one tenant's events.
    #[param(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<Uuid>,
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditActor {
    /// `user`, `api_key`, `policy` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user or API key (absent for policies and the system).
    pub id: Option<Uuid>,
    /// A name to show: the user's name and email, the key's name, the
    /// policy's or the system component's name.
    pub display: String,
    /// For an API key: the user it acts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
}

/// The platform admin who acted as the actor (a user), with an
/// impersonation token.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditImpersonator {
    pub id: Uuid,
    /// Their name and email.
    pub display: String,
}

/// One event of the log.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditItem {
    pub position: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// The workspace (or, for platform-wide streams, the nil id).
    pub tenant_id: Uuid,
    pub stream_id: Uuid,
    /// The aggregate type of the stream (`task`, `workspace`, ...).
    pub stream_type: String,
    pub stream_version: i64,
    pub actor: AuditActor,
    /// Set when a platform admin wrote this event impersonating `actor`.
    pub impersonated_by: Option<AuditImpersonator>,
    pub occurred_at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// The W3C trace context the event was appended in (the span of its
    /// append, or of the request when spans are not exported): its trace id
    /// is the one the request's `traceparent` named.
    #[schema(example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    pub traceparent: Option<String>,
    /// The payload as recorded (at `schema_version`), secrets redacted.
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    position: i64,
    event_id: Uuid,
    tenant_id: Uuid,
    stream_id: Uuid,
    stream_type: String,
    stream_version: i64,
    event_type: String,
    schema_version: i32,
    data: serde_json::Value,
    actor_type: String,
    actor_id: Option<Uuid>,
    actor_name: Option<String>,
    actor_user_id: Option<Uuid>,
    request_id: Option<String>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    occurred_at: DateTime<Utc>,
    impersonated_by: Option<Uuid>,
    traceparent: Option<String>,
}

const COLUMNS: &str = "position, event_id, tenant_id, stream_id, stream_type, stream_version, \
    event_type, schema_version, data, actor_type, actor_id, actor_name, actor_user_id, request_id, \
    correlation_id, causation_id, occurred_at, impersonated_by, traceparent";

/// Adds the filters to a listing of `events`.
fn restrict(listing: &mut Listing, filters: &AuditFilters) -> Result<(), ApiError> {
    if let Some(actor) = filters.actor_id {
        let actor = listing.bind(Bind::Uuid(actor));
        listing.from.push_str(&format!(
            " AND (actor_id = {actor} OR actor_user_id = {actor})"
        ));
    }
    if let Some(event_type) = &filters.event_type {
        let valid = !event_type.is_empty()
            && event_type.len() <= EVENT_TYPE_MAX
            && event_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !valid {
            return Err(ApiError::field(
                "event_type",
                "must be an event type (task.created) or a prefix ending in . (task.)",
            ));
        }
        if event_type.ends_with('.') {
            // No LIKE wildcard can occur: the grammar above has none.
            let prefix = listing.bind(Bind::Text(format!("{event_type}%")));
            listing
                .from
                .push_str(&format!(" AND event_type LIKE {prefix}"));
        } else {
            let exact = listing.bind(Bind::Text(event_type.clone()));
            listing.from.push_str(&format!(" AND event_type = {exact}"));
        }
    }
    if let Some(stream) = filters.stream_id {
        let stream = listing.bind(Bind::Uuid(stream));
        listing.from.push_str(&format!(" AND stream_id = {stream}"));
    }
    if let Some(from) = filters.from {
        let from = listing.bind(Bind::Time(from));
        listing
            .from
            .push_str(&format!(" AND occurred_at >= {from}"));
    }
    if let Some(to) = filters.to {
        let to = listing.bind(Bind::Time(to));
        listing.from.push_str(&format!(" AND occurred_at < {to}"));
    }
    if let (Some(from), Some(to)) = (filters.from, filters.to)
        && from > to
    {
        return Err(ApiError::field("to", "must not be before from"));
    }
    if let Some(after) = filters.after_position {
        if after < 0 {
            return Err(ApiError::field("after_position", "must be 0 or more"));
        }
        let after = listing.bind(Bind::Int(after));
        listing.from.push_str(&format!(" AND position > {after}"));
    }
    Ok(())
}

/// A page of events in log order, with actors named.
async fn page_of_events(
    state: &QueryState,
    tenant: Option<TenantId>,
    filters: &AuditFilters,
) -> Result<Page<AuditItem>, ApiError> {
    let page = PageRequest::new(filters.offset, filters.limit)?;
    let mut listing = Listing::new(COLUMNS, "FROM events WHERE 1 = 1", "position ASC");
    if let Some(tenant) = tenant {
        let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
        listing.from.push_str(&format!(" AND tenant_id = {tenant}"));
    }
    restrict(&mut listing, filters)?;
    let rows: Page<EventRow> = listing.page(&state.db, page).await?;
    items(&state.db, rows).await
}

/// Up to `limit` of one tenant's events after `after`, in log order, as
/// the audit log shows them (actors named, secrets redacted): the
/// workspace event feed reads through it, so the two never disagree on
/// what a secret is. No total is counted: a tail needs none.
pub(crate) async fn tenant_events_after(
    db: &Db,
    tenant: TenantId,
    after: Position,
    limit: u64,
) -> Result<Vec<AuditItem>, ApiError> {
    let page = PageRequest::new(None, Some(limit))?;
    let mut listing = Listing::new(COLUMNS, String::new(), "position ASC");
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    let after = listing.bind(Bind::Int(after.0));
    listing.from = format!("FROM events WHERE tenant_id = {tenant} AND position > {after}");
    let rows: Page<EventRow> = listing.page_of(db, page, 0).await?;
    Ok(items(db, rows).await?.items)
}

/// Turns rows into items: actors named (one lookup per page), secrets
/// redacted.
async fn items(db: &Db, rows: Page<EventRow>) -> Result<Page<AuditItem>, ApiError> {
    let names = actor_names(db, &rows.items).await?;
    Ok(rows.map(|row| {
        let actor = shown_actor(
            &row.actor_type,
            row.actor_id,
            row.actor_name.as_deref(),
            row.actor_user_id,
            &names,
        );
        AuditItem {
            position: row.position,
            event_id: row.event_id,
            data: redacted(&row.event_type, &row.data),
            event_type: row.event_type,
            schema_version: row.schema_version,
            tenant_id: row.tenant_id,
            stream_id: row.stream_id,
            stream_type: row.stream_type,
            stream_version: row.stream_version,
            actor,
            impersonated_by: row.impersonated_by.map(|id| AuditImpersonator {
                id,
                display: names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| "platform admin".to_owned()),
            }),
            occurred_at: row.occurred_at,
            request_id: row.request_id,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            traceparent: row.traceparent,
        }
    }))
}

/// An event's actor as every answer shows it (the audit log, the event
/// feed, a task's history): a user as "Name <email>", an API key as "API key
/// <name>", a policy or the system by its name. `names` comes from
/// [`display_names`]; an id it lacks shows as its kind.
pub(crate) fn shown_actor(
    kind: &str,
    id: Option<Uuid>,
    name: Option<&str>,
    user_id: Option<Uuid>,
    names: &HashMap<Uuid, String>,
) -> AuditActor {
    let display = match kind {
        "policy" | "system" => name.unwrap_or_default().to_owned(),
        _ => id
            .and_then(|id| names.get(&id).cloned())
            .unwrap_or_else(|| kind.replace('_', " ")),
    };
    AuditActor {
        kind: kind.to_owned(),
        id,
        display,
        user_id: (kind == "api_key").then_some(user_id).flatten(),
    }
}

/// Names of the users and API keys behind `rows`.
async fn actor_names(db: &Db, rows: &[EventRow]) -> Result<HashMap<Uuid, String>, ApiError> {
    let users = rows
        .iter()
        .filter(|row| row.actor_type == "user")
        .filter_map(|row| row.actor_id)
        .chain(rows.iter().filter_map(|row| row.impersonated_by));
    let keys = rows
        .iter()
        .filter(|row| row.actor_type == "api_key")
        .filter_map(|row| row.actor_id);
    display_names(db, users, keys).await
}

/// The names to show for `users` and API `keys`, by id (one lookup each).
pub(crate) async fn display_names(
    db: &Db,
    users: impl IntoIterator<Item = Uuid>,
    keys: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, ApiError> {
    let mut users: Vec<Uuid> = users.into_iter().collect();
    let mut keys: Vec<Uuid> = keys.into_iter().collect();
    users.sort_unstable();
    users.dedup();
    keys.sort_unstable();
    keys.dedup();
    let mut names = HashMap::new();
    for user in users {
        if let Some((name, email)) = user_name(db, UserId::from_uuid(user)).await? {
            names.insert(user, format!("{name} <{email}>"));
        }
    }
    for key in keys {
        if let Some(name) = api_key_name(db, ApiKeyId::from_uuid(key)).await? {
            names.insert(key, format!("API key {name}"));
        }
    }
    Ok(names)
}

/// `GET /api/v1/workspaces/{workspace_id}/audit-log`: the workspace's
/// events in log order (owners and admins).
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/audit-log",
    tag = "audit",
    params(("workspace_id" = uuid::Uuid, Path), AuditFilters),
    responses(
        (status = 200, description = "A page of events", body = Page<AuditItem>),
        ReadErrors,
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn workspace_audit_log(
    State(state): State<QueryState>,
    access: Scoped<AuditRead>,
    Query(filters): Query<AuditFilters>,
) -> Result<axum::Json<Page<AuditItem>>, ApiError> {
    if filters.tenant_id.is_some() {
        return Err(ApiError::field(
            "tenant_id",
            "is the workspace of the path here",
        ));
    }
    Ok(axum::Json(
        page_of_events(&state, Some(access.tenant()), &filters).await?,
    ))
}

/// `GET /api/v1/admin/audit-log`: every tenant's events in log order
/// (platform admins), or one tenant's with `tenant_id`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit-log",
    tag = "admin",
    params(AuditFilters),
    responses(
        (status = 200, description = "A page of events", body = Page<AuditItem>),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn platform_audit_log(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Query(filters): Query<AuditFilters>,
) -> Result<axum::Json<Page<AuditItem>>, ApiError> {
    let tenant = filters.tenant_id.map(TenantId::from_uuid);
    Ok(axum::Json(page_of_events(&state, tenant, &filters).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamPage {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct StreamPath {
    pub stream_id: StreamId,
}

/// `GET /api/v1/admin/streams/{stream_id}/events`: one stream's events in
/// version order (platform admins).
#[utoipa::path(
    get,
    path = "/api/v1/admin/streams/{stream_id}/events",
    tag = "admin",
    params(("stream_id" = uuid::Uuid, Path), StreamPage),
    responses(
        (status = 200, description = "A page of the stream's events", body = Page<AuditItem>),
        ScopedErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn stream_events(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Path(path): Path<StreamPath>,
    Query(query): Query<StreamPage>,
) -> Result<axum::Json<Page<AuditItem>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let mut listing = Listing::new(COLUMNS, String::new(), "stream_version ASC");
    let stream = listing.bind(Bind::Uuid(path.stream_id.as_uuid()));
    listing.from = format!("FROM events WHERE stream_id = {stream}");
    let rows: Page<EventRow> = listing.page(&state.db, page).await?;
    if rows.total == 0 {
        return Err(ApiError::not_found("No such stream"));
    }
    Ok(axum::Json(items(&state.db, rows).await?))
}
