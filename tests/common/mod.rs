//! Black-box harness: starts the real `tenet` binary on a free port, in
//! embedded mode (temporary data directory) or distributed mode (a fresh
//! Postgres database and a private NATS prefix), and talks HTTP to it.
//!
//! The tests in `tests/black_box` and the benches in `benches/` include it
//! (`#[path]`). Every helper more than one of their files uses lives
//! here, once:
//! - [`server`]: the backing, `tenet serve` and the CLI, and where a
//!   server's log goes (into the test's captured output, shown only if
//!   the test fails; `TENET_TEST_LOG` sets its filter);
//! - [`http`]: the client, the reply and what tests read off it;
//! - [`paths`]: the API paths several files build;
//! - [`fixtures`]: users and sessions, members, API keys, a board.

// The test binary and each bench use a part of the harness.
#![allow(dead_code, unused_imports)]

pub mod fixtures;
pub mod http;
pub mod paths;
pub mod server;

pub use fixtures::{ApiKey, Board, PASSWORD, User, add_member, issue_key, login, register};
pub use http::{Client, Reply, id, strings};
pub use paths::*;
pub use server::{BINARY, Backing, GENEROUS, Mode, Tenet, command, start, start_with};

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
