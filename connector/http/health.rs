//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rdkafka::producer::Producer as _;
use serde_json::{json, Value};

use super::AppState;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: not shutting down and the brokers answer a metadata request.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.is_shutting_down() {
        return not_ready("shutting_down");
    }
    if let Some(spool) = state.pipeline.delivery().spool() {
        if spool.above_high_water_mark() {
            return not_ready("spool");
        }
    }
    let producer = state.pipeline.producer().clone();
    let metadata = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|m| m.brokers().len())
    })
    .await;
    match metadata {
        Ok(Ok(brokers)) if brokers > 0 => (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": {"kafka": "ok"}})),
        ),
        _ => not_ready("kafka"),
    }
}

fn not_ready(check: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "not_ready", "failed": check})),
    )
}
