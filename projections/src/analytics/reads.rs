//! How queries read the analytics: sums of the counters over a range of
//! 15-minute slots, and the cycle-time percentiles from the done tasks'
//! rows (index-ordered by completion), never a scan of `tasks_view`.

use chrono::{DateTime, Utc};
use tenet_events::db::{Db, Pool};
use tenet_events::ids::{ProjectId, TenantId, UserId};
use tenet_events::with_pool;

use super::GENERATION;

/// What a query covers: `[from, to)` (slot starts), one project or all.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub project: Option<ProjectId>,
}

/// Cycle times of the tasks completed in a range: how many, and the 50th
/// and 85th percentiles by nearest rank (the value at rank ⌈p·n⌉), in
/// milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleTimes {
    pub count: i64,
    pub p50_ms: Option<i64>,
    pub p85_ms: Option<i64>,
}

/// The figures of a range, as the read model keeps them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analytics {
    /// Per slot start: `created` or `completed`, and how many.
    pub activity: Vec<(DateTime<Utc>, String, i64)>,
    /// Open tasks now, by status and priority.
    pub open: Vec<(String, String, i64)>,
    /// Tasks completed in the range per assignee (`None`: unassigned).
    pub completions: Vec<(Option<UserId>, i64)>,
    pub cycle: CycleTimes,
}

/// The nearest-rank position (0-based) of percentile `percent` among `n`
/// sorted values.
pub fn rank(percent: i64, n: i64) -> i64 {
    ((percent * n + 99) / 100).max(1) - 1
}

/// Everything the analytics endpoint shows for `range` in `tenant`.
pub async fn read(db: &Db, tenant: TenantId, range: Range) -> Result<Analytics, sqlx::Error> {
    let project = range.project;
    let analytics = with_pool!(db, pool => {
        let mut activity = sqlx::QueryBuilder::new(format!(
            "SELECT slot, kind, CAST(sum(count) AS BIGINT) FROM analytics_activity WHERE generation = {GENERATION} AND tenant_id = "
        ));
        activity.push_bind(tenant).push(" AND slot >= ").push_bind(range.from).push(" AND slot < ").push_bind(range.to);
        if let Some(project) = project {
            activity.push(" AND project_id = ").push_bind(project);
        }
        activity.push(" GROUP BY slot, kind ORDER BY slot, kind");
        let activity: Vec<(DateTime<Utc>, String, i64)> = activity.build_query_as().fetch_all(pool).await?;

        let mut open = sqlx::QueryBuilder::new(format!(
            "SELECT status, priority, CAST(sum(count) AS BIGINT) FROM analytics_open WHERE generation = {GENERATION} AND tenant_id = "
        ));
        open.push_bind(tenant);
        if let Some(project) = project {
            open.push(" AND project_id = ").push_bind(project);
        }
        open.push(" GROUP BY status, priority ORDER BY status, priority");
        let open: Vec<(String, String, i64)> = open.build_query_as().fetch_all(pool).await?;

        let mut completions = sqlx::QueryBuilder::new(format!(
            "SELECT assignee_id, CAST(sum(count) AS BIGINT) FROM analytics_completions WHERE generation = {GENERATION} AND tenant_id = "
        ));
        completions.push_bind(tenant).push(" AND slot >= ").push_bind(range.from).push(" AND slot < ").push_bind(range.to);
        if let Some(project) = project {
            completions.push(" AND project_id = ").push_bind(project);
        }
        completions.push(" GROUP BY assignee_id");
        let completions: Vec<(UserId, i64)> = completions.build_query_as().fetch_all(pool).await?;

        Analytics {
            activity,
            open,
            completions: completions
                .into_iter()
                .map(|(user, count)| ((!user.as_uuid().is_nil()).then_some(user), count))
                .collect(),
            cycle: CycleTimes::default(),
        }
    });
    Ok(Analytics {
        cycle: cycle_times(db, tenant, range).await?,
        ..analytics
    })
}

/// The cycle-time percentiles of the tasks completed in `range`, from the
/// done tasks' rows (read in completion order by a partial index). On
/// Postgres one ordered-set aggregate sorts them once (`percentile_disc`
/// is the nearest rank); SQLite counts them, then picks each rank.
async fn cycle_times(db: &Db, tenant: TenantId, range: Range) -> Result<CycleTimes, sqlx::Error> {
    let done = |select: &str| {
        let mut sql = format!(
            "SELECT {select} FROM analytics_tasks WHERE generation = {GENERATION} AND tenant_id = $1 \
             AND completed_at >= $2 AND completed_at < $3 AND cycle_ms IS NOT NULL"
        );
        if range.project.is_some() {
            sql.push_str(" AND project_id = $4");
        }
        sql
    };
    match db.pool() {
        Pool::Postgres(pool) => {
            let sql = done(
                "count(*), percentile_disc(ARRAY[0.5, 0.85]) WITHIN GROUP (ORDER BY cycle_ms)",
            );
            let mut query = sqlx::query_as::<_, (i64, Option<Vec<i64>>)>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(range.from)
                .bind(range.to);
            if let Some(project) = range.project {
                query = query.bind(project);
            }
            let (count, picked) = query.fetch_one(pool).await?;
            let picked = picked.unwrap_or_default();
            Ok(CycleTimes {
                count,
                p50_ms: picked.first().copied(),
                p85_ms: picked.get(1).copied(),
            })
        }
        Pool::Sqlite(pool) => {
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(done("count(*)")))
                .bind(tenant)
                .bind(range.from)
                .bind(range.to);
            if let Some(project) = range.project {
                query = query.bind(project);
            }
            let count = query.fetch_one(pool).await?;
            let mut picked = [None, None];
            if count > 0 {
                let offset = if range.project.is_some() { "$5" } else { "$4" };
                for (value, percent) in picked.iter_mut().zip([50, 85]) {
                    let sql = format!(
                        "{} ORDER BY cycle_ms LIMIT 1 OFFSET {offset}",
                        done("cycle_ms")
                    );
                    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                        .bind(tenant)
                        .bind(range.from)
                        .bind(range.to);
                    if let Some(project) = range.project {
                        query = query.bind(project);
                    }
                    *value = query
                        .bind(rank(percent, count))
                        .fetch_optional(pool)
                        .await?;
                }
            }
            Ok(CycleTimes {
                count,
                p50_ms: picked[0],
                p85_ms: picked[1],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_value_at_the_ceiling_of_p_times_n() {
        // Ten values: p50 is the 5th, p85 the 9th (⌈8.5⌉).
        assert_eq!(rank(50, 10), 4);
        assert_eq!(rank(85, 10), 8);
        // One value is every percentile.
        assert_eq!(rank(50, 1), 0);
        assert_eq!(rank(85, 1), 0);
        // Seven values: ⌈3.5⌉ = 4th, ⌈5.95⌉ = 6th.
        assert_eq!(rank(50, 7), 3);
        assert_eq!(rank(85, 7), 5);
    }
}
