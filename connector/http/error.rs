//! The one place errors become HTTP statuses.
//!
//! The vendor retries only 408/409/423/429/502/503/504, so anything that may succeed on a
//! retry (Kafka slow or down, overload, shutting down) must be a 503, and only what the sender
//! got wrong is a 4xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::kafka::ProduceError;
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
    /// The body could not be prepared and the quarantine write failed too.
    #[error("could not store the body in quarantine: {0}")]
    QuarantineFailed(ProduceError),
    /// The server is draining before exit.
    #[error("server is shutting down")]
    ShuttingDown,
}

impl ApiError {
    /// The status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::Prepare(_) => StatusCode::BAD_REQUEST,
            ApiError::Produce(ProduceError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Produce(_) | ApiError::QuarantineFailed(_) | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Seconds the sender should wait before retrying, for 503s.
    fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Produce(ProduceError::QueueFull) => Some(1),
            ApiError::Produce(_) | ApiError::QuarantineFailed(_) | ApiError::ShuttingDown => {
                Some(5)
            }
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
            ApiError::Produce(ProduceError::QueueFull) => "queue_full",
            ApiError::Produce(ProduceError::Timeout(_)) => "ack_timeout",
            ApiError::Produce(ProduceError::TooLarge(_)) => "record_too_large",
            ApiError::Produce(ProduceError::Kafka(_)) => "kafka_error",
            ApiError::ShuttingDown => "shutting_down",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, kind = self.kind(), status = status.as_u16(), "webhook not accepted");
        } else {
            tracing::info!(error = %self, kind = self.kind(), status = status.as_u16(), "webhook rejected");
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
        response
    }
}
