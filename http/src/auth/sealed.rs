//! Secrets the service must recover later (webhook signing secrets),
//! sealed for storage: encrypted and authenticated with keys derived from
//! the service's signing secret, so the log and a dump of the database
//! hold nothing usable without it.
//!
//! The construction uses only HMAC-SHA256 (already the service's MAC):
//! a random 16-byte nonce, a keystream of HMAC(enc_key, nonce ‖ counter)
//! blocks XORed over the plaintext (HMAC as a PRF in counter mode), then
//! HMAC(mac_key, nonce ‖ ciphertext) as the tag (encrypt-then-MAC). The
//! two keys are HMACs of the signing secret under distinct labels. Sealed
//! text is `v1.` and the URL-safe base64 of nonce ‖ ciphertext ‖ tag.
//! Rotating the signing secret makes sealed secrets unreadable: they must
//! be rotated too (the webhook's `rotate-secret`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const NONCE: usize = 16;
const TAG: usize = 32;
const BLOCK: usize = 32;
const VERSION: &str = "v1.";

/// Why sealed text could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not sealed text of this service")]
    Malformed,
    #[error("sealed with another key, or altered")]
    Forged,
}

/// Seals and opens secrets with keys derived from one signing secret.
#[derive(Clone)]
pub struct SecretBox {
    encrypt: [u8; 32],
    authenticate: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl SecretBox {
    pub fn new(signing_secret: &[u8]) -> SecretBox {
        SecretBox {
            encrypt: mac(signing_secret, &[b"tenet/sealed-secrets/encrypt/v1"]),
            authenticate: mac(signing_secret, &[b"tenet/sealed-secrets/authenticate/v1"]),
        }
    }

    fn keystream(&self, nonce: &[u8], data: &mut [u8]) {
        for (counter, chunk) in data.chunks_mut(BLOCK).enumerate() {
            let block = mac(&self.encrypt, &[nonce, &(counter as u64).to_be_bytes()]);
            for (byte, key) in chunk.iter_mut().zip(block) {
                *byte ^= key;
            }
        }
    }

    pub fn seal(&self, secret: &str) -> String {
        let nonce: [u8; NONCE] = rand::random();
        let mut sealed = Vec::with_capacity(NONCE + secret.len() + TAG);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(secret.as_bytes());
        self.keystream(&nonce, &mut sealed[NONCE..]);
        let tag = mac(&self.authenticate, &[&sealed]);
        sealed.extend_from_slice(&tag);
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
            .filter(|bytes| bytes.len() >= NONCE + TAG)
            .ok_or(SealError::Malformed)?;
        let (body, tag) = bytes.split_at(bytes.len() - TAG);
        let mut check = HmacSha256::new_from_slice(&self.authenticate).expect("any key length");
        check.update(body);
        // Constant-time comparison.
        check.verify_slice(tag).map_err(|_| SealError::Forged)?;
        let (nonce, ciphertext) = body.split_at(NONCE);
        let mut plain = ciphertext.to_vec();
        self.keystream(nonce, &mut plain);
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
