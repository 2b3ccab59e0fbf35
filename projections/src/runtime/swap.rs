//! The blue/green swap of a rebuilt generation.

use tenet_events::db::Tx;
use tenet_events::ids::Position;
use tenet_events::store::LogQuery;

use crate::checkpoints::{self, CHECKPOINT_CHANNEL, Status};

use super::Runner;

impl Runner {
    /// Swaps this rebuilt generation in for the active one if it has caught
    /// up with it, in one transaction: the active generation's checkpoint
    /// row is locked first, so its runner cannot commit a batch meanwhile
    /// (and finds its generation retired when it tries). Answers the
    /// position the swapped-in generation is live at, or `None` if it is
    /// still behind.
    ///
    /// An inline projection has no runner of its own to catch up with: the
    /// store applies each append to it. Its swap takes the log lock, so no
    /// append commits in between, applies what the rebuild has not yet
    /// read, and flips; the appends that follow apply to the new generation.
    pub async fn try_swap(&self, reached: Position) -> Result<Option<Position>, String> {
        let name = self.name();
        let fail = |e: sqlx::Error| e.to_string();
        let mut tx = self.runtime.db.begin().await.map_err(fail)?;
        let inline: bool = tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT inline FROM projections WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .map_err(fail)?
        });
        if inline && let Tx::Postgres(conn) = &mut tx {
            sqlx::query(tenet_events::store::postgres::LOG_LOCK)
                .execute(&mut **conn)
                .await
                .map_err(fail)?;
        }
        let lock = match &tx {
            Tx::Postgres(_) => " FOR UPDATE",
            // One writer at a time: the transaction holds the database.
            Tx::Sqlite(_) => "",
        };
        let rows: Vec<(i32, i64, String)> = tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT generation, position, status FROM projection_checkpoints \
                 WHERE name = $1 ORDER BY generation{lock}"
            )))
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?
        });
        let active: i32 = tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT active_generation FROM projections WHERE name = $1{lock}"
            )))
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?
        });
        let mine = rows
            .iter()
            .find(|(generation, ..)| *generation == self.generation);
        if mine.is_none_or(|(_, position, status)| {
            *position != reached.0 || status != Status::Rebuilding.as_str()
        }) {
            // Moved on by someone else; this runner will notice.
            let _ = tx.rollback().await;
            return Ok(None);
        }
        let head = self.runtime.store.head().await.map_err(|e| e.to_string())?;
        let mut live_at = reached;
        if inline {
            // The log stands still: close the last gap inside this swap.
            while live_at < head {
                let events = self
                    .runtime
                    .store
                    .read_log(LogQuery::all_after(live_at, crate::source::BATCH))
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(last) = events.last().map(|e| e.position) else {
                    break;
                };
                self.projector
                    .apply(&mut tx, self.generation, &events)
                    .await
                    .map_err(|e| e.to_string())?;
                live_at = last;
            }
        } else {
            let old = rows.iter().find(|(generation, ..)| *generation == active);
            let caught_up = match old {
                // A failed generation is stuck: catch up with the log.
                Some((_, _, status)) if status == Status::Failed.as_str() => live_at >= head,
                Some((_, position, _)) => live_at.0 >= *position,
                None => true,
            };
            if !caught_up {
                let _ = tx.rollback().await;
                return Ok(None);
            }
        }
        let now = tenet_events::envelope::now();
        tenet_events::with_tx!(&mut tx, conn => {
            sqlx::query("UPDATE projections SET active_generation = $2 WHERE name = $1")
                .bind(name)
                .bind(self.generation)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            sqlx::query(
                "UPDATE projection_checkpoints SET status = 'retired', updated_at = $3 \
                 WHERE name = $1 AND generation <> $2 AND status <> 'retired'",
            )
            .bind(name)
            .bind(self.generation)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
            sqlx::query(
                "UPDATE projection_checkpoints SET status = 'live', position = $3, updated_at = $4 \
                 WHERE name = $1 AND generation = $2",
            )
            .bind(name)
            .bind(self.generation)
            .bind(live_at.0)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
            sqlx::query(
                "UPDATE projection_jobs SET state = 'completed', finished_at = $3 \
                 WHERE name = $1 AND generation = $2 AND state = 'running'",
            )
            .bind(name)
            .bind(self.generation)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        });
        if let Tx::Postgres(conn) = &mut tx {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHECKPOINT_CHANNEL)
                .bind(checkpoints::notification(name, live_at))
                .execute(&mut **conn)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        if !inline {
            self.runtime.checkpoints.advance(name, live_at);
        }
        metrics::counter!("tenet_projection_swaps_total", "projection" => name).increment(1);
        tracing::info!(projection = name, generation = self.generation, position = %live_at, "rebuilt generation swapped in");
        Ok(Some(live_at))
    }
}
