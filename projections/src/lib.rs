//! Projections: read models folded from the log, and the typed functions
//! the read side reads them through (no other crate spells their tables).
//!
//! The [`runtime`] feeds each projector the log in order (from JetStream in
//! distributed mode, from the local log in embedded mode), exactly once,
//! with its checkpoint advanced in the same transaction as its writes.
//! Projectors hold no business logic: events carry every value they store.
//!
//! Each read-model table is declared once ([`table`]); every projector
//! batches the same way (`batch`: keys, load, pure apply in memory,
//! save); lists share one way to page ([`listing`]). One module per
//! projector: [`access`] (inline), [`projects`], [`tasks`] (with comments),
//! [`automations`], [`stats`] (the platform's figures).

pub mod access;
pub mod automations;
mod batch;
pub mod checkpoints;
pub mod feature_flags;
pub mod feed;
pub mod feed_writers;
pub mod listing;
pub mod projects;
pub mod replay;
pub mod runtime;
pub mod source;
pub mod stats;
pub mod table;
pub mod tasks;

pub use checkpoints::Checkpoints;
pub use feed_writers::FEED_WRITERS;
pub use runtime::Runtime;
pub use source::SourceKind;
