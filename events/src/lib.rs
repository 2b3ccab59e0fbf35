//! The log: Tenet's single source of truth.
//!
//! This crate owns the event envelope and identifiers, the [`EventStore`]
//! with its Postgres and SQLite backends, the relay that publishes committed
//! events to NATS JetStream, and the database handle the other crates share.
//! It knows nothing of HTTP routes, aggregates or read-model tables.

pub mod bus;
pub mod catalogue;
pub mod db;
pub mod envelope;
pub mod ids;
pub mod leader;
pub mod projection;
pub mod relay;
pub mod store;
pub mod task;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use sqlx;

pub use db::{Backend, Db, Tx};
pub use envelope::{Actor, Metadata, NewEvent, RecordedEvent};
pub use ids::{Position, StreamId, TenantId};
pub use store::{
    AppendError, AppendRequest, Appended, Claim, EventStore, ExpectedVersion, LogQuery, StoreError,
};
