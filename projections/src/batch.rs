//! The one batching shape of every projector: from the events of a batch,
//! the keys of the rows they touch; those rows loaded at once; the events
//! applied to them in memory, in log order, by pure functions; the changed
//! rows written back at the end, one statement per table.
//!
//! A projector describes its working set (a [`Batch`] of [`Rows`] and
//! [`Counts`] of declared tables) and [`apply`] runs the shape. The same
//! working set, with nothing loaded and nothing saved, is a [`Fold`]: time
//! travel and history fold a stream by the projector's own rules, so a past
//! version has exactly the values the read model had then.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tenet_events::db::Tx;
use tenet_events::envelope::RecordedEvent;
use tenet_events::projection::ProjectionError;

use crate::feed::Recorder;
use crate::table::{self, Role, Table};

/// What a projector works on in one batch, and how it applies events.
#[async_trait]
pub(crate) trait Batch: Sized + Send {
    /// The projection's name (its changes are recorded for the feed under it).
    const NAME: &'static str;
    /// Whether its changes go to the realtime feed.
    const FEED: bool;

    /// One event, decoded.
    type Change: Send + Sync;
    /// The rows a batch must load before it applies its changes.
    type Keys: Default + Send;

    /// Whether events of this type change the read model.
    fn handles(event_type: &str) -> bool;

    /// Decodes an event it handles.
    fn decode(event: &RecordedEvent) -> Result<Self::Change, ProjectionError>;

    /// Notes the rows `change` needs loaded (those created earlier in the
    /// same batch need none).
    fn keys(keys: &mut Self::Keys, event: &RecordedEvent, change: &Self::Change);

    async fn load(
        tx: &mut Tx<'_>,
        generation: i32,
        keys: Self::Keys,
    ) -> Result<Self, ProjectionError>;

    /// Applies one event in memory, recording each visible change in `feed`.
    fn apply(
        &mut self,
        feed: &mut Recorder,
        event: &RecordedEvent,
        change: Self::Change,
    ) -> Result<(), ProjectionError>;

    /// Writes back what the batch changed.
    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError>;
}

/// Applies `events` (those `B` handles) to one generation: keys, load,
/// apply in memory, save, and the feed's records in the same transaction.
pub(crate) async fn apply<B: Batch>(
    tx: &mut Tx<'_>,
    generation: i32,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let mut changes = Vec::new();
    for event in events.iter().filter(|e| B::handles(&e.event_type)) {
        changes.push((event, B::decode(event)?));
    }
    if changes.is_empty() {
        return Ok(());
    }
    let mut keys = B::Keys::default();
    for (event, change) in &changes {
        B::keys(&mut keys, event, change);
    }
    let mut batch = B::load(tx, generation, keys).await?;
    let mut feed = if B::FEED {
        Recorder::for_batch(tx, B::NAME, generation).await?
    } else {
        Recorder::off()
    };
    for (event, change) in changes {
        batch.apply(&mut feed, event, change)?;
    }
    batch.save(tx, generation).await?;
    feed.save(tx, B::NAME).await
}

/// A projector's working set folded from events alone, for time travel
/// and history.
#[derive(Default)]
pub(crate) struct Fold<B> {
    pub(crate) batch: B,
}

impl<B: Batch> Fold<B> {
    pub(crate) fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if !B::handles(&event.event_type) {
            return Ok(());
        }
        let change = B::decode(event)?;
        self.batch.apply(&mut Recorder::off(), event, change)
    }
}

/// Refuses an event that does not follow the row's version: applied
/// already (answers `false`: skip it) or one missing before it (an error).
pub(crate) fn follows(current: i64, event: &RecordedEvent) -> Result<bool, ProjectionError> {
    if event.stream_version <= current {
        return Ok(false);
    }
    if event.stream_version != current + 1 {
        return Err(ProjectionError::event(
            event,
            format!(
                "stream version {} follows {current}: an event is missing",
                event.stream_version
            ),
        ));
    }
    Ok(true)
}

/// The rows of one table a batch works on: those it loaded, those it
/// created, and which of them it changed or removed.
pub(crate) struct Rows<T: Table> {
    rows: HashMap<T::Key, T>,
    changed: HashSet<T::Key>,
    removed: HashSet<T::Key>,
}

impl<T: Table> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            rows: HashMap::new(),
            changed: HashSet::new(),
            removed: HashSet::new(),
        }
    }
}

impl<T: Table> Rows<T> {
    /// The rows of `keys` that exist in `generation`.
    pub(crate) async fn load(
        tx: &mut Tx<'_>,
        generation: i32,
        keys: impl IntoIterator<Item = T::Key>,
    ) -> Result<Rows<T>, sqlx::Error> {
        let keys: Vec<T::Key> = keys.into_iter().collect();
        let rows = table::load::<T>(tx, generation, &keys).await?;
        Ok(Rows {
            rows: rows.into_iter().map(|row| (row.key(), row)).collect(),
            ..Rows::default()
        })
    }

    pub(crate) fn get(&self, key: &T::Key) -> Option<&T> {
        self.rows.get(key)
    }

    /// The row to change in place; [`Rows::changed`] marks it for saving.
    pub(crate) fn get_mut(&mut self, key: &T::Key) -> Option<&mut T> {
        self.rows.get_mut(key)
    }

    pub(crate) fn contains(&self, key: &T::Key) -> bool {
        self.rows.contains_key(key)
    }

    /// Whether this batch removed the row.
    pub(crate) fn was_removed(&self, key: &T::Key) -> bool {
        self.removed.contains(key)
    }

    /// Adds (or replaces) a row, to be saved.
    pub(crate) fn insert(&mut self, row: T) {
        let key = row.key();
        self.removed.remove(&key);
        self.changed.insert(key.clone());
        self.rows.insert(key, row);
    }

    /// Marks a row changed in place, to be saved.
    pub(crate) fn changed(&mut self, key: T::Key) {
        if self.rows.contains_key(&key) {
            self.changed.insert(key);
        }
    }

    /// Removes a row, to be deleted.
    pub(crate) fn remove(&mut self, key: &T::Key) -> Option<T> {
        self.changed.remove(key);
        self.removed.insert(key.clone());
        self.rows.remove(key)
    }

    /// The keys this batch removed.
    pub(crate) fn removed(&self) -> impl Iterator<Item = &T::Key> {
        self.removed.iter()
    }

    /// Writes the changed rows and deletes the removed ones.
    pub(crate) async fn save(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), sqlx::Error> {
        let changed: Vec<&T> = self
            .changed
            .iter()
            .filter_map(|key| self.rows.get(key))
            .collect();
        table::write::<T>(tx, generation, &changed).await?;
        let removed: Vec<T::Key> = self.removed.iter().cloned().collect();
        table::delete::<T>(tx, generation, &removed).await
    }
}

/// A table of counters (list totals the projector keeps): each row a
/// bucket's key and the counts declared `add`.
pub(crate) trait Counter: Table {
    /// How emptied buckets go.
    const EMPTIED: Emptied;

    /// The row that adds `delta` to the bucket `key`.
    fn delta(key: Self::Key, delta: i64) -> Self;
}

/// How a counter table's emptied buckets are deleted. Whether a bucket
/// that emptied exists must not depend on how the log was batched (a
/// rebuild equals the live model row for row), so each batch deletes the
/// ones it emptied.
pub(crate) enum Emptied {
    /// By the keys of the buckets the batch changed.
    ByKey,
    /// Every empty bucket of the generation, in one statement: each is one
    /// this batch just emptied (earlier ones went with their batch), and a
    /// partial index on empty buckets finds them without a scan.
    Sweep,
}

/// The changes one batch makes to a counter table, as deltas per bucket.
pub(crate) struct Counts<T: Counter> {
    deltas: HashMap<T::Key, i64>,
}

impl<T: Counter> Default for Counts<T> {
    fn default() -> Self {
        Counts {
            deltas: HashMap::new(),
        }
    }
}

impl<T: Counter> Counts<T> {
    pub(crate) fn add(&mut self, bucket: T::Key, delta: i64) {
        *self.deltas.entry(bucket).or_default() += delta;
    }

    pub(crate) fn add_all(&mut self, buckets: impl IntoIterator<Item = T::Key>, delta: i64) {
        for bucket in buckets {
            self.add(bucket, delta);
        }
    }

    /// Adds the deltas to their buckets and deletes the buckets emptied.
    pub(crate) async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), sqlx::Error> {
        let changed: Vec<(T::Key, i64)> = self
            .deltas
            .into_iter()
            .filter(|(_, delta)| *delta != 0)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        // A bucket empties only by a delta that lowers it: counts never go
        // below zero, so a batch that only raised them (creations, in the
        // main) has no bucket to delete and skips the statement.
        let lowered = changed.iter().any(|(_, delta)| *delta < 0);
        let keys: Vec<T::Key> = changed.iter().map(|(key, _)| key.clone()).collect();
        let rows: Vec<T> = changed
            .into_iter()
            .map(|(key, delta)| T::delta(key, delta))
            .collect();
        table::write::<T>(tx, generation, &rows.iter().collect::<Vec<_>>()).await?;
        if !lowered {
            return Ok(());
        }
        let empty: Vec<String> = T::COLUMNS
            .iter()
            .filter(|c| c.role == Role::Add)
            .map(|c| format!("{} = 0", c.name))
            .collect();
        let empty = empty.join(" AND ");
        match T::EMPTIED {
            Emptied::ByKey => {
                let key = table::key_names::<T>();
                table::delete_matching::<T, T::Key>(tx, generation, &key, &keys, Some(&empty)).await
            }
            Emptied::Sweep => table::delete_where::<T>(tx, generation, &empty).await,
        }
    }
}
