//! Request observability, outermost on an endpoint's routes: a request id (taken from
//! `X-Request-Id` or generated, echoed in the response; the guard puts it on the request's
//! span with the endpoint and the client, so every log line of the request carries them),
//! the in-flight gauge,
//! `riskos_requests_total{endpoint, status, event_type}` (webhooks), and every rejection
//! counted with the endpoint's name (`riskos_rejections_total{endpoint, kind}`,
//! `riskos_auth_failures_total{endpoint, reason}`). Also `GET /metrics`, and what a webhook
//! logs: its [`request_span`] and its [`AcceptedLine`] (`riskos-bench logging` times both).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::error::Rejection;
use super::AppState;
use crate::common::metrics::{InFlightGuard, AUTH_FAILURES, REJECTIONS, REQUESTS};

/// The request id header, read and echoed.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The event-type label a handler leaves on its response for the request counter: a type the
/// catalog knows, or `unrecognized`. Payload text never becomes a label value.
#[derive(Debug, Clone)]
pub struct EventTypeLabel(pub String);

/// What the observer of one route knows: the endpoint, and whether the route takes webhooks
/// (the request counter counts webhooks only, not token requests).
#[derive(Debug, Clone)]
pub struct Observed {
    endpoint: Arc<str>,
    webhook: bool,
}

impl Observed {
    /// The webhook route of `endpoint`.
    pub fn webhook(endpoint: &str) -> Self {
        Self::new(endpoint, true)
    }

    /// The token endpoint of `endpoint`.
    pub fn token_endpoint(endpoint: &str) -> Self {
        Self::new(endpoint, false)
    }

    fn new(endpoint: &str, webhook: bool) -> Self {
        Self {
            endpoint: endpoint.into(),
            webhook,
        }
    }
}

/// The request's id, for the guard's span (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: request id, in-flight gauge, request and rejection counters.
pub async fn observe(
    State(observed): State<Observed>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let echoed = HeaderValue::from_str(&request_id).ok();
    request.extensions_mut().insert(RequestId(request_id));
    let _in_flight = InFlightGuard::enter();
    let mut response = next.run(request).await;
    let endpoint = &observed.endpoint;
    if let Some(rejection) = response.extensions().get::<Rejection>() {
        metrics::counter!(REJECTIONS, "endpoint" => endpoint.to_string(), "kind" => rejection.kind)
            .increment(1);
        if rejection.auth {
            metrics::counter!(AUTH_FAILURES, "endpoint" => endpoint.to_string(), "reason" => rejection.kind)
                .increment(1);
        }
    }
    if observed.webhook {
        let event_type = response
            .extensions()
            .get::<EventTypeLabel>()
            .map_or("none", |label| label.0.as_str());
        metrics::counter!(
            REQUESTS,
            "endpoint" => endpoint.to_string(),
            "status" => response.status().as_u16().to_string(),
            "event_type" => event_type.to_string()
        )
        .increment(1);
    }
    crate::common::metrics::request_finished();
    if let Some(value) = echoed {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// The request's span: the request id (from `observe`), the endpoint and the client, so every
/// log line of the request (rejections included) says which request, where, and who called.
/// One span for all four: with the JSON log format every span costs a formatting at creation
/// and bookkeeping at each poll.
pub fn request_span(
    request_id: &str,
    endpoint: &str,
    client: Option<std::net::IpAddr>,
    peer: std::net::IpAddr,
) -> tracing::Span {
    /// The client's address, or `unknown`, written into the span without a `String`.
    struct Client(Option<std::net::IpAddr>);
    impl std::fmt::Display for Client {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.0 {
                Some(ip) => ip.fmt(f),
                None => f.write_str("unknown"),
            }
        }
    }
    tracing::info_span!(
        "request",
        request_id = %request_id,
        endpoint = %endpoint,
        client_ip = %Client(client),
        peer = %peer,
    )
}

/// The one line an accepted webhook logs (in its request span).
#[derive(Debug)]
pub struct AcceptedLine<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub event_at: i64,
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub spooled: bool,
    pub duplicate: bool,
    pub latency: std::time::Duration,
}

impl AcceptedLine<'_> {
    /// Logs it at `info`.
    pub fn log(&self) {
        tracing::info!(
            event_id = %self.event_id,
            event_type = %self.event_type,
            event_at = self.event_at,
            topic = %self.topic,
            partition = self.partition,
            offset = self.offset,
            spooled = self.spooled,
            duplicate = self.duplicate,
            latency_ms = self.latency.as_secs_f64() * 1000.0,
            "accepted"
        );
    }
}

/// 128 random bits as 32 hex characters.
fn new_request_id() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per process from the OS; two hashes of a counter give 128 bits.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_u64(n);
    let mut b = state.build_hasher();
    b.write_u64(!n);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> String {
    state.store.set_gauges();
    // Read at the scrape rather than at every chunk: the budget already counts them.
    for endpoint in &state.endpoints {
        metrics::gauge!(crate::common::metrics::BODY_BYTES_IN_FLIGHT, "endpoint" => endpoint.name().to_owned())
            .set(endpoint.ingress.body_budget().held() as f64);
    }
    let handle = crate::common::metrics::install();
    crate::common::metrics::collect_process();
    handle.run_upkeep();
    handle.render()
}

/// The `traceparent` header when it is a well-formed W3C trace context (version 00).
pub fn traceparent(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2);
    valid.then(|| value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_validated() {
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("traceparent", HeaderValue::from_str(v).unwrap());
            traceparent(&h)
        };
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(with(good).as_deref(), Some(good));
        assert_eq!(
            with("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            None
        );
        assert_eq!(
            with("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            with("zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn request_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
        assert_eq!(new_request_id().len(), 32);
    }
}
