//! Shared by the benchmarks: timing, the ceilings measured in the same run,
//! and the table every bench prints (figure, ceiling, ratio).

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// One line of a results table.
pub struct Row {
    pub what: String,
    pub backend: &'static str,
    pub figure: f64,
    pub unit: &'static str,
    pub ceiling: Option<(f64, String)>,
}

impl Row {
    pub fn new(
        what: impl Into<String>,
        backend: &'static str,
        figure: f64,
        unit: &'static str,
    ) -> Self {
        Row {
            what: what.into(),
            backend,
            figure,
            unit,
            ceiling: None,
        }
    }

    pub fn against(mut self, ceiling: f64, name: impl Into<String>) -> Self {
        self.ceiling = Some((ceiling, name.into()));
        self
    }
}

pub fn print_table(title: &str, rows: &[Row]) {
    let mut out = format!(
        "\n## {title}\n\n| measurement | backend | figure | ceiling (same run) | ratio |\n|---|---|---|---|---|\n"
    );
    for row in rows {
        let (ceiling, ratio) = match &row.ceiling {
            Some((value, name)) if *value > 0.0 => (
                format!("{} {} ({name})", human(*value), row.unit),
                format!("{:.2}x", row.figure / value),
            ),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {} {} | {} | {} |\n",
            row.what,
            row.backend,
            human(row.figure),
            row.unit,
            ceiling,
            ratio
        ));
    }
    // A bench's own output is its product: print it as-is.
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.as_bytes());
}

pub fn human(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// How long each throughput run lasts (`TENET_BENCH_SECONDS`, default 5).
pub fn run_for() -> Duration {
    let seconds = std::env::var("TENET_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    Duration::from_secs_f64(seconds)
}

pub fn deadline() -> Instant {
    Instant::now() + run_for()
}

/// The one-event-per-transaction durable-append ceiling of PERFORMANCE.md:
/// pgbench, `clients` connections, each transaction inserting one ~650-byte
/// row on a new stream into a table with a unique (tenant, stream, version)
/// key and a global position. Answers transactions (= events) per second.
pub async fn pgbench_append_ceiling(database_url: &str, clients: u32) -> Option<f64> {
    let pool = sqlx::PgPool::connect(database_url).await.ok()?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS ceiling_events ( \
           position bigserial PRIMARY KEY, tenant_id uuid NOT NULL, stream_id uuid NOT NULL, \
           stream_version bigint NOT NULL, event_type text NOT NULL, data jsonb NOT NULL, \
           occurred_at timestamptz NOT NULL, UNIQUE (tenant_id, stream_id, stream_version))",
    )
    .execute(&pool)
    .await
    .ok()?;
    pool.close().await;
    let payload = format!("{{\"title\": \"{}\"}}", "x".repeat(480));
    let script = format!(
        "INSERT INTO ceiling_events (tenant_id, stream_id, stream_version, event_type, data, occurred_at) \
         VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'bench.appended', '{payload}', now());\n"
    );
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("append.sql");
    std::fs::write(&path, script).ok()?;
    let seconds = run_for().as_secs().max(1).to_string();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds,
            "-f",
        ])
        .arg(&path)
        .arg(database_url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

/// The primary-key read ceiling of PERFORMANCE.md: pgbench, `clients`
/// connections, prepared `SELECT` of a ~300-byte row by (tenant, id) among
/// 100,000 rows of one tenant. Answers reads per second.
pub async fn pgbench_read_ceiling(database_url: &str, clients: u32) -> Option<f64> {
    let pool = sqlx::PgPool::connect(database_url).await.ok()?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS ceiling_rows ( \
           tenant_id uuid NOT NULL, id uuid NOT NULL, payload text NOT NULL, \
           PRIMARY KEY (tenant_id, id)); \
         INSERT INTO ceiling_rows \
           SELECT '00000000-0000-0000-0000-000000000001', md5(i::text)::uuid, repeat('x', 260) \
           FROM generate_series(1, 100000) AS i ON CONFLICT DO NOTHING; \
         ANALYZE ceiling_rows",
    )
    .execute(&pool)
    .await
    .ok()?;
    pool.close().await;
    let script = "\\set n random(1, 100000)\n\
        SELECT tenant_id, id, payload FROM ceiling_rows \
        WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND id = md5(:n::text)::uuid;\n";
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("read.sql");
    std::fs::write(&path, script).ok()?;
    let seconds = run_for().as_secs().max(1).to_string();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds,
            "-f",
        ])
        .arg(&path)
        .arg(database_url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}
