//! The HTTP surface of one process: the routers of its roles, merged, under
//! the layers every response passes through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tenet_events::bus::Bus;
use tenet_events::db::Db;
use tenet_events::store::EventStore;
use tenet_http::deprecation::{self, Deprecation};
use tenet_http::ratelimit::{self, RateLimits};
use tenet_http::{ApiError, request_id};
use tenet_projections::Checkpoints;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use tenet_command::CommandState;
use tenet_command::repository::Repository;
use tenet_http::auth::jwt::Jwt;
use tenet_http::auth::password::Passwords;
use tenet_http::auth::{Auth, Authenticator};
use tenet_http::contract::{Contract, ContractState};
use tenet_http::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    SecuritySchemes, TooManyRequests, Unauthenticated, Unavailable, Unprocessable,
    UnsupportedMediaType,
};
use tenet_http::{FieldError, Problem};
use tenet_projections::access::AccessModel;
use tenet_query::QueryState;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{Role, ServeConfig};
use crate::console;
use crate::ops::{self, Ops};

/// Largest request body accepted (the largest legitimate body, a task with
/// a 20,000-character description, is far below it).
pub const BODY_LIMIT: usize = 256 * 1024;

/// The routes kept for existing clients but deprecated (answered with
/// `Deprecation`/`Sunset` headers and `deprecated: true` in the document,
/// both from here). None today: nothing has been replaced yet. The
/// mechanism is tested with a route of its own (`tenet_http::deprecation`).
static DEPRECATED: &[Deprecation] = &[];

/// What the HTTP surface of this process is built from (the binary's
/// wiring hands it over once, to [`router`]).
pub struct HttpDeps<'a> {
    pub config: &'a ServeConfig,
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub repository: Arc<Repository>,
    pub bus: Option<Bus>,
    pub checkpoints: Checkpoints,
    pub metrics: Option<PrometheusHandle>,
    pub jwt: Arc<Jwt>,
    pub passwords: Arc<Passwords>,
    pub limits: Arc<RateLimits>,
    /// The WebSocket feed's subscriptions in this process.
    pub hub: Arc<tenet_query::realtime::Hub>,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Seals webhook secrets; where webhooks may point.
    pub webhooks: Arc<tenet_command::webhook::WebhookSettings>,
    /// The external identity provider whose tokens are accepted, if any.
    pub external: Option<Arc<tenet_http::auth::external::ExternalProvider>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenet",
        description = "Multi-tenant, event-sourced work management. Errors are RFC 9457 problem+json. \
            Lists take offset/limit (1-100) and answer items/total/has_more. Commands answer \
            X-Consistency-Token; send it back on a read to read your own write. Single resources \
            carry ETag; PATCH and DELETE accept If-Match. PATCH bodies are JSON merge patches \
            (RFC 7396, application/merge-patch+json or application/json): a field left out is \
            unchanged, null clears a field marked nullable and is 422 naming any other. POSTs accept Idempotency-Key (up to 255 \
            printable characters): a retry with the same key and body replays the first response \
            for 24 hours, the same key with another body is 422. Rate limits are per principal (a \
            user, or an API key once accepted) and per client IP on login and registration; each \
            instance counts on its own, so N instances behind a balancer allow up to N times the \
            limit. Requests may carry a W3C traceparent (and tracestate): every response answers \
            a traceparent in the same trace (a new one when none or a malformed one was sent) \
            naming the server's span, and the events a command appends record it \
            (the audit log's traceparent)."
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(Problem, FieldError),
        responses(
            BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, PreconditionFailed,
            PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable
        )
    ),
    tags(
        (name = "auth", description = "Accounts and access tokens"),
        (name = "operations", description = "Liveness, readiness and metrics"),
        (name = "workspaces", description = "Workspaces: the tenants"),
        (name = "projects", description = "Projects inside a workspace"),
        (name = "tasks", description = "Tasks: numbered per project, moved through todo, in_progress, in_review, done or cancelled"),
        (name = "comments", description = "Comments on tasks"),
        (name = "automations", description = "A project's automations (a trigger and ordered actions) and their executions, step by step"),
        (name = "templates", description = "Versioned project templates with typed parameters, instantiated as one atomic append"),
        (name = "analytics", description = "Workspace analytics from a projection: tasks created and completed per day, cycle times, open tasks, completions per assignee"),
        (name = "audit", description = "The event log as an audit trail"),
        (name = "admin", description = "Platform administration: users and their lifecycle, impersonation, workspaces, the whole log, stats, projections, rebuilds and jobs"),
        (name = "feature-flags", description = "Feature flags: platform-wide switches with a stable percentage rollout and per-workspace overrides"),
        (name = "realtime", description = "Live, resumable updates over a WebSocket"),
        (name = "webhooks", description = "Signed, retried deliveries of a workspace's events to HTTPS endpoints"),
        (name = "events", description = "The workspace event feed: every event in log order, as pages or Server-Sent Events"),
    )
)]
struct ApiDoc;

/// The whole HTTP surface of this process: operations, the API of its
/// roles, the document of the whole API, under the layers every response
/// passes through.
pub fn router(mut deps: HttpDeps<'_>) -> axum::Router {
    let ops = ops::router(Ops {
        db: deps.db.clone(),
        store: deps.store.clone(),
        bus: deps.bus.clone(),
        metrics: deps.metrics.take(),
        ready_max_lag: deps.config.ready_max_lag,
        started: Instant::now(),
    });
    let config = deps.config;
    let limits = deps.limits.clone();
    let (api, doc) = api(deps);
    let router = axum::Router::new()
        .merge(ops)
        .merge(api)
        .merge(console::router())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn_with_state(
            DEPRECATED,
            deprecation::layer,
        ));
    with_outer_layers(router, config, limits)
}

/// The command, query and realtime routes of the roles this process
/// serves, and the document of the whole API, whichever roles it serves.
fn api(deps: HttpDeps<'_>) -> (axum::Router, utoipa::openapi::OpenApi) {
    let access = Arc::new(AccessModel::new(deps.db.clone()));
    let mut authenticator = Authenticator::new(deps.jwt.clone(), access.clone());
    if let Some(provider) = deps.external {
        let accounts = tenet_command::identity::external::ExternalUsers {
            repository: deps.repository.clone(),
            access: access.clone(),
            auto_create: deps.config.auth.oidc_auto_create,
        };
        authenticator = authenticator.with_external(provider, Arc::new(accounts));
    }
    let auth: Auth = Arc::new(authenticator);
    let command_state = CommandState {
        repository: deps.repository,
        db: deps.db.clone(),
        keys_in_flight: Arc::default(),
        webhooks: deps.webhooks.clone(),
        auth: auth.clone(),
        access,
        jwt: deps.jwt,
        passwords: deps.passwords,
        refresh_ttl: Duration::from_secs(deps.config.auth.refresh_token_ttl_secs),
    };
    let commands = tenet_command::router(command_state.clone());
    let realtime = tenet_query::realtime::router(tenet_query::realtime::Realtime {
        hub: deps.hub,
        db: deps.db.clone(),
        store: deps.store.clone(),
        auth: auth.clone(),
        checkpoints: deps.checkpoints.clone(),
        settings: deps.config.realtime.settings(),
        shutdown: deps.shutdown,
    });
    let queries = tenet_query::router(QueryState {
        db: deps.db,
        store: deps.store,
        auth,
        checkpoints: deps.checkpoints,
        consistency_timeout: deps.config.consistency_timeout(),
    });
    let (command_routes, command_doc) = commands.split_for_parts();
    let (query_routes, query_doc) = queries.split_for_parts();
    let (realtime_routes, realtime_doc) = realtime.split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(command_doc);
    doc.merge(query_doc);
    doc.merge(realtime_doc);
    doc.merge(ops::ApiDoc::openapi());
    tenet_http::openapi::complete(&mut doc);
    deprecation::mark(&mut doc, DEPRECATED);
    tenet_http::openapi::constrain_parameters(&mut doc);
    let contract = ContractState {
        contract: Arc::new(Contract::new(&doc)),
        auth: command_state.auth.clone(),
    };
    let mut api = axum::Router::new();
    if deps.config.runs(Role::Command) {
        api = api.merge(command_routes.route_layer(middleware::from_fn_with_state(
            command_state,
            tenet_command::idempotency::layer,
        )));
    }
    if deps.config.runs(Role::Query) {
        api = api.merge(query_routes).merge(realtime_routes);
    }
    // Outermost of the route layers: credentials, then the query's
    // parameters, before any other check.
    let api = api.route_layer(middleware::from_fn_with_state(
        contract,
        tenet_http::contract::layer,
    ));
    (api, doc)
}

/// The layers outside the routes' own: CORS, rate limits, security
/// headers, metrics and the request id.
fn with_outer_layers(
    router: axum::Router,
    config: &ServeConfig,
    limits: Arc<RateLimits>,
) -> axum::Router {
    // CORS answers preflights itself: inside the layers below, so those
    // answers carry the rate-limit and security headers and a request id
    // like every other response.
    let router = match cors(&config.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(limits, ratelimit::layer))
        .layer(middleware::from_fn_with_state(
            hsts(config.hsts_max_age),
            security_headers,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(request_id::layer))
        .layer(middleware::from_fn(tenet_http::trace::layer))
}

/// The `Strict-Transport-Security` value, when the service is reached
/// over TLS (`TENET_HSTS` seconds; 0, the default, sends none: over plain
/// HTTP the header means nothing, and a wrong one locks browsers out).
fn hsts(max_age: u64) -> Option<HeaderValue> {
    (max_age > 0)
        .then(|| HeaderValue::from_str(&format!("max-age={max_age}; includeSubDomains")).ok())
        .flatten()
}

/// Headers every response carries: no MIME sniffing, no framing, no
/// referrer; HSTS when configured; API responses are not cached; the docs
/// page runs only its own scripts.
async fn security_headers(
    axum::extract::State(hsts): axum::extract::State<Option<HeaderValue>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if path.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if path.starts_with("/console") {
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(console::CONTENT_SECURITY_POLICY),
        );
    } else if path.starts_with("/docs") {
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    response
}

/// CORS for the configured origins; none configured, none allowed.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter(|origin| !origin.trim().is_empty())
        .filter_map(|origin| HeaderValue::from_str(origin.trim()).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let expose = [
        "etag",
        "location",
        "retry-after",
        "traceparent",
        "tracestate",
        "x-consistency-token",
        "x-request-id",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ];
    let allow = [
        "authorization",
        "content-type",
        "if-match",
        "idempotency-key",
        "traceparent",
        "tracestate",
        "x-consistency-token",
        "x-request-id",
    ];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers(allow.map(HeaderName::from_static))
            .expose_headers(expose.map(HeaderName::from_static))
            .max_age(Duration::from_secs(600)),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "This route does not accept that method",
    )
}

/// Errors produced outside the handlers (the body limit's 413, a timeout,
/// a static asset that is not there) come as plain text or nothing; give
/// them the same problem+json shape as the rest.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // JSON already (problem+json, or a report such as readiness's 503)
    // says what went wrong better than a generic problem would.
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| {
            value.as_bytes().starts_with(b"application/problem+json")
                || value.as_bytes().starts_with(b"application/json")
        });
    let bare = (status.is_client_error() || status.is_server_error()) && !is_json;
    if !bare {
        return response;
    }
    match status {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(format!(
            "The request body is over the limit of {BODY_LIMIT} bytes"
        ))
        .into_response(),
        status => ApiError::new(
            status,
            if status.is_server_error() {
                "INTERNAL_ERROR"
            } else {
                "BAD_REQUEST"
            },
            status.canonical_reason().unwrap_or("Error"),
        )
        .into_response(),
    }
}

/// Request count and latency per route and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed: Duration = started.elapsed();
    metrics::counter!("tenet_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tenet_http_request_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}
