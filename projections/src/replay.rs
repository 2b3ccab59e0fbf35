//! Rebuilding projections from the log, and what admins see of them.
//!
//! [`request`] starts a blue/green rebuild: a new generation, `rebuilding`
//! at position 0, and a job to follow it. Whichever process runs projectors
//! (its [`crate::runtime::Supervisor`]) picks the generation up, rebuilds
//! it beside the active one and swaps it in once it has caught up; the job
//! completes with the swap. Nothing here applies events: requesting only
//! writes rows, so it works from the admin API, from the CLI, and against
//! a deployment whose projectors run elsewhere.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenet_events::db::{Db, Tx};
use tenet_events::ids::Position;
use tenet_events::{with_pool, with_tx};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::checkpoints::Status;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no projection is named {0:?}")]
    Unknown(String),
    #[error("projection {name} is already being rebuilt (job {job})")]
    AlreadyRunning { name: String, job: Uuid },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A rebuild, as admins follow it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    /// Always `replay`.
    pub kind: &'static str,
    pub projection: String,
    /// The generation being built.
    pub generation: i32,
    /// `running`, `completed` (swapped in) or `failed`.
    pub state: String,
    pub requested_by: String,
    /// Events of the log applied to the new generation so far.
    pub position: i64,
    /// The head of the log now: the rebuild has caught up when `position`
    /// reaches it (and the live generation).
    pub head: i64,
    /// `position / head`, from 0 to 1.
    pub progress: f64,
    /// Mean rate since the start.
    pub events_per_second: f64,
    /// At the mean rate, until `head` (absent when unknown or done).
    pub eta_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    name: String,
    generation: i32,
    state: String,
    requested_by: String,
    start_head: i64,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
    /// The generation's checkpoint (absent once it was retired and removed).
    position: Option<i64>,
}

const JOB_COLUMNS: &str = "j.id, j.name, j.generation, j.state, j.requested_by, j.start_head, \
    j.created_at, j.finished_at, j.error, c.position";

impl JobRow {
    fn into_job(self, head: Position, now: DateTime<Utc>) -> Job {
        let done = self.state != "running";
        let head = if done {
            self.position
                .unwrap_or(self.start_head)
                .max(self.start_head)
        } else {
            head.0
        };
        let position = self.position.unwrap_or(if done { head } else { 0 });
        let elapsed = (self.finished_at.unwrap_or(now) - self.created_at)
            .num_milliseconds()
            .max(1) as f64
            / 1000.0;
        let rate = position as f64 / elapsed;
        let remaining = (head - position).max(0) as f64;
        Job {
            id: self.id,
            kind: "replay",
            projection: self.name,
            generation: self.generation,
            state: self.state,
            requested_by: self.requested_by,
            position,
            head,
            progress: if head == 0 {
                1.0
            } else {
                (position as f64 / head as f64).min(1.0)
            },
            events_per_second: rate,
            eta_seconds: (!done && rate > 0.0).then(|| remaining / rate),
            created_at: self.created_at,
            finished_at: self.finished_at,
            error: self.error,
        }
    }
}

/// Starts a rebuild of `name`; `requested_by` says who asked (recorded on
/// the job). Refused while another rebuild of it runs.
pub async fn request(
    db: &Db,
    head: Position,
    name: &str,
    requested_by: &str,
) -> Result<Job, ReplayError> {
    let mut tx = db.begin().await?;
    let now = tenet_events::envelope::now();
    let id = Uuid::now_v7();
    let generation = match start_generation(&mut tx, id, name, requested_by, head, now).await {
        Ok(generation) => generation,
        Err(error) => {
            let _ = tx.rollback().await;
            return Err(error);
        }
    };
    tx.commit().await?;
    Ok(Job {
        id,
        kind: "replay",
        projection: name.to_owned(),
        generation,
        state: "running".to_owned(),
        requested_by: requested_by.to_owned(),
        position: 0,
        head: head.0,
        progress: if head.0 == 0 { 1.0 } else { 0.0 },
        events_per_second: 0.0,
        eta_seconds: None,
        created_at: now,
        finished_at: None,
        error: None,
    })
}

/// In `tx`: refuses an unknown projection or a second rebuild, gives way
/// to the new generation (earlier rebuilds that never swapped in are
/// retired), and creates its checkpoint and its job `id`. Answers the new
/// generation.
async fn start_generation(
    tx: &mut Tx<'_>,
    id: Uuid,
    name: &str,
    requested_by: &str,
    head: Position,
    now: DateTime<Utc>,
) -> Result<i32, ReplayError> {
    with_tx!(tx, conn => {
        let known: Option<i32> = sqlx::query_scalar("SELECT active_generation FROM projections WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        if known.is_none() {
            return Err(ReplayError::Unknown(name.to_owned()));
        }
        let running: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM projection_jobs WHERE name = $1 AND state = 'running'",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(job) = running {
            return Err(ReplayError::AlreadyRunning { name: name.to_owned(), job });
        }
        let generation: i32 = sqlx::query_scalar(
            "SELECT CAST(coalesce(max(generation), 0) + 1 AS INTEGER) FROM projection_checkpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
        // Earlier rebuilds that never swapped in (failed) give way: the
        // supervisor removes their rows.
        sqlx::query(
            "UPDATE projection_checkpoints SET status = 'retired', updated_at = $3 \
             WHERE name = $1 AND generation <> $2 AND status IN ('rebuilding', 'failed') \
               AND generation <> (SELECT active_generation FROM projections WHERE name = $1)",
        )
        .bind(name)
        .bind(generation)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // A rebuild racing this one takes the same generation: the key on
        // the checkpoint refuses the second.
        sqlx::query(
            "INSERT INTO projection_checkpoints \
               (name, generation, position, status, started_at, updated_at) \
             VALUES ($1, $2, 0, 'rebuilding', $3, $3)",
        )
        .bind(name)
        .bind(generation)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|error| raced(name, error))?;
        // The partial unique index on running jobs refuses a second
        // rebuild that raced this one.
        sqlx::query(
            "INSERT INTO projection_jobs \
               (id, name, generation, state, requested_by, start_head, created_at) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6)",
        )
        .bind(id)
        .bind(name)
        .bind(generation)
        .bind(requested_by)
        .bind(head.0)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|error| raced(name, error))?;
        Ok(generation)
    })
}

/// A unique violation while starting a rebuild: another rebuild of `name`
/// raced this one and won.
fn raced(name: &str, error: sqlx::Error) -> ReplayError {
    match error {
        sqlx::Error::Database(error) if error.is_unique_violation() => {
            ReplayError::AlreadyRunning {
                name: name.to_owned(),
                job: Uuid::nil(),
            }
        }
        error => error.into(),
    }
}

/// One job, as it stands.
pub async fn job(db: &Db, head: Position, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<JobRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM projection_jobs j \
             LEFT JOIN projection_checkpoints c ON c.name = j.name AND c.generation = j.generation \
             WHERE j.id = $1"
        )))
        .bind(id)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|row| row.into_job(head, tenet_events::envelope::now())))
}

/// One page of jobs, newest first (only those in `state`, if given), and
/// how many there are in all.
pub async fn jobs(
    db: &Db,
    head: Position,
    state: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Job>, i64), sqlx::Error> {
    let rows: Vec<JobRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM projection_jobs j \
             LEFT JOIN projection_checkpoints c ON c.name = j.name AND c.generation = j.generation \
             WHERE ($1 IS NULL OR j.state = $1) \
             ORDER BY j.created_at DESC, j.id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(state)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?
    });
    let total: i64 = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT count(*) FROM projection_jobs WHERE ($1 IS NULL OR state = $1)")
            .bind(state)
            .fetch_one(pool)
            .await?
    });
    let now = tenet_events::envelope::now();
    Ok((
        rows.into_iter()
            .map(|row| row.into_job(head, now))
            .collect(),
        total,
    ))
}

/// Why a job could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no such job")]
    NotFound,
    #[error("only a failed job can be retried; this one is {0}")]
    NotFailed(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// Retries a failed job: a new rebuild of its projection, whose job is
/// answered (the failed one stays as it was, for the record).
pub async fn retry(
    db: &Db,
    head: Position,
    id: Uuid,
    requested_by: &str,
) -> Result<Job, RetryError> {
    let failed = job(db, head, id)
        .await
        .map_err(ReplayError::from)?
        .ok_or(RetryError::NotFound)?;
    if failed.state != "failed" {
        return Err(RetryError::NotFailed(failed.state));
    }
    Ok(request(db, head, &failed.projection, requested_by).await?)
}

/// A projection, as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ProjectionState {
    pub name: String,
    /// Applied inside the append transaction (never behind the log).
    pub inline: bool,
    /// The generation queries read.
    pub generation: i32,
    /// `live`, `rebuilding` (a rebuild runs beside it) or `failed`.
    pub state: String,
    /// The last log position the active generation applied.
    pub position: i64,
    /// Events of the log it has not applied yet.
    pub lag_events: i64,
    /// Age of the oldest event it has not applied, in seconds (0 when none).
    pub lag_seconds: f64,
    /// Why it stopped, when failed.
    pub last_error: Option<String>,
    pub error_position: Option<i64>,
    /// The rebuild in progress, if any.
    pub rebuild: Option<Job>,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    name: String,
    inline: bool,
    generation: i32,
    status: String,
    position: i64,
    last_error: Option<String>,
    error_position: Option<i64>,
}

/// Every projection, by name.
pub async fn projections(db: &Db, head: Position) -> Result<Vec<ProjectionState>, sqlx::Error> {
    let rows: Vec<StateRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT p.name, p.inline, p.active_generation AS generation, c.status, c.position, \
                    c.last_error, c.error_position \
             FROM projections p JOIN projection_checkpoints c \
               ON c.name = p.name AND c.generation = p.active_generation \
             ORDER BY p.name",
        )
        .fetch_all(pool)
        .await?
    });
    let running: Vec<JobRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM projection_jobs j \
             LEFT JOIN projection_checkpoints c ON c.name = j.name AND c.generation = j.generation \
             WHERE j.state = 'running'"
        )))
        .fetch_all(pool)
        .await?
    });
    let now = tenet_events::envelope::now();
    let mut running: std::collections::HashMap<String, Job> = running
        .into_iter()
        .map(|row| (row.name.clone(), row.into_job(head, now)))
        .collect();
    let mut states = Vec::with_capacity(rows.len());
    for row in rows {
        let position = if row.inline { head.0 } else { row.position };
        let lag_events = (head.0 - position).max(0);
        let lag_seconds = if lag_events > 0 {
            oldest_unapplied(db, Position(position))
                .await?
                .map_or(0.0, |at| {
                    (now - at).num_milliseconds().max(0) as f64 / 1000.0
                })
        } else {
            0.0
        };
        let rebuild = running.remove(&row.name);
        let state = match Status::parse(&row.status) {
            Some(Status::Failed) => "failed",
            _ if rebuild.is_some() => "rebuilding",
            _ => "live",
        };
        states.push(ProjectionState {
            name: row.name,
            inline: row.inline,
            generation: row.generation,
            state: state.to_owned(),
            position,
            lag_events,
            lag_seconds,
            last_error: row.last_error,
            error_position: row.error_position,
            rebuild,
        });
    }
    Ok(states)
}

/// When the first event after `position` happened.
async fn oldest_unapplied(
    db: &Db,
    position: Position,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar("SELECT occurred_at FROM events WHERE position = $1")
            .bind(position.0 + 1)
            .fetch_optional(pool)
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, position: Option<i64>) -> JobRow {
        JobRow {
            id: Uuid::nil(),
            name: "tasks".into(),
            generation: 2,
            state: state.into(),
            requested_by: "test".into(),
            start_head: 1_000,
            created_at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            finished_at: None,
            error: None,
            position,
        }
    }

    #[test]
    fn a_running_job_reports_progress_rate_and_eta() {
        let now = DateTime::from_timestamp(10, 0).unwrap_or_default();
        let job = row("running", Some(500)).into_job(Position(2_000), now);
        assert_eq!(job.progress, 0.25);
        assert_eq!(job.events_per_second, 50.0);
        assert_eq!(job.eta_seconds, Some(30.0));
    }

    #[test]
    fn a_finished_job_is_complete_whatever_the_head_does_next() {
        let now = DateTime::from_timestamp(10, 0).unwrap_or_default();
        let job = row("completed", None).into_job(Position(5_000), now);
        assert_eq!(job.progress, 1.0);
        assert_eq!(job.eta_seconds, None);
    }
}
