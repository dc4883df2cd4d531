//! HTTP: the router, the webhook handler, health endpoints and the error→status mapping;
//! `guard` (source address, rate, in-flight cap, credentials) in front of the webhook and the
//! OAuth2 `token` endpoint, `limits`, `body` (size, deadline and byte budget of a body), the
//! plain or TLS listener (`tls`), and the accept loop (`server`: connection cap, early source
//! refusal, per-connection deadlines and lingering close in `conn_io`).

pub mod body;
pub mod conn_io;
pub mod error;
pub mod guard;
pub mod health;
pub mod limits;
pub mod observe;
pub mod server;
pub mod source_ip;
pub mod tls;
pub mod token;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::pipeline::Pipeline;
use guard::Ingress;

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points at.
pub struct Shared {
    /// Routes and producer.
    pub pipeline: Pipeline,
    /// `http.max_body_bytes`.
    pub max_body_bytes: usize,
    /// Source addresses, limits and authentication.
    pub ingress: Arc<Ingress>,
    /// The schema registry, when configured (readiness checks it).
    pub registry: Option<crate::schema::Registry>,
    shutting_down: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Wraps the pipeline for the handlers.
    pub fn new(
        pipeline: Pipeline,
        max_body_bytes: usize,
        ingress: Ingress,
        registry: Option<crate::schema::Registry>,
    ) -> Self {
        Self(Arc::new(Shared {
            pipeline,
            max_body_bytes,
            ingress: Arc::new(ingress),
            registry,
            shutting_down: AtomicBool::new(false),
        }))
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

/// The service's routes.
pub fn router(state: AppState, webhook_path: &str) -> Router {
    let ingress = state.ingress.clone();
    let mut router = Router::new().route(
        webhook_path,
        post(webhook::receive)
            .layer(from_fn_with_state(ingress.clone(), guard::webhook))
            .layer(axum::middleware::from_fn(observe::observe)),
    );
    if let Some(issuer) = ingress.auth().token_issuer() {
        router = router.route(
            issuer.path(),
            post(token::issue).layer(from_fn_with_state(ingress.clone(), guard::token_endpoint)),
        );
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics))
        // The handler enforces the body limit itself (413 before reading).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
