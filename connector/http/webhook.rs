//! The webhook handler: check the request, run the pipeline, answer only after Kafka's ack.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::observe::EventTypeLabel;
use super::AppState;
use crate::delivery::Stored;
use crate::pipeline::PrepareError;

/// The 200 body.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// `accepted` (on its event topic) or `quarantined` (stored raw for a schema fix + replay).
    pub status: &'static str,
    /// The event id that was stored (the Kafka key).
    pub event_id: String,
    /// Why it was quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True when an identical earlier request already stored it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// True when it is on the local spool, waiting for Kafka.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spooled: bool,
}

/// Stores a body that could not be prepared. A well-formed envelope our schema does not fit
/// is then safe (200); anything else is still the sender's error (400). If the quarantine
/// write fails, 503 so the vendor retries.
async fn quarantine(
    state: &AppState,
    body: &[u8],
    error: PrepareError,
    received_at_ms: i64,
) -> Result<Json<Accepted>, ApiError> {
    let delivered = state
        .pipeline
        .quarantine(body, &error, received_at_ms)
        .await
        .map_err(ApiError::QuarantineFailed)?;
    tracing::warn!(
        reason = error.reason(),
        error = %error,
        partition = delivered.partition,
        offset = delivered.offset,
        "quarantined"
    );
    match error.event() {
        Some((event_id, _)) if error.is_stored_by_quarantine() => Ok(Json(Accepted {
            status: "quarantined",
            event_id: event_id.to_string(),
            reason: Some(error.to_string()),
            duplicate: false,
            spooled: false,
        })),
        _ => Err(ApiError::Prepare(error)),
    }
}

/// `POST <http.path>`.
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let mut label = None;
    let mut response = handle(&state, &headers, body, &mut label)
        .await
        .into_response();
    if let Some(label) = label {
        response.extensions_mut().insert(label);
    }
    response
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    label: &mut Option<EventTypeLabel>,
) -> Result<Json<Accepted>, ApiError> {
    let started = Instant::now();
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = state.max_body_bytes;
    if content_length(headers).is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BodyRead(e.to_string())
        }
    })?;
    let received_at_ms = now_millis();
    // HMAC over the raw body, then the nesting depth: before parsing, before quarantine.
    state.ingress.check_body(headers, &body)?;

    let mut prepared = match state.pipeline.prepare(&body, received_at_ms) {
        Ok(prepared) => prepared,
        Err(error) => return quarantine(state, &body, error, received_at_ms).await,
    };
    *label = Some(EventTypeLabel(if prepared.route.schema.is_fallback() {
        "unrecognized".to_string()
    } else {
        prepared.route.schema.event_type.clone()
    }));
    prepared.traceparent = super::observe::traceparent(headers);
    let outcome = state.pipeline.deliver(&prepared, &body).await?;

    let (partition, offset) = match outcome.stored {
        Stored::Acked(d) => (Some(d.partition), Some(d.offset)),
        Stored::Spooled => (None, None),
    };
    tracing::info!(
        event_id = %prepared.key,
        event_type = %prepared.event_type,
        event_at = prepared.occurred_at_ms,
        topic = %prepared.route.topic,
        partition,
        offset,
        spooled = outcome.stored == Stored::Spooled,
        duplicate = outcome.duplicate,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "accepted"
    );
    Ok(Json(Accepted {
        status: "accepted",
        event_id: prepared.key,
        reason: None,
        duplicate: outcome.duplicate,
        spooled: outcome.stored == Stored::Spooled,
    }))
}

/// `application/json` or any `application/*+json`, parameters (charset) ignored.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Wall-clock now in epoch milliseconds.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types() {
        let check = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            is_json(&h)
        };
        assert!(check("application/json"));
        assert!(check("application/json; charset=utf-8"));
        assert!(check("Application/JSON"));
        assert!(check("application/cloudevents+json"));
        assert!(!check("text/plain"));
        assert!(!check("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
