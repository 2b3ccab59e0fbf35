//! Feature flags: the aggregate and its write routes (platform admins).

pub mod aggregate;
pub mod routes;
