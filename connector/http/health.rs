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

/// `GET /readyz`: ready when not shutting down, the spool (if any) is below its high-water
/// mark, the brokers answer a metadata request, and the registry (if configured) answers.
/// The body lists every check and names the first that failed.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut checks = serde_json::Map::new();
    let mut failed = None;
    let mut record = |name: &'static str, ok: bool| {
        checks.insert(name.into(), json!(if ok { "ok" } else { "failed" }));
        if !ok && failed.is_none() {
            failed = Some(name);
        }
    };
    record("shutdown", !state.is_shutting_down());
    if let Some(spool) = state.pipeline.delivery().spool() {
        record("spool", !spool.above_high_water_mark());
    }
    let producer = state.pipeline.producer().clone();
    let kafka = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .client()
            .fetch_metadata(None, CHECK_TIMEOUT)
            .map(|m| !m.brokers().is_empty())
            .unwrap_or(false)
    });
    let registry = async {
        match &state.registry {
            Some(registry) => Some(
                tokio::time::timeout(CHECK_TIMEOUT, registry.reachable())
                    .await
                    .unwrap_or(false),
            ),
            None => None,
        }
    };
    let (kafka, registry) = tokio::join!(kafka, registry);
    record("kafka", kafka.unwrap_or(false));
    if let Some(ok) = registry {
        record("schema_registry", ok);
    }
    match failed {
        None => (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": checks})),
        ),
        Some(check) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "failed": check, "checks": checks})),
        ),
    }
}

/// Longest a readiness dependency may take to answer (probes time out at a few seconds).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
