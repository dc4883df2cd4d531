//! Start-up and run: load the schema catalog, register schemas, create topics, build the
//! producer and router, bind the listener, and serve until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::kafka::{self, Producer};
use crate::pipeline::Pipeline;
use crate::route::Routes;
use crate::schema::encode::confluent_prefix;
use crate::schema::{Catalog, Registry};

/// How long shutdown waits for Kafka to ack what is still queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A built, bound, not yet running service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
}

impl Application {
    /// Does every start-up step; any failure is returned with the step that failed.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let catalog = Catalog::load(&config.schemas.dir).context("loading schemas")?;
        let planned = Routes::plan(&catalog, &config.topics.prefix);

        let registry = Registry::new(&config.schema_registry)?;
        let mut routes = Vec::with_capacity(planned.len());
        for plan in planned {
            let subject = Registry::value_subject(&plan.topic);
            let id = registry.register(&subject, &plan.schema).await?;
            tracing::info!(subject, schema_id = id, file = %plan.schema.file.display(), "schema registered");
            routes.push((plan, confluent_prefix(id)));
        }

        let topics: Vec<String> = routes.iter().map(|(p, _)| p.topic.clone()).collect();
        if config.topics.create {
            kafka::ensure_topics(
                &config.kafka.bootstrap_servers,
                &config.kafka.librdkafka,
                &topics,
                config.topics.partitions,
                config.topics.replication_factor,
            )
            .await
            .context("creating topics")?;
        }

        let producer = Producer::new(
            &config.kafka.bootstrap_servers,
            &config.kafka.librdkafka,
            config.delivery.ack_timeout(),
        )
        .context("creating the kafka producer")?;

        let pipeline = Pipeline::new(Routes::new(routes), producer);
        let state = AppState::new(pipeline, config.http.max_body_bytes);
        let router = http::router(state.clone(), &config.http.path);
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding http.listen {}", config.http.listen))?;
        tracing::info!(listen = %listener.local_addr()?, path = %config.http.path, topics = ?topics, "ready to receive webhooks");
        Ok(Self {
            listener,
            state,
            router,
        })
    }

    /// The bound address (port 0 in config resolves here).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops taking webhooks, lets in-flight requests
    /// finish and flushes the producer.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let drain_state = self.state.clone();
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutdown requested: draining in-flight webhooks");
                drain_state.begin_shutdown();
            })
            .await
            .context("http server")?;
        let producer = state.pipeline.producer().clone();
        tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT))
            .await?
            .context("flushing the producer")?;
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
