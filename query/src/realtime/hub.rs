//! The registry of this process's WebSocket connections and their
//! subscriptions, and the fan-out of feed updates to them.
//!
//! The hub only routes: it never waits. Each connection has a bounded
//! queue; an update that finds it full marks the connection slow (its task
//! then tells the client and closes) instead of growing memory or holding
//! up everyone else. Dispatch and subscription both happen under one lock,
//! so a new subscription learns exactly which position the live stream
//! continues after — the seam a resume replays up to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tenet_events::ids::{ApiKeyId, ImpersonationId, Position, SessionId, TenantId, UserId};
use tenet_http::Credential;
use tenet_projections::feature_flags::{FlagView, evaluate};
use tenet_projections::feed::{FeedUpdate, Kind, Resource};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::channel::{Reads, Route};
use super::protocol;

pub type ConnectionId = u64;
pub type SubscriptionId = u64;

/// One message for one subscription of a connection.
#[derive(Debug)]
pub struct Delivery {
    pub subscription: SubscriptionId,
    pub position: Position,
    pub text: Utf8Bytes,
}

/// Who is behind a connection: what access-control events can affect it.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user_id: UserId,
    pub credential: Credential,
}

/// Connections whose access must be checked again, after an access-control
/// event of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// Everyone subscribed in the workspace (it was deleted).
    Tenant(TenantId),
    /// One user in one workspace (removed, or their role changed), and the
    /// API keys they issued there.
    Member(TenantId, UserId),
    ApiKey(ApiKeyId),
    Session(SessionId),
    /// Every connection of a user, whatever the credential (a deactivated
    /// account).
    User(UserId),
    /// The connections opened with an impersonation's token (it ended).
    Impersonation(ImpersonationId),
}

/// What a connection's task holds of its registration.
pub struct Registration {
    pub id: ConnectionId,
    pub deliveries: mpsc::Receiver<Delivery>,
    /// Cancelled when the queue overflowed.
    pub slow: CancellationToken,
    /// Woken when an access-control event may concern this connection.
    pub recheck: Arc<Notify>,
}

struct Connection {
    queue: mpsc::Sender<Delivery>,
    slow: CancellationToken,
    recheck: Arc<Notify>,
    identity: Identity,
    subscriptions: HashMap<SubscriptionId, Route>,
}

struct Subscriber {
    connection: ConnectionId,
    subscription: SubscriptionId,
    reads: Reads,
}

#[derive(Default)]
struct Inner {
    /// Every update at or below it has been handed to the queues.
    dispatched: Position,
    connections: HashMap<ConnectionId, Connection>,
    routes: HashMap<Route, Vec<Subscriber>>,
    next_id: u64,
}

impl Inner {
    fn remove(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.remove(&id) else {
            return;
        };
        for (subscription, route) in connection.subscriptions {
            self.unroute(route, id, subscription);
        }
    }

    fn unroute(&mut self, route: Route, connection: ConnectionId, subscription: SubscriptionId) {
        if let Some(subscribers) = self.routes.get_mut(&route) {
            subscribers.retain(|s| !(s.connection == connection && s.subscription == subscription));
            if subscribers.is_empty() {
                self.routes.remove(&route);
            }
        }
    }
}

pub struct Hub {
    /// Held only to read or change the maps, never across an await.
    inner: Mutex<Inner>,
    /// Capacity of each connection's queue, in messages.
    buffer: usize,
}

impl Hub {
    pub fn new(buffer: usize) -> Hub {
        Hub {
            inner: Mutex::new(Inner::default()),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a thread panicked while holding it;
        // every change leaves the maps consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn connect(&self, identity: Identity) -> Registration {
        let (queue, deliveries) = mpsc::channel(self.buffer);
        let slow = CancellationToken::new();
        let recheck = Arc::new(Notify::new());
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.connections.insert(
            id,
            Connection {
                queue,
                slow: slow.clone(),
                recheck: recheck.clone(),
                identity,
                subscriptions: HashMap::new(),
            },
        );
        metrics::gauge!("tenet_ws_connections").set(inner.connections.len() as f64);
        Registration {
            id,
            deliveries,
            slow,
            recheck,
        }
    }

    pub fn disconnect(&self, id: ConnectionId) {
        let mut inner = self.lock();
        inner.remove(id);
        metrics::gauge!("tenet_ws_connections").set(inner.connections.len() as f64);
    }

    /// Adds a subscription; answers its id and the position live updates
    /// continue after (`None` if the connection was dropped as slow).
    pub fn subscribe(
        &self,
        connection: ConnectionId,
        route: Route,
        reads: Reads,
    ) -> Option<(SubscriptionId, Position)> {
        let mut inner = self.lock();
        inner.next_id += 1;
        let subscription = inner.next_id;
        let dispatched = inner.dispatched;
        inner
            .connections
            .get_mut(&connection)?
            .subscriptions
            .insert(subscription, route);
        inner.routes.entry(route).or_default().push(Subscriber {
            connection,
            subscription,
            reads,
        });
        Some((subscription, dispatched))
    }

    pub fn unsubscribe(&self, connection: ConnectionId, subscription: SubscriptionId) {
        let mut inner = self.lock();
        let route = inner
            .connections
            .get_mut(&connection)
            .and_then(|c| c.subscriptions.remove(&subscription));
        if let Some(route) = route {
            inner.unroute(route, connection, subscription);
        }
    }

    /// Narrows (or widens) what a subscription may see, after its scopes
    /// were checked again.
    pub fn set_reads(&self, connection: ConnectionId, subscription: SubscriptionId, reads: Reads) {
        let mut inner = self.lock();
        let route = inner
            .connections
            .get(&connection)
            .and_then(|c| c.subscriptions.get(&subscription).copied());
        if let Some(subscribers) = route.and_then(|route| inner.routes.get_mut(&route)) {
            for subscriber in subscribers
                .iter_mut()
                .filter(|s| s.connection == connection && s.subscription == subscription)
            {
                subscriber.reads = reads;
            }
        }
    }

    pub fn dispatched(&self) -> Position {
        self.lock().dispatched
    }

    pub fn connections(&self) -> usize {
        self.lock().connections.len()
    }

    /// Moves the live stream to `through` without reading anything, if no
    /// one is subscribed (answers whether it did).
    pub fn skip_if_idle(&self, through: Position) -> bool {
        let mut inner = self.lock();
        if !inner.routes.is_empty() {
            return false;
        }
        inner.dispatched = inner.dispatched.max(through);
        true
    }

    /// Hands `updates` (every update in `(dispatched, through]`, in feed
    /// order) to the subscribers of their routes.
    pub fn dispatch(&self, updates: &[FeedUpdate], through: Position) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut dropped = Vec::new();
        let mut sent = 0u64;
        for update in updates.iter().filter(|u| u.position > inner.dispatched) {
            if let Resource::FeatureFlag(_) = update.resource {
                broadcast_flag(&*inner, update, &mut dropped, &mut sent);
                continue;
            }
            let mut tail: Option<String> = None;
            for route in Route::of(update) {
                let Some(subscribers) = inner.routes.get(&route) else {
                    continue;
                };
                // Every subscriber of a route gets the same text.
                let mut text: Option<Utf8Bytes> = None;
                for subscriber in subscribers {
                    if !subscriber.reads.allows(update.resource) {
                        continue;
                    }
                    let Some(connection) = inner.connections.get(&subscriber.connection) else {
                        continue;
                    };
                    if connection.slow.is_cancelled() {
                        continue;
                    }
                    let text = match &text {
                        Some(text) => text.clone(),
                        None => {
                            let tail = tail.get_or_insert_with(|| protocol::update_tail(update));
                            let made = Utf8Bytes::from(protocol::update_text(
                                update,
                                route.channel(),
                                tail,
                            ));
                            text = Some(made.clone());
                            made
                        }
                    };
                    let delivery = Delivery {
                        subscription: subscriber.subscription,
                        position: update.position,
                        text,
                    };
                    match connection.queue.try_send(delivery) {
                        Ok(()) => sent += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            connection.slow.cancel();
                            metrics::counter!("tenet_ws_slow_consumers_total").increment(1);
                            dropped.push(subscriber.connection);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            dropped.push(subscriber.connection);
                        }
                    }
                }
            }
        }
        inner.dispatched = inner.dispatched.max(through);
        for connection in dropped {
            inner.remove(connection);
        }
        metrics::counter!("tenet_ws_updates_total").increment(sent);
    }

    /// Wakes the connections an access-control event may concern.
    pub fn recheck(&self, which: &[Recheck]) {
        if which.is_empty() {
            return;
        }
        let inner = self.lock();
        for connection in inner.connections.values() {
            let concerned = which.iter().any(|recheck| match *recheck {
                Recheck::Tenant(tenant) => connection
                    .subscriptions
                    .values()
                    .any(|route| route.tenant() == tenant),
                Recheck::Member(tenant, user) => {
                    connection.identity.user_id == user
                        && connection
                            .subscriptions
                            .values()
                            .any(|route| route.tenant() == tenant)
                }
                Recheck::ApiKey(key) => matches!(
                    connection.identity.credential,
                    Credential::ApiKey { key_id, .. } if key_id == key
                ),
                Recheck::Session(session) => matches!(
                    connection.identity.credential,
                    Credential::Token { session: Some(s) } if s == session
                ),
                Recheck::User(user) => connection.identity.user_id == user,
                Recheck::Impersonation(impersonation) => matches!(
                    connection.identity.credential,
                    Credential::Impersonation { id, .. } if id == impersonation
                ),
            });
            if concerned {
                connection.recheck.notify_one();
            }
        }
    }
}

/// A platform-wide feature flag's change, to every workspace channel of
/// this process: its key and whether it is on for that workspace (or,
/// once deleted, its key alone).
fn broadcast_flag(
    inner: &Inner,
    update: &FeedUpdate,
    dropped: &mut Vec<ConnectionId>,
    sent: &mut u64,
) {
    let flag: Option<FlagView> = match update.kind {
        Kind::Update => match serde_json::from_str(&update.data) {
            Ok(flag) => Some(flag),
            Err(error) => {
                tracing::warn!(%error, position = %update.position, "undecodable feature flag in the feed");
                return;
            }
        },
        Kind::Removed => None,
    };
    let removed_data = update.data.as_str();
    for (route, subscribers) in &inner.routes {
        let Route::Workspace(tenant) = *route else {
            continue;
        };
        let data = match &flag {
            Some(flag) => serde_json::json!({
                "key": flag.key,
                "enabled": evaluate(flag, tenant.into()),
            })
            .to_string(),
            None => removed_data.to_owned(),
        };
        let text = Utf8Bytes::from(format!(
            r#"{{"type":"{}","channel":"{}","position":{},"event_type":{},"resource":"feature_flag","data":{}}}"#,
            update.kind.as_str(),
            route.channel(),
            update.position.0,
            serde_json::json!(update.event_type),
            data,
        ));
        for subscriber in subscribers {
            let Some(connection) = inner.connections.get(&subscriber.connection) else {
                continue;
            };
            if connection.slow.is_cancelled() {
                continue;
            }
            let delivery = Delivery {
                subscription: subscriber.subscription,
                position: update.position,
                text: text.clone(),
            };
            match connection.queue.try_send(delivery) {
                Ok(()) => *sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    connection.slow.cancel();
                    metrics::counter!("tenet_ws_slow_consumers_total").increment(1);
                    dropped.push(subscriber.connection);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => dropped.push(subscriber.connection),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tenet_events::ids::{TaskId, WorkspaceId};
    use tenet_projections::feed::{Kind, Resource};

    use super::*;

    const ALL: Reads = Reads {
        projects: true,
        tasks: true,
        comments: true,
        automations: true,
    };

    fn identity() -> Identity {
        Identity {
            user_id: UserId::generate(),
            credential: Credential::Token { session: None },
        }
    }

    fn task_update(tenant: TenantId, position: i64) -> FeedUpdate {
        let task = TaskId::generate();
        FeedUpdate {
            position: Position(position),
            tenant_id: tenant,
            kind: Kind::Update,
            resource: Resource::Task(task),
            project_id: None,
            task_id: Some(task),
            event_type: "task.created".to_owned(),
            data: "{}".to_owned(),
        }
    }

    #[test]
    fn updates_reach_only_subscribers_of_their_tenant() {
        let hub = Hub::new(8);
        let (mine, theirs) = (TenantId::generate(), TenantId::generate());
        let mut me = hub.connect(identity());
        let mut them = hub.connect(identity());
        hub.subscribe(me.id, Route::Workspace(mine), ALL);
        hub.subscribe(them.id, Route::Workspace(theirs), ALL);
        hub.dispatch(&[task_update(mine, 1)], Position(1));
        let delivery = me.deliveries.try_recv().expect("delivered");
        assert_eq!(delivery.position, Position(1));
        assert!(
            delivery
                .text
                .as_str()
                .contains(&WorkspaceId::from(mine).to_string())
        );
        assert!(them.deliveries.try_recv().is_err());
    }

    #[test]
    fn a_flag_reaches_every_workspace_channel_evaluated_for_it() {
        let hub = Hub::new(8);
        let (on, off) = (TenantId::generate(), TenantId::generate());
        let mut first = hub.connect(identity());
        let mut second = hub.connect(identity());
        let no_reads = Reads {
            projects: false,
            tasks: false,
            comments: false,
            automations: false,
        };
        hub.subscribe(first.id, Route::Workspace(on), no_reads);
        hub.subscribe(second.id, Route::Workspace(off), no_reads);
        let flag = serde_json::json!({
            "key": "beta",
            "description": "",
            "enabled": false,
            "rollout_percent": 0,
            "overrides": { WorkspaceId::from(on).to_string(): true },
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "version": 2,
        });
        let update = FeedUpdate {
            position: Position(7),
            tenant_id: TenantId::PLATFORM,
            kind: Kind::Update,
            resource: Resource::FeatureFlag(tenet_events::ids::FeatureFlagId::generate()),
            project_id: None,
            task_id: None,
            event_type: "feature_flag.overridden".to_owned(),
            data: flag.to_string(),
        };
        hub.dispatch(&[update], Position(7));
        for (connection, tenant, enabled) in [(&mut first, on, true), (&mut second, off, false)] {
            let delivery = connection.deliveries.try_recv().expect("delivered");
            let message: serde_json::Value =
                serde_json::from_str(delivery.text.as_str()).expect("JSON");
            assert_eq!(
                message["channel"],
                format!("workspace:{}", WorkspaceId::from(tenant)).as_str()
            );
            assert_eq!(message["resource"], "feature_flag");
            assert_eq!(
                message["data"],
                serde_json::json!({ "key": "beta", "enabled": enabled })
            );
        }
    }

    #[test]
    fn a_subscription_learns_where_the_live_stream_continues() {
        let hub = Hub::new(8);
        let tenant = TenantId::generate();
        let me = hub.connect(identity());
        hub.dispatch(&[task_update(tenant, 3)], Position(5));
        let (_, after) = hub
            .subscribe(me.id, Route::Workspace(tenant), ALL)
            .expect("connected");
        assert_eq!(after, Position(5));
    }

    #[test]
    fn a_full_queue_marks_the_connection_slow_and_drops_it() {
        let hub = Hub::new(2);
        let tenant = TenantId::generate();
        let slow = hub.connect(identity());
        let mut fine = hub.connect(identity());
        hub.subscribe(slow.id, Route::Workspace(tenant), ALL);
        hub.subscribe(fine.id, Route::Workspace(tenant), ALL);
        for position in 1..=3 {
            hub.dispatch(&[task_update(tenant, position)], Position(position));
            fine.deliveries.try_recv().expect("the other keeps up");
        }
        assert!(slow.slow.is_cancelled());
        assert_eq!(hub.connections(), 1);
    }

    #[test]
    fn reads_filter_what_a_subscriber_sees() {
        let hub = Hub::new(8);
        let tenant = TenantId::generate();
        let mut me = hub.connect(identity());
        let no_tasks = Reads {
            tasks: false,
            ..ALL
        };
        hub.subscribe(me.id, Route::Workspace(tenant), no_tasks);
        hub.dispatch(&[task_update(tenant, 1)], Position(1));
        assert!(me.deliveries.try_recv().is_err());
    }

    #[tokio::test]
    async fn rechecks_wake_only_the_concerned_connections() {
        let hub = Hub::new(8);
        let tenant = TenantId::generate();
        let member = identity();
        let me = hub.connect(member.clone());
        let other = hub.connect(identity());
        hub.subscribe(me.id, Route::Workspace(tenant), ALL);
        hub.subscribe(other.id, Route::Workspace(tenant), ALL);
        hub.recheck(&[Recheck::Member(tenant, member.user_id)]);
        tokio::time::timeout(std::time::Duration::from_secs(1), me.recheck.notified())
            .await
            .expect("woken");
        let woken = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            other.recheck.notified(),
        )
        .await;
        assert!(woken.is_err(), "another user is not concerned");
    }
}
