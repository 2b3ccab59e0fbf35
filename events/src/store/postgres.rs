//! The event store on Postgres.
//!
//! One append transaction per batch, in four round trips: `BEGIN` together
//! with the log lock; read the head and the versions, claims and keys the
//! batch touches; insert every accepted event with one multi-row statement
//! that also advances the head and `NOTIFY`s other processes; commit (inline
//! projections, when the batch has events for them, run before the commit).
//!
//! The log lock is a transaction-scoped advisory lock: Postgres makes a
//! commit visible before it releases the committer's locks, so the next
//! batch cannot even read the head before the previous batch is visible.
//! Batches therefore commit in position order and a reader never sees a
//! later position before an earlier one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

use super::batch::{as_conflict, claims_to_check, run_inline, streams_to_check};
use super::commit::{BatchState, BatchWriter, GroupCommit, Plan, plan};
use super::handle::Store;
use super::reads;
use super::{AppendError, AppendRequest, Appended, StoreError, StoreOptions};
use crate::db::{Db, Tx};
use crate::ids::{Position, StreamId, TenantId};
use crate::projection::{self, Projector};
use crate::task::AbortOnDrop;

/// The channel appends notify on commit, carrying the new head position.
pub const LOG_CHANNEL: &str = "tenet_log";

/// Opens an append transaction holding the log lock. The isolation level is
/// pinned: under a repeatable-read default the snapshot would date from
/// before the lock wait. The two-key form of the advisory lock lives in a
/// key space apart from the one-key locks of leader election.
const BEGIN_APPEND: &str =
    "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(1415927365, 1)";

/// Takes the log lock for the rest of a transaction: no append commits
/// until it ends (an inline projection's blue/green swap needs the log to
/// stand still while it catches up and flips).
pub const LOG_LOCK: &str = "SELECT pg_advisory_xact_lock(1415927365, 1)";

/// Longest a batch may take before the writer gives up on its connection.
const BATCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Session settings of the writer connection. If this process vanishes
/// mid-transaction (a partition, a hang), the server ends the session and
/// releases the log lock instead of blocking every other writer until TCP
/// gives up; a lock wait or statement that long is a fault, not load.
///
/// The writer's statements take arrays whose contents vary every batch;
/// Postgres would re-plan them each time (custom plans), which costs more
/// than executing them, inside the log lock. Their generic plans are the
/// right ones (primary-key probes), so they are forced.
const WRITER_SESSION: [(&str, &str); 4] = [
    ("idle_in_transaction_session_timeout", "15s"),
    ("lock_timeout", "20s"),
    ("statement_timeout", "25s"),
    ("plan_cache_mode", "force_generic_plan"),
];

/// Opens the store on Postgres: registers the inline projections, starts
/// the writer and follows other processes' commits.
pub(super) async fn open(pool: PgPool, options: StoreOptions) -> Result<Store, StoreError> {
    let db = Db::Postgres(pool.clone());
    for inline in &options.inline {
        projection::register_inline(&db, inline.name()).await?;
    }
    let (head, _) = watch::channel(reads::head(&db).await?);
    let writer = PgWriter {
        options: (*pool.connect_options()).clone().options(WRITER_SESSION),
        connection: tokio::sync::Mutex::new(None),
        inline: options.inline,
    };
    let commit = GroupCommit::start(Arc::new(writer), options.max_batch_events, head.clone());
    let follower = AbortOnDrop(tokio::spawn(follow_other_processes(pool, head.clone())));
    Ok(Store::new(db, commit, head, Some(follower)))
}

/// Keeps the head watch current with commits of other processes, so local
/// tails wake up without polling. Missed notifications (a reconnect) only
/// delay a wake-up: tails also poll.
async fn follow_other_processes(pool: PgPool, head: watch::Sender<Position>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for log commits; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(LOG_CHANNEL).await {
            tracing::warn!(%error, "cannot listen for log commits; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    if let Ok(position) = notification.payload().parse::<i64>() {
                        advance(&head, Position(position));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "lost the log listener; reconnecting");
                    break;
                }
            }
        }
    }
}

fn advance(head: &watch::Sender<Position>, position: Position) {
    head.send_if_modified(|current| {
        let advanced = position > *current;
        if advanced {
            *current = position;
        }
        advanced
    });
}

/// Commits batches on a connection of its own: one batch is in flight at a
/// time, and skipping the pool saves a measurable share of each batch.
struct PgWriter {
    options: PgConnectOptions,
    connection: tokio::sync::Mutex<Option<PgConnection>>,
    inline: Vec<Arc<dyn Projector>>,
}

#[async_trait]
impl BatchWriter for PgWriter {
    async fn write(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let mut slot = self.connection.lock().await;
        let outcome = tokio::time::timeout(BATCH_TIMEOUT, async {
            let connection = match &mut *slot {
                Some(connection) => connection,
                empty => empty.insert(PgConnection::connect_with(&self.options).await?),
            };
            write_batch(connection, &self.inline, batch).await
        })
        .await
        .unwrap_or(Err(StoreError::TimedOut("append batch")));
        if outcome.is_err() {
            // The connection may be broken or mid-transaction: start afresh.
            *slot = None;
        }
        as_conflict(batch, outcome)
    }
}

async fn write_batch(
    connection: &mut PgConnection,
    inline: &[Arc<dyn Projector>],
    batch: &[AppendRequest],
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    {
        let mut tx = connection.begin_with(BEGIN_APPEND).await?;
        let state = read_state(&mut tx, batch).await?;
        let plan = plan(batch, state);
        if plan.is_empty() {
            tx.rollback().await?;
            return Ok(plan.outcomes);
        }
        release_claims(&mut tx, &plan).await?;
        insert_events(&mut tx, batch, &plan).await?;
        write_responses(&mut tx, batch, &plan).await?;
        let mut tx = Tx::Postgres(tx);
        if !inline.is_empty() {
            let recorded = plan.recorded(batch);
            run_inline(&mut tx, inline, &recorded).await?;
        }
        tx.commit().await?;
        Ok(plan.outcomes)
    }
}

/// Reads what the plan needs, under the log lock, in one round trip: the
/// head, the version of each stream the batch appends to (but those its
/// callers just created), the holders of the values it claims or releases,
/// and (in a second query, only when asked) its idempotency keys. The lock
/// was taken by an earlier statement: a statement's snapshot dates from its
/// start, so only a statement that starts after the lock is granted sees
/// the previous batch's commit.
async fn read_state(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[AppendRequest],
) -> Result<BatchState, StoreError> {
    let mut state = read_versions_and_claims(tx, batch).await?;
    state.used_keys = read_used_keys(tx, batch).await?;
    Ok(state)
}

/// The head, the versions of the batch's existing streams and the holders
/// of the values it claims or releases, in one statement.
async fn read_versions_and_claims(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[AppendRequest],
) -> Result<BatchState, StoreError> {
    let (tenants, stream_ids): (Vec<TenantId>, Vec<StreamId>) =
        streams_to_check(batch).into_iter().unzip();
    let (scopes, values): (Vec<&str>, Vec<&str>) = claims_to_check(batch)
        .into_iter()
        .map(|c| (c.scope.as_str(), c.value.as_str()))
        .unzip();
    // Rows: ('h', head) once; ('v', tenant, stream, version) per stream;
    // ('c', tenant, stream, scope, value) per held claim. Claims are probed
    // by primary key one at a time: a join would let the planner hash the
    // whole, ever-growing table, and a plain LATERAL subquery is pulled up
    // into exactly such a join (its LIMIT 1 prevents that).
    let rows: Vec<StateRow> = sqlx::query_as(
        "SELECT 'h' AS kind, NULL::uuid AS tenant_id, NULL::uuid AS stream_id, position AS version, \
                NULL::text AS scope, NULL::text AS value FROM event_log_head \
         UNION ALL \
         SELECT 'v', k.tenant_id, k.stream_id, \
                (SELECT max(e.stream_version) FROM events e \
                  WHERE e.tenant_id = k.tenant_id AND e.stream_id = k.stream_id), NULL, NULL \
         FROM unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, stream_id) \
         UNION ALL \
         SELECT 'c', c.tenant_id, c.stream_id, NULL, c.scope, c.value \
         FROM unnest($3::text[], $4::text[]) AS k(scope, value) \
         CROSS JOIN LATERAL (SELECT * FROM unique_claims u \
           WHERE u.scope = k.scope AND u.value = k.value LIMIT 1) AS c",
    )
    .bind(&tenants)
    .bind(&stream_ids)
    .bind(&scopes)
    .bind(&values)
    .fetch_all(&mut **tx)
    .await?;
    let mut state = BatchState::default();
    for row in rows {
        row.fold_into(&mut state);
    }
    Ok(state)
}

/// Which of the batch's idempotency keys are in use (and unexpired).
async fn read_used_keys(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[AppendRequest],
) -> Result<HashSet<(String, String)>, StoreError> {
    let keys: Vec<(&str, &str)> = batch
        .iter()
        .filter_map(|r| r.idempotency.as_ref())
        .map(|i| (i.scope.as_str(), i.key.as_str()))
        .collect();
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let (scopes, keys): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.scope, i.key \
         FROM unnest($1::text[], $2::text[]) AS k(scope, key) \
         CROSS JOIN LATERAL (SELECT * FROM idempotency_keys u \
           WHERE u.scope = k.scope AND u.key = k.key AND u.expires_at > now() LIMIT 1) AS i",
    )
    .bind(&scopes)
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

#[derive(sqlx::FromRow)]
struct StateRow {
    kind: String,
    tenant_id: Option<TenantId>,
    stream_id: Option<StreamId>,
    version: Option<i64>,
    scope: Option<String>,
    value: Option<String>,
}

impl StateRow {
    fn fold_into(self, state: &mut BatchState) {
        match (self.kind.as_str(), self.tenant_id, self.stream_id) {
            ("h", _, _) => state.head = Position(self.version.unwrap_or(0)),
            ("v", Some(tenant), Some(stream)) => {
                if let Some(version) = self.version {
                    state.versions.insert((tenant, stream), version);
                }
            }
            ("c", Some(tenant), Some(stream)) => {
                if let (Some(scope), Some(value)) = (self.scope, self.value) {
                    state.claims.insert((scope, value), (tenant, stream));
                }
            }
            _ => {}
        }
    }
}

/// The accepted events of a batch as one array per column, for `unnest`.
#[derive(Default)]
struct EventColumns<'a> {
    tenant_ids: Vec<TenantId>,
    positions: Vec<i64>,
    event_ids: Vec<crate::ids::EventId>,
    stream_ids: Vec<StreamId>,
    stream_types: Vec<&'a str>,
    versions: Vec<i64>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    data: Vec<String>,
    actor_types: Vec<&'a str>,
    actor_ids: Vec<Option<Uuid>>,
    actor_names: Vec<Option<&'a str>>,
    actor_user_ids: Vec<Option<Uuid>>,
    request_ids: Vec<Option<&'a str>>,
    correlation_ids: Vec<Option<Uuid>>,
    causation_ids: Vec<Option<Uuid>>,
    occurred: Vec<chrono::DateTime<chrono::Utc>>,
    impersonated_by: Vec<Option<Uuid>>,
    traceparents: Vec<Option<&'a str>>,
    tracestates: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    fn of(batch: &'a [AppendRequest], plan: &Plan) -> Self {
        let mut columns = EventColumns::default();
        for planned in &plan.events {
            let request = &batch[planned.request];
            let event = planned.event(batch);
            let metadata = &request.metadata;
            columns.tenant_ids.push(request.tenant_id);
            columns.positions.push(planned.position.0);
            columns.event_ids.push(event.event_id);
            columns.stream_ids.push(planned.stream_id);
            columns.stream_types.push(planned.stream_type);
            columns.versions.push(planned.stream_version);
            columns.event_types.push(event.event_type.as_ref());
            columns.schema_versions.push(event.schema_version);
            columns.data.push(event.data.to_string());
            columns.actor_types.push(metadata.actor.kind());
            columns.actor_ids.push(metadata.actor.id());
            columns.actor_names.push(metadata.actor.name());
            columns.actor_user_ids.push(metadata.actor.user_id());
            columns.request_ids.push(metadata.request_id.as_deref());
            columns.correlation_ids.push(metadata.correlation_id);
            columns.causation_ids.push(metadata.causation_id);
            columns.occurred.push(request.occurred_at);
            columns.impersonated_by.push(metadata.impersonated_by);
            columns.traceparents.push(metadata.traceparent.as_deref());
            columns.tracestates.push(metadata.tracestate.as_deref());
        }
        columns
    }
}

/// The claims a batch takes, as one array per column, for `unnest`.
#[derive(Default)]
struct ClaimColumns<'a> {
    scopes: Vec<&'a str>,
    values: Vec<&'a str>,
    tenants: Vec<TenantId>,
    streams: Vec<StreamId>,
}

impl<'a> ClaimColumns<'a> {
    fn of(plan: &'a Plan) -> Self {
        let mut columns = ClaimColumns::default();
        for (scope, value, tenant, stream) in &plan.claimed {
            columns.scopes.push(scope.as_str());
            columns.values.push(value.as_str());
            columns.tenants.push(*tenant);
            columns.streams.push(*stream);
        }
        columns
    }
}

/// Inserts every accepted event in one statement (arrays unnested into
/// rows), advances the head and notifies listeners, in one round trip.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[AppendRequest],
    plan: &Plan,
) -> Result<(), StoreError> {
    let claims = ClaimColumns::of(plan);
    let events = EventColumns::of(batch, plan);
    let moved: i64 = sqlx::query_scalar(
        "WITH appended AS ( \
           INSERT INTO events (tenant_id, position, event_id, stream_id, stream_type, \
             stream_version, event_type, schema_version, data, actor_type, actor_id, \
             actor_name, actor_user_id, request_id, correlation_id, causation_id, occurred_at, \
             impersonated_by, traceparent, tracestate) \
           SELECT t, p, e, s, st, v, et, sv, d::jsonb, at, ai, an, au, ri, ci, cu, oa, ib, tp, ts \
           FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::uuid[], $5::text[], $6::int8[], \
                       $7::text[], $8::int4[], $9::text[], $10::text[], $11::uuid[], $12::text[], \
                       $13::uuid[], $14::text[], $15::uuid[], $16::uuid[], $17::timestamptz[], \
                       $25::uuid[], $26::text[], $27::text[]) \
             AS u(t, p, e, s, st, v, et, sv, d, at, ai, an, au, ri, ci, cu, oa, ib, tp, ts) \
         ), claimed AS ( \
           INSERT INTO unique_claims (scope, value, tenant_id, stream_id, claimed_at) \
           SELECT cs, cv, ct, cst, now() FROM unnest($21::text[], $22::text[], $23::uuid[], $24::uuid[]) \
             AS c(cs, cv, ct, cst) \
         ), head AS ( \
           UPDATE event_log_head SET position = $18 WHERE position = $20 RETURNING 1 \
         ) \
         SELECT (SELECT count(*) FROM head), pg_notify($19, $18::text)",
    )
    .bind(&events.tenant_ids)
    .bind(&events.positions)
    .bind(&events.event_ids)
    .bind(&events.stream_ids)
    .bind(&events.stream_types)
    .bind(&events.versions)
    .bind(&events.event_types)
    .bind(&events.schema_versions)
    .bind(&events.data)
    .bind(&events.actor_types)
    .bind(&events.actor_ids)
    .bind(&events.actor_names)
    .bind(&events.actor_user_ids)
    .bind(&events.request_ids)
    .bind(&events.correlation_ids)
    .bind(&events.causation_ids)
    .bind(&events.occurred)
    .bind(plan.head.0)
    .bind(LOG_CHANNEL)
    .bind(plan.first_head.0)
    .bind(&claims.scopes)
    .bind(&claims.values)
    .bind(&claims.tenants)
    .bind(&claims.streams)
    .bind(&events.impersonated_by)
    .bind(&events.traceparents)
    .bind(&events.tracestates)
    .fetch_one(&mut **tx)
    .await?;
    // The head moves by compare-and-set: positions are unique only while
    // every writer takes the lock, and this makes any that did not fail
    // loudly instead of duplicating positions.
    if moved != 1 {
        return Err(StoreError::HeadMoved);
    }
    Ok(())
}

/// Deletes the claims the batch gives up, before its own claims are
/// inserted (with its events), so a value can change hands in one batch.
async fn release_claims(tx: &mut Transaction<'_, Postgres>, plan: &Plan) -> Result<(), StoreError> {
    if !plan.released.is_empty() {
        let (scopes, values): (Vec<&str>, Vec<&str>) = plan
            .released
            .iter()
            .map(|(s, v)| (s.as_str(), v.as_str()))
            .unzip();
        sqlx::query(
            "DELETE FROM unique_claims WHERE ctid IN ( \
               SELECT u.ctid FROM unnest($1::text[], $2::text[]) AS k(scope, value) \
               CROSS JOIN LATERAL (SELECT ctid FROM unique_claims c \
                 WHERE c.scope = k.scope AND c.value = k.value LIMIT 1) AS u)",
        )
        .bind(&scopes)
        .bind(&values)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_responses(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[AppendRequest],
    plan: &Plan,
) -> Result<(), StoreError> {
    for (index, position) in &plan.idempotent {
        let request = &batch[*index];
        let Some(record) = &request.idempotency else {
            continue;
        };
        // An expired row with the same key is replaced: keys are reusable
        // once their retention has passed.
        sqlx::query(
            "INSERT INTO idempotency_keys \
               (scope, key, fingerprint, response, position, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
               response = EXCLUDED.response, position = EXCLUDED.position, \
               created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.fingerprint)
        .bind(&record.response)
        .bind(position.0)
        .bind(request.occurred_at)
        .bind(record.expires_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
