//! What the connector needs around it, set up from the config: the routes with their wire
//! prefixes (checking and registering schemas with the Confluent encoding), the topics, the
//! Kafka store (producer and spool) and the pipeline over a store. The service (`app`) and the
//! tools (`replay`, `schemas check`) build on it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::common::setting::SettingError;
use crate::delivery::kafka::{self, PartitionCounts, Producer, TopicDurability, TopicSpec};
use crate::delivery::record_size;
use crate::delivery::{Dedup, Delivery, KafkaStore, Spool, Store};
use crate::pipeline::protect::{Keyring, Policy, RawPolicy};
use crate::pipeline::route::{single_object_routes, PlannedRoute, Routes, RoutesByPrefix};
use crate::pipeline::schema::encode::confluent_prefix;
use crate::pipeline::schema::{compat, Catalog, Registry};
use crate::pipeline::{Pipeline, PipelineSettings, ProtectionSettings};
use crate::wiring::config::{Config, Encoding, EndpointConfig};

/// The schema registry client, with the Confluent encoding.
pub fn registry(config: &Config) -> anyhow::Result<Option<Registry>> {
    Ok(match config.encoding() {
        Encoding::Confluent => Some(Registry::new(&config.schema_registry)?),
        Encoding::SingleObject => None,
    })
}

/// Loads `schemas/` and gives every route of every endpoint's topic prefix its wire prefix.
/// With the Confluent encoding (and so a `registry`) every schema is first checked against its
/// subject's latest version (so an incompatible edit is refused before anything is
/// registered or written), then registered.
pub async fn resolve_routes(
    config: &Config,
    registry: Option<&Registry>,
) -> anyhow::Result<RoutesByPrefix> {
    let catalog = Catalog::load(&config.schemas.dir).context("loading schemas")?;
    let mut tables = RoutesByPrefix::default();
    for prefix in config.topic_prefixes() {
        let routes = match registry {
            None => single_object_routes(&catalog, prefix),
            Some(registry) => registered_routes(config, registry, &catalog, prefix).await?,
        };
        tables.insert(prefix, routes);
    }
    Ok(tables)
}

/// [`resolve_routes`] for the service's start-up: while the registry does not answer
/// (connection refused, timeout, 502/503) it waits and tries again — 1 s, doubling up to
/// 30 s — with one log line per try; the listener meanwhile answers not ready. Anything the
/// registry answers (an incompatible schema, a refusal) still stops start-up.
pub async fn resolve_routes_waiting_for_registry(
    config: &Config,
    registry: Option<&Registry>,
) -> anyhow::Result<RoutesByPrefix> {
    const FIRST_WAIT: Duration = Duration::from_secs(1);
    const LONGEST_WAIT: Duration = Duration::from_secs(30);
    let mut wait = FIRST_WAIT;
    loop {
        match resolve_routes(config, registry).await {
            Err(error) if registry_unreachable(&error) => {
                metrics::gauge!(crate::common::metrics::SCHEMA_REGISTRY_UP).set(0.0);
                tracing::warn!(
                    error = %format!("{error:#}"),
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "schema registry unreachable at start-up; retrying (not ready until the \
                     schemas resolve)"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_WAIT);
            }
            resolved => return resolved,
        }
    }
}

fn registry_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<crate::pipeline::schema::RegistryError>()
            .is_some_and(crate::pipeline::schema::RegistryError::is_unreachable)
    })
}

/// The routes of one topic prefix, their schemas checked and registered.
async fn registered_routes(
    config: &Config,
    registry: &Registry,
    catalog: &Catalog,
    prefix: &str,
) -> anyhow::Result<Routes> {
    let planned = Routes::plan(catalog, prefix);
    check_compatibility(config, registry, &planned).await?;
    let mut routes = Vec::with_capacity(planned.len());
    for plan in planned {
        let subject = Registry::value_subject(&plan.topic);
        let id = registry.register(&subject, &plan.schema).await?;
        tracing::info!(subject, schema_id = id, file = %plan.schema.file.display(), "schema registered");
        routes.push((plan, confluent_prefix(id)));
    }
    Ok(Routes::new(routes))
}

/// `schemas check`: every schema against its subject's latest registered version (the
/// subjects of every endpoint's topic prefix), registering nothing. Returns one line per
/// subject.
pub async fn check_schemas(config: &Config) -> anyhow::Result<Vec<String>> {
    let catalog = Catalog::load(&config.schemas.dir).context("loading schemas")?;
    let planned: Vec<PlannedRoute> = config
        .topic_prefixes()
        .into_iter()
        .flat_map(|prefix| Routes::plan(&catalog, prefix))
        .collect();
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

/// The topics the connector needs, over every endpoint's prefix: one compacted topic per
/// route and a quarantine topic per prefix, each taking the largest record the connector
/// produces and acknowledging a record only once `topics.min_insync_replicas` brokers hold it.
fn topic_specs(config: &Config, routes: &RoutesByPrefix) -> Vec<TopicSpec> {
    let max = record_size::kafka_message_bytes(config.http.max_body_bytes);
    let min_insync = config.topics.min_insync_replicas();
    routes
        .topics()
        .into_iter()
        .map(TopicSpec::compacted)
        .chain(
            routes
                .quarantine_topics()
                .into_iter()
                .map(TopicSpec::retained),
        )
        .map(|spec| spec.max_message_bytes(max).min_insync_replicas(min_insync))
        .collect()
}

/// Reads what an acknowledged record rests on in every topic the connector writes to —
/// created here or elsewhere — and refuses a replicated topic whose effective
/// `min.insync.replicas` is below 2: `acks=all` would then be answered by the leader alone,
/// and a leader lost right after the 2xx loses the record. `topics.allow_single_replica_acks`
/// turns the refusal into a warning (development clusters).
pub async fn check_durability(config: &Config, topics: &[String]) -> anyhow::Result<()> {
    let described = match kafka::describe_durability(&config.kafka, topics).await {
        Ok(described) => described,
        Err(error) if config.topics.allow_single_replica_acks => {
            tracing::warn!(%error, "topics' replication settings not checked (topics.allow_single_replica_acks)");
            return Ok(());
        }
        Err(error) => {
            return Err(error).context(
                "reading the topics' replication settings (topics.allow_single_replica_acks = \
                 true skips this check on development clusters)",
            )
        }
    };
    for (topic, durability) in described {
        match durability {
            TopicDurability::Missing => tracing::warn!(
                topic,
                "topic does not exist (topics.create = false): records to it fail until it is \
                 made; its min.insync.replicas is not checked"
            ),
            TopicDurability::Unreported { replication_factor } => tracing::info!(
                topic,
                replication_factor,
                "the cluster reports no min.insync.replicas for the topic (Redpanda: acks=all \
                 waits for a Raft majority); not checked"
            ),
            durability @ TopicDurability::Replicated {
                replication_factor,
                min_insync_replicas,
            } => {
                if durability.acks_on_one_broker() {
                    let refusal = format!(
                        "topic `{topic}` has replication factor {replication_factor} but \
                         min.insync.replicas {min_insync_replicas}: an acknowledged record could \
                         sit on a single broker and be lost with it. Set the topic's \
                         min.insync.replicas to 2 (kafka-configs.sh --alter --entity-type topics \
                         --entity-name {topic} --add-config min.insync.replicas=2), or set \
                         topics.allow_single_replica_acks = true (development only)"
                    );
                    if !config.topics.allow_single_replica_acks {
                        anyhow::bail!(refusal);
                    }
                    tracing::warn!(
                        topic,
                        replication_factor,
                        min_insync_replicas,
                        "{refusal}; allowed by topics.allow_single_replica_acks"
                    );
                } else if min_insync_replicas > replication_factor {
                    tracing::warn!(
                        topic,
                        replication_factor,
                        min_insync_replicas,
                        "min.insync.replicas is above the replication factor: no record to this \
                         topic can be acknowledged"
                    );
                }
            }
        }
    }
    Ok(())
}

/// Creates any missing topic: one compacted topic per route and a quarantine topic per
/// prefix.
pub async fn ensure_topics(
    config: &Config,
    routes: &RoutesByPrefix,
) -> anyhow::Result<Vec<String>> {
    let specs = topic_specs(config, routes);
    if config.topics.create {
        kafka::ensure_topics(
            &config.kafka,
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
        &config.kafka,
        config.delivery.ack_timeout(),
        record_size::kafka_message_bytes(config.http.max_body_bytes),
    )
    .context("creating the kafka producer")
}

/// One endpoint's routes, topics and a Kafka store without a spool (tools that produce, like
/// replay, wait for Kafka): everything between a body and a stored record.
pub async fn pipeline(config: &Config, endpoint: &EndpointConfig) -> anyhow::Result<Pipeline> {
    let routes = resolve_routes(config, registry(config)?.as_ref()).await?;
    let keys = protection_keys(config, &routes)?;
    let store = kafka_store(config, &routes, None).await?;
    let delivery = delivery_over(config, Arc::new(store));
    Ok(pipeline_for(config, endpoint, &routes, keys, delivery))
}

/// A pipeline per endpoint (in the order of `endpoints`) over any store, all sharing one
/// delivery (the dedup cache from `[delivery.dedup]` in front of `store`) and the
/// protection keys.
pub fn pipelines_over(
    config: &Config,
    routes: &RoutesByPrefix,
    keys: Option<Arc<Keyring>>,
    store: Arc<dyn Store>,
) -> Vec<Pipeline> {
    let delivery = delivery_over(config, store);
    config
        .endpoints
        .iter()
        .map(|endpoint| pipeline_for(config, endpoint, routes, keys.clone(), delivery.clone()))
        .collect()
}

/// Reads `[protection]`'s keys and checks each endpoint has the keys its policies need (the
/// schemas' field policies when `protect_fields`, the body's `raw` policy). `None` when no
/// key is configured and none is needed.
pub fn protection_keys(
    config: &Config,
    routes: &RoutesByPrefix,
) -> anyhow::Result<Option<Arc<Keyring>>> {
    let keys = Keyring::from_config(&config.protection).map_err(|e| e.within("protection"))?;
    let schemas = routes.schemas();
    for endpoint in &config.endpoints {
        let fields = endpoint.protect_fields;
        let encrypting: Vec<String> = schemas
            .iter()
            .filter(|_| fields)
            .flat_map(|s| {
                s.plan
                    .targets
                    .iter()
                    .filter(|t| t.policy == Policy::Encrypt)
            })
            .map(|t| t.path())
            .collect();
        let hashing = fields && schemas.iter().any(|s| s.plan.hashes());
        let raw = endpoint.raw == RawPolicy::Encrypt;
        if (raw || !encrypting.is_empty()) && !keys.can_encrypt() {
            let why = if raw {
                "raw = \"encrypt\"".to_string()
            } else {
                format!("the schemas encrypt {}", encrypting[0])
            };
            return Err(SettingError::missing("protection.encryption_keys")).with_context(|| {
                format!(
                    "endpoint `{}` encrypts ({why}): configure a key (`riskos-connector keys \
                         generate`), or set its `raw = \"keep\"` / `protect_fields = false`",
                    endpoint.name
                )
            });
        }
        if hashing && !keys.can_hash() {
            return Err(SettingError::missing("protection.hash_keys")).with_context(|| {
                format!(
                    "endpoint `{}` hashes fields the schemas mark `hash`: configure a key \
                     (`riskos-connector keys generate`), or set its `protect_fields = false`",
                    endpoint.name
                )
            });
        }
    }
    let used = keys.can_encrypt() || keys.can_hash();
    if used {
        // Ids and fingerprints (never the keys): what tokens and boxes made from now on name,
        // to compare with records when a key may have been regenerated under an old id.
        tracing::info!(keys = ?keys.fingerprints(), "protection keys loaded");
    }
    Ok(used.then(|| Arc::new(keys)))
}

/// The dedup cache from `[delivery.dedup]` in front of `store`.
pub fn delivery_over(config: &Config, store: Arc<dyn Store>) -> Delivery {
    let dedup = Dedup::new(
        config.delivery.dedup.max_entries,
        Duration::from_secs(config.delivery.dedup.ttl_secs),
    );
    Delivery::new(store, dedup)
}

/// One endpoint's pipeline: its prefix's routes and quarantine topic, its name for the
/// records' headers, the envelopes it accepts, and the largest value the connector produces.
pub fn pipeline_for(
    config: &Config,
    endpoint: &EndpointConfig,
    routes: &RoutesByPrefix,
    keys: Option<Arc<Keyring>>,
    delivery: Delivery,
) -> Pipeline {
    Pipeline::new(
        routes.get(&endpoint.topic_prefix).clone(),
        delivery,
        PipelineSettings {
            endpoint: endpoint.name.as_str().into(),
            envelopes: endpoint.envelopes.clone(),
            quarantine_topic: crate::pipeline::route::quarantine_topic(&endpoint.topic_prefix),
            max_value_bytes: record_size::max_value_bytes(config.http.max_body_bytes),
            max_json_depth: config.http.max_json_depth,
            protection: ProtectionSettings {
                keys,
                fields: endpoint.protect_fields,
                raw: endpoint.raw,
            },
            cloudevents: endpoint.cloudevents.then(|| {
                crate::pipeline::cloudevents::Binding::new(&endpoint.name, config.encoding())
            }),
        },
    )
}

/// How long start-up waits for the cluster's first answer (or refusal) before going on as
/// in an outage.
const KAFKA_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Kafka as the store: the routes' topics (created now, or in the background once Kafka
/// answers when a spool can take webhooks meanwhile), the producer, the spool if any, and the
/// routes' partition counts (read once the topics exist, for partitioning by entity).
pub async fn kafka_store(
    config: &Config,
    routes: &RoutesByPrefix,
    spool: Option<Arc<Spool>>,
) -> anyhow::Result<KafkaStore> {
    let producer = producer(config)?;
    // A cluster that refuses the connector (TLS, credentials) stops start-up even with a
    // spool: spooled webhooks could never be delivered. One that does not answer is an
    // outage: `ensure_topics` below decides, as before.
    match producer.probe(&config.kafka, KAFKA_PROBE_TIMEOUT).await {
        Ok(cluster) => tracing::info!(
            brokers = cluster.brokers,
            security = %config.kafka.describe_security(),
            "kafka answered"
        ),
        Err(refused @ kafka::probe::ConnectError::Refused { .. }) => {
            return Err(anyhow::Error::new(refused))
        }
        Err(unreachable) => tracing::warn!(error = %unreachable, "kafka not answering yet"),
    }
    let partitions = Arc::new(PartitionCounts::new());
    let route_topics = routes.topics();
    match ensure_topics(config, routes).await {
        Ok(topics) => {
            check_durability(config, &topics).await?;
            tracing::info!(?topics, encoding = ?config.encoding(), "topics ready");
            // Topics just created may not list their partitions for a moment (no leader yet):
            // a few quick tries, then in the background.
            let mut known = false;
            for _ in 0..20 {
                known = partition_counts_known(&producer, &partitions, &route_topics).await;
                if known {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if !known {
                let missing: Vec<&String> = route_topics
                    .iter()
                    .filter(|t| !partitions.knows(t))
                    .collect();
                tracing::warn!(
                    ?missing,
                    "topics without a known partition count yet: their records are partitioned \
                     by key until it is read (retrying in the background)"
                );
                let (producer, partitions) = (producer.clone(), partitions.clone());
                tokio::spawn(async move {
                    retry_partition_counts(producer, partitions, route_topics).await
                });
            }
        }
        // With a spool the connector can take webhooks while Kafka is down (a pod restarted
        // during an outage must come back to drain what it acknowledged); topics are created
        // in the background once Kafka answers.
        Err(error) if spool.is_some() => {
            tracing::warn!(error = %format!("{error:#}"), "kafka unavailable at start-up; spooling until it answers");
            let (specs, config) = (topic_specs(config, routes), config.clone());
            let (producer, partitions) = (producer.clone(), partitions.clone());
            tokio::spawn(async move {
                retry_topics(&config, &specs).await;
                retry_partition_counts(producer, partitions, route_topics).await
            });
        }
        Err(error) => return Err(error),
    }
    Ok(KafkaStore::new(producer, spool, partitions))
}

/// Reads the partition counts of `topics` from the cluster's metadata; true once every one
/// is known.
async fn partition_counts_known(
    producer: &Producer,
    partitions: &Arc<PartitionCounts>,
    topics: &[String],
) -> bool {
    let (client, counts, wanted) = (producer.clone(), partitions.clone(), topics.to_vec());
    let read = tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer as _;
        counts.fetch(client.client().client(), &wanted, Duration::from_secs(10))
    })
    .await;
    match read {
        Ok(Ok(known)) => known == topics.len(),
        Ok(Err(error)) => {
            tracing::debug!(%error, "reading topic metadata");
            false
        }
        Err(_) => false,
    }
}

/// Reads the partition counts every 5 s until all are known (start-up during an outage, or
/// topics without a leader yet); records of a topic are partitioned by key until then.
async fn retry_partition_counts(
    producer: Producer,
    partitions: Arc<PartitionCounts>,
    topics: Vec<String>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if partition_counts_known(&producer, &partitions, &topics).await {
            tracing::info!("partition counts read: records are partitioned by entity");
            return;
        }
    }
}

/// Creates the topics once Kafka answers (start-up with a spool during an outage), then
/// checks their replication settings as start-up would have. The process is already taking
/// webhooks into its spool, so a refusal here cannot stop start-up: it is logged as an error
/// on every try until the topic is fixed, and the spool keeps the records meanwhile.
async fn retry_topics(config: &Config, specs: &[TopicSpec]) {
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let created = if config.topics.create {
            kafka::ensure_topics(
                &config.kafka,
                specs,
                config.topics.partitions,
                config.topics.replication_factor,
            )
            .await
            .map_err(anyhow::Error::from)
        } else {
            Ok(())
        };
        if let Err(error) = created {
            tracing::warn!(%error, "creating topics: kafka still unavailable");
            continue;
        }
        match check_durability(config, &names).await {
            Ok(()) => {
                tracing::info!("topics ready");
                return;
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "topics not safe to write to")
            }
        }
    }
}

/// Opens the spool when `delivery.spool.dir` is set.
pub fn open_spool(config: &Config) -> anyhow::Result<Option<Arc<Spool>>> {
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
