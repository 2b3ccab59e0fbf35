//! Operations endpoints: liveness, readiness and Prometheus metrics. Not
//! workspace-scoped, not authenticated (they reveal no tenant data).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tenet_events::bus::Bus;
use tenet_events::db::Db;
use tenet_events::ids::Position;
use tenet_events::store::EventStore;
use tenet_projections::replay;

#[derive(Clone)]
pub struct Ops {
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub bus: Option<Bus>,
    pub metrics: Option<PrometheusHandle>,
    pub ready_max_lag: i64,
    /// When this process began serving (for `uptime_seconds`).
    pub started: std::time::Instant,
}

pub fn router(ops: Ops) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

/// The operations routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready, metrics))]
pub struct ApiDoc;

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
    /// The release serving (the crate's version).
    #[schema(example = "0.1.0")]
    version: &'static str,
    /// Whole seconds since this process began serving.
    uptime_seconds: u64,
}

/// `GET /api/v1/health`: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "operations",
    responses((status = 200, description = "The process is up", body = Health))
)]
async fn health(State(ops): State<Ops>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: ops.started.elapsed().as_secs(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    status: &'static str,
    database: Check,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<Check>,
    head: i64,
    projections: Vec<ProjectionReadiness>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ProjectionReadiness {
    name: String,
    generation: i32,
    position: i64,
    lag: i64,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    ok: bool,
}

/// `GET /api/v1/health/ready`: 200 when the database answers, NATS (if
/// configured) is connected and every active projection is live and within
/// the lag bound; 503 with the failing checks otherwise.
#[utoipa::path(
    get,
    path = "/api/v1/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready: database, NATS and every projection are fine", body = Readiness),
        (status = 503, description = "Not ready; the body says which check failed", body = Readiness),
    )
)]
async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    let database = match ops.db.ping().await {
        Ok(()) => Check {
            ok: true,
            error: None,
        },
        Err(error) => Check {
            ok: false,
            error: Some(error.to_string()),
        },
    };
    let nats = ops.bus.as_ref().map(|bus| {
        if bus.is_connected() {
            Check {
                ok: true,
                error: None,
            }
        } else {
            Check {
                ok: false,
                error: Some("not connected".to_owned()),
            }
        }
    });
    let mut head = 0;
    let mut projections = Vec::new();
    if database.ok {
        head = ops.store.head().await.map_or(0, |p| p.0);
        if let Ok(states) = replay::projections(&ops.db, Position(head)).await {
            for state in states {
                // A rebuild beside a live generation does not hurt reads.
                let ok = state.state != "failed" && state.lag_events <= ops.ready_max_lag;
                projections.push(ProjectionReadiness {
                    name: state.name,
                    generation: state.generation,
                    position: state.position,
                    lag: state.lag_events,
                    status: state.state,
                    last_error: state.last_error,
                    ok,
                });
            }
        }
    }
    let is_ready = database.ok
        && nats.as_ref().is_none_or(|check| check.ok)
        && projections.iter().all(|p| p.ok);
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if is_ready { "ready" } else { "not_ready" },
            database,
            nats,
            head,
            projections,
        }),
    )
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))
)]
async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    match &ops.metrics {
        Some(handle) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            handle.render(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            [("content-type", "text/plain")],
            "metrics are not enabled in this process\n".to_owned(),
        ),
    }
}
