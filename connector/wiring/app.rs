//! The service's lifecycle: `Application::build` sets everything up on a bound listener
//! (authentication, then [`crate::wiring::topology`]: routes, topics, the Kafka store, the pipeline),
//! and `run_until` serves until the shutdown future resolves, then drains.
//! `Application::build_with_store` and [`handlers`] do the same over another
//! [`Store`] (tests: [`crate::delivery::MemoryStore`]), touching no Kafka.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use anyhow::Context;

use crate::delivery::Store;
use crate::ingress::http::conn_io::Deadlines;
use crate::ingress::http::guard::{Ingress, Share};
use crate::ingress::http::server::{self, ConnectionLimits, RefusePeer};
use crate::ingress::http::tls::{self, ServeListener};
use crate::ingress::http::{self, AppState, EndpointParts};
use crate::pipeline::protect::Keyring;
use crate::pipeline::route::RoutesByPrefix;
use crate::pipeline::schema::Registry;
use crate::wiring::config::Config;
use crate::wiring::topology::{
    kafka_store, open_spool, pipelines_over, protection_keys, registry,
    resolve_routes_waiting_for_registry,
};

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
    registry_check_interval: Duration,
}

impl Application {
    /// Does every start-up step on an already bound `listener` (the binary binds
    /// `http.listen`; tests bind port 0); any failure is returned with the step that failed.
    ///
    /// Meanwhile the listener already answers: alive, not ready, 503 to webhooks
    /// ([`http::starting_router`]), so a start-up that waits for the schema registry shows as
    /// a pod that is not ready yet rather than one whose probes time out.
    pub async fn build(config: &Config, listener: TcpListener) -> anyhow::Result<Self> {
        let starting = Starting::serve(config, &listener)?;
        let state = async {
            // Secrets and the JWKS first: a bad credential setup fails before anything is
            // created.
            let setup = authenticate_then_route(config).await?;
            let spool = open_spool(config)?;
            let store = Arc::new(kafka_store(config, &setup.routes, spool).await?);
            anyhow::Ok(assemble(config, setup, store))
        }
        .await;
        starting.stop().await;
        Self::serve_with(config, listener, state?)
    }

    /// [`Application::build`] over another store: no topic is created and no Kafka touched.
    pub async fn build_with_store(
        config: &Config,
        listener: TcpListener,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let state = handler_state(config, store).await?;
        Self::serve_with(config, listener, state)
    }

    fn serve_with(config: &Config, listener: TcpListener, state: AppState) -> anyhow::Result<Self> {
        let refuse_peer = server::refuse_untrusted_peer(
            state
                .endpoints
                .iter()
                .map(|e| e.ingress.sources())
                .collect(),
        );
        let router = http::router(state.clone());
        let listener = tls::serve_on(listener, &config.http.tls)?;
        for endpoint in &state.endpoints {
            let auth = endpoint.ingress.auth().mode();
            tracing::info!(endpoint = endpoint.name(), path = %endpoint.path, ?auth, quarantine = endpoint.pipeline.quarantine_topic(), "endpoint ready");
        }
        tracing::info!(listen = %listener.local_addr()?, endpoints = state.endpoints.len(), tls = config.http.tls.enabled(), "ready to receive webhooks");
        let connections = ConnectionLimits {
            deadlines: Deadlines {
                header_read: Duration::from_millis(config.http.header_read_timeout_ms),
                idle: Duration::from_millis(config.http.idle_timeout_ms),
            },
            max_connections: crate::wiring::fd_limit::connection_cap(
                config,
                server::REFUSED_CONNECTIONS,
            ),
        };
        Ok(Self {
            listener,
            state,
            router,
            connections,
            refuse_peer,
            grace: config.shutdown.grace(),
            registry_check_interval: config.schema_registry.check_interval(),
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
        let store = state.store.clone();
        // A spooled record Kafka later refuses as too large goes to its endpoint's quarantine.
        let quarantines = crate::pipeline::Quarantines::new(
            state
                .endpoints
                .iter()
                .map(|endpoint| endpoint.pipeline.clone()),
        );
        let background = store
            .background(stop_rx.clone(), Arc::new(quarantines))
            .map(tokio::spawn);
        let registry_check = state
            .registry
            .clone()
            .map(|registry| tokio::spawn(registry.watch(self.registry_check_interval, stop_rx)));
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
        if let Some(background) = background {
            let _ = background.await;
        }
        if let Some(registry_check) = registry_check {
            let _ = registry_check.await;
        }
        let flush_for = FLUSH_TIMEOUT.min(grace.saturating_sub(stopping_at.elapsed()));
        if let Err(error) = store.flush(flush_for).await {
            // Only records whose requests were never answered 2xx can still be queued here.
            tracing::warn!(%error, "producer not fully flushed before the grace period ended");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The router over `store`, with the service's authentication, routes and limits: what the
/// HTTP tests drive with `tower::ServiceExt::oneshot`, no listener and no broker involved.
pub async fn handlers(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<axum::Router> {
    let state = handler_state(config, store).await?;
    Ok(http::router(state))
}

async fn handler_state(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<AppState> {
    let setup = authenticate_then_route(config).await?;
    Ok(assemble(config, setup, store))
}

/// What start-up sets up before the store: each endpoint's checks, the registry client, the
/// routes and the protection keys.
struct Setup {
    ingresses: Vec<Ingress>,
    registry: Option<Registry>,
    routes: RoutesByPrefix,
    keys: Option<Arc<Keyring>>,
}

/// Every endpoint's authentication (secrets, JWKS) and limits, then the registry client, the
/// routes of every topic prefix (schemas checked and registered with the Confluent
/// encoding) and the protection keys the schemas and endpoints need.
async fn authenticate_then_route(config: &Config) -> anyhow::Result<Setup> {
    crate::common::metrics::install();
    if config.endpoints.is_empty() {
        anyhow::bail!("config key `endpoints`: is empty: configure at least one [[endpoints]]");
    }
    let shares = config
        .in_flight_shares()
        .into_iter()
        .zip(config.body_bytes_shares());
    let mut ingresses = Vec::with_capacity(config.endpoints.len());
    for (endpoint, (in_flight, body_bytes)) in config.endpoints.iter().zip(shares) {
        let share = Share {
            in_flight,
            body_bytes,
        };
        let ingress = Ingress::from_config(&config.http, endpoint, share)
            .await
            .with_context(|| format!("setting up endpoint `{}`", endpoint.name))?;
        ingresses.push(ingress);
    }
    let registry = registry(config)?;
    let routes = resolve_routes_waiting_for_registry(config, registry.as_ref()).await?;
    let keys = protection_keys(config, &routes)?;
    Ok(Setup {
        ingresses,
        registry,
        routes,
        keys,
    })
}

fn assemble(config: &Config, setup: Setup, store: Arc<dyn Store>) -> AppState {
    let pipelines = pipelines_over(config, &setup.routes, setup.keys, store.clone());
    let endpoints = config
        .endpoints
        .iter()
        .zip(pipelines.into_iter().zip(setup.ingresses))
        .map(|(endpoint, (pipeline, ingress))| EndpointParts {
            path: endpoint.path.clone(),
            pipeline,
            ingress,
        })
        .collect();
    AppState::new(endpoints, store, config.http.max_body_bytes, setup.registry).with_openapi(
        &http::openapi::document(&config.endpoints, config.http.max_body_bytes),
    )
}

/// The listener's stand-in while [`Application::build`] runs: a second handle on the same
/// socket serving [`http::starting_router`]. Stopping it closes its connections after their
/// current request (keep-alive ones too), so every later request reaches the real routes.
struct Starting {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

/// Connections the start-up stand-in serves at once (probes and the odd early sender).
const STARTING_CONNECTIONS: usize = 64;

impl Starting {
    fn serve(config: &Config, listener: &TcpListener) -> anyhow::Result<Self> {
        use std::os::fd::AsFd;
        let socket = listener
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the listening socket")?;
        let socket = std::net::TcpListener::from(socket);
        socket.set_nonblocking(true)?;
        let listener = tls::serve_on(TcpListener::from_std(socket)?, &config.http.tls)?;
        let limits = ConnectionLimits {
            deadlines: Deadlines {
                header_read: Duration::from_millis(config.http.header_read_timeout_ms),
                idle: Duration::from_millis(config.http.idle_timeout_ms),
            },
            max_connections: STARTING_CONNECTIONS,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::serve(
            listener,
            http::starting_router(),
            limits,
            server::refuse_nobody(),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self { stop, served })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.served.await;
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
