//! The pure parts of a delivery: the Standard Webhooks signature and the
//! retry schedule.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HMAC key of a `whsec_` secret: the bytes its base64 stands for.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_")?).ok()
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, as Standard
/// Webhooks defines it.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The wait before attempt `attempts + 1`, after `attempts` failed ones:
/// `base` doubled per failure, capped at [`MAX_DELAY`], then scaled by
/// `jitter` (0 to 1) into its upper half, so retries of many deliveries
/// spread out instead of arriving together.
pub fn backoff(base: Duration, attempts: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = doubled.min(MAX_DELAY);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let signature = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
    }

    #[test]
    fn retries_back_off_exponentially_within_their_jitter_and_a_cap() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(base, 5, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(base, 5, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(base, 40, 1.0), MAX_DELAY);
        // A day of retries is some thirty attempts, the last hourly.
        let total: Duration = (1..=30).map(|n| backoff(base, n, 1.0)).sum();
        assert!(total > Duration::from_secs(18 * 3600), "{total:?}");
        assert!(total < Duration::from_secs(24 * 3600), "{total:?}");
    }
}
