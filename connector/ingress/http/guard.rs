//! The ingress guard: what runs before a webhook or token request is read, cheapest first:
//!
//! 1. header size (431);
//! 2. source address against the allow-list (403);
//! 3. per-client rate (429 + `Retry-After`);
//! 4. a slot under the in-flight cap (503 + `Retry-After`) — except in modes whose
//!    credentials are in the body (`hmac`, `standard-webhooks`), where the handler takes it
//!    once the signature is verified ([`Ingress::verified_slot`]), so unsigned uploads
//!    trickling in cannot hold the slots signed webhooks need;
//! 5. for webhooks, the credentials in the headers and the endpoint's required headers (401 +
//!    `WWW-Authenticate`);
//! 6. the handler, under the request timeout (408).
//!
//! The handler reads the body under its own bounds ([`super::body`]); what needs the body
//! (the HMAC, the JSON depth) is [`Ingress::check_body`].
//!
//! Every endpoint has its own [`Ingress`]: its allow-list, rate limiter, share of the
//! in-flight slots and body bytes, authentication and required headers. A flood on one
//! endpoint spends that endpoint's share only.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::body::BodyBudget;
use super::config::HttpConfig;
use super::error::ApiError;
use super::limits::{self, InFlight, RateLimit};
use super::required_headers::RequiredHeaders;
use super::source_ip::SourcePolicy;
use super::tls::PeerAddr;
use super::Endpoint;
use crate::common::setting::SettingError;
use crate::ingress::auth::Authenticator;
use crate::ingress::endpoint::EndpointConfig;

/// Everything the guard and the handlers check for one endpoint, built once at start-up.
pub struct Ingress {
    sources: Arc<SourcePolicy>,
    rate: RateLimit,
    in_flight: InFlight,
    auth: Authenticator,
    required_headers: RequiredHeaders,
    body_budget: BodyBudget,
    max_header_bytes: usize,
    request_timeout: Duration,
    body_read_timeout: Duration,
}

impl Ingress {
    /// One endpoint's checks: reads its auth secrets and required header values (and fetches
    /// a JWKS), and sets up its limits from its settings, its `share` of the listener's
    /// capacity and `[http]`. Errors name the endpoint's keys.
    pub async fn from_config(
        http: &HttpConfig,
        endpoint: &EndpointConfig,
        share: Share,
    ) -> Result<Self, SettingError> {
        let within = |e: SettingError| e.within(&endpoint.section());
        // In the endpoint's span, so the mode's start-up warnings (`none`) name it.
        // In the endpoint's span, so the mode's start-up warnings (`none`) name it.
        let auth = Authenticator::for_endpoint(&endpoint.auth, &endpoint.name)
            .instrument(tracing::info_span!("endpoint", endpoint = %endpoint.name))
            .await
            .map_err(within)?;
        // Where the body is read before its sender is known, one address may hold only a
        // part of the bytes, so forged uploads from one address cannot starve signed ones.
        let per_source = auth
            .needs_body()
            .then(|| super::body::source_share(share.body_bytes, http.max_body_bytes));
        Ok(Self {
            sources: Arc::new(SourcePolicy::new(
                &endpoint.allow_cidrs,
                &http.trusted_proxies,
                http.forwarded_header,
            )),
            rate: RateLimit::per_second(endpoint.rate_limit_per_ip),
            in_flight: InFlight::new(share.in_flight),
            auth,
            required_headers: RequiredHeaders::from_config(&endpoint.required_headers)
                .map_err(within)?,
            body_budget: BodyBudget::new(share.body_bytes, per_source),
            max_header_bytes: http.max_header_bytes,
            request_timeout: Duration::from_millis(http.request_timeout_ms),
            body_read_timeout: Duration::from_millis(http.body_read_timeout_ms),
        })
    }

    /// The source policy (the listener applies it at accept when the peer alone decides).
    pub fn sources(&self) -> Arc<SourcePolicy> {
        self.sources.clone()
    }

    /// Body bytes held at once, over all requests (and per client address in modes whose
    /// credentials are in the body).
    pub fn body_budget(&self) -> &BodyBudget {
        &self.body_budget
    }

    /// How long a body may take to arrive.
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// True when the in-flight slot is taken after the body's signature is verified.
    fn slot_after_body(&self) -> bool {
        self.auth.needs_body()
    }

    /// For modes whose credentials are in the body: the in-flight slot, taken once they are
    /// verified (`None` in the other modes, whose slot the guard already holds).
    pub fn verified_slot(&self) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if !self.slot_after_body() {
            return Ok(None);
        }
        self.in_flight
            .try_enter()
            .map(Some)
            .ok_or(ApiError::Overloaded)
    }

    /// The authenticator.
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// The credentials that need the body: the HMAC signature (401).
    pub fn check_body(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        Ok(self.auth.check_body(headers, body)?)
    }

    /// The credentials and required headers in the request head (401).
    async fn check_credentials(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.auth.check_headers(headers).await?;
        self.required_headers
            .check(headers)
            .map_err(|error| ApiError::RequiredHeader(self.auth.mode(), error))
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
        let _slot = if authenticate && self.slot_after_body() {
            None
        } else {
            Some(self.in_flight.try_enter().ok_or(ApiError::Overloaded)?)
        };
        let run = async {
            if authenticate {
                self.check_credentials(request.headers()).await?;
            }
            Ok::<_, ApiError>(next.run(request).await)
        };
        tokio::time::timeout(self.request_timeout, run)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
    }
}

/// An endpoint's share of the listener's capacity (see `Config::in_flight_shares`).
#[derive(Debug, Clone, Copy)]
pub struct Share {
    /// Requests at once.
    pub in_flight: usize,
    /// Body bytes at once.
    pub body_bytes: usize,
}

/// Request extension: the client address the guard admitted (the TCP peer when a trusted
/// proxy's header names none), for handlers that key something by client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub IpAddr);

/// Middleware of the webhook route: every check, authentication included.
pub(crate) async fn webhook(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    request: Request,
    next: Next,
) -> Response {
    guard(&endpoint, peer, request, next, true).await
}

/// Middleware of the token endpoint: every check but authentication (the endpoint
/// authenticates the client itself).
pub(crate) async fn token_endpoint(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    request: Request,
    next: Next,
) -> Response {
    guard(&endpoint, peer, request, next, false).await
}

/// Runs the request inside its span: the request id (from `observe`), the endpoint and the
/// client, so every log line of it (rejections included) says which request, where, and who
/// called. One span for all four: with the JSON log format every span costs a formatting at
/// creation and bookkeeping at each poll; two per request (`request` outside, `ingress`
/// inside) cost about 8 µs of CPU per webhook more than one at `info` (docs/performance.md).
async fn guard(
    endpoint: &Endpoint,
    peer: PeerAddr,
    mut request: Request,
    next: Next,
    authenticate: bool,
) -> Response {
    let ingress = &endpoint.ingress;
    let peer_ip = peer.0.ip().to_canonical();
    let client = ingress.sources.client_ip(peer_ip, request.headers());
    request
        .extensions_mut()
        .insert(ClientIp(client.unwrap_or(peer_ip)));
    let request_id = request
        .extensions()
        .get::<super::observe::RequestId>()
        .map_or("", |id| id.0.as_str());
    let span = super::observe::request_span(request_id, endpoint.name(), client, peer_ip);
    crate::common::telemetry::adopt_trace_context(&span, request.headers());
    async move {
        ingress
            .admit(client, peer_ip, request, next, authenticate)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    }
    .instrument(span)
    .await
}
