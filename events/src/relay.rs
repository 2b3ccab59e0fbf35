//! The relay: publishes the committed log to JetStream, in log order.
//!
//! Commands never publish. They commit to the log, and this loop publishes
//! what has committed, starting after its checkpoint, so a crash anywhere
//! loses nothing (no dual write). It publishes a batch, awaits every ack,
//! then advances the checkpoint; if it dies between the two, the next run
//! republishes the batch and JetStream drops the copies by `Nats-Msg-Id`
//! (the event id). One relay per deployment publishes at a time: a session
//! advisory lock on a dedicated connection elects it, and others wait.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError, ClientError};
use crate::envelope::{RecordedEvent, now};
use crate::ids::Position;
use crate::leader::Leadership;
use crate::store::{EventStore, LogQuery, StoreError};

/// Events published per round trip of acks.
const BATCH: usize = 1_000;

/// Header carrying the event's log position, which consumers check for
/// gaps. (JetStream's own sequence is not the position: a stream can be
/// recreated, while positions are forever.)
pub const POSITION_HEADER: &str = "Tenet-Position";

pub struct Relay {
    pool: PgPool,
    store: Arc<dyn EventStore>,
    bus: Bus,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("publishing to JetStream: {0}")]
    Publish(#[source] ClientError),
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Relay {
    pub fn new(pool: PgPool, store: Arc<dyn EventStore>, bus: Bus) -> Self {
        Relay { pool, store, bus }
    }

    fn checkpoint_name(&self) -> String {
        format!("jetstream:{}", self.bus.events_stream())
    }

    /// Runs until shutdown: waits to be elected, then relays.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(%error, "relay interrupted; retrying");
                    metrics::counter!("tenet_relay_errors_total").increment(1);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Takes the leadership lock if free, then relays while holding it.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        let key = format!("tenet.relay.{}", self.checkpoint_name());
        let Some(mut leader) = Leadership::try_acquire(&self.pool, &key).await? else {
            return Ok(());
        };
        tracing::info!(stream = %self.bus.events_stream(), "relay elected");
        // A lost checkpoint update only means republishing, which JetStream
        // drops as duplicates: not worth an fsync per batch.
        sqlx::query("SET synchronous_commit = off")
            .execute(leader.connection())
            .await?;
        self.bus.ensure_events_stream().await?;
        let mut head = self.store.watch_head();
        let mut checkpoint = self.checkpoint(leader.connection()).await?;
        while !shutdown.is_cancelled() {
            match self.publish_after(checkpoint).await? {
                Some(last) => {
                    // Saved on the leader's own connection: if it was lost
                    // (and the lock with it), this fails and we step down.
                    self.save_checkpoint(leader.connection(), last).await?;
                    checkpoint = last;
                }
                None => {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        _ = head.changed() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {
                            leader.confirm().await?;
                        }
                    }
                }
            }
        }
        leader.release().await?;
        Ok(())
    }

    /// The last position published and checkpointed.
    pub async fn checkpoint(&self, connection: &mut PgConnection) -> Result<Position, RelayError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
                .bind(self.checkpoint_name())
                .fetch_optional(&mut *connection)
                .await?;
        Ok(Position(position.unwrap_or(0)))
    }

    async fn save_checkpoint(
        &self,
        connection: &mut PgConnection,
        position: Position,
    ) -> Result<(), RelayError> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
               updated_at = EXCLUDED.updated_at",
        )
        .bind(self.checkpoint_name())
        .bind(position.0)
        .bind(now())
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Publishes the next batch after `after` and waits for every ack.
    /// Answers the last position published, or `None` when caught up. Does
    /// not checkpoint: that is the caller's step, so a crash in between is
    /// exactly the "published, not checkpointed" case.
    pub async fn publish_after(&self, after: Position) -> Result<Option<Position>, RelayError> {
        let events = self
            .store
            .read_log(LogQuery::all_after(after, BATCH))
            .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        // Each trace in the batch sees its events published (until acked).
        let _spans = crate::trace::follow(&events, |event| {
            tracing::debug_span!(
                target: crate::trace::TARGET,
                "relay.publish",
                otel.kind = "producer",
                messaging.system = "nats",
                messaging.destination.name = %self.bus.event_subject(event),
                log.position = event.position.0,
                relay.batch = events.len(),
            )
        });
        let mut acks = Vec::with_capacity(events.len());
        for event in &events {
            acks.push(self.publish(event).await?);
        }
        let mut duplicates = 0u64;
        for ack in acks {
            let ack = ack
                .await
                .map_err(|error| RelayError::Publish(error.into()))?;
            duplicates += u64::from(ack.duplicate);
        }
        metrics::counter!("tenet_relay_published_total").increment(events.len() as u64);
        metrics::counter!("tenet_relay_duplicates_total").increment(duplicates);
        metrics::histogram!("tenet_relay_batch_seconds").record(started.elapsed().as_secs_f64());
        Ok(Some(last))
    }

    async fn publish(
        &self,
        event: &RecordedEvent,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, RelayError> {
        let payload = serde_json::to_vec(event)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(POSITION_HEADER, event.position.0.to_string().as_str());
        // Consumers outside Tenet continue the trace from the header (Tenet's
        // own read it from the envelope, which carries it too).
        if let Some(traceparent) = &event.metadata.traceparent {
            headers.insert(crate::trace::TRACEPARENT, traceparent.as_str());
            if let Some(tracestate) = &event.metadata.tracestate {
                headers.insert(crate::trace::TRACESTATE, tracestate.as_str());
            }
        }
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(headers)
            .message_id(event.event_id.to_string());
        self.bus
            .jetstream
            .send_publish(self.bus.event_subject(event), publish)
            .await
            .map_err(|error| RelayError::Publish(error.into()))
    }
}
