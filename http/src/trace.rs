//! W3C Trace Context at the edge: a request's `traceparent` (and
//! `tracestate`) is accepted, the request is served in a span of that trace,
//! and the answer names this hop in its own `traceparent` — the same trace
//! id, this server's span id — so a client can find its request in the
//! traces and in the log (each event's metadata carries the context).
//!
//! A missing or malformed `traceparent` starts a new trace (W3C: never an
//! error). Without an OpenTelemetry layer the span is disabled and the
//! context is made here ([`tenet_events::trace::local_child`]).

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tenet_events::trace::{self, TRACEPARENT, TRACESTATE};
use tracing::Instrument;

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Middleware: serves the request in its trace and answers `traceparent`.
pub async fn layer(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let remote = header(headers, TRACEPARENT)
        .and_then(|parent| trace::parse(parent, header(headers, TRACESTATE)));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let span = tracing::debug_span!(
        target: trace::TARGET,
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(remote) = &remote {
        trace::set_parent(&span, remote);
    }
    let context = trace::context_of(&span).unwrap_or_else(|| trace::local_child(remote.as_ref()));
    let mut response = trace::scope(context.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&trace::format(&context)) {
        headers.insert(TRACEPARENT, value);
    }
    if let Some(value) =
        trace::state_of(&context).and_then(|state| HeaderValue::from_str(&state).ok())
    {
        headers.insert(TRACESTATE, value);
    }
    response
}
