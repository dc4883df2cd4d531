//! The one place errors become HTTP statuses.
//!
//! The vendor retries only 408/409/423/429/502/503/504, so anything that may succeed on a
//! retry (Kafka slow or down, overload, shutting down) must be a 503, and only what the sender
//! got wrong is a 4xx. A record too large for Kafka is never a 4xx: the handler quarantines
//! the body raw (200); only if that fails too is it a 503.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::required_headers::RequiredHeaderError;
use crate::delivery::DeliveryError;
use crate::delivery::ProduceError;
use crate::ingress::auth::token_endpoint::TokenError;
use crate::ingress::auth::{AuthFailure, AuthMode, Reason};
use crate::pipeline::PrepareError;

/// Every way a webhook request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `Content-Type` is not JSON.
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// Body over `http.max_body_bytes`.
    #[error("body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body could not be read from the connection.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The body is not a record.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// Kafka did not take the record.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// Kafka did not ack and the spool could not take the record (full or failing disk).
    #[error("record could not be spooled: {0}")]
    SpoolUnavailable(String),
    /// The body could not be prepared and the quarantine write failed too.
    #[error("could not store the body in quarantine: {0}")]
    QuarantineFailed(std::sync::Arc<DeliveryError>),
    /// The server is draining before exit.
    #[error("server is shutting down")]
    ShuttingDown,
    /// Start-up has not finished (waiting for the schema registry, say).
    #[error("server is starting")]
    Starting,
    /// No valid credentials; the reason goes to the log only.
    #[error("authentication required")]
    Unauthorized(#[from] AuthFailure),
    /// A required header of the endpoint is missing or wrong; the detail goes to the log
    /// only. The challenge is the endpoint's auth mode's.
    #[error("authentication required")]
    RequiredHeader(AuthMode, RequiredHeaderError),
    /// The client address is not in the endpoint's `allow_cidrs`.
    #[error("source address is not allowed")]
    Forbidden,
    /// The client is over the endpoint's `rate_limit_per_ip`; retry after this many seconds.
    #[error("too many requests")]
    RateLimited(u32),
    /// The token endpoint makes this address wait after repeated failed client
    /// authentications; retry after this many seconds.
    #[error("too many failed client authentications; retry later")]
    TokenBackoff(u32),
    /// The endpoint's share of `http.max_in_flight` is taken.
    #[error("too many requests in flight")]
    Overloaded,
    /// The client address already holds its part of the endpoint's body budget (modes whose
    /// credentials are in the body: [`super::body::source_share`]).
    #[error("too many body bytes in flight from this address")]
    SourceOverloaded,
    /// Headers larger than `http.max_header_bytes`.
    #[error("request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The request took longer than `http.request_timeout_ms`.
    #[error("request timed out")]
    RequestTimeout,
    /// The token endpoint refused the request; the text is the RFC 6749 error code.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl From<std::sync::Arc<DeliveryError>> for ApiError {
    fn from(error: std::sync::Arc<DeliveryError>) -> Self {
        match &*error {
            DeliveryError::Produce(produce) => ApiError::Produce(produce.clone()),
            DeliveryError::Spool(spool) => ApiError::SpoolUnavailable(spool.to_string()),
        }
    }
}

impl ApiError {
    /// The status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::Prepare(_) => StatusCode::BAD_REQUEST,
            ApiError::Produce(_)
            | ApiError::SpoolUnavailable(_)
            | ApiError::QuarantineFailed(_)
            | ApiError::ShuttingDown
            | ApiError::Starting => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_)
            | ApiError::RequiredHeader(..)
            | ApiError::Token(TokenError::InvalidClient) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            // 429, not 503: the server has room, this address is over its own part of it (a
            // 5xx would page for one sender's excess); the vendor retries both.
            ApiError::RateLimited(_) | ApiError::TokenBackoff(_) | ApiError::SourceOverloaded => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Token(_) => StatusCode::BAD_REQUEST,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The `WWW-Authenticate` challenge, for 401s.
    fn challenge(&self) -> Option<HeaderValue> {
        match self {
            ApiError::Unauthorized(failure) => Some(failure.challenge()),
            ApiError::RequiredHeader(mode, _) => {
                Some(AuthFailure::new(*mode, Reason::Missing).challenge())
            }
            ApiError::Token(TokenError::InvalidClient) => Some(HeaderValue::from_static(
                r#"Basic realm="riskos-connector", charset="UTF-8""#,
            )),
            _ => None,
        }
    }

    /// Seconds the sender should wait before retrying, for 503s and 429s.
    fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Produce(ProduceError::QueueFull)
            | ApiError::Overloaded
            | ApiError::SourceOverloaded => Some(1),
            ApiError::RateLimited(seconds) | ApiError::TokenBackoff(seconds) => Some(*seconds),
            ApiError::Produce(_)
            | ApiError::SpoolUnavailable(_)
            | ApiError::QuarantineFailed(_)
            | ApiError::ShuttingDown
            | ApiError::Starting => Some(5),
            _ => None,
        }
    }

    /// A short machine-readable class for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::BodyRead(_) => "body_read",
            ApiError::Prepare(error) => error.reason(),
            ApiError::QuarantineFailed(_) => "quarantine_failed",
            ApiError::SpoolUnavailable(_) => "spool_unavailable",
            ApiError::Produce(ProduceError::QueueFull) => "queue_full",
            ApiError::Produce(ProduceError::Timeout(_)) => "ack_timeout",
            ApiError::Produce(ProduceError::TooLarge(_)) => "record_too_large",
            ApiError::Produce(ProduceError::Kafka(_)) => "kafka_error",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Starting => "starting",
            ApiError::Unauthorized(failure) => failure.reason.kind(),
            ApiError::RequiredHeader(..) => "required_header",
            ApiError::Forbidden => "ip_not_allowed",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::TokenBackoff(_) => "token_backoff",
            ApiError::Overloaded => "overloaded",
            ApiError::SourceOverloaded => "source_body_bytes",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Token(error) => error.kind(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The endpoint's observer counts it, with the endpoint's name.
        let rejection = Rejection {
            kind: self.kind(),
            auth: matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        };
        let detail = match &self {
            ApiError::RequiredHeader(_, detail) => Some(detail.to_string()),
            _ => None,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, kind = self.kind(), status = status.as_u16(), "webhook not accepted");
        } else {
            tracing::info!(error = %self, kind = self.kind(), detail, status = status.as_u16(), "webhook rejected");
        }
        let mut response = (
            status,
            Json(json!({"status": "rejected", "error": self.to_string()})),
        )
            .into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        // A rejected request's body may be unread, so the connection cannot carry another
        // request: say so, and the listener closes it gracefully after the answer (a client
        // reusing it would otherwise meet a broken pipe).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response.extensions_mut().insert(rejection);
        response
    }
}

/// Left on a rejection's response for the endpoint's observer, which counts it
/// (`riskos_rejections_total`, and `riskos_auth_failures_total` for 401/403) with the
/// endpoint's name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection {
    /// [`ApiError::kind`].
    pub kind: &'static str,
    /// A 401 or 403.
    pub auth: bool,
}
