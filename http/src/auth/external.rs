//! Access tokens from an external identity provider (OpenID Connect):
//! RS256 or ES256 JWTs signed by keys the deployment configures (a JWKS
//! file or one PEM public key), for one issuer and one audience. A token's
//! `email` names the Tenet user it acts as; an unknown email is either a
//! new account ([`ExternalAccounts`] creates it) or refused, by setting.
//!
//! Only RS256 and ES256 are accepted, and only with a configured key of
//! the same family, so an attacker cannot pick the algorithm (`none`, or
//! HS256 keyed with a public key).

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use tenet_events::ids::UserId;

use crate::problem::ApiError;

/// A token the provider signed, but whose `exp` has passed.
pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
/// Signed for another issuer than the configured one.
pub const TOKEN_ISSUER_INVALID: &str = "TOKEN_ISSUER_INVALID";
/// Signed for another audience than the configured one.
pub const TOKEN_AUDIENCE_INVALID: &str = "TOKEN_AUDIENCE_INVALID";
/// Its `kid` (or algorithm) names no configured key.
pub const TOKEN_KEY_UNKNOWN: &str = "TOKEN_KEY_UNKNOWN";
/// A valid token for an email no account has, with automatic creation
/// off.
pub const ACCOUNT_UNKNOWN: &str = "ACCOUNT_UNKNOWN";

/// Who a verified external token says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    /// Lower-cased.
    pub email: String,
    /// The `name` claim, or the email when the token has none.
    pub name: String,
}

/// Maps a verified external identity to a Tenet user (creating it, if the
/// deployment says so).
#[async_trait]
pub trait ExternalAccounts: Send + Sync + 'static {
    /// The user `identity` acts as; `None` when there is none and none may
    /// be created.
    async fn user_for(&self, identity: &ExternalIdentity) -> Result<Option<UserId>, ApiError>;
}

struct Key {
    /// `None` for a PEM key: it matches tokens of its algorithm.
    kid: Option<String>,
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// The configured provider: its keys, issuer and audience.
pub struct ExternalProvider {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(String);

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

impl ExternalProvider {
    /// The provider whose keys are the JWKS document `jwks` (RSA keys for
    /// RS256, P-256 keys for ES256; others are skipped).
    pub fn from_jwks(jwks: &str, issuer: String, audience: String) -> Result<Self, ProviderError> {
        let set: JwkSet = serde_json::from_str(jwks)
            .map_err(|e| ProviderError(format!("not a JWKS document: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let decoding = DecodingKey::from_jwk(jwk)
                .map_err(|e| ProviderError(format!("unusable key in the JWKS: {e}")))?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                decoding,
            });
        }
        if keys.is_empty() {
            return Err(ProviderError(
                "the JWKS holds no RS256 (RSA) or ES256 (P-256) key".to_owned(),
            ));
        }
        Ok(ExternalProvider {
            keys,
            issuer,
            audience,
        })
    }

    /// The provider whose one key is the PEM public key `pem` (RSA for
    /// RS256, P-256 for ES256).
    pub fn from_pem(pem: &[u8], issuer: String, audience: String) -> Result<Self, ProviderError> {
        let (algorithm, decoding) = match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => (Algorithm::RS256, key),
            Err(_) => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(pem).map_err(|e| {
                    ProviderError(format!("not an RSA or EC public key in PEM: {e}"))
                })?,
            ),
        };
        Ok(ExternalProvider {
            keys: vec![Key {
                kid: None,
                algorithm,
                decoding,
            }],
            issuer,
            audience,
        })
    }

    /// Whether a token with this header algorithm is the provider's to
    /// check (rather than one Tenet issued).
    pub fn handles(algorithm: Algorithm) -> bool {
        matches!(algorithm, Algorithm::RS256 | Algorithm::ES256)
    }

    /// Verifies a token: signature, `exp`/`nbf`, `iss`, `aud`, and an
    /// `email` that is not marked unverified.
    pub fn verify(&self, token: &str) -> Result<ExternalIdentity, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let key = self
            .keys
            .iter()
            .find(|key| {
                key.algorithm == header.alg
                    && match (&header.kid, &key.kid) {
                        (Some(wanted), Some(kid)) => wanted == kid,
                        (_, None) => true,
                        (None, Some(_)) => self.keys.len() == 1,
                    }
            })
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "The token is signed with a key the identity provider's configuration does not hold",
                )
                .with_code(TOKEN_KEY_UNKNOWN)
            })?;
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthenticated("The access token has expired")
                        .with_code(TOKEN_EXPIRED)
                }
                ErrorKind::InvalidIssuer => ApiError::unauthenticated(
                    "The access token was issued by another issuer than the configured one",
                )
                .with_code(TOKEN_ISSUER_INVALID),
                ErrorKind::InvalidAudience => ApiError::unauthenticated(
                    "The access token is meant for another audience than this API",
                )
                .with_code(TOKEN_AUDIENCE_INVALID),
                _ => invalid(),
            })?
            .claims;
        let email = claims
            .email
            .filter(|_| claims.email_verified != Some(false))
            .map(|email| email.trim().to_lowercase())
            .filter(|email| email.contains('@') && email.len() <= 254)
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "The access token carries no verified email to name a Tenet account",
                )
            })?;
        let name = claims
            .name
            .map(|name| name.trim().chars().take(100).collect::<String>())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| email.clone());
        Ok(ExternalIdentity {
            issuer: self.issuer.clone(),
            subject: claims.sub,
            email,
            name,
        })
    }
}

fn invalid() -> ApiError {
    ApiError::unauthenticated("Invalid or expired access token")
}

/// The refusal of a valid external token whose email no account has.
pub fn unknown_account() -> ApiError {
    ApiError::unauthenticated(
        "No Tenet account has this identity's email, and accounts are not created automatically",
    )
    .with_code(ACCOUNT_UNKNOWN)
}
