//! The write side: aggregates with pure decisions, the repository that
//! commits them to the log, and the write endpoints (POST, PATCH, DELETE).
//!
//! Handlers only wire: validate the body, resolve the tenant and the
//! principal, name the command's streams and its decision through the
//! [`pipeline`], and say what it replies. Nothing here
//! reads a read model for a decision; what a decision needs is in its
//! aggregate (or claimed atomically with its events).

pub mod api_key;
pub mod automation;
pub mod comment;
pub mod feature_flag;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod openapi;
pub mod pipeline;
pub mod project;
pub mod reply;
pub mod repository;
pub mod task;
pub mod template;
mod wake;
pub mod webhook;
pub mod workspace;

#[cfg(test)]
mod testing;

use utoipa_axum::router::OpenApiRouter;

pub use http::CommandState;

/// Every write route, with its OpenAPI description.
pub fn router(state: CommandState) -> OpenApiRouter {
    OpenApiRouter::new()
        .merge(identity::account::router())
        .merge(identity::routes::router())
        .merge(identity::admin::router())
        .merge(workspace::routes::router())
        .merge(workspace::members::router())
        .merge(api_key::routes::router())
        .merge(project::routes::router())
        .merge(task::routes::router())
        .merge(comment::routes::router())
        .merge(automation::routes::router())
        .merge(feature_flag::routes::router())
        .merge(template::routes::router())
        .merge(webhook::routes::router())
        .with_state(state)
}
