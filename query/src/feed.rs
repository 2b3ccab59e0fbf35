//! The workspace event feed: `GET /api/v1/workspaces/{workspace_id}/events`,
//! the workspace's events in log order for every member (`events:read`),
//! as pages (`after`, `limit`) or, with `Accept: text/event-stream`, as
//! Server-Sent Events that follow the log live and resume from
//! `Last-Event-ID`.
//!
//! Items are read and redacted by the audit log's own code
//! ([`crate::audit::tenant_events_after`]): a secret hidden there is hidden
//! here. Positions are the log's, the same as the WebSocket's and the
//! consistency token's. A stream learns of access changes the way a
//! WebSocket does: it registers with the realtime [`Hub`] (with a
//! workspace route that reads nothing), which wakes it when an
//! access-control event concerning it passes the feed worker, and it
//! checks again every `recheck_every`. It must not write anything.
//!
//! [`Hub`]: crate::realtime::Hub

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenet_events::ids::{Position, TenantId};
use tenet_http::auth::{EventsRead, Requirement, Scoped, bearer_of};
use tenet_http::openapi::ReadErrors;
use tenet_http::{ApiError, Principal, Query};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{AuditActor, AuditItem, tenant_events_after};
use crate::realtime::Realtime;
use crate::realtime::channel::{Reads, Route};
use crate::realtime::hub::Identity;

/// Items per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 50;
/// Most items per page (and per read of a stream).
const MAX_LIMIT: u64 = 100;
/// Events a stream may have waiting to be written: a client that reads
/// none holds at most this much memory, then the stream waits for it.
const STREAM_BUFFER: usize = 64;
/// A stream looks at the log this often even if no commit woke it (a
/// commit of another process that no notification reported).
const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// Up to `limit` of one tenant's events after `after`, in log order, as
/// the feed shows them: what a webhook delivery carries.
pub async fn read_after(
    db: &tenet_events::db::Db,
    tenant: TenantId,
    after: Position,
    limit: u64,
) -> Result<Vec<FeedEvent>, ApiError> {
    Ok(
        tenant_events_after(db, tenant, after, limit.clamp(1, MAX_LIMIT))
            .await?
            .into_iter()
            .map(FeedEvent::from)
            .collect(),
    )
}

pub fn router() -> OpenApiRouter<Realtime> {
    OpenApiRouter::new().routes(routes!(workspace_events))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Events after this log position (default 0: from the start). For a
    /// stream, where it starts (default: the current end of the log);
    /// `Last-Event-ID` wins over it.
    pub after: Option<i64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

/// One event of the workspace, as the feed (and a webhook delivery) shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FeedEvent {
    /// The event's id (stable: the same event always has the same id).
    pub id: Uuid,
    /// Its position in the log.
    pub position: i64,
    /// Its type, `task.created` and so on.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The resource (stream) it happened to.
    pub stream_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor: AuditActor,
    /// The payload as recorded, secrets redacted.
    pub data: serde_json::Value,
}

impl From<AuditItem> for FeedEvent {
    fn from(item: AuditItem) -> FeedEvent {
        FeedEvent {
            id: item.event_id,
            position: item.position,
            event_type: item.event_type,
            stream_id: item.stream_id,
            occurred_at: item.occurred_at,
            actor: item.actor,
            data: item.data,
        }
    }
}

/// A page of the feed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub items: Vec<FeedEvent>,
    /// Whether more events may follow: ask again with `after` = `last_position`.
    pub has_more: bool,
    /// The position of the last item, or `after` if there is none: the
    /// `after` of the next page.
    pub last_position: i64,
}

/// The workspace event feed
///
/// `GET /api/v1/workspaces/{workspace_id}/events`: the workspace's events
/// in log order, secrets redacted, after `after`. With
/// `Accept: text/event-stream` the answer is a stream of Server-Sent
/// Events instead: each event's SSE `id` is its log position, its
/// `event` its type and its `data` the item as JSON; it follows the log
/// live, sends a comment as a heartbeat every `TENET_WS_HEARTBEAT_SECS`,
/// and resumes after `Last-Event-ID` with no gap and no duplicate. A
/// stream ends (after an `error` event) when the caller loses access to
/// the workspace or its credential stops being valid.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/events",
    tag = "events",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        FeedQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "For a stream: resume after this position"),
    ),
    responses(
        (status = 200, description = "A page of events (application/json), or a stream of them (text/event-stream)", body = FeedPage),
        ReadErrors,
    ),
    security(("bearer" = ["events:read"]))
)]
pub async fn workspace_events(
    State(realtime): State<Realtime>,
    access: Scoped<EventsRead>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let resume = last_event_id(&headers)?;
    let after = match (resume, query.after) {
        (Some(resume), _) => Some(resume),
        (None, Some(after)) if after < 0 => {
            return Err(ApiError::field("after", "must be 0 or more"));
        }
        (None, after) => after.map(Position),
    };
    let head = realtime.store.head().await?;
    if after.is_some_and(|after| after > head) {
        let field = if resume.is_some() {
            "Last-Event-ID"
        } else {
            "after"
        };
        return Err(ApiError::field(
            field,
            "is ahead of the log: not a position this server issued",
        ));
    }
    if wants_stream(&headers) {
        let bearer = bearer_of(&headers).unwrap_or_default().to_owned();
        return Ok(stream(
            realtime,
            access.0.principal.clone(),
            bearer,
            access.tenant(),
            after.unwrap_or(head),
        )
        .into_response());
    }
    let after = after.unwrap_or(Position::START);
    let items: Vec<FeedEvent> = tenant_events_after(&realtime.db, access.tenant(), after, limit)
        .await?
        .into_iter()
        .map(FeedEvent::from)
        .collect();
    let last_position = items.last().map_or(after.0, |item| item.position);
    let page = FeedPage {
        has_more: items.len() as u64 == limit,
        items,
        last_position,
    };
    Ok((StatusCode::OK, axum::Json(page)).into_response())
}

/// `Last-Event-ID`, a log position, if the client sent one.
fn last_event_id(headers: &HeaderMap) -> Result<Option<Position>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || ApiError::field("Last-Event-ID", "must be a log position (0 or more)");
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(position) if position >= 0 => Ok(Some(Position(position))),
        _ => Err(bad()),
    }
}

/// Whether the client asked for Server-Sent Events.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|kind| {
            kind.split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The SSE answer: a task follows the log for this caller and hands
/// events to a bounded queue the response body drains; when the task ends
/// (access lost, shutdown, the client gone) the body ends.
fn stream(
    realtime: Realtime,
    principal: Principal,
    bearer: String,
    tenant: TenantId,
    after: Position,
) -> impl IntoResponse {
    let (sender, receiver) = mpsc::channel::<Event>(STREAM_BUFFER);
    let heartbeat = realtime.settings.heartbeat;
    tokio::spawn(follow(realtime, principal, bearer, tenant, after, sender));
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    metrics::counter!("tenet_event_streams_total").increment(1);
    Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat))
}

/// Why a stream stopped.
enum Stop {
    /// The client left (or the server is shutting down): nothing to say.
    Quiet,
    /// Told to the client as a last `error` event.
    Told(&'static str, &'static str),
}

/// Follows one tenant's log after `after` into `sender` until the client
/// leaves, the server shuts down, or the caller loses access.
async fn follow(
    realtime: Realtime,
    principal: Principal,
    bearer: String,
    tenant: TenantId,
    after: Position,
    sender: mpsc::Sender<Event>,
) {
    let registration = realtime.hub.connect(Identity {
        user_id: principal.user_id,
        credential: principal.credential.clone(),
    });
    // Routed to the workspace so access-control events of it wake this
    // stream; it reads no row of the outbox (events come from the log).
    let none = Reads {
        projects: false,
        tasks: false,
        comments: false,
        automations: false,
    };
    realtime
        .hub
        .subscribe(registration.id, Route::Workspace(tenant), none);
    let stop = tail(
        &realtime,
        &bearer,
        tenant,
        after,
        &sender,
        &registration.recheck,
    )
    .await;
    realtime.hub.disconnect(registration.id);
    if let Stop::Told(code, message) = stop {
        let body = serde_json::json!({ "code": code, "message": message });
        let _ = sender
            .send(Event::default().event("error").data(body.to_string()))
            .await;
    }
}

async fn tail(
    realtime: &Realtime,
    bearer: &str,
    tenant: TenantId,
    mut after: Position,
    sender: &mpsc::Sender<Event>,
    recheck: &tokio::sync::Notify,
) -> Stop {
    let mut head = realtime.store.watch_head();
    let every = realtime.settings.recheck_every;
    let mut recheck_every = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut poll = tokio::time::interval(FALLBACK_POLL);
    let shutdown = realtime.shutdown.clone();
    loop {
        // Mark the head seen before reading, so a commit that lands
        // during the read wakes the next wait.
        head.borrow_and_update();
        let events = match tenant_events_after(&realtime.db, tenant, after, MAX_LIMIT).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(detail = %error.detail, "event stream cannot read the log; retrying");
                Vec::new()
            }
        };
        let full = events.len() as u64 == MAX_LIMIT;
        for item in events {
            let position = item.position;
            let event_type = item.event_type.clone();
            let data = match serde_json::to_string(&FeedEvent::from(item)) {
                Ok(data) => data,
                Err(error) => {
                    tracing::warn!(%error, "cannot serialize a feed event");
                    return Stop::Quiet;
                }
            };
            let event = Event::default()
                .id(position.to_string())
                .event(event_type)
                .data(data);
            tokio::select! {
                sent = sender.send(event) => if sent.is_err() { return Stop::Quiet },
                () = shutdown.cancelled() => return Stop::Quiet,
            }
            after = Position(position);
        }
        if full {
            continue;
        }
        let check = tokio::select! {
            _ = head.changed() => false,
            _ = poll.tick() => false,
            () = recheck.notified() => true,
            _ = recheck_every.tick() => true,
            () = sender.closed() => return Stop::Quiet,
            () = shutdown.cancelled() => return Stop::Quiet,
        };
        if check && let Some(stop) = lost_access(realtime, bearer, tenant).await {
            return stop;
        }
    }
}

/// Checks the credential and the caller's access again: `Some` when the
/// stream must end.
async fn lost_access(realtime: &Realtime, bearer: &str, tenant: TenantId) -> Option<Stop> {
    let principal = match realtime.auth.principal(bearer).await {
        Ok(principal) => principal,
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            return Some(Stop::Told(
                "AUTHENTICATION_ERROR",
                "The credential of this stream is no longer valid; reconnect with a fresh one and Last-Event-ID",
            ));
        }
        Err(error) => {
            tracing::warn!(detail = %error.detail, "cannot check an event stream's credential");
            return None;
        }
    };
    match realtime.auth.access(&principal, tenant.into()).await {
        Ok(None) => Some(Stop::Told(
            "NOT_FOUND",
            "No longer a member of this workspace: the stream ended",
        )),
        Ok(Some(access)) if !access.scopes.allows(EventsRead::SCOPE) => Some(Stop::Told(
            "FORBIDDEN",
            "The scope events:read was withdrawn: the stream ended",
        )),
        Ok(Some(_)) => None,
        Err(error) => {
            tracing::warn!(detail = %error.detail, "cannot check an event stream's access");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_an_event_stream_accept_asks_for_a_stream() {
        let mut headers = HeaderMap::new();
        assert!(!wants_stream(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_stream(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, Text/Event-Stream;q=0.9"),
        );
        assert!(wants_stream(&headers));
    }

    #[test]
    fn last_event_id_is_a_position() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers).ok(), Some(None));
        headers.insert("last-event-id", HeaderValue::from_static(" 42 "));
        assert_eq!(last_event_id(&headers).ok(), Some(Some(Position(42))));
        headers.insert("last-event-id", HeaderValue::from_static("-1"));
        assert!(last_event_id(&headers).is_err());
        headers.insert("last-event-id", HeaderValue::from_static("abc"));
        assert!(last_event_id(&headers).is_err());
    }
}
