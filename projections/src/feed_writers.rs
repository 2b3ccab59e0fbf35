//! Which projectors write the realtime outbox ([`crate::feed`]): the one
//! place that ties the outbox to them. The outbox cannot name its writers
//! itself (they depend on it, to record), so the wiring that follows it
//! (the binary's pruner and announcer, the query side's feed worker) takes
//! the list from here.

/// The projections that write the outbox. The feed can deliver a position
/// only once every one of them has applied it.
pub const FEED_WRITERS: [&str; 4] = [
    crate::projects::NAME,
    crate::tasks::NAME,
    crate::automations::NAME,
    crate::feature_flags::NAME,
];
