//! Workspaces (the tenants) and their membership.

pub mod aggregate;
pub mod members;
pub mod routes;
