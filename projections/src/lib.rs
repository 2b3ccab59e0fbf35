//! Projections: read models folded from the log.
//!
//! The [`runtime`] feeds each projector the log in order (from JetStream in
//! distributed mode, from the local log in embedded mode), exactly once,
//! with its checkpoint advanced in the same transaction as its writes.
//! Projectors hold no business logic: events carry every value they store.

pub mod access;
pub mod checkpoints;
pub mod feed;
pub mod feed_writers;
pub mod projects;
pub mod replay;
mod rows;
pub mod runtime;
pub mod source;
pub mod tasks;

pub use checkpoints::Checkpoints;
pub use feed_writers::FEED_WRITERS;
pub use runtime::Runtime;
pub use source::SourceKind;
