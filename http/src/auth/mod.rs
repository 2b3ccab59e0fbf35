//! Authentication, all of it: who a bearer token names (JWTs and API
//! keys), password hashing, the API-key format, the token-signing secret,
//! scopes and the extractors that check them.
//!
//! The facts a credential is checked against (is this session live, what
//! role does this user hold) live in the access-control read model; this
//! module reaches them only through [`CredentialStore`], so the rules stay
//! here and the tables stay with their projector.

pub mod api_key;
mod authenticator;
pub mod external;
pub mod jwt;
pub mod password;
mod principal;
pub mod scope;
pub mod sealed;
pub mod signing_key;

pub use authenticator::{
    ACCOUNT_DEACTIVATED, Authenticator, CredentialStore, IMPERSONATION_ENDED, KeyHolder,
    TokenHolder, deactivated,
};
pub use principal::*;
