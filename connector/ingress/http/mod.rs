//! HTTP: the router, the webhook handler, health endpoints and the error→status mapping;
//! `guard` (source address, rate, in-flight cap, credentials) in front of the webhook and the
//! OAuth2 `token` endpoint, `limits`, `body` (size, deadline and byte budget of a body), the
//! plain or TLS listener (`tls`), and the accept loop (`server`: connection cap, early source
//! refusal, per-connection deadlines and lingering close in `conn_io`).

pub(crate) mod accept;
pub(crate) mod body;
pub(crate) mod config;
pub(crate) mod conn_io;
pub(crate) mod error;
pub(crate) mod guard;
pub(crate) mod health;
pub(crate) mod limits;
pub mod observe;
pub mod openapi;
pub(crate) mod required_headers;
pub mod server;
pub(crate) mod source_ip;
pub mod tls;
pub(crate) mod token;
pub(crate) mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::delivery::Store;
use crate::pipeline::Pipeline;
use guard::Ingress;
use observe::Observed;

pub use error::ApiError;

/// Shared state of the listener's own routes (health, metrics).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points at.
pub struct Shared {
    /// The webhook endpoints, in the order of the config.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Where every endpoint's records are stored (readiness and gauges ask it).
    pub store: Arc<dyn Store>,
    /// The schema registry, when configured (`/healthz` shows its last background check).
    pub registry: Option<crate::pipeline::schema::Registry>,
    /// The OpenAPI document served at `/openapi.json` ([`AppState::with_openapi`]).
    openapi: axum::body::Bytes,
    shutting_down: Arc<AtomicBool>,
}

/// One webhook endpoint, ready to serve: its path, checks and pipeline.
pub struct Endpoint {
    /// Where the sender POSTs.
    pub path: String,
    /// Routes (of the endpoint's topic prefix) and delivery.
    pub pipeline: Pipeline,
    /// Source addresses, limits and authentication of this endpoint.
    pub ingress: Ingress,
    /// `http.max_body_bytes`.
    pub max_body_bytes: usize,
    shutting_down: Arc<AtomicBool>,
}

impl Endpoint {
    /// The endpoint's name (logs, metrics, records).
    pub fn name(&self) -> &str {
        self.pipeline.endpoint()
    }

    /// True once the service began shutting down: new webhooks get 503.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// An endpoint's parts, before [`AppState::new`] joins them to the listener.
pub struct EndpointParts {
    /// Where the sender POSTs.
    pub path: String,
    /// The endpoint's pipeline.
    pub pipeline: Pipeline,
    /// The endpoint's checks.
    pub ingress: Ingress,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Joins the endpoints, the store they share and the registry.
    pub fn new(
        endpoints: Vec<EndpointParts>,
        store: Arc<dyn Store>,
        max_body_bytes: usize,
        registry: Option<crate::pipeline::schema::Registry>,
    ) -> Self {
        let shutting_down = Arc::new(AtomicBool::new(false));
        let endpoints = endpoints
            .into_iter()
            .map(|parts| {
                Arc::new(Endpoint {
                    path: parts.path,
                    pipeline: parts.pipeline,
                    ingress: parts.ingress,
                    max_body_bytes,
                    shutting_down: shutting_down.clone(),
                })
            })
            .collect();
        Self(Arc::new(Shared {
            endpoints,
            store,
            registry,
            openapi: axum::body::Bytes::from_static(b"{}"),
            shutting_down,
        }))
    }

    /// Serves `document` ([`openapi::document`] of the config) at `/openapi.json`; call it
    /// right after [`AppState::new`], before the state is shared.
    pub fn with_openapi(mut self, document: &serde_json::Value) -> Self {
        let shared = Arc::get_mut(&mut self.0).expect("the state is not shared yet");
        shared.openapi = serde_json::to_vec_pretty(document)
            .expect("a JSON value serializes")
            .into();
        self
    }

    /// From now on readiness fails and new webhooks get 503.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    /// True once [`AppState::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }
}

/// `GET /openapi.json`.
async fn serve_openapi(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
}

/// The service's routes: each endpoint's webhook path (and token endpoint), health, metrics,
/// the OpenAPI document.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for endpoint in &state.endpoints {
        let observed = Observed::webhook(endpoint.name());
        router = router.route(
            &endpoint.path,
            post(webhook::receive)
                .with_state(endpoint.clone())
                .layer(from_fn_with_state(endpoint.clone(), guard::webhook))
                .layer(from_fn_with_state(observed, observe::observe)),
        );
        if let Some(issuer) = endpoint.ingress.auth().token_issuer() {
            let observed = Observed::token_endpoint(endpoint.name());
            router = router.route(
                issuer.path(),
                post(token::issue)
                    .with_state(endpoint.clone())
                    .layer(from_fn_with_state(endpoint.clone(), guard::token_endpoint))
                    .layer(from_fn_with_state(observed, observe::observe)),
            );
        }
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics))
        .route(openapi::PATH, get(serve_openapi))
        // The handler enforces the body limit itself (413 before reading).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// What the listener serves while start-up waits (for the schema registry, say): alive
/// (`/healthz` 200), not ready (`/readyz` 503, `failed: starting`), metrics, and 503 with
/// `Retry-After` on every other path, so a sender that reaches the pod retries.
pub fn starting_router() -> Router {
    use axum::http::StatusCode;
    use axum::Json;
    use serde_json::json;
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({"status": "starting"})) }),
        )
        .route(
            "/readyz",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({
                        "status": "not_ready",
                        "failed": "starting",
                        "checks": {"starting": "failed"},
                    })),
                )
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                let handle = crate::common::metrics::install();
                crate::common::metrics::collect_process();
                handle.run_upkeep();
                handle.render()
            }),
        )
        .fallback(|| async { ApiError::Starting })
}
