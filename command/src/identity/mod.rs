//! Users: registration, login and the platform-admin flag.

pub mod routes;
pub mod session;
pub mod user;
