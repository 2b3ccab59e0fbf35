//! API keys: issuing and revoking workspace-bound credentials.

pub mod aggregate;
pub mod routes;
