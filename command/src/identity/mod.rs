//! Users: registration, login, the platform-admin flag and what platform
//! admins do to accounts.

pub mod account;
pub mod admin;
pub mod external;
pub mod impersonation;
pub mod routes;
pub mod session;
pub mod user;
