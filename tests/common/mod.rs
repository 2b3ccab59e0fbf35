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

    /// Makes the user with `email` a platform admin (`tenet admin grant`).
    pub async fn grant_platform_admin(&self, email: &str) {
        let granted = command()
            .args(["admin", "grant", email])
            .envs(self.env())
            .output()
            .await
            .expect("run tenet admin grant");
        assert!(
            granted.status.success(),
            "{}",
            String::from_utf8_lossy(&granted.stderr)
        );
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

/// A response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The consistency token a command answered.
    pub fn token(&self) -> String {
        self.header("x-consistency-token")
            .expect("X-Consistency-Token on a command response")
    }

    pub fn etag(&self) -> String {
        self.header("etag").expect("ETag")
    }

    /// Asserts the status and that an error is problem+json with `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{:#}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{:#}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &serde_json::Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        &self.body
    }

    /// The field names of a 422's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Requests to one Tenet, as one caller (or anonymously).
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Client {
    pub fn anonymous(tenet: &Tenet) -> Client {
        Client {
            http: tenet.http.clone(),
            base: tenet.base.clone(),
            token: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// A GET that waits for the write behind `token`.
    pub async fn get_after(&self, path: &str, token: &str) -> Reply {
        self.send(
            self.request(reqwest::Method::GET, path)
                .header("X-Consistency-Token", token),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(self.request(reqwest::Method::PATCH, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }
}

/// A registered, logged-in user.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    pub client: Client,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl User {
    /// Registers a user with a unique email and logs in.
    pub async fn register(tenet: &Tenet, name: &str) -> User {
        let anonymous = Client::anonymous(tenet);
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let registered = anonymous
            .post(
                "/api/v1/auth/register",
                serde_json::json!({ "email": email, "name": name, "password": PASSWORD }),
            )
            .await;
        let id = registered.assert_status(201)["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let login = anonymous
            .post(
                "/api/v1/auth/login",
                serde_json::json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        let token = login.assert_status(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        User {
            id,
            email,
            password: PASSWORD.to_owned(),
            client: anonymous.with_token(&token),
        }
    }

    /// Creates a workspace and answers its id.
    pub async fn workspace(&self, name: &str) -> String {
        let created = self
            .client
            .post(
                "/api/v1/workspaces",
                serde_json::json!({ "name": format!("{name} {}", uuid::Uuid::new_v4().simple()) }),
            )
            .await;
        created.assert_status(201)["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}
