//! Projection management for platform admins: each projection's state and
//! lag, blue/green rebuilds and their jobs.
//!
//! The one write on the read side: requesting a rebuild writes a job and a
//! new generation's checkpoint (control rows, not events); the processes
//! that run projectors carry it out (see `tenet_projections::replay`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenet_http::auth::PlatformAdmin;
use tenet_http::pagination::Page;
use tenet_http::{ApiError, PageRequest, Path, Query};
use tenet_projections::replay::{self, Job, ProjectionState, ReplayError, RetryError};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::responses::{AdminErrors, RebuildErrors, ScopedErrors};
use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_projections))
        .routes(routes!(replay_projection))
        .routes(routes!(get_job))
        .routes(routes!(list_jobs))
        .routes(routes!(retry_job))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectionsPage {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
}

/// `GET /api/v1/admin/projections`: every projection with its checkpoint,
/// lag (in events and as the age of the oldest unapplied event) and state
/// (`live`, `rebuilding` with the rebuild's progress, `failed` with the
/// error and position).
#[utoipa::path(
    get,
    path = "/api/v1/admin/projections",
    tag = "admin",
    params(ProjectionsPage),
    responses(
        (status = 200, description = "A page of projections", body = Page<ProjectionState>),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn list_projections(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Query(query): Query<ProjectionsPage>,
) -> Result<axum::Json<Page<ProjectionState>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let head = state.store.head().await?;
    let all = replay::projections(&state.db, head).await?;
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .collect();
    Ok(axum::Json(page.page(items, total)))
}

#[derive(Debug, Deserialize)]
pub struct ProjectionPath {
    pub name: String,
}

/// `POST /api/v1/admin/projections/{name}/replay`: rebuilds a projection
/// from the log, blue/green: the new generation is built beside the live
/// one, catches up, and swaps in atomically; queries answer from the old
/// one until then. 202 with the job to follow; 409 while a rebuild of the
/// same projection runs.
#[utoipa::path(
    post,
    path = "/api/v1/admin/projections/{name}/replay",
    tag = "admin",
    params(("name" = String, Path, description = "The projection's name")),
    responses(
        (status = 202, description = "Rebuild started", body = Job, headers(("Location" = String))),
        RebuildErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn replay_projection(
    State(state): State<QueryState>,
    admin: PlatformAdmin,
    Path(path): Path<ProjectionPath>,
) -> Result<Response, ApiError> {
    let head = state.store.head().await?;
    let requested_by = format!("user:{}", admin.0.user_id);
    let job = replay::request(&state.db, head, &path.name, &requested_by)
        .await
        .map_err(|error| match error {
            ReplayError::Unknown(_) => ApiError::not_found(error.to_string()),
            ReplayError::AlreadyRunning { .. } => ApiError::conflict(error.to_string()),
            ReplayError::Database(error) => ApiError::from(error),
        })?;
    Ok(accepted(job))
}

/// 202 with the job to follow and its `Location`.
fn accepted(job: Job) -> Response {
    let location = format!("/api/v1/admin/jobs/{}", job.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(job),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct JobPath {
    pub job_id: Uuid,
}

/// `GET /api/v1/admin/jobs/{job_id}`: a rebuild's state, progress,
/// events/s and ETA.
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs/{job_id}",
    tag = "admin",
    params(("job_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The job", body = Job),
        ScopedErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn get_job(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Path(path): Path<JobPath>,
) -> Result<axum::Json<Job>, ApiError> {
    let head = state.store.head().await?;
    replay::job(&state.db, head, path.job_id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("No such job"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsPage {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u64>,
    /// Only jobs in this state: `running`, `completed` or `failed`.
    #[param(pattern = "^(running|completed|failed)$")]
    pub status: Option<String>,
}

/// The states a job can be in.
const JOB_STATES: [&str; 3] = ["running", "completed", "failed"];

/// `GET /api/v1/admin/jobs`: the platform's background jobs (the
/// projection rebuilds, requested from the API or the CLI), newest first,
/// with their state, progress and error.
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs",
    tag = "admin",
    params(JobsPage),
    responses(
        (status = 200, description = "A page of jobs", body = Page<Job>),
        AdminErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn list_jobs(
    State(state): State<QueryState>,
    _admin: PlatformAdmin,
    Query(query): Query<JobsPage>,
) -> Result<axum::Json<Page<Job>>, ApiError> {
    let page = PageRequest::new(query.offset, query.limit)?;
    let status = match query.status.as_deref() {
        Some(status) if !JOB_STATES.contains(&status) => {
            return Err(ApiError::field(
                "status",
                "must be running, completed or failed",
            ));
        }
        status => status,
    };
    let head = state.store.head().await?;
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    let limit = i64::try_from(page.limit).unwrap_or(100);
    let (jobs, total) = replay::jobs(&state.db, head, status, offset, limit).await?;
    Ok(axum::Json(page.page(jobs, total.max(0) as u64)))
}

/// `POST /api/v1/admin/jobs/{job_id}/retry`: runs a failed job again (a
/// new rebuild of its projection; 202 with the new job). 409 for a job
/// that did not fail, or while another rebuild of the projection runs.
#[utoipa::path(
    post,
    path = "/api/v1/admin/jobs/{job_id}/retry",
    tag = "admin",
    params(("job_id" = uuid::Uuid, Path)),
    responses(
        (status = 202, description = "Retried", body = Job, headers(("Location" = String))),
        RebuildErrors,
    ),
    security(("bearer" = ["platform_admin"]))
)]
pub async fn retry_job(
    State(state): State<QueryState>,
    admin: PlatformAdmin,
    Path(path): Path<JobPath>,
) -> Result<Response, ApiError> {
    let head = state.store.head().await?;
    let requested_by = format!("user:{}", admin.0.user_id);
    let job = replay::retry(&state.db, head, path.job_id, &requested_by)
        .await
        .map_err(|error| match error {
            RetryError::NotFound => ApiError::not_found("No such job"),
            RetryError::NotFailed(_) => ApiError::conflict(error.to_string()),
            RetryError::Replay(ReplayError::Database(error)) => ApiError::from(error),
            RetryError::Replay(ReplayError::Unknown(_)) => ApiError::not_found(error.to_string()),
            RetryError::Replay(error) => ApiError::conflict(error.to_string()),
        })?;
    Ok(accepted(job))
}
