//! Logs and traces of the process. Logs go to stderr (text, or JSON with
//! `TENET_LOG_FORMAT=json`) filtered by `RUST_LOG`; spans that follow a
//! command through the log (`tenet_events::trace`) are exported over OTLP
//! (http/protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Unset, no OpenTelemetry
//! layer is installed: those spans are disabled where they are made.

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tenet_events::trace::TARGET;
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What must outlive the process's work: the exporter's provider, flushed
/// on [`Telemetry::shutdown`].
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by the SDK's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not flush the last spans");
        }
    }
}

/// Whether an OTLP endpoint is configured (the standard variables; set to
/// an empty string counts as unset, and `OTEL_SDK_DISABLED=true` wins).
fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|value| value.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// A per-layer filter that lets through only the trace spans, or all but
/// them.
///
/// Dynamic on purpose: it leaves every call site's interest "sometimes",
/// so each span and event is filtered afresh. A static filter's cached
/// interest lets the verdict an `enabled!` check (sqlx asks one per query)
/// left on the thread decide the next span instead: requests' spans went
/// missing on Postgres.
fn only_trace<S>(
    wanted: bool,
) -> DynFilterFn<
    S,
    impl Fn(&tracing::Metadata<'_>, &tracing_subscriber::layer::Context<'_, S>) -> bool,
>
where
    S: tracing::Subscriber,
{
    DynFilterFn::new(
        move |metadata: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>| {
            (metadata.target() == TARGET) == wanted
        },
    )
}

/// The layer that records the trace spans with `provider`'s tracer, and
/// only them (logs stay logs).
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tenet"))
        .with_filter(only_trace(true))
}

/// The OTLP exporter's provider, batching spans on its own thread.
fn otlp_provider() -> anyhow::Result<SdkTracerProvider> {
    // Its reqwest client takes the process's rustls provider (the one the
    // webhook client installs too): an `https` collector needs it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .context("cannot set up the OTLP exporter")?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "tenet".to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the process's subscriber: the log, and the OTLP exporter when
/// configured.
///
/// `RUST_LOG` is the one global filter (as it always was); with export on,
/// it also lets the trace spans through, and per-layer filters keep them
/// out of the log and everything else out of the export.
pub fn init() -> anyhow::Result<Telemetry> {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = otlp_configured().then(otlp_provider).transpose()?;
    if provider.is_some() {
        filter = filter.add_directive(
            format!("{TARGET}=debug")
                .parse()
                .context("the trace spans' filter directive")?,
        );
    }
    let json = std::env::var("TENET_LOG_FORMAT").is_ok_and(|format| format == "json");
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let log = match (json, provider.is_some()) {
        (true, false) => fmt.json().boxed(),
        (false, false) => fmt.boxed(),
        (true, true) => fmt.json().with_filter(only_trace(false)).boxed(),
        (false, true) => fmt.with_filter(only_trace(false)).boxed(),
    };
    let otel = provider.as_ref().map(layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(log)
        .with(otel)
        .try_init()
        .context("cannot install the log")?;
    Ok(Telemetry { provider })
}
