//! The real `tenet` binary under test: what it runs on (a temporary data
//! directory, or a fresh Postgres database and a private NATS prefix), the
//! `tenet serve` process on a free port, its CLI, and its log.
//!
//! A server's log (its stderr) goes to the test's captured output, so a
//! passing test prints nothing and a failing one shows the log of every
//! server it started beside its panic. The filter is `warn,tenet=info`;
//! `TENET_TEST_LOG` replaces it (`TENET_TEST_LOG=debug cargo test ...`),
//! and `cargo test -- --nocapture` shows the log live.

use std::process::Stdio;
use std::time::Duration;

use tenet_events::testing::{TestBus, TestDatabase};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The log filter of every `tenet` a test runs, unless `TENET_TEST_LOG`
/// names another.
const LOG_FILTER: &str = "warn,tenet=info";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Distributed,
}

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What a started process runs on; kept alive as long as the processes.
pub struct Backing {
    pub mode: Mode,
    pub dir: tempfile::TempDir,
    pub database: Option<TestDatabase>,
    pub bus: Option<TestBus>,
    secret: String,
}

impl Backing {
    pub async fn new(mode: Mode) -> Option<Backing> {
        let dir = tempfile::tempdir().expect("temporary directory");
        Some(match mode {
            Mode::Embedded => Backing {
                mode,
                dir,
                database: None,
                bus: None,
                secret: random_secret(),
            },
            Mode::Distributed => {
                let database = TestDatabase::postgres_empty().await?;
                let bus = TestBus::connect().await?;
                Backing {
                    mode,
                    dir,
                    database: Some(database),
                    bus: Some(bus),
                    secret: random_secret(),
                }
            }
        })
    }

    /// The token-signing secret of this backing (a deployment's instances
    /// share one).
    pub fn jwt_secret(&self) -> String {
        self.secret.clone()
    }

    /// Environment for a `tenet serve` on this backing.
    pub fn env(&self) -> Vec<(String, String)> {
        let log = std::env::var("TENET_TEST_LOG").unwrap_or_else(|_| LOG_FILTER.to_owned());
        let mut env = vec![
            (
                "TENET_DATA_DIR".to_owned(),
                self.dir.path().join("data").display().to_string(),
            ),
            ("RUST_LOG".to_owned(), log),
        ];
        if let (Some(database), Some(bus)) = (&self.database, &self.bus) {
            env.push((
                "DATABASE_URL".to_owned(),
                database.url.clone().unwrap_or_default(),
            ));
            env.push(("NATS_URL".to_owned(), bus.url.clone()));
            env.push(("TENET_NATS_PREFIX".to_owned(), bus.prefix().to_owned()));
            // Processes sharing a backing share the signing secret, as
            // instances of one deployment do.
            env.push(("TENET_JWT_SECRET".to_owned(), self.jwt_secret()));
        }
        env
    }
}

impl Backing {
    /// A connection to the database a service on this backing uses, for
    /// tests that look underneath the API (row-for-row comparisons,
    /// events written the way an older binary wrote them).
    pub async fn open_db(&self) -> tenet_events::db::Db {
        use tenet_events::db::{Db, DbOptions};
        match &self.database {
            Some(database) => Db::connect_postgres(
                database.url.as_deref().expect("a Postgres URL"),
                &DbOptions::default(),
            )
            .await
            .expect("connect to the test database"),
            None => {
                let dir = self.dir.path().join("data");
                std::fs::create_dir_all(&dir).expect("data directory");
                Db::open_sqlite(&dir.join("tenet.db"), &DbOptions::default())
                    .await
                    .expect("open the embedded database")
            }
        }
    }

    /// Runs `tenet <args>` on this backing (beside any running service)
    /// and answers its exit status and output.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        command()
            .args(args)
            .envs(self.env())
            .output()
            .await
            .unwrap_or_else(|error| panic!("run tenet {}: {error}", args.join(" ")))
    }

    /// Makes the user with `email` a platform admin (`tenet admin grant`).
    pub async fn grant_platform_admin(&self, email: &str) {
        let granted = self.cli(&["admin", "grant", email]).await;
        assert!(
            granted.status.success(),
            "{}",
            String::from_utf8_lossy(&granted.stderr)
        );
    }
}

/// Rate limits high enough for tests that send many requests at once or
/// register many users.
pub const GENEROUS: [(&str, &str); 2] = [
    ("TENET_RATE_LIMIT", "1000000"),
    ("TENET_AUTH_RATE_LIMIT", "1000000"),
];

/// Starts `tenet serve` on `backing` with the [`GENEROUS`] limits.
pub async fn start(backing: &Backing) -> Tenet {
    start_with(backing, &[]).await
}

/// Starts `tenet serve` on `backing` with the [`GENEROUS`] limits and
/// `extra` after them.
pub async fn start_with(backing: &Backing, extra: &[(&str, &str)]) -> Tenet {
    let env: Vec<(&str, &str)> = GENEROUS.iter().chain(extra).copied().collect();
    Tenet::start(backing, &env).await
}

/// A running `tenet serve`.
pub struct Tenet {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

pub const BINARY: &str = env!("CARGO_BIN_EXE_tenet");

/// A `tenet` command with no inherited configuration.
pub fn command() -> Command {
    let mut command = Command::new(BINARY);
    for name in [
        "DATABASE_URL",
        "NATS_URL",
        "TENET_NATS_PREFIX",
        "TENET_DATA_DIR",
        "TENET_LISTEN",
        "TENET_ROLE",
    ] {
        command.env_remove(name);
    }
    command.kill_on_drop(true);
    command
}

/// Copies a server's log into the captured output of the test that
/// started it, line by line, until the server closes it.
///
/// `eprintln!` is the point: libtest captures it per test (the runtime's
/// threads inherit the capture of the test that built the runtime), keeps
/// it for a failing test and drops it for a passing one. Writing to the
/// inherited stderr would print every server's log, passing or not.
async fn forward_log(log: impl AsyncRead + Unpin, pid: u32) {
    let mut lines = BufReader::new(log).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[tenet {pid}] {line}");
    }
}

/// An HTTP client. reqwest's TLS (built for webhook deliveries) takes the
/// process's rustls provider, which the service installs at start; a test
/// process installs the same one here.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl Tenet {
    /// Starts `tenet serve` on `backing` with extra environment.
    pub async fn start(backing: &Backing, extra: &[(&str, &str)]) -> Tenet {
        let mut command = command();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(backing.env())
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start tenet");
        let pid = child.id().expect("a running child");
        let log = tokio::spawn(forward_log(child.stderr.take().expect("stderr"), pid));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("tenet did not report its address within 60 s")
            .expect("read stdout");
        let Some(line) = line else {
            // Its last words are the reason: let them reach the output
            // before the panic ends the test.
            let _ = tokio::time::timeout(Duration::from_secs(5), log).await;
            panic!("tenet exited before listening");
        };
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Tenet {
            child,
            base,
            http: http_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a signal and waits for the process to exit.
    pub async fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .await
            .expect("kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("tenet did not stop within 60 s")
            .expect("wait")
    }
}
