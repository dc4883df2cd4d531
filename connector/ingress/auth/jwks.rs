//! Signing keys from an identity provider's JWKS URL: fetched at start-up, refreshed in the
//! background, and refetched when a token names an unknown `kid` (at most once per
//! `jwks_min_refetch_secs`, one fetch at a time, so unknown kids cannot hammer the provider).
//!
//! Each key is bound to the algorithms its type allows (its `alg` when published), intersected
//! with the configured allow-list. Symmetric (`oct`) and encryption-only keys are never taken
//! from a JWKS, so a token cannot make an HMAC key out of a public key.
//!
//! The fetch is https only (unless `allow_insecure_jwks_url`, for tests and local development),
//! follows no redirect (a redirect could lead to a host the operator never named, or down to
//! plain http), and reads at most [`MAX_JWKS_BYTES`]. A refresh that fails — including one that
//! yields no usable key — keeps the last good set and counts in
//! `riskos_jwks_refresh_failures_total` (labels `endpoint`, `reason`).

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::common::metrics::JWKS_REFRESH_FAILURES;

/// The largest JWKS body read. Real key sets are a few KiB (a handful of keys, even with
/// certificate chains); the limit keeps a broken or hostile provider from making every refresh
/// buffer an unbounded body.
pub(crate) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A verification key with the algorithms it may be used with.
#[derive(Clone)]
pub struct KeyEntry {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// Algorithms a token signed with this key may declare.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// Why the key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    /// Connection, timeout or TLS failure.
    #[error("cannot fetch the JWKS: {0}")]
    Fetch(#[from] reqwest::Error),
    /// The provider answered with an error status.
    #[error("the JWKS URL answered {0}")]
    Status(u16),
    /// The provider answered with a redirect, which is not followed.
    #[error("the JWKS URL answered {0}, a redirect (not followed: configure the final URL)")]
    Redirect(u16),
    /// The body is larger than [`MAX_JWKS_BYTES`].
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The body is not a JWK set.
    #[error("the JWKS is not a JWK set: {0}")]
    Parse(serde_json::Error),
    /// No usable signing key in the set.
    #[error("the JWKS has no signing key for the allowed algorithms")]
    NoKeys,
}

impl JwksError {
    /// The `reason` label of `riskos_jwks_refresh_failures_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(_) => "fetch",
            Self::Status(_) => "status",
            Self::Redirect(_) => "redirect",
            Self::TooLarge => "too_large",
            Self::Parse(_) => "parse",
            Self::NoKeys => "no_keys",
        }
    }
}

/// The cached key set of one JWKS URL.
pub(crate) struct Jwks {
    url: String,
    /// The endpoint's name: the `endpoint` label of the refresh-failure counter.
    endpoint: String,
    client: reqwest::Client,
    allowed: Vec<Algorithm>,
    keys: RwLock<Arc<Vec<KeyEntry>>>,
    /// When the last fetch started; held during a fetch so fetches never overlap.
    last_fetch: tokio::sync::Mutex<Instant>,
    min_refetch: Duration,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.url).finish()
    }
}

impl Jwks {
    /// Fetches the set once; a provider that cannot be used stops start-up. `endpoint` names
    /// the endpoint in metrics; `allow_insecure` permits an `http://` URL (tests, local
    /// development).
    pub(crate) async fn load(
        url: &str,
        allowed: &[Algorithm],
        min_refetch: Duration,
        endpoint: &str,
        allow_insecure: bool,
    ) -> Result<Arc<Self>, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!allow_insecure)
            .build()?;
        let jwks = Self {
            url: url.to_string(),
            endpoint: endpoint.to_string(),
            client,
            allowed: allowed.to_vec(),
            keys: RwLock::new(Arc::new(Vec::new())),
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
            min_refetch,
        };
        let keys = jwks.fetch().await?;
        if keys.is_empty() {
            return Err(JwksError::NoKeys);
        }
        jwks.store(keys);
        Ok(Arc::new(jwks))
    }

    /// The current keys.
    pub(crate) fn keys(&self) -> Arc<Vec<KeyEntry>> {
        self.keys.read().expect("jwks lock").clone()
    }

    /// Refetches because a token named an unknown key, unless the last fetch was less than
    /// `min_refetch` ago. Returns whether the keys were replaced.
    pub(crate) async fn refetch_for_unknown_kid(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.elapsed() < self.min_refetch {
            return false;
        }
        *last = Instant::now();
        self.fetch_and_store().await
    }

    /// Refetches every `every` while the key set is alive.
    pub(crate) fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await; // the first tick is immediate; start-up just fetched
            loop {
                ticks.tick().await;
                let Some(jwks) = weak.upgrade() else { return };
                let mut last = jwks.last_fetch.lock().await;
                *last = Instant::now();
                jwks.fetch_and_store().await;
            }
        });
    }

    /// Replaces the keys with a freshly fetched set; a failure, or a set without a usable key
    /// (which would make every token fail), keeps the last good keys and is counted.
    async fn fetch_and_store(&self) -> bool {
        let fetched = self.fetch().await.and_then(|keys| {
            if keys.is_empty() {
                Err(JwksError::NoKeys)
            } else {
                Ok(keys)
            }
        });
        match fetched {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS refreshed");
                self.store(keys);
                true
            }
            Err(error) => {
                metrics::counter!(
                    JWKS_REFRESH_FAILURES,
                    "endpoint" => self.endpoint.clone(),
                    "reason" => error.reason()
                )
                .increment(1);
                tracing::warn!(url = %self.url, %error, "JWKS refresh failed; keeping the previous keys");
                false
            }
        }
    }

    fn store(&self, keys: Vec<KeyEntry>) {
        *self.keys.write().expect("jwks lock") = Arc::new(keys);
    }

    async fn fetch(&self) -> Result<Vec<KeyEntry>, JwksError> {
        let mut response = self.client.get(&self.url).send().await?;
        let status = response.status();
        if status.is_redirection() {
            return Err(JwksError::Redirect(status.as_u16()));
        }
        if !status.is_success() {
            return Err(JwksError::Status(status.as_u16()));
        }
        // Read chunk by chunk so an oversized body is refused after MAX_JWKS_BYTES, whatever
        // its Content-Length says (or whether it has one).
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(JwksError::Parse)?;
        Ok(entries(&set, &self.allowed))
    }
}

/// The usable signing keys of a set, each with its allowed algorithms.
pub(crate) fn entries(set: &JwkSet, allowed: &[Algorithm]) -> Vec<KeyEntry> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                return None;
            }
            let algorithms: Vec<Algorithm> = key_algorithms(jwk)
                .into_iter()
                .filter(|a| allowed.contains(a))
                .collect();
            if algorithms.is_empty() {
                return None;
            }
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(KeyEntry {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms,
            })
        })
        .collect()
}

/// What the key's type permits, narrowed to its published `alg`. Never an HMAC algorithm.
fn key_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
        // Symmetric keys and anything newer: never from a JWKS.
        _ => vec![],
    };
    match jwk.common.key_algorithm {
        None => by_type,
        Some(published) => by_type
            .into_iter()
            .filter(|a| same_algorithm(*a, published))
            .collect(),
    }
}

fn same_algorithm(a: Algorithm, k: KeyAlgorithm) -> bool {
    use Algorithm as A;
    use KeyAlgorithm as K;
    matches!(
        (a, k),
        (A::RS256, K::RS256)
            | (A::RS384, K::RS384)
            | (A::RS512, K::RS512)
            | (A::PS256, K::PS256)
            | (A::PS384, K::PS384)
            | (A::PS512, K::PS512)
            | (A::ES256, K::ES256)
            | (A::ES384, K::ES384)
            | (A::EdDSA, K::EdDSA)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn set(json: serde_json::Value) -> JwkSet {
        serde_json::from_value(json).unwrap()
    }

    const EC_X: &str = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
    const EC_Y: &str = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";

    #[test]
    fn keys_are_bound_to_their_type_and_the_allow_list() {
        let keys = entries(
            &set(serde_json::json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec", "x": EC_X, "y": EC_Y},
                {"kty": "oct", "kid": "hs", "k": "c2VjcmV0"},
                {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": EC_X, "y": EC_Y},
                {"kty": "EC", "crv": "P-256", "kid": "rs-only", "alg": "RS256", "x": EC_X, "y": EC_Y},
            ]})),
            &[Algorithm::ES256, Algorithm::RS256, Algorithm::HS256],
        );
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, vec!["ec"]);
        assert_eq!(keys[0].algorithms, vec![Algorithm::ES256]);
        let none = entries(
            &set(serde_json::json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec", "x": EC_X, "y": EC_Y},
            ]})),
            &[Algorithm::RS256],
        );
        assert!(none.is_empty());
    }

    /// A JWKS endpoint serving one EC key over plain http, counting its fetches.
    async fn counting_jwks_server() -> (
        String,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    axum::Json(serde_json::json!({"keys": [
                        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": EC_X, "y": EC_Y}
                    ]}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits, server)
    }

    #[tokio::test]
    async fn unknown_kid_refetches_are_rate_limited() {
        let (url, hits, server) = counting_jwks_server().await;

        let limited = Jwks::load(
            &url,
            &[Algorithm::ES256],
            Duration::from_secs(3600),
            "test",
            true,
        )
        .await
        .unwrap();
        assert!(!limited.refetch_for_unknown_kid().await);
        assert!(!limited.refetch_for_unknown_kid().await);
        assert_eq!(hits.load(Ordering::SeqCst), 1, "only the start-up fetch");

        let eager = Jwks::load(&url, &[Algorithm::ES256], Duration::ZERO, "test", true)
            .await
            .unwrap();
        assert!(eager.refetch_for_unknown_kid().await);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(eager.keys().len(), 1);
        server.abort();
    }

    #[tokio::test]
    async fn an_http_url_is_not_fetched_without_the_switch() {
        // Belt and braces behind the config check: the client itself speaks https only.
        let (url, hits, server) = counting_jwks_server().await;

        let refused = Jwks::load(&url, &[Algorithm::ES256], Duration::ZERO, "test", false).await;
        let allowed = Jwks::load(&url, &[Algorithm::ES256], Duration::ZERO, "test", true).await;

        assert!(matches!(refused, Err(JwksError::Fetch(_))), "{refused:?}");
        assert!(allowed.is_ok());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "only the allowed load fetched"
        );
        server.abort();
    }

    #[tokio::test]
    async fn an_unusable_url_fails_loading() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", closed.local_addr().unwrap());
        drop(closed);
        let error = Jwks::load(&url, &[Algorithm::ES256], Duration::ZERO, "test", true)
            .await
            .unwrap_err();
        assert!(matches!(error, JwksError::Fetch(_)), "{error}");
    }
}
