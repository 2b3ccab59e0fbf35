//! One way to answer a paged list: a `SELECT` whose rows carry the total
//! (`count(*) OVER ()`), its binds as data, and a plain count for the one
//! case a page has no row to carry it (an offset past the end).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Row};
use tenet_events::db::Db;
use tenet_events::http::{PageRequest, pagination::Page};
use tenet_events::with_pool;
use uuid::Uuid;

/// A bind parameter, whatever the backend.
#[derive(Clone, Debug)]
pub enum Bind {
    Uuid(Uuid),
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
    Date(NaiveDate),
    OptionalUuid(Option<Uuid>),
}

macro_rules! bound {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Uuid(value) => query.bind(*value),
                Bind::Text(value) => query.bind(value.clone()),
                Bind::Int(value) => query.bind(*value),
                Bind::Bool(value) => query.bind(*value),
                Bind::Time(value) => query.bind(*value),
                Bind::Date(value) => query.bind(*value),
                Bind::OptionalUuid(value) => query.bind(*value),
            };
        }
        query
    }};
}

/// A list query: `columns` selected `from` (a `FROM … WHERE …` clause using
/// `$1…$n` for `binds`), ordered by `order`.
pub struct Listing {
    pub columns: String,
    pub from: String,
    pub order: String,
    pub binds: Vec<Bind>,
}

/// A row and the total its query matched.
pub struct Counted<T> {
    pub item: T,
    pub total: i64,
}

impl<'r, R, T> FromRow<'r, R> for Counted<T>
where
    R: Row,
    T: FromRow<'r, R>,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Counted {
            item: T::from_row(row)?,
            total: row.try_get("total")?,
        })
    }
}

impl Listing {
    pub fn new(
        columns: impl Into<String>,
        from: impl Into<String>,
        order: impl Into<String>,
    ) -> Self {
        Listing {
            columns: columns.into(),
            from: from.into(),
            order: order.into(),
            binds: Vec::new(),
        }
    }

    /// Adds a bind and answers its placeholder (`$n`).
    pub fn bind(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    /// The sum of `column` over the rows of `from` (0 if none).
    pub async fn sum(self, db: &Db, column: &str) -> Result<i64, sqlx::Error> {
        let select = format!(
            "SELECT CAST(coalesce(sum({column}), 0) AS BIGINT) {}",
            self.from
        );
        let binds = &self.binds;
        Ok(with_pool!(db, pool => {
            bound!(sqlx::query_scalar(sqlx::AssertSqlSafe(select)), binds)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Fetches one page whose total is known without counting (a count
    /// the projector keeps).
    pub async fn page_of<T>(
        self,
        db: &Db,
        page: PageRequest,
        total: i64,
    ) -> Result<Page<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let n = self.binds.len();
        let select = format!(
            "SELECT {} {} ORDER BY {} LIMIT ${} OFFSET ${}",
            self.columns,
            self.from,
            self.order,
            n + 1,
            n + 2
        );
        let binds = &self.binds;
        let items: Vec<T> = with_pool!(db, pool => {
            bound!(sqlx::query_as(sqlx::AssertSqlSafe(select)), binds)
                .bind(page.limit_i64())
                .bind(page.offset_i64())
                .fetch_all(pool)
                .await?
        });
        Ok(page.page(items, total.max(0) as u64))
    }

    /// Fetches one page and its total.
    pub async fn page<T>(self, db: &Db, page: PageRequest) -> Result<Page<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let n = self.binds.len();
        let select = format!(
            "SELECT {}, count(*) OVER () AS total {} ORDER BY {} LIMIT ${} OFFSET ${}",
            self.columns,
            self.from,
            self.order,
            n + 1,
            n + 2
        );
        let count = format!("SELECT count(*) {}", self.from);
        let binds = &self.binds;
        let (rows, empty_total) = with_pool!(db, pool => {
            let rows: Vec<Counted<T>> = bound!(sqlx::query_as(sqlx::AssertSqlSafe(select)), binds)
                .bind(page.limit_i64())
                .bind(page.offset_i64())
                .fetch_all(pool)
                .await?;
            let empty_total: Option<i64> = if rows.is_empty() {
                Some(bound!(sqlx::query_scalar(sqlx::AssertSqlSafe(count)), binds).fetch_one(pool).await?)
            } else {
                None
            };
            (rows, empty_total)
        });
        let total = rows
            .first()
            .map(|row| row.total)
            .or(empty_total)
            .unwrap_or(0);
        let items = rows.into_iter().map(|row| row.item).collect();
        Ok(page.page(items, total.max(0) as u64))
    }
}
