//! Start-up and run: load the schema catalog, register schemas, create topics, build the
//! producer and router, bind the listener, and serve until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Config, Encoding};
use crate::http::{self, AppState};
use crate::kafka::{self, Producer, TopicSpec};
use crate::pipeline::Pipeline;
use crate::route::{PlannedRoute, Routes};
use crate::schema::encode::{confluent_prefix, single_object_prefix};
use crate::schema::{compat, Catalog, Registry};

/// How long shutdown waits for Kafka to ack what is still queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A built, bound, not yet running service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
}

/// Loads `schemas/` and gives every route its wire prefix. With the Confluent encoding every
/// schema is first checked against its subject's latest version (so an incompatible edit is
/// refused before anything is registered or written), then registered.
pub async fn resolve_routes(config: &Config) -> anyhow::Result<Routes> {
    let catalog = Catalog::load(&config.schemas.dir).context("loading schemas")?;
    let planned = Routes::plan(&catalog, &config.topics.prefix);
    let routes = match config.encoding() {
        Encoding::SingleObject => return Ok(single_object_routes(&catalog, &config.topics.prefix)),
        Encoding::Confluent => {
            let registry = Registry::new(&config.schema_registry)?;
            check_compatibility(config, &registry, &planned).await?;
            let mut routes = Vec::with_capacity(planned.len());
            for plan in planned {
                let subject = Registry::value_subject(&plan.topic);
                let id = registry.register(&subject, &plan.schema).await?;
                tracing::info!(subject, schema_id = id, file = %plan.schema.file.display(), "schema registered");
                routes.push((plan, confluent_prefix(id)));
            }
            routes
        }
    };
    Ok(Routes::new(routes))
}

/// Routes with single-object framing: no registry involved.
pub fn single_object_routes(catalog: &Catalog, topic_prefix: &str) -> Routes {
    Routes::new(Routes::plan(catalog, topic_prefix).into_iter().map(|plan| {
        let prefix = single_object_prefix(&plan.schema.schema);
        (plan, prefix)
    }))
}

/// `schemas check`: every schema against its subject's latest registered version, registering
/// nothing. Returns one line per subject.
pub async fn check_schemas(config: &Config) -> anyhow::Result<Vec<String>> {
    let catalog = Catalog::load(&config.schemas.dir).context("loading schemas")?;
    let planned = Routes::plan(&catalog, &config.topics.prefix);
    if config.encoding() == Encoding::SingleObject {
        return Ok(planned
            .iter()
            .map(|p| {
                format!(
                    "{}: valid (single-object encoding, no registry to compare with)",
                    p.schema.file.display()
                )
            })
            .collect());
    }
    let registry = Registry::new(&config.schema_registry)?;
    check_compatibility(config, &registry, &planned).await
}

async fn check_compatibility(
    config: &Config,
    registry: &Registry,
    planned: &[PlannedRoute],
) -> anyhow::Result<Vec<String>> {
    let level = config.schema_registry.compatibility;
    let mut report = Vec::with_capacity(planned.len());
    for plan in planned {
        let subject = Registry::value_subject(&plan.topic);
        let Some(latest) = registry.latest(&subject).await? else {
            report.push(format!("{subject}: new subject"));
            continue;
        };
        let latest = apache_avro::Schema::parse_str(&latest).with_context(|| {
            format!("subject `{subject}`: the registered schema does not parse")
        })?;
        compat::check(level, &latest, &plan.schema.schema).map_err(|reason| {
            anyhow::anyhow!(
                "{}: incompatible with the latest version of subject `{subject}` ({level:?}): {reason}",
                plan.schema.file.display()
            )
        })?;
        report.push(format!("{subject}: compatible ({level:?})"));
    }
    Ok(report)
}

/// Creates any missing topic: one compacted topic per route and the quarantine topic.
pub async fn ensure_topics(config: &Config, routes: &Routes) -> anyhow::Result<Vec<String>> {
    let mut specs: Vec<TopicSpec> = routes
        .all()
        .map(|r| TopicSpec::compacted(&r.topic))
        .collect();
    specs.push(TopicSpec::retained(config.quarantine_topic()));
    if config.topics.create {
        kafka::ensure_topics(
            &config.kafka.bootstrap_servers,
            &config.kafka.librdkafka,
            &specs,
            config.topics.partitions,
            config.topics.replication_factor,
        )
        .await
        .context("creating topics")?;
    }
    Ok(specs.into_iter().map(|s| s.name).collect())
}

/// The producer, configured from `[kafka]` and `[delivery]`.
pub fn producer(config: &Config) -> anyhow::Result<Producer> {
    Producer::new(
        &config.kafka.bootstrap_servers,
        &config.kafka.librdkafka,
        config.delivery.ack_timeout(),
    )
    .context("creating the kafka producer")
}

/// Routes, topics and producer: everything between a body and an acked record.
pub async fn pipeline(config: &Config) -> anyhow::Result<Pipeline> {
    let routes = resolve_routes(config).await?;
    let topics = ensure_topics(config, &routes).await?;
    tracing::info!(?topics, encoding = ?config.encoding(), "topics ready");
    Ok(Pipeline::new(
        routes,
        producer(config)?,
        config.quarantine_topic(),
    ))
}

impl Application {
    /// Does every start-up step; any failure is returned with the step that failed.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let pipeline = pipeline(config).await?;
        let state = AppState::new(pipeline, config.http.max_body_bytes);
        let router = http::router(state.clone(), &config.http.path);
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding http.listen {}", config.http.listen))?;
        tracing::info!(listen = %listener.local_addr()?, path = %config.http.path, "ready to receive webhooks");
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
