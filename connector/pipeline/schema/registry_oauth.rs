//! OAuth 2.0 client credentials for the registry (RFC 6749 §4.4; Confluent Cloud's OAuth for
//! Schema Registry): `POST token_endpoint_url` with `grant_type=client_credentials` (and
//! `scope`), the client authenticated with HTTP Basic `client_id:client_secret`; the answer's
//! `access_token` becomes the registry calls' bearer token.
//!
//! The token is cached and fetched again once [`REFRESH_FRACTION`] of its `expires_in` has
//! passed, one fetch at a time. A refresh that fails while the old token is still valid keeps
//! using it (logged), so a provider's blip between refresh and expiry costs nothing. The
//! endpoint gets no redirect followed (the client secret would go where the operator never
//! said) and at most [`MAX_TOKEN_RESPONSE_BYTES`] are read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::time::Instant;

use super::error_chain::{describe, tls_refused};
use crate::common::secret::Secret;

/// Part of a token's lifetime after which it is fetched again: early enough that a call made
/// just before the refresh point still reaches the registry before the token expires.
pub(crate) const REFRESH_FRACTION: f64 = 0.8;

/// The lifetime assumed when the endpoint gives no `expires_in` (it is only RECOMMENDED):
/// short, so a token that expires sooner than expected is replaced soon.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The largest token response read; tokens are a few KiB at most.
pub(crate) const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Why no token could be had. Messages name the endpoint, never the client secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No answer: connection, TLS or timeout failure.
    #[error("OAuth token endpoint {url}: request failed: {reason}")]
    Request {
        url: String,
        reason: String,
        /// True for a connection failure or timeout (not for a TLS refusal).
        unreachable: bool,
    },
    /// An error status; `error` is the OAuth error code of the body (`invalid_client`).
    #[error("OAuth token endpoint {url} answered {status}{}", error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        error: Option<String>,
    },
    /// A success status whose body is not a usable token.
    #[error("OAuth token endpoint {url}: the answer is not a usable token: {reason}")]
    Malformed { url: String, reason: String },
}

impl TokenError {
    /// True when the endpoint did not answer or was briefly unavailable (502/503/504): worth
    /// another try, as for the registry itself.
    pub fn is_unreachable(&self) -> bool {
        match self {
            TokenError::Request { unreachable, .. } => *unreachable,
            TokenError::Status { status, .. } => matches!(status, 502..=504),
            TokenError::Malformed { .. } => false,
        }
    }
}

/// A fetched token. `generation` tells one fetch's token from the next one's.
pub(crate) struct AccessToken {
    /// The token.
    pub value: Secret,
    /// 1 for the first fetch, then one more per fetch.
    pub generation: u64,
}

struct Cached {
    token: Arc<AccessToken>,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The client-credentials client of one token endpoint, with its cached token. No `Debug`: it
/// holds the client secret.
pub(crate) struct OAuthTokens {
    url: String,
    client: reqwest::Client,
    client_id: String,
    client_secret: Secret,
    /// `grant_type=client_credentials[&scope=…]`, encoded once.
    form: String,
    cache: tokio::sync::Mutex<Option<Cached>>,
    fetches: AtomicU64,
}

impl OAuthTokens {
    /// A client for `url`; `client` carries the timeout and trusted roots (no redirect is
    /// followed whatever it says).
    pub(crate) fn new(
        url: &str,
        client: reqwest::ClientBuilder,
        client_id: &str,
        client_secret: Secret,
        scope: Option<&str>,
    ) -> Result<Self, reqwest::Error> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope.filter(|s| !s.trim().is_empty()) {
            form.push(("scope", scope));
        }
        Ok(Self {
            url: url.trim().to_string(),
            client: client.redirect(reqwest::redirect::Policy::none()).build()?,
            client_id: client_id.trim().to_string(),
            client_secret,
            form: serde_urlencoded::to_string(form).unwrap_or_default(),
            cache: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        })
    }

    /// The token endpoint's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The cached token, or a new one when it is due for refresh. Callers wait for one fetch
    /// rather than each making their own.
    pub(crate) async fn token(&self) -> Result<Arc<AccessToken>, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(cached.token.clone());
        }
        // The lifetime counts from before the request, so the token never outlives the
        // provider's idea of it.
        let asked_at = Instant::now();
        match self.fetch().await {
            Ok((value, lifetime)) => {
                let generation = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
                let token = Arc::new(AccessToken { value, generation });
                let (refresh_at, expires_at) = schedule(asked_at, lifetime);
                *cache = Some(Cached {
                    token: token.clone(),
                    refresh_at,
                    expires_at,
                });
                tracing::debug!(url = %self.url, generation, "schema registry OAuth token fetched");
                Ok(token)
            }
            Err(error) => match cache.as_ref().filter(|c| Instant::now() < c.expires_at) {
                Some(cached) => {
                    tracing::warn!(%error, "schema registry OAuth token refresh failed; using the current token until it expires");
                    Ok(cached.token.clone())
                }
                None => Err(error),
            },
        }
    }

    /// Drops the cached token if it is still `generation` (the registry refused it), so the
    /// next call fetches a new one instead of waiting for the refresh point.
    pub(crate) async fn forget(&self, generation: u64) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.generation == generation)
        {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<(Secret, Duration), TokenError> {
        let mut response = self
            .client
            .post(&self.url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(self.form.clone())
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(&e))? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE_BYTES {
                return Err(self.malformed(format!("larger than {MAX_TOKEN_RESPONSE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            return Err(TokenError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                error: json.as_ref().and_then(oauth_error_code),
            });
        }
        let json = json.ok_or_else(|| self.malformed("not JSON".into()))?;
        parse_token(&json).map_err(|reason| self.malformed(reason.into()))
    }

    fn request_error(&self, error: &reqwest::Error) -> TokenError {
        TokenError::Request {
            url: self.url.clone(),
            reason: describe(error),
            unreachable: (error.is_connect() || error.is_timeout()) && !tls_refused(error),
        }
    }

    fn malformed(&self, reason: String) -> TokenError {
        TokenError::Malformed {
            url: self.url.clone(),
            reason,
        }
    }
}

/// When a token fetched at `asked_at` and valid for `lifetime` is refreshed, and when it
/// expires.
fn schedule(asked_at: Instant, lifetime: Duration) -> (Instant, Instant) {
    (
        asked_at + lifetime.mul_f64(REFRESH_FRACTION),
        asked_at + lifetime,
    )
}

/// The token and its lifetime from a success body (RFC 6749 §5.1).
fn parse_token(json: &serde_json::Value) -> Result<(Secret, Duration), &'static str> {
    let token = json
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("no access_token")?;
    // Sent in a header: a value a header cannot carry would fail every registry call.
    if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err("the access_token cannot be sent in a header");
    }
    if let Some(kind) = json.get("token_type").and_then(serde_json::Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err("token_type is not Bearer");
        }
    }
    // Some providers write the number as a string.
    let expires_in = match json.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(
            n.as_u64()
                .ok_or("expires_in is not a whole number of seconds")?,
        ),
        Some(serde_json::Value::String(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| "expires_in is not a whole number of seconds")?,
        ),
        Some(_) => return Err("expires_in is not a whole number of seconds"),
    };
    let lifetime = expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok((Secret::new(token), lifetime))
}

/// The `error` code of an error body (`invalid_client`), when it is a short plain code: it is
/// logged, so nothing longer or odder is repeated.
fn oauth_error_code(json: &serde_json::Value) -> Option<String> {
    let code = json.get("error")?.as_str()?;
    let plain = code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    plain.then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_token_is_refreshed_at_four_fifths_of_its_lifetime() {
        let now = Instant::now();
        let (refresh, expiry) = schedule(now, Duration::from_secs(3600));
        assert_eq!(refresh - now, Duration::from_secs(2880));
        assert_eq!(expiry - now, Duration::from_secs(3600));
        let (refresh, _) = schedule(now, Duration::ZERO);
        assert_eq!(
            refresh, now,
            "a token without lifetime is fetched for each call"
        );
    }

    #[test]
    fn token_answers_are_read_as_rfc_6749_writes_them() {
        let (token, lifetime) =
            parse_token(&json!({"access_token": "t1", "token_type": "bearer", "expires_in": 300}))
                .unwrap();
        assert_eq!((token.expose(), lifetime), ("t1", Duration::from_secs(300)));
        let (_, lifetime) =
            parse_token(&json!({"access_token": "t1", "expires_in": "120"})).unwrap();
        assert_eq!(lifetime, Duration::from_secs(120));
        let (_, lifetime) = parse_token(&json!({"access_token": "t1"})).unwrap();
        assert_eq!(lifetime, DEFAULT_LIFETIME);
        for bad in [
            json!({"token_type": "Bearer"}),
            json!({"access_token": ""}),
            json!({"access_token": "a\nb"}),
            json!({"access_token": "t", "token_type": "mac"}),
            json!({"access_token": "t", "expires_in": -5}),
            json!({"access_token": "t", "expires_in": "soon"}),
        ] {
            assert!(parse_token(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_plain_error_codes_are_repeated() {
        assert_eq!(
            oauth_error_code(&json!({"error": "invalid_client"})).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(oauth_error_code(&json!({"error": "bad <b>html</b>"})), None);
        assert_eq!(oauth_error_code(&json!({"message": "x"})), None);
    }

    #[test]
    fn status_errors_name_the_endpoint_and_code() {
        let error = TokenError::Status {
            url: "https://idp/token".into(),
            status: 401,
            error: Some("invalid_client".into()),
        };
        assert_eq!(
            error.to_string(),
            "OAuth token endpoint https://idp/token answered 401 (invalid_client)"
        );
        assert!(!error.is_unreachable());
        let busy = TokenError::Status {
            url: "u".into(),
            status: 503,
            error: None,
        };
        assert!(busy.is_unreachable());
    }
}
