//! Pruning the outbox.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tenet_events::db::Db;
use tenet_events::with_pool;
use tokio_util::sync::CancellationToken;

use super::read::watermark;

/// Deletes updates recorded before `cutoff` (and below the watermark of
/// the outbox's `writers`, so a lagging writer's rows are never cut out
/// from under the live feed), and moves the horizon past them. Answers how
/// many rows went.
pub async fn prune(db: &Db, writers: &[&str], cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let through = watermark(db, writers).await?;
    let oldest_kept: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT max(position) FROM feed_updates WHERE recorded_at < $1 AND position <= $2",
        )
        .bind(cutoff)
        .bind(through.0)
        .fetch_one(pool)
        .await?
    });
    let Some(through) = oldest_kept else {
        return Ok(0);
    };
    let mut tx = db.begin().await?;
    let deleted = tenet_events::with_tx!(&mut tx, conn => {
        let deleted = sqlx::query("DELETE FROM feed_updates WHERE position <= $1")
            .bind(through)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query("UPDATE feed_horizon SET position = $1 WHERE id = 1 AND position < $1")
            .bind(through)
            .execute(&mut *conn)
            .await?;
        deleted
    });
    tx.commit().await?;
    Ok(deleted)
}

/// Prunes the outbox (written by `writers`) every `every`, keeping
/// `retention`, until shutdown.
pub async fn run_pruner(
    db: Db,
    writers: &'static [&'static str],
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Ok(retention) = chrono::Duration::from_std(retention) else {
            continue;
        };
        match prune(&db, writers, tenet_events::envelope::now() - retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned the feed outbox"),
            Err(error) => tracing::warn!(%error, "cannot prune the feed outbox"),
        }
    }
}
