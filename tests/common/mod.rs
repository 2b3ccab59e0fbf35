//! Black-box harness: starts the real `tenet` binary on a free port, in
//! embedded mode (temporary data directory) or distributed mode (a fresh
//! Postgres database and a private NATS prefix), and talks HTTP to it.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tenet_events::testing::{TestBus, TestDatabase};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Distributed,
}

/// What a started process runs on; kept alive as long as the processes.
pub struct Backing {
    pub mode: Mode,
    pub dir: tempfile::TempDir,
    pub database: Option<TestDatabase>,
    pub bus: Option<TestBus>,
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
            },
            Mode::Distributed => {
                let database = TestDatabase::postgres_empty().await?;
                let bus = TestBus::connect().await?;
                Backing {
                    mode,
                    dir,
                    database: Some(database),
                    bus: Some(bus),
                }
            }
        })
    }

    /// Environment for a `tenet serve` on this backing.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "TENET_DATA_DIR".to_owned(),
                self.dir.path().join("data").display().to_string(),
            ),
            ("RUST_LOG".to_owned(), "warn,tenet=info".to_owned()),
        ];
        if let (Some(database), Some(bus)) = (&self.database, &self.bus) {
            env.push((
                "DATABASE_URL".to_owned(),
                database.url.clone().unwrap_or_default(),
            ));
            env.push(("NATS_URL".to_owned(), bus.url.clone()));
            env.push(("TENET_NATS_PREFIX".to_owned(), bus.prefix().to_owned()));
        }
        env
    }
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

impl Tenet {
    /// Starts `tenet serve` on `backing` with extra environment.
    pub async fn start(backing: &Backing, extra: &[(&str, &str)]) -> Tenet {
        let mut command = command();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(backing.env())
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start tenet");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("tenet did not report its address within 60 s")
            .expect("read stdout")
            .expect("tenet exited before listening");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Tenet {
            child,
            base,
            http: reqwest::Client::new(),
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

/// Runs each named test once per mode; a test takes a `Backing` and does
/// the rest itself.
#[macro_export]
macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let backing = $crate::common::Backing::new($crate::common::Mode::Embedded)
                        .await
                        .expect("embedded backing");
                    super::$test(backing).await;
                }
            )*
        }
        mod distributed {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(backing) = $crate::common::Backing::new($crate::common::Mode::Distributed).await else {
                        return;
                    };
                    super::$test(backing).await;
                }
            )*
        }
    };
}
