//! Comments on tasks.

pub mod aggregate;
pub mod routes;
