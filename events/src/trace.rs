//! Tracing across the log: the W3C trace context (`traceparent`,
//! `tracestate`) a request arrives with travels in the metadata of every
//! event it appends, and in a header of every message the relay publishes,
//! so the spans of the relay, each projector and the WebSocket feed join the
//! trace of the request that caused their work.
//!
//! Spans are `tracing` spans of the target [`TARGET`] at debug level: with
//! no OpenTelemetry layer installed (the default) they are disabled at
//! their call sites and cost nothing, while the context still flows through
//! the log — a request's answer and its events carry a `traceparent` of
//! their own. With the layer installed (`OTEL_EXPORTER_OTLP_ENDPOINT`),
//! [`follow`] makes a span a child of the span that appended an event, in
//! whatever process and however much later it runs.

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::{Metadata, RecordedEvent};

/// The target of every span that follows a command through the log; the
/// OpenTelemetry layer listens to it.
pub const TARGET: &str = "tenet::trace";

/// The header (HTTP, NATS) of the trace context.
pub const TRACEPARENT: &str = "traceparent";
/// The header of vendor-specific trace state, passed along unchanged.
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` kept (the W3C limit is 32 members of at most 256
/// characters; real ones are far shorter, and 512 is what the spec asks
/// vendors to propagate at least).
const MAX_TRACESTATE: usize = 512;

tokio::task_local! {
    static CURRENT: SpanContext;
}

/// A `traceparent` header's context, or `None` when it is not one (W3C:
/// a receiver then starts a new trace). Version `ff` and all-zero ids are
/// invalid; a later version's extra fields are ignored.
pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let value = traceparent.trim();
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !lower_hex(version, 2) || version == "ff" || !lower_hex(trace, 32) || !lower_hex(span, 16) {
        return None;
    }
    if !lower_hex(flags, 2) || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8());
    let state = tracestate
        .filter(|state| state.len() <= MAX_TRACESTATE)
        .and_then(|state| TraceState::from_str(state).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// The `traceparent` header of a context.
pub fn format(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// The `tracestate` header of a context, if it has any state.
pub fn state_of(context: &SpanContext) -> Option<String> {
    let header = context.trace_state().header();
    (!header.is_empty()).then_some(header)
}

/// A context of this process's own making, for a request served without
/// an OpenTelemetry layer: in the trace of `parent` (or a new trace), with
/// a span id of its own, so the answer and the events name this hop.
pub fn local_child(parent: Option<&SpanContext>) -> SpanContext {
    let random = uuid::Uuid::new_v4().as_u128();
    let span_id = SpanId::from(
        u64::try_from(random & u128::from(u64::MAX))
            .unwrap_or(1)
            .max(1),
    );
    match parent {
        Some(parent) => SpanContext::new(
            parent.trace_id(),
            span_id,
            parent.trace_flags(),
            false,
            parent.trace_state().clone(),
        ),
        None => SpanContext::new(
            TraceId::from(uuid::Uuid::new_v4().as_u128()),
            span_id,
            TraceFlags::default(),
            false,
            TraceState::default(),
        ),
    }
}

/// Makes `span` a child of `parent`, when spans are recorded (otherwise
/// nothing happens: the span is disabled).
pub fn set_parent(span: &tracing::Span, parent: &SpanContext) {
    if span.is_disabled() || !parent.is_valid() {
        return;
    }
    let parent = opentelemetry::Context::new().with_remote_span_context(parent.clone());
    // Refused only once the span has started or without the layer: the
    // span then keeps its own parent, which is still a valid trace.
    let _ = span.set_parent(parent);
}

/// The context of `span` once started, when spans are recorded.
pub fn context_of(span: &tracing::Span) -> Option<SpanContext> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Runs `future` with `context` as the context of the request it serves
/// (what [`current`] answers inside it when no span is recorded).
pub async fn scope<F: Future>(context: SpanContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// The trace context work done now belongs to: the current recorded span,
/// else the request's context, else none (work outside any request).
pub fn current() -> Option<SpanContext> {
    context_of(&tracing::Span::current()).or_else(|| CURRENT.try_with(Clone::clone).ok())
}

/// Records the current trace context in `metadata` (events a command
/// appends).
pub fn record(metadata: &mut Metadata) {
    if let Some(context) = current() {
        metadata.traceparent = Some(format(&context));
        metadata.tracestate = state_of(&context);
    }
}

/// The context an event was appended in, if it carries one.
pub fn of(metadata: &Metadata) -> Option<SpanContext> {
    parse(
        metadata.traceparent.as_deref()?,
        metadata.tracestate.as_deref(),
    )
}

/// Spans made by `make`, one per distinct trace among `events`, each a
/// child of the span that appended its events: one batch of a projector or
/// of the feed is work in every trace it contains. Empty when spans are not
/// recorded: the first span made is disabled at its call site (interest
/// cached), and nothing more is done.
///
/// Not `tracing::enabled!`: with per-layer filters it leaves the filter's
/// verdict on the thread for the next span made there, which then goes
/// unrecorded (seen: a request's span lost after a projector's batch).
pub fn follow<'a>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
    make: impl Fn(&RecordedEvent) -> tracing::Span,
) -> Vec<tracing::Span> {
    let mut spans = Vec::new();
    let mut seen = HashSet::new();
    for event in events {
        let Some(parent) = of(&event.metadata) else {
            continue;
        };
        if !seen.insert(parent.trace_id()) {
            continue;
        }
        let span = make(event);
        if span.is_disabled() {
            return Vec::new();
        }
        set_parent(&span, &parent);
        spans.push(span);
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = parse(SAMPLE, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(format(&context), SAMPLE);
        assert_eq!(state_of(&context).as_deref(), Some("congo=t61rcWkgMzE"));
        assert!(context.is_remote());
        assert!(context.is_sampled());
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad, None).is_none(), "{bad:?}");
        }
        // A later version may add fields; the first four are still read.
        assert!(
            parse(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                None
            )
            .is_some()
        );
    }

    #[test]
    fn a_local_child_keeps_the_trace_and_names_its_own_span() {
        let parent = parse(SAMPLE, None).expect("valid");
        let child = local_child(Some(&parent));
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.is_valid());
        let fresh = local_child(None);
        assert!(fresh.is_valid());
        assert_ne!(fresh.trace_id(), parent.trace_id());
    }

    #[tokio::test]
    async fn the_request_context_is_current_inside_its_scope() {
        assert!(current().is_none());
        let context = parse(SAMPLE, None).expect("valid");
        let inside = scope(context.clone(), async { current() }).await;
        assert_eq!(inside, Some(context));
    }
}
