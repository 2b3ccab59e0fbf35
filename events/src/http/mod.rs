//! The HTTP kit shared by the write side (`tenet-command`) and the read side
//! (`tenet-query`): problem+json errors, request ids, and (as the API grows)
//! extractors, pagination and authentication.
//!
//! It lives in the lowest crate so both sides reach it without depending on
//! each other. It holds conventions only: no routes, no business rules.

pub mod problem;
pub mod request_id;

pub use problem::{ApiError, FieldError, Problem};
pub use request_id::RequestId;
