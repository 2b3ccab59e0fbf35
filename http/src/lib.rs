//! The HTTP kit shared by the write side (`tenet-command`) and the read side
//! (`tenet-query`): problem+json errors, request ids, extractors that name
//! the field at fault, validation, pagination, conditional requests,
//! consistency tokens, rate limits, OpenAPI helpers, and all of
//! authentication (tokens, API keys, passwords, scopes).
//!
//! It sits between the log (`tenet-events`) and the two sides, so both
//! reach it without depending on each other. It holds conventions only: no
//! routes, no business rules, no read-model tables.

pub mod auth;
pub mod contract;
pub mod deprecation;
pub mod extract;
pub mod headers;
pub mod openapi;
pub mod pagination;
pub mod patch;
pub mod problem;
pub mod ratelimit;
pub mod request_id;
pub mod trace;
pub mod validate;

pub use auth::scope::{Action, Resource, Scope, Scopes};
pub use auth::{Access, Auth, Authenticator, Credential, PlatformAdmin, Principal};
pub use extract::{Json, Path, Query};
pub use headers::{ConsistencyToken, IfMatch};
pub use pagination::{Page, PageRequest, Sort};
pub use problem::{ApiError, FieldError, Problem};
pub use request_id::RequestId;
pub use validate::Checks;

/// For [`error_responses!`] in other crates.
pub use utoipa;
