//! Secrets the service must recover later (webhook signing secrets),
//! sealed for storage: encrypted and authenticated, so the log and a dump
//! of the database hold nothing usable without the service's signing
//! secret.
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`), an AEAD whose
//! 24-byte nonce is safe to draw at random for every seal, under a key
//! derived from the signing secret (HMAC-SHA256 of it under a label of its
//! own, so the key never doubles as the JWT secret). Sealed text is `v1.`
//! and the URL-safe base64 of nonce ‖ ciphertext ‖ tag; the version is
//! authenticated too. Rotating the signing secret makes sealed secrets
//! unreadable: they must be rotated too (the webhook's `rotate-secret`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NONCE: usize = 24;
const TAG: usize = 16;
const VERSION: &str = "v1.";

/// Why sealed text could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not sealed text of this service")]
    Malformed,
    #[error("sealed with another key, or altered")]
    Forged,
}

/// Seals and opens secrets with a key derived from one signing secret.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(signing_secret: &[u8]) -> SecretBox {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(signing_secret)
            .expect("HMAC takes any key length");
        derive.update(b"tenet/sealed-secrets/xchacha20poly1305/v1");
        let key: [u8; 32] = derive.finalize().into_bytes().into();
        SecretBox {
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    pub fn seal(&self, secret: &str) -> String {
        let nonce: [u8; NONCE] = rand::random();
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: VERSION.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .expect("XChaCha20-Poly1305 seals any message shorter than 256 GiB");
        let mut sealed = Vec::with_capacity(NONCE + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
            .filter(|bytes| bytes.len() >= NONCE + TAG)
            .ok_or(SealError::Malformed)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        let payload = Payload {
            msg: ciphertext,
            aad: VERSION.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SealError::Forged)?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_the_same_signing_secret_only() {
        let sealer = SecretBox::new(b"0123456789abcdef0123456789abcdef");
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sealed = sealer.seal(secret);
        assert!(!sealed.contains("MfKQ9r8"));
        assert_ne!(sealed, sealer.seal(secret), "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed).as_deref(), Ok(secret));
        let other = SecretBox::new(b"another secret of at least 32 bytes!");
        assert_eq!(other.open(&sealed), Err(SealError::Forged));
    }

    #[test]
    fn altered_or_foreign_text_is_refused() {
        let sealer = SecretBox::new(b"0123456789abcdef0123456789abcdef");
        let sealed = sealer.seal(&"x".repeat(100));
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        bytes[20] ^= 1;
        let altered = format!("v1.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(sealer.open(&altered), Err(SealError::Forged));
        assert_eq!(sealer.open("whsec_plain"), Err(SealError::Malformed));
        assert_eq!(sealer.open("v1.AAAA"), Err(SealError::Malformed));
    }
}
