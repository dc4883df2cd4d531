//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::pipeline::schema::RegistryStatus;

/// `GET /healthz`: the process is up and serving (always 200). With a registry, its detail
/// shows the last background check (`schema_registry`: `ok` or `unreachable`): an outage
/// worth seeing, but not a reason to restart or to leave the Service.
pub(crate) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    match &state.registry {
        None => Json(json!({"status": "ok"})),
        Some(registry) => {
            let seen = match registry.status() {
                RegistryStatus::Up => "ok",
                RegistryStatus::Unreachable => "unreachable",
            };
            Json(json!({"status": "ok", "checks": {"schema_registry": seen}}))
        }
    }
}

/// `GET /readyz`: ready when not shutting down, the spool (if any) is below its high-water
/// mark and the brokers answer a metadata request — only what accepting a webhook needs.
/// The schema registry is not asked: subjects and ids were resolved at start-up, and one
/// dependency's blip must not take every pod out of the Service at once. The body lists
/// every check and names the first that failed.
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.store.health(CHECK_TIMEOUT).await;

    // (check, result, whether a failure makes the pod unready)
    let mut results = vec![("shutdown", !state.is_shutting_down(), true)];
    if let Some(above) = store.spool_above_high_water_mark {
        results.push(("spool", !above, true));
    }
    // With a spool, webhooks are still accepted (and safe) while Kafka is down: report it as
    // degraded but stay ready until the spool reaches its high-water mark.
    let spooling = store.spool_above_high_water_mark.is_some();
    results.push(("kafka", store.kafka, !spooling));
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
