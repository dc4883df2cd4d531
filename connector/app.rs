//! Start-up and run: load the schema catalog, register schemas, create topics, build the
//! producer and router, bind the listener, and serve until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{Config, Encoding};
use crate::delivery::{self, Dedup, Delivery, Spool};
use crate::http::conn_io::Deadlines;
use crate::http::guard::Ingress;
use crate::http::server::{self, ConnectionLimits, RefusePeer};
use crate::http::tls::{self, ServeListener};
use crate::http::{self, AppState};
use crate::kafka::{self, Producer, TopicSpec};
use crate::pipeline::Pipeline;
use crate::record_size;
use crate::route::{PlannedRoute, Routes};
use crate::schema::encode::{confluent_prefix, single_object_prefix};
use crate::schema::{compat, Catalog, Registry};

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

/// The topics the connector needs: one compacted topic per route and the quarantine topic,
/// each taking the largest record the connector produces.
fn topic_specs(config: &Config, topics: impl IntoIterator<Item = String>) -> Vec<TopicSpec> {
    let max = record_size::kafka_message_bytes(config.http.max_body_bytes);
    topics
        .into_iter()
        .map(TopicSpec::compacted)
        .chain([TopicSpec::retained(config.quarantine_topic())])
        .map(|spec| spec.max_message_bytes(max))
        .collect()
}

/// Creates any missing topic: one compacted topic per route and the quarantine topic.
pub async fn ensure_topics(config: &Config, routes: &Routes) -> anyhow::Result<Vec<String>> {
    let specs = topic_specs(config, routes.all().map(|r| r.topic.clone()));
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

/// The producer, configured from `[kafka]` and `[delivery]`, taking records as large as the
/// connector produces for `http.max_body_bytes`.
pub fn producer(config: &Config) -> anyhow::Result<Producer> {
    Producer::new(
        &config.kafka.bootstrap_servers,
        &config.kafka.librdkafka,
        config.delivery.ack_timeout(),
        record_size::kafka_message_bytes(config.http.max_body_bytes),
    )
    .context("creating the kafka producer")
}

/// Routes, topics and delivery: everything between a body and a stored record. Delivery has
/// no spool here (tools that produce, like replay, wait for Kafka).
pub async fn pipeline(config: &Config) -> anyhow::Result<Pipeline> {
    pipeline_with(config, None).await
}

async fn pipeline_with(config: &Config, spool: Option<Arc<Spool>>) -> anyhow::Result<Pipeline> {
    let routes = resolve_routes(config).await?;
    match ensure_topics(config, &routes).await {
        Ok(topics) => tracing::info!(?topics, encoding = ?config.encoding(), "topics ready"),
        // With a spool the connector can take webhooks while Kafka is down (a pod restarted
        // during an outage must come back to drain what it acknowledged); topics are created
        // in the background once Kafka answers.
        Err(error) if spool.is_some() => {
            tracing::warn!(error = %format!("{error:#}"), "kafka unavailable at start-up; spooling until it answers");
            let (config, routes_topics) = (config.clone(), routes_for_retry(&routes));
            tokio::spawn(async move { retry_topics(config, routes_topics).await });
        }
        Err(error) => return Err(error),
    }
    let dedup = Dedup::new(
        config.delivery.dedup.max_entries,
        Duration::from_secs(config.delivery.dedup.ttl_secs),
    );
    let delivery = Delivery::new(producer(config)?, dedup, spool);
    Ok(Pipeline::new(
        routes,
        delivery,
        config.quarantine_topic(),
        record_size::max_value_bytes(config.http.max_body_bytes),
    ))
}

fn routes_for_retry(routes: &Routes) -> Vec<String> {
    routes.all().map(|r| r.topic.clone()).collect()
}

/// Creates the topics once Kafka answers (start-up with a spool during an outage).
async fn retry_topics(config: Config, topics: Vec<String>) {
    let specs = topic_specs(&config, topics);
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let created = kafka::ensure_topics(
            &config.kafka.bootstrap_servers,
            &config.kafka.librdkafka,
            &specs,
            config.topics.partitions,
            config.topics.replication_factor,
        )
        .await;
        match created {
            Ok(()) => {
                tracing::info!("topics ready");
                return;
            }
            Err(error) => tracing::warn!(%error, "creating topics: kafka still unavailable"),
        }
    }
}

/// Opens the spool when `delivery.spool.dir` is set.
fn open_spool(config: &Config) -> anyhow::Result<Option<Arc<Spool>>> {
    let spool = &config.delivery.spool;
    let Some(dir) = &spool.dir else {
        return Ok(None);
    };
    let opened = Spool::open(
        dir,
        spool.max_bytes,
        spool.segment_bytes,
        spool.high_water_mark,
    )
    .with_context(|| format!("opening delivery.spool.dir {}", dir.display()))?;
    if opened.pending() > 0 {
        tracing::warn!(pending = opened.pending(), dir = %dir.display(), "spool holds records from a previous run; draining them first");
    }
    Ok(Some(opened))
}

impl Application {
    /// Does every start-up step; any failure is returned with the step that failed.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
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
        let listener = tls::bind(config.http.listen, &config.http.tls).await?;
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
