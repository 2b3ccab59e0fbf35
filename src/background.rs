//! The background work of one process, by role. Each loop is started by a
//! named function here; [`crate::Server::bind`] decides which of them run,
//! and the server waits for them all at shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tenet_command::repository::Repository;
use tenet_events::bus::Bus;
use tenet_events::db::Db;
use tenet_events::relay::Relay;
use tenet_events::store::{self, EventStore};
use tenet_http::ratelimit::RateLimits;
use tenet_projections::{Checkpoints, FEED_WRITERS, Runtime, SourceKind};
use tenet_query::realtime::Hub;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{RealtimeConfig, Role, ServeConfig};
use crate::{inline_projectors, projectors};

/// How often expired idempotency records are removed: they are replayed
/// for 24 hours; afterwards they only take room.
const PURGE_RESPONSES_EVERY: Duration = Duration::from_secs(3600);

/// How often the rate limiter forgets clients that went quiet.
const FORGET_IDLE_CLIENTS_EVERY: Duration = Duration::from_secs(60);

/// The background tasks of a process and the handles they are started with
/// (shared with the HTTP surface).
pub(crate) struct Background {
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub bus: Option<Bus>,
    pub checkpoints: Checkpoints,
    pub repository: Arc<Repository>,
    pub shutdown: CancellationToken,
    pub tasks: JoinSet<()>,
}

impl Background {
    pub fn new(db: Db, store: Arc<dyn EventStore>, bus: Option<Bus>) -> Background {
        Background {
            db,
            // One per process: commands on a stream take turns on its lock
            // and share its cached state.
            repository: Arc::new(Repository::new(store.clone())),
            store,
            bus,
            checkpoints: Checkpoints::default(),
            shutdown: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Starts the background work of the roles `config` gives this
    /// process; the feed worker hands updates to `hub`, and `limits` is
    /// swept of idle clients.
    pub async fn start(
        &mut self,
        config: &ServeConfig,
        hub: Arc<Hub>,
        limits: Arc<RateLimits>,
    ) -> anyhow::Result<()> {
        if config.runs(Role::Command) || config.runs(Role::Projector) {
            self.start_relay();
        }
        if config.runs(Role::Projector) {
            self.start_projectors(&config.realtime).await?;
            self.start_automations(Duration::from_millis(config.automation_step_delay_ms));
        }
        if config.runs(Role::Query) {
            self.follow_checkpoints();
        }
        if config.runs(Role::Command) {
            self.start_purging_responses();
        }
        if config.runs(Role::Query) {
            self.start_feed(hub);
        }
        self.start_forgetting_idle_clients(limits);
        Ok(())
    }

    /// The relay, which publishes the log to JetStream (Postgres with NATS).
    fn start_relay(&mut self) {
        if let (Some(bus), Db::Postgres(pool)) = (&self.bus, &self.db) {
            let relay = Relay::new(pool.clone(), self.store.clone(), bus.clone());
            self.tasks.spawn(relay.run(self.shutdown.clone()));
        }
    }

    /// The projector role: a supervisor per projection, the outbox's pruner
    /// and (with NATS) announcer, and the policy that unassigns the tasks
    /// of departed members.
    async fn start_projectors(&mut self, realtime: &RealtimeConfig) -> anyhow::Result<()> {
        let projectors = projectors();
        let runtime = Runtime {
            // A runner per projection, another per rebuild, and their
            // supervisors' occasional reads.
            db: self
                .db
                .without_fsync(2 * (projectors.len() + inline_projectors().len()) as u32 + 2),
            store: self.store.clone(),
            source: self
                .bus
                .clone()
                .map_or(SourceKind::Log, |bus| SourceKind::JetStream(Box::new(bus))),
            checkpoints: self.checkpoints.clone(),
        };
        let mut runners = runtime
            .start(&projectors, &inline_projectors(), self.shutdown.clone())
            .await
            .context("cannot start the projectors")?;
        self.tasks
            .spawn(async move { while runners.join_next().await.is_some() {} });
        self.tasks.spawn(tenet_projections::feed::run_pruner(
            self.db.clone(),
            &FEED_WRITERS,
            Duration::from_secs(realtime.retention_secs),
            Duration::from_millis(realtime.prune_every_ms.max(1)),
            self.shutdown.clone(),
        ));
        if let Some(bus) = &self.bus {
            self.tasks.spawn(tenet_projections::feed::announce(
                self.db.clone(),
                self.checkpoints.clone(),
                bus.clone(),
                &FEED_WRITERS,
                self.shutdown.clone(),
            ));
        }
        self.tasks.spawn(tenet_command::task::policy::run(
            tenet_command::task::policy::Worker {
                db: self.db.clone(),
                repository: self.repository.clone(),
                checkpoints: self.checkpoints.clone(),
            },
            self.shutdown.clone(),
        ));
        Ok(())
    }

    /// The policy that runs automations (with the projector role, beside
    /// the projector that records its work).
    fn start_automations(&mut self, step_delay: Duration) {
        self.tasks.spawn(tenet_command::automation::policy::run(
            tenet_command::automation::policy::Worker {
                db: self.db.clone(),
                repository: self.repository.clone(),
                checkpoints: self.checkpoints.clone(),
                step_delay,
            },
            self.shutdown.clone(),
        ));
    }

    /// Follows the checkpoint notifications of other processes (Postgres),
    /// so reads that wait for a consistency token wake when they commit.
    fn follow_checkpoints(&mut self) {
        if let Db::Postgres(pool) = &self.db {
            let follower = self.checkpoints.clone().follow(pool.clone());
            let stop = self.shutdown.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    () = follower => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    }

    /// Removes expired idempotency records now and then.
    fn start_purging_responses(&mut self) {
        self.tasks.spawn(purge_expired_responses(
            self.db.clone(),
            self.shutdown.clone(),
        ));
    }

    /// The realtime feed of a query process: the checkpoint announcements
    /// of projector processes (with NATS), and the worker that hands the
    /// outbox to `hub`.
    fn start_feed(&mut self, hub: Arc<Hub>) {
        if let Some(bus) = &self.bus {
            self.tasks
                .spawn(tenet_projections::feed::follow_announcements(
                    bus.clone(),
                    self.checkpoints.clone(),
                    &FEED_WRITERS,
                    self.shutdown.clone(),
                ));
        }
        let worker = tenet_query::realtime::worker::Worker {
            hub,
            db: self.db.clone(),
            store: self.store.clone(),
            checkpoints: self.checkpoints.clone(),
        };
        self.tasks.spawn(worker.run(self.shutdown.clone()));
    }

    /// Lets the rate limiter forget idle clients now and then.
    fn start_forgetting_idle_clients(&mut self, limits: Arc<RateLimits>) {
        self.tasks
            .spawn(forget_idle_clients(limits, self.shutdown.clone()));
    }
}

/// Removes expired idempotency records every [`PURGE_RESPONSES_EVERY`],
/// until shutdown.
async fn purge_expired_responses(db: Db, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(PURGE_RESPONSES_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {
                match store::purge_expired_responses(&db).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "expired idempotency records removed"),
                    Err(error) => tracing::warn!(%error, "cannot remove expired idempotency records"),
                }
            }
        }
    }
}

/// Forgets the rate-limit state of idle clients every
/// [`FORGET_IDLE_CLIENTS_EVERY`], until shutdown.
async fn forget_idle_clients(limits: Arc<RateLimits>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(FORGET_IDLE_CLIENTS_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => limits.forget_idle(),
        }
    }
}
