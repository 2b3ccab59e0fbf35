//! Rate limits: per principal (user or API key) on the API, per client IP
//! on login and registration (which have no principal yet, and are what
//! password guessing aims at), per IP for anonymous calls.
//!
//! Every response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds until the bucket is full again); over the
//! limit is a 429 problem with `Retry-After`.
//!
//! The buckets live in each process's memory: behind a load balancer that
//! spreads one client over N instances, the effective limit is up to N
//! times the configured one. That is the trade for zero coordination on
//! every request; a shared limiter would need a shared store (Redis),
//! which Tenet does not run.
//!
//! An API key gets its own bucket only once this process has seen it
//! accepted: until then (and for keys that are refused) requests count
//! against the client address, so inventing keys buys no fresh buckets.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::auth::bearer_of;
use crate::auth::jwt::Jwt;
use crate::problem::ApiError;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

pub struct RateLimits {
    api: Keyed<String>,
    auth: Keyed<IpAddr>,
    api_quota: u32,
    auth_quota: u32,
    jwt: Arc<Jwt>,
    /// Whether to take the client address from `X-Forwarded-For` (only
    /// behind a proxy that sets it; otherwise clients could pick their own).
    trust_forwarded_for: bool,
    clock: DefaultClock,
    /// Digests of API keys this process saw accepted. Held only to look up
    /// or change, never across an await; cleared when it grows past
    /// [`KNOWN_KEYS_MAX`] (keys then count against their address once).
    known_keys: std::sync::Mutex<std::collections::HashSet<String>>,
}

const KNOWN_KEYS_MAX: usize = 100_000;

/// Paths limited per IP with the (stricter) authentication quota.
const AUTH_PATHS: [&str; 3] = [
    "/api/v1/auth/login",
    "/api/v1/auth/password",
    "/api/v1/auth/register",
];

impl RateLimits {
    /// `api_per_minute` per principal, `auth_per_minute` per IP on login and
    /// registration.
    pub fn new(
        api_per_minute: u32,
        auth_per_minute: u32,
        jwt: Arc<Jwt>,
        trust_forwarded_for: bool,
    ) -> Self {
        let quota = |per_minute: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
        };
        RateLimits {
            api: RateLimiter::keyed(quota(api_per_minute))
                .with_middleware::<StateInformationMiddleware>(),
            auth: RateLimiter::keyed(quota(auth_per_minute))
                .with_middleware::<StateInformationMiddleware>(),
            api_quota: api_per_minute.max(1),
            auth_quota: auth_per_minute.max(1),
            jwt,
            trust_forwarded_for,
            clock: DefaultClock::default(),
            known_keys: std::sync::Mutex::default(),
        }
    }

    fn known_keys(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.known_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records whether an API key was accepted (it then has a bucket of its
    /// own) or refused (it counts against its address again).
    fn learn(&self, key: &str, accepted: bool) {
        let mut known = self.known_keys();
        if accepted {
            if known.len() >= KNOWN_KEYS_MAX {
                known.clear();
            }
            known.insert(key.to_owned());
        } else {
            known.remove(key);
        }
    }

    /// Drops idle buckets, so memory follows active clients, not every
    /// client ever seen. Run now and then.
    pub fn forget_idle(&self) {
        self.api.retain_recent();
        self.api.shrink_to_fit();
        self.auth.retain_recent();
        self.auth.shrink_to_fit();
    }

    /// The client's address: the peer's, or behind a trusted proxy the
    /// last (rightmost) `X-Forwarded-For` entry, the one that proxy added
    /// (entries to its left are whatever the client sent).
    fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        let forwarded = self
            .trust_forwarded_for
            .then(|| {
                headers
                    .get("x-forwarded-for")?
                    .to_str()
                    .ok()?
                    .rsplit(',')
                    .next()?
                    .trim()
                    .parse()
                    .ok()
            })
            .flatten();
        forwarded
            .or(peer.map(|peer| peer.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// The bucket of an API request: the verified principal if any, else
    /// the client address. An unverifiable token counts against its
    /// address, so forged tokens cannot drain someone else's bucket, nor
    /// invented API keys buy fresh ones. Also answers the API key's own
    /// bucket name, to learn from the response whether it was accepted.
    fn api_key(&self, headers: &HeaderMap, ip: IpAddr) -> (String, Option<String>) {
        match bearer_of(headers) {
            Some(token) if crate::auth::api_key::is_api_key(token) => {
                let digest = Sha256::digest(token.as_bytes());
                let key = format!(
                    "key:{}",
                    digest
                        .iter()
                        .take(16)
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                let bucket = if self.known_keys().contains(&key) {
                    key.clone()
                } else {
                    format!("ip:{ip}")
                };
                (bucket, Some(key))
            }
            Some(token) => match self.jwt.verify(token) {
                Ok(claims) => (format!("user:{}", claims.sub), None),
                Err(_) => (format!("ip:{ip}"), None),
            },
            None => (format!("ip:{ip}"), None),
        }
    }
}

struct Verdict {
    limit: u32,
    remaining: u32,
    reset: Duration,
    retry_after: Option<Duration>,
}

fn verdict<K: std::hash::Hash + Eq + Clone>(
    limiter: &Keyed<K>,
    key: &K,
    limit: u32,
    clock: &DefaultClock,
) -> Verdict {
    match limiter.check_key(key) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            let per_cell = snapshot.quota().replenish_interval();
            Verdict {
                limit,
                remaining,
                reset: per_cell * (limit.saturating_sub(remaining)),
                retry_after: None,
            }
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(clock.now());
            Verdict {
                limit,
                remaining: 0,
                reset: not_until.quota().replenish_interval() * limit,
                retry_after: Some(wait),
            }
        }
    }
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Middleware: charges the request to its bucket; answers 429 when empty.
pub async fn layer(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let ip = limits.client_ip(request.headers(), peer);
    let mut api_key = None;
    let verdict = if AUTH_PATHS.contains(&path) {
        verdict(&limits.auth, &ip, limits.auth_quota, &limits.clock)
    } else {
        let (bucket, key) = limits.api_key(request.headers(), ip);
        api_key = key;
        verdict(&limits.api, &bucket, limits.api_quota, &limits.clock)
    };
    let mut response = match verdict.retry_after {
        Some(wait) => ApiError::rate_limited(seconds(wait)).into_response(),
        None => next.run(request).await,
    };
    if let Some(key) = api_key
        && verdict.retry_after.is_none()
    {
        limits.learn(
            &key,
            response.status() != axum::http::StatusCode::UNAUTHORIZED,
        );
    }
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(verdict.remaining),
    );
    headers.insert(
        "x-ratelimit-reset",
        HeaderValue::from(seconds(verdict.reset)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_call_in_a_minute_is_refused_with_a_wait() {
        let jwt = Arc::new(Jwt::hs256(&[1; 32], None, None, Duration::from_secs(60)));
        let limits = RateLimits::new(600, 10, jwt, false);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for n in 0..10 {
            let v = verdict(&limits.auth, &ip, 10, &limits.clock);
            assert!(v.retry_after.is_none(), "call {n}");
            assert_eq!(v.remaining, 9 - n);
        }
        let refused = verdict(&limits.auth, &ip, 10, &limits.clock);
        let wait = refused.retry_after.expect("refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(6));
        // Another address has its own bucket.
        assert!(
            verdict(
                &limits.auth,
                &IpAddr::from([10, 0, 0, 2]),
                10,
                &limits.clock
            )
            .retry_after
            .is_none()
        );
    }

    #[test]
    fn forwarded_for_is_trusted_only_when_configured() {
        let jwt = Arc::new(Jwt::hs256(&[1; 32], None, None, Duration::from_secs(60)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        let direct = RateLimits::new(600, 10, jwt.clone(), false);
        assert_eq!(
            direct.client_ip(&headers, peer),
            IpAddr::from([127, 0, 0, 1])
        );
        let proxied = RateLimits::new(600, 10, jwt, true);
        assert_eq!(
            proxied.client_ip(&headers, peer),
            IpAddr::from([10, 0, 0, 1]),
            "the entry the trusted proxy added, not what the client claimed"
        );
    }

    #[test]
    fn an_api_key_gets_its_own_bucket_only_once_accepted() {
        let jwt = Arc::new(Jwt::hs256(&[1; 32], None, None, Duration::from_secs(60)));
        let limits = RateLimits::new(600, 10, jwt, false);
        let ip = IpAddr::from([10, 0, 0, 7]);
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tnt_invented"),
        );
        let (bucket, key) = limits.api_key(&headers, ip);
        assert_eq!(bucket, "ip:10.0.0.7");
        let key = key.expect("an API key");
        limits.learn(&key, true);
        assert_eq!(limits.api_key(&headers, ip).0, key);
        limits.learn(&key, false);
        assert_eq!(limits.api_key(&headers, ip).0, "ip:10.0.0.7");
    }
}
