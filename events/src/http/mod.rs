//! The HTTP kit shared by the write side (`tenet-command`) and the read side
//! (`tenet-query`): problem+json errors, request ids, extractors that name
//! the field at fault, validation, pagination, conditional requests,
//! consistency tokens, scopes and authentication.
//!
//! It lives in the lowest crate so both sides reach it without depending on
//! each other. It holds conventions only: no routes, no business rules.

pub mod auth;
pub mod extract;
pub mod headers;
pub mod jwt;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod ratelimit;
pub mod request_id;
pub mod scope;
pub mod validate;

pub use auth::{Access, Auth, Authenticator, Credential, PlatformAdmin, Principal};
pub use extract::{Json, Path, Query};
pub use headers::{ConsistencyToken, IfMatch};
pub use pagination::{Page, PageRequest, Sort};
pub use problem::{ApiError, FieldError, Problem};
pub use request_id::RequestId;
pub use scope::{Action, Resource, Scope, Scopes};
pub use validate::Checks;
