//! `config check`: connects with the config as the service would and says what it could and
//! could not do — reach Kafka (and why not: a refused TLS handshake, refused credentials),
//! describe each topic the connector writes, write to it (its authorized operations), and
//! reach and authenticate to the schema registry. Nothing is written or registered.

use std::fmt;
use std::time::Duration;

use crate::delivery::kafka::permissions::{topic_access, TopicAccess};
use crate::delivery::kafka::{self, TopicDurability};
use crate::pipeline::route::{quarantine_topic, single_object_routes};
use crate::pipeline::schema::catalog::Catalog;
use crate::pipeline::schema::registry::Registry;
use crate::wiring::config::{Config, Encoding};

/// How long each Kafka question may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It worked.
    Ok,
    /// It did not: the service would fail here.
    Fail,
    /// Not checked (an earlier step failed, or the cluster does not say).
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The outcome.
    pub verdict: Verdict,
    /// What was checked: `kafka`, `topic riskos.case_closure`, `schema registry`.
    pub subject: String,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        write!(f, "{verdict:<4}  {}: {}", self.subject, self.detail)
    }
}

fn finding(verdict: Verdict, subject: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        verdict,
        subject: subject.into(),
        detail: detail.into(),
    }
}

/// The topics the connector writes: each endpoint prefix's event topics and quarantine.
fn topics(config: &Config) -> anyhow::Result<Vec<String>> {
    let catalog = Catalog::load(&config.schemas.dir)?;
    let mut topics = Vec::new();
    for prefix in config.topic_prefixes() {
        topics.extend(
            single_object_routes(&catalog, prefix)
                .all()
                .map(|r| r.topic.clone()),
        );
        topics.push(quarantine_topic(prefix));
    }
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// Runs every check; the report is in order (Kafka, topics, permissions, registry).
pub async fn run(config: &Config) -> Vec<Finding> {
    let mut report = Vec::new();
    let topics = match topics(config) {
        Ok(topics) => topics,
        Err(error) => {
            report.push(finding(Verdict::Fail, "schemas", format!("{error:#}")));
            Vec::new()
        }
    };
    let kafka_ok = check_kafka(config, &topics, &mut report).await;
    if !kafka_ok {
        report.push(finding(
            Verdict::Skip,
            "topics",
            "not checked: kafka could not be used",
        ));
    }
    check_registry(config, &topics, &mut report).await;
    report
}

/// True when the cluster answered.
async fn check_kafka(config: &Config, topics: &[String], report: &mut Vec<Finding>) -> bool {
    let producer = match crate::wiring::topology::producer(config) {
        Ok(producer) => producer,
        Err(error) => {
            report.push(finding(Verdict::Fail, "kafka", format!("{error:#}")));
            return false;
        }
    };
    match producer.probe(&config.kafka, KAFKA_TIMEOUT).await {
        Ok(cluster) => report.push(finding(
            Verdict::Ok,
            "kafka",
            format!(
                "{} broker(s) at {} answered ({}); {} topics visible",
                cluster.brokers,
                config.kafka.bootstrap_servers,
                config.kafka.describe_security(),
                cluster.topics
            ),
        )),
        Err(error) => {
            report.push(finding(Verdict::Fail, "kafka", error.to_string()));
            return false;
        }
    }
    describe_topics(config, topics, report).await;
    let client = producer.client().clone();
    let wanted = topics.to_vec();
    let access = tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer as _;
        topic_access(client.client(), &wanted, KAFKA_TIMEOUT)
    })
    .await;
    match access {
        Ok(Ok(access)) => {
            for (topic, access) in access {
                report.push(produce_permission(config, &topic, access));
            }
        }
        Ok(Err(error)) => report.push(finding(
            Verdict::Fail,
            "produce permission",
            error.to_string(),
        )),
        Err(failed) => report.push(finding(
            Verdict::Fail,
            "produce permission",
            format!("the check failed: {failed}"),
        )),
    }
    true
}

async fn describe_topics(config: &Config, topics: &[String], report: &mut Vec<Finding>) {
    let described = match kafka::describe_durability(&config.kafka, topics).await {
        Ok(described) => described,
        Err(error) => {
            report.push(finding(Verdict::Fail, "topics", error.to_string()));
            return;
        }
    };
    for (topic, durability) in described {
        let subject = format!("topic {topic}");
        report.push(match durability {
            TopicDurability::Missing if config.topics.create => finding(
                Verdict::Ok,
                subject,
                "does not exist yet: start-up creates it (topics.create = true; needs the \
                 CREATE permission)",
            ),
            TopicDurability::Missing => finding(
                Verdict::Fail,
                subject,
                "does not exist and topics.create = false: create it first",
            ),
            TopicDurability::Unreported { replication_factor } => finding(
                Verdict::Ok,
                subject,
                format!(
                    "described: replication factor {replication_factor}; the cluster reports no \
                     min.insync.replicas (Redpanda: acks=all waits for a Raft majority)"
                ),
            ),
            durability @ TopicDurability::Replicated {
                replication_factor,
                min_insync_replicas,
            } => {
                let unsafe_acks = durability.acks_on_one_broker();
                let verdict = if unsafe_acks && !config.topics.allow_single_replica_acks {
                    Verdict::Fail
                } else {
                    Verdict::Ok
                };
                let note = if unsafe_acks {
                    ": an acknowledged record could rest on one broker (start-up refuses it)"
                } else {
                    ""
                };
                finding(
                    verdict,
                    subject,
                    format!(
                        "described: replication factor {replication_factor}, \
                         min.insync.replicas {min_insync_replicas}{note}"
                    ),
                )
            }
        });
    }
}

fn produce_permission(config: &Config, topic: &str, access: TopicAccess) -> Finding {
    let subject = format!("produce permission {topic}");
    match access {
        TopicAccess::Writable => finding(Verdict::Ok, subject, "WRITE allowed"),
        TopicAccess::NotWritable => finding(
            Verdict::Fail,
            subject,
            "the principal may not WRITE to it: grant WRITE (and DESCRIBE) on the topic",
        ),
        TopicAccess::NotReported => finding(
            Verdict::Skip,
            subject,
            "the broker does not report authorized operations",
        ),
        TopicAccess::Unknown(_) if config.topics.create => finding(
            Verdict::Skip,
            subject,
            "the topic does not exist yet (or may not be described)",
        ),
        TopicAccess::Unknown(reason) => finding(Verdict::Fail, subject, reason),
    }
}

async fn check_registry(config: &Config, topics: &[String], report: &mut Vec<Finding>) {
    if config.encoding() != Encoding::Confluent {
        report.push(finding(
            Verdict::Skip,
            "schema registry",
            "not used (schemas.encoding = \"single-object\")",
        ));
        return;
    }
    let registry = match Registry::new(&config.schema_registry) {
        Ok(registry) => registry,
        Err(error) => {
            report.push(finding(Verdict::Fail, "schema registry", error.to_string()));
            return;
        }
    };
    let Some(topic) = topics.first() else {
        return;
    };
    let subject = Registry::value_subject(topic);
    report.push(match registry.latest(&subject).await {
        Ok(latest) => finding(
            Verdict::Ok,
            "schema registry",
            format!(
                "{} answered: subject {subject} {}",
                config.schema_registry.url,
                if latest.is_some() {
                    "is registered"
                } else {
                    "is not registered yet (start-up registers it)"
                }
            ),
        ),
        Err(error) => finding(Verdict::Fail, "schema registry", error.to_string()),
    });
}
