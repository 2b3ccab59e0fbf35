//! One way to answer a paged list: a `SELECT … LIMIT … OFFSET` with its
//! binds as data, and a count of the matches when the page alone does not
//! tell the total. The read models' list functions are built on it, and
//! so are the audit log's pages of the event log.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use tenet_events::db::{Backend, Db};
use tenet_events::with_pool;
use tenet_http::{PageRequest, pagination::Page};
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

/// Postgres plans a list query for the tenant and filters at hand rather
/// than once for all: a cached generic plan assumes every tenant is small
/// (the average of many) and, for a large one, walks the sort order's index
/// past every row instead of taking a selective index (a search word, a
/// label), seconds instead of milliseconds. An unnamed statement is
/// planned with its parameters each time. SQLite's planner does not look
/// at parameter values, so it keeps its cached statements.
fn plan_each_time(db: &Db) -> bool {
    matches!(db.backend(), Backend::Postgres)
}

macro_rules! bound {
    ($query:expr, $binds:expr, $db:expr) => {{
        let mut query = $query.persistent(!plan_each_time($db));
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
            bound!(sqlx::query_scalar(sqlx::AssertSqlSafe(select)), binds, db)
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
        let items: Vec<T> = self.rows(db, page).await?;
        Ok(page.page(items, total.max(0) as u64))
    }

    /// Fetches one page and its total: the page as a plain `LIMIT` query,
    /// which stops at the page's last row, then a separate count only when
    /// the page cannot tell it (a full page, or an empty one past the
    /// start). Two statements rather than one `count(*) OVER ()` because
    /// the window makes the database produce every match in page order
    /// just to count it, where a count alone may take a cheaper plan (an
    /// index-only or bitmap scan): on the audit log and on filtered task
    /// lists that is several times faster.
    pub async fn page<T>(self, db: &Db, page: PageRequest) -> Result<Page<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let items: Vec<T> = self.rows(db, page).await?;
        // The rows this answer shows exist: a total counted after some of
        // them were removed must not fall below them.
        let shown = if items.is_empty() {
            0
        } else {
            page.offset + items.len() as u64
        };
        let total = match total_shown_by(page, items.len()) {
            Some(total) => total,
            None => {
                let count = format!("SELECT count(*) {}", self.from);
                let binds = &self.binds;
                let counted: i64 = with_pool!(db, pool => {
                    bound!(sqlx::query_scalar(sqlx::AssertSqlSafe(count)), binds, db)
                        .fetch_one(pool)
                        .await?
                });
                (counted.max(0) as u64).max(shown)
            }
        };
        Ok(page.page(items, total))
    }

    /// The rows of one page, in the list's order.
    async fn rows<T>(&self, db: &Db, page: PageRequest) -> Result<Vec<T>, sqlx::Error>
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
        Ok(with_pool!(db, pool => {
            bound!(sqlx::query_as(sqlx::AssertSqlSafe(select)), binds, db)
                .bind(page.limit_i64())
                .bind(page.offset_i64())
                .fetch_all(pool)
                .await?
        }))
    }
}

/// `%word%`, with LIKE's wildcards in the word escaped (escape char `\`):
/// free-text search matches words as substrings of text the projector
/// lower-cased.
pub fn like_pattern(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len() + 2);
    pattern.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The total a page of `rows` rows proves without counting: a short page
/// ends the list, unless it is empty past the start (the list may end
/// anywhere before the offset).
fn total_shown_by(page: PageRequest, rows: usize) -> Option<u64> {
    let short = (rows as u64) < page.limit;
    (short && (rows > 0 || page.offset == 0)).then_some(page.offset + rows as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(offset: u64, limit: u64) -> PageRequest {
        PageRequest::new(Some(offset), Some(limit)).unwrap()
    }

    #[test]
    fn wildcards_in_words_match_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn a_short_page_proves_the_total() {
        assert_eq!(total_shown_by(request(0, 50), 0), Some(0));
        assert_eq!(total_shown_by(request(0, 50), 7), Some(7));
        assert_eq!(total_shown_by(request(100, 50), 3), Some(103));
    }

    #[test]
    fn a_full_page_or_an_empty_one_past_the_start_needs_a_count() {
        assert_eq!(total_shown_by(request(0, 50), 50), None);
        assert_eq!(total_shown_by(request(100, 50), 50), None);
        assert_eq!(total_shown_by(request(100, 50), 0), None);
    }
}
