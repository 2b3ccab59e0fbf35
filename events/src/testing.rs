//! Test support: a private database (and NATS prefix) per test.
//!
//! Postgres tests create a fresh database named after a random id and drop
//! it afterwards, so tests never share state and can run in parallel. When
//! Postgres or NATS cannot be reached, the test is skipped with a note, but
//! fails outright when `CI=true` (or `TENET_TEST_REQUIRE_SERVICES=1`): a
//! missing service must never turn CI green by skipping.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::db::{Db, DbOptions};

/// The Postgres server tests use (any database on it; tests create their own).
pub fn postgres_url() -> String {
    std::env::var("TENET_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The NATS server tests use.
pub fn nats_url() -> String {
    std::env::var("TENET_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Whether a missing service fails the test instead of skipping it.
pub fn services_required() -> bool {
    let set = |name: &str| {
        std::env::var(name).is_ok_and(|value| matches!(value.as_str(), "1" | "true" | "yes"))
    };
    set("CI") || set("TENET_TEST_REQUIRE_SERVICES")
}

/// Skips (returns `None`) or fails, as [`services_required`] says.
pub fn unavailable<T>(service: &str, reason: impl std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!("{service} is required (CI=true) but unavailable: {reason}");
    }
    eprintln!("skipping: {service} unavailable ({reason}); set CI=true to make this an error");
    None
}

/// A short random name part, safe in database names and NATS subjects.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub db: Db,
    /// The URL of a Postgres database, for processes the test starts.
    pub url: Option<String>,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres {
        admin: Box<PgConnectOptions>,
        name: String,
    },
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
}

impl TestDatabase {
    /// A migrated SQLite database in a temporary directory.
    pub async fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("tenet.db");
        let db = Db::open_sqlite(&path, &DbOptions::default())
            .await
            .expect("open sqlite");
        db.migrate().await.expect("migrate sqlite");
        TestDatabase {
            db,
            url: None,
            cleanup: Cleanup::Sqlite { _dir: dir, path },
        }
    }

    /// A fresh, migrated Postgres database, or `None` when Postgres is
    /// unreachable outside CI.
    pub async fn postgres() -> Option<TestDatabase> {
        let database = Self::postgres_empty().await?;
        database.db.migrate().await.expect("migrate postgres");
        Some(database)
    }

    /// A fresh Postgres database without migrations.
    pub async fn postgres_empty() -> Option<TestDatabase> {
        let admin = match PgConnectOptions::from_str(&postgres_url()) {
            Ok(options) => options,
            Err(error) => return unavailable("Postgres", error),
        };
        let mut connection =
            match tokio::time::timeout(Duration::from_secs(5), admin.connect()).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => return unavailable("Postgres", error),
                Err(_) => return unavailable("Postgres", "connection timed out"),
            };
        let name = format!("tenet_test_{}", unique_suffix());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create test database");
        // The same URL (credentials, parameters) with the new database.
        let mut parsed = url::Url::parse(&postgres_url()).expect("a Postgres URL");
        parsed.set_path(&format!("/{name}"));
        let url = parsed.to_string();
        let db = Db::connect_postgres(&url, &DbOptions::default())
            .await
            .expect("connect to test database");
        Some(TestDatabase {
            db,
            url: Some(url),
            cleanup: Cleanup::Postgres {
                admin: Box::new(admin),
                name,
            },
        })
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.cleanup {
            Cleanup::Sqlite { path, .. } => Some(path),
            Cleanup::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin, name } = &self.cleanup {
            let admin = (**admin).clone();
            let name = name.clone();
            // Drop runs inside the test's runtime, which cannot block on
            // async work: drop the database from a thread of its own. FORCE
            // ends the test's own pooled connections (they belong to the
            // test's runtime and cannot be closed from here).
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let mut connection = admin.connect().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut connection)
                    .await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
            })
            .join();
            if let Ok(Err(error)) = dropped {
                eprintln!("could not drop test database: {error}");
            }
        }
    }
}

/// A NATS connection under a prefix of its own; its streams (and their
/// consumers) are deleted when it is dropped.
pub struct TestBus {
    pub bus: crate::bus::Bus,
    pub url: String,
}

impl TestBus {
    /// Connects under a fresh prefix, or `None` when NATS is unreachable
    /// outside CI.
    pub async fn connect() -> Option<TestBus> {
        let url = nats_url();
        let prefix = format!("t{}", unique_suffix());
        match crate::bus::Bus::connect(&url, &prefix).await {
            Ok(bus) => {
                keep_an_anchor_stream(&bus).await;
                Some(TestBus { bus, url })
            }
            Err(error) => unavailable("NATS", error),
        }
    }

    pub fn prefix(&self) -> &str {
        self.bus.prefix()
    }
}

/// NATS 2.9 removes an account's stream directory when its last stream is
/// deleted, and a stream created at that moment fails ("could not create
/// storage directory", error 10077). Tests create and delete streams
/// concurrently, so one stream that is never deleted keeps the directory.
async fn keep_an_anchor_stream(bus: &crate::bus::Bus) {
    static ANCHORED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ANCHORED
        .get_or_init(|| async {
            let created = bus
                .jetstream
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: "TENET_TEST_ANCHOR".to_owned(),
                    subjects: vec!["tenet-test-anchor".to_owned()],
                    max_messages: 1,
                    ..Default::default()
                })
                .await;
            if let Err(error) = created {
                eprintln!("could not keep the NATS anchor stream: {error}");
            }
        })
        .await;
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let url = self.url.clone();
        let prefix = self.bus.prefix().to_owned();
        // As for databases: async cleanup on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(bus) = crate::bus::Bus::connect(&url, &prefix).await
                    && let Err(error) = bus.delete_streams().await
                {
                    eprintln!("could not delete test streams: {error}");
                }
            });
        })
        .join();
    }
}
