//! The HTTP ceiling: an axum endpoint that does what any receiver must do with the same
//! requests — check the bearer token, read the body, parse it as JSON, find the event id — and
//! answers 200 without Kafka. Same runtime defaults as the connector.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

struct Expected {
    authorization: String,
}

async fn receive(
    State(expected): State<Arc<Expected>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.authorization.as_bytes());
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = json
        .get("event_id")
        .or_else(|| json.get("request_token"))
        .and_then(Value::as_str);
    match id {
        Some(id) => Json(json!({"status": "accepted", "event_id": id})).into_response(),
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Serves until killed.
pub async fn serve(listen: SocketAddr, token: &str) -> anyhow::Result<()> {
    let expected = Arc::new(Expected {
        authorization: format!("Bearer {token}"),
    });
    let app = Router::new()
        .route("/webhooks/riskos", post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(expected);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
