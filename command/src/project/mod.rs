//! Projects inside a workspace.

pub mod aggregate;
pub mod routes;
