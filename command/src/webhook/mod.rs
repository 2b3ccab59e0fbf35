//! Webhooks: the aggregate and its write routes.

pub mod aggregate;
pub mod routes;
pub mod target;

use base64::Engine;
use tenet_http::auth::sealed::SecretBox;

/// What webhook commands need besides the repository: the box that seals
/// signing secrets and what URLs may point to.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub secrets: SecretBox,
    pub targets: target::TargetPolicy,
}

/// Bytes of randomness in a signing secret.
const SECRET_BYTES: usize = 24;

/// A new signing secret: `whsec_` and the base64 of random bytes, the
/// Standard Webhooks form (the HMAC key is the decoded bytes).
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
