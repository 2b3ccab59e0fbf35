//! The realtime feed: `GET /api/v1/ws` upgrades to a WebSocket on which a
//! client follows channels of its workspaces and receives each change of
//! the read models, in log order, once, resumable after a disconnect.
//!
//! The projectors record every visible change in an outbox
//! (`tenet_projections::feed`); the [`worker`] of each query process
//! follows it below the writers' checkpoints and hands updates to the
//! [`hub`], which routes them to the bounded queues of the
//! [`connection`]s subscribed. Nothing here writes the read models, and no
//! update is made up on this side: what a client receives is what the
//! projector recorded.

pub mod channel;
pub mod connection;
pub mod hub;
pub mod protocol;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use tenet_events::db::Db;
use tenet_events::store::EventStore;
use tenet_http::auth::{Auth, bearer_of};
use tenet_http::{ApiError, Query};
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::responses::SignedInErrors;

pub use hub::Hub;

/// Bytes of each connection's read buffer.
const READ_BUFFER: usize = 4 * 1024;

/// Limits and timings of WebSocket connections.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Messages a connection may have waiting to be written; one more and
    /// the client is cut off as a slow consumer.
    pub send_buffer: usize,
    /// How often the server pings.
    pub heartbeat: Duration,
    /// A client heard from (any frame, pongs included) less recently than
    /// this is disconnected; also the longest one frame may take to write.
    pub idle_timeout: Duration,
    pub max_subscriptions: usize,
    /// How often each connection checks its credential and access again,
    /// besides right after an access-control event that concerns it.
    pub recheck_every: Duration,
    /// Largest message a client may send.
    pub max_message_bytes: usize,
    /// How long a subscription waits for the read model to show a project
    /// or task that is not there yet.
    pub lookup_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            send_buffer: 1024,
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_subscriptions: 100,
            recheck_every: Duration::from_secs(60),
            max_message_bytes: 16 * 1024,
            lookup_timeout: Duration::from_secs(2),
        }
    }
}

/// What the realtime routes need.
#[derive(Clone)]
pub struct Realtime {
    pub hub: Arc<Hub>,
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub auth: Auth,
    /// Lets a subscription to a project or task created a moment ago wait
    /// for its read model instead of answering `NOT_FOUND`.
    pub checkpoints: tenet_projections::Checkpoints,
    pub settings: Settings,
    /// Connections close (going away) when it is cancelled.
    pub shutdown: CancellationToken,
}

impl axum::extract::FromRef<Realtime> for Auth {
    fn from_ref(realtime: &Realtime) -> Auth {
        realtime.auth.clone()
    }
}

/// The WebSocket, and the workspace event feed (whose streams learn of
/// access changes through the same hub).
pub fn router(realtime: Realtime) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .merge(crate::feed::router())
        .with_state(realtime)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Connect {
    /// The bearer token (JWT or API key), for clients that cannot set
    /// headers on a WebSocket (browsers). `Authorization` wins if both are
    /// given.
    pub token: Option<String>,
}

/// Realtime updates over a WebSocket
///
/// `GET /api/v1/ws` upgrades to a WebSocket. Authenticate with
/// `Authorization: Bearer <token>` or `?token=<token>` (a JWT or an API
/// key); without a valid credential the upgrade is refused with 401.
///
/// **Client messages** (JSON text frames):
/// `{"type":"subscribe","channel":"workspace:<id>"|"project:<id>"|"task:<id>","since":<position>?}`,
/// `{"type":"unsubscribe","channel":"..."}`, `{"type":"ping"}`.
///
/// **Server messages**: `{"type":"subscribed","channel","workspace_id","position","since"}`
/// (live updates follow after `position`; with `since`, the updates in
/// `(since, position]` are replayed first); `{"type":"update","channel","position","event_type","resource","data"}`
/// where `resource` is `project`, `task`, `comment`, `automation` or
/// `execution` (the last two need `automations:read`) and `data` is
/// exactly what the REST detail endpoint answers after that change;
/// `{"type":"removed",...,"data":{"id",...}}` on delete;
/// `{"type":"unsubscribed","channel"}`; `{"type":"pong"}`;
/// `{"type":"error","code","message","channel"?}` with `code` one of
/// `BAD_REQUEST`, `NOT_FOUND` (no such channel, or another tenant's),
/// `FORBIDDEN`, `CONFLICT`, `SINCE_TOO_OLD`, `SLOW_CONSUMER`,
/// `AUTHENTICATION_ERROR`, `SERVICE_UNAVAILABLE`.
///
/// **Channels**: `workspace:<id>` needs `workspace:read` and carries every
/// update of the workspace; `project:<id>` needs `projects:read` and
/// carries the project, its tasks and their comments; `task:<id>` needs
/// `tasks:read` and carries the task and its comments. Within any channel,
/// projects, tasks and comments are only sent to holders of
/// `projects:read`, `tasks:read` and `comments:read` respectively.
///
/// **Order and resume**: updates carry the log position of the event
/// that caused them and arrive in log order, each once. Keep the last
/// `position` seen and subscribe again with `since` after a disconnect:
/// nothing is missed or repeated. A `since` older than the retention
/// answers `SINCE_TOO_OLD`.
///
/// **Limits**: the server pings every heartbeat and closes connections
/// idle past the timeout; a client whose send buffer overflows gets
/// `SLOW_CONSUMER` and is disconnected; losing membership or a scope ends
/// the affected subscriptions with an error; an invalid credential closes
/// the connection.
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "realtime",
    params(Connect),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = tenet_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter other than `token`; `errors` names each", body = tenet_http::Problem, content_type = "application/problem+json"),
        SignedInErrors,
    ),
    security(("bearer" = []))
)]
pub async fn connect(
    State(realtime): State<Realtime>,
    headers: HeaderMap,
    Query(query): Query<Connect>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Who is asking is answered before anything about the request.
    let bearer = bearer_of(&headers)
        .map(str::to_owned)
        .or(query.token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "This needs a bearer token (Authorization: Bearer ... or ?token=...)",
            )
        })?;
    let principal = realtime.auth.principal(&bearer).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::bad_request(format!(
            "This route only upgrades to a WebSocket: {rejection}"
        ))
    })?;
    Ok(upgrade
        // Clients send a few small messages: a read buffer of the default
        // 128 KiB per connection would be most of its memory.
        .read_buffer_size(READ_BUFFER)
        .max_message_size(realtime.settings.max_message_bytes)
        .max_frame_size(realtime.settings.max_message_bytes)
        .on_upgrade(move |socket| connection::serve(socket, realtime, principal, bearer)))
}
