//! The webhook dispatcher: delivers each workspace's events to its
//! webhooks from the committed log, never from the request path.
//!
//! It runs once per deployment (on Postgres, the process holding an
//! advisory lock, as the relay does; embedded, the one process). A
//! supervisor follows the enabled webhooks of the read model and runs one
//! worker per webhook, so a slow or dead endpoint only ever holds up its
//! own deliveries. A worker turns the tenant's events after its cursor
//! into delivery rows (the body as the event feed shows it, fixed once
//! recorded; one row per webhook and event, whose id is the stable
//! `webhook-id`), then attempts its oldest pending delivery, and only
//! that one: deliveries reach an endpoint in log order, at least once.
//! Each attempt waits until the webhooks read model has passed its event
//! and uses the webhook as it is then (its secrets, URL, enabled flag);
//! which events a webhook gets is decided by its filters when they are
//! read from the log, moments after they commit. A crash loses nothing: the rows and cursors are in the database, and
//! a delivery attempted again carries the same id and body.

mod send;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tenet_command::repository::Repository;
use tenet_command::webhook::aggregate::{Webhook, WebhookCommand, decide};
use tenet_command::webhook::target::TargetPolicy;
use tenet_events::db::Db;
use tenet_events::envelope::{Actor, Metadata};
use tenet_events::ids::{Position, WebhookId};
use tenet_events::leader::Leadership;
use tenet_events::store::EventStore;
use tenet_http::auth::sealed::SecretBox;
use tenet_projections::Checkpoints;
use tenet_projections::webhooks::deliveries::{self, DeliveryRow, NewDelivery};
use tenet_projections::webhooks::{self, WebhookRow};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Deliveries a webhook may have pending before its worker stops reading
/// the log ahead: bounds the rows a dead endpoint piles up in one go (the
/// cursor stays behind, the log keeps the rest).
const BACKLOG: i64 = 100;
/// Events read from the log at once.
const READ: u64 = 100;
/// How often the supervisor looks at the webhooks (and workers at the
/// log) even if no commit woke them.
const POLL: Duration = Duration::from_secs(1);
/// The name under which the dispatcher records what it does.
const NAME: &str = "webhook-dispatcher";

/// How deliveries are made.
#[derive(Clone)]
pub struct Settings {
    pub secrets: SecretBox,
    pub targets: TargetPolicy,
    /// The wait before the first retry; doubled for each after it.
    pub retry_base: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long a delivery is retried before it is marked failed.
    pub give_up: Duration,
    /// How long a webhook may fail without one success before it is
    /// disabled.
    pub disable_after: Duration,
}

pub struct Dispatcher {
    pub db: Db,
    /// Lets a worker wait until the webhooks read model has passed the
    /// event it is about to deliver.
    pub checkpoints: Checkpoints,
    pub store: Arc<dyn EventStore>,
    pub repository: Arc<Repository>,
    pub settings: Settings,
}

impl Dispatcher {
    /// Runs until shutdown: on Postgres only while this process is the
    /// elected dispatcher.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let Db::Postgres(pool) = &this.db else {
            this.clone().supervise(shutdown).await;
            return;
        };
        let pool = pool.clone();
        while !shutdown.is_cancelled() {
            match Leadership::try_acquire(&pool, "tenet.webhooks.dispatcher").await {
                Ok(Some(mut leadership)) => {
                    tracing::info!("webhook dispatcher elected");
                    let lost = CancellationToken::new();
                    let work = tokio::spawn(this.clone().supervise(lost.clone()));
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_secs(2)) => {
                                if leadership.confirm().await.is_err() {
                                    tracing::warn!("webhook dispatcher lost its lock");
                                    break;
                                }
                            }
                        }
                    }
                    lost.cancel();
                    let _ = work.await;
                    let _ = leadership.release().await;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot run for webhook dispatcher"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// One worker per enabled webhook, started, updated and stopped as the
    /// read model changes.
    async fn supervise(self: Arc<Self>, stop: CancellationToken) {
        let client = send::Client::new(&self.settings);
        let mut workers: HashMap<WebhookId, (watch::Sender<WebhookRow>, CancellationToken)> =
            HashMap::new();
        let mut head = self.store.watch_head();
        loop {
            match webhooks::enabled(&self.db).await {
                Ok(rows) => {
                    let live: Vec<WebhookId> = rows.iter().map(|row| row.id).collect();
                    for row in rows {
                        match workers.get(&row.id) {
                            Some((config, _)) => {
                                config.send_if_modified(|current| {
                                    let changed = *current != row;
                                    *current = row.clone();
                                    changed
                                });
                            }
                            None => {
                                let (config, receiver) = watch::channel(row.clone());
                                let cancel = stop.child_token();
                                let worker = Worker {
                                    dispatcher: self.clone(),
                                    client: client.clone(),
                                    config: receiver,
                                    cancel: cancel.clone(),
                                };
                                tokio::spawn(worker.run());
                                workers.insert(row.id, (config, cancel));
                            }
                        }
                    }
                    workers.retain(|id, (_, cancel)| {
                        let keep = live.contains(id);
                        if !keep {
                            cancel.cancel();
                        }
                        keep
                    });
                }
                Err(error) => tracing::warn!(%error, "cannot read the webhooks"),
            }
            match deliveries::oldest_pending(&self.db).await {
                Ok(oldest) => {
                    let age = oldest.map_or(0.0, |at| {
                        (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
                    });
                    metrics::gauge!("tenet_webhook_oldest_pending_seconds").set(age);
                }
                Err(error) => tracing::warn!(%error, "cannot read the pending deliveries"),
            }
            tokio::select! {
                () = stop.cancelled() => break,
                _ = head.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
        for (_, cancel) in workers.values() {
            cancel.cancel();
        }
    }
}

/// Delivers to one webhook, in log order.
struct Worker {
    dispatcher: Arc<Dispatcher>,
    client: send::Client,
    config: watch::Receiver<WebhookRow>,
    cancel: CancellationToken,
}

/// Why a worker's step failed (it is tried again shortly).
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("reading the log: {}", .0.detail)]
    Log(tenet_http::ApiError),
}

impl Worker {
    async fn run(mut self) {
        let mut head = self.dispatcher.store.watch_head();
        while !self.cancel.is_cancelled() {
            let wait = match self.step().await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::warn!(%error, "webhook delivery step failed; retrying");
                    Some(POLL)
                }
            };
            let Some(wait) = wait else {
                continue;
            };
            tokio::select! {
                () = self.cancel.cancelled() => return,
                _ = head.changed() => {}
                _ = self.config.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Records new deliveries, then attempts the first pending one if it
    /// is due. Answers how long to wait before the next step (`None`: go
    /// on at once).
    async fn step(&mut self) -> Result<Option<Duration>, StepError> {
        let row = self.config.borrow_and_update().clone();
        let db = &self.dispatcher.db;
        self.record_new(&row).await?;
        let Some(delivery) = deliveries::next_pending(db, row.id).await? else {
            return Ok(Some(POLL));
        };
        let now = Utc::now();
        if let Some(due) = delivery.next_attempt_at
            && due > now
        {
            return Ok(Some((due - now).to_std().unwrap_or_default().min(POLL * 5)));
        }
        // Delivered as the webhook is at this event at least: a rotation,
        // a new URL or a disabling before it in the log applies to it.
        let caught_up = self
            .dispatcher
            .checkpoints
            .follow_to(db, webhooks::NAME, Position(delivery.position), POLL * 5)
            .await;
        if caught_up.is_err() {
            return Ok(Some(POLL));
        }
        let Some(current) = webhooks::get_row(db, row.tenant_id, row.id).await? else {
            return Ok(Some(POLL));
        };
        if !current.enabled {
            return Ok(Some(POLL));
        }
        self.attempt(&current, delivery).await?;
        Ok(None)
    }

    /// Turns the tenant's events after the cursor into this webhook's
    /// deliveries, unless enough are pending already.
    async fn record_new(&self, row: &WebhookRow) -> Result<(), StepError> {
        let db = &self.dispatcher.db;
        if deliveries::pending(db, row.id).await? >= BACKLOG {
            return Ok(());
        }
        let cursor = deliveries::cursor(db, row.tenant_id, row.id, row.active_from).await?;
        let after = cursor.position.max(row.active_from);
        let events = tenet_query::feed::read_after(db, row.tenant_id, Position(after), READ)
            .await
            .map_err(StepError::Log)?;
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(());
        };
        let mut new = Vec::new();
        for event in events {
            let wanted = if event.event_type == "webhook.test" {
                event.stream_id == row.id.as_uuid()
            } else {
                tenet_events::catalogue::webhook::wants(&row.event_types.0, &event.event_type)
            };
            if !wanted {
                continue;
            }
            let body = match serde_json::to_string(&event) {
                Ok(body) => body,
                Err(error) => {
                    tracing::warn!(%error, "cannot serialize an event for a webhook");
                    continue;
                }
            };
            new.push(NewDelivery {
                id: uuid::Uuid::now_v7(),
                event_id: event.id,
                position: event.position,
                event_type: event.event_type,
                body,
            });
        }
        deliveries::add(db, row.tenant_id, row.id, &new, last).await?;
        Ok(())
    }

    /// One attempt of `delivery`, recorded with what it means: success,
    /// a retry later, or failure once it has been retried long enough.
    async fn attempt(&self, row: &WebhookRow, delivery: DeliveryRow) -> Result<(), StepError> {
        let settings = &self.dispatcher.settings;
        let attempt = self.client.deliver(row, &delivery).await;
        let number = delivery.attempts + 1;
        let succeeded = attempt.succeeded();
        let (status, next) = if succeeded {
            (deliveries::SUCCEEDED, None)
        } else {
            let age = (Utc::now() - delivery.created_at)
                .to_std()
                .unwrap_or_default();
            if age >= settings.give_up {
                (deliveries::FAILED, None)
            } else {
                let wait = sign::backoff(settings.retry_base, number as u32, rand::random());
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                (deliveries::PENDING, Some(next))
            }
        };
        let outcome = match status {
            deliveries::SUCCEEDED => "succeeded",
            deliveries::FAILED => "failed",
            _ => "retried",
        };
        metrics::counter!("tenet_webhook_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("tenet_webhook_attempt_seconds").record(attempt.duration.as_secs_f64());
        deliveries::record(
            &self.dispatcher.db,
            &deliveries::AttemptRecord {
                delivery: delivery.id,
                webhook: row.id.as_uuid(),
                number,
                attempted_at: attempt.at,
                status_code: attempt.status_code,
                duration_ms: attempt.duration.as_millis() as i64,
                response: attempt.response.clone(),
                error: attempt.error.clone(),
                status,
                next_attempt_at: next,
            },
        )
        .await?;
        if !succeeded {
            self.disable_if_failing_for_long(row).await?;
        }
        Ok(())
    }

    /// Disables the webhook (an event, with its reason) once it has failed
    /// without a success for `disable_after`.
    async fn disable_if_failing_for_long(&self, row: &WebhookRow) -> Result<(), StepError> {
        let db = &self.dispatcher.db;
        let cursor = deliveries::cursor(db, row.tenant_id, row.id, row.active_from).await?;
        let Some(since) = cursor.failing_since else {
            return Ok(());
        };
        let failing = (Utc::now() - since).to_std().unwrap_or_default();
        if failing < self.dispatcher.settings.disable_after {
            return Ok(());
        }
        let reason = format!(
            "Every delivery failed since {} ({} hours without a success)",
            since.to_rfc3339(),
            failing.as_secs() / 3600
        );
        let metadata = Metadata::new(Actor::System {
            name: NAME.to_owned(),
        });
        let outcome = self
            .dispatcher
            .repository
            .recorded_as(metadata)
            .on::<Webhook>(row.tenant_id, row.id)
            .decide(|webhook| {
                decide(
                    webhook,
                    WebhookCommand::Disable {
                        reason: reason.clone(),
                    },
                )
            })
            .outcome()
            .await;
        match outcome {
            Ok(_) => {
                tracing::warn!(webhook = %row.id, "webhook disabled after failing for long");
                metrics::counter!("tenet_webhooks_disabled_total").increment(1);
            }
            Err(error) => tracing::warn!(?error, "cannot disable a failing webhook"),
        }
        Ok(())
    }
}
