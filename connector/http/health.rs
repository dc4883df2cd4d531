//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
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
    let store = state.store.health(CHECK_TIMEOUT);
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
    let (store, registry) = tokio::join!(store, registry);

    // (check, result, whether a failure makes the pod unready)
    let mut results = vec![("shutdown", !state.is_shutting_down(), true)];
    if let Some(above) = store.spool_above_high_water_mark {
        results.push(("spool", !above, true));
    }
    // With a spool, webhooks are still accepted (and safe) while Kafka is down: report it as
    // degraded but stay ready until the spool reaches its high-water mark.
    let spooling = store.spool_above_high_water_mark.is_some();
    results.push(("kafka", store.kafka, !spooling));
    if let Some(ok) = registry {
        results.push(("schema_registry", ok, true));
    }
    let checks: serde_json::Map<String, Value> = results
        .iter()
        .map(|(name, ok, fatal)| {
            let text = match (ok, fatal) {
                (true, _) => "ok",
                (false, true) => "failed",
                (false, false) => "degraded",
            };
            (name.to_string(), json!(text))
        })
        .collect();
    match results.iter().find(|(_, ok, fatal)| !ok && *fatal) {
        None => (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": checks})),
        ),
        Some((check, _, _)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "failed": check, "checks": checks})),
        ),
    }
}

/// Longest a readiness dependency may take to answer (probes time out at a few seconds).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
