//! Where a projector's events come from.
//!
//! Embedded (and single-node Postgres) deployments tail the log directly,
//! woken by the store's head watch. Distributed deployments consume a
//! durable JetStream consumer per projection. Either way the runtime gets
//! batches in position order and checks them for duplicates and gaps itself,
//! so a source only has to be "at least once, mostly in order".
//!
//! [`SourceKind`] is what the wiring chooses for a deployment; an
//! [`EventSource`] is one opened source a runner reads from.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use tenet_events::bus::{Bus, BusError};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::Position;
use tenet_events::store::{EventStore, LogQuery, StoreError};

use crate::checkpoints::Status;

/// Most events handed to a projector in one transaction.
pub const BATCH: usize = 500;

/// Most events a rebuild applies in one transaction: it works through
/// history, where fewer, larger commits write each hot index page once
/// per batch instead of once per 500 events.
pub const REBUILD_BATCH: usize = 5_000;

/// Which kind of source the runners of a deployment read from.
#[derive(Clone)]
pub enum SourceKind {
    /// Tail the log in the database (embedded, or Postgres without NATS).
    Log,
    /// A durable JetStream consumer per projection.
    JetStream(Box<Bus>),
}

impl SourceKind {
    /// Opens the source of one generation of projection `name`, in
    /// `status`. A rebuild reads the log itself (the fastest way through
    /// history, and JetStream's durable consumer belongs to the live
    /// generation); so does a rebuilt generation after its swap, until the
    /// process restarts.
    pub async fn open(
        &self,
        store: &Arc<dyn EventStore>,
        name: &str,
        status: Status,
    ) -> Result<Box<dyn EventSource>, SourceError> {
        Ok(match self {
            SourceKind::JetStream(bus) if status != Status::Rebuilding => {
                Box::new(JetStreamSource::open(bus, name).await?)
            }
            _ if status == Status::Rebuilding => {
                Box::new(LogTail::with_batch(store.clone(), REBUILD_BATCH))
            }
            _ => Box::new(LogTail::new(store.clone())),
        })
    }
}

/// A batch of events and the acknowledgement to send once it is applied.
pub struct Delivery {
    pub events: Vec<RecordedEvent>,
    ack: Option<async_nats::jetstream::Message>,
}

impl Delivery {
    pub fn new(events: Vec<RecordedEvent>) -> Self {
        Delivery { events, ack: None }
    }

    /// Acknowledges the batch (with JetStream's "ack all", the last message
    /// acknowledges every earlier one).
    pub async fn ack(self) {
        if let Some(message) = self.ack
            && let Err(error) = message.ack().await
        {
            // Harmless: the batch is applied; a redelivery is skipped by
            // position.
            tracing::debug!(%error, "could not acknowledge a batch");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The events stream could not be set up.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The durable consumer could not be opened or read.
    #[error("JetStream: {0}")]
    Consumer(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("JetStream: the consumer's stream ended")]
    Ended,
}

#[async_trait]
pub trait EventSource: Send {
    /// Waits for events after `after` and answers a non-empty batch.
    async fn next(&mut self, after: Position) -> Result<Delivery, SourceError>;
}

/// Tails the log in the database.
pub struct LogTail {
    store: Arc<dyn EventStore>,
    head: tokio::sync::watch::Receiver<Position>,
    batch: usize,
}

impl LogTail {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self::with_batch(store, BATCH)
    }

    /// A tail handing out up to `batch` events at a time.
    pub fn with_batch(store: Arc<dyn EventStore>, batch: usize) -> Self {
        let head = store.watch_head();
        LogTail { store, head, batch }
    }
}

#[async_trait]
impl EventSource for LogTail {
    async fn next(&mut self, after: Position) -> Result<Delivery, SourceError> {
        loop {
            // Mark the current head as seen before reading, so a commit that
            // lands during the read still wakes the wait below.
            self.head.borrow_and_update();
            let events = self
                .store
                .read_log(LogQuery::all_after(after, self.batch))
                .await?;
            if !events.is_empty() {
                return Ok(Delivery::new(events));
            }
            // The poll covers commits the watch cannot see (another process
            // whose notification was missed).
            let _ = tokio::time::timeout(Duration::from_secs(1), self.head.changed()).await;
        }
    }
}

/// Consumes a durable JetStream consumer.
pub struct JetStreamSource {
    messages: pull::Stream,
}

impl JetStreamSource {
    /// Opens (creating on first use) the durable consumer `name`.
    pub async fn open(bus: &Bus, name: &str) -> Result<Self, SourceError> {
        let stream = bus.ensure_events_stream().await?;
        let durable = bus.consumer_name(name);
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    description: Some(format!("Tenet projection {name}")),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    filter_subject: bus.all_events(),
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| SourceError::Consumer(error.into()))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|error| SourceError::Consumer(error.into()))?;
        Ok(JetStreamSource { messages })
    }

    /// An undecodable message is dropped: the runtime sees the hole in the
    /// positions and reads that event from the log, the source of truth.
    fn decode(message: &async_nats::jetstream::Message) -> Option<RecordedEvent> {
        match serde_json::from_slice(&message.payload) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "undecodable event on the bus");
                None
            }
        }
    }
}

#[async_trait]
impl EventSource for JetStreamSource {
    async fn next(&mut self, _after: Position) -> Result<Delivery, SourceError> {
        let first = match self.messages.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(SourceError::Consumer(error.into())),
            None => return Err(SourceError::Ended),
        };
        let mut events: Vec<RecordedEvent> = Self::decode(&first).into_iter().collect();
        let mut last = first;
        // Take whatever else has already arrived, without waiting.
        while events.len() < BATCH {
            match self.messages.next().now_or_never() {
                Some(Some(Ok(message))) => {
                    events.extend(Self::decode(&message));
                    last = message;
                }
                Some(Some(Err(error))) => {
                    tracing::debug!(%error, "consumer hiccup");
                    break;
                }
                _ => break,
            }
        }
        events.sort_by_key(|e| e.position);
        Ok(Delivery {
            events,
            ack: Some(last),
        })
    }
}
