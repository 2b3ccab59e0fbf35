//! How queries read the analytics: each local day of a range, and the
//! range as a whole, cut into the widest UTC buckets that fit ([`pieces`]:
//! whole days, then hours, then 15-minute slots only at ragged ends),
//! whose counters are summed; the cycle-time percentiles from the daily
//! histograms, with one indexed step into the bin that holds each rank.
//! Never a scan of the tasks.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::{DateTime, TimeDelta, Utc};
use tenet_events::db::{Backend, Db};
use tenet_events::ids::{ProjectId, TenantId, UserId};
use tenet_events::with_pool;

use super::{ALL_PROJECTS, DAY_MINUTES, GENERATION, HOUR_MINUTES, SLOT_MINUTES, bucket};

/// What a query covers: its days, as the instants they begin at followed
/// by the end of the last (`bounds[i]..bounds[i + 1]` is day `i`), and one
/// project or all.
#[derive(Clone, Debug)]
pub struct Range {
    pub bounds: Vec<DateTime<Utc>>,
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
    /// Per day of the range, in order: tasks created, tasks completed.
    pub days: Vec<(i64, i64)>,
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

/// One counter bucket: `minutes` wide, from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Piece {
    pub minutes: i32,
    pub start: DateTime<Utc>,
}

impl Piece {
    pub fn end(&self) -> DateTime<Utc> {
        self.start + TimeDelta::minutes(i64::from(self.minutes))
    }
}

/// `at`, or the next slot start if it is inside a slot. Local midnights
/// are slot starts in every zone since the 1970s; an older one (local mean
/// time) counts from the first slot that begins in its day.
fn slot_ceil(at: DateTime<Utc>) -> DateTime<Utc> {
    let start = bucket(at, SLOT_MINUTES);
    if start == at {
        at
    } else {
        start + TimeDelta::minutes(i64::from(SLOT_MINUTES))
    }
}

/// `[from, to)` as the fewest buckets, in order: at each instant the
/// widest bucket that begins there and ends by `to`.
pub fn pieces(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Piece> {
    let (mut at, to) = (slot_ceil(from), slot_ceil(to));
    let mut pieces = Vec::new();
    while at < to {
        let minutes = [DAY_MINUTES, HOUR_MINUTES]
            .into_iter()
            .find(|&minutes| {
                bucket(at, minutes) == at && at + TimeDelta::minutes(i64::from(minutes)) <= to
            })
            .unwrap_or(SLOT_MINUTES);
        let piece = Piece { minutes, start: at };
        at = piece.end();
        pieces.push(piece);
    }
    pieces
}

/// `[from, to)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// A run of adjacent buckets of one width: `minutes` wide, `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Run {
    minutes: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// `pieces` (in order) as runs of adjacent buckets of one width.
fn runs(pieces: &[Piece]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for piece in pieces {
        match runs.last_mut() {
            Some(run) if run.minutes == piece.minutes && run.to == piece.start => {
                run.to = piece.end();
            }
            _ => runs.push(Run {
                minutes: piece.minutes,
                from: piece.start,
                to: piece.end(),
            }),
        }
    }
    runs
}

/// Figures as signed sums of runs of buckets: the statement sums each of
/// `runs` on its own, and figure `f` is the sum of `sign × runs[i]` over
/// `terms[f]`.
///
/// A span is read as UTC days, corrected at each end that is not a UTC
/// midnight by the buckets between the end and its day's start (taken
/// off, or added) or its day's end (added, or taken off), whichever reads
/// fewer. A Kathmandu day (18:15 to 18:15 UTC) reads 9 buckets instead of
/// 27, a Paris day 2 instead of 24, and the days of a range share the
/// corrections at the boundaries between them.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    runs: Vec<Run>,
    terms: Vec<Vec<(usize, i64)>>,
}

impl Plan {
    fn new(spans: impl IntoIterator<Item = Span>) -> Plan {
        let mut plan = Plan::default();
        let mut index: HashMap<Run, usize> = HashMap::new();
        for (from, to) in spans {
            let mut terms: BTreeMap<Run, i64> = BTreeMap::new();
            let days_from = end(&mut terms, slot_ceil(from), -1);
            let days_to = end(&mut terms, slot_ceil(to), 1);
            if days_from < days_to {
                add(&mut terms, DAY_MINUTES, days_from, days_to, 1);
            } else {
                add(&mut terms, DAY_MINUTES, days_to, days_from, -1);
            }
            let terms = terms
                .into_iter()
                .filter(|&(_, sign)| sign != 0)
                .map(|(run, sign)| {
                    let next = plan.runs.len();
                    let i = *index.entry(run).or_insert(next);
                    if i == next {
                        plan.runs.push(run);
                    }
                    (i, sign)
                })
                .collect();
            plan.terms.push(terms);
        }
        plan
    }

    /// The runs, each with its number, as [`Sql::sums`] groups them.
    fn numbered(&self) -> Vec<(usize, Run)> {
        self.runs.iter().copied().enumerate().collect()
    }

    /// Each figure's sums by key, from the statement's sums per run and
    /// key; keys that come to nothing are left out.
    fn figures<K: Ord + Clone>(&self, rows: &[(i32, K, i64)]) -> Vec<BTreeMap<K, i64>> {
        let mut by_run: Vec<Vec<(&K, i64)>> = vec![Vec::new(); self.runs.len()];
        for (run, key, count) in rows {
            if let Some(sums) = usize::try_from(*run).ok().and_then(|r| by_run.get_mut(r)) {
                sums.push((key, *count));
            }
        }
        self.terms
            .iter()
            .map(|terms| {
                let mut figure: BTreeMap<K, i64> = BTreeMap::new();
                for &(run, sign) in terms {
                    for &(key, count) in &by_run[run] {
                        *figure.entry(key.clone()).or_default() += sign * count;
                    }
                }
                figure.retain(|_, count| *count != 0);
                figure
            })
            .collect()
    }
}

/// Adds `sign × [from, to)` of buckets `minutes` wide to `terms`.
fn add(
    terms: &mut BTreeMap<Run, i64>,
    minutes: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sign: i64,
) {
    if from < to {
        *terms.entry(Run { minutes, from, to }).or_default() += sign;
    }
}

/// Where the whole UTC days of a span begin (`sign` −1) or end (+1)
/// for its end `at` (a slot start), adding the correction to `terms`: the
/// buckets from the start of `at`'s day to `at` (`sign`), or from `at` to
/// the end of its day (`-sign`, the days then running to that end).
fn end(terms: &mut BTreeMap<Run, i64>, at: DateTime<Utc>, sign: i64) -> DateTime<Utc> {
    let day = bucket(at, DAY_MINUTES);
    if day == at {
        return at;
    }
    let next = day + TimeDelta::minutes(i64::from(DAY_MINUTES));
    let (prefix, suffix) = (pieces(day, at), pieces(at, next));
    let (pieces, sign, days) = if prefix.len() <= suffix.len() {
        (prefix, sign, day)
    } else {
        (suffix, -sign, next)
    };
    for run in runs(&pieces) {
        add(terms, run.minutes, run.from, run.to, sign);
    }
    days
}

/// A bound value.
enum Arg {
    Tenant(TenantId),
    Project(ProjectId),
    At(DateTime<Utc>),
    Int(i32),
    Big(i64),
    Text(String),
}

/// A statement built with numbered parameters (`$n`, which both backends
/// read), and the values they take.
struct Sql {
    text: String,
    args: Vec<Arg>,
    postgres: bool,
}

impl Sql {
    fn new(db: &Db) -> Sql {
        Sql {
            text: String::new(),
            args: Vec::new(),
            postgres: db.backend() == Backend::Postgres,
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        // Writing to a String cannot fail.
        let _ = write!(self.text, "${}", self.args.len());
        self
    }

    /// `generation = … AND tenant_id = $n AND project_id = $m` for a
    /// counter table, whose rows for the whole workspace are under
    /// [`ALL_PROJECTS`].
    fn counters(&mut self, tenant: TenantId, project: Option<ProjectId>) -> &mut Self {
        self.scope(tenant, Some(project.unwrap_or(ALL_PROJECTS)))
    }

    /// `generation = … AND tenant_id = $n [AND project_id = $m]`.
    fn scope(&mut self, tenant: TenantId, project: Option<ProjectId>) -> &mut Self {
        self.push(&format!("generation = {GENERATION} AND tenant_id = "))
            .bind(Arg::Tenant(tenant));
        if let Some(project) = project {
            self.push(" AND project_id = ").bind(Arg::Project(project));
        }
        self
    }

    /// The sums of a counter table over runs of buckets, each run tagged
    /// with a group number: a table `d(i, w, lo, hi)` of the runs joined to
    /// the buckets by width and span, so the database sums each group (a
    /// day of the range) and answers one row per group and `group` value,
    /// not one per bucket.
    fn sums(
        &mut self,
        select: &str,
        table: &str,
        group: &str,
        tenant: TenantId,
        project: Option<ProjectId>,
        runs: &[(usize, Run)],
    ) {
        if self.postgres {
            // The runs as four arrays: one statement text (and one cached
            // plan) whatever the range, not four parameters per run.
            let list = |item: &dyn Fn(&(usize, Run)) -> String| {
                let items: Vec<String> = runs.iter().map(item).collect();
                format!("{{{}}}", items.join(","))
            };
            let at = |at: DateTime<Utc>| format!("\"{}\"", at.to_rfc3339());
            self.push("WITH d(i, w, lo, hi) AS (SELECT * FROM unnest(CAST(")
                .bind(Arg::Text(list(&|(i, _)| i.to_string())))
                .push(" AS integer[]), CAST(")
                .bind(Arg::Text(list(&|(_, run)| run.minutes.to_string())))
                .push(" AS integer[]), CAST(")
                .bind(Arg::Text(list(&|(_, run)| at(run.from))))
                .push(" AS timestamptz[]), CAST(")
                .bind(Arg::Text(list(&|(_, run)| at(run.to))))
                .push(" AS timestamptz[])))");
            // Each run read by the index, one after another. Without
            // `OFFSET 0` Postgres flattens the subquery into a join on the
            // width alone and filters every pair of run and bucket by
            // span: hundreds of milliseconds for a quarter-hour zone.
            self.push(&format!(
                " SELECT {select} FROM d CROSS JOIN LATERAL (SELECT * FROM {table} \
                 WHERE minutes = d.w AND slot >= d.lo AND slot < d.hi AND "
            ))
            .counters(tenant, project)
            .push(&format!(" OFFSET 0) AS b GROUP BY {group}"));
        } else {
            self.push("WITH d(i, w, lo, hi) AS (VALUES ");
            for (n, (i, run)) in runs.iter().enumerate() {
                if n > 0 {
                    self.push(", ");
                }
                self.push("(")
                    .bind(Arg::Int(*i as i32))
                    .push(", ")
                    .bind(Arg::Int(run.minutes))
                    .push(", ")
                    .bind(Arg::At(run.from))
                    .push(", ")
                    .bind(Arg::At(run.to))
                    .push(")");
            }
            self.push(&format!(
                ") SELECT {select} FROM d JOIN {table} ON minutes = d.w AND slot >= d.lo AND slot < d.hi WHERE "
            ))
            .counters(tenant, project)
            .push(&format!(" GROUP BY {group}"));
        }
    }
}

/// Binds every value of a [`Sql`] to a query of either backend.
macro_rules! bound {
    ($query:expr, $sql:expr) => {{
        let mut query = $query;
        for arg in &$sql.args {
            query = match arg {
                Arg::Tenant(value) => query.bind(*value),
                Arg::Project(value) => query.bind(*value),
                Arg::At(value) => query.bind(*value),
                Arg::Int(value) => query.bind(*value),
                Arg::Big(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.as_str()),
            };
        }
        query
    }};
}

/// Everything the analytics endpoint shows for `range` in `tenant`.
pub async fn read(db: &Db, tenant: TenantId, range: &Range) -> Result<Analytics, sqlx::Error> {
    let project = range.project;
    let (Some(&first), Some(&last)) = (range.bounds.first(), range.bounds.last()) else {
        return Ok(Analytics::default());
    };

    let days = Plan::new(range.bounds.windows(2).map(|day| (day[0], day[1])));
    let mut activity = Sql::new(db);
    activity.sums(
        "d.i, kind, CAST(sum(count) AS BIGINT)",
        "analytics_activity",
        "d.i, kind",
        tenant,
        project,
        &days.numbered(),
    );

    let whole = pieces(first, last);
    let range_plan = Plan::new([(first, last)]);
    let mut completions = Sql::new(db);
    completions.sums(
        "d.i, assignee_id, CAST(sum(count) AS BIGINT)",
        "analytics_completions",
        "d.i, assignee_id",
        tenant,
        project,
        &range_plan.numbered(),
    );

    let mut open = Sql::new(db);
    open.push("SELECT status, priority, CAST(sum(count) AS BIGINT) FROM analytics_open WHERE ")
        .counters(tenant, project)
        .push(" GROUP BY status, priority ORDER BY status, priority");

    // The figures are independent: read at once, on as many connections.
    let (activity, completions, open, cycle) = tokio::try_join!(
        fetch::<(i32, String, i64)>(db, (!days.runs.is_empty()).then_some(&activity)),
        fetch::<(i32, UserId, i64)>(db, (!range_plan.runs.is_empty()).then_some(&completions)),
        fetch::<(String, String, i64)>(db, Some(&open)),
        cycle_times(db, tenant, project, &whole),
    )?;
    let days = days
        .figures(&activity)
        .into_iter()
        .map(|day| {
            let count = |kind: &str| day.get(kind).copied().unwrap_or(0);
            (count("created"), count("completed"))
        })
        .collect();
    let completions = range_plan
        .figures(&completions)
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(Analytics {
        days,
        open,
        completions: completions
            .into_iter()
            .map(|(user, count)| ((!user.as_uuid().is_nil()).then_some(user), count))
            .collect(),
        cycle,
    })
}

/// The rows of a statement (none without one).
async fn fetch<T>(db: &Db, sql: Option<&Sql>) -> Result<Vec<T>, sqlx::Error>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    let Some(sql) = sql else {
        return Ok(Vec::new());
    };
    Ok(with_pool!(db, pool => {
        bound!(sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql.text.clone())), sql)
            .fetch_all(pool)
            .await?
    }))
}

/// The UTC-day histogram's span and the intervals at the ragged ends of
/// `whole` (at most two), whose done tasks are counted from their rows.
fn histogram_parts(whole: &[Piece]) -> (Option<Span>, Vec<Span>) {
    let mut days = None;
    let mut edges: Vec<Span> = Vec::new();
    for run in runs(whole) {
        if run.minutes == DAY_MINUTES {
            // A range's whole days are one run.
            days = Some((run.from, run.to));
            continue;
        }
        match edges.last_mut() {
            Some((_, to)) if *to == run.from => *to = run.to,
            _ => edges.push((run.from, run.to)),
        }
    }
    (days, edges)
}

/// The cycle-time percentiles of the tasks completed in the range `whole`
/// covers: the count per bin from the daily histograms (and from the done
/// tasks' rows at the ragged ends), which bin holds each rank, then the
/// value at its place inside that bin, by an index that orders a bin's
/// tasks by cycle time. Exact, since bins never decrease with the cycle
/// time.
async fn cycle_times(
    db: &Db,
    tenant: TenantId,
    project: Option<ProjectId>,
    whole: &[Piece],
) -> Result<CycleTimes, sqlx::Error> {
    let (Some(first), Some(last)) = (whole.first(), whole.last()) else {
        return Ok(CycleTimes::default());
    };
    let (from, to) = (first.start, last.end());
    let (days, edges) = histogram_parts(whole);
    let mut histogram = Sql::new(db);
    let mut union = "";
    if let Some((day_from, day_to)) = days {
        histogram
            .push("SELECT bin, CAST(sum(count) AS BIGINT) FROM analytics_cycle_days WHERE ")
            .counters(tenant, project)
            .push(" AND day >= ")
            .bind(Arg::At(day_from))
            .push(" AND day < ")
            .bind(Arg::At(day_to))
            .push(" GROUP BY bin");
        union = " UNION ALL ";
    }
    for (edge_from, edge_to) in edges {
        histogram
            .push(union)
            .push("SELECT cycle_bin, CAST(count(*) AS BIGINT) FROM analytics_tasks WHERE ")
            .scope(tenant, project)
            .push(" AND cycle_bin IS NOT NULL AND completed_at >= ")
            .bind(Arg::At(edge_from))
            .push(" AND completed_at < ")
            .bind(Arg::At(edge_to))
            .push(" GROUP BY cycle_bin");
        union = " UNION ALL ";
    }
    let mut bins: BTreeMap<i32, i64> = BTreeMap::new();
    for (bin, count) in fetch::<(i32, i64)>(db, Some(&histogram)).await? {
        *bins.entry(bin).or_default() += count;
    }
    let count: i64 = bins.values().sum();
    let pick = |percent: i64| {
        let (bin, offset) = locate(&bins, rank(percent, count))?;
        // From whichever end of the bin is nearer: the same value, half
        // the index entries stepped over at most.
        let in_bin = bins.get(&bin).copied().unwrap_or(0);
        let (order, offset) = if offset * 2 < in_bin {
            ("", offset)
        } else {
            (" DESC", in_bin - 1 - offset)
        };
        let mut pick = Sql::new(db);
        pick.push("SELECT cycle_ms FROM analytics_tasks WHERE ")
            .scope(tenant, project)
            .push(" AND cycle_bin = ")
            .bind(Arg::Int(bin))
            .push(" AND completed_at >= ")
            .bind(Arg::At(from))
            .push(" AND completed_at < ")
            .bind(Arg::At(to))
            .push(&format!(" ORDER BY cycle_ms{order} LIMIT 1 OFFSET "))
            .bind(Arg::Big(offset));
        Some(pick)
    };
    let (p50, p85) = (pick(50), pick(85));
    let (p50, p85) = tokio::try_join!(
        fetch::<(i64,)>(db, p50.as_ref()),
        fetch::<(i64,)>(db, p85.as_ref()),
    )?;
    let picked = [p50.first().map(|v| v.0), p85.first().map(|v| v.0)];
    Ok(CycleTimes {
        count,
        p50_ms: picked[0],
        p85_ms: picked[1],
    })
}

/// The bin holding the value at 0-based `rank` among the counted values,
/// and the rank's place inside it.
fn locate(bins: &BTreeMap<i32, i64>, rank: i64) -> Option<(i32, i64)> {
    let mut before = 0;
    for (&bin, &count) in bins {
        if rank < before + count {
            return Some((bin, rank - before));
        }
        before += count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use chrono_tz::Tz;

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

    #[test]
    fn a_rank_falls_in_the_bin_whose_counts_reach_past_it() {
        let bins: BTreeMap<i32, i64> = [(3, 2), (7, 5), (9, 1)].into_iter().collect();
        assert_eq!(locate(&bins, 0), Some((3, 0)));
        assert_eq!(locate(&bins, 1), Some((3, 1)));
        assert_eq!(locate(&bins, 2), Some((7, 0)));
        assert_eq!(locate(&bins, 6), Some((7, 4)));
        assert_eq!(locate(&bins, 7), Some((9, 0)));
        assert_eq!(locate(&bins, 8), None);
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// The local day `date` of `zone`, in UTC.
    fn local_day(zone: &str, date: (i32, u32, u32)) -> (DateTime<Utc>, DateTime<Utc>) {
        let tz: Tz = zone.parse().unwrap();
        let day = NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap();
        let start = |d: NaiveDate| {
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
                .earliest()
                .unwrap()
                .with_timezone(&Utc)
        };
        (start(day), start(day.succ_opt().unwrap()))
    }

    /// The pieces of `[from, to)` tile it exactly, each aligned to its
    /// width.
    fn assert_tiles(pieces: &[Piece], from: DateTime<Utc>, to: DateTime<Utc>) {
        let mut at = from;
        for piece in pieces {
            assert_eq!(piece.start, at, "{pieces:?}");
            assert_eq!(bucket(piece.start, piece.minutes), piece.start);
            at = piece.end();
        }
        assert_eq!(at, to);
    }

    fn widths(pieces: &[Piece]) -> Vec<(i32, usize)> {
        let mut runs: Vec<(i32, usize)> = Vec::new();
        for piece in pieces {
            match runs.last_mut() {
                Some((minutes, n)) if *minutes == piece.minutes => *n += 1,
                _ => runs.push((piece.minutes, 1)),
            }
        }
        runs
    }

    #[test]
    fn a_utc_day_is_one_bucket() {
        let (from, to) = local_day("UTC", (2026, 12, 3));
        let day = pieces(from, to);
        assert_eq!(
            day,
            vec![Piece {
                minutes: DAY_MINUTES,
                start: from
            }]
        );
        // And a range of days in UTC is its days.
        let year = pieces(utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0));
        assert_eq!(widths(&year), vec![(DAY_MINUTES, 365)]);
    }

    #[test]
    fn a_day_of_a_whole_hour_zone_is_hours() {
        // Paris in winter: 23:00 to 23:00 UTC.
        let (from, to) = local_day("Europe/Paris", (2026, 12, 3));
        assert_eq!(from, utc(2026, 12, 2, 23, 0));
        let day = pieces(from, to);
        assert_tiles(&day, from, to);
        assert_eq!(widths(&day), vec![(HOUR_MINUTES, 24)]);
    }

    #[test]
    fn a_day_of_a_quarter_hour_zone_has_slots_only_at_its_ends() {
        // Kathmandu, +05:45: 18:15 to 18:15 UTC.
        let (from, to) = local_day("Asia/Kathmandu", (2026, 12, 3));
        assert_eq!(from, utc(2026, 12, 2, 18, 15));
        let day = pieces(from, to);
        assert_tiles(&day, from, to);
        assert_eq!(
            widths(&day),
            vec![(SLOT_MINUTES, 3), (HOUR_MINUTES, 23), (SLOT_MINUTES, 1)]
        );
        // St John's, -03:30 in winter: 03:30 to 03:30 UTC.
        let (from, to) = local_day("America/St_Johns", (2026, 12, 3));
        assert_eq!(from, utc(2026, 12, 3, 3, 30));
        let day = pieces(from, to);
        assert_tiles(&day, from, to);
        assert_eq!(
            widths(&day),
            vec![(SLOT_MINUTES, 2), (HOUR_MINUTES, 23), (SLOT_MINUTES, 2)]
        );
    }

    #[test]
    fn a_range_reads_whole_utc_days_between_its_ragged_ends() {
        // Seven days in Kathmandu: the UTC days inside whole, the rest of
        // each end in hours and slots.
        let (from, _) = local_day("Asia/Kathmandu", (2026, 12, 1));
        let (_, to) = local_day("Asia/Kathmandu", (2026, 12, 7));
        let range = pieces(from, to);
        assert_tiles(&range, from, to);
        assert_eq!(
            widths(&range),
            vec![
                (SLOT_MINUTES, 3),
                (HOUR_MINUTES, 5),
                (DAY_MINUTES, 6),
                (HOUR_MINUTES, 18),
                (SLOT_MINUTES, 1),
            ]
        );
        let (days, edges) = histogram_parts(&range);
        assert_eq!(days, Some((utc(2026, 12, 1, 0, 0), utc(2026, 12, 7, 0, 0))));
        assert_eq!(
            edges,
            vec![(from, utc(2026, 12, 1, 0, 0)), (utc(2026, 12, 7, 0, 0), to)]
        );
    }

    #[test]
    fn a_day_when_the_clocks_change_keeps_its_own_length() {
        // Paris springs forward on 2026-03-29: 23 hours, 23:00 to 22:00.
        let (from, to) = local_day("Europe/Paris", (2026, 3, 29));
        assert_eq!(
            (from, to),
            (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))
        );
        let day = pieces(from, to);
        assert_tiles(&day, from, to);
        assert_eq!(widths(&day), vec![(HOUR_MINUTES, 23)]);
        // London falls back on 2026-10-25: 25 hours, 23:00 to 00:00, the
        // day after it whole.
        let (from, to) = local_day("Europe/London", (2026, 10, 25));
        assert_eq!(
            (from, to),
            (utc(2026, 10, 24, 23, 0), utc(2026, 10, 26, 0, 0))
        );
        let day = pieces(from, to);
        assert_tiles(&day, from, to);
        assert_eq!(widths(&day), vec![(HOUR_MINUTES, 1), (DAY_MINUTES, 1)]);
        // Lord Howe moves by half an hour (+10:30 to +11:00 on 2026-10-04).
        let (from, to) = local_day("Australia/Lord_Howe", (2026, 10, 4));
        assert_eq!(
            (from, to),
            (utc(2026, 10, 3, 13, 30), utc(2026, 10, 4, 13, 0))
        );
        let day = pieces(from, to);
        assert_tiles(&day, from, to);
        assert_eq!(widths(&day), vec![(SLOT_MINUTES, 2), (HOUR_MINUTES, 23)]);
    }

    #[test]
    fn consecutive_days_share_no_bucket() {
        let tz = "Asia/Kathmandu";
        let mut seen = std::collections::HashSet::new();
        for d in 1..=30 {
            let (from, to) = local_day(tz, (2026, 11, d));
            for piece in pieces(from, to) {
                assert!(seen.insert(piece), "{piece:?} in two days");
            }
        }
    }

    #[test]
    fn an_instant_inside_a_slot_counts_from_the_next_slot() {
        let at = utc(1900, 1, 1, 0, 9) + TimeDelta::seconds(21);
        let day = pieces(at, at + TimeDelta::days(1));
        assert_eq!(day.first().map(|p| p.start), Some(utc(1900, 1, 1, 0, 15)));
    }

    #[test]
    fn a_day_and_a_range_read_a_few_runs_of_buckets() {
        let run = |minutes, from, to| Run { minutes, from, to };
        let (from, to) = local_day("Asia/Kathmandu", (2026, 12, 3));
        assert_eq!(
            runs(&pieces(from, to)),
            vec![
                run(SLOT_MINUTES, from, utc(2026, 12, 2, 19, 0)),
                run(
                    HOUR_MINUTES,
                    utc(2026, 12, 2, 19, 0),
                    utc(2026, 12, 3, 18, 0)
                ),
                run(SLOT_MINUTES, utc(2026, 12, 3, 18, 0), to),
            ]
        );
        // A range's hours are two runs, one at each end of its days.
        let (from, _) = local_day("Asia/Kathmandu", (2026, 12, 1));
        let (_, to) = local_day("Asia/Kathmandu", (2026, 12, 7));
        let whole = runs(&pieces(from, to));
        assert_eq!(
            whole,
            vec![
                run(SLOT_MINUTES, from, utc(2026, 11, 30, 19, 0)),
                run(
                    HOUR_MINUTES,
                    utc(2026, 11, 30, 19, 0),
                    utc(2026, 12, 1, 0, 0)
                ),
                run(DAY_MINUTES, utc(2026, 12, 1, 0, 0), utc(2026, 12, 7, 0, 0)),
                run(
                    HOUR_MINUTES,
                    utc(2026, 12, 7, 0, 0),
                    utc(2026, 12, 7, 18, 0)
                ),
                run(SLOT_MINUTES, utc(2026, 12, 7, 18, 0), to),
            ]
        );
    }

    /// Each 15-minute slot a plan's figure `f` covers, with its sign.
    fn coverage(plan: &Plan, f: usize) -> BTreeMap<DateTime<Utc>, i64> {
        let mut slots = BTreeMap::new();
        for &(run, sign) in &plan.terms[f] {
            let run = plan.runs[run];
            let mut at = run.from;
            while at < run.to {
                *slots.entry(at).or_default() += sign;
                at += TimeDelta::minutes(i64::from(SLOT_MINUTES));
            }
        }
        slots.retain(|_, sign| *sign != 0);
        slots
    }

    /// The buckets a plan reads.
    fn buckets(plan: &Plan) -> usize {
        plan.runs
            .iter()
            .map(|run| ((run.to - run.from).num_minutes() / i64::from(run.minutes)) as usize)
            .sum()
    }

    #[test]
    fn a_plan_counts_every_slot_of_each_span_once_and_nothing_else() {
        for zone in [
            "UTC",
            "Europe/Paris",
            "Asia/Kathmandu",
            "America/St_Johns",
            "Australia/Lord_Howe",
            "Pacific/Chatham",
            "America/Los_Angeles",
        ] {
            for (month, first, last) in [(3, 20, 31), (10, 1, 31), (12, 1, 7)] {
                let spans: Vec<Span> = (first..=last)
                    .map(|d| local_day(zone, (2026, month, d)))
                    .collect();
                let plan = Plan::new(spans.iter().copied());
                for (f, &(from, to)) in spans.iter().enumerate() {
                    let mut expected = BTreeMap::new();
                    let mut at = from;
                    while at < to {
                        expected.insert(at, 1);
                        at += TimeDelta::minutes(i64::from(SLOT_MINUTES));
                    }
                    assert_eq!(
                        coverage(&plan, f),
                        expected,
                        "{zone} {month}-{}",
                        first + f as u32
                    );
                }
                let (whole_from, whole_to) = (spans[0].0, spans[spans.len() - 1].1);
                let whole = Plan::new([(whole_from, whole_to)]);
                assert_eq!(
                    coverage(&whole, 0).len() as i64,
                    (whole_to - whole_from).num_minutes() / i64::from(SLOT_MINUTES),
                    "{zone}"
                );
                assert!(coverage(&whole, 0).values().all(|&sign| sign == 1));
            }
        }
    }

    #[test]
    fn a_plan_reads_few_buckets_a_day_in_any_zone() {
        let days = |zone| {
            let spans: Vec<Span> = (1..=30).map(|d| local_day(zone, (2026, 11, d))).collect();
            Plan::new(spans)
        };
        // UTC: its days. Paris: each day and the hour after its start.
        // Kathmandu: each day, and the 3 slots and 5 hours after its start.
        assert_eq!(buckets(&days("UTC")), 30);
        assert_eq!(buckets(&days("Europe/Paris")), 30 + 31);
        assert_eq!(buckets(&days("Asia/Kathmandu")), 30 + 31 * 8);
        // A range reads its whole UTC days as one run.
        let (from, _) = local_day("Asia/Kathmandu", (2026, 12, 1));
        let (_, to) = local_day("Asia/Kathmandu", (2026, 12, 7));
        assert_eq!(Plan::new([(from, to)]).runs.len(), 5);
    }
}
