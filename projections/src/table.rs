//! Read-model tables, each declared once with `table!`: the row struct,
//! its columns, its primary key and how an upsert treats each column. The
//! statements every projector needs follow from the declaration, for both
//! backends: the batch write (one `unnest` statement on Postgres, multi-row
//! `VALUES` on SQLite), the batch delete and the batch load by key.
//!
//! Every table also carries the generation its rows belong to (a rebuild
//! fills generation N+1 beside the live N): it leads the primary key and is
//! bound by these functions, never declared.
//!
//! Adding a column is: its line in the declaration, one migration per
//! backend, and the line of the fold that sets it.

use std::hash::Hash;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgArguments, PgHasArrayType, PgRow};
use sqlx::query::Query;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{Encode, FromRow, Postgres, Sqlite, Type};
use tenet_events::db::Tx;
use tenet_events::ids::{
    ApiKeyId, AutomationId, CommentId, EventId, ExecutionId, FeatureFlagId, ImpersonationId,
    ProjectId, SessionId, TaskId, TenantId, UserId, WorkspaceId,
};

pub type PgQuery<'q> = Query<'q, Postgres, PgArguments>;
pub type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

/// Bind parameters one multi-row statement may carry on SQLite: well under
/// its limit (32,766), and large enough that a rebuild writes hundreds of
/// rows per round trip to the database's worker thread.
const SQLITE_PARAMETERS: usize = 8_000;

/// A Rust type a read-model column holds, bindable on both backends, with
/// the Postgres array type its values are sent in (`unnest($n::uuid[])`).
pub trait ColumnType:
    Clone
    + Send
    + Sync
    + 'static
    + for<'q> Encode<'q, Postgres>
    + Type<Postgres>
    + PgHasArrayType
    + for<'q> Encode<'q, Sqlite>
    + Type<Sqlite>
{
    const PG_ARRAY: &'static str;
}

macro_rules! column_types {
    ($($ty:ty => $array:literal),* $(,)?) => {$(
        impl ColumnType for $ty {
            const PG_ARRAY: &'static str = $array;
        }
    )*};
}

column_types!(
    TenantId => "uuid[]",
    WorkspaceId => "uuid[]",
    UserId => "uuid[]",
    ProjectId => "uuid[]",
    TaskId => "uuid[]",
    CommentId => "uuid[]",
    ApiKeyId => "uuid[]",
    SessionId => "uuid[]",
    AutomationId => "uuid[]",
    ExecutionId => "uuid[]",
    EventId => "uuid[]",
    ImpersonationId => "uuid[]",
    FeatureFlagId => "uuid[]",
    bool => "bool[]",
    i32 => "int4[]",
    i64 => "int8[]",
    String => "text[]",
    DateTime<Utc> => "timestamptz[]",
    NaiveDate => "date[]",
);

/// A NULL-able column: the array of its type, with NULL elements.
impl<T: ColumnType> ColumnType for Option<T> {
    const PG_ARRAY: &'static str = T::PG_ARRAY;
}

/// JSON, as `jsonb` on Postgres and text on SQLite.
impl<T> ColumnType for Json<T>
where
    T: serde::Serialize + Clone + Send + Sync + 'static,
{
    const PG_ARRAY: &'static str = "jsonb[]";
}

/// How an upsert treats a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Part of the primary key (after the generation).
    Key,
    /// Written when the row is first inserted, never changed after.
    Fixed,
    /// Overwritten by every upsert (if the guard allows it).
    Set,
    /// Added to by every upsert: a counter whose rows carry deltas.
    Add,
}

/// A declared column.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub role: Role,
    pub pg_array: &'static str,
}

impl Column {
    pub const fn new(name: &'static str, role: Role, pg_array: &'static str) -> Column {
        Column {
            name,
            role,
            pg_array,
        }
    }
}

/// A table's primary key (without the generation): a tuple of column
/// values, bound as one array per column on Postgres, one value each on
/// SQLite.
pub trait Key: Clone + Eq + Hash + Send + Sync + 'static {
    /// The Postgres array type of each component.
    const PG_ARRAYS: &'static [&'static str];

    fn bind_arrays<'q>(query: PgQuery<'q>, keys: &[Self]) -> PgQuery<'q>;

    fn bind_values<'q>(query: SqliteQuery<'q>, key: &Self) -> SqliteQuery<'q>;
}

macro_rules! key_tuples {
    ($( ($($t:ident $i:tt),+) )*) => {$(
        impl<$($t: ColumnType + Eq + Hash),+> Key for ($($t,)+) {
            const PG_ARRAYS: &'static [&'static str] = &[$($t::PG_ARRAY),+];

            fn bind_arrays<'q>(query: PgQuery<'q>, keys: &[Self]) -> PgQuery<'q> {
                $( let query = query.bind(keys.iter().map(|key| key.$i.clone()).collect::<Vec<$t>>()); )+
                query
            }

            fn bind_values<'q>(query: SqliteQuery<'q>, key: &Self) -> SqliteQuery<'q> {
                $( let query = query.bind(key.$i.clone()); )+
                query
            }
        }
    )*};
}

key_tuples!(
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
);

/// A read-model table: what `table!` derives from a declaration.
pub trait Table:
    Sized + Send + Sync + Unpin + 'static + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow>
{
    const NAME: &'static str;
    /// Every column but the generation, in declaration order.
    const COLUMNS: &'static [Column];
    /// What an upsert's update must meet (`DO UPDATE SET … WHERE guard`),
    /// such as never moving a row back to an older version.
    const GUARD: Option<&'static str>;

    type Key: Key;

    fn key(&self) -> Self::Key;

    /// Binds each column's values across `rows`, as one array per column,
    /// in declaration order.
    fn bind_columns<'q>(query: PgQuery<'q>, rows: &[&Self]) -> PgQuery<'q>;

    /// Pushes one row's values, in declaration order.
    fn push_values(values: &mut Separated<'_, Sqlite, &'static str>, row: &Self);
}

/// Declares a read-model table: its row struct (with `sqlx::FromRow`) and
/// its [`Table`] implementation.
///
/// ```text
/// table! {
///     /// One row of `comments_view`.
///     #[derive(Clone, Debug, PartialEq)]
///     pub struct CommentRow in comments_view {
///         key { tenant_id: TenantId, id: CommentId }
///         fixed { task_id: TaskId, author_id: UserId, created_at: DateTime<Utc> }
///         set { body: String, edited_at: Option<DateTime<Utc>>, version: i64 }
///         guard "comments_view.version <= EXCLUDED.version";
///     }
/// }
/// ```
///
/// Sections come in this order; all but `key` may be left out: `key` (the
/// primary key after the generation), `fixed` (set on insert only), `set`
/// (overwritten by each upsert), `add` (counters each upsert adds to), and
/// an optional `guard` on the upsert's update.
macro_rules! table {
    (@guard) => { None };
    (@guard $guard:literal) => { Some($guard) };
    (
        $(#[$meta:meta])*
        pub struct $row:ident in $table:ident {
            key { $( $(#[$kmeta:meta])* $kfield:ident : $kty:ty ),+ $(,)? }
            $( fixed { $( $(#[$fmeta:meta])* $ffield:ident : $fty:ty ),* $(,)? } )?
            $( set { $( $(#[$smeta:meta])* $sfield:ident : $sty:ty ),* $(,)? } )?
            $( add { $( $(#[$ameta:meta])* $afield:ident : $aty:ty ),* $(,)? } )?
            $( guard $guard:literal; )?
        }
    ) => {
        $(#[$meta])*
        #[derive(::sqlx::FromRow)]
        pub struct $row {
            $( $(#[$kmeta])* pub $kfield: $kty, )+
            $($( $(#[$fmeta])* pub $ffield: $fty, )*)?
            $($( $(#[$smeta])* pub $sfield: $sty, )*)?
            $($( $(#[$ameta])* pub $afield: $aty, )*)?
        }

        impl $crate::table::Table for $row {
            const NAME: &'static str = stringify!($table);
            const COLUMNS: &'static [$crate::table::Column] = &[
                $( $crate::table::Column::new(
                    stringify!($kfield),
                    $crate::table::Role::Key,
                    <$kty as $crate::table::ColumnType>::PG_ARRAY,
                ), )+
                $($( $crate::table::Column::new(
                    stringify!($ffield),
                    $crate::table::Role::Fixed,
                    <$fty as $crate::table::ColumnType>::PG_ARRAY,
                ), )*)?
                $($( $crate::table::Column::new(
                    stringify!($sfield),
                    $crate::table::Role::Set,
                    <$sty as $crate::table::ColumnType>::PG_ARRAY,
                ), )*)?
                $($( $crate::table::Column::new(
                    stringify!($afield),
                    $crate::table::Role::Add,
                    <$aty as $crate::table::ColumnType>::PG_ARRAY,
                ), )*)?
            ];
            const GUARD: Option<&'static str> = $crate::table::table!(@guard $($guard)?);

            type Key = ($($kty,)+);

            #[allow(clippy::clone_on_copy)]
            fn key(&self) -> Self::Key {
                ($(self.$kfield.clone(),)+)
            }

            #[allow(clippy::clone_on_copy)]
            fn bind_columns<'q>(
                query: $crate::table::PgQuery<'q>,
                rows: &[&Self],
            ) -> $crate::table::PgQuery<'q> {
                $( let query = query.bind(rows.iter().map(|row| row.$kfield.clone()).collect::<Vec<$kty>>()); )+
                $($( let query = query.bind(rows.iter().map(|row| row.$ffield.clone()).collect::<Vec<$fty>>()); )*)?
                $($( let query = query.bind(rows.iter().map(|row| row.$sfield.clone()).collect::<Vec<$sty>>()); )*)?
                $($( let query = query.bind(rows.iter().map(|row| row.$afield.clone()).collect::<Vec<$aty>>()); )*)?
                query
            }

            #[allow(clippy::clone_on_copy)]
            fn push_values(
                values: &mut ::sqlx::query_builder::Separated<'_, ::sqlx::Sqlite, &'static str>,
                row: &Self,
            ) {
                $( values.push_bind(row.$kfield.clone()); )+
                $($( values.push_bind(row.$ffield.clone()); )*)?
                $($( values.push_bind(row.$sfield.clone()); )*)?
                $($( values.push_bind(row.$afield.clone()); )*)?
            }
        }
    };
}

pub(crate) use table;

/// The declared columns, comma-separated: a `SELECT` list.
pub fn columns<T: Table>() -> String {
    names(T::COLUMNS.iter())
}

fn names<'a>(columns: impl Iterator<Item = &'a Column>) -> String {
    columns.map(|c| c.name).collect::<Vec<_>>().join(", ")
}

/// The primary key's columns (after the generation).
pub(crate) fn key_names<T: Table>() -> Vec<&'static str> {
    T::COLUMNS
        .iter()
        .filter(|c| c.role == Role::Key)
        .map(|c| c.name)
        .collect()
}

/// `$from::a[], $from+1::b[], …`: the parameters of an `unnest`.
fn casts<'a>(arrays: impl Iterator<Item = &'a str>, from: usize) -> String {
    arrays
        .enumerate()
        .map(|(i, array)| format!("${}::{array}", from + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `ON CONFLICT` clause of the declared upsert.
fn upsert<T: Table>() -> String {
    let keys = key_names::<T>().join(", ");
    let table = T::NAME;
    let changes: Vec<String> = T::COLUMNS
        .iter()
        .filter_map(|c| match c.role {
            Role::Key | Role::Fixed => None,
            Role::Set => Some(format!("{0} = EXCLUDED.{0}", c.name)),
            Role::Add => Some(format!("{0} = {table}.{0} + EXCLUDED.{0}", c.name)),
        })
        .collect();
    if changes.is_empty() {
        return format!("ON CONFLICT (generation, {keys}) DO NOTHING");
    }
    let guard = T::GUARD.map(|g| format!(" WHERE {g}")).unwrap_or_default();
    format!(
        "ON CONFLICT (generation, {keys}) DO UPDATE SET {}{guard}",
        changes.join(", ")
    )
}

/// Writes `rows` into one generation with the declared upsert: one
/// statement on Postgres; on SQLite, multi-row statements, since each
/// statement is a round trip to the database's worker thread, which would
/// dominate a rebuild's cost otherwise.
pub async fn write<T: Table>(
    tx: &mut Tx<'_>,
    generation: i32,
    rows: &[&T],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (table, columns, upsert) = (T::NAME, columns::<T>(), upsert::<T>());
    match tx {
        Tx::Postgres(tx) => {
            let arrays = casts(T::COLUMNS.iter().map(|c| c.pg_array), 2);
            let insert = format!(
                "INSERT INTO {table} (generation, {columns}) SELECT $1, * FROM unnest({arrays}) {upsert}"
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(insert)).bind(generation);
            T::bind_columns(query, rows).execute(&mut **tx).await?;
        }
        Tx::Sqlite(tx) => {
            let per_statement = (SQLITE_PARAMETERS / (T::COLUMNS.len() + 1)).max(1);
            for chunk in rows.chunks(per_statement) {
                let mut insert = sqlx::QueryBuilder::<Sqlite>::new(format!(
                    "INSERT INTO {table} (generation, {columns}) "
                ));
                insert.push_values(chunk, |mut values, row| {
                    values.push_bind(generation);
                    T::push_values(&mut values, row);
                });
                insert.push(format!(" {upsert}"));
                insert.build().execute(&mut **tx).await?;
            }
        }
    }
    Ok(())
}

/// The rows of one generation with the given keys: one round trip on
/// Postgres; on SQLite, in-process lookups by key.
pub async fn load<T: Table>(
    tx: &mut Tx<'_>,
    generation: i32,
    keys: &[T::Key],
) -> Result<Vec<T>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (table, columns, key_names) = (T::NAME, columns::<T>(), key_names::<T>());
    Ok(match tx {
        Tx::Postgres(tx) => {
            let arrays = casts(<T::Key as Key>::PG_ARRAYS.iter().copied(), 2);
            let on: Vec<String> = key_names
                .iter()
                .map(|k| format!(" AND v.{k} = k.{k}"))
                .collect();
            let select = format!(
                "SELECT r.* FROM unnest({arrays}) AS k({}) \
                 CROSS JOIN LATERAL (SELECT {columns} FROM {table} v \
                   WHERE v.generation = $1{} LIMIT 1) AS r",
                key_names.join(", "),
                on.concat()
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(select)).bind(generation);
            let query = <T::Key as Key>::bind_arrays(query, keys);
            let rows = query.fetch_all(&mut **tx).await?;
            rows.iter().map(T::from_row).collect::<Result<_, _>>()?
        }
        Tx::Sqlite(tx) => {
            let select = format!(
                "SELECT {columns} FROM {table} WHERE generation = $1{}",
                matching(&key_names, 2)
            );
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                let query = sqlx::query(sqlx::AssertSqlSafe(select.clone())).bind(generation);
                let row = <T::Key as Key>::bind_values(query, key)
                    .fetch_optional(&mut **tx)
                    .await?;
                if let Some(row) = row {
                    found.push(T::from_row(&row)?);
                }
            }
            found
        }
    })
}

/// ` AND a = $from AND b = $from+1 …`.
fn matching(columns: &[&str], from: usize) -> String {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!(" AND {c} = ${}", from + i))
        .collect()
}

/// Deletes the rows of one generation with the given keys.
pub async fn delete<T: Table>(
    tx: &mut Tx<'_>,
    generation: i32,
    keys: &[T::Key],
) -> Result<(), sqlx::Error> {
    delete_matching::<T, T::Key>(tx, generation, &key_names::<T>(), keys, None).await
}

/// Deletes the rows of one generation whose `columns` hold one of `values`
/// (and that meet `condition`, if given): a batch delete by any columns,
/// such as the comments of deleted tasks, or the counters that reached 0.
pub async fn delete_matching<T: Table, K: Key>(
    tx: &mut Tx<'_>,
    generation: i32,
    columns: &[&str],
    values: &[K],
    condition: Option<&str>,
) -> Result<(), sqlx::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let table = T::NAME;
    let condition = condition.map(|c| format!(" AND {c}")).unwrap_or_default();
    match tx {
        Tx::Postgres(tx) => {
            let arrays = casts(K::PG_ARRAYS.iter().copied(), 2);
            let on: Vec<String> = columns
                .iter()
                .map(|c| format!(" AND v.{c} = k.{c}"))
                .collect();
            let delete = format!(
                "DELETE FROM {table} v USING unnest({arrays}) AS k({}) \
                 WHERE v.generation = $1{}{condition}",
                columns.join(", "),
                on.concat()
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(delete)).bind(generation);
            K::bind_arrays(query, values).execute(&mut **tx).await?;
        }
        Tx::Sqlite(tx) => {
            let delete = format!(
                "DELETE FROM {table} WHERE generation = $1{}{condition}",
                matching(columns, 2)
            );
            for value in values {
                let query = sqlx::query(sqlx::AssertSqlSafe(delete.clone())).bind(generation);
                K::bind_values(query, value).execute(&mut **tx).await?;
            }
        }
    }
    Ok(())
}

/// Deletes every row of one generation that meets `condition`.
pub async fn delete_where<T: Table>(
    tx: &mut Tx<'_>,
    generation: i32,
    condition: &str,
) -> Result<(), sqlx::Error> {
    let delete = format!(
        "DELETE FROM {} WHERE generation = $1 AND {condition}",
        T::NAME
    );
    tenet_events::with_tx!(tx, conn => {
        sqlx::query(sqlx::AssertSqlSafe(delete))
            .bind(generation)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

/// Deletes every row of one generation (before a rebuild fills it, after a
/// swap retires it).
pub async fn clear<T: Table>(tx: &mut Tx<'_>, generation: i32) -> Result<(), sqlx::Error> {
    let delete = format!("DELETE FROM {} WHERE generation = $1", T::NAME);
    tenet_events::with_tx!(tx, conn => {
        sqlx::query(sqlx::AssertSqlSafe(delete))
            .bind(generation)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    table! {
        #[derive(Clone, Debug, PartialEq)]
        pub struct Example in examples {
            key { tenant_id: TenantId, id: TaskId }
            fixed { created_at: DateTime<Utc> }
            set { title: String, labels: Json<Vec<String>>, due: Option<NaiveDate>, version: i64 }
            guard "examples.version <= EXCLUDED.version";
        }
    }

    table! {
        #[derive(Clone, Debug, PartialEq)]
        pub struct Tally in tallies {
            key { tenant_id: TenantId, status: String }
            add { count: i64 }
        }
    }

    #[test]
    fn the_upsert_follows_from_the_declaration() {
        assert_eq!(
            upsert::<Example>(),
            "ON CONFLICT (generation, tenant_id, id) DO UPDATE SET title = EXCLUDED.title, \
             labels = EXCLUDED.labels, due = EXCLUDED.due, version = EXCLUDED.version \
             WHERE examples.version <= EXCLUDED.version"
        );
        assert_eq!(
            upsert::<Tally>(),
            "ON CONFLICT (generation, tenant_id, status) DO UPDATE SET \
             count = tallies.count + EXCLUDED.count"
        );
    }

    #[test]
    fn columns_and_array_types_follow_from_the_declaration() {
        assert_eq!(
            columns::<Example>(),
            "tenant_id, id, created_at, title, labels, due, version"
        );
        assert_eq!(
            casts(Example::COLUMNS.iter().map(|c| c.pg_array), 2),
            "$2::uuid[], $3::uuid[], $4::timestamptz[], $5::text[], $6::jsonb[], $7::date[], $8::int8[]"
        );
        assert_eq!(<Tally as Table>::Key::PG_ARRAYS, &["uuid[]", "text[]"]);
    }
}
