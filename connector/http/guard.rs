//! The ingress guard: what runs before a webhook or token request is read, cheapest first:
//!
//! 1. header size (431);
//! 2. source address against the allow-list (403);
//! 3. per-client rate (429 + `Retry-After`);
//! 4. a slot under the in-flight cap (503 + `Retry-After`);
//! 5. for webhooks, the credentials in the headers (401 + `WWW-Authenticate`);
//! 6. the handler, under the request timeout (408).
//!
//! What needs the body (the HMAC, the JSON depth) is [`Ingress::check_body`], called by the
//! handler once the body is read.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::error::ApiError;
use super::limits::{self, InFlight, RateLimit};
use super::tls::PeerAddr;
use crate::auth::source_ip::SourcePolicy;
use crate::auth::{AuthSetupError, Authenticator};
use crate::config::Config;

/// Everything the guard and the handlers check, built once at start-up.
pub struct Ingress {
    sources: SourcePolicy,
    rate: RateLimit,
    in_flight: InFlight,
    auth: Authenticator,
    max_header_bytes: usize,
    max_json_depth: usize,
    request_timeout: Duration,
}

impl Ingress {
    /// Reads the auth secrets (and fetches a JWKS) for `config.auth` and sets up the limits of
    /// `config.http`.
    pub async fn from_config(config: &Config) -> Result<Self, AuthSetupError> {
        let http = &config.http;
        Ok(Self {
            sources: SourcePolicy::new(
                &http.allow_cidrs,
                &http.trusted_proxies,
                http.forwarded_header,
            ),
            rate: RateLimit::per_second(http.rate_limit_per_ip),
            in_flight: InFlight::new(http.max_in_flight),
            auth: Authenticator::from_config(&config.auth).await?,
            max_header_bytes: http.max_header_bytes,
            max_json_depth: http.max_json_depth,
            request_timeout: Duration::from_millis(http.request_timeout_ms),
        })
    }

    /// The authenticator.
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// Checks that need the body, before it is parsed: the HMAC signature (401), then the
    /// nesting depth (400).
    pub fn check_body(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        self.auth.check_body(headers, body)?;
        if limits::json_too_deep(body, self.max_json_depth) {
            return Err(ApiError::TooDeep(self.max_json_depth));
        }
        Ok(())
    }

    async fn admit(
        &self,
        client: Option<IpAddr>,
        peer: IpAddr,
        request: Request,
        next: Next,
        authenticate: bool,
    ) -> Result<Response, ApiError> {
        let size = limits::header_bytes(request.headers());
        if size > self.max_header_bytes {
            return Err(ApiError::HeadersTooLarge(self.max_header_bytes));
        }
        if !self.sources.is_allowed(client) {
            return Err(ApiError::Forbidden);
        }
        self.rate
            .check(client.unwrap_or(peer))
            .map_err(ApiError::RateLimited)?;
        let _slot = self.in_flight.try_enter().ok_or(ApiError::Overloaded)?;
        let run = async {
            if authenticate {
                self.auth.check_headers(request.headers()).await?;
            }
            Ok::<_, ApiError>(next.run(request).await)
        };
        tokio::time::timeout(self.request_timeout, run)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
    }
}

/// Middleware of the webhook route: every check, authentication included.
pub async fn webhook(
    State(ingress): State<Arc<Ingress>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    request: Request,
    next: Next,
) -> Response {
    guard(&ingress, peer, request, next, true).await
}

/// Middleware of the token endpoint: every check but authentication (the endpoint
/// authenticates the client itself).
pub async fn token_endpoint(
    State(ingress): State<Arc<Ingress>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    request: Request,
    next: Next,
) -> Response {
    guard(&ingress, peer, request, next, false).await
}

/// Runs the request inside a span naming the client, so every log line of it (rejections
/// included) says who called.
async fn guard(
    ingress: &Ingress,
    peer: PeerAddr,
    request: Request,
    next: Next,
    authenticate: bool,
) -> Response {
    let peer_ip = peer.0.ip().to_canonical();
    let client = ingress.sources.client_ip(peer_ip, request.headers());
    let span = tracing::info_span!(
        "ingress",
        client_ip = %client.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into()),
        peer = %peer_ip,
    );
    async move {
        ingress
            .admit(client, peer_ip, request, next, authenticate)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    }
    .instrument(span)
    .await
}
