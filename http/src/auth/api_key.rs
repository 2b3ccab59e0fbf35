//! Bearer secrets (API keys, refresh tokens): 256 random bits, URL-safe,
//! told apart by their prefix, stored only as digests.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The prefix of API keys, which tells them apart from JWTs.
pub const API_KEY_PREFIX: &str = "tnt_";

/// The prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "rt_";

/// Longest refresh token accepted (a generated one is 46 characters).
pub const REFRESH_TOKEN_MAX: usize = 128;

/// A new API key secret.
pub fn new_api_key() -> String {
    generate(API_KEY_PREFIX)
}

/// A new refresh token.
pub fn new_refresh_token() -> String {
    generate(REFRESH_TOKEN_PREFIX)
}

/// Whether a bearer token is an API key (rather than a JWT).
pub fn is_api_key(bearer: &str) -> bool {
    bearer.starts_with(API_KEY_PREFIX)
}

/// Whether a string has the shape of a refresh token.
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.starts_with(REFRESH_TOKEN_PREFIX) && token.len() <= REFRESH_TOKEN_MAX
}

/// Hex SHA-256 of a secret (API key, refresh token): what is stored.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new secret: `prefix` followed by 32 random bytes in unpadded URL-safe
/// base64 (43 characters).
fn generate(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_hex_sha256() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secrets_are_prefixed_long_and_url_safe() {
        let secret = generate("tnt_");
        assert!(secret.starts_with("tnt_"));
        assert_eq!(secret.len(), 4 + 43);
        assert!(
            secret[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(generate("tnt_"), secret);
    }
}
