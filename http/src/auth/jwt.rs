//! Access tokens: short-lived JWTs (HS256 by default) naming the user.
//!
//! Validation accepts only the configured algorithm (so `alg: none` and
//! algorithm-confusion tokens fail), checks signature, `exp` and `nbf`, and
//! `iss`/`aud` when configured.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use tenet_events::ids::{ImpersonationId, SessionId, UserId};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The refresh-token family this token was issued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    /// The impersonation this token was issued for (a platform admin
    /// acting as `sub`); such a token has no session and is never
    /// refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imp: Option<ImpersonationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid access token: {0}")]
pub struct InvalidToken(String);

impl Jwt {
    /// HS256 with a shared secret (at least 32 bytes).
    pub fn hs256(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
        ttl: Duration,
    ) -> Jwt {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        // jsonwebtoken checks iss/aud only when present in the token unless
        // they are also required: a token without them must fail.
        let mut required = vec!["exp", "iat", "sub"];
        required.extend(issuer.as_ref().map(|_| "iss"));
        required.extend(audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Jwt {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer,
            audience,
            ttl,
        }
    }

    /// Issues an access token; answers it with its expiry.
    pub fn issue(
        &self,
        user: UserId,
        session: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let expires =
            now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::minutes(15));
        self.sign(user, session, None, now, expires)
    }

    /// Issues the access token of an impersonation, valid until
    /// `expires`.
    pub fn issue_impersonation(
        &self,
        user: UserId,
        impersonation: ImpersonationId,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> String {
        self.sign(user, None, Some(impersonation), now, expires).0
    }

    fn sign(
        &self,
        user: UserId,
        session: Option<SessionId>,
        impersonation: Option<ImpersonationId>,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let claims = Claims {
            sub: user,
            iat: now.timestamp(),
            exp: expires.timestamp(),
            nbf: None,
            sid: session,
            imp: impersonation,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        // Encoding HS256 with a valid key cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default();
        (token, expires)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| InvalidToken(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> Jwt {
        Jwt::hs256(&[7; 32], None, None, Duration::from_secs(900))
    }

    #[test]
    fn issued_tokens_verify() {
        let user = UserId::generate();
        let (token, _) = jwt().issue(user, None, Utc::now());
        assert_eq!(jwt().verify(&token).unwrap().sub, user);
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_fail() {
        let user = UserId::generate();
        let (expired, _) = jwt().issue(user, None, Utc::now() - chrono::Duration::hours(1));
        assert!(jwt().verify(&expired).is_err());

        let (token, _) = jwt().issue(user, None, Utc::now());
        let other = Jwt::hs256(&[8; 32], None, None, Duration::from_secs(900));
        assert!(other.verify(&token).is_err());

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(jwt().verify(&parts.join(".")).is_err());
    }

    #[test]
    fn unsigned_tokens_fail() {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let now = Utc::now().timestamp();
        let claims = engine.encode(format!(
            r#"{{"sub":"{}","iat":{now},"exp":{}}}"#,
            UserId::generate(),
            now + 600
        ));
        assert!(jwt().verify(&format!("{header}.{claims}.")).is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let strict = Jwt::hs256(
            &[7; 32],
            Some("tenet".into()),
            Some("api".into()),
            Duration::from_secs(900),
        );
        let (plain, _) = jwt().issue(UserId::generate(), None, Utc::now());
        assert!(strict.verify(&plain).is_err());
        let (own, _) = strict.issue(UserId::generate(), None, Utc::now());
        assert!(strict.verify(&own).is_ok());
    }
}
