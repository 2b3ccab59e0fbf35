//! The realtime feed against the real binary: 1,000 WebSocket clients
//! subscribed to one workspace while tasks are created at a steady rate.
//! Prints the delivery latency from a command's acknowledgement to each
//! client's receipt of its update (p50, p99) beside the same fan-out
//! through a bare loopback WebSocket server in this process (the ceiling:
//! no auth, no database, one broadcast), and the server's resident memory
//! per connection. Both backends.
//!
//! `cargo bench --bench ws` (`TENET_BENCH_SECONDS` sets run length,
//! `TENET_BENCH_WS_CLIENTS` the number of clients).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backing, Mode, Tenet, User};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use support::{Row, print_table, run_for};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Commands per second while measuring: each is delivered to every client.
const RATE: u64 = 20;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn clients() -> usize {
    std::env::var("TENET_BENCH_WS_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident memory once it stops moving (the allocator gives freed pages
/// back with a delay; password hashing alone takes tens of MiB for a
/// moment): two readings half a second apart within 64 KiB.
async fn settled_rss_kib(pid: u32) -> Option<u64> {
    let mut last = rss_kib(pid)?;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) < 64 {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

async fn connect(url: &str, token: &str) -> Client {
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    // Retried: 1,000 connections at once can overflow the accept backlog.
    for _ in 0..50 {
        if let Ok((client, _)) = tokio_tungstenite::connect_async(request.clone()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {url}");
}

/// Reads a client's messages until `expected` task creations arrived (or
/// `until`), noting when each did; answers the client too, still open.
async fn receive(
    mut client: Client,
    expected: usize,
    until: Instant,
) -> (Client, Vec<(String, Instant)>) {
    let mut received = Vec::new();
    while received.len() < expected {
        let left = until.saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(left, client.next()).await {
            Ok(Some(Ok(frame))) => frame,
            _ => break,
        };
        let at = Instant::now();
        if let Message::Text(text) = frame {
            let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if message["event_type"] == "task.created"
                && message["resource"] == "task"
                && let Some(id) = message["data"]["id"].as_str()
            {
                received.push((id.to_owned(), at));
            }
        }
    }
    (client, received)
}

struct Measured {
    latency: Histogram<u64>,
    /// RSS growth per connection: subscribed and idle, then after the run
    /// (socket and queue buffers having carried traffic).
    idle_kib: f64,
    busy_kib: f64,
    delivered: u64,
    expected: u64,
}

async fn measure_tenet(mode: Mode) -> Option<Measured> {
    let backing = Backing::new(mode).await?;
    let tenet = Tenet::start(
        &backing,
        &[
            ("RUST_LOG", "warn"),
            ("TENET_RATE_LIMIT", "100000000"),
            ("TENET_AUTH_RATE_LIMIT", "100000000"),
        ],
    )
    .await;
    let pid = tenet.child.id().expect("running");
    let user = User::register(&tenet, "bench").await;
    // Warm the process up (pools, allocator, one connection's code paths)
    // so the memory measured is the connections'.
    let warm = User::register(&tenet, "warm").await;
    let warm_workspace = warm.workspace("Warm").await;
    let mut warm_client = connect(
        &format!("{}/api/v1/ws", tenet.base.replacen("http://", "ws://", 1)),
        warm.client.token.as_deref().expect("token"),
    )
    .await;
    warm_client
        .send(Message::text(
            json!({ "type": "subscribe", "channel": format!("workspace:{warm_workspace}") })
                .to_string(),
        ))
        .await
        .expect("subscribe");
    warm_client.next().await;
    let workspace = user.workspace("Bench").await;
    let project = user
        .client
        .post(
            &format!("/api/v1/workspaces/{workspace}/projects"),
            json!({ "name": "Live", "slug": "live" }),
        )
        .await;
    let project = project.body["id"].as_str().expect("project").to_owned();
    let tasks = format!("/api/v1/workspaces/{workspace}/projects/{project}/tasks");
    let token = user.client.token.clone().expect("token");
    let url = format!("{}/api/v1/ws", tenet.base.replacen("http://", "ws://", 1));
    let channel = format!("workspace:{workspace}");

    // Password hashing ran on blocking threads, whose freed buffers (tens
    // of MiB) leave the resident set only when the idle threads exit
    // (after tokio's 10 s keep-alive): wait them out for a true baseline.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = settled_rss_kib(pid).await?;
    let n = clients();
    let connected = futures::stream::iter(0..n)
        .map(|_| {
            let (url, token, channel) = (url.clone(), token.clone(), channel.clone());
            async move {
                let mut client = connect(&url, &token).await;
                client
                    .send(Message::text(
                        json!({ "type": "subscribe", "channel": channel }).to_string(),
                    ))
                    .await
                    .expect("subscribe");
                let answer = client.next().await.expect("answer").expect("frame");
                assert!(answer.to_text().unwrap_or("").contains("subscribed"));
                client
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<Client>>()
        .await;
    let after = settled_rss_kib(pid).await?;

    let commands = (RATE as f64 * run_for().as_secs_f64()).max(1.0) as u64;
    let until = Instant::now() + run_for() + Duration::from_secs(10);
    let receivers: Vec<_> = connected
        .into_iter()
        .map(|client| tokio::spawn(receive(client, commands as usize, until)))
        .collect();
    let mut acks: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE as f64));
    for n in 0..commands {
        ticker.tick().await;
        let created = user
            .client
            .post(&tasks, json!({ "title": format!("live {n}") }))
            .await;
        let acked = Instant::now();
        assert_eq!(created.status, 201, "{:#}", created.body);
        acks.insert(created.body["id"].as_str().expect("id").to_owned(), acked);
    }
    let busy = settled_rss_kib(pid).await?;
    let mut latency = histogram();
    let mut delivered = 0;
    let mut open = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        let (client, received) = receiver.await.expect("receiver");
        open.push(client);
        for (id, at) in received {
            if let Some(acked) = acks.get(&id) {
                // An update can beat the HTTP answer to its client: zero.
                let micros = at.saturating_duration_since(*acked).as_micros() as u64;
                latency.record(micros.max(1)).ok();
                delivered += 1;
            }
        }
    }
    Some(Measured {
        latency,
        // Signed: the allocator may give pages back, so a delta this
        // small can come out below zero.
        idle_kib: (after as f64 - before as f64) / n as f64,
        busy_kib: (busy as f64 - before as f64) / n as f64,
        delivered,
        expected: commands * n as u64,
    })
}

/// The ceiling: the same number of loopback WebSocket clients, each fed by
/// a bare tokio-tungstenite server task from one broadcast channel, with a
/// message of the same size; latency from broadcast to receipt.
async fn measure_ceiling(size: usize) -> Histogram<u64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (broadcast, _) = tokio::sync::broadcast::channel::<Arc<String>>(1024);
    let feed = broadcast.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut updates = feed.subscribe();
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Ok(update) = updates.recv().await {
                    if socket
                        .send(Message::text(update.as_str().to_owned()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("ws://{address}");
    let n = clients();
    let connected = futures::stream::iter(0..n)
        .map(|_| {
            let url = url.clone();
            async move {
                for _ in 0..50 {
                    if let Ok((client, _)) = tokio_tungstenite::connect_async(&url).await {
                        return client;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("cannot connect to the ceiling server");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<Client>>()
        .await;
    // Every server task has subscribed once its handshake is done.
    while broadcast.receiver_count() < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let commands = (RATE as f64 * run_for().as_secs_f64()).max(1.0) as u64;
    let until = Instant::now() + run_for() + Duration::from_secs(10);
    let receivers: Vec<_> = connected
        .into_iter()
        .map(|client| tokio::spawn(receive(client, commands as usize, until)))
        .collect();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE as f64));
    let padding = "x".repeat(size.saturating_sub(120));
    for n in 0..commands {
        ticker.tick().await;
        let id = format!("ceiling-{n}");
        let message = json!({
            "type": "update", "event_type": "task.created", "resource": "task",
            "data": { "id": id, "title": padding },
        })
        .to_string();
        sent.insert(id, Instant::now());
        let _ = broadcast.send(Arc::new(message));
    }
    let mut latency = histogram();
    for receiver in receivers {
        let (_, received) = receiver.await.expect("receiver");
        for (id, at) in received {
            if let Some(sent) = sent.get(&id) {
                latency
                    .record((at.saturating_duration_since(*sent).as_micros() as u64).max(1))
                    .ok();
            }
        }
    }
    latency
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let n = clients();
        // A task update's message is about 700 bytes.
        let ceiling = measure_ceiling(700).await;
        let mut rows = vec![
            Row::new(
                format!("ceiling: bare loopback WebSocket fan-out to {n} clients, p50"),
                "-",
                ms(&ceiling, 0.5),
                "ms",
            ),
            Row::new(
                format!("ceiling: bare loopback WebSocket fan-out to {n} clients, p99"),
                "-",
                ms(&ceiling, 0.99),
                "ms",
            ),
        ];
        for (mode, backend) in [
            (Mode::Embedded, "sqlite"),
            (Mode::Distributed, "postgres+nats"),
        ] {
            let Some(measured) = measure_tenet(mode).await else {
                continue;
            };
            rows.push(
                Row::new(
                    format!(
                        "ack → received by each of {n} clients at {RATE} creates/s, p50 ({} of {} delivered)",
                        measured.delivered, measured.expected
                    ),
                    backend,
                    ms(&measured.latency, 0.5),
                    "ms",
                )
                .against(ms(&ceiling, 0.5), "bare fan-out p50"),
            );
            rows.push(
                Row::new(
                    format!("ack → received by each of {n} clients, p99"),
                    backend,
                    ms(&measured.latency, 0.99),
                    "ms",
                )
                .against(ms(&ceiling, 0.99), "bare fan-out p99"),
            );
            rows.push(Row::new(
                "server memory per connection, subscribed and idle (RSS delta / clients)",
                backend,
                measured.idle_kib,
                "KiB",
            ));
            rows.push(Row::new(
                "server memory per connection, after the run (RSS delta / clients)",
                backend,
                measured.busy_kib,
                "KiB",
            ));
        }
        print_table("Realtime WebSocket feed", &rows);
    });
}
