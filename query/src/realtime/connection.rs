//! One WebSocket connection: its subscriptions, their access checks, the
//! replay of a resume, and the socket's liveness.
//!
//! A connection's task is the only writer of its socket. It takes live
//! updates from its bounded queue in the hub, answers client messages, and
//! checks its access again when an access-control event may concern it and
//! every `recheck_every`. It must not block the hub: everything it waits
//! on is its own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::SinkExt;
use tenet_events::ids::{Position, ProjectId, TaskId, TenantId, WorkspaceId};
use tenet_events::store::StoreError;
use tenet_http::{Access, ApiError, Principal};
use tenet_projections::feed::{self, Cursor, Scope};
use tokio::time::Instant;

use super::Realtime;
use super::channel::{Channel, Reads};
use super::hub::{Identity, Registration, SubscriptionId};
use super::protocol::{self, ClientMessage, code};

/// Rows read per page of a replay.
const REPLAY_PAGE: i64 = 500;

/// How long the last words to a client that is being dropped may take.
const FAREWELL: Duration = Duration::from_secs(1);

/// The connection is over: the client left, the socket failed, or the
/// hub dropped it as slow.
struct Gone;

struct Subscription {
    id: SubscriptionId,
    workspace: WorkspaceId,
    /// Live updates at or below it were replayed (or were before `since`).
    after: Position,
}

struct Session {
    realtime: Realtime,
    socket: WebSocket,
    principal: Principal,
    bearer: String,
    registration: Registration,
    subscriptions: HashMap<Channel, Subscription>,
    channels: HashMap<SubscriptionId, Channel>,
}

/// Serves an upgraded connection until it closes.
pub async fn serve(socket: WebSocket, realtime: Realtime, principal: Principal, bearer: String) {
    let registration = realtime.hub.connect(Identity {
        user_id: principal.user_id,
        credential: principal.credential.clone(),
    });
    let id = registration.id;
    let hub = realtime.hub.clone();
    let mut session = Session {
        realtime,
        socket,
        principal,
        bearer,
        registration,
        subscriptions: HashMap::new(),
        channels: HashMap::new(),
    };
    session.run().await;
    hub.disconnect(id);
}

impl Session {
    async fn run(&mut self) {
        let settings = self.realtime.settings.clone();
        let start = Instant::now();
        let mut heartbeat =
            tokio::time::interval_at(start + settings.heartbeat, settings.heartbeat);
        let mut recheck_every =
            tokio::time::interval_at(start + settings.recheck_every, settings.recheck_every);
        let mut heard = Instant::now();
        let shutdown = self.realtime.shutdown.clone();
        let slow = self.registration.slow.clone();
        let recheck = self.registration.recheck.clone();
        loop {
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    self.close(close_code::AWAY, "the server is shutting down").await;
                    return;
                }
                () = slow.cancelled() => break,
                delivery = self.registration.deliveries.recv() => match delivery {
                    Some(delivery) => self.forward(delivery.subscription, delivery.position, delivery.text).await,
                    None => break,
                },
                frame = self.socket.recv() => match frame {
                    Some(Ok(frame)) => {
                        heard = Instant::now();
                        self.on_frame(frame).await
                    }
                    // Gone, or a protocol error (an oversized frame among them).
                    _ => return,
                },
                () = recheck.notified() => self.recheck().await,
                _ = recheck_every.tick() => self.recheck().await,
                _ = heartbeat.tick() => {
                    if heard.elapsed() >= settings.idle_timeout {
                        self.close(close_code::AWAY, "idle: nothing heard from the client").await;
                        return;
                    }
                    self.send(Message::Ping(Bytes::new())).await
                }
            };
            if let Err(Gone) = step {
                break;
            }
        }
        if slow.is_cancelled() {
            // Best effort: a client that reads nothing never sees it.
            let farewell = protocol::error(
                code::SLOW_CONSUMER,
                "This connection fell too far behind its updates and is closed; reconnect and resume with since",
                None,
            );
            let _ = tokio::time::timeout(FAREWELL, async {
                let _ = self.socket.send(Message::Text(farewell.into())).await;
                let _ = self
                    .socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::POLICY,
                        reason: "slow consumer".into(),
                    })))
                    .await;
            })
            .await;
        }
    }

    /// Writes a frame, giving up on a client that accepts nothing for the
    /// idle timeout or that the hub found too slow meanwhile.
    async fn send(&mut self, message: Message) -> Result<(), Gone> {
        let (slow, limit) = self.limits();
        guarded(&slow, limit, self.socket.send(message)).await
    }

    /// Buffers a frame without writing it out (unless the buffer is full).
    async fn feed(&mut self, message: Message) -> Result<(), Gone> {
        let (slow, limit) = self.limits();
        guarded(&slow, limit, self.socket.feed(message)).await
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        let (slow, limit) = self.limits();
        guarded(&slow, limit, self.socket.flush()).await
    }

    fn limits(&self) -> (tokio_util::sync::CancellationToken, Duration) {
        (
            self.registration.slow.clone(),
            self.realtime.settings.idle_timeout,
        )
    }

    async fn send_text(&mut self, text: String) -> Result<(), Gone> {
        self.send(Message::Text(text.into())).await
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = tokio::time::timeout(
            FAREWELL,
            self.socket.send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))),
        )
        .await;
    }

    async fn forward(
        &mut self,
        subscription: SubscriptionId,
        position: Position,
        text: Utf8Bytes,
    ) -> Result<(), Gone> {
        let fresh = self
            .channels
            .get(&subscription)
            .and_then(|channel| self.subscriptions.get(channel))
            .is_some_and(|subscription| position > subscription.after);
        // Under a burst, frames are buffered and written together once the
        // queue is drained: one write for many updates.
        let more = !self.registration.deliveries.is_empty();
        if !fresh {
            // Unsubscribed since, or replayed already.
            return if more { Ok(()) } else { self.flush().await };
        }
        if more {
            self.feed(Message::Text(text)).await
        } else {
            self.send(Message::Text(text)).await
        }
    }

    async fn on_frame(&mut self, frame: Message) -> Result<(), Gone> {
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .send_text(protocol::error(
                        code::BAD_REQUEST,
                        "Messages are JSON text frames",
                        None,
                    ))
                    .await;
            }
            // Pings are answered by the WebSocket layer; pongs only show
            // the client is alive.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Gone),
        };
        match ClientMessage::parse(text.as_str()) {
            Err(bad) => {
                self.send_text(protocol::error(code::BAD_REQUEST, &bad.to_string(), None))
                    .await
            }
            Ok(ClientMessage::Ping) => self.send_text(protocol::pong()).await,
            Ok(ClientMessage::Unsubscribe { channel }) => self.unsubscribe(&channel).await,
            Ok(ClientMessage::Subscribe { channel, since }) => {
                self.subscribe(&channel, since).await
            }
        }
    }

    async fn unsubscribe(&mut self, text: &str) -> Result<(), Gone> {
        let channel = match Channel::parse(text) {
            Ok(channel) => channel,
            Err(error) => {
                return self
                    .send_text(protocol::error(code::BAD_REQUEST, &error.to_string(), None))
                    .await;
            }
        };
        if self.end(channel) {
            self.send_text(protocol::unsubscribed(channel)).await
        } else {
            self.send_text(protocol::error(
                code::NOT_FOUND,
                "Not subscribed to this channel",
                Some(channel),
            ))
            .await
        }
    }

    /// Forgets a subscription; answers whether there was one.
    fn end(&mut self, channel: Channel) -> bool {
        let Some(subscription) = self.subscriptions.remove(&channel) else {
            return false;
        };
        self.channels.remove(&subscription.id);
        self.realtime
            .hub
            .unsubscribe(self.registration.id, subscription.id);
        true
    }

    async fn refuse(&mut self, code: &str, message: &str, channel: Channel) -> Result<(), Gone> {
        self.send_text(protocol::error(code, message, Some(channel)))
            .await
    }

    async fn subscribe(&mut self, text: &str, since: Option<i64>) -> Result<(), Gone> {
        let channel = match Channel::parse(text) {
            Ok(channel) => channel,
            Err(error) => {
                return self
                    .send_text(protocol::error(code::BAD_REQUEST, &error.to_string(), None))
                    .await;
            }
        };
        let admitted = match self.room_for(channel, since) {
            Ok(()) => admit(&self.realtime, &self.principal, channel, since).await,
            Err(refusal) => Err(refusal),
        };
        let access = match admitted {
            Ok(access) => access,
            Err(refusal) => return self.refuse(refusal.code, &refusal.message, channel).await,
        };
        let since = since.map(Position);
        let workspace = access.workspace_id;
        let tenant = TenantId::from(workspace);
        let reads = Reads::of(&access.scopes);
        let Some((id, live_after)) =
            self.realtime
                .hub
                .subscribe(self.registration.id, channel.route(tenant), reads)
        else {
            // Dropped as slow meanwhile.
            return Err(Gone);
        };
        self.subscriptions.insert(
            channel,
            Subscription {
                id,
                workspace,
                after: since.map_or(live_after, |since| since.max(live_after)),
            },
        );
        self.channels.insert(id, channel);
        self.send_text(protocol::subscribed(channel, workspace, live_after, since))
            .await?;
        match since {
            Some(since) if since < live_after => {
                self.replay(channel, tenant, reads, since, live_after).await
            }
            _ => Ok(()),
        }
    }

    /// Whether this connection can take the subscription: not held
    /// already, within the connection's limit, with a `since` that is a
    /// position.
    fn room_for(&self, channel: Channel, since: Option<i64>) -> Result<(), Refusal> {
        if self.subscriptions.contains_key(&channel) {
            return Err(Refusal::new(
                code::CONFLICT,
                "Subscribed to this channel already",
            ));
        }
        let most = self.realtime.settings.max_subscriptions;
        if self.subscriptions.len() >= most {
            return Err(Refusal::new(
                code::CONFLICT,
                format!("A connection holds at most {most} subscriptions"),
            ));
        }
        if since.is_some_and(|since| since < 0) {
            return Err(Refusal::new(
                code::BAD_REQUEST,
                "since must be a position (0 or more)",
            ));
        }
        Ok(())
    }

    /// Sends the channel's updates in `(since, through]` from the outbox,
    /// page by page, before any live one (which the queue holds meanwhile).
    async fn replay(
        &mut self,
        channel: Channel,
        tenant: TenantId,
        reads: Reads,
        since: Position,
        through: Position,
    ) -> Result<(), Gone> {
        let scope = match channel {
            Channel::Workspace(_) => Scope::Tenant,
            Channel::Project(project) => Scope::Project(project),
            Channel::Task(task) => Scope::Task(task),
        };
        let mut cursor = Cursor::after(since);
        loop {
            let page = feed::read_tenant(
                &self.realtime.db,
                tenant,
                scope,
                &cursor,
                through,
                REPLAY_PAGE,
            )
            .await;
            let (updates, next) = match page {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "cannot replay the feed");
                    self.end(channel);
                    return self
                        .refuse(
                            code::UNAVAILABLE,
                            "Cannot replay now; resume again",
                            channel,
                        )
                        .await;
                }
            };
            for update in updates.iter().filter(|u| reads.allows(u.resource)) {
                let tail = protocol::update_tail(update);
                self.send_text(protocol::update_text(update, channel, &tail))
                    .await?;
            }
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        // Pruned while it was read: what was sent may have holes.
        match feed::horizon(&self.realtime.db).await {
            Ok(horizon) if since < horizon => {
                self.end(channel);
                self.refuse(code::SINCE_TOO_OLD, SINCE_TOO_OLD, channel)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Checks the credential and each subscription's access again: a
    /// credential no longer valid closes the connection; a lost
    /// membership or scope ends the subscriptions it covered.
    async fn recheck(&mut self) -> Result<(), Gone> {
        let principal = match self.realtime.auth.principal(&self.bearer).await {
            Ok(principal) => principal,
            Err(error) if error.status == axum::http::StatusCode::UNAUTHORIZED => {
                let (code, message, reason) = if error.code == code::ACCOUNT_DEACTIVATED {
                    (
                        code::ACCOUNT_DEACTIVATED,
                        "This account was deactivated by a platform admin",
                        "account deactivated",
                    )
                } else if error.code == code::IMPERSONATION_ENDED {
                    (
                        code::IMPERSONATION_ENDED,
                        "The impersonation this connection was opened with has ended",
                        "impersonation ended",
                    )
                } else {
                    (
                        code::AUTHENTICATION_ERROR,
                        "The credential of this connection is no longer valid; reconnect with a fresh one",
                        "credential no longer valid",
                    )
                };
                self.send_text(protocol::error(code, message, None)).await?;
                self.close(close_code::POLICY, reason).await;
                return Err(Gone);
            }
            Err(error) => {
                tracing::warn!(detail = %error.detail, "cannot check a connection's credential");
                return Ok(());
            }
        };
        self.principal = principal;
        let mut accesses: HashMap<WorkspaceId, Option<Access>> = HashMap::new();
        let held: Vec<(Channel, WorkspaceId, SubscriptionId)> = self
            .subscriptions
            .iter()
            .map(|(channel, subscription)| (*channel, subscription.workspace, subscription.id))
            .collect();
        for (channel, workspace, id) in held {
            let access = match accesses.get(&workspace) {
                Some(access) => access.clone(),
                None => match self.realtime.auth.access(&self.principal, workspace).await {
                    Ok(access) => {
                        accesses.insert(workspace, access.clone());
                        access
                    }
                    Err(error) => {
                        tracing::warn!(detail = %error.detail, "cannot check a subscription's access");
                        continue;
                    }
                },
            };
            match access {
                None => {
                    self.end(channel);
                    self.refuse(
                        code::NOT_FOUND,
                        "No longer a member of this workspace: the subscription ended",
                        channel,
                    )
                    .await?;
                }
                Some(access) if !access.scopes.allows(channel.needs()) => {
                    self.end(channel);
                    let message = format!(
                        "The scope {} was withdrawn: the subscription ended",
                        channel.needs()
                    );
                    self.refuse(code::FORBIDDEN, &message, channel).await?;
                }
                Some(access) => {
                    self.realtime.hub.set_reads(
                        self.registration.id,
                        id,
                        Reads::of(&access.scopes),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Runs a write on the socket unless it outlasts `limit` or the hub marks
/// the connection slow meanwhile.
async fn guarded(
    slow: &tokio_util::sync::CancellationToken,
    limit: Duration,
    write: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), Gone> {
    tokio::select! {
        written = tokio::time::timeout(limit, write) => match written {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        },
        () = slow.cancelled() => Err(Gone),
    }
}

/// Why a subscription is refused: the error message's code and text.
struct Refusal {
    code: &'static str,
    message: Cow<'static, str>,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// Why a subscription could not be checked now (the client is asked to
/// retry).
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("cannot read the log: {0}")]
    Log(#[from] StoreError),
    #[error("cannot read the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot check access: {}", .0.detail)]
    Access(ApiError),
}

const SINCE_TOO_OLD: &str = "since is older than the updates this server keeps: reload the resources, then subscribe without since";

fn not_found(channel: Channel) -> &'static str {
    match channel {
        Channel::Workspace(_) => "No such workspace",
        Channel::Project(_) => "No such project",
        Channel::Task(_) => "No such task",
    }
}

/// Admits the caller to a channel that exists in one of their workspaces,
/// with the scope it needs, from a `since` it can resume from: answers
/// their access to the channel's workspace.
async fn admit(
    realtime: &Realtime,
    principal: &Principal,
    channel: Channel,
    since: Option<i64>,
) -> Result<Access, Refusal> {
    let access = match access_to(realtime, principal, channel).await {
        Ok(Some(access)) => access,
        Ok(None) => return Err(Refusal::new(code::NOT_FOUND, not_found(channel))),
        Err(error) => {
            tracing::warn!(%error, "cannot check access to a channel");
            return Err(Refusal::new(
                code::UNAVAILABLE,
                "Cannot check access now; retry",
            ));
        }
    };
    if !access.scopes.allows(channel.needs()) {
        return Err(Refusal::new(
            code::FORBIDDEN,
            format!("This channel needs the scope {}", channel.needs()),
        ));
    }
    if let Some(since) = since {
        match check_since(realtime, Position(since)).await {
            Ok(None) => {}
            Ok(Some((code, message))) => return Err(Refusal::new(code, message)),
            Err(error) => {
                tracing::warn!(%error, "cannot check a resume position");
                return Err(Refusal::new(code::UNAVAILABLE, "Cannot resume now; retry"));
            }
        }
    }
    Ok(access)
}

/// Whether `since` can be resumed from: `None`, or the error to answer.
async fn check_since(
    realtime: &Realtime,
    since: Position,
) -> Result<Option<(&'static str, &'static str)>, CheckError> {
    let head = realtime.store.head().await?;
    if since > head {
        return Ok(Some((
            code::BAD_REQUEST,
            "since is ahead of the log: it is not a position this server issued",
        )));
    }
    let horizon = feed::horizon(&realtime.db).await?;
    if since < horizon {
        return Ok(Some((code::SINCE_TOO_OLD, SINCE_TOO_OLD)));
    }
    Ok(None)
}

/// The caller's access to the workspace a channel belongs to; `None`
/// when the channel does not exist or is in a workspace the caller is
/// not a member of (the two are never told apart).
async fn access_to(
    realtime: &Realtime,
    principal: &Principal,
    channel: Channel,
) -> Result<Option<Access>, CheckError> {
    let workspace = match channel {
        Channel::Workspace(workspace) => Some(workspace),
        Channel::Project(project) => Lookup::Project(project).tenant(realtime, principal).await?,
        Channel::Task(task) => Lookup::Task(task).tenant(realtime, principal).await?,
    };
    let Some(workspace) = workspace else {
        return Ok(None);
    };
    realtime
        .auth
        .access(principal, workspace)
        .await
        .map_err(CheckError::Access)
}

/// A project or task whose workspace is looked up.
#[derive(Clone, Copy)]
enum Lookup {
    Project(ProjectId),
    Task(TaskId),
}

impl Lookup {
    /// The projection whose read model knows it.
    fn projection(self) -> &'static str {
        match self {
            Lookup::Project(_) => tenet_projections::projects::NAME,
            Lookup::Task(_) => tenet_projections::tasks::NAME,
        }
    }

    /// The workspace of the row, looked up only among the caller's
    /// workspaces (so the lookup itself reveals nothing). A row not there
    /// may be one created a moment ago: it is asked for again once the read
    /// model has caught up with the log (briefly bounded).
    async fn tenant(
        &self,
        realtime: &Realtime,
        principal: &Principal,
    ) -> Result<Option<WorkspaceId>, CheckError> {
        // Read before the lookup: what was applied by then, the lookup saw.
        let applied = realtime.checkpoints.current(self.projection());
        if let Some(found) = self.find(realtime, principal).await? {
            return Ok(Some(found));
        }
        let head = realtime.store.head().await?;
        if applied >= head {
            return Ok(None);
        }
        let caught_up = realtime
            .checkpoints
            .wait_for(
                &realtime.db,
                self.projection(),
                head,
                realtime.settings.lookup_timeout,
            )
            .await;
        match caught_up {
            Ok(()) => Ok(self.find(realtime, principal).await?),
            Err(_) => Ok(None),
        }
    }

    async fn find(
        &self,
        realtime: &Realtime,
        principal: &Principal,
    ) -> Result<Option<WorkspaceId>, sqlx::Error> {
        let (db, member) = (&realtime.db, principal.user_id);
        match *self {
            Lookup::Project(project) => {
                tenet_projections::projects::workspace_of(db, project, member).await
            }
            Lookup::Task(task) => tenet_projections::tasks::workspace_of(db, task, member).await,
        }
    }
}
