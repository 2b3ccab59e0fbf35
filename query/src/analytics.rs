//! Workspace analytics: tasks created and completed per day in the time
//! zone the request names, cycle-time percentiles, open tasks by status
//! and priority, and completions per assignee, from the `analytics`
//! projection (sums of counters kept per UTC day, hour and 15-minute
//! slot, and daily cycle-time histograms; never a scan of the tasks).

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::State;
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tenet_events::ids::{ProjectId, UserId, WorkspaceId};
use tenet_http::auth::{AnalyticsRead, Scoped};
use tenet_http::openapi::ReadErrors;
use tenet_http::{ApiError, ConsistencyToken, Path, Query};
use tenet_projections::analytics::{self, Range};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(get_analytics))
}

/// The longest range one request covers, in days.
pub const RANGE_MAX_DAYS: u64 = 366;
/// The range when `from` is absent: this many days up to `to`.
pub const DEFAULT_DAYS: u64 = 30;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// The first day, `YYYY-MM-DD` in `tz` (default: 29 days before `to`).
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub from: Option<String>,
    /// The last day, `YYYY-MM-DD` in `tz`, included (default: today in
    /// `tz`). At most 366 days after `from`.
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub to: Option<String>,
    /// Only this project's tasks.
    pub project_id: Option<String>,
    /// An IANA time zone (`Europe/Paris`); default `UTC`. Days begin at
    /// its midnight.
    #[param(schema_with = time_zones)]
    pub tz: Option<String>,
}

/// The names `tz` accepts: every zone of the IANA database the server was
/// built with, so the document lists exactly what `Tz::from_str` parses.
fn time_zones() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
        .default(Some(serde_json::json!("UTC")))
        .build()
}

#[derive(Debug, Deserialize)]
pub struct WorkspacePath {
    pub workspace_id: WorkspaceId,
}

/// One day of the range, in the request's time zone.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Day {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Tasks created that day (and not deleted since).
    pub created: i64,
    /// Tasks whose move to done was that day (and still done).
    pub completed: i64,
}

/// Cycle time (first move to `in_progress` to the move to `done`) of the
/// tasks completed in the range that were ever in progress.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CycleTime {
    /// How many tasks the percentiles are of.
    pub count: i64,
    /// The 50th percentile by nearest rank (the value at rank ⌈0.5·n⌉), in
    /// milliseconds; `null` when no task qualifies.
    pub p50_ms: Option<i64>,
    /// The 85th percentile by nearest rank, in milliseconds.
    pub p85_ms: Option<i64>,
}

/// Open tasks (todo, in progress, in review) now.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct OpenTasks {
    pub total: i64,
    /// By status; every open status is listed.
    pub by_status: BTreeMap<String, i64>,
    /// By priority; every priority is listed.
    pub by_priority: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AssigneeCompletions {
    /// `null`: tasks completed unassigned.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub assignee_id: Option<UserId>,
    pub completed: i64,
}

/// A workspace's (or project's) analytics for a range of days.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AnalyticsView {
    #[schema(value_type = String, format = Uuid)]
    pub workspace_id: WorkspaceId,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    pub tz: String,
    /// Every day from `from` to `to`.
    pub days: Vec<Day>,
    pub cycle_time: CycleTime,
    pub open: OpenTasks,
    /// Tasks completed in the range, by assignee, most first.
    pub completed_by_assignee: Vec<AssigneeCompletions>,
}

/// The instant `date` begins in `tz` (its first local instant, if a
/// transition skips midnight).
fn start_of(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut at = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone that skips midnight (a DST change at 00:00) starts the day at
    // the first instant that exists; gaps are at most a few hours.
    for _ in 0..24 * 4 {
        if let Some(start) = tz.from_local_datetime(&at).earliest() {
            return start.with_timezone(&Utc);
        }
        at += chrono::TimeDelta::minutes(15);
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn date(field: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::field(field, "must be a date, YYYY-MM-DD"))
}

/// `GET /api/v1/workspaces/{workspace_id}/analytics`: tasks created and
/// completed per day, cycle-time percentiles, open tasks by status and
/// priority, completions per assignee, for a range of days in a time zone.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{workspace_id}/analytics",
    tag = "analytics",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        AnalyticsQuery,
    ),
    responses(
        (status = 200, description = "The analytics of the range", body = AnalyticsView),
        ReadErrors,
    ),
    security(("bearer" = ["analytics:read"]))
)]
pub async fn get_analytics(
    State(state): State<QueryState>,
    access: Scoped<AnalyticsRead>,
    Path(_path): Path<WorkspacePath>,
    token: ConsistencyToken,
    Query(query): Query<AnalyticsQuery>,
) -> Result<axum::Json<AnalyticsView>, ApiError> {
    let tz_name = query.tz.as_deref().unwrap_or("UTC");
    let tz = Tz::from_str(tz_name)
        .map_err(|_| ApiError::field("tz", "must be an IANA time zone, such as Europe/Paris"))?;
    let to = match query.to.as_deref() {
        Some(to) => date("to", to)?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let from = match query.from.as_deref() {
        Some(from) => date("from", from)?,
        None => to
            .checked_sub_days(Days::new(DEFAULT_DAYS - 1))
            .unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::field("from", "must not be after to"));
    }
    let after_last = to
        .checked_add_days(Days::new(1))
        .ok_or_else(|| ApiError::field("to", "is out of range"))?;
    if (after_last - from).num_days() > RANGE_MAX_DAYS as i64 {
        return Err(ApiError::field(
            "to",
            format!("must be at most {RANGE_MAX_DAYS} days after from"),
        ));
    }
    let project = match query.project_id.as_deref() {
        Some(id) => Some(
            id.parse::<ProjectId>()
                .map_err(|_| ApiError::field("project_id", "must be a valid UUID"))?,
        ),
        None => None,
    };
    state.caught_up(token, analytics::NAME).await?;
    if let Some(project) = project
        && !tenet_projections::projects::exists(&state.db, access.tenant(), project).await?
    {
        return Err(ApiError::not_found("No such project"));
    }
    let dates: Vec<NaiveDate> = from.iter_days().take_while(|day| *day <= to).collect();
    let range = Range {
        bounds: dates
            .iter()
            .copied()
            .chain([after_last])
            .map(|date| start_of(tz, date))
            .collect(),
        project,
    };
    let read = analytics::reads::read(&state.db, access.tenant(), &range).await?;
    let days: Vec<Day> = dates
        .into_iter()
        .zip(read.days.iter())
        .map(|(date, &(created, completed))| Day {
            date,
            created,
            completed,
        })
        .collect();
    let mut by_status: BTreeMap<String, i64> = ["todo", "in_progress", "in_review"]
        .into_iter()
        .map(|status| (status.to_owned(), 0))
        .collect();
    let mut by_priority: BTreeMap<String, i64> = tenet_events::catalogue::task::Priority::ALL
        .into_iter()
        .map(|priority| (priority.as_str().to_owned(), 0))
        .collect();
    let mut total = 0;
    for (status, priority, count) in &read.open {
        *by_status.entry(status.clone()).or_default() += count;
        *by_priority.entry(priority.clone()).or_default() += count;
        total += count;
    }
    let mut completed_by_assignee: Vec<AssigneeCompletions> = read
        .completions
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(assignee_id, completed)| AssigneeCompletions {
            assignee_id: *assignee_id,
            completed: *completed,
        })
        .collect();
    completed_by_assignee.sort_by(|a, b| {
        b.completed
            .cmp(&a.completed)
            .then_with(|| a.assignee_id.cmp(&b.assignee_id))
    });
    Ok(axum::Json(AnalyticsView {
        workspace_id: access.workspace_id,
        project_id: project,
        from,
        to,
        tz: tz.name().to_owned(),
        days,
        cycle_time: CycleTime {
            count: read.cycle.count,
            p50_ms: read.cycle.p50_ms,
            p85_ms: read.cycle.p85_ms,
        },
        open: OpenTasks {
            total,
            by_status,
            by_priority,
        },
        completed_by_assignee,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_begins_at_local_midnight() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let winter = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert_eq!(
            start_of(paris, winter),
            Utc.with_ymd_and_hms(2026, 12, 2, 23, 0, 0).unwrap()
        );
        let kathmandu: Tz = "Asia/Kathmandu".parse().unwrap();
        assert_eq!(
            start_of(kathmandu, winter),
            Utc.with_ymd_and_hms(2026, 12, 2, 18, 15, 0).unwrap()
        );
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_the_day_at_its_first_instant() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2022-09-11.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap();
        assert_eq!(
            start_of(santiago, day),
            Utc.with_ymd_and_hms(2022, 9, 11, 4, 0, 0).unwrap()
        );
    }
}
