//! Bearer secrets (API keys, refresh tokens): 256 random bits, URL-safe.

use base64::Engine;

/// A new secret: `prefix` followed by 32 random bytes in unpadded URL-safe
/// base64 (43 characters).
pub fn generate(prefix: &str) -> String {
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
