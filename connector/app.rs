//! The service's lifecycle: `Application::build` sets everything up (authentication, then
//! [`crate::topology`]: routes, topics, producer, pipeline), binds the listener, and
//! `run_until` serves until the shutdown future resolves, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use anyhow::Context;

use crate::config::{Config, Encoding};
use crate::delivery;
use crate::http::conn_io::Deadlines;
use crate::http::guard::Ingress;
use crate::http::server::{self, ConnectionLimits, RefusePeer};
use crate::http::tls::{self, ServeListener};
use crate::http::{self, AppState};
use crate::schema::Registry;
use crate::topology::{open_spool, pipeline_with};

/// How long shutdown waits for Kafka to ack what is still queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A built, bound, not yet running service.
pub struct Application {
    listener: ServeListener,
    state: AppState,
    router: axum::Router,
    connections: ConnectionLimits,
    refuse_peer: RefusePeer,
    grace: Duration,
}

impl Application {
    /// Does every start-up step on an already bound `listener` (the binary binds
    /// `http.listen`; tests bind port 0); any failure is returned with the step that failed.
    pub async fn build(config: &Config, listener: TcpListener) -> anyhow::Result<Self> {
        // Secrets and the JWKS first: a bad credential setup fails before anything is created.
        crate::metrics::install();
        let ingress = Ingress::from_config(config)
            .await
            .context("setting up authentication")?;
        let auth = ingress.auth().mode();
        let spool = open_spool(config)?;
        let pipeline = pipeline_with(config, spool).await?;
        let registry = match config.encoding() {
            Encoding::Confluent => Some(Registry::new(&config.schema_registry)?),
            Encoding::SingleObject => None,
        };
        let refuse_peer = server::refuse_untrusted_peer(ingress.sources());
        let state = AppState::new(pipeline, config.http.max_body_bytes, ingress, registry);
        let router = http::router(state.clone(), &config.http.path);
        let listener = tls::serve_on(listener, &config.http.tls)?;
        tracing::info!(listen = %listener.local_addr()?, path = %config.http.path, ?auth, tls = config.http.tls.enabled(), "ready to receive webhooks");
        let connections = ConnectionLimits {
            deadlines: Deadlines {
                header_read: Duration::from_millis(config.http.header_read_timeout_ms),
                idle: Duration::from_millis(config.http.idle_timeout_ms),
            },
            max_connections: config.http.max_connections,
        };
        Ok(Self {
            listener,
            state,
            router,
            connections,
            refuse_peer,
            grace: config.shutdown.grace(),
        })
    }

    /// The bound address (port 0 in config resolves here).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then: readiness fails and new webhooks get 503,
    /// in-flight requests finish, the producer is flushed and the spool forwarder stops — all
    /// within `shutdown.grace_ms` of the signal. Every spool append is already fsync'd.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let forwarder = state.pipeline.delivery().spool().map(|spool| {
            tokio::spawn(delivery::forward(
                spool.clone(),
                state.pipeline.producer().clone(),
                stop_rx.clone(),
            ))
        });
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<Instant>();
        let drain_state = self.state.clone();
        let server = server::serve(
            self.listener,
            self.router,
            self.connections,
            self.refuse_peer,
            async move {
                shutdown.await;
                tracing::info!("shutdown requested: draining in-flight webhooks");
                drain_state.begin_shutdown();
                let _ = signalled_tx.send(Instant::now());
            },
        );
        let grace = self.grace;
        let deadline = async move {
            match signalled_rx.await {
                Ok(at) => tokio::time::sleep_until((at + grace).into()).await,
                Err(_) => std::future::pending().await,
            }
        };
        let stopping_at = tokio::select! {
            () = server => Instant::now(),
            () = deadline => {
                tracing::warn!(?grace, "grace period over with requests in flight; closing them");
                Instant::now()
            }
        };
        let _ = stop_tx.send(true);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        let flush_for = FLUSH_TIMEOUT.min(grace.saturating_sub(stopping_at.elapsed()));
        let producer = state.pipeline.producer().clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(flush_for)).await?;
        if let Err(error) = flushed {
            // Only records whose requests were never answered 2xx can still be queued here.
            tracing::warn!(%error, "producer not fully flushed before the grace period ended");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
