//! One trace from HTTP to the read model to the WebSocket push, recorded by
//! an in-memory exporter: the service runs in this process (embedded), with
//! the same OpenTelemetry layer `tenet serve` installs when OTLP is
//! configured, embedded and on Postgres + NATS (where the relay's publish
//! joins the trace). A test binary of its own: the subscriber is
//! process-wide (each test follows a trace id of its own).

use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value, json};
use tenet_events::testing::{TestBus, TestDatabase};
use tokio_tungstenite::tungstenite::Message;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: tenet::config::ServeConfig,
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message of type `kind` on `socket`.
async fn wait_for(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let message = socket.next().await.expect("open").expect("message");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == kind {
                return value;
            }
        }
    }
}

fn named<'s>(spans: &'s [SpanData], name: &str) -> Vec<&'s SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// The exporter every test of this binary records into.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        tracing_subscriber::registry()
            .with(tenet::telemetry::layer(&provider))
            .init();
        // Kept for the process's life: the layer's tracer refers to it.
        std::mem::forget(provider);
        exporter
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_one_trace_runs_from_the_request_through_the_log_to_the_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let spans = follow_a_command(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        &["--data-dir", &data_dir],
    )
    .await;
    assert!(
        named(&spans, "relay.publish").is_empty(),
        "no relay embedded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_one_trace_runs_from_the_request_through_the_relay_to_the_websocket() {
    let Some(database) = TestDatabase::postgres_empty().await else {
        return;
    };
    let Some(bus) = TestBus::connect().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let url = database.url.clone().expect("postgres url");
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let spans = follow_a_command(
        "5cf92f3577b34da6a3ce929d0e0e4737",
        &[
            "--data-dir",
            &data_dir,
            "--database-url",
            &url,
            "--nats-url",
            &bus.url,
            "--nats-prefix",
            bus.prefix(),
            "--jwt-secret",
            &secret,
        ],
    )
    .await;
    let append = named(&spans, "log.append")[0];
    let published = named(&spans, "relay.publish");
    assert_eq!(published.len(), 1, "one event, published once");
    assert_eq!(published[0].parent_span_id, append.span_context.span_id());
    drop(bus);
    drop(database);
}

/// Serves in this process with `args`, runs one command under a
/// `traceparent` of trace `trace` while a WebSocket watches, checks the
/// links of the spans every mode makes, and answers the trace's spans.
async fn follow_a_command(trace_hex: &str, args: &[&str]) -> Vec<SpanData> {
    let exporter = exporter();
    let mut argv = vec!["tenet", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("configuration");
    let server = tenet::Server::bind(&cli.serve, None).await.expect("bind");
    let base = format!("http://{}", server.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let serving = tokio::spawn(server.serve(async move { stopped.cancelled().await }));

    // reqwest's TLS takes the process's rustls provider (as the service's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let email = "tracer@example.com";
    let password = "correct horse battery staple";
    post(
        &http,
        format!("{base}/api/v1/auth/register"),
        None,
        json!({ "email": email, "name": "Tracer", "password": password }),
    )
    .await;
    let login = post(
        &http,
        format!("{base}/api/v1/auth/login"),
        None,
        json!({ "email": email, "password": password }),
    )
    .await;
    let token = login["access_token"].as_str().expect("token").to_owned();
    let workspace = post(
        &http,
        format!("{base}/api/v1/workspaces"),
        Some(&token),
        json!({ "name": "Traces", "slug": "traces" }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = post(
        &http,
        format!("{base}/api/v1/workspaces/{workspace}/projects"),
        Some(&token),
        json!({ "name": "Web", "slug": "web" }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ws_url = format!("{}/api/v1/ws?token={token}", base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    let subscribe = json!({ "type": "subscribe", "channel": format!("workspace:{workspace}") });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(10), wait_for(&mut socket, "subscribed"))
        .await
        .expect("subscribed");

    let created = http
        .post(format!(
            "{base}/api/v1/workspaces/{workspace}/projects/{project}/tasks"
        ))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_hex}-{CALLER_SPAN}-01"))
        .json(&json!({ "title": "Traced" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let answered = created.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let update = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let update = wait_for(&mut socket, "update").await;
            if update["data"]["title"] == "Traced" {
                return update;
            }
        }
    })
    .await
    .expect("the task's update reaches the socket");
    assert_eq!(update["event_type"], "task.created");

    // Spans end as their work finishes; the last (the push) just after
    // the message left.
    let trace = TraceId::from_hex(trace_hex).unwrap();
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace)
            .collect();
        let relayed = !args.contains(&"--nats-url") || !named(&spans, "relay.publish").is_empty();
        if relayed
            && !named(&spans, "ws.push").is_empty()
            && !named(&spans, "projector.apply").is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();

    let request = named(
        &spans,
        "POST /api/v1/workspaces/{workspace_id}/projects/{project_id}/tasks",
    );
    assert_eq!(request.len(), 1, "{names:?}");
    let request = request[0];
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(CALLER_SPAN).unwrap()
    );
    assert!(request.parent_span_is_remote);
    assert_eq!(
        answered,
        format!("00-{trace_hex}-{}-01", request.span_context.span_id()),
        "the answer names the request's span"
    );

    let decide = named(&spans, "command.decide");
    assert!(!decide.is_empty(), "{names:?}");
    assert!(
        decide
            .iter()
            .all(|span| span.parent_span_id == request.span_context.span_id())
    );
    let append = named(&spans, "log.append");
    assert_eq!(append.len(), 1, "{names:?}");
    let append = append[0];
    assert_eq!(append.parent_span_id, request.span_context.span_id());

    // Every projector that applied the event, and the push, continue from
    // the append (through the event's metadata).
    let applies = named(&spans, "projector.apply");
    assert!(
        applies.len() >= 2,
        "tasks and task counts at least: {names:?}"
    );
    for span in applies.iter().chain(named(&spans, "ws.push").iter()) {
        assert_eq!(
            span.parent_span_id,
            append.span_context.span_id(),
            "{}",
            span.name
        );
        assert!(span.parent_span_is_remote);
    }
    let projectors: Vec<String> = applies
        .iter()
        .filter_map(|span| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "projector")
                .map(|kv| kv.value.to_string())
        })
        .collect();
    assert!(
        projectors.iter().any(|name| name == "tasks"),
        "{projectors:?}"
    );

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
    spans
}
