//! The webhook handler: check the request and read the body, hand it to the pipeline's one
//! call that decides and stores it, and answer only once it is safe.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use tokio::sync::OwnedSemaphorePermit;

use super::body::BodyShare;
use super::error::ApiError;
use super::guard::ClientIp;
use super::observe::{AcceptedLine, EventTypeLabel};
use super::Endpoint;
use crate::delivery::{Outcome, Stored};
use crate::pipeline::{Answer, Fate, KeepError, Kept, Origin, Prepared, Quarantined};

/// The 200 body.
#[derive(Debug, Serialize)]
pub(crate) struct Accepted {
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

/// `POST <endpoints.path>`: a body's whole way, in one place. The request's checks and the
/// body read under its limits and verified ([`read`]); then the pipeline's one call that
/// decides what becomes of it and carries that out (stored on its topic, or kept raw in
/// quarantine); then the answer ([`answer`]), only once it is safe. The request is taken
/// whole and split, so its headers are borrowed rather than cloned (axum's `HeaderMap`
/// extractor copies the map).
pub(crate) async fn receive(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // The guard always sets it; were it missing, all such requests would share one count.
    let client = parts
        .extensions
        .get::<ClientIp>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |client| client.0);
    // The body's share of the budget and the in-flight slot are held until the answer.
    let read = match read(&endpoint, headers, client, body).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    let traceparent = super::observe::traceparent(headers);
    let origin = Origin {
        body: &read.body,
        traceparent: traceparent.as_deref(),
        idempotency_key: endpoint.ingress.auth().idempotency_key(headers),
    };
    let fate = endpoint.pipeline.keep(origin, read.received_at_ms).await;
    answer(fate, started)
}

/// A body read and verified; the capacity it holds is released when dropped.
struct Read {
    body: Bytes,
    received_at_ms: i64,
    _body_share: BodyShare,
    _slot: Option<OwnedSemaphorePermit>,
}

/// Everything before the body is handed on: the request's checks, the body read under its
/// limits, the HMAC, and the in-flight slot of a verified request.
async fn read(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    client: IpAddr,
    body: Body,
) -> Result<Read, ApiError> {
    if endpoint.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = endpoint.max_body_bytes;
    if content_length(headers).is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let ingress = &endpoint.ingress;
    let (body, body_share) = super::body::read(
        body,
        limit,
        ingress.body_budget(),
        client,
        ingress.body_read_timeout(),
    )
    .await?;
    let received_at_ms = crate::common::clock::now_millis();
    // The HMAC over the raw body (401, nothing stored: the sender is unknown)…
    ingress.check_body(headers, &body)?;
    // …and only a verified request takes an in-flight slot in that mode.
    let slot = ingress.verified_slot()?;
    Ok(Read {
        body,
        received_at_ms,
        _body_share: body_share,
        _slot: slot,
    })
}

/// The answer to what became of the body: 200 `accepted` or `quarantined`, 400 for a body the
/// sender got wrong (kept all the same), or the error's status when it is not safe. The
/// request counter's event type is the record's, when the body became one.
fn answer(fate: Fate, started: Instant) -> Response {
    let Fate { prepared, kept } = fate;
    let label = prepared.as_ref().map(|prepared| {
        EventTypeLabel(if prepared.route.schema.is_fallback() {
            "unrecognized".to_string()
        } else {
            prepared.route.schema.event_type.clone()
        })
    });
    let answered = match kept {
        Ok(Kept::Stored(outcome)) => {
            let prepared = prepared.expect("a stored body became a record");
            accepted(prepared, outcome, started)
        }
        Ok(Kept::Quarantined(quarantined, outcome)) => quarantined_answer(quarantined, outcome),
        Err(KeepError::Store(error)) => Err(error.into()),
        Err(KeepError::Quarantine(error)) => Err(ApiError::QuarantineFailed(error)),
    };
    let mut response = answered.into_response();
    if let Some(label) = label {
        response.extensions_mut().insert(label);
    }
    response
}

/// 200 `accepted`, with the accepted line logged.
fn accepted(
    prepared: Prepared,
    outcome: Outcome,
    started: Instant,
) -> Result<Json<Accepted>, ApiError> {
    let (partition, offset) = placed(&outcome);
    AcceptedLine {
        event_id: &prepared.key,
        event_type: &prepared.event_type,
        event_at: prepared.occurred_at_ms,
        topic: &prepared.route.topic,
        partition,
        offset,
        spooled: outcome.stored == Stored::Spooled,
        duplicate: outcome.duplicate,
        latency: started.elapsed(),
    }
    .log();
    Ok(Json(Accepted {
        status: "accepted",
        event_id: prepared.key,
        reason: None,
        duplicate: outcome.duplicate,
        spooled: outcome.stored == Stored::Spooled,
    }))
}

/// As the quarantine's answer says: 200 `quarantined`, or 400.
fn quarantined_answer(
    quarantined: Quarantined,
    outcome: Outcome,
) -> Result<Json<Accepted>, ApiError> {
    let (partition, offset) = placed(&outcome);
    let error = quarantined.error;
    tracing::warn!(
        reason = error.reason(),
        error = %error,
        partition,
        offset,
        spooled = outcome.stored == Stored::Spooled,
        "quarantined"
    );
    match (quarantined.answer, quarantined.key) {
        (Answer::Accepted, Some(event_id)) => Ok(Json(Accepted {
            status: "quarantined",
            event_id,
            reason: Some(error.to_string()),
            duplicate: outcome.duplicate,
            spooled: outcome.stored == Stored::Spooled,
        })),
        _ => Err(ApiError::Prepare(error)),
    }
}

/// Where Kafka put it: partition and offset once acked, none while spooled.
fn placed(outcome: &Outcome) -> (Option<i32>, Option<i64>) {
    match outcome.stored {
        Stored::Acked(d) => (Some(d.partition), Some(d.offset)),
        Stored::Spooled => (None, None),
    }
}

/// `application/json` or any `application/*+json`, with no charset or `charset=utf-8`: the
/// body is read as UTF-8, so a body declared in another charset would be misread.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    json && parts.all(|parameter| {
        let Some((name, value)) = parameter.split_once('=') else {
            return parameter.trim().is_empty();
        };
        !name.trim().eq_ignore_ascii_case("charset")
            || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    })
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
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
        assert!(check("application/json; charset=\"UTF-8\""));
        assert!(check("application/json;"));
        assert!(!check("application/json; charset=latin1"));
        assert!(!check("application/json; charset=utf-16"));
        assert!(!check("application/json; charset=utf-8; charset=latin1"));
        assert!(!check("text/plain"));
        assert!(!check("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
